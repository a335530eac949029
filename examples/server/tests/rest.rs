//! REST routes of the `users` and `graph` areas, through HTTP against a real
//! server: every route's success and the errors it maps.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{cursor, items, usernames, TestServer};

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
