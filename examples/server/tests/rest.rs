//! REST routes of the `users` and `graph` areas, through HTTP against a real
//! server: every route's success and the errors it maps; and the HTTP
//! contract every route shares (connections, JSON bodies, bearer tokens).

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::{cursor, items, read_raw_response, usernames, TestServer, PASSWORD};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A syntactically valid id that no user has.
const NOBODY: &str = "4242";

#[tokio::test]
async fn profiles_for_anonymous_and_signed_in_viewers() {
    let server = TestServer::unlimited().await;
    let [alice, bob] = server.users(["alice", "bob"]).await;

    let view = server
        .get_anon(&format!("/users/{}", alice.id))
        .await
        .ok(200);
    assert_eq!(view["user"]["id"], alice.id.as_str());
    assert_eq!(view["user"]["username"], "alice");
    assert_eq!(view["visibility"], "public");
    assert_eq!(view["details"]["friends"], 0);

    let by_name = server
        .get("/users/by-username/ALICE", &bob.token)
        .await
        .ok(200);
    assert_eq!(by_name["user"]["id"], alice.id.as_str());
    server
        .get_anon("/users/by-username/nobody")
        .await
        .err(404, "not_found", None);
    server
        .get_anon(&format!("/users/{NOBODY}"))
        .await
        .err(404, "not_found", None);
    server
        .get_anon("/users/not-a-number")
        .await
        .err(400, "bad_request", None);
    server
        .get_anon("/users/-5")
        .await
        .err(400, "bad_request", None);
    // An invalid token is refused even where anonymous viewers are allowed.
    server
        .call(
            Method::GET,
            &format!("/users/{}", alice.id),
            Some("garbage"),
            None,
        )
        .await
        .err(401, "unauthenticated", None);

    // Details follow the profile's visibility.
    server
        .patch(
            "/me/profile",
            &alice.token,
            json!({"visibility": "friends", "bio": "hi"}),
        )
        .await
        .ok(200);
    let anon = server
        .get_anon(&format!("/users/{}", alice.id))
        .await
        .ok(200);
    assert_eq!(anon["visibility"], "friends");
    assert!(anon["details"].is_null());
    let own = server
        .get(&format!("/users/{}", alice.id), &alice.token)
        .await
        .ok(200);
    assert_eq!(own["details"]["bio"], "hi");
    server.befriend(&alice, &bob).await;
    let friend = server
        .get(&format!("/users/{}", alice.id), &bob.token)
        .await
        .ok(200);
    assert_eq!(friend["details"]["bio"], "hi");
    assert_eq!(friend["details"]["friends"], 1);

    // Counts are public to anyone who may see the user.
    let counts = server
        .get_anon(&format!("/users/{}/counts", alice.id))
        .await
        .ok(200);
    assert_eq!(
        counts,
        json!({"friends": 1, "followers": 0, "following": 0})
    );
    server
        .get_anon(&format!("/users/{NOBODY}/counts"))
        .await
        .err(404, "not_found", None);
    server
        .get_anon("/users/x/counts")
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn friend_requests_from_sending_to_unfriending() {
    let server = TestServer::unlimited().await;
    let [alice, bob] = server.users(["alice", "bob"]).await;
    let to_bob = json!({"user_id": bob.id});

    // Input errors first.
    server
        .call(Method::POST, "/friend-requests", None, Some(&to_bob))
        .await
        .err(401, "unauthenticated", None);
    server
        .post(
            "/friend-requests",
            &alice.token,
            json!({"user_id": alice.id}),
        )
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .post("/friend-requests", &alice.token, json!({"user_id": NOBODY}))
        .await
        .err(404, "not_found", None);
    server
        .raw(
            Method::POST,
            "/friend-requests",
            &alice.token,
            "{\"user_id\":",
            Some("application/json"),
        )
        .await
        .err(400, "bad_request", None);
    server
        .raw(
            Method::POST,
            "/friend-requests",
            &alice.token,
            &to_bob.to_string(),
            None,
        )
        .await
        .err(415, "unsupported_media_type", None);
    server
        .post(
            "/friend-requests",
            &alice.token,
            json!({"user_id": bob.id, "extra": 1}),
        )
        .await
        .err(400, "bad_request", None);
    server
        .post("/friend-requests", &alice.token, json!({"user_id": "bob"}))
        .await
        .err(400, "bad_request", None);

    // Send, see it from both sides, refuse a duplicate.
    let sent = server
        .post("/friend-requests", &alice.token, to_bob.clone())
        .await
        .ok(200);
    assert_eq!(sent["outcome"], "pending");
    assert_eq!(sent["request"]["from"], alice.id.as_str());
    assert_eq!(sent["request"]["to"], bob.id.as_str());
    server
        .post("/friend-requests", &alice.token, to_bob.clone())
        .await
        .err(409, "conflict", None);
    let incoming = server
        .get("/friend-requests/incoming", &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&incoming), ["alice"]);
    assert_eq!(incoming["items"][0]["request"]["id"], sent["request"]["id"]);
    let outgoing = server
        .get("/friend-requests/outgoing", &alice.token)
        .await
        .ok(200);
    assert_eq!(usernames(&outgoing), ["bob"]);
    assert!(items(
        &server
            .get("/friend-requests/incoming", &alice.token)
            .await
            .ok(200)
    )
    .is_empty());
    let rel = server
        .get(&format!("/users/{}/relationship", bob.id), &alice.token)
        .await
        .ok(200);
    assert_eq!(rel["request_sent"], true);
    assert_eq!(rel["friends"], false);
    let rel = server
        .get(&format!("/users/{}/relationship", alice.id), &bob.token)
        .await
        .ok(200);
    assert_eq!(rel["request_received"], true);

    // Cancel, then cancel again.
    let cancel = format!("/friend-requests/{}", bob.id);
    assert!(server.delete(&cancel, &alice.token).await.ok(204).is_null());
    server
        .delete(&cancel, &alice.token)
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("/friend-requests/{}", alice.id), &alice.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .delete("/friend-requests/abc", &alice.token)
        .await
        .err(400, "bad_request", None);

    // Decline: the request disappears.
    server
        .post("/friend-requests", &alice.token, to_bob.clone())
        .await
        .ok(200);
    let decline = format!("/friend-requests/{}/decline", alice.id);
    server.post_empty(&decline, &bob.token).await.ok(204);
    server
        .post_empty(&decline, &bob.token)
        .await
        .err(404, "not_found", None);
    assert!(items(
        &server
            .get("/friend-requests/outgoing", &alice.token)
            .await
            .ok(200)
    )
    .is_empty());

    // Accept.
    server
        .post("/friend-requests", &alice.token, to_bob.clone())
        .await
        .ok(200);
    let accept = format!("/friend-requests/{}/accept", alice.id);
    server
        .post_empty(&format!("/friend-requests/{NOBODY}/accept"), &bob.token)
        .await
        .err(404, "not_found", None);
    let friendship = server.post_empty(&accept, &bob.token).await.ok(200);
    assert_eq!(friendship["user"], bob.id.as_str());
    assert_eq!(friendship["friend"], alice.id.as_str());
    assert!(friendship["since"].is_string() || friendship["since"].is_number());
    server
        .post_empty(&accept, &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .post("/friend-requests", &alice.token, to_bob.clone())
        .await
        .err(409, "conflict", None);
    let friends = server
        .get(&format!("/users/{}/friends", alice.id), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&friends), ["bob"]);
    let rel = server
        .get(&format!("/users/{}/relationship", bob.id), &alice.token)
        .await
        .ok(200);
    assert_eq!(rel["friends"], true);

    // Unfriend, then unfriend again.
    let unfriend = format!("/friends/{}", alice.id);
    server.delete(&unfriend, &bob.token).await.ok(204);
    server
        .delete(&unfriend, &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("/friends/{}", bob.id), &bob.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    assert!(items(
        &server
            .get(&format!("/users/{}/friends", alice.id), &bob.token)
            .await
            .ok(200)
    )
    .is_empty());

    // Crossing requests become a friendship at once.
    server
        .post("/friend-requests", &bob.token, json!({"user_id": alice.id}))
        .await
        .ok(200);
    let crossed = server
        .post("/friend-requests", &alice.token, to_bob)
        .await
        .ok(200);
    assert_eq!(crossed["outcome"], "accepted");
    assert_eq!(crossed["friendship"]["user"], alice.id.as_str());
}

#[tokio::test]
async fn relationship_errors() {
    let server = TestServer::unlimited().await;
    let [alice] = server.users(["alice"]).await;
    server
        .get_anon(&format!("/users/{}/relationship", alice.id))
        .await
        .err(401, "unauthenticated", None);
    server
        .get(&format!("/users/{}/relationship", alice.id), &alice.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .get(&format!("/users/{NOBODY}/relationship"), &alice.token)
        .await
        .err(404, "not_found", None);
    server
        .get("/users/1.5/relationship", &alice.token)
        .await
        .err(400, "bad_request", None);
}

#[tokio::test]
async fn follows_blocks_and_mutes() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol] = server.users(["alice", "bob", "carol"]).await;
    let follow_bob = format!("/follows/{}", bob.id);

    // Follow (twice: idempotent), list, unfollow.
    server.put(&follow_bob, &alice.token, None).await.ok(204);
    server.put(&follow_bob, &alice.token, None).await.ok(204);
    let followers = server
        .get(&format!("/users/{}/followers", bob.id), &carol.token)
        .await
        .ok(200);
    assert_eq!(usernames(&followers), ["alice"]);
    let following = server
        .get(&format!("/users/{}/following", alice.id), &carol.token)
        .await
        .ok(200);
    assert_eq!(usernames(&following), ["bob"]);
    let rel = server
        .get(&format!("/users/{}/relationship", alice.id), &bob.token)
        .await
        .ok(200);
    assert_eq!(rel["followed_by"], true);
    server.delete(&follow_bob, &alice.token).await.ok(204);
    server.delete(&follow_bob, &alice.token).await.ok(204);
    assert!(items(
        &server
            .get(&format!("/users/{}/followers", bob.id), &carol.token)
            .await
            .ok(200)
    )
    .is_empty());
    server
        .put(&format!("/follows/{}", alice.id), &alice.token, None)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .delete(&format!("/follows/{}", alice.id), &alice.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .put(&format!("/follows/{NOBODY}"), &alice.token, None)
        .await
        .err(404, "not_found", None);
    server
        .put("/follows/bob", &alice.token, None)
        .await
        .err(400, "bad_request", None);
    server
        .call(Method::PUT, &follow_bob, None, None)
        .await
        .err(401, "unauthenticated", None);

    // Blocking: lists, forbids the blocker, hides the blocker from the blocked.
    server.put(&follow_bob, &alice.token, None).await.ok(204);
    let block_bob = format!("/blocks/{}", bob.id);
    server.put(&block_bob, &alice.token, None).await.ok(204);
    server.put(&block_bob, &alice.token, None).await.ok(204);
    let blocks = server.get("/blocks", &alice.token).await.ok(200);
    assert_eq!(usernames(&blocks), ["bob"]);
    assert!(items(&server.get("/blocks", &bob.token).await.ok(200)).is_empty());
    // The block ended the follow.
    assert!(items(
        &server
            .get(&format!("/users/{}/followers", bob.id), &carol.token)
            .await
            .ok(200)
    )
    .is_empty());
    server
        .put(&follow_bob, &alice.token, None)
        .await
        .err(403, "forbidden", None);
    server
        .post("/friend-requests", &alice.token, json!({"user_id": bob.id}))
        .await
        .err(403, "forbidden", None);
    let rel = server
        .get(&format!("/users/{}/relationship", bob.id), &alice.token)
        .await
        .ok(200);
    assert_eq!(rel["blocking"], true);
    // To bob, alice does not exist.
    server
        .put(&format!("/follows/{}", alice.id), &bob.token, None)
        .await
        .err(404, "not_found", None);
    server
        .get(&format!("/users/{}", alice.id), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get(&format!("/users/{}/counts", alice.id), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get(&format!("/users/{}/relationship", alice.id), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .get(&format!("/users/{}/friends", alice.id), &bob.token)
        .await
        .err(404, "not_found", None);
    server
        .post("/friend-requests", &bob.token, json!({"user_id": alice.id}))
        .await
        .err(404, "not_found", None);
    server
        .put(&format!("/mutes/{}", alice.id), &bob.token, None)
        .await
        .err(404, "not_found", None);
    // Block errors.
    server
        .put(&format!("/blocks/{}", alice.id), &alice.token, None)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .put(&format!("/blocks/{NOBODY}"), &alice.token, None)
        .await
        .err(404, "not_found", None);
    server
        .delete(&format!("/blocks/{}", alice.id), &alice.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .delete("/blocks/zz", &alice.token)
        .await
        .err(400, "bad_request", None);
    // Unblock (twice: idempotent).
    server.delete(&block_bob, &alice.token).await.ok(204);
    server.delete(&block_bob, &alice.token).await.ok(204);
    assert!(items(&server.get("/blocks", &alice.token).await.ok(200)).is_empty());
    server
        .get(&format!("/users/{}", alice.id), &bob.token)
        .await
        .ok(200);

    // Muting.
    let mute_carol = format!("/mutes/{}", carol.id);
    server.put(&mute_carol, &alice.token, None).await.ok(204);
    server.put(&mute_carol, &alice.token, None).await.ok(204);
    let mutes = server.get("/mutes", &alice.token).await.ok(200);
    assert_eq!(usernames(&mutes), ["carol"]);
    let rel = server
        .get(&format!("/users/{}/relationship", carol.id), &alice.token)
        .await
        .ok(200);
    assert_eq!(rel["muting"], true);
    server
        .put(&format!("/mutes/{}", alice.id), &alice.token, None)
        .await
        .err(422, "invalid_input", Some("user_id"));
    server
        .put(&format!("/mutes/{NOBODY}"), &alice.token, None)
        .await
        .err(404, "not_found", None);
    server.delete(&mute_carol, &alice.token).await.ok(204);
    server.delete(&mute_carol, &alice.token).await.ok(204);
    server
        .delete(&format!("/mutes/{}", alice.id), &alice.token)
        .await
        .err(422, "invalid_input", Some("user_id"));
    assert!(items(&server.get("/mutes", &alice.token).await.ok(200)).is_empty());
    server
        .get_anon("/mutes")
        .await
        .err(401, "unauthenticated", None);
}

#[tokio::test]
async fn lists_page_with_cursors_and_respect_visibility() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol, dave] = server.users(["alice", "bob", "carol", "dave"]).await;
    for fan in [&bob, &carol, &dave] {
        server
            .put(&format!("/follows/{}", alice.id), &fan.token, None)
            .await
            .ok(204);
        server
            .post("/friend-requests", &fan.token, json!({"user_id": alice.id}))
            .await
            .ok(200);
    }

    // Followers, newest first, two pages.
    let path = format!("/users/{}/followers", alice.id);
    let first = server
        .get(&format!("{path}?limit=2"), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&first), ["dave", "carol"]);
    let next = cursor(&first).expect("a second page");
    let second = server
        .get(&format!("{path}?limit=2&cursor={next}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&second), ["bob"]);
    assert_eq!(cursor(&second), None);
    // Bad paging parameters.
    server
        .get(&format!("{path}?limit=0"), &bob.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&format!("{path}?limit=101"), &bob.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get(&format!("{path}?cursor=nonsense"), &bob.token)
        .await
        .err(422, "invalid_input", Some("cursor"));
    server
        .get(&format!("{path}?limit=many"), &bob.token)
        .await
        .err(400, "bad_request", None);
    server
        .get_anon(&path)
        .await
        .err(401, "unauthenticated", None);
    server
        .get(&format!("/users/{NOBODY}/followers"), &bob.token)
        .await
        .err(404, "not_found", None);

    // Incoming requests, newest first, two pages.
    let first = server
        .get("/friend-requests/incoming?limit=2", &alice.token)
        .await
        .ok(200);
    assert_eq!(usernames(&first), ["dave", "carol"]);
    let next = cursor(&first).expect("a second page");
    let second = server
        .get(
            &format!("/friend-requests/incoming?limit=2&cursor={next}"),
            &alice.token,
        )
        .await
        .ok(200);
    assert_eq!(usernames(&second), ["bob"]);
    assert_eq!(cursor(&second), None);
    // A cursor of another list is refused.
    server
        .get(&format!("{path}?cursor={next}"), &alice.token)
        .await
        .err(422, "invalid_input", Some("cursor"));
    server
        .get("/friend-requests/outgoing?limit=0", &alice.token)
        .await
        .err(422, "invalid_input", Some("limit"));
    server
        .get_anon("/friend-requests/incoming")
        .await
        .err(401, "unauthenticated", None);

    // Friends, by username, filtered by name, two pages.
    for fan in [&bob, &carol, &dave] {
        server
            .post_empty(&format!("/friend-requests/{}/accept", fan.id), &alice.token)
            .await
            .ok(200);
    }
    let friends = format!("/users/{}/friends", alice.id);
    let first = server
        .get(&format!("{friends}?limit=2"), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&first), ["bob", "carol"]);
    let next = cursor(&first).expect("a second page");
    let second = server
        .get(&format!("{friends}?limit=2&cursor={next}"), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&second), ["dave"]);
    assert_eq!(cursor(&second), None);
    let named = server
        .get(&format!("{friends}?name=AR"), &bob.token)
        .await
        .ok(200);
    assert_eq!(usernames(&named), ["carol"]);
    let long = "x".repeat(51);
    server
        .get(&format!("{friends}?name={long}"), &bob.token)
        .await
        .err(422, "invalid_input", Some("name"));

    // Following, two pages.
    server
        .put(&format!("/follows/{}", bob.id), &alice.token, None)
        .await
        .ok(204);
    server
        .put(&format!("/follows/{}", carol.id), &alice.token, None)
        .await
        .ok(204);
    let following = format!("/users/{}/following", alice.id);
    let first = server
        .get(&format!("{following}?limit=1"), &dave.token)
        .await
        .ok(200);
    assert_eq!(usernames(&first), ["carol"]);
    let next = cursor(&first).expect("a second page");
    let second = server
        .get(&format!("{following}?limit=1&cursor={next}"), &dave.token)
        .await
        .ok(200);
    assert_eq!(usernames(&second), ["bob"]);
    assert_eq!(cursor(&second), None);

    // Blocks and mutes page too.
    for other in [&bob, &carol] {
        server
            .put(&format!("/mutes/{}", other.id), &dave.token, None)
            .await
            .ok(204);
    }
    let first = server.get("/mutes?limit=1", &dave.token).await.ok(200);
    assert_eq!(usernames(&first), ["carol"]);
    let next = cursor(&first).expect("a second page");
    let second = server
        .get(&format!("/mutes?limit=1&cursor={next}"), &dave.token)
        .await
        .ok(200);
    assert_eq!(usernames(&second), ["bob"]);
    assert_eq!(cursor(&second), None);
    server
        .get("/blocks?cursor=zz", &dave.token)
        .await
        .err(422, "invalid_input", Some("cursor"));

    // A private profile hides its lists from others, not from its owner.
    server
        .patch(
            "/me/profile",
            &alice.token,
            json!({"visibility": "private"}),
        )
        .await
        .ok(200);
    for list in ["friends", "followers", "following"] {
        server
            .get(&format!("/users/{}/{list}", alice.id), &bob.token)
            .await
            .err(403, "forbidden", None);
        server
            .get(&format!("/users/{}/{list}", alice.id), &alice.token)
            .await
            .ok(200);
    }
}

#[tokio::test]
async fn every_authenticated_route_refuses_a_missing_or_bad_token() {
    let server = TestServer::unlimited().await;
    let u = "1";
    let c = "2";
    let m = "3";
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, format!("/users/{u}/friends")),
        (Method::GET, format!("/users/{u}/followers")),
        (Method::GET, format!("/users/{u}/following")),
        (Method::GET, format!("/users/{u}/relationship")),
        (Method::POST, "/friend-requests".into()),
        (Method::GET, "/friend-requests/incoming".into()),
        (Method::GET, "/friend-requests/outgoing".into()),
        (Method::DELETE, format!("/friend-requests/{u}")),
        (Method::POST, format!("/friend-requests/{u}/accept")),
        (Method::POST, format!("/friend-requests/{u}/decline")),
        (Method::DELETE, format!("/friends/{u}")),
        (Method::PUT, format!("/follows/{u}")),
        (Method::DELETE, format!("/follows/{u}")),
        (Method::GET, "/blocks".into()),
        (Method::PUT, format!("/blocks/{u}")),
        (Method::DELETE, format!("/blocks/{u}")),
        (Method::GET, "/mutes".into()),
        (Method::PUT, format!("/mutes/{u}")),
        (Method::DELETE, format!("/mutes/{u}")),
        (Method::GET, "/conversations".into()),
        (Method::POST, "/conversations".into()),
        (Method::POST, "/conversations/direct".into()),
        (Method::GET, format!("/conversations/{c}")),
        (Method::PATCH, format!("/conversations/{c}")),
        (Method::GET, format!("/conversations/{c}/members")),
        (Method::POST, format!("/conversations/{c}/members")),
        (Method::DELETE, format!("/conversations/{c}/members/{u}")),
        (Method::PUT, format!("/conversations/{c}/members/{u}/role")),
        (Method::POST, format!("/conversations/{c}/leave")),
        (Method::GET, format!("/conversations/{c}/messages")),
        (Method::POST, format!("/conversations/{c}/messages")),
        (Method::PATCH, format!("/conversations/{c}/messages/{m}")),
        (Method::DELETE, format!("/conversations/{c}/messages/{m}")),
        (
            Method::PUT,
            format!("/conversations/{c}/messages/{m}/reaction"),
        ),
        (
            Method::DELETE,
            format!("/conversations/{c}/messages/{m}/reaction"),
        ),
        (Method::POST, format!("/conversations/{c}/read")),
        (Method::GET, format!("/conversations/{c}/changes")),
        (Method::GET, "/unread".into()),
    ];
    for (method, path) in routes {
        for token in [None, Some("not-a-token")] {
            let reply = server.call(method.clone(), &path, token, None).await;
            assert_eq!(reply.status.as_u16(), 401, "{method} {path} with {token:?}");
            reply.err(401, "unauthenticated", None);
        }
    }
}

// ---------------------------------------------------------------------------
// The HTTP contract every route shares.

// Several threads, so that the client may reuse a connection before it sees
// the server close it (a single thread runs the server's close first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_body_is_read_leaves_the_connection_usable() {
    let server = TestServer::unlimited().await;
    let alice = server.user("alice").await;
    // Large enough that the server cannot have read it by chance.
    let patch = json!({"bio": "x".repeat(40 * 1024)}).to_string();
    let too_large = json!({"bio": "x".repeat(100 * 1024)}).to_string();
    let json = "application/json";
    let token = alice.token.as_str();
    let refusals = [
        ("/me/profile", "not-a-token", patch.as_str(), json, 401),
        ("/conversations/x", token, patch.as_str(), json, 400),
        ("/me/profile", token, patch.as_str(), "text/plain", 415),
        ("/me/profile", token, too_large.as_str(), json, 413),
    ];
    // The harness's one client pools its keep-alive connections: each
    // request after a refusal reuses the refused request's connection,
    // unless the refusal said `Connection: close`.
    for _ in 0..25 {
        for (path, token, body, content_type, status) in refusals {
            let refused = server
                .raw(Method::PATCH, path, token, body, Some(content_type))
                .await;
            assert_eq!(refused.status.as_u16(), status, "{path}: {}", refused.text);
            let me = server.get("/me", &alice.token).await;
            assert_eq!(me.ok(200)["username"], "alice", "after the {status}");
        }
    }
    // The same on one raw connection: a refusal without `Connection: close`
    // leaves the connection open for the next request.
    for (path, token, body, content_type, status) in refusals {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "PATCH /api/v1{path} HTTP/1.1\r\nhost: kith\r\nauthorization: Bearer {token}\r\n\
             content-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        // The server may answer and close before taking the whole body.
        let _ = stream.write_all(request.as_bytes()).await;
        let refused = read_raw_response(&mut stream).await;
        assert_eq!(refused.status, status, "{path}: {}", refused.body);
        if refused.header("connection") == Some("close") {
            continue;
        }
        let next = format!(
            "GET /api/v1/me HTTP/1.1\r\nhost: kith\r\nauthorization: Bearer {}\r\n\r\n",
            alice.token
        );
        stream.write_all(next.as_bytes()).await.unwrap();
        let me = read_raw_response(&mut stream).await;
        assert_eq!(
            me.status, 200,
            "after the {status} without `Connection: close`"
        );
    }
}

