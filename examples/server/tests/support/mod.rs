//! The one harness of the server's tests (`e2e.rs`, `openapi.rs`, `ops.rs`,
//! `rest.rs`, `rest_chat.rs`; `nodes.rs`, which runs the binary, uses its
//! clients and types): a real kith-server (`build` + `serve`) on a loopback
//! port with a oneshot-driven shutdown, a JSON client (reqwest) and
//! WebSocket clients (tokio-tungstenite). Every network wait has a timeout
//! ([`WAIT`]), so a test that does not get what it expects fails instead of
//! hanging.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kith_server::Settings;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// [`Settings::for_tests`] plus command-line flags (`["--body-limit", "64"]`),
/// which may replace its `--listen`, `--database-url` and `--media-dir`.
pub fn settings(extra: &[&str]) -> Settings {
    let mut args = vec!["kith-server"];
    for (flag, value) in [
        ("--listen", "127.0.0.1:0"),
        ("--database-url", "sqlite::memory:"),
        ("--media-dir", ":memory:"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    Settings::from_args(args).unwrap()
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    /// The id, a decimal string.
    pub id: String,
    /// The username.
    pub name: String,
    /// A bearer token.
    pub token: String,
}

/// A response: status, headers, and the body as JSON (`Null` when empty or
/// not JSON; the raw text is kept too).
#[derive(Debug)]
pub struct Resp {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Resp {
    /// Asserts the status and returns (a copy of) the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self.body.clone()
    }

    /// Asserts an error response with `status` in the API's shape
    /// `{"error":{"code","message"}}` with `code`; returns the error object.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_error_shape(&self.headers, &self.body, &self.text);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "unexpected code; body: {}", self.text);
        error.clone()
    }

    /// Like [`Resp::error`], and the error names the offending `field`
    /// (or, for `None`, names none); returns the whole body.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str, field: Option<&str>) -> Value {
        let error = self.error(status, code);
        match field {
            Some(f) => assert_eq!(error["field"], f, "body: {}", self.text),
            None => assert!(error.get("field").is_none(), "body: {}", self.text),
        }
        self.body.clone()
    }

    /// The `Retry-After` header, if any.
    pub fn retry_after(&self) -> Option<String> {
        let value = self.headers.get(reqwest::header::RETRY_AFTER)?;
        Some(value.to_str().ok()?.to_owned())
    }
}

/// Asserts `{"error":{"code":"...","message":"..."}}` with a JSON content type.
#[track_caller]
pub fn assert_error_shape(headers: &HeaderMap, body: &Value, text: &str) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "error without a JSON content type ({content_type:?}): {text}"
    );
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("not the error shape: {text}"));
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "error without a code: {text}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {text}"
    );
    for key in error.keys() {
        assert!(
            matches!(key.as_str(), "code" | "message" | "field"),
            "unexpected key {key:?} in {text}"
        );
    }
}

/// A running server; stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client without proxies.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A reqwest client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

impl TestServer {
    /// A server with [`Settings::for_tests`].
    pub async fn start() -> Self {
        Self::with(Settings::for_tests()).await
    }

    /// A server without rate limits (`--no-rate-limits`).
    pub async fn unlimited() -> Self {
        Self::with_flags(&["--no-rate-limits"]).await
    }

    /// A server with [`Settings::for_tests`] plus `flags`.
    pub async fn with_flags(flags: &[&str]) -> Self {
        Self::with(settings(flags)).await
    }

    /// A server with `settings`, on a free loopback port.
    pub async fn with(settings: Settings) -> Self {
        let app = match kith_server::build(settings).await {
            Ok(app) => app,
            Err(e) => panic!("build failed: {e}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kith_server::serve(app, listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            http: client(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADDR/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.addr)
    }

    /// The WebSocket URL with `token` in the query string.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/api/v1/ws?access_token={token}", self.addr)
    }

    /// Completes the shutdown future given to `serve`.
    pub fn trigger_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `serve` to return.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        let task = self.task.take().expect("already stopped");
        within("serve to return", task).await.unwrap()
    }

