//! Several nodes, end to end: real `kith-server` processes (the built
//! binary) sharing one throwaway PostgreSQL database, with real WebSocket
//! clients on each. What a client on one node gets of a conversation that
//! others change through another node: every message once, in `seq` order,
//! whether it arrives live (`message_created`), relayed from another node
//! (`change` frames of the sequencer) or replayed after a reconnection
//! (`change` frames of `resume`); that a node killed mid-stream and
//! restarted loses nothing for its clients; that a node that fell behind
//! catches up without closing its clients; and what a logout on one node
//! does to the user's sockets on another.
//!
//! The clients behave as docs/PROTOCOL.md asks: closed with 4008 or 4009,
//! they reconnect at once, resume from the last version they saw and send
//! their unacknowledged sends again (same `client_id`).
//!
//! Every child process is killed when its [`Node`] is dropped, so a failing
//! test leaves none behind. Waits are generous ([`LONG`]): nothing here
//! asserts speed.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use support::{Ended, Resp, User, Ws, PASSWORD};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

const BINARY: &str = env!("CARGO_BIN_EXE_kith-server");

/// The longest wait for anything these tests wait for.
const LONG: Duration = Duration::from_secs(30);

/// How long a client must stay quiet after it got everything, so that a
/// late duplicate would be seen: longer than the nodes' poll (1 s).
const QUIET: Duration = Duration::from_millis(2_500);

// ---------------------------------------------------------------------------
// Nodes: kith-server processes.

/// REST access to one node.
#[derive(Clone)]
struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    /// `method` on `/api/v1{path}`; no request of these tests may end in a
    /// server error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = match timeout(LONG, request.send()).await {
            Ok(response) => response.unwrap(),
            Err(_) => panic!(
                "timed out after {LONG:?} waiting for {path} on {}",
                self.base
            ),
        };
        let response = Resp::read(response).await;
        assert!(
            !response.status.is_server_error(),
            "server error {} on {path}: {}",
            response.status,
            response.text
        );
        response
    }

    /// Logs `name` in; returns a new token.
    async fn login(&self, name: &str) -> String {
        let login = self
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"login": name, "password": PASSWORD})),
            )
            .await;
        login.ok(200)["token"].as_str().unwrap().to_owned()
    }

    /// Registers and logs in `name`.
    async fn user(&self, name: &str) -> User {
        let account = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({
                    "username": name,
                    "email": format!("{name}@example.com"),
                    "password": PASSWORD,
                })),
            )
            .await;
        let id = account.ok(201)["id"].as_str().unwrap().to_owned();
        User {
            id,
            name: name.to_owned(),
            token: self.login(name).await,
        }
    }

    /// Sends a message; returns its `seq`.
    async fn send(&self, user: &User, conversation: &str, client_id: &str) -> u64 {
        let sent = self
            .call(
                Method::POST,
                &format!("/conversations/{conversation}/messages"),
                Some(&user.token),
                Some(json!({"client_id": client_id, "body": format!("hello {client_id}")})),
            )
            .await;
        sent.ok(201)["seq"].as_u64().unwrap()
    }
}

/// A running `kith-server` process, killed (SIGKILL) when dropped.
struct Node {
    name: String,
    addr: SocketAddr,
    rest: Rest,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Node {
    /// Starts the binary on an OS-chosen loopback port over `database_url`
    /// (without rate limits, which 300 messages from a few users would
    /// hit) and waits for the line saying where it listens. Its output is
    /// forwarded to the test's, prefixed with `name`.
    async fn start(name: &str, database_url: &str) -> Node {
        let mut command = Command::new(BINARY);
        for (key, _) in std::env::vars() {
            if key.starts_with("KITH_") {
                command.env_remove(key);
            }
        }
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
                "--media-dir",
                ":memory:",
                "--no-rate-limits",
                "--log",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut node = Node {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rest: Rest {
                base: String::new(),
                http: support::client(),
            },
            child: Some(child),
        };
        let (first_tx, first_rx) = oneshot::channel::<String>();
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            let mut first = Some(first_tx);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                match first.take() {
                    Some(first) => {
                        let _ = first.send(line);
                    }
                    None => eprintln!("[node {prefix}] {line}"),
                }
            }
        });
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[node {prefix} stderr] {line}");
            }
        });
        let first = match timeout(LONG, first_rx).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => panic!("node {name} exited before listening (see its stderr above)"),
            Err(_) => panic!("node {name} did not say where it listens within {LONG:?}"),
        };
        let base = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("node {name}: no address in {first:?}"));
        node.addr = base.parse().unwrap();
        assert!(node.addr.ip().is_loopback(), "{first}");
        node.rest.base = format!("http://{}", node.addr);
        node
    }

    /// Kills the process (SIGKILL on unix: no graceful anything) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the process `SIG{name}` (`STOP`, `CONT`).
    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// The WebSocket URL with `token` in the query string.
    fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/api/v1/ws?access_token={token}", self.addr)
    }
}

