//! REST routes of posts, comments, reactions and shares, through HTTP
//! against a real server: a user posts, others react, comment, reply and
//! share, and everyone reads timelines, hashtags, threads and reactions as
//! their visibility allows.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::{cursor, items, TestServer};

/// The `id`s of a page, in order.
fn ids(page: &Value) -> Vec<String> {
    items(page)
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn posts_reactions_comments_and_shares_over_http() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    server.befriend(&alice, &bob).await;

    // Alice posts publicly and to her friends.
    let public = server
        .post(
            "/posts",
            &alice.token,
            json!({"text": "Hello #Kith, @bob!"}),
        )
        .await
        .ok(201);
    assert_eq!(public["visibility"], "public");
    assert_eq!(public["hashtags"], json!(["kith"]));
    assert_eq!(public["mentions"], json!([bob.id]));
    assert_eq!(public["author"]["username"], "alice");
    let public_id = public["id"].as_str().unwrap().to_owned();
    let friends = server
        .post(
            "/posts",
            &alice.token,
            json!({"text": "just us #kith", "visibility": "friends"}),
        )
        .await
        .ok(201);
    let friends_id = friends["id"].as_str().unwrap().to_owned();
    server
        .post("/posts", &alice.token, json!({"text": "  "}))
        .await
        .err(422, "invalid_input", Some("text"));

    // Timelines and hashtags as each viewer may see them, paged.
    let timeline = format!("/users/{}/posts?limit=1", alice.id);
    let first = server.get(&timeline, &bob.token).await.ok(200);
    assert_eq!(ids(&first), vec![friends_id.clone()]);
    let next = format!("{timeline}&cursor={}", cursor(&first).unwrap());
    let second = server.get(&next, &bob.token).await.ok(200);
    assert_eq!(ids(&second), vec![public_id.clone()]);
    assert_eq!(cursor(&second), None);
    let anonymous = server.get_anon("/hashtags/KITH/posts").await.ok(200);
    assert_eq!(ids(&anonymous), vec![public_id.clone()]);
    let as_carol = server
        .get("/hashtags/kith/posts", &carol.token)
        .await
        .ok(200);
    assert_eq!(ids(&as_carol), vec![public_id.clone()]);
    server
        .get(&format!("/posts/{friends_id}"), &carol.token)
        .await
        .err(404, "not_found", None);
    server
        .get_anon("/hashtags/no%20tag/posts")
        .await
        .err(422, "invalid_input", Some("tag"));

    // Reactions: one per user, counts, who reacted, in one shape.
    let reaction = format!("/posts/{public_id}/reaction");
    let summary = server
        .put(&reaction, &bob.token, Some(json!({"kind": "love"})))
        .await
        .ok(200);
    assert_eq!(summary["mine"], "love");
    server
        .put(&reaction, &carol.token, Some(json!({"kind": "like"})))
        .await
        .ok(200);
    let counts = server
        .get_anon(&format!("/posts/{public_id}/reactions/summary"))
        .await
        .ok(200);
    assert_eq!(counts["total"], 2);
    assert_eq!(
        counts["counts"],
        json!([{"kind": "like", "count": 1}, {"kind": "love", "count": 1}])
    );
    let who = server
        .get_anon(&format!("/posts/{public_id}/reactions?kind=love"))
        .await
        .ok(200);
    assert_eq!(items(&who)[0]["user"]["username"], "bob");
    let removed = server.delete(&reaction, &carol.token).await.ok(200);
    assert_eq!(removed["total"], 1);
    server
        .put(
            &format!("/posts/{friends_id}/reaction"),
            &carol.token,
            Some(json!({"kind": "wow"})),
        )
        .await
        .err(404, "not_found", None);

    // Comments, a reply, a reaction to the reply, and the counts.
    let comments = format!("/posts/{public_id}/comments");
    let comment = server
        .post(&comments, &bob.token, json!({"text": "hi!"}))
        .await
        .ok(201);
    let comment_id = comment["id"].as_str().unwrap().to_owned();
    let reply = server
        .post(
            &comments,
            &alice.token,
            json!({"text": "hello", "parent_id": comment_id}),
        )
        .await
        .ok(201);
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    server
        .put(
            &format!("/comments/{reply_id}/reaction"),
            &bob.token,
            Some(json!({"kind": "haha"})),
        )
        .await
        .ok(200);
    let thread = server.get_anon(&comments).await.ok(200);
    assert_eq!(ids(&thread), vec![comment_id.clone()]);
    assert_eq!(items(&thread)[0]["replies"], 1);
    let replies = server
        .get_anon(&format!("/comments/{comment_id}/replies"))
        .await
        .ok(200);
    assert_eq!(ids(&replies), vec![reply_id.clone()]);
    server
        .patch(
            &format!("/comments/{comment_id}"),
            &carol.token,
            json!({"text": "mine"}),
        )
        .await
        .err(403, "forbidden", None);
    // The post's author deletes Bob's comment: a tombstone for its reply.
    server
        .delete(&format!("/comments/{comment_id}"), &alice.token)
        .await
        .ok(204);
    let tombstone = server
        .get_anon(&format!("/comments/{comment_id}"))
        .await
        .ok(200);
    assert_eq!(tombstone["deleted"], true);
    assert!(tombstone["text"].is_null() && tombstone["author"].is_null());
    let post = server
        .get_anon(&format!("/posts/{public_id}"))
        .await
        .ok(200);
    assert_eq!(post["comments"], 1);

    // Shares: never wider than the original, embedded only for those who
    // may see the original, counted on it.
    server
        .post(
            "/posts",
            &bob.token,
            json!({"shared_id": friends_id, "visibility": "public"}),
        )
        .await
        .err(422, "invalid_input", Some("visibility"));
    let shared = server
        .post(
            "/posts",
            &bob.token,
            json!({"shared_id": friends_id, "visibility": "friends", "text": "see"}),
        )
        .await
        .ok(201);
    let shared_id = shared["id"].as_str().unwrap().to_owned();
    assert_eq!(shared["original"]["id"], friends_id.as_str());
    let reshared = server
        .post("/posts", &carol.token, json!({"shared_id": public_id}))
        .await
        .ok(201);
    assert_eq!(reshared["text"], "");
    server.befriend(&bob, &carol).await;
    let as_carol = server
        .get(&format!("/posts/{shared_id}"), &carol.token)
        .await
        .ok(200);
    assert_eq!(as_carol["shared_id"], friends_id.as_str());
    assert!(as_carol["original"].is_null());
    let original = server
        .get_anon(&format!("/posts/{public_id}"))
        .await
        .ok(200);
    assert_eq!(original["shares"], 1);

    // Editing and deleting are the author's.
    server
        .patch(
            &format!("/posts/{public_id}"),
            &bob.token,
            json!({"text": "mine now"}),
        )
        .await
        .err(403, "forbidden", None);
    let edited = server
        .patch(
            &format!("/posts/{public_id}"),
            &alice.token,
            json!({"text": "Hello #rust"}),
        )
        .await
        .ok(200);
    assert_eq!(edited["hashtags"], json!(["rust"]));
    assert!(edited["edited_at"].is_string());
    server
        .delete(&format!("/posts/{friends_id}"), &alice.token)
        .await
        .ok(204);
    let orphan = server
        .get(&format!("/posts/{shared_id}"), &bob.token)
        .await
        .ok(200);
    assert!(orphan["original"].is_null());
}

#[tokio::test]
async fn message_reactions_read_in_the_same_shape() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    server.befriend(&alice, &bob).await;
    let conversation = server.direct(&alice, &bob).await;
    let message = server
        .send_message(&alice, &conversation, "c1", "hello")
        .await
        .ok(201);
    let message_id = message["id"].as_str().unwrap();
    let base = format!("/conversations/{conversation}/messages/{message_id}");
    server
        .put(
            &format!("{base}/reaction"),
            &bob.token,
            Some(json!({"kind": "sad"})),
        )
        .await
        .ok(200);
    let summary = server
        .get(&format!("{base}/reactions/summary"), &alice.token)
        .await
        .ok(200);
    assert_eq!(summary["counts"], json!([{"kind": "sad", "count": 1}]));
    assert!(summary["mine"].is_null());
    let who = server
        .get(&format!("{base}/reactions"), &alice.token)
        .await
        .ok(200);
    assert_eq!(items(&who)[0]["user"]["username"], "bob");
    server
        .get(&format!("{base}/reactions"), &carol.token)
        .await
        .err(404, "not_found", None);
}