    /// Whether `serve` has returned.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Sends `method` to `url` (absolute) with an optional bearer token and
    /// JSON body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = within(url, request.send()).await.unwrap();
        Resp::read(response).await
    }

    /// `method` on `/api/v1{path}`. No API request of these tests may end
    /// in a server error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let response = self.send(method, &self.api(path), token, body).await;
        assert!(
            !response.status.is_server_error(),
            "server error {}: {}",
            response.status,
            response.text
        );
        response
    }

    /// `GET /api/v1{path}`.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `GET /api/v1{path}` without a token.
    pub async fn get_anon(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, None).await
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(&body))
            .await
    }

    /// `POST /api/v1{path}` without a body.
    pub async fn post_empty(&self, path: &str, token: &str) -> Resp {
        self.call(Method::POST, path, Some(token), None).await
    }

    /// `PATCH /api/v1{path}` with a JSON body.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    /// `PUT /api/v1{path}`, with a JSON body when given.
    pub async fn put(&self, path: &str, token: &str, body: Option<Value>) -> Resp {
        self.call(Method::PUT, path, Some(token), body.as_ref())
            .await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// `method` on `/api/v1{path}` with a raw body and an optional content
    /// type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &str,
        content_type: Option<&str>,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, self.api(path))
            .bearer_auth(token)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = within(path, request.send()).await.unwrap();
        Resp::read(response).await
    }

    /// Registers `name`; returns the response.
    pub async fn try_register(&self, name: &str) -> Resp {
        let body = json!({
            "username": name,
            "email": format!("{name}@example.com"),
            "password": PASSWORD,
        });
        self.call(Method::POST, "/auth/register", None, Some(&body))
            .await
    }

    /// Logs `name` in; returns the response.
    pub async fn try_login(&self, name: &str) -> Resp {
        let body = json!({"login": name, "password": PASSWORD});
        self.call(Method::POST, "/auth/login", None, Some(&body))
            .await
    }

    /// Registers and logs in `name`.
    pub async fn user(&self, name: &str) -> User {
        let account = self.try_register(name).await;
        let id = account.ok(201)["id"].as_str().unwrap().to_owned();
        let login = self.try_login(name).await;
        let login = login.ok(200);
        assert_eq!(login["account"]["id"], id.as_str());
        User {
            id,
            name: name.to_owned(),
            token: login["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers and logs in several users, concurrently.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [User; N] {
        let all = futures::future::join_all(names.iter().map(|n| self.user(n))).await;
        match all.try_into() {
            Ok(users) => users,
            Err(_) => unreachable!("one user per name"),
        }
    }

    /// `a` asks, `b` accepts.
    pub async fn befriend(&self, a: &User, b: &User) {
        let sent = self
            .post("/friend-requests", &a.token, json!({"user_id": b.id}))
            .await;
        assert!(sent.status.is_success(), "friend request: {}", sent.text);
        let accepted = self
            .call(
                Method::POST,
                &format!("/friend-requests/{}/accept", a.id),
                Some(&b.token),
                None,
            )
            .await;
        assert!(accepted.status.is_success(), "accept: {}", accepted.text);
    }

    /// Opens (as `a`) the direct conversation of `a` and `b`; returns its id.
    pub async fn direct(&self, a: &User, b: &User) -> String {
        let conversation = self
            .post("/conversations/direct", &a.token, json!({"user_id": b.id}))
            .await;
        conversation.ok(200)["id"].as_str().unwrap().to_owned()
    }

    /// Sends a message over REST; returns the response.
    pub async fn send_message(
        &self,
        user: &User,
        conversation: &str,
        client_id: &str,
        text: &str,
    ) -> Resp {
        self.post(
            &format!("/conversations/{conversation}/messages"),
            &user.token,
            json!({"client_id": client_id, "body": text}),
        )
        .await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .send(Method::GET, &self.url("/metrics"), None, None)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        response.text
    }

    /// The value of the unlabelled sample `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        sample(&self.metrics().await, name)
            .unwrap_or_else(|| panic!("no sample {name} in /metrics"))
    }

    /// A WebSocket connection with `token` in the query string.
    pub async fn connect(&self, token: &str) -> Ws {
        let (stream, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(self.ws_url(token)),
        )
        .await
        .unwrap();
        Ws { stream }
    }

    /// A WebSocket connection that has resumed (with no known
    /// conversations) and read its `resume_complete` and `unread` frames.
    pub async fn connect_resumed(&self, token: &str) -> Ws {
        let mut ws = self.connect(token).await;
        ws.send(json!({"type": "resume", "conversations": {}}))
            .await;
        ws.next_of("resume_complete").await;
        ws.next_of("unread").await;
        ws
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

/// The value of the sample `name` (a whole line `name value`) in a
/// Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
}

impl Resp {
    /// Reads a reqwest response.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = within("a response body", response.text()).await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }
}

/// A WebSocket client.
pub struct Ws {
    /// The connection.
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a WebSocket read ended, when it did not yield a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Close(u16),
    /// The stream ended without a close frame (or with an error).
    Gone,
}

impl Ws {
    /// Sends a JSON text frame.
    pub async fn send(&mut self, frame: Value) {
        within(
            "sending a frame",
            self.stream.send(Message::text(frame.to_string())),
        )
        .await
        .unwrap();
    }

    /// The next JSON text frame, or how the connection ended.
    pub async fn try_next(&mut self) -> Result<Value, Ended> {
        loop {
            let message = within("a WebSocket frame", self.stream.next()).await;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Close(frame.map_or(1005, |f| u16::from(f.code))))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ended::Gone),
            }
        }
    }

    /// The next JSON text frame.
    pub async fn next(&mut self) -> Value {
        match self.try_next().await {
            Ok(frame) => frame,
            Err(end) => panic!("the connection ended ({end:?}) while a frame was expected"),
        }
    }

    /// The next frame of type `kind`, skipping others (presence, typing...).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
            assert_ne!(frame["type"], "error", "unexpected error frame: {frame}");
        }
    }

    /// Reads until the connection closes; returns the close code (skipping
    /// any frames before it).
    pub async fn closed(&mut self) -> Ended {
        loop {
            if let Err(end) = self.try_next().await {
                return end;
            }
        }
    }
}

/// Asserts that `/metrics` counts no 5xx response.
pub async fn assert_no_server_errors(server: &TestServer) {
    let metrics = server.metrics().await;
    let failures: Vec<_> = metrics
        .lines()
        .filter(|l| l.starts_with("kith_http_requests_total{") && l.contains("status=\"5"))
        .collect();
    assert!(failures.is_empty(), "server errors: {failures:?}");
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl RawResponse {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` off `stream`.
pub async fn read_raw_response(stream: &mut TcpStream) -> RawResponse {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = within("a raw response", stream.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "the connection closed before a response");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = within("a raw response body", stream.read(&mut chunk))
            .await
            .unwrap();
        assert!(n > 0, "the connection closed inside a body");
        body.extend_from_slice(&chunk[..n]);
    }
    RawResponse {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}
