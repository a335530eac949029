//! REST routes of the `chat` area, through HTTP against a real server: every
//! route's success and the errors it maps.

mod support_rest;

use reqwest::Method;
use serde_json::{json, Value};
use support_rest::{cursor, items, start, start_with, Server, TestUser};

/// A syntactically valid id that nothing has.
const NOTHING: &str = "4242";

/// Creates a group titled `title` by `admin` with `members`; returns its id.
async fn group(server: &Server, admin: &TestUser, title: &str, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let created = server
        .post(
            admin,
            "/conversations",
            json!({"title": title, "members": ids}),
        )
        .await
        .ok(201);
    created["id"]
        .as_str()
        .expect("a conversation id")
        .to_owned()
}

/// Sends `body` with `client_id` as `user` in `conversation`.
async fn send(
    server: &Server,
    user: &TestUser,
    conversation: &str,
    client_id: &str,
    body: &str,
) -> Value {
    server
        .post(
            user,
            &format!("/conversations/{conversation}/messages"),
            json!({"client_id": client_id, "body": body}),
        )
        .await
        .ok(201)
}

/// The `seq`s of a page of messages.
fn seqs(page: &Value) -> Vec<u64> {
    items(page)
        .iter()
        .map(|m| m["seq"].as_u64().expect("a seq"))
        .collect()
}

