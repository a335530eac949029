//! The shared harness of the WebSocket tests: a real axum server on a
//! loopback port over an in-memory SQLite store, and real tokio-tungstenite
//! clients. Every wait on the network has a timeout ([`WAIT`]), so a test
//! that does not get what it expects fails instead of hanging.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kith_core::{
    Argon2Hasher, Config, ConversationId, Delivery, DirectMessages, EventSink, History, Kith,
    Message as ChatMessage, NewGroup, NewMessage, NewUser, UserId,
};
use kith_sqlite::SqliteStore;
use kith_ws::{Hub, KithSessions, WsConfig, WsServer};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls `condition` until it holds, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A server's settings: core's and the transport's.
pub struct Setup {
    /// Core's configuration.
    pub core: Config,
    /// The transport's configuration.
    pub ws: WsConfig,
    /// The server sockets' send buffer (`SO_SNDBUF`, which accepted sockets
    /// inherit from the listener). `None` leaves it to the kernel, which on
    /// loopback grows it to megabytes: a stalled client then takes
    /// hundreds of messages to notice.
    pub send_buffer: Option<u32>,
}

impl Default for Setup {
    /// No send rate limit, friends-only direct messages, presence off (most
    /// tests count every frame; the presence tests switch it on).
    fn default() -> Self {
        let mut core = Config::default();
        core.send_rate = None;
        core.direct_messages = DirectMessages::FriendsOnly;
        let mut ws = WsConfig::default();
        ws.presence = false;
        Self {
            core,
            ws,
            send_buffer: None,
        }
    }
}

/// A user and a session token of theirs.
pub struct User {
    pub id: UserId,
    pub token: String,
}

/// A running server; stops when dropped.
pub struct Server {
    pub kith: Kith,
    pub ws: WsServer,
    /// Between Kith and the hub: can hold events back.
    pub gate: Arc<Gate>,
    /// The store under Kith (closing it makes every call fail).
    pub store: SqliteStore,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A server with the default [`Setup`].
    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    /// A server with `setup`, listening on a free loopback port.
    pub async fn with(setup: Setup) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = setup.send_buffer {
            socket.set_send_buffer_size(size).unwrap();
        }
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let (kith, ws, gate, store) = build(setup).await;
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().nest("/ws", ws.router());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            kith,
            ws,
            gate,
            store,
            addr,
            task,
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        self.ws.hub()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A new user with a session, without password hashing.
    pub async fn user(&self, name: &str) -> User {
        let account = self
            .kith
            .accounts()
            .create_user(NewUser {
                username: name.into(),
                email: None,
            })
            .await
            .unwrap();
        User {
            id: account.id,
            token: self.session(account.id).await,
        }
    }

    /// Another session of `user`; returns its token.
    pub async fn session(&self, user: UserId) -> String {
        self.kith
            .accounts()
            .create_session(user)
            .await
            .unwrap()
            .token
    }

    pub async fn befriend(&self, a: &User, b: &User) {
        let graph = self.kith.graph();
        graph.send_friend_request(a.id, b.id).await.unwrap();
        graph.accept_friend_request(b.id, a.id).await.unwrap();
    }

    /// Makes `a` and `b` friends and opens their direct conversation.
    pub async fn direct(&self, a: &User, b: &User) -> ConversationId {
        self.befriend(a, b).await;
        self.kith.chat().open_direct(a.id, b.id).await.unwrap().id
    }

    /// Alice and Bob, friends, and their direct conversation.
    pub async fn alice_and_bob(&self) -> (User, User, ConversationId) {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let conv = self.direct(&alice, &bob).await;
        (alice, bob, conv)
    }

    pub async fn group(&self, owner: &User, members: &[&User]) -> ConversationId {
        let input = NewGroup {
            title: "group".into(),
            members: members.iter().map(|u| u.id).collect(),
        };
        self.kith
            .chat()
            .create_group(owner.id, input)
            .await
            .unwrap()
            .id
    }

    /// Sends a message through core (not through a socket).
    pub async fn post(
        &self,
        from: &User,
        conversation: ConversationId,
        client_id: &str,
    ) -> ChatMessage {
        let input = NewMessage {
            client_id: client_id.into(),
            body: format!("message {client_id}"),
            reply_to: None,
        };
        self.kith
            .chat()
            .send(from.id, conversation, input)
            .await
            .unwrap()
    }