/// Creates a group of `admin` and `members` through `rest`; returns its id
/// and version.
async fn group(rest: &Rest, admin: &User, members: &[User]) -> (String, u64) {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let created = rest
        .call(
            Method::POST,
            "/conversations",
            Some(&admin.token),
            Some(json!({"title": "Two nodes", "members": ids})),
        )
        .await;
    let created = created.ok(201);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["version"].as_u64().unwrap(),
    )
}

/// Registers `n` users, alternately through each of `nodes`.
async fn users(nodes: &[&Node], n: usize) -> Vec<User> {
    futures::future::join_all(
        (0..n).map(|i| async move { nodes[i % nodes.len()].rest.user(&format!("user{i}")).await }),
    )
    .await
}

// ---------------------------------------------------------------------------
// Clients: a WebSocket that follows one conversation and records what it
// gets of it.

/// A client's WebSocket.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a client got of its conversation, over all its connections.
#[derive(Debug, Default)]
struct Seen {
    /// The `seq` of every message frame of the conversation
    /// (`message_created`, or a `change` of kind `message`), in the order
    /// the frames arrived.
    seqs: Vec<u64>,
    /// The highest version of the conversation seen: what a reconnection
    /// resumes from.
    version: u64,
    /// The client's sends not acknowledged yet, in the order sent: sent
    /// again (same `client_id`) after a reconnection.
    pending: Vec<(String, Value)>,
    /// The `seq` of each of the client's acknowledged sends, by `client_id`.
    acked: BTreeMap<String, u64>,
    /// Every `error` frame.
    errors: Vec<Value>,
    /// How many of the message frames were `change` frames (relayed from
    /// another node, or replayed), and how many `message_created`.
    changes: usize,
    /// See `changes`.
    created: usize,
    /// How each connection that ended ended.
    ended: Vec<Ended>,
}

