//! A real kith-server on a loopback port and a small JSON client for the
//! REST tests (`rest.rs`, `rest_chat.rs`).

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A running server; it shuts down when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT/api/v1`.
    pub base: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The user's id (decimal string).
    pub id: String,
    /// The username.
    pub username: String,
    /// The bearer token.
    pub token: String,
}

/// A response: status and JSON body (`Null` for an empty body).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        self.body
    }

    /// Asserts an error response with `status` and `code`, and the offending
    /// `field` when given.
    #[track_caller]
    pub fn err(self, status: u16, code: &str, field: Option<&str>) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"].is_string(),
            "body: {}",
            self.body
        );
        match field {
            Some(f) => assert_eq!(self.body["error"]["field"], f, "body: {}", self.body),
            None => assert!(
                self.body["error"].get("field").is_none(),
                "body: {}",
                self.body
            ),
        }
        self.body
    }
}

/// Starts a server without rate limits.
pub async fn start() -> Server {
    start_with(&["--no-rate-limits"]).await
}

/// Starts a server with extra command-line flags.
pub async fn start_with(flags: &[&str]) -> Server {
    use clap::Parser;
    let mut args = vec![
        "kith-server",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite::memory:",
    ];
    args.extend_from_slice(flags);
    let settings = kith_server::Settings::parse_from(args);
    let app = kith_server::build(settings).await.expect("build the app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(kith_server::serve(app, listener, async move {
        let _ = stopped.await;
    }));
    Server {
        base: format!("http://{addr}/api/v1"),
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Server {
    /// A request builder for `path` (relative to `/api/v1`), with the bearer
    /// token when given.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// Sends a built request and reads the reply. No request may end in a 500.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder.send().await.expect("send the request");
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("read the body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {text:?} (status {status})"))
        };
        assert!(!status.is_server_error(), "server error {status}: {body}");
        Reply {
            status,
            retry_after,
            body,
        }
    }

    /// `method path` with an optional token and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = self.request(method, path, token);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    /// `GET path` as `user`.
    pub async fn get(&self, user: &TestUser, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    /// `GET path` without a token.
    pub async fn get_anon(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    /// `POST path` with a JSON body as `user`.
    pub async fn post(&self, user: &TestUser, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// `POST path` without a body as `user`.
    pub async fn post_empty(&self, user: &TestUser, path: &str) -> Reply {
        self.call(Method::POST, path, Some(&user.token), None).await
    }

    /// `PATCH path` with a JSON body as `user`.
    pub async fn patch(&self, user: &TestUser, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&user.token), Some(body))
            .await
    }

    /// `PUT path` as `user`, with a JSON body when given.
    pub async fn put(&self, user: &TestUser, path: &str, body: Option<Value>) -> Reply {
        self.call(Method::PUT, path, Some(&user.token), body).await
    }

    /// `DELETE path` as `user`.
    pub async fn delete(&self, user: &TestUser, path: &str) -> Reply {
        self.call(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// A request with a raw body and an optional content type, as `user`.
    pub async fn raw(
        &self,
        user: &TestUser,
        method: Method,
        path: &str,
        body: &str,
        content_type: Option<&str>,
    ) -> Reply {
        let mut builder = self
            .request(method, path, Some(&user.token))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        self.send(builder).await
    }

    /// Registers `username` and logs in.
    pub async fn user(&self, username: &str) -> TestUser {
        let password = "correct horse battery";
        self.call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": password,
            })),
        )
        .await
        .ok(201);
        let login = self
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"login": username, "password": password})),
            )
            .await
            .ok(200);
        TestUser {
            id: login["account"]["id"]
                .as_str()
                .expect("the account id")
                .to_owned(),
            username: username.to_owned(),
            token: login["token"].as_str().expect("the token").to_owned(),
        }
    }

    /// Registers and logs in several users, concurrently.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [TestUser; N] {
        let all = futures::future::join_all(names.iter().map(|n| self.user(n))).await;
        all.try_into().expect("N users")
    }

    /// Makes `a` and `b` friends.
    pub async fn befriend(&self, a: &TestUser, b: &TestUser) {
        let outcome = self
            .post(a, "/friend-requests", json!({"user_id": b.id}))
            .await
            .ok(200);
        assert_eq!(outcome["outcome"], "pending");
        self.post_empty(b, &format!("/friend-requests/{}/accept", a.id))
            .await
            .ok(200);
    }
}

/// The `items` of a page, asserting the `{"items", "next_cursor"}` shape.
#[track_caller]
pub fn items(page: &Value) -> &Vec<Value> {
    let object = page.as_object().expect("a page is an object");
    assert_eq!(
        object.len(),
        2,
        "a page has exactly items and next_cursor: {page}"
    );
    assert!(
        page["next_cursor"].is_null() || page["next_cursor"].is_string(),
        "next_cursor is a string or null: {page}"
    );
    page["items"].as_array().expect("items is an array")
}

/// The `next_cursor` of a page.
#[track_caller]
pub fn cursor(page: &Value) -> Option<String> {
    items(page);
    page["next_cursor"].as_str().map(str::to_owned)
}

/// The usernames of a page of peers or friend request entries.
#[track_caller]
pub fn usernames(page: &Value) -> Vec<String> {
    items(page)
        .iter()
        .map(|p| {
            p["user"]["username"]
                .as_str()
                .expect("a username")
                .to_owned()
        })
        .collect()
}
