//! `kith-loadgen`: the end-to-end WebSocket load generator of Kith.
//!
//! It seeds C users and one group conversation (all of them plus a
//! publisher) directly through kith-core into a fresh SQLite file, starts
//! `kith-server` on that file as a child process, connects C authenticated
//! WebSockets, and has a publisher connection send M messages of 100 bytes
//! into the group. Every receiving client records the receive time of every
//! `message_created` frame; the publisher records the send times. It then
//! reports deliveries per second, send->receipt latency (p50, p99, max),
//! lost, duplicated and out-of-order deliveries, and the server process's CPU
//! time and RSS.
//!
//! With `--compare` (on by default) the same workload is first run against a
//! bare broadcaster (this same executable re-run with a hidden flag: a
//! tokio-tungstenite server without authentication or storage that forwards
//! one pre-built frame to every connection), and every figure is also given
//! as a ratio to it.
//!
//! Build first: `cargo build --release -p kith-server -p kith-benches`, then
//! `target/release/kith-loadgen --help`. Figures are in `docs/BENCHMARKS.md`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use clap::{ArgAction, Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use kith_benches::{process_cpu_seconds, process_rss_bytes, raise_open_file_limit};
use kith_core::{Config, Kith, NewGroup, NewUser, UserId};
use kith_sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<TcpStream>;

const RESUME: &str = r#"{"type":"resume","conversations":{}}"#;

/// End-to-end WebSocket load generator for Kith, with a bare-broadcaster
/// baseline.
///
/// Seeds C users and one group (the C users plus a publisher) directly
/// through kith-core into a fresh SQLite file, starts `kith-server` (found
/// next to this executable) on it with `--no-rate-limits` on a free
/// 127.0.0.1 port, connects C authenticated WebSockets (each sends `resume`
/// and waits for `unread`), then one publisher sends M messages of
/// `--body-bytes` into the group. Reports deliveries/s (message_created
/// frames received by all clients / time from first send to last receipt),
/// send->receipt latency p50/p99/max, lost, duplicated and out-of-order
/// deliveries, and the server's CPU time and RSS, as a table and one JSON
/// line. With `--compare` (default) the same workload first runs against a
/// bare tokio-tungstenite broadcaster (no auth, no storage, one shared frame
/// per message) and figures are also given as ratios to it.
///
/// Build first: `cargo build --release -p kith-server -p kith-benches`.
///
/// Examples:
///   kith-loadgen                                    # C=1000, M=2000, W=8, throughput
///   kith-loadgen --mode rate --rate 10 -m 600       # latency at 10 msg/s for 60 s
///   kith-loadgen --connect-only -c 10000            # connects+auths/s, RSS per connection
///   kith-loadgen --seed-only kith.db --tokens t.txt # seed a database for --target
///   kith-loadgen --target ws://127.0.0.1:8080/api/v1/ws --tokens t.txt --server-pid PID
#[derive(Debug, Clone, Parser)]
#[command(name = "kith-loadgen", verbatim_doc_comment)]
struct Args {
    /// Receiving clients (C), one user and one connection each.
    #[arg(short, long, default_value_t = 1000)]
    clients: usize,
    /// Messages the publisher sends (M).
    #[arg(short, long, default_value_t = 2000)]
    messages: usize,
    /// How the publisher paces its sends.
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Throughput mode: unacknowledged messages kept in flight (W); a new
    /// message is sent when an ack arrives.
    #[arg(short, long, default_value_t = 8)]
    window: usize,
    /// Rate mode: messages per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Bytes of each message body.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// The publisher stops sending after this many seconds, whatever M.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Seconds allowed, after the publisher's last ack, for deliveries still
    /// on their way; whatever has not arrived then counts as lost.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// Also run the bare-broadcaster baseline with the same workload, in this
    /// invocation, and print ratios (`--compare false` to skip it).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    compare: bool,
    /// Only measure connects+authentications per second (C connections,
    /// `--concurrency` at a time) and server RSS per idle authenticated
    /// connection; no messages.
    #[arg(long)]
    connect_only: bool,
    /// Connections opened at a time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Client sockets are spread over this many source addresses,
    /// 127.0.0.1 to 127.0.0.N, so that ephemeral ports do not run short.
    #[arg(long, default_value_t = 8)]
    source_addrs: u8,
    /// Drive a running server instead (ws://HOST:PORT/api/v1/ws): seeding is
    /// skipped; `--tokens` gives the conversation and the tokens.
    #[arg(long, requires = "tokens")]
    target: Option<String>,
    /// Tokens file: line 1 the conversation id, line 2 the publisher's
    /// token, then one client token per line (written by `--seed-only`).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// With `--target`: the server's process id, to report its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seed C users and the group into this SQLite file, write the tokens
    /// file given with `--tokens`, and exit.
    #[arg(long, requires = "tokens")]
    seed_only: Option<PathBuf>,
    /// The kith-server executable (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// `--log` filter passed to kith-server.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Directory for the server's database (default: the system temp dir).
    /// The file is deleted after the run.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Internal: run as the bare broadcaster on this address.
    #[arg(long, hide = true)]
    baseline_server: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Keep W messages unacknowledged at all times.
    Throughput,
    /// Send at `--rate` messages per second (latency mode).
    Rate,
}