    /// What is stored in a conversation, oldest first (up to 100 messages).
    pub async fn history(&self, actor: &User, conversation: ConversationId) -> Vec<ChatMessage> {
        self.kith
            .chat()
            .history(actor.id, conversation, History::Latest, Some(100))
            .await
            .unwrap()
            .messages
    }

    /// A handshake request for the endpoint with a bearer token.
    pub fn request(&self, token: &str) -> Request {
        let mut request = self.url().into_client_request().unwrap();
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        request.headers_mut().insert("authorization", bearer);
        request
    }

    /// Opens a connection with `token`, without sending anything.
    pub async fn connect(&self, token: &str) -> Client {
        self.open(self.request(token)).await.0
    }

    /// Opens a connection with a prepared request; returns the handshake
    /// response too.
    pub async fn open(&self, request: Request) -> (Client, Response) {
        let (ws, response) = within("the handshake", tokio_tungstenite::connect_async(request))
            .await
            .unwrap();
        (Client::new(ws), response)
    }

    /// Opens a connection whose socket has a tiny receive buffer, so that a
    /// client that stops reading stalls the server's writes quickly.
    pub async fn connect_tiny_buffer(&self, token: &str) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(self.addr).await.unwrap();
        let (ws, _) = within(
            "the handshake",
            tokio_tungstenite::client_async(self.request(token), MaybeTlsStream::Plain(stream)),
        )
        .await
        .unwrap();
        Client::new(ws)
    }

    /// Connects and starts afresh: an empty `resume`, then the `unread` frame.
    pub async fn join(&self, token: &str) -> Client {
        let mut client = self.connect(token).await;
        client.start().await;
        client
    }

    /// Waits until the hub counts `n` open connections.
    pub async fn connections_become(&self, n: usize) {
        let hub = Arc::clone(self.hub());
        eventually(&format!("{n} open connections"), || {
            hub.stats().connections.load(Ordering::Relaxed) == n
        })
        .await;
    }
}

/// Builds Kith over a fresh in-memory store and the transport over it,
/// with a [`Gate`] between the two; returns the store too.
pub async fn build(setup: Setup) -> (Kith, WsServer, Arc<Gate>, SqliteStore) {
    let store = SqliteStore::memory().await.unwrap();
    let hub = Arc::new(Hub::new(setup.ws.hub));
    let gate = Arc::new(Gate {
        hub: Arc::clone(&hub),
        held: Mutex::new(None),
    });
    let kith = Kith::builder(Arc::new(store.clone()))
        .sink(gate.clone())
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .config(setup.core)
        .spawner(Arc::new(|task| {
            tokio::spawn(task);
        }))
        .build();
    let auth = Arc::new(KithSessions(kith.clone()));
    let ws = WsServer::new(kith.clone(), hub, auth, setup.ws);
    (kith, ws, gate, store)
}

/// The event sink Kith is built with: it passes every delivery straight to
/// the hub, unless told to hold them, to model a change that is published
/// late (after its commit was already visible to readers).
pub struct Gate {
    hub: Arc<Hub>,
    held: Mutex<Option<Vec<Delivery>>>,
}

impl Gate {
    /// Holds deliveries from now on.
    pub fn hold(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }

    /// Publishes the held deliveries, in order, and stops holding.
    pub fn release(&self) {
        let held = self.held.lock().unwrap().take();
        for delivery in held.into_iter().flatten() {
            self.hub.publish(delivery);
        }
    }
}

impl EventSink for Gate {
    fn publish(&self, delivery: Delivery) {
        let mut held = self.held.lock().unwrap();
        match held.as_mut() {
            Some(queue) => queue.push(delivery),
            None => {
                drop(held);
                self.hub.publish(delivery);
            }
        }
    }
}

/// The `type` of a frame.
pub fn ty(frame: &Value) -> &str {
    frame["type"].as_str().unwrap_or("")
}

/// A `send` frame.
pub fn send(conversation: ConversationId, client_id: &str, body: &str) -> Value {
    json!({
        "type": "send",
        "conversation_id": conversation,
        "client_id": client_id,
        "body": body,
    })
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub struct Ending {
    /// Text frames received before the end.
    pub frames: Vec<Value>,
    /// The close code, or `None` if the socket ended without a close frame.
    pub code: Option<u16>,
}

/// What a `resume` brought back.
#[derive(Debug)]
pub struct CatchUp {
    /// The replayed `change` frames, in order.
    pub changes: Vec<Value>,
    /// The `failed` map of `resume_complete`: conversations that could not
    /// be resumed.
    pub failed: Value,
    /// The `conversations` of `resume_complete`.
    pub reached: Value,
    /// The `unread` frame that follows.
    pub unread: Value,
}

/// A client connection: JSON frames in and out, every read bounded by [`WAIT`].
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read but not consumed yet, in arrival order.
    backlog: VecDeque<Value>,
}

