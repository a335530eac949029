//! End-to-end tests of the WebSocket transport: a real axum server and real
//! tokio-tungstenite clients (see `common`), plus one test of the socket
//! loop over in-memory channels with paused time.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{send, ty, within, Client, Server, Setup, User};
use futures::StreamExt;
use kith_core::{ConversationId, Denied, Error, Rate};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;

/// The `message` of a `message_created` frame or of a `change` frame.
fn message_of(frame: &Value) -> &Value {
    match ty(frame) {
        "change" => &frame["change"]["message"],
        _ => &frame["message"],
    }
}

fn seq(frame: &Value) -> u64 {
    message_of(frame)["seq"].as_u64().unwrap()
}

fn version(frame: &Value) -> u64 {
    message_of(frame)["version"].as_u64().unwrap()
}

/// Reads frames until `n` `message_created` frames have arrived; returns
/// every frame read.
async fn read_messages(client: &mut Client, n: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut created = 0;
    while created < n {
        let frame = client.next().await;
        created += usize::from(ty(&frame) == "message_created");
        frames.push(frame);
    }
    frames
}

/// Asserts that `seqs` holds every seq from 1 to `n` exactly once.
fn assert_exactly_once(mut seqs: Vec<u64>, n: u64) {
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=n).collect();
    assert_eq!(seqs, expected, "every message exactly once");
}

/// Sends a message over the socket; returns the `message_created` frame and
/// the `ack` the sender gets, in that order.
async fn send_and_ack(
    client: &mut Client,
    conversation: ConversationId,
    id: &str,
    body: &str,
) -> (Value, Value) {
    client.send(send(conversation, id, body)).await;
    let created = client.expect("message_created").await;
    let ack = client.expect("ack").await;
    assert_eq!(ack["client_id"], id);
    assert_eq!(ack["message_id"], created["message"]["id"]);
    assert_eq!(ack["seq"], created["message"]["seq"]);
    assert_eq!(ack["version"], created["message"]["version"]);
    (created, ack)
}

/// `reader` marks `conversation` read up to `seq`: both sides get the
/// receipt, and the reader's unread count drops to zero.
async fn read_with_receipt(
    reader: &mut Client,
    other: &mut Client,
    conversation: ConversationId,
    who: &User,
    seq: u64,
) {
    reader
        .send(json!({ "type": "read", "conversation_id": conversation, "seq": seq }))
        .await;
    let receipt = json!({
        "type": "read_updated",
        "conversation_id": conversation,
        "user_id": who.id,
        "last_read_seq": seq,
    });
    assert_eq!(reader.expect("read_updated").await, receipt);
    let unread = reader.expect("unread").await;
    assert_eq!(
        unread,
        json!({ "type": "unread", "total": 0, "conversations": [] })
    );
    reader.done(None, true).await;
    assert_eq!(other.expect("read_updated").await, receipt);
}