impl Seen {
    /// Records one server frame.
    fn record(&mut self, conversation: &str, frame: &Value) {
        match frame["type"].as_str() {
            Some("message_created") if frame["message"]["conversation_id"] == conversation => {
                self.created += 1;
                self.message(&frame["message"]);
            }
            Some("change") if frame["conversation_id"] == conversation => {
                let change = &frame["change"];
                if change["change"] == "message" {
                    self.changes += 1;
                    self.message(&change["message"]);
                } else if let Some(version) = change["version"].as_u64() {
                    self.version = self.version.max(version);
                }
            }
            Some("ack") => {
                let client_id = frame["client_id"].as_str().unwrap();
                self.pending.retain(|(id, _)| id != client_id);
                self.acked
                    .insert(client_id.to_owned(), frame["seq"].as_u64().unwrap());
            }
            Some("error") => self.errors.push(frame.clone()),
            Some("resume_complete") => {
                if let Some(version) = frame["conversations"][conversation].as_u64() {
                    self.version = self.version.max(version);
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, message: &Value) {
        self.seqs.push(message["seq"].as_u64().unwrap());
        self.version = self.version.max(message["version"].as_u64().unwrap());
    }
}

/// Opens `who`'s WebSocket to `url`, resumes `conversation` from the last version
/// seen and reads up to `resume_complete` (recording the replay). Returns
/// the socket and how many messages the replay carried, or why it failed.
async fn open(
    who: &str,
    url: &str,
    conversation: &str,
    seen: &Mutex<Seen>,
) -> Result<(Socket, usize), String> {
    let (mut socket, _) = match timeout(LONG, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => return Err(format!("no WebSocket handshake: {e}")),
        Err(_) => return Err(format!("no WebSocket handshake within {LONG:?}")),
    };
    let (since, before) = {
        let seen = seen.lock().unwrap();
        (seen.version, seen.seqs.len())
    };
    let resume = json!({"type": "resume", "conversations": {conversation: since}});
    if let Err(e) = socket.send(Message::text(resume.to_string())).await {
        return Err(format!("resume not sent: {e}"));
    }
    let deadline = Instant::now() + LONG;
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                serde_json::from_str::<Value>(text.as_str()).unwrap()
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return Err(format!("the connection ended while resuming: {other:?}")),
            Err(_) => return Err(format!("no resume_complete within {LONG:?}")),
        };
        seen.lock().unwrap().record(conversation, &frame);
        if frame["type"] == "resume_complete" {
            assert_eq!(frame["failed"], json!({}), "{frame}");
            assert!(frame["conversations"][conversation].is_u64(), "{frame}");
            let replayed = seen.lock().unwrap().seqs.len() - before;
            eprintln!("{who}: resumed from version {since}, {replayed} messages replayed");
            return Ok((socket, replayed));
        }
    }
}

/// A connection's task: writes the queued frames and records every frame
/// read. When the server closes the connection asking for a resume (4008,
/// slow consumer; 4009, the node's link to the others dropped), it
/// reconnects to the same node at once, resumes and sends the
/// unacknowledged sends again, as the protocol tells clients to. Returns
/// how the connection ended otherwise.
async fn run(
    mut socket: Socket,
    who: String,
    url: String,
    mut queued: mpsc::UnboundedReceiver<Value>,
    seen: Arc<Mutex<Seen>>,
    conversation: String,
) -> Ended {
    loop {
        let ended = run_until_ended(socket, &mut queued, &seen, &conversation).await;
        seen.lock().unwrap().ended.push(ended);
        if !matches!(ended, Ended::Close(4008 | 4009)) {
            return ended;
        }
        eprintln!("{who}: closed with {ended:?}; reconnecting");
        socket = match open(&who, &url, &conversation, &seen).await {
            Ok((socket, _)) => socket,
            Err(e) => {
                eprintln!("{who}: could not reconnect: {e}");
                return Ended::Gone;
            }
        };
        let pending = seen.lock().unwrap().pending.clone();
        for (_, frame) in pending {
            if socket.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
        }
    }
}

/// One connection of [`run`].
async fn run_until_ended(
    socket: Socket,
    queued: &mut mpsc::UnboundedReceiver<Value>,
    seen: &Mutex<Seen>,
    conversation: &str,
) -> Ended {
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            Some(frame) = queued.recv() => {
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    return Ended::Gone;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        return Ended::Gone;
                    };
                    seen.lock().unwrap().record(conversation, &frame);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ended::Close(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ended::Gone,
            },
        }
    }
}

/// One open connection of a client (with its reconnections): its task,
/// and the frames to send through it.
struct Link {
    out: mpsc::UnboundedSender<Value>,
    task: JoinHandle<Ended>,
}

/// A member following the group over a WebSocket, across reconnections.
struct Client {
    user: User,
    conversation: String,
    seen: Arc<Mutex<Seen>>,
    link: Option<Link>,
}

impl Client {
    fn new(user: User, conversation: &str, version: u64) -> Self {
        let seen = Seen {
            version,
            ..Seen::default()
        };
        Self {
            user,
            conversation: conversation.to_owned(),
            seen: Arc::new(Mutex::new(seen)),
            link: None,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// Connects to `node`, resumes the conversation from the last version
    /// seen and waits for `resume_complete` (recording the replay); then
    /// reads and writes in a task of its own until the connection ends.
    /// Returns how many messages the replay carried.
    async fn connect(&mut self, node: &Node) -> usize {
        let url = node.ws_url(&self.user.token);
        let who = format!("{} on {}", self.user.name, node.name);
        let (socket, replayed) = match open(&who, &url, &self.conversation, &self.seen).await {
            Ok(opened) => opened,
            Err(e) => panic!("{who}: {e}"),
        };
        let (out, queued) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            socket,
            who,
            url,
            queued,
            Arc::clone(&self.seen),
            self.conversation.clone(),
        ));
        self.link = Some(Link { out, task });
        replayed
    }