#[tokio::test]
async fn direct_conversations_follow_the_friends_only_policy_and_blocks() {
    let server = start().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;

    // This server limits direct messages to friends.
    server
        .post(&alice, "/conversations/direct", json!({"user_id": bob.id}))
        .await
        .err(403, "forbidden", None);
    server.befriend(&alice, &bob).await;
    let direct = server
        .post(&alice, "/conversations/direct", json!({"user_id": bob.id}))
        .await
        .ok(200);
    assert_eq!(direct["kind"], "direct");
    assert!(direct["title"].is_null());
    let id = direct["id"].as_str().expect("an id").to_owned();
    // Found, not created again, from either side.
    let again = server
        .post(&bob, "/conversations/direct", json!({"user_id": alice.id}))
        .await
        .ok(200);
    assert_eq!(again["id"], id.as_str());

    server
        .post(
            &alice,
            "/conversations/direct",
            json!({"user_id": alice.id}),
        )
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .post(&alice, "/conversations/direct", json!({"user_id": NOTHING}))
        .await
        .err(404, "not_found", None);
    server
        .post(&alice, "/conversations/direct", json!({}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            &alice,
            Method::POST,
            "/conversations/direct",
            &json!({"user_id": bob.id}).to_string(),
            Some("text/plain"),
        )
        .await
        .err(415, "unsupported_media_type", None);

    // Members only.
    let fetched = server
        .get(&bob, &format!("/conversations/{id}"))
        .await
        .ok(200);
    assert_eq!(fetched, direct);
    server
        .get(&carol, &format!("/conversations/{id}"))
        .await
        .err(404, "not_found", None);
    server
        .get(&alice, &format!("/conversations/{NOTHING}"))
        .await
        .err(404, "not_found", None);
    server
        .get(&alice, "/conversations/abc")
        .await
        .err(400, "bad_request", None);

    // Direct conversations have no title, no admins, no leaving.
    server
        .patch(
            &alice,
            &format!("/conversations/{id}"),
            json!({"title": "x"}),
        )
        .await
        .err(403, "forbidden", None);
    server
        .post_empty(&alice, &format!("/conversations/{id}/leave"))
        .await
        .err(403, "forbidden", None);
    server
        .post(
            &alice,
            &format!("/conversations/{id}/members"),
            json!({"user_ids": [carol.id]}),
        )
        .await
        .err(403, "forbidden", None);

    // A block stops the conversation for both, each in their own way.
    send(&server, &bob, &id, "b1", "hello").await;
    server
        .put(&alice, &format!("/blocks/{}", bob.id), None)
        .await
        .ok(204);
    server
        .post(&alice, "/conversations/direct", json!({"user_id": bob.id}))
        .await
        .err(403, "forbidden", None);
    server
        .post(&bob, "/conversations/direct", json!({"user_id": alice.id}))
        .await
        .err(404, "not_found", None);
    server
        .post(
            &alice,
            &format!("/conversations/{id}/messages"),
            json!({"client_id": "a1", "body": "hi"}),
        )
        .await
        .err(403, "forbidden", None);
    server
        .post(
            &bob,
            &format!("/conversations/{id}/messages"),
            json!({"client_id": "b2", "body": "hi?"}),
        )
        .await
        .err(403, "forbidden", None);
}

#[tokio::test]
async fn open_direct_messages_need_no_friendship() {
    let server = start_with(&["--no-rate-limits", "--open-direct-messages"]).await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let direct = server
        .post(&alice, "/conversations/direct", json!({"user_id": bob.id}))
        .await
        .ok(200);
    assert_eq!(direct["kind"], "direct");
}

#[tokio::test]
async fn groups_members_and_roles() {
    let server = start().await;
    let [alice, bob, carol, dave] = server.users(["alice", "bob", "carol", "dave"]).await;

    // Creating.
    server
        .post(
            &alice,
            "/conversations",
            json!({"title": "  ", "members": [bob.id]}),
        )
        .await
        .err(422, "invalid_input", Some("title"));
    server
        .post(
            &alice,
            "/conversations",
            json!({"title": "t", "members": [NOTHING]}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post(&alice, "/conversations", json!({"title": "t"}))
        .await
        .err(400, "bad_request", None);
    server
        .post(
            &alice,
            "/conversations",
            json!({"title": "t", "members": "bob"}),
        )
        .await
        .err(400, "bad_request", None);
    let created = server
        .post(
            &alice,
            "/conversations",
            json!({"title": "Team", "members": [bob.id, bob.id, alice.id]}),
        )
        .await
        .ok(201);
    assert_eq!(created["kind"], "group");
    assert_eq!(created["title"], "Team");
    assert_eq!(created["created_by"], alice.id.as_str());
    let id = created["id"].as_str().expect("an id").to_owned();
    let conv = format!("/conversations/{id}");

    // Members, in one page.
    let members = server.get(&bob, &format!("{conv}/members")).await.ok(200);
    assert_eq!(items(&members).len(), 2);
    assert_eq!(cursor(&members), None);
    let role_of = |page: &Value, user: &TestUser| -> String {
        items(page)
            .iter()
            .find(|m| m["user_id"] == user.id.as_str())
            .map(|m| m["role"].as_str().expect("a role").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(role_of(&members, &alice), "admin");
    assert_eq!(role_of(&members, &bob), "member");
    server
        .get(&carol, &format!("{conv}/members"))
        .await
        .err(404, "not_found", None);

    // Renaming is an admin's.
    server
        .patch(&bob, &conv, json!({"title": "Mine"}))
        .await
        .err(403, "forbidden", None);
    server.patch(&alice, &conv, json!({"title": ""})).await.err(
        422,
        "invalid_input",
        Some("title"),
    );
    server
        .patch(&alice, &conv, json!({"name": "x"}))
        .await
        .err(400, "bad_request", None);
    server
        .patch(&carol, &conv, json!({"title": "Ours"}))
        .await
        .err(404, "not_found", None);
    let renamed = server
        .patch(&alice, &conv, json!({"title": "Crew"}))
        .await
        .ok(200);
    assert_eq!(renamed["title"], "Crew");
    assert_eq!(server.get(&bob, &conv).await.ok(200)["title"], "Crew");

    // Adding is an admin's; members already in are skipped.
    let add = format!("{conv}/members");
    server
        .post(&bob, &add, json!({"user_ids": [carol.id]}))
        .await
        .err(403, "forbidden", None);
    server
        .post(&alice, &add, json!({"user_ids": [NOTHING]}))
        .await
        .err(404, "not_found", None);
    server
        .post(&alice, &add, json!({"user_ids": [1.5]}))
        .await
        .err(400, "bad_request", None);
    let added = server
        .post(&alice, &add, json!({"user_ids": [carol.id, bob.id]}))
        .await
        .ok(200);
    assert_eq!(items(&added).len(), 1);
    assert_eq!(added["items"][0]["user_id"], carol.id.as_str());
    assert_eq!(cursor(&added), None);
    let none = server
        .post(&alice, &add, json!({"user_ids": [carol.id]}))
        .await
        .ok(200);
    assert!(items(&none).is_empty());
    // Someone who blocks the admin cannot be added; someone the admin blocks
    // neither, with a reason.
    server
        .put(&dave, &format!("/blocks/{}", alice.id), None)
        .await
        .ok(204);
    server
        .post(&alice, &add, json!({"user_ids": [dave.id]}))
        .await
        .err(404, "not_found", None);
    server
        .delete(&dave, &format!("/blocks/{}", alice.id))
        .await
        .ok(204);
    server
        .put(&alice, &format!("/blocks/{}", dave.id), None)
        .await
        .ok(204);
    server
        .post(&alice, &add, json!({"user_ids": [dave.id]}))
        .await
        .err(403, "forbidden", None);
    server
        .post(
            &alice,
            "/conversations",
            json!({"title": "t", "members": [dave.id]}),
        )
        .await
        .err(403, "forbidden", None);

    // Roles.
    let role = |user: &TestUser| format!("{conv}/members/{}/role", user.id);
    server
        .put(&bob, &role(&carol), Some(json!({"role": "admin"})))
        .await
        .err(403, "forbidden", None);
    server
        .put(&alice, &role(&alice), Some(json!({"role": "member"})))
        .await
        .err(422, "invalid_input", Some("role"));
    server
        .put(&alice, &role(&bob), Some(json!({"role": "owner"})))
        .await
        .err(400, "bad_request", None);
    server
        .put(&alice, &role(&dave), Some(json!({"role": "admin"})))
        .await
        .err(404, "not_found", None);
    server
        .put(
            &alice,
            &format!("{conv}/members/x/role"),
            Some(json!({"role": "admin"})),
        )
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            &alice,
            Method::PUT,
            &role(&bob),
            r#"{"role":"admin"}"#,
            None,
        )
        .await
        .err(415, "unsupported_media_type", None);
    server
        .put(&alice, &role(&bob), Some(json!({"role": "admin"})))
        .await
        .ok(204);
    let members = server.get(&carol, &format!("{conv}/members")).await.ok(200);
    assert_eq!(role_of(&members, &bob), "admin");

    // Removing is an admin's.
    let remove = |user: &TestUser| format!("{conv}/members/{}", user.id);
    server
        .delete(&carol, &remove(&bob))
        .await
        .err(403, "forbidden", None);
    server
        .delete(&bob, &remove(&dave))
        .await
        .err(404, "not_found", None);
    server.delete(&bob, &remove(&carol)).await.ok(204);
    server
        .delete(&bob, &remove(&carol))
        .await
        .err(404, "not_found", None);
    server.get(&carol, &conv).await.err(404, "not_found", None);
    server
        .delete(&alice, &format!("{conv}/members/abc"))
        .await
        .err(400, "bad_request", None);

    // Leaving.
    server
        .post_empty(&carol, &format!("{conv}/leave"))
        .await
        .err(404, "not_found", None);
    server
        .post_empty(&alice, &format!("/conversations/{NOTHING}/leave"))
        .await
        .err(404, "not_found", None);
    server
        .post_empty(&alice, &format!("{conv}/leave"))
        .await
        .ok(204);
    server.get(&alice, &conv).await.err(404, "not_found", None);
    let members = server.get(&bob, &format!("{conv}/members")).await.ok(200);
    assert_eq!(items(&members).len(), 1);
}

#[tokio::test]
async fn messages_send_edit_delete_and_react() {
    let server = start().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    let id = group(&server, &alice, "Chat", &[&bob]).await;
    let other = group(&server, &alice, "Other", &[]).await;
    let messages = format!("/conversations/{id}/messages");

    // Sending, and retrying.
    let first = send(&server, &alice, &id, "m-1", "hello").await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["body"], "hello");
    assert_eq!(first["sender"], alice.id.as_str());
    assert_eq!(first["conversation_id"], id.as_str());
    let retried = send(&server, &alice, &id, "m-1", "hello again").await;
    assert_eq!(retried, first);
    let reply = server
        .post(
            &bob,
            &messages,
            json!({"client_id": "b-1", "body": "hi", "reply_to": first["id"]}),
        )
        .await
        .ok(201);
    assert_eq!(reply["seq"], 2);
    assert_eq!(reply["reply_to"], first["id"]);

    // Send errors.
    server
        .post(
            &alice,
            &messages,
            json!({"client_id": "m-2", "body": "   "}),
        )
        .await
        .err(422, "invalid_input", Some("body"));
    server
        .post(&alice, &messages, json!({"client_id": "", "body": "x"}))
        .await
        .err(422, "invalid_input", Some("client_id"));
    server
        .post(
            &alice,
            &messages,
            json!({"client_id": "m-2", "body": "x", "reply_to": NOTHING}),
        )
        .await
        .err(422, "invalid_input", Some("reply_to"));
    server
        .post(
            &alice,
            &format!("/conversations/{other}/messages"),
            json!({"client_id": "m-1", "body": "elsewhere"}),
        )
        .await
        .err(409, "conflict", None);
    server
        .post(
            &carol,
            &messages,
            json!({"client_id": "c-1", "body": "let me in"}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post(&alice, &messages, json!({"body": "no client id"}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            &alice,
            Method::POST,
            &messages,
            "not json",
            Some("application/json"),
        )
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            &alice,
            Method::POST,
            &messages,
            r#"{"client_id":"m-3","body":"x"}"#,
            None,
        )
        .await
        .err(415, "unsupported_media_type", None);
    let huge = json!({"client_id": "m-4", "body": "x".repeat(70 * 1024)});
    server
        .post(&alice, &messages, huge)
        .await
        .err(413, "payload_too_large", None);
    server
        .post(
            &alice,
            "/conversations/zero/messages",
            json!({"client_id": "m-5", "body": "x"}),
        )
        .await
        .err(400, "bad_request", None);

    // Editing.
    let first_id = first["id"].as_str().expect("an id").to_owned();
    let one = format!("{messages}/{first_id}");
    server
        .patch(&bob, &one, json!({"body": "mine now"}))
        .await
        .err(403, "forbidden", None);
    server
        .patch(&alice, &one, json!({"body": ""}))
        .await
        .err(422, "invalid_input", Some("body"));
    server
        .patch(&alice, &one, json!({"text": "x"}))
        .await
        .err(400, "bad_request", None);
    server
        .patch(
            &alice,
            &format!("{messages}/{NOTHING}"),
            json!({"body": "x"}),
        )
        .await
        .err(404, "not_found", None);
    server
        .patch(&carol, &one, json!({"body": "x"}))
        .await
        .err(404, "not_found", None);
    server
        .patch(&alice, &format!("{messages}/first"), json!({"body": "x"}))
        .await
        .err(400, "bad_request", None);
    let edited = server
        .patch(&alice, &one, json!({"body": "hello, all"}))
        .await
        .ok(200);
    assert_eq!(edited["body"], "hello, all");
    assert!(!edited["edited_at"].is_null());
    assert_eq!(edited["seq"], 1);

    // Reacting.
    let reaction = format!("{one}/reaction");
    let liked = server
        .put(&bob, &reaction, Some(json!({"kind": "like"})))
        .await
        .ok(200);
    assert_eq!(
        liked["reactions"],
        json!([{"user_id": bob.id, "kind": "like"}])
    );
    let loved = server
        .put(&bob, &reaction, Some(json!({"kind": "love"})))
        .await
        .ok(200);
    assert_eq!(loved["reactions"][0]["kind"], "love");
    server
        .put(&bob, &reaction, Some(json!({"kind": "meh"})))
        .await
        .err(400, "bad_request", None);
    server
        .put(&carol, &reaction, Some(json!({"kind": "like"})))
        .await
        .err(404, "not_found", None);
    server
        .put(
            &bob,
            &format!("{messages}/{NOTHING}/reaction"),
            Some(json!({"kind": "like"})),
        )
        .await
        .err(404, "not_found", None);
    let unliked = server.delete(&bob, &reaction).await.ok(200);
    assert_eq!(unliked["reactions"], json!([]));
    server.delete(&bob, &reaction).await.ok(200);
    server
        .put(&bob, &reaction, Some(json!({"kind": "haha"})))
        .await
        .ok(200);

    // Deleting leaves a tombstone.
    server.delete(&bob, &one).await.err(403, "forbidden", None);
    server
        .delete(&carol, &one)
        .await
        .err(404, "not_found", None);
    server
        .delete(&alice, &format!("{messages}/{NOTHING}"))
        .await
        .err(404, "not_found", None);
    let tombstone = server.delete(&alice, &one).await.ok(200);
    assert!(tombstone["body"].is_null());
    assert!(!tombstone["deleted_at"].is_null());
    assert_eq!(tombstone["reactions"], json!([]));
    assert_eq!(tombstone["seq"], 1);
    let again = server.delete(&alice, &one).await.ok(200);
    assert_eq!(again["deleted_at"], tombstone["deleted_at"]);
    server
        .patch(&alice, &one, json!({"body": "back"}))
        .await
        .err(404, "not_found", None);
    server
        .put(&bob, &reaction, Some(json!({"kind": "like"})))
        .await
        .err(404, "not_found", None);
    let history = server.get(&bob, &messages).await.ok(200);
    assert_eq!(seqs(&history), [1, 2]);
    assert!(history["items"][0]["body"].is_null());
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let server = start().await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let id = group(&server, &alice, "History", &[]).await;
    let messages = format!("/conversations/{id}/messages");
    for n in 1..=5 {
        send(
            &server,
            &alice,
            &id,
            &format!("m{n}"),
            &format!("message {n}"),
        )
        .await;
    }

    // Everything fits in the default page.
    let all = server.get(&alice, &messages).await.ok(200);
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
    assert_eq!(cursor(&all), None);

    // The latest, then backwards.
    let page = server
        .get(&alice, &format!("{messages}?limit=2"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [4, 5]);
    let before = cursor(&page).expect("older messages");
    assert_eq!(before, "4");
    let page = server
        .get(&alice, &format!("{messages}?limit=2&before={before}"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [2, 3]);
    let before = cursor(&page).expect("older messages");
    let page = server
        .get(&alice, &format!("{messages}?limit=2&before={before}"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1]);
    assert_eq!(cursor(&page), None);

    // Forwards from the start.
    let page = server
        .get(&alice, &format!("{messages}?limit=2&after=0"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1, 2]);
    let after = cursor(&page).expect("newer messages");
    assert_eq!(after, "2");
    let page = server
        .get(&alice, &format!("{messages}?limit=2&after={after}"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [3, 4]);
    let after = cursor(&page).expect("newer messages");
    let page = server
        .get(&alice, &format!("{messages}?limit=2&after={after}"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [5]);
    assert_eq!(cursor(&page), None);
    let page = server
        .get(&alice, &format!("{messages}?after=5"))
        .await
        .ok(200);
    assert!(items(&page).is_empty());
    assert_eq!(cursor(&page), None);

    // Errors.
    server
        .get(&alice, &format!("{messages}?before=3&after=1"))
        .await
        .err(400, "bad_request", None);
    server
        .get(&alice, &format!("{messages}?before=three"))
        .await
        .err(400, "bad_request", None);
    server
        .get(&alice, &format!("{messages}?after=-1"))
        .await
        .err(400, "bad_request", None);
    server
        .get(&alice, &format!("{messages}?limit=0"))
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&bob, &messages)
        .await
        .err(404, "not_found", None);
    server
        .get(&alice, "/conversations/x/messages")
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn read_state_unread_changes_and_the_conversation_list() {
    let server = start().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    let first = group(&server, &alice, "First", &[&bob]).await;
    let second = group(&server, &alice, "Second", &[&bob]).await;
    for n in 1..=3 {
        send(&server, &alice, &first, &format!("f{n}"), "news").await;
    }
    send(&server, &alice, &second, "s1", "more news").await;

    // Unread counts.
    let unread = server.get(&bob, "/unread").await.ok(200);
    assert_eq!(unread["total"], 4);
    assert_eq!(unread["conversations"].as_array().map(Vec::len), Some(2));
    let none = server.get(&carol, "/unread").await.ok(200);
    assert_eq!(none, json!({"total": 0, "conversations": []}));

    // Marking read.
    let read = format!("/conversations/{first}/read");
    let state = server.post(&bob, &read, json!({"seq": 2})).await.ok(200);
    assert_eq!(
        state,
        json!({"conversation_id": first, "last_read_seq": 2, "unread": 1})
    );
    // Read positions only move forward.
    let state = server.post(&bob, &read, json!({"seq": 1})).await.ok(200);
    assert_eq!(state["last_read_seq"], 2);
    server
        .post(&bob, &read, json!({"seq": 99}))
        .await
        .err(422, "invalid_input", Some("seq"));
    server
        .post(&bob, &read, json!({"seq": -1}))
        .await
        .err(400, "bad_request", None);
    server
        .post(&bob, &read, json!({}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(&bob, Method::POST, &read, r#"{"seq":1}"#, None)
        .await
        .err(415, "unsupported_media_type", None);
    server
        .post(&carol, &read, json!({"seq": 1}))
        .await
        .err(404, "not_found", None);
    assert_eq!(server.get(&bob, "/unread").await.ok(200)["total"], 2);

    // Changes since a version.
    let changes = format!("/conversations/{first}/changes");
    let version = server
        .get(&bob, &format!("/conversations/{first}"))
        .await
        .ok(200)["version"]
        .as_u64()
        .expect("a version");
    let all = server
        .get(&bob, &format!("{changes}?since=0"))
        .await
        .ok(200);
    assert_eq!(all["conversation_id"], first.as_str());
    assert_eq!(all["until"], version);
    assert_eq!(all["more"], false);
    let kinds: Vec<&str> = all["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["change"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "message").count(), 3);
    assert_eq!(server.get(&bob, &changes).await.ok(200), all);
    let step = server
        .get(&bob, &format!("{changes}?since=0&limit=1"))
        .await
        .ok(200);
    assert_eq!(step["until"], 1);
    assert_eq!(step["more"], true);
    let rest = server
        .get(&bob, &format!("{changes}?since=1&limit=500"))
        .await
        .ok(200);
    assert_eq!(rest["until"], version);
    assert_eq!(rest["more"], false);
    let up_to_date = server
        .get(&bob, &format!("{changes}?since={version}"))
        .await
        .ok(200);
    assert_eq!(up_to_date["changes"], json!([]));
    server
        .get(&bob, &format!("{changes}?since={}", version + 1))
        .await
        .err(422, "invalid_input", Some("since"));
    server
        .get(&bob, &format!("{changes}?limit=0"))
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&bob, &format!("{changes}?since=abc"))
        .await
        .err(400, "bad_request", None);
    server
        .get(&carol, &changes)
        .await
        .err(404, "not_found", None);

    // The conversation list, most recently active first, with cursors.
    let page = server.get(&bob, "/conversations?limit=1").await.ok(200);
    assert_eq!(items(&page).len(), 1);
    let top = &page["items"][0];
    assert_eq!(top["conversation"]["id"], second.as_str());
    assert_eq!(top["last_message"]["body"], "more news");
    assert_eq!(top["unread"], 1);
    let next = cursor(&page).expect("a second page");
    let page = server
        .get(&bob, &format!("/conversations?limit=1&cursor={next}"))
        .await
        .ok(200);
    assert_eq!(items(&page).len(), 1);
    assert_eq!(page["items"][0]["conversation"]["id"], first.as_str());
    assert_eq!(page["items"][0]["last_read_seq"], 2);
    assert_eq!(cursor(&page), None);
    assert!(items(&server.get(&carol, "/conversations").await.ok(200)).is_empty());
    server
        .get(&bob, "/conversations?limit=0")
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&bob, "/conversations?cursor=abc")
        .await
        .err(422, "invalid_input", Some("cursor"));
    server
        .get(&bob, "/conversations?limit=x")
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn sending_too_fast_is_rate_limited() {
    // Rate limits on (the default): a burst of 20 messages.
    let server = start_with(&[]).await;
    let alice = server.user("alice").await;
    let id = group(&server, &alice, "Alone", &[]).await;
    let path = format!("/conversations/{id}/messages");
    let mut limited = None;
    for n in 0..40 {
        let reply = server
            .post(
                &alice,
                &path,
                json!({"client_id": format!("r{n}"), "body": "spam"}),
            )
            .await;
        if reply.status.as_u16() == 429 {
            limited = Some(reply);
            break;
        }
        reply.ok(201);
    }
    let reply = limited.expect("the burst runs out");
    let retry_after = reply.retry_after.clone().expect("a Retry-After header");
    assert!(retry_after.parse::<u64>().expect("seconds") >= 1);
    reply.err(429, "rate_limited", None);
}

#[tokio::test]
async fn extreme_values_are_answered_cleanly() {
    let server = start().await;
    let [alice] = server.users(["alice"]).await;
    let id = group(&server, &alice, "Edges", &[]).await;
    send(&server, &alice, &id, "e1", "one").await;
    let messages = format!("/conversations/{id}/messages");
    let max = u64::MAX;

    // Ids beyond every real id are unknown; beyond u64 they are malformed.
    for path in [
        format!("/users/{max}"),
        format!("/conversations/{max}"),
        format!("{messages}/{max}/reaction"),
    ] {
        let reply = if path.ends_with("reaction") {
            server
                .put(&alice, &path, Some(json!({"kind": "like"})))
                .await
        } else {
            server.get(&alice, &path).await
        };
        reply.err(404, "not_found", None);
    }
    server
        .get(&alice, "/users/99999999999999999999")
        .await
        .err(400, "bad_request", None);
    server
        .get(&alice, "/conversations/99999999999999999999")
        .await
        .err(400, "bad_request", None);
    server
        .get_anon("/users/by-username/%FF")
        .await
        .err(400, "bad_request", None);
    server
        .get_anon("/users/by-username/%20")
        .await
        .err(404, "not_found", None);

    // Seqs and versions beyond the conversation's.
    let page = server
        .get(&alice, &format!("{messages}?after={max}"))
        .await
        .ok(200);
    assert!(items(&page).is_empty());
    let page = server
        .get(&alice, &format!("{messages}?before={max}"))
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1]);
    server
        .get(&alice, &format!("{messages}?limit=4294967296"))
        .await
        .err(400, "bad_request", None);
    server
        .post(
            &alice,
            &format!("/conversations/{id}/read"),
            json!({"seq": max}),
        )
        .await
        .err(422, "invalid_input", Some("seq"));
    server
        .get(&alice, &format!("/conversations/{id}/changes?since={max}"))
        .await
        .err(422, "invalid_input", Some("since"));
    server
        .get(&alice, &format!("/conversations/{id}/changes?limit=501"))
        .await
        .err(422, "invalid_input", Some("limit"));

    // Routes that exist answer other methods with a JSON 405.
    server
        .get(&alice, "/conversations/direct")
        .await
        .err(405, "method_not_allowed", None);
}
