//! The operations side of the server: every error status in the JSON error
//! shape, rate limits, health and metrics, request ids, CORS, graceful
//! shutdown, and starting from the command line (database URLs).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{
    assert_error_shape, assert_no_server_errors, read_raw_response, sample, settings, within,
    Ended, Resp, TestServer, User, PASSWORD,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends `body` as is, with `content_type`.
async fn post_raw(server: &TestServer, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
    let response = server
        .http
        .post(server.api(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    Resp::read(response).await
}

// ---------------------------------------------------------------------------
// Every error status, in the JSON error shape.

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start().await;
    let response = post_raw(
        &server,
        "/auth/register",
        "application/json",
        br#"{"username": "alice","#.to_vec(),
    )
    .await;
    let error = response.error(400, "bad_request");
    assert!(
        error["message"].as_str().unwrap().contains("JSON"),
        "{error}"
    );
    // A malformed id in a path, too.
    let user = server.user("alice").await;
    server
        .get("/users/not-a-number", &user.token)
        .await
        .error(400, "bad_request");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let server = TestServer::start().await;
    let user = server.user("alice").await;
    server
        .call(Method::GET, "/me", None, None)
        .await
        .error(401, "unauthenticated");
    server
        .get("/me", "not-a-token")
        .await
        .error(401, "unauthenticated");
    let basic = server
        .http
        .get(server.api("/me"))
        .header("authorization", format!("Basic {}", user.token))
        .send()
        .await
        .unwrap();
    Resp::read(basic).await.error(401, "unauthenticated");
    // Wrong credentials at login.
    server
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({"login": "alice", "password": "wrong password"})),
        )
        .await
        .error(401, "invalid_credentials");
    // The WebSocket handshake, before any upgrade.
    match tokio_tungstenite::connect_async(server.ws_url("nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        Err(other) => panic!("expected 401, got {other}"),
        Ok(_) => panic!("a bad token opened a WebSocket"),
    }
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn unknown_routes_and_missing_resources_are_404_told_apart() {
    let server = TestServer::start().await;
    let user = server.user("alice").await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/me",
        "/api/v1/users/1/nope",
        "/api/v1/ws/extra",
    ] {
        let response = server
            .send(Method::GET, &server.url(path), Some(&user.token), None)
            .await;
        let error = response.error(404, "not_found");
        assert_eq!(error["message"], "no such route", "{path}");
    }
    // Routed, but nothing there.
    for path in ["/users/1", "/users/by-username/nobody", "/conversations/1"] {
        let response = server.get(path, &user.token).await;
        let error = response.error(404, "not_found");
        assert_ne!(error["message"], "no such route", "{path}");
    }
    server
        .call(Method::DELETE, "/auth/sessions/1", Some(&user.token), None)
        .await
        .error(404, "not_found");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let server = TestServer::start().await;
    let response = server
        .send(Method::POST, &server.url("/healthz"), None, None)
        .await;
    response.error(405, "method_not_allowed");
    let allow = response.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
    server
        .call(Method::DELETE, "/auth/login", None, None)
        .await
        .error(405, "method_not_allowed");
    server
        .call(Method::PUT, "/me", None, None)
        .await
        .error(405, "method_not_allowed");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_is_408() {
    let server = TestServer::with_flags(&["--request-timeout", "1"]).await;
    // The headers announce a body that never comes.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: kith\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let response = read_raw_response(&mut stream).await;
    let waited = started.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    assert!(response
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert!(response.header("x-request-id").is_some());
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(body["error"]["message"].is_string());
    // Other requests are unaffected.
    let health = server
        .send(Method::GET, &server.url("/healthz"), None, None)
        .await;
    assert_eq!(health.status, StatusCode::OK);
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn a_taken_username_is_409() {
    let server = TestServer::start().await;
    server.try_register("alice").await.ok(201);
    server.try_register("Alice").await.error(409, "conflict");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = TestServer::with_flags(&["--body-limit", "1024"]).await;
    let big = json!({
        "username": "alice",
        "email": "alice@example.com",
        "password": "x".repeat(2000),
    });
    post_raw(
        &server,
        "/auth/register",
        "application/json",
        big.to_string().into_bytes(),
    )
    .await
    .error(413, "payload_too_large");
    // Just under the limit is fine.
    server.try_register("alice").await.ok(201);
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let server = TestServer::start().await;
    let body = json!({"username": "alice", "email": "a@example.com", "password": PASSWORD});
    post_raw(
        &server,
        "/auth/register",
        "text/plain",
        body.to_string().into_bytes(),
    )
    .await
    .error(415, "unsupported_media_type");
    let no_type = server
        .http
        .post(server.api("/auth/login"))
        .body(r#"{"login":"a","password":"b"}"#)
        .send()
        .await
        .unwrap();
    Resp::read(no_type)
        .await
        .error(415, "unsupported_media_type");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn an_invalid_field_is_422_and_named() {
    let server = TestServer::start().await;
    let response = server
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({"username": "a", "email": "a@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(response.error(422, "invalid_input")["field"], "username");
    let response = server
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({"username": "alice", "email": "not an email", "password": PASSWORD})),
        )
        .await;
    assert_eq!(response.error(422, "invalid_input")["field"], "email");
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn befriending_someone_you_block_is_403() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let blocked = server
        .call(
            Method::PUT,
            &format!("/blocks/{}", bob.id),
            Some(&alice.token),
            None,
        )
        .await;
    assert!(blocked.status.is_success(), "{}", blocked.text);
    server
        .post("/friend-requests", &alice.token, json!({"user_id": bob.id}))
        .await
        .error(403, "forbidden");
    // Messaging someone who is not a friend is refused too (friends-only
    // direct messages by default).
    let carol = server.user("carol").await;
    server
        .post(
            "/conversations/direct",
            &alice.token,
            json!({"user_id": carol.id}),
        )
        .await
        .error(403, "forbidden");
    assert_no_server_errors(&server).await;
}

// ---------------------------------------------------------------------------
// Rate limits.

#[tokio::test]
async fn login_and_registration_beyond_the_limit_are_429_with_retry_after() {
    let server = TestServer::with_flags(&["--auth-per-minute", "3"]).await;
    server.try_register("alice").await.ok(201);
    server.try_login("alice").await.ok(200);
    server.try_login("alice").await.ok(200);
    for response in [
        server.try_login("alice").await,
        server.try_register("bob").await,
    ] {
        let error = response.error(429, "rate_limited");
        assert!(error["message"].is_string());
        let retry_after: u64 = response.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // One attempt comes back every 20 s.
        assert!(
            (1..=20).contains(&retry_after),
            "Retry-After: {retry_after}"
        );
    }
    assert_no_server_errors(&server).await;
}

/// A failed login (no such user) sent with `headers`: 401 while the
/// address has attempts left, 429 after.
async fn login_status(server: &TestServer, headers: &[(&str, &str)]) -> u16 {
    let mut request = server
        .http
        .post(server.api("/auth/login"))
        .json(&json!({"login": "nobody", "password": "wrong password"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let status = within("a login", request.send()).await.unwrap().status();
    assert!(matches!(status.as_u16(), 401 | 429), "{status}");
    status.as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    // The test client plays the proxy, from 127.0.0.1.
    let server =
        TestServer::with_flags(&["--auth-per-minute", "2", "--trusted-proxy", "127.0.0.0/8"]).await;
    let a = [("x-forwarded-for", "203.0.113.1")];
    assert_eq!(login_status(&server, &a).await, 401);
    assert_eq!(login_status(&server, &a).await, 401);
    assert_eq!(login_status(&server, &a).await, 429);
    // Another client behind the same proxy is not limited by the first.
    let b = [("x-forwarded-for", "203.0.113.2")];
    assert_eq!(login_status(&server, &b).await, 401);
    // A forged leftmost hop does not escape the limit: the proxy appended
    // the real address on the right.
    for forged in ["198.51.100.1, 203.0.113.1", "198.51.100.2,203.0.113.1"] {
        assert_eq!(
            login_status(&server, &[("x-forwarded-for", forged)]).await,
            429,
            "{forged}"
        );
    }
    // Trusted hops on the right are skipped: B, through a second proxy.
    let chained = [("x-forwarded-for", "198.51.100.3, 203.0.113.2, 127.0.0.9")];
    assert_eq!(login_status(&server, &chained).await, 401);
    assert_eq!(login_status(&server, &chained).await, 429);
    // The proxy's own requests (no header) are its own bucket.
    assert_eq!(login_status(&server, &[]).await, 401);
    // `Forwarded` is not the configured header: a client cannot use it.
    let other_header = [
        ("forwarded", "for=198.51.100.4"),
        ("x-forwarded-for", "203.0.113.1"),
    ];
    assert_eq!(login_status(&server, &other_header).await, 429);
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn the_forwarded_header_can_be_the_one_trusted_proxies_write() {
    let server = TestServer::with_flags(&[
        "--auth-per-minute",
        "1",
        "--trusted-proxy",
        "127.0.0.1",
        "--forwarded-header",
        "forwarded",
    ])
    .await;
    let a = [(
        "forwarded",
        r#"for=198.51.100.9, for="[2001:db8::1]:4711";proto=https"#,
    )];
    assert_eq!(login_status(&server, &a).await, 401);
    assert_eq!(login_status(&server, &a).await, 429);
    let b = [("forwarded", "for=203.0.113.5")];
    assert_eq!(login_status(&server, &b).await, 401);
    // X-Forwarded-For is now the header a client could forge: ignored.
    let xff = [
        ("forwarded", "for=203.0.113.5"),
        ("x-forwarded-for", "203.0.113.77"),
    ];
    assert_eq!(login_status(&server, &xff).await, 429);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // A proxy is trusted, but not this peer (127.0.0.1).
    let server =
        TestServer::with_flags(&["--auth-per-minute", "2", "--trusted-proxy", "10.0.0.0/8"]).await;
    for (i, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .into_iter()
        .enumerate()
    {
        let expected = if i < 2 { 401 } else { 429 };
        let headers = [("x-forwarded-for", client), ("forwarded", "for=192.0.2.1")];
        assert_eq!(login_status(&server, &headers).await, expected, "{client}");
    }
    // Registration draws on the same bucket.
    server
        .try_register("alice")
        .await
        .error(429, "rate_limited");
}

#[tokio::test]
async fn sending_beyond_the_burst_is_429_with_retry_after() {
    let server = TestServer::with_flags(&["--send-burst", "3", "--send-per-second", "1"]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.befriend(&alice, &bob).await;
    let conversation = server.direct(&alice, &bob).await;
    for i in 0..3 {
        server
            .send_message(&alice, &conversation, &format!("m-{i}"), "hello")
            .await
            .ok(201);
    }
    let response = server
        .send_message(&alice, &conversation, "m-3", "one too many")
        .await;
    response.error(429, "rate_limited");
    let retry_after: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    // The limit is per user: Bob may still send.
    server
        .send_message(&bob, &conversation, "b-0", "hi")
        .await
        .ok(201);
    // Over the WebSocket, the same limit answers an error frame.
    let mut ws = server.connect_resumed(&alice.token).await;
    ws.send(json!({
        "type": "send", "conversation_id": conversation, "client_id": "m-4", "body": "ws",
    }))
    .await;
    let frame = loop {
        let frame = ws.next().await;
        if frame["type"] == "error" || frame["type"] == "ack" {
            break frame;
        }
    };
    assert_eq!(frame["code"], "rate_limited", "{frame}");
    assert_eq!(frame["client_id"], "m-4");
    assert!(frame["retry_after_ms"].as_u64().unwrap() > 0);
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn write_rates_limit_follows_and_friend_requests_with_retry_after() {
    let server = TestServer::with_flags(&[
        "--write-rate",
        "follow=1/60",
        "--write-rate",
        "friend_request=2/2",
    ])
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let server = &server;
    let follow = |who: &User, whom: &User| {
        let (path, token) = (format!("/follows/{}", whom.id), who.token.clone());
        async move { server.put(&path, &token, None).await }
    };
    follow(&alice, &bob).await.ok(204);
    // Following again changes nothing and takes nothing.
    follow(&alice, &bob).await.ok(204);
    let refused = follow(&alice, &carol).await;
    refused.error(429, "rate_limited");
    assert_eq!(refused.retry_after().as_deref(), Some("60"));
    let followers = server
        .get(&format!("/users/{}/followers", carol.id), &carol.token)
        .await;
    assert_eq!(followers.ok(200)["items"], json!([]));
    // The limit is per user and per kind.
    follow(&bob, &carol).await.ok(204);
    let request = |who: &User, whom: &User| {
        let (token, body) = (who.token.clone(), json!({ "user_id": whom.id }));
        async move { server.post("/friend-requests", &token, body).await }
    };
    request(&alice, &bob).await.ok(200);
    request(&alice, &carol).await.ok(200);
    let refused = request(&alice, &dave).await;
    refused.error(429, "rate_limited");
    assert_eq!(refused.retry_after().as_deref(), Some("1800"));
    assert_no_server_errors(server).await;
}

#[tokio::test]
async fn no_rate_limits_switches_both_limits_off() {
    let server = TestServer::with_flags(&[
        "--no-rate-limits",
        "--auth-per-minute",
        "1",
        "--send-burst",
        "1",
        "--send-per-second",
        "1",
    ])
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    for _ in 0..5 {
        server.try_login("alice").await.ok(200);
    }
    server.befriend(&alice, &bob).await;
    let conversation = server.direct(&alice, &bob).await;
    for i in 0..10 {
        server
            .send_message(&alice, &conversation, &format!("m-{i}"), "hello")
            .await
            .ok(201);
    }
    assert_no_server_errors(&server).await;
}

// ---------------------------------------------------------------------------
// Health, metrics, request ids, CORS.

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let response = server
        .send(Method::GET, &server.url("/healthz"), None, None)
        .await;
    assert_eq!(response.ok(200), json!({"status": "ok"}));
}

#[tokio::test]
async fn metrics_count_requests_sockets_messages_and_frames() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.befriend(&alice, &bob).await;
    let conversation = server.direct(&alice, &bob).await;

    let text = server.metrics().await;
    assert!(text.contains("# TYPE kith_http_requests_total counter"));
    assert!(
        text.contains(
            r#"kith_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"kith_http_request_duration_seconds_bucket{method="POST",route="/api/v1/auth/register",le="+Inf"}"#
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE kith_ws_connections gauge"));
    assert_eq!(sample(&text, "kith_ws_connections"), Some(0.0));
    assert_eq!(sample(&text, "kith_messages_sent_total"), Some(0.0));
    assert_eq!(
        sample(&text, "kith_ws_slow_consumer_disconnects_total"),
        Some(0.0)
    );
    let frames_before = sample(&text, "kith_ws_frames_delivered_total").unwrap();

    // One socket open: the gauge says 1.
    let mut ws = server.connect_resumed(&bob.token).await;
    assert_eq!(server.metric("kith_ws_connections").await, 1.0);

    // A message: counted once (a retry with the same client_id is not a new
    // message), and its frame is delivered to Bob's socket.
    server
        .send_message(&alice, &conversation, "a-1", "hello")
        .await
        .ok(201);
    ws.next_of("message_created").await;
    assert_eq!(server.metric("kith_messages_sent_total").await, 1.0);
    server
        .send_message(&alice, &conversation, "a-1", "hello")
        .await
        .ok(201);
    assert_eq!(server.metric("kith_messages_sent_total").await, 1.0);
    ws.send(json!({
        "type": "send", "conversation_id": conversation, "client_id": "b-1", "body": "hi",
    }))
    .await;
    ws.next_of("ack").await;
    assert_eq!(server.metric("kith_messages_sent_total").await, 2.0);
    assert!(server.metric("kith_ws_frames_delivered_total").await > frames_before);

    // Closed: back to 0.
    ws.stream.close(None).await.unwrap();
    within("the connection gauge to drop", async {
        while server.metric("kith_ws_connections").await != 0.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_no_server_errors(&server).await;
}

#[tokio::test]
async fn request_metrics_are_labelled_by_route_template_not_raw_path() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    for id in [&alice.id, &bob.id] {
        server
            .get(&format!("/users/{id}"), &alice.token)
            .await
            .ok(200);
    }
    server
        .get("/users/999999", &alice.token)
        .await
        .error(404, "not_found");
    for path in ["/nope/1", "/nope/2", "/api/v1/users/1/nope"] {
        server
            .send(Method::GET, &server.url(path), None, None)
            .await;
    }
    let text = server.metrics().await;
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("kith_http_requests_total{{{labels}}} ")))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<f64>().ok())
    };
    assert_eq!(
        line(r#"method="GET",route="/api/v1/users/{user_id}",status="200""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        line(r#"method="GET",route="/api/v1/users/{user_id}",status="404""#),
        Some(1.0),
        "{text}"
    );
    // Paths that match no route share one series.
    assert_eq!(
        line(r#"method="GET",route="unmatched",status="404""#),
        Some(3.0),
        "{text}"
    );
    for raw in [alice.id.as_str(), bob.id.as_str(), "999999", "nope"] {
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("kith_http") && l.contains(&format!("/{raw}"))),
            "a raw path in the labels: {raw}\n{text}"
        );
    }
    assert!(text.contains(r#"route="/api/v1/auth/login""#), "{text}");
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let server = TestServer::start().await;
    let mut seen = Vec::new();
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1/me"),
        (Method::POST, "/metrics"),
    ] {
        let response = server.send(method, &server.url(path), None, None).await;
        let id = response.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 36, "not a UUID: {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "ids repeat: {seen:?}");
    // A caller's id is kept.
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    server
        .http
        .request(Method::OPTIONS, server.api("/me"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let server = TestServer::with_flags(&["--cors-origins", "http://app.example"]).await;
    let allowed = preflight(&server, "http://app.example").await;
    assert!(allowed.status().is_success());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://app.example");
    let allow_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    let allow_methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(allow_methods.contains("GET"), "{allow_methods}");

    let refused = preflight(&server, "http://evil.example").await;
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // A simple request from the allowed origin may read the response and
    // its request id and Retry-After headers.
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );

    // No origins configured: none allowed.
    let closed = TestServer::start().await;
    let response = preflight(&closed, "http://app.example").await;
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_endpoint_is_a_json_error() {
    let server = TestServer::start().await;
    let user = server.user("alice").await;
    let response = server.get("/ws", &user.token).await;
    assert!(response.status.is_client_error(), "{}", response.text);
    assert_error_shape(&response.headers, &response.body, &response.text);
    assert_no_server_errors(&server).await;
}

// ---------------------------------------------------------------------------
// TCP_NODELAY on accepted connections.

/// The server's end of the loopback connection whose client end is
/// `client`, found among this process's sockets (the server runs in it):
/// whether TCP_NODELAY is set on it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // getpeername and getsockopt on this process's descriptors
fn server_side_nodelay(client: std::net::SocketAddr) -> Option<bool> {
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, SocketAddr};
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: an all-zero `sockaddr_storage` is valid; `getpeername`
        // writes at most `len` bytes into it (a descriptor closed or reused
        // meanwhile only gives an error or another peer).
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc =
            unsafe { libc::getpeername(fd, (&raw mut storage).cast::<libc::sockaddr>(), &mut len) };
        if rc != 0 || i32::from(storage.ss_family) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so the storage holds a `sockaddr_in`.
        let v4 = unsafe { *(&raw const storage).cast::<libc::sockaddr_in>() };
        let peer = SocketAddr::from((
            Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
            u16::from_be(v4.sin_port),
        ));
        if peer != client {
            continue;
        }
        let mut value: libc::c_int = 0;
        let mut size = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `size` are valid for writes of a `c_int`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut value).cast::<libc::c_void>(),
                &mut size,
            )
        };
        return (rc == 0).then_some(value != 0);
    }
    None
}

/// A REST request and a WebSocket on their own connections: the server's
/// end of each, as it accepted it.
#[cfg(target_os = "linux")]
async fn nodelay_of_rest_and_websocket(server: &TestServer) -> (Option<bool>, Option<bool>) {
    let user = server.user("alice").await;
    let mut rest = TcpStream::connect(server.addr).await.unwrap();
    rest.write_all(b"GET /healthz HTTP/1.1\r\nHost: kith\r\n\r\n")
        .await
        .unwrap();
    let response = read_raw_response(&mut rest).await;
    assert_eq!(response.status, 200, "{response:?}");
    let rest_nodelay = server_side_nodelay(rest.local_addr().unwrap());

    let stream = TcpStream::connect(server.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (ws, _) = within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(server.ws_url(&user.token), stream),
    )
    .await
    .unwrap();
    let ws_nodelay = server_side_nodelay(local);
    drop(ws);
    (rest_nodelay, ws_nodelay)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay_rest_and_websocket() {
    let server = TestServer::start().await;
    assert_eq!(
        nodelay_of_rest_and_websocket(&server).await,
        (Some(true), Some(true))
    );
    // The check sees the difference: switched off, neither has it.
    let off = TestServer::with_flags(&["--tcp-nodelay", "false"]).await;
    assert_eq!(
        nodelay_of_rest_and_websocket(&off).await,
        (Some(false), Some(false))
    );
}

// ---------------------------------------------------------------------------
// Graceful shutdown.

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_finishes_requests_in_flight() {
    let mut server = TestServer::start().await;
    let user = server.user("alice").await;
    let mut ws = server.connect_resumed(&user.token).await;

    // A login in flight: the headers and half the body are sent.
    let body = json!({"login": "alice", "password": PASSWORD}).to_string();
    let (first, second) = body.as_bytes().split_at(10);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: kith\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.trigger_shutdown();
    assert_eq!(ws.closed().await, Ended::Close(1001));
    // `serve` waits for the request in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "serve returned before a request in flight finished"
    );
    stream.write_all(second).await.unwrap();
    let response = read_raw_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    let login: Value = serde_json::from_str(&response.body).unwrap();
    assert!(login["token"].is_string());

    server.stopped().await.unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
}

// ---------------------------------------------------------------------------
// Starting: database URLs and the binary.

#[tokio::test]
async fn a_sqlite_file_url_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kith.db");
    let url = format!("sqlite://{}", file.display());
    let server = TestServer::with(settings(&["--database-url", &url])).await;
    assert!(file.exists(), "{} was not created", file.display());
    server.user("alice").await;
    drop(server);
    // The data is in the file: a new server on it knows alice.
    let again = TestServer::with(settings(&["--database-url", &url])).await;
    again.try_register("alice").await.error(409, "conflict");
    // A plain path works too.
    let plain = dir.path().join("plain.db");
    let _server = TestServer::with(settings(&["--database-url", plain.to_str().unwrap()])).await;
    assert!(plain.exists());
}

#[tokio::test]
async fn servers_sharing_a_database_make_ids_with_node_numbers_of_their_own() {
    let url = kith_postgres::testing::fresh_database_url().await;
    let first = TestServer::with(settings(&["--database-url", &url])).await;
    let second = TestServer::with(settings(&["--database-url", &url])).await;
    let node = |id: &str| id.parse::<u64>().unwrap() & 0xff;
    let (alice, bob) = (first.user("alice").await, second.user("bob").await);
    assert_eq!((node(&alice.id), node(&bob.id)), (0, 1));
    // Each sees the other's users: one database.
    second.try_register("alice").await.error(409, "conflict");
    // A server that stops releases its number for the next one.
    let mut first = first;
    first.trigger_shutdown();
    first.stopped().await.unwrap();
    let third = TestServer::with(settings(&["--database-url", &url])).await;
    assert_eq!(node(&third.user("carol").await.id), 0);
}

#[tokio::test]
async fn other_database_urls_are_refused_with_a_clear_error() {
    for url in ["mysql://localhost/kith", "redis://localhost"] {
        match kith_server::build(settings(&["--database-url", url])).await {
            Ok(_) => panic!("{url} was accepted"),
            Err(error) => {
                assert!(
                    matches!(error, kith_server::StartError::UnsupportedDatabase(_)),
                    "{url}: {error:?}"
                );
                let message = error.to_string();
                assert!(
                    message.contains(url)
                        && message.contains("sqlite://")
                        && message.contains("postgres://"),
                    "{message}"
                );
            }
        }
    }
}

const BINARY: &str = env!("CARGO_BIN_EXE_kith-server");

/// A command running the binary with no `KITH_*` variables from outside.
fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("KITH_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn the_binary_reports_an_unreachable_postgres_server_at_once_without_panicking() {
    // Nothing listens on port 1: the connection is refused at once.
    let output = binary()
        .args(["--database-url", "postgres://kith@127.0.0.1:1/kith"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A child process killed (by its id) if the test ends before it exits.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_with_a_kith_db_file_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // The defaults but the port: the database is kith.db in the working
    // directory. Only the first line of stdout is read, then the pipe is
    // closed: the server must survive that (and log nowhere).
    let mut child = binary()
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let mut running = Running(Some(child));
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let first_line = within("the listening line", first_line).await.unwrap();
    assert!(
        first_line.contains("kith-server listening on http://127.0.0.1:"),
        "{first_line}"
    );
    assert!(first_line.contains("sqlite://kith.db"), "{first_line}");
    let base = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let health = support::client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(dir.path().join("kith.db").exists());

    // SIGTERM (to this child only): a graceful stop, exit status 0.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut child = running.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        (status, child)
    });
    let (status, child) = within("the binary to exit", status).await.unwrap();
    running.0 = Some(child);
    assert!(status.success(), "{status:?}");
}