    /// Sends `n` messages over the WebSocket at once (pipelined), with
    /// client ids `{prefix}-{i}`.
    fn send_many(&self, prefix: &str, n: usize) {
        let link = self.link.as_ref().unwrap();
        for i in 0..n {
            let client_id = format!("{prefix}-{i}");
            let frame = json!({
                "type": "send",
                "conversation_id": self.conversation,
                "client_id": client_id,
                "body": format!("hello {client_id}"),
            });
            self.seen().pending.push((client_id, frame.clone()));
            link.out.send(frame).unwrap();
        }
    }

    /// Waits for the current connection to end; returns how.
    async fn ended(&mut self) -> Ended {
        let link = self.link.take().unwrap();
        match timeout(LONG, link.task).await {
            Ok(ended) => ended.unwrap(),
            Err(_) => panic!("{}: the connection did not end", self.user.name),
        }
    }

    /// Asserts that the client got exactly `expected` (sorted `seq`s), in
    /// that order, and no error frame.
    #[track_caller]
    fn assert_got(&self, expected: &[u64]) {
        let seen = self.seen();
        assert!(
            seen.errors.is_empty(),
            "{}: error frames {:?}",
            self.user.name,
            seen.errors
        );
        if seen.seqs != expected {
            let mut sorted = seen.seqs.clone();
            sorted.sort_unstable();
            let duplicates: Vec<u64> = sorted
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| w[0])
                .collect();
            sorted.dedup();
            let missing: Vec<u64> = expected
                .iter()
                .filter(|s| sorted.binary_search(s).is_err())
                .copied()
                .collect();
            let out_of_order: Vec<(u64, u64)> = seen
                .seqs
                .windows(2)
                .filter(|w| w[0] >= w[1])
                .map(|w| (w[0], w[1]))
                .collect();
            panic!(
                "{}: got {} message frames for {} messages; duplicates {duplicates:?}, \
                 missing {missing:?}, out of order (a then b) {out_of_order:?}; \
                 connections ended: {:?}",
                self.user.name,
                seen.seqs.len(),
                expected.len(),
                seen.ended,
            );
        }
    }
}