fn main() -> Result<(), Failure> {
    let args = Args::parse();
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(addr) = args.baseline_server {
        return runtime.block_on(baseline_server(addr));
    }
    if let Some(db) = &args.seed_only {
        return runtime.block_on(seed_only(&args, db));
    }
    runtime.block_on(run(args))
}

// ---------------------------------------------------------------------------
// Seeding and servers

struct Seeded {
    conversation: String,
    publisher: String,
    tokens: Vec<String>,
}

/// Creates `clients` users with sessions (and, with `group`, a publisher and
/// a group of everyone) in the SQLite file `db`, through kith-core.
async fn seed(db: &Path, clients: usize, group: bool) -> Result<Seeded, Failure> {
    let started = Instant::now();
    let store = SqliteStore::open(db.to_string_lossy()).await?;
    let mut config = Config::default();
    config.send_rate = None;
    config.max_group_members = config.max_group_members.max(clients + 1);
    let kith = Kith::builder(Arc::new(store.clone()))
        .config(config)
        .build();
    let make = |name: String| {
        let kith = kith.clone();
        async move {
            let user = kith
                .accounts()
                .create_user(NewUser {
                    username: name,
                    email: None,
                })
                .await?;
            let session = kith.accounts().create_session(user.id).await?;
            Ok::<(UserId, String), kith_core::Error>((user.id, session.token))
        }
    };
    let users: Vec<(UserId, String)> = futures::stream::iter(0..clients)
        .map(|i| make(format!("lg{i}")))
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let (publisher_id, publisher) = make("lgpub".into()).await?;
    let conversation = if group {
        let group = kith
            .chat()
            .create_group(
                publisher_id,
                NewGroup {
                    title: "loadgen".into(),
                    members: users.iter().map(|(id, _)| *id).collect(),
                },
            )
            .await?;
        group.id.to_string()
    } else {
        "0".into()
    };
    store.close().await;
    eprintln!(
        "seeded {clients} users{} in {:.1} s",
        if group { " and the group" } else { "" },
        started.elapsed().as_secs_f64()
    );
    Ok(Seeded {
        conversation,
        publisher,
        tokens: users.into_iter().map(|(_, t)| t).collect(),
    })
}

async fn seed_only(args: &Args, db: &Path) -> Result<(), Failure> {
    let seeded = seed(db, args.clients, true).await?;
    let path = args.tokens.as_ref().ok_or("--tokens is required")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{}", seeded.conversation)?;
    writeln!(out, "{}", seeded.publisher)?;
    for t in &seeded.tokens {
        writeln!(out, "{t}")?;
    }
    out.flush()?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn read_tokens(path: &Path) -> Result<Seeded, Failure> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let conversation = lines.next().ok_or("tokens file: no conversation")?.into();
    let publisher = lines.next().ok_or("tokens file: no publisher")?.into();
    Ok(Seeded {
        conversation,
        publisher,
        tokens: lines.map(String::from).collect(),
    })
}

