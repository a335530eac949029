//! REST routes of the `chat` area, through HTTP against a real server: every
//! route's success and the errors it maps.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{cursor, items, TestServer, User};

/// A syntactically valid id that nothing has.
const NOTHING: &str = "4242";

/// Creates a group titled `title` by `admin` with `members`; returns its id.
async fn group(server: &TestServer, admin: &User, title: &str, members: &[&User]) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let created = server
        .post(
            "/conversations",
            &admin.token,
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
    server: &TestServer,
    user: &User,
    conversation: &str,
    client_id: &str,
    body: &str,
) -> Value {
    server
        .post(
            &format!("/conversations/{conversation}/messages"),
            &user.token,
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
    let server = TestServer::unlimited().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;

    // This server limits direct messages to friends.
    server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await
        .err(403, "forbidden", None);
    server.befriend(&alice, &bob).await;
    let direct = server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await
        .ok(200);
    assert_eq!(direct["kind"], "direct");
    assert!(direct["title"].is_null());
    let id = direct["id"].as_str().expect("an id").to_owned();
    // Found, not created again, from either side.
    let again = server
        .post(
            "/conversations/direct",
            &bob.token,
            json!({"user_id": alice.id}),
        )
        .await
        .ok(200);
    assert_eq!(again["id"], id.as_str());

    server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": alice.id}),
        )
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": NOTHING}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post("/conversations/direct", &alice.token, json!({}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            Method::POST,
            "/conversations/direct",
            &alice.token,
            &json!({"user_id": bob.id}).to_string(),
            Some("text/plain"),
        )
        .await
        .err(415, "unsupported_media_type", None);

    // Members only.
    let fetched = server
        .get(&format!("/conversations/{id}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(fetched, direct);
    server
        .get(&format!("/conversations/{id}"), &carol.token)
        .await
        .err(404, "not_found", None);
    server
        .get(&format!("/conversations/{NOTHING}"), &alice.token)
        .await
        .err(404, "not_found", None);
    server
        .get("/conversations/abc", &alice.token)
        .await
        .err(400, "bad_request", None);

    // Direct conversations have no title, no admins, no leaving.
    server
        .patch(
            &format!("/conversations/{id}"),
            &alice.token,
            json!({"title": "x"}),
        )
        .await
        .err(403, "forbidden", None);
    server
        .post_empty(&format!("/conversations/{id}/leave"), &alice.token)
        .await
        .err(403, "forbidden", None);
    server
        .post(
            &format!("/conversations/{id}/members"),
            &alice.token,
            json!({"user_ids": [carol.id]}),
        )
        .await
        .err(403, "forbidden", None);

    // A block stops the conversation for both, each in their own way.
    send(&server, &bob, &id, "b1", "hello").await;
    server
        .put(&format!("/blocks/{}", bob.id), &alice.token, None)
        .await
        .ok(204);
    server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await
        .err(403, "forbidden", None);
    server
        .post(
            "/conversations/direct",
            &bob.token,
            json!({"user_id": alice.id}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post(
            &format!("/conversations/{id}/messages"),
            &alice.token,
            json!({"client_id": "a1", "body": "hi"}),
        )
        .await
        .err(403, "forbidden", None);
    server
        .post(
            &format!("/conversations/{id}/messages"),
            &bob.token,
            json!({"client_id": "b2", "body": "hi?"}),
        )
        .await
        .err(403, "forbidden", None);
}

#[tokio::test]
async fn open_direct_messages_need_no_friendship() {
    let server = TestServer::with_flags(&["--no-rate-limits", "--open-direct-messages"]).await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let direct = server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": bob.id}),
        )
        .await
        .ok(200);
    assert_eq!(direct["kind"], "direct");
}

#[tokio::test]
async fn groups_members_and_roles() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol, dave] = server.users(["alice", "bob", "carol", "dave"]).await;

    // Creating.
    server
        .post(
            "/conversations",
            &alice.token,
            json!({"title": "  ", "members": [bob.id]}),
        )
        .await
        .err(422, "invalid_input", Some("title"));
    server
        .post(
            "/conversations",
            &alice.token,
            json!({"title": "t", "members": [NOTHING]}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post("/conversations", &alice.token, json!({"title": "t"}))
        .await
        .err(400, "bad_request", None);
    server
        .post(
            "/conversations",
            &alice.token,
            json!({"title": "t", "members": "bob"}),
        )
        .await
        .err(400, "bad_request", None);
    let created = server
        .post(
            "/conversations",
            &alice.token,
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
    let members = server
        .get(&format!("{conv}/members"), &bob.token)
        .await
        .ok(200);
    assert_eq!(items(&members).len(), 2);
    assert_eq!(cursor(&members), None);
    let role_of = |page: &Value, user: &User| -> String {
        items(page)
            .iter()
            .find(|m| m["user_id"] == user.id.as_str())
            .map(|m| m["role"].as_str().expect("a role").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(role_of(&members, &alice), "admin");
    assert_eq!(role_of(&members, &bob), "member");
    server
        .get(&format!("{conv}/members"), &carol.token)
        .await
        .err(404, "not_found", None);

    // Renaming is an admin's.
    server
        .patch(&conv, &bob.token, json!({"title": "Mine"}))
        .await
        .err(403, "forbidden", None);
    server
        .patch(&conv, &alice.token, json!({"title": ""}))
        .await
        .err(422, "invalid_input", Some("title"));
    server
        .patch(&conv, &alice.token, json!({"name": "x"}))
        .await
        .err(400, "bad_request", None);
    server
        .patch(&conv, &carol.token, json!({"title": "Ours"}))
        .await
        .err(404, "not_found", None);
    let renamed = server
        .patch(&conv, &alice.token, json!({"title": "Crew"}))
        .await
        .ok(200);
    assert_eq!(renamed["title"], "Crew");
    assert_eq!(server.get(&conv, &bob.token).await.ok(200)["title"], "Crew");

    // Adding is an admin's; members already in are skipped.
    let add = format!("{conv}/members");
    server
        .post(&add, &bob.token, json!({"user_ids": [carol.id]}))
        .await
        .err(403, "forbidden", None);
    server
        .post(&add, &alice.token, json!({"user_ids": [NOTHING]}))
        .await
        .err(404, "not_found", None);
    server
        .post(&add, &alice.token, json!({"user_ids": [1.5]}))
        .await
        .err(400, "bad_request", None);
    let added = server
        .post(&add, &alice.token, json!({"user_ids": [carol.id, bob.id]}))
        .await
        .ok(200);
    assert_eq!(items(&added).len(), 1);
    assert_eq!(added["items"][0]["user_id"], carol.id.as_str());
    assert_eq!(cursor(&added), None);
    let none = server
        .post(&add, &alice.token, json!({"user_ids": [carol.id]}))
        .await
        .ok(200);
    assert!(items(&none).is_empty());
    // Someone who blocks the admin cannot be added; someone the admin blocks
    // neither, with a reason.
    server
        .put(&format!("/blocks/{}", alice.id), &dave.token, None)
        .await
        .ok(204);
    server
        .post(&add, &alice.token, json!({"user_ids": [dave.id]}))
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("/blocks/{}", alice.id), &dave.token)
        .await
        .ok(204);
    server
        .put(&format!("/blocks/{}", dave.id), &alice.token, None)
        .await
        .ok(204);
    server
        .post(&add, &alice.token, json!({"user_ids": [dave.id]}))
        .await
        .err(403, "forbidden", None);
    server
        .post(
            "/conversations",
            &alice.token,
            json!({"title": "t", "members": [dave.id]}),
        )
        .await
        .err(403, "forbidden", None);

    // Roles.
    let role = |user: &User| format!("{conv}/members/{}/role", user.id);
    server
        .put(&role(&carol), &bob.token, Some(json!({"role": "admin"})))
        .await
        .err(403, "forbidden", None);
    server
        .put(&role(&alice), &alice.token, Some(json!({"role": "member"})))
        .await
        .err(422, "invalid_input", Some("role"));
    server
        .put(&role(&bob), &alice.token, Some(json!({"role": "owner"})))
        .await
        .err(400, "bad_request", None);
    server
        .put(&role(&dave), &alice.token, Some(json!({"role": "admin"})))
        .await
        .err(404, "not_found", None);
    server
        .put(
            &format!("{conv}/members/x/role"),
            &alice.token,
            Some(json!({"role": "admin"})),
        )
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            Method::PUT,
            &role(&bob),
            &alice.token,
            r#"{"role":"admin"}"#,
            None,
        )
        .await
        .err(415, "unsupported_media_type", None);
    server
        .put(&role(&bob), &alice.token, Some(json!({"role": "admin"})))
        .await
        .ok(204);
    let members = server
        .get(&format!("{conv}/members"), &carol.token)
        .await
        .ok(200);
    assert_eq!(role_of(&members, &bob), "admin");

    // Removing is an admin's.
    let remove = |user: &User| format!("{conv}/members/{}", user.id);
    server
        .delete(&remove(&bob), &carol.token)
        .await
        .err(403, "forbidden", None);
    server
        .delete(&remove(&dave), &bob.token)
        .await
        .err(404, "not_found", None);
    server.delete(&remove(&carol), &bob.token).await.ok(204);
    server
        .delete(&remove(&carol), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get(&conv, &carol.token)
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("{conv}/members/abc"), &alice.token)
        .await
        .err(400, "bad_request", None);

    // Leaving.
    server
        .post_empty(&format!("{conv}/leave"), &carol.token)
        .await
        .err(404, "not_found", None);
    server
        .post_empty(&format!("/conversations/{NOTHING}/leave"), &alice.token)
        .await
        .err(404, "not_found", None);
    server
        .post_empty(&format!("{conv}/leave"), &alice.token)
        .await
        .ok(204);
    server
        .get(&conv, &alice.token)
        .await
        .err(404, "not_found", None);
    let members = server
        .get(&format!("{conv}/members"), &bob.token)
        .await
        .ok(200);
    assert_eq!(items(&members).len(), 1);
}

#[tokio::test]
async fn messages_send_edit_delete_and_react() {
    let server = TestServer::unlimited().await;
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
            &messages,
            &bob.token,
            json!({"client_id": "b-1", "body": "hi", "reply_to": first["id"]}),
        )
        .await
        .ok(201);
    assert_eq!(reply["seq"], 2);
    assert_eq!(reply["reply_to"], first["id"]);

    // Send errors.
    server
        .post(
            &messages,
            &alice.token,
            json!({"client_id": "m-2", "body": "   "}),
        )
        .await
        .err(422, "invalid_input", Some("body"));
    server
        .post(
            &messages,
            &alice.token,
            json!({"client_id": "", "body": "x"}),
        )
        .await
        .err(422, "invalid_input", Some("client_id"));
    server
        .post(
            &messages,
            &alice.token,
            json!({"client_id": "m-2", "body": "x", "reply_to": NOTHING}),
        )
        .await
        .err(422, "invalid_input", Some("reply_to"));
    server
        .post(
            &format!("/conversations/{other}/messages"),
            &alice.token,
            json!({"client_id": "m-1", "body": "elsewhere"}),
        )
        .await
        .err(409, "conflict", None);
    server
        .post(
            &messages,
            &carol.token,
            json!({"client_id": "c-1", "body": "let me in"}),
        )
        .await
        .err(404, "not_found", None);
    server
        .post(&messages, &alice.token, json!({"body": "no client id"}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            Method::POST,
            &messages,
            &alice.token,
            "not json",
            Some("application/json"),
        )
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            Method::POST,
            &messages,
            &alice.token,
            r#"{"client_id":"m-3","body":"x"}"#,
            None,
        )
        .await
        .err(415, "unsupported_media_type", None);
    let huge = json!({"client_id": "m-4", "body": "x".repeat(70 * 1024)});
    server
        .post(&messages, &alice.token, huge)
        .await
        .err(413, "payload_too_large", None);
    server
        .post(
            "/conversations/zero/messages",
            &alice.token,
            json!({"client_id": "m-5", "body": "x"}),
        )
        .await
        .err(400, "bad_request", None);

    // Editing.
    let first_id = first["id"].as_str().expect("an id").to_owned();
    let one = format!("{messages}/{first_id}");
    server
        .patch(&one, &bob.token, json!({"body": "mine now"}))
        .await
        .err(403, "forbidden", None);
    server
        .patch(&one, &alice.token, json!({"body": ""}))
        .await
        .err(422, "invalid_input", Some("body"));
    server
        .patch(&one, &alice.token, json!({"text": "x"}))
        .await
        .err(400, "bad_request", None);
    server
        .patch(
            &format!("{messages}/{NOTHING}"),
            &alice.token,
            json!({"body": "x"}),
        )
        .await
        .err(404, "not_found", None);
    server
        .patch(&one, &carol.token, json!({"body": "x"}))
        .await
        .err(404, "not_found", None);
    server
        .patch(
            &format!("{messages}/first"),
            &alice.token,
            json!({"body": "x"}),
        )
        .await
        .err(400, "bad_request", None);
    let edited = server
        .patch(&one, &alice.token, json!({"body": "hello, all"}))
        .await
        .ok(200);
    assert_eq!(edited["body"], "hello, all");
    assert!(!edited["edited_at"].is_null());
    assert_eq!(edited["seq"], 1);

    // Reacting.
    let reaction = format!("{one}/reaction");
    let liked = server
        .put(&reaction, &bob.token, Some(json!({"kind": "like"})))
        .await
        .ok(200);
    assert_eq!(
        liked["reactions"],
        json!([{"user_id": bob.id, "kind": "like"}])
    );
    let loved = server
        .put(&reaction, &bob.token, Some(json!({"kind": "love"})))
        .await
        .ok(200);
    assert_eq!(loved["reactions"][0]["kind"], "love");
    server
        .put(&reaction, &bob.token, Some(json!({"kind": "meh"})))
        .await
        .err(400, "bad_request", None);
    server
        .put(&reaction, &carol.token, Some(json!({"kind": "like"})))
        .await
        .err(404, "not_found", None);
    server
        .put(
            &format!("{messages}/{NOTHING}/reaction"),
            &bob.token,
            Some(json!({"kind": "like"})),
        )
        .await
        .err(404, "not_found", None);
    let unliked = server.delete(&reaction, &bob.token).await.ok(200);
    assert_eq!(unliked["reactions"], json!([]));
    server.delete(&reaction, &bob.token).await.ok(200);
    server
        .put(&reaction, &bob.token, Some(json!({"kind": "haha"})))
        .await
        .ok(200);

    // Deleting leaves a tombstone.
    server
        .delete(&one, &bob.token)
        .await
        .err(403, "forbidden", None);
    server
        .delete(&one, &carol.token)
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("{messages}/{NOTHING}"), &alice.token)
        .await
        .err(404, "not_found", None);
    let tombstone = server.delete(&one, &alice.token).await.ok(200);
    assert!(tombstone["body"].is_null());
    assert!(!tombstone["deleted_at"].is_null());
    assert_eq!(tombstone["reactions"], json!([]));
    assert_eq!(tombstone["seq"], 1);
    let again = server.delete(&one, &alice.token).await.ok(200);
    assert_eq!(again["deleted_at"], tombstone["deleted_at"]);
    server
        .patch(&one, &alice.token, json!({"body": "back"}))
        .await
        .err(404, "not_found", None);
    server
        .put(&reaction, &bob.token, Some(json!({"kind": "like"})))
        .await
        .err(404, "not_found", None);
    let history = server.get(&messages, &bob.token).await.ok(200);
    assert_eq!(seqs(&history), [1, 2]);
    assert!(history["items"][0]["body"].is_null());
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let server = TestServer::unlimited().await;
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
    let all = server.get(&messages, &alice.token).await.ok(200);
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
    assert_eq!(cursor(&all), None);

    // The latest, then backwards.
    let page = server
        .get(&format!("{messages}?limit=2"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [4, 5]);
    let before = cursor(&page).expect("older messages");
    assert_eq!(before, "4");
    let page = server
        .get(&format!("{messages}?limit=2&before={before}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [2, 3]);
    let before = cursor(&page).expect("older messages");
    let page = server
        .get(&format!("{messages}?limit=2&before={before}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1]);
    assert_eq!(cursor(&page), None);

    // Forwards from the start.
    let page = server
        .get(&format!("{messages}?limit=2&after=0"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1, 2]);
    let after = cursor(&page).expect("newer messages");
    assert_eq!(after, "2");
    let page = server
        .get(&format!("{messages}?limit=2&after={after}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [3, 4]);
    let after = cursor(&page).expect("newer messages");
    let page = server
        .get(&format!("{messages}?limit=2&after={after}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [5]);
    assert_eq!(cursor(&page), None);
    let page = server
        .get(&format!("{messages}?after=5"), &alice.token)
        .await
        .ok(200);
    assert!(items(&page).is_empty());
    assert_eq!(cursor(&page), None);

    // Errors.
    server
        .get(&format!("{messages}?before=3&after=1"), &alice.token)
        .await
        .err(400, "bad_request", None);
    server
        .get(&format!("{messages}?before=three"), &alice.token)
        .await
        .err(400, "bad_request", None);
    server
        .get(&format!("{messages}?after=-1"), &alice.token)
        .await
        .err(400, "bad_request", None);
    server
        .get(&format!("{messages}?limit=0"), &alice.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&messages, &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get("/conversations/x/messages", &alice.token)
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn read_state_unread_changes_and_the_conversation_list() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    let first = group(&server, &alice, "First", &[&bob]).await;
    let second = group(&server, &alice, "Second", &[&bob]).await;
    for n in 1..=3 {
        send(&server, &alice, &first, &format!("f{n}"), "news").await;
    }
    send(&server, &alice, &second, "s1", "more news").await;

    // Unread counts.
    let unread = server.get("/unread", &bob.token).await.ok(200);
    assert_eq!(unread["total"], 4);
    assert_eq!(unread["conversations"].as_array().map(Vec::len), Some(2));
    let none = server.get("/unread", &carol.token).await.ok(200);
    assert_eq!(none, json!({"total": 0, "conversations": []}));

    // Marking read.
    let read = format!("/conversations/{first}/read");
    let state = server
        .post(&read, &bob.token, json!({"seq": 2}))
        .await
        .ok(200);
    assert_eq!(
        state,
        json!({"conversation_id": first, "last_read_seq": 2, "unread": 1, "changed": true})
    );
    // Read positions only move forward.
    let state = server
        .post(&read, &bob.token, json!({"seq": 1}))
        .await
        .ok(200);
    assert_eq!(state["last_read_seq"], 2);
    assert_eq!(state["changed"], false);
    server
        .post(&read, &bob.token, json!({"seq": 99}))
        .await
        .err(422, "invalid_input", Some("seq"));
    server
        .post(&read, &bob.token, json!({"seq": -1}))
        .await
        .err(400, "bad_request", None);
    server
        .post(&read, &bob.token, json!({}))
        .await
        .err(400, "bad_request", None);
    server
        .raw(Method::POST, &read, &bob.token, r#"{"seq":1}"#, None)
        .await
        .err(415, "unsupported_media_type", None);
    server
        .post(&read, &carol.token, json!({"seq": 1}))
        .await
        .err(404, "not_found", None);
    assert_eq!(server.get("/unread", &bob.token).await.ok(200)["total"], 2);

    // Changes since a version.
    let changes = format!("/conversations/{first}/changes");
    let version = server
        .get(&format!("/conversations/{first}"), &bob.token)
        .await
        .ok(200)["version"]
        .as_u64()
        .expect("a version");
    let all = server
        .get(&format!("{changes}?since=0"), &bob.token)
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
    assert_eq!(server.get(&changes, &bob.token).await.ok(200), all);
    let step = server
        .get(&format!("{changes}?since=0&limit=1"), &bob.token)
        .await
        .ok(200);
    assert_eq!(step["until"], 1);
    assert_eq!(step["more"], true);
    let rest = server
        .get(&format!("{changes}?since=1&limit=500"), &bob.token)
        .await
        .ok(200);
    assert_eq!(rest["until"], version);
    assert_eq!(rest["more"], false);
    let up_to_date = server
        .get(&format!("{changes}?since={version}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(up_to_date["changes"], json!([]));
    server
        .get(&format!("{changes}?since={}", version + 1), &bob.token)
        .await
        .err(422, "invalid_input", Some("since"));
    server
        .get(&format!("{changes}?limit=0"), &bob.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&format!("{changes}?since=abc"), &bob.token)
        .await
        .err(400, "bad_request", None);
    server
        .get(&changes, &carol.token)
        .await
        .err(404, "not_found", None);

    // The conversation list, most recently active first, with cursors.
    let page = server
        .get("/conversations?limit=1", &bob.token)
        .await
        .ok(200);
    assert_eq!(items(&page).len(), 1);
    let top = &page["items"][0];
    assert_eq!(top["conversation"]["id"], second.as_str());
    assert_eq!(top["last_message"]["body"], "more news");
    assert_eq!(top["unread"], 1);
    let next = cursor(&page).expect("a second page");
    let page = server
        .get(&format!("/conversations?limit=1&cursor={next}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(items(&page).len(), 1);
    assert_eq!(page["items"][0]["conversation"]["id"], first.as_str());
    assert_eq!(page["items"][0]["last_read_seq"], 2);
    assert_eq!(cursor(&page), None);
    assert!(items(&server.get("/conversations", &carol.token).await.ok(200)).is_empty());
    server
        .get("/conversations?limit=0", &bob.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get("/conversations?cursor=abc", &bob.token)
        .await
        .err(422, "invalid_input", Some("cursor"));
    server
        .get("/conversations?limit=x", &bob.token)
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn sending_too_fast_is_rate_limited() {
    // Rate limits on (the default): a burst of 20 messages.
    let server = TestServer::with_flags(&[]).await;
    let alice = server.user("alice").await;
    let id = group(&server, &alice, "Alone", &[]).await;
    let path = format!("/conversations/{id}/messages");
    let mut limited = None;
    for n in 0..40 {
        let reply = server
            .post(
                &path,
                &alice.token,
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
    let retry_after = reply.retry_after().expect("a Retry-After header");
    assert!(retry_after.parse::<u64>().expect("seconds") >= 1);
    reply.err(429, "rate_limited", None);
}

#[tokio::test]
async fn extreme_values_are_answered_cleanly() {
    let server = TestServer::unlimited().await;
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
                .put(&path, &alice.token, Some(json!({"kind": "like"})))
                .await
        } else {
            server.get(&path, &alice.token).await
        };
        reply.err(404, "not_found", None);
    }
    server
        .get("/users/99999999999999999999", &alice.token)
        .await
        .err(400, "bad_request", None);
    server
        .get("/conversations/99999999999999999999", &alice.token)
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
        .get(&format!("{messages}?after={max}"), &alice.token)
        .await
        .ok(200);
    assert!(items(&page).is_empty());
    let page = server
        .get(&format!("{messages}?before={max}"), &alice.token)
        .await
        .ok(200);
    assert_eq!(seqs(&page), [1]);
    server
        .get(&format!("{messages}?limit=4294967296"), &alice.token)
        .await
        .err(400, "bad_request", None);
    server
        .post(
            &format!("/conversations/{id}/read"),
            &alice.token,
            json!({"seq": max}),
        )
        .await
        .err(422, "invalid_input", Some("seq"));
    server
        .get(
            &format!("/conversations/{id}/changes?since={max}"),
            &alice.token,
        )
        .await
        .err(422, "invalid_input", Some("since"));
    server
        .get(
            &format!("/conversations/{id}/changes?limit=501"),
            &alice.token,
        )
        .await
        .err(422, "invalid_input", Some("limit"));

    // Routes that exist answer other methods with a JSON 405.
    server
        .get("/conversations/direct", &alice.token)
        .await
        .err(405, "method_not_allowed", None);
}

#[tokio::test]
async fn repeated_reactions_and_deletes_answer_the_current_message() {
    let server = TestServer::unlimited().await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let id = group(&server, &alice, "Again", &[&bob]).await;
    let sent = send(&server, &alice, &id, "a1", "hello").await;
    let one = format!(
        "/conversations/{id}/messages/{}",
        sent["id"].as_str().unwrap()
    );
    let reaction = format!("{one}/reaction");

    // Nothing to remove yet: the message as it is.
    let none = server.delete(&reaction, &bob.token).await.ok(200);
    assert_eq!(none, sent);
    // The same kind twice: the same message.
    let liked = server
        .put(&reaction, &bob.token, Some(json!({"kind": "like"})))
        .await
        .ok(200);
    assert_eq!(
        liked["reactions"],
        json!([{"user_id": bob.id, "kind": "like"}])
    );
    let again = server
        .put(&reaction, &bob.token, Some(json!({"kind": "like"})))
        .await
        .ok(200);
    assert_eq!(again, liked);
    // Removed, then removed again.
    let unliked = server.delete(&reaction, &bob.token).await.ok(200);
    assert_eq!(unliked["reactions"], json!([]));
    let still = server.delete(&reaction, &bob.token).await.ok(200);
    assert_eq!(still, unliked);
    // Deleted, then deleted again: the same tombstone.
    let tombstone = server.delete(&one, &alice.token).await.ok(200);
    assert!(tombstone["body"].is_null(), "{tombstone}");
    let twice = server.delete(&one, &alice.token).await.ok(200);
    assert_eq!(twice, tombstone);
}