static SENTINELS: AtomicU64 = AtomicU64::new(0);

impl Client {
    fn new(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            backlog: VecDeque::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        within("a write", self.ws.send(message)).await.unwrap();
    }

    /// Sends `resume` with the given last seen versions.
    pub async fn resume(&mut self, conversations: Value) {
        self.send(json!({ "type": "resume", "conversations": conversations }))
            .await;
    }

    /// The fresh start: an empty `resume`, answered by an empty
    /// `resume_complete` and then the `unread` counts, which it returns.
    pub async fn start(&mut self) -> Value {
        self.resume(json!({})).await;
        let complete = self.find("resume_complete").await;
        assert_eq!(complete["conversations"], json!({}));
        assert_eq!(complete["failed"], json!({}));
        self.find("unread").await
    }

    /// Resumes from the given last seen versions: reads the replay up to
    /// `resume_complete` and the `unread` frame after it. Any other frame
    /// in between fails the test.
    pub async fn catch_up(&mut self, conversations: Value) -> CatchUp {
        self.resume(conversations).await;
        let mut changes = Vec::new();
        let complete = loop {
            let frame = self.next().await;
            match ty(&frame) {
                "change" => changes.push(frame),
                "resume_complete" => break frame,
                other => panic!("unexpected {other} frame during the replay: {frame}"),
            }
        };
        let unread = self.expect("unread").await;
        CatchUp {
            changes,
            failed: complete["failed"].clone(),
            reached: complete["conversations"].clone(),
            unread,
        }
    }

    /// The next text frame off the socket, skipping pings and pongs.
    async fn read(&mut self) -> Value {
        loop {
            match within("a frame", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => panic!("the connection ended while a frame was expected: {other:?}"),
            }
        }
    }

    /// The next frame.
    pub async fn next(&mut self) -> Value {
        match self.backlog.pop_front() {
            Some(frame) => frame,
            None => self.read().await,
        }
    }

    /// The next frame, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(ty(&frame), kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// The first frame of type `kind`; the frames before it stay queued.
    pub async fn find(&mut self, kind: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|f| ty(f) == kind) {
            return self.backlog.remove(i).unwrap();
        }
        loop {
            let frame = self.read().await;
            if ty(&frame) == kind {
                return frame;
            }
            self.backlog.push_back(frame);
        }
    }

    /// Sends a `ping` and returns every frame that arrived before its `pong`:
    /// what the server had queued for this connection up to now.
    pub async fn until_pong(&mut self) -> Vec<Value> {
        let id = format!("sentinel-{}", SENTINELS.fetch_add(1, Ordering::Relaxed));
        self.send(json!({ "type": "ping", "client_id": id })).await;
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            if ty(&frame) == "pong" && frame["client_id"] == id.as_str() {
                return frames;
            }
            frames.push(frame);
        }
    }

    /// The next frame, which must be the `done` answer with this
    /// `client_id` (`None`: without one) and `changed`.
    pub async fn done(&mut self, client_id: Option<&str>, changed: bool) {
        let mut expected = json!({ "type": "done", "changed": changed });
        if let Some(id) = client_id {
            expected["client_id"] = json!(id);
        }
        assert_eq!(self.next().await, expected);
    }

    /// Asserts that nothing else was queued for this connection.
    pub async fn assert_quiet(&mut self) {
        let extra = self.until_pong().await;
        assert!(extra.is_empty(), "unexpected frames: {extra:?}");
    }

    /// Reads until the server closes: the close frame's code, or `None` if
    /// the socket ended (or broke) without one.
    pub async fn ending(&mut self) -> Ending {
        let mut frames: Vec<Value> = self.backlog.drain(..).collect();
        loop {
            match within("the connection to end", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => frames.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(close))) => {
                    return Ending {
                        frames,
                        code: close.map(|c| c.code.into()),
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return Ending { frames, code: None },
            }
        }
    }

    /// Reads until the server closes, which it must do with `code`.
    pub async fn closed_with(&mut self, code: u16) -> Vec<Value> {
        let ending = self.ending().await;
        assert_eq!(
            ending.code,
            Some(code),
            "frames before the end: {:?}",
            ending.frames
        );
        ending.frames
    }

    /// The underlying socket, for tests that drive it directly.
    pub fn socket(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}