#[tokio::test]
async fn friends_chat_with_acks_seqs_and_read_receipts() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;

    let (created, ack) = send_and_ack(&mut a, conv, "a-1", "hi bob").await;
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["conversation_id"], json!(conv));
    assert_eq!(created["message"]["body"], "hi bob");
    assert_eq!(created["message"]["sender"], json!(alice.id));
    assert_eq!(b.expect("message_created").await, created);
    read_with_receipt(&mut b, &mut a, conv, &bob, 1).await;

    // Sending moves one's own read position silently: Alice reads Bob's reply.
    let (created, ack) = send_and_ack(&mut b, conv, "b-1", "hi alice").await;
    assert_eq!(ack["seq"], 2);
    assert_eq!(a.expect("message_created").await, created);
    read_with_receipt(&mut a, &mut b, conv, &alice, 2).await;
    a.assert_quiet().await;
    b.assert_quiet().await;

    // Carol is nobody's friend: core will not open a direct conversation, and
    // she cannot write into Alice and Bob's.
    let carol = s.user("carol").await;
    let refused = s
        .kith
        .chat()
        .open_direct(carol.id, alice.id)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Forbidden(Denied::NotFriends)),
        "{refused:?}"
    );
    let mut c = s.join(&carol.token).await;
    c.send(send(conv, "c-1", "let me in")).await;
    let error = c.expect("error").await;
    assert_eq!(error["code"], "not_found");
    assert_eq!(error["client_id"], "c-1");
    c.assert_quiet().await;
    a.assert_quiet().await;
    b.assert_quiet().await;
    let stored = s.history(&alice, conv).await;
    let bodies: Vec<_> = stored.iter().map(|m| m.body.as_deref().unwrap()).collect();
    assert_eq!(bodies, ["hi bob", "hi alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_group_of_fifty_gets_every_message_once_in_order() {
    const MEMBERS: usize = 50;
    const SENDERS: usize = 5;
    const EACH: usize = 4;
    const TOTAL: usize = SENDERS * EACH;
    let s = Server::start().await;
    let mut users = Vec::new();
    for i in 0..MEMBERS {
        users.push(s.user(&format!("member{i:02}")).await);
    }
    let others: Vec<&User> = users[1..].iter().collect();
    let conv = s.group(&users[0], &others).await;
    let mut clients = futures::future::join_all(users.iter().map(|u| s.join(&u.token))).await;

    // Several senders at once, each sending its messages back to back.
    for round in 0..EACH {
        for (i, client) in clients.iter_mut().take(SENDERS).enumerate() {
            let id = format!("s{i}-{round}");
            client.send(send(conv, &id, &format!("message {id}"))).await;
        }
    }
    let received = futures::future::join_all(clients.iter_mut().map(|c| async move {
        let mut frames = read_messages(c, TOTAL).await;
        frames.extend(c.until_pong().await);
        frames
    }))
    .await;

    let reference: Vec<Value> = received[SENDERS]
        .iter()
        .filter(|f| ty(f) == "message_created")
        .cloned()
        .collect();
    let seqs: Vec<u64> = reference.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (1..=TOTAL as u64).collect::<Vec<_>>(),
        "in seq order, once each"
    );
    for (i, frames) in received.iter().enumerate() {
        let created: Vec<&Value> = frames
            .iter()
            .filter(|f| ty(f) == "message_created")
            .collect();
        assert_eq!(created.len(), TOTAL, "member {i}: {frames:?}");
        for (got, want) in created.iter().zip(&reference) {
            assert_eq!(
                *got, want,
                "member {i} sees the same messages in the same order"
            );
        }
        let acks: Vec<&Value> = frames.iter().filter(|f| ty(f) == "ack").collect();
        let others = frames.len() - created.len() - acks.len();
        assert_eq!(others, 0, "member {i}: {frames:?}");
        if i < SENDERS {
            let ids: Vec<&str> = acks
                .iter()
                .map(|a| a["client_id"].as_str().unwrap())
                .collect();
            let expected: Vec<String> = (0..EACH).map(|r| format!("s{i}-{r}")).collect();
            assert_eq!(
                ids, expected,
                "sender {i} gets an ack for each of its messages, in order"
            );
            for ack in acks {
                let mine = reference
                    .iter()
                    .find(|m| m["message"]["id"] == ack["message_id"])
                    .unwrap();
                assert_eq!(mine["message"]["seq"], ack["seq"]);
                assert_eq!(mine["message"]["client_id"], ack["client_id"]);
            }
        } else {
            assert!(acks.is_empty(), "member {i} sent nothing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_written_back_to_back_are_stored_and_acked_in_their_order() {
    const N: usize = 20;
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let conv = s.group(&alice, &[&bob]).await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;
    // Written without waiting for answers: Kith has many of them in flight.
    for i in 0..N {
        if i == 7 {
            a.send(send(conv, "blank", "   ")).await;
        }
        a.send(send(conv, &format!("m{i}"), &format!("message {i}")))
            .await;
    }
    // A `read` after the sends waits for them: seq N exists by then.
    a.send(json!({ "type": "read", "conversation_id": conv, "seq": N }))
        .await;
    let mut frames = Vec::new();
    while frames.last().is_none_or(|f| ty(f) != "done") {
        frames.push(a.next().await);
    }
    // Sending already moved Alice's read position to her own message.
    assert_eq!(frames.pop().unwrap()["changed"], false);
    let acks: Vec<&Value> = frames.iter().filter(|f| ty(f) == "ack").collect();
    let ids: Vec<&str> = acks
        .iter()
        .map(|f| f["client_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, expected, "acks in the order of the sends");
    let acked: Vec<u64> = acks.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(acked, (1..=N as u64).collect::<Vec<_>>());
    let errors: Vec<&Value> = frames.iter().filter(|f| ty(f) == "error").collect();
    assert_eq!(errors.len(), 1, "{frames:?}");
    assert_eq!(
        (&errors[0]["code"], &errors[0]["client_id"]),
        (&json!("invalid_input"), &json!("blank"))
    );
    let unread = frames.last().unwrap();
    assert_eq!(unread["total"], 0);

    let created: Vec<Value> = read_messages(&mut b, N)
        .await
        .into_iter()
        .filter(|f| ty(f) == "message_created")
        .collect();
    let bodies: Vec<&str> = created
        .iter()
        .map(|f| message_of(f)["body"].as_str().unwrap())
        .collect();
    let sent: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
    assert_eq!(bodies, sent, "stored in the order they were written");
    assert_eq!(
        created.iter().map(seq).collect::<Vec<_>>(),
        (1..=N as u64).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_in_flight_when_the_sender_closes_are_still_stored_and_published() {
    const N: usize = 15;
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let conv = s.group(&alice, &[&bob]).await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;
    for i in 0..N {
        a.send(send(conv, &format!("m{i}"), &format!("message {i}")))
            .await;
    }
    // Gone without waiting for a single ack.
    a.send_raw(Message::Close(None)).await;
    let created: Vec<Value> = read_messages(&mut b, N)
        .await
        .into_iter()
        .filter(|f| ty(f) == "message_created")
        .collect();
    assert_eq!(
        created.iter().map(seq).collect::<Vec<_>>(),
        (1..=N as u64).collect::<Vec<_>>()
    );
    assert_eq!(s.history(&bob, conv).await.len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_and_catches_up_by_resuming() {
    let mut setup = Setup::default();
    setup.ws.hub.queue_len = 16;
    setup.send_buffer = Some(16 * 1024);
    let s = Server::with(setup).await;
    let sender = s.user("sender").await;
    let fast: Vec<User> = vec![s.user("fast1").await, s.user("fast2").await];
    let slowpoke = s.user("slowpoke").await;
    let conv = s.group(&sender, &[&fast[0], &fast[1], &slowpoke]).await;

    let mut slow = s.connect_tiny_buffer(&slowpoke.token).await;
    slow.start().await;
    // From here on the slow client reads nothing.
    let readers: Vec<_> = {
        let mut handles = Vec::new();
        for user in &fast {
            let mut client = s.join(&user.token).await;
            handles.push(tokio::spawn(async move {
                let mut frames = Vec::new();
                loop {
                    let frame = client.next().await;
                    let last =
                        ty(&frame) == "message_created" && frame["message"]["client_id"] == "last";
                    frames.push(frame);
                    if last {
                        break;
                    }
                }
                frames.extend(client.until_pong().await);
                frames
            }));
        }
        handles
    };
    let mut a = s.join(&sender.token).await;

    let body = "x".repeat(3_500);
    let slow_disconnects = || {
        s.hub()
            .stats()
            .slow_consumer_disconnects
            .load(Ordering::Relaxed)
    };
    let mut sent = 0u64;
    let mut after_disconnect = 0;
    while after_disconnect < 5 {
        sent += 1;
        assert!(sent < 5_000, "the slow client was never disconnected");
        send_and_ack(&mut a, conv, &format!("m{sent}"), &body).await;
        if slow_disconnects() > 0 {
            after_disconnect += 1;
        }
    }
    sent += 1;
    send_and_ack(&mut a, conv, "last", "the end").await;
    assert_eq!(slow_disconnects(), 1);

    for reader in readers {
        let frames = within("a fast reader", reader).await.unwrap();
        assert!(
            frames.iter().all(|f| ty(f) == "message_created"),
            "only messages"
        );
        assert_exactly_once(frames.iter().map(seq).collect(), sent);
    }

    // The slow client now reads what reached it, then finds the socket closed.
    let ending = slow.ending().await;
    assert!(
        ending.code.is_none() || ending.code == Some(4008),
        "closed with {:?}",
        ending.code
    );
    let live: Vec<&Value> = ending
        .frames
        .iter()
        .filter(|f| ty(f) == "message_created")
        .collect();
    assert!(
        (live.len() as u64) < sent,
        "it missed messages while stalled"
    );
    let last_seen = live.iter().map(|f| version(f)).max().unwrap_or(0);

    let mut again = s.connect(&slowpoke.token).await;
    let replay = again.catch_up(json!({ conv.to_string(): last_seen })).await;
    assert_eq!(replay.failed, json!({}), "{replay:?}");
    again.assert_quiet().await;
    let seqs = live
        .iter()
        .map(|f| seq(f))
        .chain(replay.changes.iter().map(seq))
        .collect();
    assert_exactly_once(seqs, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_in_the_middle_of_a_stream_loses_and_repeats_nothing() {
    const TOTAL: u64 = 200;
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut b = s.join(&bob.token).await;

    // The sender stops after 60 messages until Bob, having read 30 of them,
    // has dropped his connection; the other 140 race with his resume.
    let (halfway, dropped) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
    let sender = async {
        for i in 1..=TOTAL {
            if i == 61 {
                halfway.notify_one();
                dropped.notified().await;
            }
            s.post(&alice, conv, &format!("m{i}")).await;
        }
    };
    let reader = async {
        let first = read_messages(&mut b, 30).await;
        assert!(first.iter().all(|f| ty(f) == "message_created"));
        let last_seen = first.iter().map(version).max().unwrap();
        halfway.notified().await;
        drop(b);
        dropped.notify_one();

        let mut b = s.connect(&bob.token).await;
        let replay = b.catch_up(json!({ conv.to_string(): last_seen })).await;
        assert_eq!(replay.failed, json!({}), "{replay:?}");
        assert!(replay.changes.len() >= 30, "what Bob missed is replayed");
        let mut seqs: Vec<u64> = first.iter().chain(&replay.changes).map(seq).collect();
        while !seqs.contains(&TOTAL) {
            let frame = b.expect("message_created").await;
            seqs.push(seq(&frame));
        }
        b.assert_quiet().await;
        seqs
    };
    let ((), seqs) = tokio::join!(sender, reader);
    assert_exactly_once(seqs, TOTAL);
}

#[tokio::test]
async fn typing_is_relayed_once_to_the_others_and_can_be_switched_off() {
    for enabled in [true, false] {
        let mut setup = Setup::default();
        setup.ws.typing = enabled;
        setup.ws.typing_ttl = Duration::from_secs(7);
        // Long enough that the two typing frames below always fall within it.
        setup.ws.typing_interval = Duration::from_secs(600);
        let s = Server::with(setup).await;
        let (alice, bob, conv) = s.alice_and_bob().await;
        let mut a = s.join(&alice.token).await;
        let mut b = s.join(&bob.token).await;

        let typing = json!({ "type": "typing", "conversation_id": conv });
        a.send(typing.clone()).await;
        // Answered `done`: changed when relayed, not when coalesced or off.
        a.done(None, enabled).await;
        a.send(typing).await;
        a.done(None, false).await;
        let (created, _) = send_and_ack(&mut a, conv, "a-1", "hello").await;
        a.assert_quiet().await;
        if enabled {
            let relayed = b.expect("typing").await;
            assert_eq!(
                relayed,
                json!({ "type": "typing", "conversation_id": conv, "user_id": alice.id, "expires_in_ms": 7000 })
            );
        }
        assert_eq!(b.expect("message_created").await, created);
        b.assert_quiet().await;
    }
}

#[tokio::test]
async fn friends_see_presence_from_the_first_connection_to_the_last() {
    let mut setup = Setup::default();
    setup.ws.presence = true;
    let s = Server::with(setup).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    s.befriend(&alice, &bob).await;
    let mut b = s.join(&bob.token).await;
    let mut c = s.join(&carol.token).await;

    let mut phone = s.join(&alice.token).await;
    assert_eq!(
        b.expect("presence").await,
        json!({ "type": "presence", "user_id": alice.id, "online": true })
    );
    let mut laptop = s.join(&s.session(alice.id).await).await;
    b.assert_quiet().await;

    phone.socket().close(None).await.unwrap();
    s.connections_become(3).await;
    b.assert_quiet().await;
    laptop.socket().close(None).await.unwrap();
    let offline = b.expect("presence").await;
    assert_eq!(offline["user_id"], json!(alice.id));
    assert_eq!(offline["online"], false);
    let last_seen: kith_core::Timestamp =
        serde_json::from_value(offline["last_seen"].clone()).unwrap();
    assert!(last_seen <= s.kith.now());
    b.assert_quiet().await;
    // Carol is not Alice's friend and heard nothing.
    c.assert_quiet().await;
}

#[tokio::test]
async fn presence_can_be_switched_off() {
    let s = Server::start().await;
    let (alice, bob, _) = s.alice_and_bob().await;
    let mut b = s.join(&bob.token).await;
    let mut a = s.join(&alice.token).await;
    b.assert_quiet().await;
    a.socket().close(None).await.unwrap();
    s.connections_become(1).await;
    b.assert_quiet().await;
}

#[tokio::test]
async fn every_device_of_a_user_gets_every_message() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut phone = s.join(&alice.token).await;
    let mut laptop = s.join(&s.session(alice.id).await).await;
    let mut b = s.join(&bob.token).await;

    let (created, _) = send_and_ack(&mut phone, conv, "a-1", "from my phone").await;
    assert_eq!(laptop.expect("message_created").await, created);
    assert_eq!(b.expect("message_created").await, created);
    let (created, _) = send_and_ack(&mut b, conv, "b-1", "hi both").await;
    assert_eq!(phone.expect("message_created").await, created);
    assert_eq!(laptop.expect("message_created").await, created);
    for client in [&mut phone, &mut laptop, &mut b] {
        client.assert_quiet().await;
    }
}

#[tokio::test]
async fn the_handshake_requires_a_valid_token_in_a_header_the_query_or_the_subprotocol() {
    let s = Server::start().await;
    let alice = s.user("alice").await;

    let refused = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a connection"),
    };
    let no_token = within("a refusal", tokio_tungstenite::connect_async(s.url())).await;
    assert_eq!(refused(no_token), StatusCode::UNAUTHORIZED);
    for bad in ["nope", &"0".repeat(64)] {
        let attempt = within(
            "a refusal",
            tokio_tungstenite::connect_async(s.request(bad)),
        )
        .await;
        assert_eq!(refused(attempt), StatusCode::UNAUTHORIZED);
    }

    // In the Authorization header.
    let mut client = s.join(&alice.token).await;
    client.assert_quiet().await;
    // In the query.
    let url = format!("{}?access_token={}", s.url(), alice.token);
    let (mut client, _) = s.open(url.into_client_request().unwrap()).await;
    client.start().await;
    // As a subprotocol, for browsers; the server picks `kith.v1`.
    let mut request = s.url().into_client_request().unwrap();
    let protocols = HeaderValue::from_str(&format!("kith.v1, kith.token.{}", alice.token)).unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols);
    let (mut client, response) = s.open(request).await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "kith.v1");
    client.start().await;
}

#[tokio::test]
async fn logging_out_closes_that_sessions_connections_only() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let other_token = s.session(alice.id).await;
    let mut revoked = s.join(&alice.token).await;
    let mut kept = s.join(&other_token).await;

    s.kith.accounts().logout(&alice.token).await.unwrap();
    let frames = revoked.closed_with(4001).await;
    let told: Vec<&Value> = frames
        .iter()
        .filter(|f| ty(f) == "sessions_revoked")
        .collect();
    assert_eq!(told.len(), 1, "told why before the close: {frames:?}");
    assert_eq!(kept.expect("sessions_revoked").await, *told[0]);
    kept.assert_quiet().await;
    let again = within(
        "a refusal",
        tokio_tungstenite::connect_async(s.request(&alice.token)),
    )
    .await;
    assert!(
        matches!(again, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_an_error_and_changes_nothing() {
    let mut setup = Setup::default();
    setup.core.max_message_chars = 100;
    setup.core.send_rate = Some(Rate::per_second(2, 1));
    setup.ws.max_frame_bytes = 1024;
    let s = Server::with(setup).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let conv = s.direct(&alice, &bob).await;
    let theirs = s.direct(&bob, &carol).await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;

    async fn refused(a: &mut Client, frame: Message, code: &str, client_id: Option<&str>) -> Value {
        a.send_raw(frame).await;
        let error = a.expect("error").await;
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(error["client_id"].as_str(), client_id, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        // Still connected, and nothing else happened.
        a.assert_quiet().await;
        error
    }
    let text = |v: Value| Message::text(v.to_string());
    refused(&mut a, Message::text("{not json"), "invalid_frame", None).await;
    refused(
        &mut a,
        text(json!({ "type": "shout", "client_id": "x-1" })),
        "invalid_frame",
        Some("x-1"),
    )
    .await;
    refused(
        &mut a,
        Message::binary(vec![1u8, 2, 3]),
        "invalid_frame",
        None,
    )
    .await;
    let huge = send(conv, "x-2", &"y".repeat(2_000));
    refused(&mut a, text(huge), "too_large", Some("x-2")).await;
    let long = send(conv, "x-3", &"y".repeat(101));
    refused(&mut a, text(long), "invalid_input", Some("x-3")).await;
    refused(
        &mut a,
        text(send(theirs, "x-4", "hi")),
        "not_found",
        Some("x-4"),
    )
    .await;
    let resume = json!({ "type": "resume", "conversations": {} });
    refused(&mut a, text(resume), "resume_not_first", None).await;

    // The send rate: a burst of two, then a refusal that says when to retry.
    send_and_ack(&mut a, conv, "ok-1", "one").await;
    send_and_ack(&mut a, conv, "ok-2", "two").await;
    let limited = refused(
        &mut a,
        text(send(conv, "ok-3", "three")),
        "rate_limited",
        Some("ok-3"),
    )
    .await;
    let retry = limited["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 1000, "{limited}");

    let stored = s.history(&alice, conv).await;
    let ids: Vec<&str> = stored.iter().map(|m| m.client_id.as_str()).collect();
    assert_eq!(ids, ["ok-1", "ok-2"]);
    assert!(s.history(&bob, theirs).await.is_empty());
    let seen: Vec<u64> = b.until_pong().await.iter().map(seq).collect();
    assert_eq!(seen, [1, 2], "Bob saw the two accepted messages only");
}

#[tokio::test]
async fn sustained_abuse_and_oversized_frames_close_the_connection() {
    let mut setup = Setup::default();
    setup.ws.abuse_limit = 5;
    setup.ws.abuse_window = Duration::from_secs(600);
    setup.ws.max_frame_bytes = 1024;
    setup.ws.hard_max_frame_bytes = 8 * 1024;
    let s = Server::with(setup).await;
    let alice = s.user("alice").await;

    let mut a = s.join(&alice.token).await;
    for _ in 0..5 {
        a.send_raw(Message::text("garbage")).await;
        a.expect("error").await;
    }
    a.assert_quiet().await;
    a.send_raw(Message::text("garbage")).await;
    let frames = a.closed_with(1008).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["code"], "invalid_frame");

    let mut a = s.join(&alice.token).await;
    a.send_raw(Message::text("z".repeat(10 * 1024))).await;
    assert!(a.closed_with(1009).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_readers_connected_and_idle_clients_are_closed() {
    let mut setup = Setup::default();
    setup.ws.ping_interval = Duration::from_millis(100);
    setup.ws.idle_timeout = Duration::from_millis(400);
    let s = Server::with(setup).await;
    let reader = s.user("reader").await;
    let sleeper = s.user("sleeper").await;
    let mut r = s.join(&reader.token).await;
    let mut idle = s.join(&sleeper.token).await;

    // The reader only reads: tungstenite answers the server's pings.
    let until = tokio::time::Instant::now() + Duration::from_millis(1_200);
    let mut pings = 0;
    while let Ok(message) = tokio::time::timeout_at(until, r.socket().next()).await {
        match message {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("the reader got {other:?}"),
        }
    }
    assert!(pings > 0, "the server pings");
    r.assert_quiet().await;
    assert!(s.hub().is_online(reader.id));

    // The sleeper read nothing since its handshake, so never answered a ping.
    let hub = s.hub().clone();
    common::eventually("the idle client to be closed", || {
        !hub.is_online(sleeper.id)
    })
    .await;
    // Reading now, tungstenite answers the queued pings, which may break the
    // already closed socket before the close frame is read: either ending is
    // fine here (the close code is checked exactly over channels, below).
    let ending = idle.ending().await;
    assert!(
        matches!(ending.code, None | Some(4002)),
        "closed with {:?}",
        ending.code
    );
}

#[tokio::test]
async fn shutdown_closes_every_client_with_going_away() {
    let s = Server::start().await;
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let user = s.user(name).await;
        clients.push(s.join(&user.token).await);
    }
    clients.push(s.connect(&s.user("dave").await.token).await);
    assert_eq!(s.ws.shutdown(Duration::from_secs(2)).await, 0);
    for client in &mut clients {
        client.closed_with(1001).await;
    }
    assert_eq!(s.hub().stats().connections.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn resume_replays_edits_deletes_and_reactions_made_while_away() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        let (created, _) =
            send_and_ack(&mut a, conv, &format!("m{i}"), &format!("message {i}")).await;
        ids.push(created["message"]["id"].clone());
        assert_eq!(b.expect("message_created").await, created);
    }
    let seen = s
        .kith
        .chat()
        .conversation(bob.id, conv)
        .await
        .unwrap()
        .version;
    b.socket().close(None).await.unwrap();
    s.connections_become(1).await;

    a.send(json!({ "type": "edit", "conversation_id": conv, "message_id": ids[0], "body": "message 1, edited" })).await;
    a.expect("message_edited").await;
    a.done(None, true).await;
    a.send(json!({ "type": "delete", "conversation_id": conv, "message_id": ids[1] }))
        .await;
    a.expect("message_deleted").await;
    a.done(None, true).await;
    a.send(
        json!({ "type": "react", "conversation_id": conv, "message_id": ids[2], "kind": "love" }),
    )
    .await;
    a.expect("reaction_changed").await;
    a.done(None, true).await;
    send_and_ack(&mut a, conv, "m4", "message 4").await;
    a.assert_quiet().await;

    let mut b = s.connect(&bob.token).await;
    let replay = b.catch_up(json!({ conv.to_string(): seen })).await;
    assert_eq!(replay.failed, json!({}), "{replay:?}");
    for frame in &replay.changes {
        assert_eq!(frame["conversation_id"], json!(conv));
        assert_eq!(frame["change"]["change"], "message");
    }
    let changes: Vec<&Value> = replay.changes.iter().map(message_of).collect();
    let versions: Vec<u64> = replay.changes.iter().map(version).collect();
    assert_eq!(versions, (seen + 1..=seen + 4).collect::<Vec<_>>());
    assert_eq!(changes[0]["id"], ids[0]);
    assert_eq!(changes[0]["body"], "message 1, edited");
    assert!(changes[0]["edited_at"].is_string());
    assert_eq!(changes[1]["id"], ids[1]);
    assert!(changes[1]["body"].is_null());
    assert!(changes[1]["deleted_at"].is_string());
    assert_eq!(changes[2]["id"], ids[2]);
    assert_eq!(
        changes[2]["reactions"],
        json!([{ "user_id": alice.id, "kind": "love" }])
    );
    assert_eq!(changes[3]["seq"], 4);
    assert_eq!(changes[3]["body"], "message 4");
    let now = seen + 4;
    assert_eq!(replay.reached, json!({ conv.to_string(): now }));
    assert_eq!(replay.unread["total"], 4);

    let (created, _) = send_and_ack(&mut a, conv, "m5", "message 5").await;
    assert_eq!(b.expect("message_created").await, created);
    assert_eq!(version(&created), now + 1);
    b.assert_quiet().await;
}

#[tokio::test]
async fn conversation_frames_wait_for_the_first_client_frame() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let carol = s.user("carol").await;
    let elsewhere = s.direct(&alice, &carol).await;

    // A fresh start: the held message follows the handshake.
    let mut b = s.connect(&bob.token).await;
    let m1 = s.post(&alice, conv, "m1").await;
    b.resume(json!({})).await;
    assert_eq!(
        b.expect("resume_complete").await["conversations"],
        json!({})
    );
    assert_eq!(b.expect("unread").await["total"], 1);
    assert_eq!(
        b.expect("message_created").await["message"]["id"],
        json!(m1.id)
    );
    b.assert_quiet().await;
    drop(b);

    // Resuming from before it: the replay covers the held message, which is
    // not sent again; a conversation Bob is not in is refused.
    let mut b = s.connect(&bob.token).await;
    let m2 = s.post(&alice, conv, "m2").await;
    let replay = b
        .catch_up(json!({ conv.to_string(): 0, elsewhere.to_string(): 0 }))
        .await;
    let replayed: Vec<&Value> = replay
        .changes
        .iter()
        .map(|f| &message_of(f)["id"])
        .collect();
    assert_eq!(replayed, [&json!(m1.id), &json!(m2.id)]);
    let failed = &replay.failed[elsewhere.to_string()];
    assert_eq!(failed["code"], "not_found", "{replay:?}");
    assert!(failed["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(replay.failed.as_object().unwrap().len(), 1, "{replay:?}");
    assert_eq!(replay.reached, json!({ conv.to_string(): m2.version }));
    assert_eq!(replay.unread["total"], 2);
    b.assert_quiet().await;
}

#[tokio::test]
async fn a_change_published_after_the_replay_covered_it_is_not_sent_again() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut b = s.connect(&bob.token).await;

    // Committed, so the replay reads it, but published only afterwards.
    s.gate.hold();
    let late = s.post(&alice, conv, "m1").await;
    let replay = b.catch_up(json!({ conv.to_string(): 0 })).await;
    assert_eq!(replay.changes.len(), 1, "{replay:?}");
    assert_eq!(message_of(&replay.changes[0])["id"], json!(late.id));
    assert_eq!(replay.reached, json!({ conv.to_string(): late.version }));
    s.gate.release();

    let next = s.post(&alice, conv, "m2").await;
    let live = b.expect("message_created").await;
    assert_eq!(
        live["message"]["id"],
        json!(next.id),
        "m1 is not sent twice"
    );
    b.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_obeys_retry_after_and_rules_is_never_closed_as_abusive() {
    // The default abuse limit (30 refused frames in 10 s), and a send rate
    // of one message per 50 ms without a burst, so that nearly every send
    // after the first is refused once and many refusals fit in the window.
    let mut setup = Setup::default();
    setup.core.send_rate = Some(Rate::per_second(1, 20));
    let s = Server::with(setup).await;
    let (alice, _bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    let limit = kith_ws::WsConfig::default().abuse_limit;

    // One message at a time; on `rate_limited`, wait as told and retry.
    let (mut refusals, mut sent) = (0, 0);
    while refusals <= 2 * limit {
        let id = format!("m{sent}");
        loop {
            a.send(send(conv, &id, "hello")).await;
            let frame = a.next().await;
            if ty(&frame) == "message_created" {
                assert_eq!(a.expect("ack").await["client_id"], id.as_str());
                break;
            }
            assert_eq!(
                (ty(&frame), &frame["code"], &frame["client_id"]),
                ("error", &json!("rate_limited"), &json!(id)),
                "{frame}"
            );
            refusals += 1;
            let wait = frame["retry_after_ms"].as_u64().unwrap();
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        sent += 1;
    }
    // Refusals by Kith's rules are answers too, not abuse.
    for i in 0..=limit {
        let missing = json!({ "type": "react", "conversation_id": conv, "message_id": "1", "kind": "like", "client_id": format!("r{i}") });
        a.send(missing).await;
        assert_eq!(a.expect("error").await["code"], "not_found");
    }
    a.assert_quiet().await;
    // Every message was stored once: the newest has seq `sent`.
    let newest = s.history(&alice, conv).await.pop().unwrap();
    assert_eq!(newest.seq, sent);
}

#[tokio::test]
async fn a_retry_of_an_acknowledged_send_is_answered_even_at_the_rate_limit() {
    let mut setup = Setup::default();
    setup.core.send_rate = Some(Rate::per_second(2, 1));
    let s = Server::with(setup).await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;
    let (_, first) = send_and_ack(&mut a, conv, "m1", "one").await;
    send_and_ack(&mut a, conv, "m2", "two").await;
    a.send(send(conv, "m3", "three")).await;
    let limited = a.expect("error").await;
    assert_eq!(
        (&limited["code"], &limited["client_id"]),
        (&json!("rate_limited"), &json!("m3"))
    );

    // The retry is answered with the stored message; nothing new is stored
    // or published.
    a.send(send(conv, "m1", "one")).await;
    assert_eq!(a.expect("ack").await, first);
    a.assert_quiet().await;
    assert_eq!(b.until_pong().await.len(), 2, "Bob saw m1 and m2 once");
    assert_eq!(s.history(&alice, conv).await.len(), 2);
}

#[tokio::test]
async fn every_frame_gets_exactly_one_answer_even_when_it_changes_nothing() {
    let s = Server::start().await;
    let (alice, bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    let mut b = s.join(&bob.token).await;
    let (created, _) = send_and_ack(&mut a, conv, "m1", "hello").await;
    assert_eq!(b.expect("message_created").await, created);
    let id = created["message"]["id"].clone();
    let frame = |ty: &str, client_id: &str, extra: Value| {
        let mut f = json!({ "type": ty, "conversation_id": conv, "client_id": client_id });
        for (k, v) in extra.as_object().unwrap() {
            f[k] = v.clone();
        }
        f
    };

    // Each change: its event to both, then `done` to the sender only.
    let changes = [
        (
            "edit",
            "e1",
            json!({ "message_id": id, "body": "hello!" }),
            Some("message_edited"),
        ),
        (
            "react",
            "r1",
            json!({ "message_id": id, "kind": "love" }),
            Some("reaction_changed"),
        ),
        (
            "react",
            "r2",
            json!({ "message_id": id, "kind": "love" }),
            None,
        ),
        (
            "react",
            "r3",
            json!({ "message_id": id, "kind": null }),
            Some("reaction_changed"),
        ),
        (
            "react",
            "r4",
            json!({ "message_id": id, "kind": null }),
            None,
        ),
        (
            "delete",
            "d1",
            json!({ "message_id": id }),
            Some("message_deleted"),
        ),
        ("delete", "d2", json!({ "message_id": id }), None),
    ];
    for (kind, client_id, extra, event) in changes {
        a.send(frame(kind, client_id, extra)).await;
        if let Some(event) = event {
            let mine = a.expect(event).await;
            assert_eq!(b.expect(event).await, mine);
        }
        a.done(Some(client_id), event.is_some()).await;
    }
    // Without a client_id, the answer has none.
    a.send(json!({ "type": "delete", "conversation_id": conv, "message_id": id }))
        .await;
    a.done(None, false).await;
    // A refusal is the answer instead.
    a.send(frame(
        "edit",
        "e2",
        json!({ "message_id": id, "body": "back" }),
    ))
    .await;
    let error = a.expect("error").await;
    assert_eq!(
        (&error["code"], &error["client_id"]),
        (&json!("not_found"), &json!("e2"))
    );

    // A read that moves the position, then one that does not.
    b.send(frame("read", "rd1", json!({ "seq": 1 }))).await;
    assert_eq!(b.expect("read_updated").await["last_read_seq"], 1);
    assert_eq!(b.expect("unread").await["total"], 0);
    b.done(Some("rd1"), true).await;
    assert_eq!(a.expect("read_updated").await["user_id"], json!(bob.id));
    b.send(frame("read", "rd2", json!({ "seq": 1 }))).await;
    assert_eq!(b.expect("unread").await["total"], 0);
    b.done(Some("rd2"), false).await;

    // Typing: relayed once, then coalesced.
    b.send(frame("typing", "t1", json!({}))).await;
    b.done(Some("t1"), true).await;
    assert_eq!(a.expect("typing").await["user_id"], json!(bob.id));
    b.send(frame("typing", "t2", json!({}))).await;
    b.done(Some("t2"), false).await;

    a.assert_quiet().await;
    b.assert_quiet().await;
}

#[tokio::test]
async fn errors_echo_the_client_id_even_of_oversized_and_too_deep_frames() {
    let mut setup = Setup::default();
    setup.ws.max_frame_bytes = 1024;
    let s = Server::with(setup).await;
    let (alice, _bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;

    // Pipelined: the answers say which of the four failed.
    let deep = format!(
        r#"{{"type":"send","conversation_id":"{conv}","body":"x","reply_to":{}{},"client_id":"deep"}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    a.send(send(conv, "ok-1", "one")).await;
    a.send(send(conv, "big", &"y".repeat(2_000))).await;
    a.send_raw(Message::text(deep)).await;
    a.send(send(conv, "ok-2", "two")).await;
    let mut errors = Vec::new();
    let mut acks = Vec::new();
    while errors.len() + acks.len() < 4 {
        let frame = a.next().await;
        match ty(&frame) {
            "error" => errors.push((frame["code"].clone(), frame["client_id"].clone())),
            "ack" => acks.push(frame["client_id"].clone()),
            _ => {}
        }
    }
    assert_eq!(
        errors,
        [
            (json!("too_large"), json!("big")),
            (json!("invalid_frame"), json!("deep"))
        ]
    );
    assert_eq!(acks, [json!("ok-1"), json!("ok-2")]);

    // Only a top-level client_id is echoed.
    a.send_raw(Message::text(
        r#"{"type":"shout","inner":{"client_id":"not-mine"}}"#,
    ))
    .await;
    assert!(a.expect("error").await.get("client_id").is_none());
    a.assert_quiet().await;
}

#[tokio::test]
async fn internal_failures_are_answered_without_their_details() {
    let s = Server::start().await;
    let (alice, _bob, conv) = s.alice_and_bob().await;
    let mut a = s.join(&alice.token).await;
    s.store.close().await;

    a.send(json!({ "type": "read", "conversation_id": conv, "seq": 0, "client_id": "r1" }))
        .await;
    a.send(send(conv, "m1", "hello")).await;
    for client_id in ["r1", "m1"] {
        let error = a.expect("error").await;
        assert_eq!(
            error,
            json!({ "type": "error", "code": "storage", "message": "internal error", "client_id": client_id })
        );
    }
    a.assert_quiet().await;
}

#[tokio::test]
async fn an_invalid_utf8_text_frame_closes_the_connection_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let s = Server::start().await;
    let alice = s.user("alice").await;
    let mut a = s.join(&alice.token).await;
    let invalid = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    a.send_raw(Message::Frame(invalid)).await;
    assert!(a.closed_with(1007).await.is_empty());
}

#[tokio::test]
async fn a_block_stops_typing_edits_and_reactions_in_the_direct_conversation() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let dave = s.user("dave").await;
    let conv = s.direct(&alice, &dave).await;
    let mut a = s.join(&alice.token).await;
    let mut d = s.join(&dave.token).await;
    let (created, _) = send_and_ack(&mut d, conv, "d1", "hi alice").await;
    assert_eq!(a.expect("message_created").await, created);
    let id = created["message"]["id"].clone();

    s.kith.graph().block(alice.id, dave.id).await.unwrap();
    a.until_pong().await;
    d.until_pong().await;

    let refused = [
        json!({ "type": "typing", "conversation_id": conv, "client_id": "t1" }),
        json!({ "type": "edit", "conversation_id": conv, "message_id": id, "body": "hey", "client_id": "e1" }),
        json!({ "type": "react", "conversation_id": conv, "message_id": id, "kind": "like", "client_id": "r1" }),
        json!({ "type": "delete", "conversation_id": conv, "message_id": id, "client_id": "x1" }),
    ];
    for frame in refused {
        let client_id = frame["client_id"].clone();
        d.send(frame).await;
        let error = d.expect("error").await;
        assert_eq!(
            (&error["code"], &error["client_id"]),
            (&json!("forbidden"), &client_id)
        );
    }
    // Reading is still allowed.
    d.send(json!({ "type": "read", "conversation_id": conv, "seq": 1, "client_id": "rd" }))
        .await;
    assert_eq!(d.expect("unread").await["total"], 0);
    d.done(Some("rd"), false).await;
    d.assert_quiet().await;
    a.assert_quiet().await;
    assert_eq!(
        s.history(&dave, conv).await[0].body.as_deref(),
        Some("hi alice")
    );
}

/// The socket loop over in-memory channels, with tokio's clock paused: the
/// runtime jumps to each timer as soon as everything else is idle, so the
/// times below are exact.
mod paused {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::channel::mpsc;
    use futures::{Sink, Stream, StreamExt};
    use kith_core::UserId;
    use kith_ws::{Identity, Message};
    use tokio::time::Instant;

    use super::*;

    /// A sink and a stream joined into one socket.
    struct Duplex<Si, St> {
        sink: Si,
        stream: St,
    }

    impl<Si: Sink<Message> + Unpin, St: Unpin> Sink<Message> for Duplex<Si, St> {
        type Error = Si::Error;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            Pin::new(&mut self.sink).start_send(item)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_flush(cx)
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.sink).poll_close(cx)
        }
    }

    impl<Si: Unpin, St: Stream + Unpin> Stream for Duplex<Si, St> {
        type Item = St::Item;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.stream).poll_next(cx)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_socket_loop_pings_on_schedule_and_closes_idle_clients() {
        let mut setup = Setup::default();
        setup.ws.ping_interval = Duration::from_secs(10);
        setup.ws.idle_timeout = Duration::from_secs(25);
        // Opening the store waits on SQLite's worker thread, during which a
        // paused clock would jump to sqlx's pool timeout: open it in a
        // blocking task, which keeps the clock from auto-advancing.
        let runtime = tokio::runtime::Handle::current();
        let (_kith, ws, _gate, _store) =
            tokio::task::spawn_blocking(move || runtime.block_on(common::build(setup)))
                .await
                .unwrap();

        let (to_server, from_client) = mpsc::unbounded::<Message>();
        let (to_client, mut from_server) = mpsc::unbounded::<Message>();
        let socket = Duplex {
            sink: to_client,
            stream: from_client.map(Ok::<_, mpsc::SendError>),
        };
        let identity = Identity {
            user_id: UserId::new(1),
            session: None,
        };
        let start = Instant::now();
        let serving = tokio::spawn(async move { ws.serve_socket(socket, identity).await });

        let mut next = async || {
            let message = from_server.next().await;
            (message, (Instant::now() - start).as_secs())
        };
        assert!(matches!(next().await, (Some(Message::Ping(_)), 10)));
        assert!(matches!(next().await, (Some(Message::Ping(_)), 20)));
        // A pong counts as activity: the idle timer starts again from 20 s.
        to_server
            .unbounded_send(Message::Pong(Default::default()))
            .unwrap();
        assert!(matches!(next().await, (Some(Message::Ping(_)), 30)));
        assert!(matches!(next().await, (Some(Message::Ping(_)), 40)));
        tokio::time::advance(Duration::from_secs(5)).await;
        match next().await {
            (Some(Message::Close(Some(frame))), 45) => assert_eq!(frame.code, 4002),
            other => panic!("expected the idle close at 45 s, got {other:?}"),
        }
        assert!(
            matches!(next().await, (None, 45)),
            "the server let go of the socket"
        );
        serving.await.unwrap();
    }
}