#[tokio::test]
async fn json_bodies_must_be_objects() {
    let server = TestServer::unlimited().await;
    let alice = server.user("alice").await;
    let group = server
        .post(
            "/conversations",
            &alice.token,
            json!({"title": "G", "members": []}),
        )
        .await
        .ok(201);
    let id = group["id"].as_str().unwrap();
    let refused = [
        ("/me/profile", Method::PATCH, json!(["Name"])),
        (
            "/auth/register",
            Method::POST,
            json!(["bob", "bob@example.com", PASSWORD]),
        ),
        ("/auth/login", Method::POST, json!(["alice", PASSWORD])),
        (
            &format!("/conversations/{id}/messages"),
            Method::POST,
            json!(["c1", "hello"]),
        ),
        (
            &format!("/conversations/{id}/read"),
            Method::POST,
            json!([0]),
        ),
        ("/me/profile", Method::PATCH, json!("Name")),
        ("/me/profile", Method::PATCH, json!(null)),
    ];
    for (path, method, body) in refused {
        server
            .call(method, path, Some(&alice.token), Some(&body))
            .await
            .err(400, "bad_request", None);
    }
    let me = server.get("/me", &alice.token).await.ok(200);
    assert!(me["profile"]["display_name"].is_null(), "{me}");
    server
        .post("/auth/login", &alice.token, json!(["alice", PASSWORD]))
        .await
        .err(400, "bad_request", None);
    server
        .call(Method::GET, "/users/by-username/bob", None, None)
        .await
        .err(404, "not_found", None);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::unlimited().await;
    let alice = server.user("alice").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = server
            .http
            .get(server.api("/me"))
            .header("authorization", format!("{scheme} {}", alice.token))
            .send()
            .await
            .unwrap();
        let me = support::Resp::read(response).await;
        assert_eq!(me.ok(200)["username"], "alice", "{scheme}");
    }
    let response = server
        .http
        .get(server.api("/me"))
        .header("authorization", format!("Basic {}", alice.token))
        .send()
        .await
        .unwrap();
    support::Resp::read(response)
        .await
        .err(401, "unauthenticated", None);
}