/// Waits until `done` holds (checked every 20 ms), for at most [`LONG`];
/// panics with `state()` otherwise.
async fn until(what: &str, mut done: impl FnMut() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + LONG;
    while !done() {
        if Instant::now() >= deadline {
            panic!("timed out after {LONG:?} waiting for {what}; {}", state());
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// How many message frames each client got so far, for failure messages.
fn progress(clients: &[Client]) -> String {
    clients
        .iter()
        .map(|c| {
            let seen = c.seen();
            format!(
                "{}: {} (ended: {:?})",
                c.user.name,
                seen.seqs.len(),
                seen.ended
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until every client has at least `expected.len()` message frames,
/// then for [`QUIET`] more (a duplicate would come late), and asserts that
/// each got exactly `expected`, in order.
async fn assert_everyone_got(clients: &[Client], expected: &[u64]) {
    until(
        "every client to get every message",
        || {
            clients
                .iter()
                .all(|c| c.seen().seqs.len() >= expected.len())
        },
        || progress(clients),
    )
    .await;
    sleep(QUIET).await;
    for client in clients {
        client.assert_got(expected);
        let seen = client.seen();
        eprintln!(
            "{}: {} messages, {} as change frames, {} as message_created",
            client.user.name,
            seen.seqs.len(),
            seen.changes,
            seen.created
        );
    }
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_on_two_nodes_get_every_message_once_in_seq_order() {
    const MEMBERS: usize = 6;
    const PER_SOCKET: usize = 40;
    const PER_REST_SENDER: usize = 30;
    let url = kith_postgres::testing::fresh_database_url().await;
    let (a, b) = tokio::join!(Node::start("A", &url), Node::start("B", &url));
    let users = users(&[&a, &b], MEMBERS).await;
    let (conversation, version) = group(&b.rest, &users[0], &users[1..]).await;

    // Half the members on A, half on B, each resumed from the group's
    // version at creation.
    let mut clients: Vec<Client> = users
        .iter()
        .map(|u| Client::new(u.clone(), &conversation, version))
        .collect();
    futures::future::join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| c.connect(if i < MEMBERS / 2 { &a } else { &b })),
    )
    .await;

    // 300 messages through both nodes at once: every member pipelines 40 on
    // its socket, and one member per node sends 30 over REST.
    for (i, client) in clients.iter().enumerate() {
        client.send_many(&format!("ws{i}"), PER_SOCKET);
    }
    let rest_sends = [(&a, &users[1]), (&b, &users[4])].map(|(node, user)| {
        let (rest, user, conversation) = (node.rest.clone(), user.clone(), conversation.clone());
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..PER_REST_SENDER {
                let client_id = format!("rest-{}-{i}", user.name);
                seqs.push(rest.send(&user, &conversation, &client_id).await);
            }
            seqs
        })
    });
    let mut sent = Vec::new();
    for task in rest_sends {
        sent.extend(timeout(LONG, task).await.unwrap().unwrap());
    }
    until(
        "every socket's sends to be acknowledged",
        || clients.iter().all(|c| c.seen().acked.len() >= PER_SOCKET),
        || {
            clients
                .iter()
                .map(|c| {
                    let seen = c.seen();
                    format!(
                        "{}: {} acks, {} messages (ended: {:?})",
                        c.user.name,
                        seen.acked.len(),
                        seen.seqs.len(),
                        seen.ended
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    )
    .await;
    for client in &clients {
        sent.extend(client.seen().acked.values().copied());
    }
    sent.sort_unstable();
    let total = MEMBERS * PER_SOCKET + 2 * PER_REST_SENDER;
    assert_eq!(sent.len(), total);
    // One seq per message, no gap.
    assert_eq!(sent, (sent[0]..sent[0] + total as u64).collect::<Vec<_>>());

    assert_everyone_got(&clients, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_stream_is_restarted_and_its_clients_resume_without_loss() {
    const MEMBERS: usize = 6;
    const TOTAL: usize = 300;
    /// Sends in flight at once.
    const AT_ONCE: usize = 5;
    /// B is killed once this many are sent (the stream goes on).
    const KILL_AT: usize = 100;
    /// B is restarted once this many are sent: its clients resume across
    /// about a hundred messages while the stream goes on.
    const RESTART_AT: usize = 200;
    /// The last ones are sent only once B's clients are back, so that some
    /// surely arrive live on the new B.
    const AFTER_RESUME: usize = 50;
    let url = kith_postgres::testing::fresh_database_url().await;
    let (a, b) = tokio::join!(Node::start("A", &url), Node::start("B", &url));
    let mut b = b;
    let users = users(&[&a, &b], MEMBERS).await;
    let (conversation, version) = group(&a.rest, &users[0], &users[1..]).await;
    let mut clients: Vec<Client> = users
        .iter()
        .map(|u| Client::new(u.clone(), &conversation, version))
        .collect();
    futures::future::join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| c.connect(if i < MEMBERS / 2 { &a } else { &b })),
    )
    .await;

    // A stream of sends through A, a few at a time.
    let (count_tx, count_rx) = watch::channel(0_usize);
    let (resumed_tx, mut resumed_rx) = watch::channel(false);
    let sender = {
        let (rest, user, conversation) = (a.rest.clone(), users[0].clone(), conversation.clone());
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for first in (0..TOTAL).step_by(AT_ONCE) {
                if first == TOTAL - AFTER_RESUME {
                    let back = timeout(LONG, resumed_rx.wait_for(|back| *back)).await;
                    assert!(matches!(back, Ok(Ok(_))), "B's clients never came back");
                }
                let (rest, user, conversation) = (&rest, &user, &conversation);
                let sends = (first..first + AT_ONCE)
                    .map(|i| async move { rest.send(user, conversation, &format!("s-{i}")).await });
                seqs.extend(futures::future::join_all(sends).await);
                count_tx.send_replace(seqs.len());
                sleep(Duration::from_millis(5)).await;
            }
            seqs
        })
    };
    let sent_at_least = |n: usize| {
        let mut count_rx = count_rx.clone();
        async move {
            let reached = timeout(LONG, count_rx.wait_for(|sent| *sent >= n)).await;
            assert!(matches!(reached, Ok(Ok(_))), "the stream never reached {n}");
        }
    };

    // Mid-stream, B dies without a word; its clients' sockets drop.
    sent_at_least(KILL_AT).await;
    b.kill();
    for client in &mut clients[MEMBERS / 2..] {
        let ended = client.ended().await;
        assert_eq!(ended, Ended::Gone, "{}", client.user.name);
        assert!(
            !client.seen().seqs.is_empty(),
            "{} got nothing before the kill",
            client.user.name
        );
    }

    // B comes back (a new process on the same database, on a new port,
    // with a new node number: the dead one's lease is still held); its
    // clients reconnect and resume from the last version they saw, while
    // the stream goes on.
    sent_at_least(RESTART_AT).await;
    let b = Node::start("B (restarted)", &url).await;
    let replayed =
        futures::future::join_all(clients[MEMBERS / 2..].iter_mut().map(|c| c.connect(&b))).await;
    // What was sent while B was down came in the replay.
    assert!(replayed.iter().all(|&n| n > 0), "replayed: {replayed:?}");
    resumed_tx.send_replace(true);

    let mut sent = timeout(LONG, sender).await.unwrap().unwrap();
    sent.sort_unstable();
    assert_eq!(sent, (sent[0]..sent[0] + TOTAL as u64).collect::<Vec<_>>());
    assert_everyone_got(&clients, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_on_one_node_closes_the_users_socket_on_the_other() {
    let url = kith_postgres::testing::fresh_database_url().await;
    let (a, b) = tokio::join!(Node::start("A", &url), Node::start("B", &url));
    let dora = b.rest.user("dora").await;
    // A second session of hers (another device), which stays.
    let other_token = a.rest.login("dora").await;

    let connect = |token: String| {
        let url = b.ws_url(&token);
        async move {
            let (stream, _) = timeout(LONG, tokio_tungstenite::connect_async(url))
                .await
                .unwrap()
                .unwrap();
            let mut ws = Ws { stream };
            ws.send(json!({"type": "resume", "conversations": {}}))
                .await;
            ws.next_of("resume_complete").await;
            ws
        }
    };
    let mut revoked = connect(dora.token.clone()).await;
    let mut kept = connect(other_token.clone()).await;

    // Logged out through A: B closes her socket of that session.
    a.rest
        .call(Method::POST, "/auth/logout", Some(&dora.token), None)
        .await
        .ok(204);
    let ended = timeout(Duration::from_secs(10), revoked.closed()).await;
    assert_eq!(
        ended,
        Ok(Ended::Close(4001)),
        "the socket on B was not closed for the revoked session"
    );

    // Her other session's socket on B hears of the revocation and stays.
    let event = kept.next_of("sessions_revoked").await;
    assert_eq!(event["user_id"], dora.id.as_str(), "{event}");
    kept.send(json!({"type": "ping", "client_id": "still-here"}))
        .await;
    assert_eq!(kept.next_of("pong").await["client_id"], "still-here");
    // And the token is refused on B too.
    b.rest
        .call(Method::GET, "/me", Some(&dora.token), None)
        .await
        .error(401, "unauthenticated");
    b.rest
        .call(Method::GET, "/me", Some(&other_token), None)
        .await
        .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_falls_behind_catches_up_without_closing_its_clients() {
    // Paused, node B falls behind by more versions than a connection's
    // queue holds (256 frames); once it runs again it reads the gap and
    // publishes it at once. Its clients read at full speed: none may be
    // closed as a slow consumer for the length of that burst.
    const MESSAGES: usize = 500;
    let url = kith_postgres::testing::fresh_database_url().await;
    let (a, b) = tokio::join!(Node::start("A", &url), Node::start("B", &url));
    let users = users(&[&a, &b], 4).await;
    let (conversation, version) = group(&a.rest, &users[0], &users[1..]).await;
    let mut clients: Vec<Client> = users
        .iter()
        .map(|u| Client::new(u.clone(), &conversation, version))
        .collect();
    futures::future::join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| c.connect(if i < 2 { &a } else { &b })),
    )
    .await;

    b.signal("STOP");
    clients[0].send_many("burst", MESSAGES);
    until(
        "the burst to be acknowledged",
        || clients[0].seen().acked.len() >= MESSAGES,
        || progress(&clients),
    )
    .await;
    b.signal("CONT");

    let mut sent: Vec<u64> = clients[0].seen().acked.values().copied().collect();
    sent.sort_unstable();
    assert_everyone_got(&clients, &sent).await;
    for client in &clients {
        let ended = client.seen().ended.clone();
        assert!(
            ended.is_empty(),
            "{}'s connection ended: {ended:?}",
            client.user.name
        );
    }
}