/// A server under test: its address, URL and (if we started it) process.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    url: String,
    pid: Option<u32>,
    child: Option<Child>,
    db: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(db) = &self.db {
            drop_db(db);
        }
    }
}

fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn sibling_exe(name: &str) -> Result<PathBuf, Failure> {
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or("no executable directory")?;
    Ok(dir.join(name))
}

/// Waits until `GET /healthz` answers 200 (or, without `http`, until the
/// port accepts connections).
async fn wait_ready(addr: SocketAddr, http: bool, child: &mut Child) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("server exited early: {status}").into());
        }
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            if !http {
                return Ok(());
            }
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("server not ready after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seeds a fresh database and starts kith-server on it.
async fn start_kith(args: &Args, group: bool) -> Result<(Server, Seeded), Failure> {
    let dir = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let db = dir.join(format!("kith-loadgen-{}.db", std::process::id()));
    let mut server = Server {
        name: "kith",
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        url: String::new(),
        pid: None,
        child: None,
        db: Some(db.clone()),
    };
    drop_db(&db);
    let seeded = seed(&db, args.clients, group).await?;
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => sibling_exe("kith-server")?,
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p kith-server -p kith-benches` first",
            bin.display()
        )
        .into());
    }
    let port = free_port()?;
    server.addr = SocketAddr::from(([127, 0, 0, 1], port));
    server.url = format!("ws://127.0.0.1:{port}/api/v1/ws");
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            &server.addr.to_string(),
            "--database-url",
            &format!("sqlite://{}", db.display()),
            "--no-rate-limits",
            "--log",
            &args.server_log,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    server.pid = Some(child.id());
    let ready = wait_ready(server.addr, true, &mut child).await;
    server.child = Some(child);
    ready?;
    Ok((server, seeded))
}

fn drop_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// Starts this executable as the bare broadcaster.
async fn start_baseline(args: &Args) -> Result<(Server, Seeded), Failure> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--baseline-server", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let ready = wait_ready(addr, false, &mut child).await;
    let server = Server {
        name: "baseline",
        addr,
        url: format!("ws://127.0.0.1:{port}/ws"),
        pid: Some(child.id()),
        child: Some(child),
        db: None,
    };
    ready?;
    let seeded = Seeded {
        conversation: "1".into(),
        publisher: "publisher".into(),
        tokens: (0..args.clients).map(|i| format!("client{i}")).collect(),
    };
    Ok((server, seeded))
}

fn target_server(args: &Args, url: &str) -> Result<(Server, Seeded), Failure> {
    let hostport = url
        .strip_prefix("ws://")
        .ok_or("--target must be a ws:// URL")?
        .split('/')
        .next()
        .ok_or("--target has no host")?;
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .ok_or("--target does not resolve")?;
    let path = args.tokens.as_ref().ok_or("--target needs --tokens")?;
    let mut seeded = read_tokens(path)?;
    if seeded.tokens.len() < args.clients {
        return Err(format!(
            "the tokens file has {} client tokens, fewer than --clients {}",
            seeded.tokens.len(),
            args.clients
        )
        .into());
    }
    seeded.tokens.truncate(args.clients);
    let server = Server {
        name: "kith",
        addr,
        url: url.into(),
        pid: args.server_pid,
        child: None,
        db: None,
    };
    Ok((server, seeded))
}

// ---------------------------------------------------------------------------
// The bare broadcaster

type Registry = Arc<RwLock<HashMap<u64, mpsc::Sender<Message>>>>;

/// A WebSocket server with no authentication and no storage: `resume` is
/// answered with an empty `unread`; a `send` is turned into one
/// `message_created` frame, built once and shared by every connection's
/// queue, and acknowledged.
async fn baseline_server(addr: SocketAddr) -> Result<(), Failure> {
    let listener = TcpListener::bind(addr).await?;
    let registry: Registry = Arc::new(RwLock::new(HashMap::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        let (registry, seq, id) = (registry.clone(), seq.clone(), next_id);
        tokio::spawn(async move {
            let _ = baseline_connection(stream, id, registry, seq).await;
        });
    }
}

async fn baseline_connection(
    stream: TcpStream,
    id: u64,
    registry: Registry,
    seq: Arc<AtomicU64>,
) -> Result<(), Failure> {
    // The same buffer sizes as kith-ws (`WsConfig` defaults).
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut stream) = ws.split();
    // The same queue length as Kith's hub (`queue_len` = 256).
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("resume") => {
                if let Ok(mut r) = registry.write() {
                    r.insert(id, tx.clone());
                }
                let unread = r#"{"type":"unread","total":0,"conversations":[]}"#;
                if tx.send(Message::text(unread)).await.is_err() {
                    break;
                }
            }
            Some("send") => {
                let s = seq.fetch_add(1, Ordering::Relaxed) + 1;
                let client_id = frame["client_id"].clone();
                let conversation = frame["conversation_id"].clone();
                // Field order as Kith's (`type` first); strings JSON-escaped.
                let created = format!(
                    concat!(
                        r#"{{"type":"message_created","message":{{"id":"{id}","#,
                        r#""conversation_id":{conversation},"seq":{s},"version":{s},"#,
                        r#""sender":"1","client_id":{client_id},"body":{body},"#,
                        r#""reply_to":null,"reactions":[],"#,
                        r#""created_at":"2026-11-21T15:55:23.123Z","#,
                        r#""edited_at":null,"deleted_at":null}}}}"#
                    ),
                    id = 1_000_000 + s,
                    conversation = conversation,
                    s = s,
                    client_id = client_id,
                    body = frame["body"],
                );
                // Serialised once; every queue gets a reference-counted clone.
                let shared = Message::text(created);
                let mut slow = Vec::new();
                if let Ok(r) = registry.read() {
                    for (cid, q) in r.iter() {
                        if q.try_send(shared.clone()).is_err() {
                            slow.push(*cid);
                        }
                    }
                }
                if !slow.is_empty() {
                    // Slow consumers are dropped, as Kith does (4008).
                    if let Ok(mut r) = registry.write() {
                        for cid in slow {
                            r.remove(&cid);
                        }
                    }
                }
                let ack = format!(
                    r#"{{"type":"ack","client_id":{client_id},"conversation_id":{conversation},"message_id":"{id}","seq":{s},"version":{s}}}"#,
                    id = 1_000_000 + s,
                );
                if tx.send(Message::text(ack)).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    if let Ok(mut r) = registry.write() {
        r.remove(&id);
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Clients

fn source_ip(i: usize, spread: u8) -> Ipv4Addr {
    let n = spread.max(1) as usize;
    Ipv4Addr::new(127, 0, 0, 1 + (i % n) as u8)
}

/// Opens one authenticated connection, sends `resume` and waits for `unread`.
async fn open_client(server: &Server, token: &str, source: Ipv4Addr) -> Result<Ws, Failure> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(server.addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("{}?access_token={token}", server.url);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    ws.send(Message::text(RESUME)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"type\":\"unread\"") => return Ok(ws),
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended before unread: {other:?}").into()),
        }
    }
}

/// Opens one connection per token, `concurrency` at a time.
async fn connect_all(
    server: &Server,
    tokens: &[String],
    concurrency: usize,
    spread: u8,
) -> Result<(Vec<Ws>, Duration), Failure> {
    let started = Instant::now();
    let results: Vec<Result<Ws, Failure>> = futures::stream::iter(tokens.iter().enumerate())
        .map(|(i, t)| open_client(server, t, source_ip(i, spread)))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut sockets = Vec::with_capacity(results.len());
    let mut failures = 0usize;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(format!(
            "{failures} of {} connections failed; first: {e}",
            tokens.len()
        )
        .into());
    }
    Ok((sockets, elapsed))
}

/// One receipt: our sequence number, the server's `seq`, the receive time.
type Receipt = (u32, u64, Instant);

/// Reads `"message_created"` frames: returns (our sequence number from the
/// client_id, the server's message `seq`).
fn parse_created(text: &str, prefix: &str) -> Option<(u32, u64)> {
    let head = text.get(..40).unwrap_or(text);
    if !head.contains("\"message_created\"") {
        return None;
    }
    let after = |key: &str| text.find(key).map(|i| &text[i + key.len()..]);
    let seq_text = after("\"seq\":")?;
    let seq: u64 = seq_text
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let key = format!("\"client_id\":\"{prefix}");
    let ours_text = after(&key)?;
    let ours: u32 = ours_text.split('"').next()?.parse().ok()?;
    Some((ours, seq))
}

async fn receive(
    mut ws: Ws,
    m: usize,
    prefix: Arc<str>,
    mut stop: watch::Receiver<bool>,
) -> (Ws, Vec<Receipt>) {
    let mut receipts = Vec::with_capacity(m);
    let mut seen = vec![false; m];
    let mut distinct = 0;
    while distinct < m {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    if let Some((ours, seq)) = parse_created(&t, &prefix) {
                        receipts.push((ours, seq, now));
                        if let Some(s) = seen.get_mut(ours as usize) {
                            if !*s {
                                *s = true;
                                distinct += 1;
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    (ws, receipts)
}

/// A `send` frame; `body` is plain ASCII, `prefix` visible ASCII.
fn send_frame(conversation: &str, prefix: &str, seq: usize, body: &str) -> String {
    format!(
        r#"{{"type":"send","conversation_id":"{conversation}","client_id":"{prefix}{seq}","body":"{body}"}}"#
    )
}

struct Published {
    send_times: Vec<Option<Instant>>,
    first_send: Instant,
    sent: usize,
    acked: usize,
    errors: usize,
}

async fn publish(
    ws: Ws,
    args: &Args,
    conversation: &str,
    prefix: &str,
) -> Result<(Ws, Published), Failure> {
    let (mut sink, mut stream) = ws.split();
    let m = args.messages;
    let body: String = "x".repeat(args.body_bytes.max(1));
    let mut send_times = vec![None; m];
    let first_send = Instant::now();
    let stop_sending = TokioInstant::now() + Duration::from_secs(args.max_seconds);
    let (mut sent, mut acked, mut errors) = (0usize, 0usize, 0usize);
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    let window = args.window.max(1);
    let mut errors_shown = 0;
    loop {
        let answered = acked + errors;
        let may_send = sent < m && TokioInstant::now() < stop_sending;
        if !may_send && answered >= sent {
            break;
        }
        if TokioInstant::now() > stop_sending + Duration::from_secs(args.drain_seconds) {
            break;
        }
        let want_send = match args.mode {
            Mode::Throughput => may_send && sent - answered < window,
            Mode::Rate => false,
        };
        if want_send {
            let frame = send_frame(conversation, prefix, sent, &body);
            send_times[sent] = Some(Instant::now());
            sink.send(Message::text(frame)).await?;
            sent += 1;
            continue;
        }
        tokio::select! {
            _ = ticks.tick(), if args.mode == Mode::Rate && may_send => {
                let frame = send_frame(conversation, prefix, sent, &body);
                send_times[sent] = Some(Instant::now());
                sink.send(Message::text(frame)).await?;
                sent += 1;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if t.starts_with("{\"type\":\"ack\"") {
                        acked += 1;
                    } else if t.starts_with("{\"type\":\"error\"") {
                        errors += 1;
                        if errors_shown < 5 {
                            errors_shown += 1;
                            eprintln!("publisher got an error: {t}");
                        }
                    }
                }
                Some(Ok(_)) => {}
                other => return Err(format!("publisher connection ended: {other:?}").into()),
            },
            _ = tokio::time::sleep_until(stop_sending), if may_send => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let ws = sink.reunite(stream).map_err(|_| "reunite failed")?;
    Ok((
        ws,
        Published {
            send_times,
            first_send,
            sent,
            acked,
            errors,
        },
    ))
}

// ---------------------------------------------------------------------------
// Runs and reports

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// One workload run against `server`; returns the figures as JSON.
async fn run_messages(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    let rss_before = server.pid.and_then(process_rss_bytes);
    let (sockets, connect_time) =
        connect_all(server, &seeded.tokens, args.concurrency, args.source_addrs).await?;
    let publisher = open_client(server, &seeded.publisher, Ipv4Addr::LOCALHOST).await?;
    eprintln!(
        "[{}] {} clients connected in {:.2} s",
        server.name,
        sockets.len(),
        connect_time.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let prefix: Arc<str> = format!("lg{stamp}-").into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let m = args.messages;
    let receivers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, m, prefix.clone(), stop_rx.clone())))
        .collect();

    let cpu_before = server.pid.and_then(process_cpu_seconds);
    let me = std::process::id();
    let my_cpu_before = process_cpu_seconds(me);
    let (publisher, published) = publish(publisher, args, &seeded.conversation, &prefix).await?;
    let all = futures::future::join_all(receivers);
    tokio::pin!(all);
    let drain = tokio::time::sleep(Duration::from_secs(args.drain_seconds));
    let results = tokio::select! {
        r = &mut all => r,
        _ = drain => {
            let _ = stop_tx.send(true);
            all.await
        }
    };
    let cpu_after = server.pid.and_then(process_cpu_seconds);
    let my_cpu_after = process_cpu_seconds(me);
    let rss_after = server.pid.and_then(process_rss_bytes);

    let mut latencies: Vec<u64> = Vec::with_capacity(seeded.tokens.len() * m);
    let (mut total, mut distinct, mut duplicated, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut last = published.first_send;
    let mut sockets = Vec::with_capacity(results.len());
    for r in results {
        let (ws, receipts) = r?;
        sockets.push(ws);
        let mut seen = vec![false; m];
        let mut max_seq = 0u64;
        for (ours, seq, at) in receipts {
            total += 1;
            last = last.max(at);
            let Some(s) = seen.get_mut(ours as usize) else {
                continue;
            };
            if *s {
                duplicated += 1;
                continue;
            }
            *s = true;
            distinct += 1;
            if seq < max_seq {
                out_of_order += 1;
            }
            max_seq = max_seq.max(seq);
            if let Some(Some(sent)) = published.send_times.get(ours as usize) {
                latencies.push(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    drop(sockets);
    drop(publisher);
    latencies.sort_unstable();
    let elapsed = last
        .saturating_duration_since(published.first_send)
        .as_secs_f64();
    let expected = (seeded.tokens.len() * published.acked) as u64;
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let my_cpu = match (my_cpu_before, my_cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(json!({
        "server": server.name,
        "clients": seeded.tokens.len(),
        "sent": published.sent,
        "acked": published.acked,
        "errors": published.errors,
        "deliveries": total,
        "elapsed_s": elapsed,
        "deliveries_per_s": if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 },
        "messages_per_s": if elapsed > 0.0 { published.acked as f64 / elapsed } else { 0.0 },
        "latency_p50_ms": percentile(&latencies, 50.0),
        "latency_p99_ms": percentile(&latencies, 99.0),
        "latency_max_ms": percentile(&latencies, 100.0),
        "lost": expected.saturating_sub(distinct),
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "server_cpu_s": cpu,
        "server_cpu_pct_of_core": cpu.map(|c| if elapsed > 0.0 { 100.0 * c / elapsed } else { 0.0 }),
        "server_rss_bytes": rss_after,
        "server_rss_before_connect_bytes": rss_before,
        "loadgen_cpu_s": my_cpu,
        "connects_per_s": seeded.tokens.len() as f64 / connect_time.as_secs_f64(),
    }))
}

/// Connect-only run: connects+auths per second and RSS per idle connection.
async fn run_connect_only(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.pid.and_then(process_rss_bytes);
    let cpu_before = server.pid.and_then(process_cpu_seconds);
    let (sockets, elapsed) =
        connect_all(server, &seeded.tokens, args.concurrency, args.source_addrs).await?;
    let cpu_after = server.pid.and_then(process_cpu_seconds);
    let n = sockets.len();
    // Keep answering pings while the server settles.
    let (stop_tx, stop_rx) = watch::channel(false);
    let idle: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, 0, "".into(), stop_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = server.pid.and_then(process_rss_bytes);
    let _ = stop_tx.send(true);
    drop(futures::future::join_all(idle).await);
    let per = match (rss_before, rss_after) {
        (Some(a), Some(b)) => Some((b as f64 - a as f64) / n.max(1) as f64),
        _ => None,
    };
    Ok(json!({
        "server": server.name,
        "connections": n,
        "concurrency": args.concurrency,
        "connect_s": elapsed.as_secs_f64(),
        "connects_per_s": n as f64 / elapsed.as_secs_f64(),
        "server_cpu_s": match (cpu_before, cpu_after) { (Some(a), Some(b)) => Some(b - a), _ => None },
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after,
        "server_rss_per_connection_bytes": per,
    }))
}

async fn run(args: Args) -> Result<(), Failure> {
    if args.messages > u32::MAX as usize {
        return Err("--messages is too large".into());
    }
    let mut baseline = None;
    if args.compare {
        let (server, seeded) = start_baseline(&args).await?;
        let figures = if args.connect_only {
            run_connect_only(&args, &server, &seeded).await?
        } else {
            run_messages(&args, &server, &seeded).await?
        };
        drop(server);
        baseline = Some(figures);
        // Let the sockets of the baseline run close.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (server, seeded) = match &args.target {
        Some(url) => target_server(&args, url)?,
        None => start_kith(&args, !args.connect_only).await?,
    };
    let kith = if args.connect_only {
        run_connect_only(&args, &server, &seeded).await?
    } else {
        run_messages(&args, &server, &seeded).await?
    };
    drop(server);

    let mut ratio = serde_json::Map::new();
    if let Some(base) = &baseline {
        if let (Some(k), Some(b)) = (kith.as_object(), base.as_object()) {
            for (key, kv) in k {
                if let (Some(x), Some(y)) = (kv.as_f64(), b.get(key).and_then(Value::as_f64)) {
                    if y != 0.0 && key != "clients" && key != "connections" {
                        ratio.insert(key.clone(), json!(x / y));
                    }
                }
            }
        }
    }
    let workload = json!({
        "mode": if args.connect_only { "connect-only" } else if args.mode == Mode::Rate { "rate" } else { "throughput" },
        "clients": args.clients,
        "messages": args.messages,
        "window": args.window,
        "rate": args.rate,
        "body_bytes": args.body_bytes,
        "concurrency": args.concurrency,
    });
    print_table(&kith, baseline.as_ref(), &ratio);
    let line = json!({
        "workload": workload,
        "kith": kith,
        "baseline": baseline,
        "ratio_to_baseline": ratio,
    });
    println!("{line}");
    Ok(())
}

fn print_table(kith: &Value, baseline: Option<&Value>, ratio: &serde_json::Map<String, Value>) {
    let show = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    println!(
        "{:<34} {:>16} {:>16} {:>10}",
        "figure", "kith", "baseline", "ratio"
    );
    if let Some(k) = kith.as_object() {
        for (key, kv) in k {
            if key == "server" {
                continue;
            }
            println!(
                "{:<34} {:>16} {:>16} {:>10}",
                key,
                show(Some(kv)),
                show(baseline.and_then(|b| b.get(key))),
                show(ratio.get(key)),
            );
        }
    }
}
