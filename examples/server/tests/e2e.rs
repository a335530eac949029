//! End to end, over a real server: two users register and log in, become
//! friends, open a direct conversation, chat live over the WebSocket, check
//! and clear their unread counts over REST, and log out; on each backend.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::{Ended, TestServer};
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn two_users_befriend_chat_live_read_and_log_out_on_sqlite() {
    two_users_befriend_chat_live_read_and_log_out(TestServer::start().await).await;
}

#[tokio::test]
async fn two_users_befriend_chat_live_read_and_log_out_on_postgres() {
    let url = kith_postgres::testing::fresh_database_url().await;
    let server = TestServer::with_flags(&["--database-url", &url]).await;
    two_users_befriend_chat_live_read_and_log_out(server).await;
}

async fn two_users_befriend_chat_live_read_and_log_out(mut server: TestServer) {
    // Register and log in.
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    assert_ne!(alice.id, bob.id);
    let me = server.get("/me", &alice.token).await;
    assert_eq!(me.ok(200)["username"], "alice");

    // Befriend: Alice asks, Bob sees the request and accepts.
    let sent = server
        .post("/friend-requests", &alice.token, json!({"user_id": bob.id}))
        .await;
    assert!(sent.status.is_success(), "{}", sent.text);
    assert_eq!(sent.body["outcome"], "pending", "{}", sent.text);
    let incoming = server.get("/friend-requests/incoming", &bob.token).await;
    let incoming = incoming.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(incoming.len(), 1, "{incoming:?}");
    assert_eq!(incoming[0]["user"]["id"], alice.id.as_str());
    let accepted = server
        .call(
            Method::POST,
            &format!("/friend-requests/{}/accept", alice.id),
            Some(&bob.token),
            None,
        )
        .await;
    assert!(accepted.status.is_success(), "{}", accepted.text);
    let friends = server
        .get(&format!("/users/{}/friends", alice.id), &alice.token)
        .await;
    let friends = friends.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(friends.len(), 1);
    assert_eq!(friends[0]["user"]["username"], "bob");

    // The direct conversation: found or created, the same for both.
    let conversation = server.direct(&alice, &bob).await;
    assert_eq!(server.direct(&bob, &alice).await, conversation);

    // Both connect and resume with no known conversations.
    let mut alice_ws = server.connect_resumed(&alice.token).await;
    let mut bob_ws = server.connect_resumed(&bob.token).await;

    // Alice sends; she gets the ack and her own message_created, Bob gets
    // message_created.
    alice_ws
        .send(json!({
            "type": "send",
            "conversation_id": conversation,
            "client_id": "alice-1",
            "body": "Hi Bob!",
        }))
        .await;
    let mut ack = None;
    let mut own = None;
    while ack.is_none() || own.is_none() {
        let frame = alice_ws.next().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message_created") => own = Some(frame),
            Some("error") => panic!("refused: {frame}"),
            _ => {}
        }
    }
    let ack = ack.unwrap();
    assert_eq!(ack["client_id"], "alice-1");
    assert_eq!(ack["conversation_id"], conversation.as_str());
    assert_eq!(ack["seq"], 1);
    let message_id = ack["message_id"].as_str().unwrap().to_owned();
    assert_eq!(own.unwrap()["message"]["id"], message_id.as_str());
    let created = bob_ws.next_of("message_created").await;
    assert_eq!(created["message"]["id"], message_id.as_str());
    assert_eq!(created["message"]["body"], "Hi Bob!");
    assert_eq!(created["message"]["sender"], alice.id.as_str());
    assert_eq!(created["message"]["conversation_id"], conversation.as_str());

    // Bob has one unread message, Alice none (sending marks read).
    let unread = server.get("/unread", &bob.token).await;
    let unread = unread.ok(200);
    assert_eq!(unread["total"], 1, "{unread}");
    assert_eq!(
        unread["conversations"][0]["conversation_id"],
        conversation.as_str()
    );
    assert_eq!(unread["conversations"][0]["unread"], 1);
    assert_eq!(
        server.get("/unread", &alice.token).await.ok(200)["total"],
        0
    );

    // Bob replies over the WebSocket; Alice sees it live.
    bob_ws
        .send(json!({
            "type": "send",
            "conversation_id": conversation,
            "client_id": "bob-1",
            "body": "Hi Alice!",
            "reply_to": message_id,
        }))
        .await;
    assert_eq!(bob_ws.next_of("ack").await["seq"], 2);
    let reply = alice_ws.next_of("message_created").await;
    assert_eq!(reply["message"]["body"], "Hi Alice!");
    assert_eq!(reply["message"]["reply_to"], message_id.as_str());
    assert_eq!(
        server.get("/unread", &alice.token).await.ok(200)["total"],
        1
    );

    // Alice marks the conversation read over REST; Bob is told live.
    let read = server
        .post(
            &format!("/conversations/{conversation}/read"),
            &alice.token,
            json!({"seq": 2}),
        )
        .await;
    assert!(read.status.is_success(), "{}", read.text);
    let unread = server.get("/unread", &alice.token).await;
    assert_eq!(unread.ok(200)["total"], 0, "{}", unread.text);
    let read_updated = bob_ws.next_of("read_updated").await;
    assert_eq!(read_updated["user_id"], alice.id.as_str());
    assert_eq!(read_updated["last_read_seq"], 2);

    // The history has both messages, oldest first.
    let history = server
        .get(
            &format!("/conversations/{conversation}/messages"),
            &bob.token,
        )
        .await;
    let bodies: Vec<_> = history.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["Hi Bob!", "Hi Alice!"]);

    // Alice logs out: her open socket is closed as revoked (4001), and the
    // token is refused over REST and at the WebSocket handshake.
    server
        .call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .ok(204);
    assert_eq!(alice_ws.closed().await, Ended::Close(4001));
    server
        .get("/me", &alice.token)
        .await
        .error(401, "unauthenticated");
    server
        .get("/unread", &alice.token)
        .await
        .error(401, "unauthenticated");
    match tokio_tungstenite::connect_async(server.ws_url(&alice.token)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated");
        }
        Err(other) => panic!("expected a 401 handshake, got {other}"),
        Ok(_) => panic!("a revoked token opened a WebSocket"),
    }
    // Bob is unaffected.
    assert_eq!(
        server.get("/me", &bob.token).await.ok(200)["username"],
        "bob"
    );

    support::assert_no_server_errors(&server).await;
    server.trigger_shutdown();
    assert_eq!(bob_ws.closed().await, Ended::Close(1001));
    server.stopped().await.unwrap();
}