#[tokio::test]
async fn a_cursor_is_refused_by_every_list_but_its_own() {
    let server = TestServer::unlimited().await;
    let [alice, bob, carol, dave] = server.users(["alice", "bob", "carol", "dave"]).await;
    // Two items in each list, so that a page of one has a cursor.
    for user in [&bob, &carol] {
        let to = |list: &str, whom: &str| format!("/{list}/{whom}");
        server
            .put(&to("blocks", &user.id), &alice.token, None)
            .await
            .ok(204);
        server
            .put(&to("mutes", &user.id), &alice.token, None)
            .await
            .ok(204);
        server
            .put(&to("follows", &dave.id), &user.token, None)
            .await
            .ok(204);
        server
            .put(&to("follows", &user.id), &dave.token, None)
            .await
            .ok(204);
    }
    let lists = [
        format!("/users/{}/followers", dave.id),
        format!("/users/{}/following", dave.id),
        "/blocks".to_owned(),
        "/mutes".to_owned(),
    ];
    let mut cursors = Vec::new();
    for list in &lists {
        let first = server
            .get(&format!("{list}?limit=1"), &alice.token)
            .await
            .ok(200);
        assert_eq!(items(&first).len(), 1, "{list}: {first}");
        cursors.push(cursor(&first).unwrap_or_else(|| panic!("{list}: {first}")));
    }
    for (list, own) in lists.iter().zip(&cursors) {
        for (from, cursor) in lists.iter().zip(&cursors) {
            let reply = server
                .get(&format!("{list}?limit=1&cursor={cursor}"), &alice.token)
                .await;
            if cursor == own {
                assert_eq!(items(&reply.ok(200)).len(), 1, "{list}");
            } else {
                assert_eq!(reply.status.as_u16(), 422, "{from}'s cursor on {list}");
                reply.err(422, "invalid_input", Some("cursor"));
            }
        }
    }
}
