//! Seeding, and the servers under test: kith-server (a child process on a
//! seeded database, or one already running) and the bare broadcaster.

use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_core::{Config, Kith, NewGroup, NewUser, Storage, UserId};
use kith_postgres::{PgConnectOptions, PgStore};
use kith_sqlite::SqliteStore;
use sqlx::ConnectOptions;

use crate::{Args, Failure};

/// The users of a run: the publisher, the receiving clients and the
/// conversations they are in.
pub struct Seeded {
    /// The group conversations, in the order the publisher sends to them.
    pub conversations: Vec<String>,
    /// Each conversation's version once seeded, which the clients' `resume`
    /// starts from (so that every node serves it from the start and nothing
    /// is replayed); `None` where unknown (`--target`, the baseline): then
    /// clients resume no conversation.
    pub versions: Option<Vec<u64>>,
    /// The publisher's token (a member of every conversation).
    pub publisher: String,
    /// One token per receiving client.
    pub tokens: Vec<String>,
    /// Members of each conversation besides the publisher: client `i` is in
    /// conversation `i / group_size`.
    pub group_size: usize,
}

impl Seeded {
    /// The index of the conversation message `n` is sent to.
    pub fn conversation_of_message(&self, n: usize) -> usize {
        n % self.conversations.len().max(1)
    }

    /// How many receiving clients are in conversation `c`.
    pub fn members(&self, c: usize) -> usize {
        let start = (c * self.group_size).min(self.tokens.len());
        let end = ((c + 1) * self.group_size).min(self.tokens.len());
        end - start
    }

    /// The `resume` frame of a member of conversation `c` (of every
    /// conversation with `None`, for the publisher): from each one's
    /// seeded version; no conversation where there are none (connect-only
    /// runs) or their versions are unknown.
    pub fn resume_frame(&self, c: Option<usize>) -> String {
        let versions = self.versions.as_deref().unwrap_or_default();
        let entry = |c: usize| {
            let id = self.conversations.get(c)?;
            Some(format!(r#""{id}":{}"#, versions.get(c)?))
        };
        let entries: Vec<String> = match c {
            Some(c) => entry(c).into_iter().collect(),
            None => (0..self.conversations.len()).filter_map(entry).collect(),
        };
        format!(
            r#"{{"type":"resume","conversations":{{{}}}}}"#,
            entries.join(",")
        )
    }

    /// The conversation client `i` is in.
    pub fn conversation_of_client(&self, client: usize) -> usize {
        client / self.group_size.max(1)
    }

    /// How many of `messages` (sent round robin) client `i` receives.
    pub fn expected_by(&self, client: usize, messages: usize) -> usize {
        let groups = self.conversations.len().max(1);
        let c = client / self.group_size.max(1);
        messages / groups + usize::from(c < messages % groups)
    }
}

/// Creates `clients` users with sessions (and, with `group_size`, a
/// publisher and groups of that many clients plus the publisher) in the
/// database `url` (`sqlite://` or `postgres://`), through kith-core and the
/// backend kith-server opens for that URL.
async fn seed(url: &str, clients: usize, group_size: Option<usize>) -> Result<Seeded, Failure> {
    let started = Instant::now();
    let (storage, closer): (Arc<dyn Storage>, Closer) = if is_postgres(url) {
        let store = PgStore::connect(url).await?;
        (Arc::new(store.clone()), Closer::Postgres(store))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        let store = SqliteStore::open(path).await?;
        (Arc::new(store.clone()), Closer::Sqlite(store))
    };
    let seeded = seed_into(storage, clients, group_size).await;
    match closer {
        Closer::Sqlite(store) => store.close().await,
        Closer::Postgres(store) => store.close().await,
    }
    let seeded = seeded?;
    eprintln!(
        "seeded {clients} users and {} groups in {:.1} s",
        seeded.conversations.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(seeded)
}

/// The store [`seed`] closes when it is done.
enum Closer {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Whether `url` names a PostgreSQL database (as kith-server decides).
fn is_postgres(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("postgres" | "postgresql"))
}

/// [`seed`] into an open store.
async fn seed_into(
    storage: Arc<dyn Storage>,
    clients: usize,
    group_size: Option<usize>,
) -> Result<Seeded, Failure> {
    let mut config = Config::default();
    config.send_rate = None;
    config.max_group_members = config.max_group_members.max(clients + 1);
    let kith = Kith::builder(storage).config(config).build();
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
    let mut conversations = Vec::new();
    let mut versions = Vec::new();
    if let Some(size) = group_size {
        for members in users.chunks(size.max(1)) {
            let group = kith
                .chat()
                .create_group(
                    publisher_id,
                    NewGroup {
                        title: "loadgen".into(),
                        members: members.iter().map(|(id, _)| *id).collect(),
                    },
                )
                .await?;
            conversations.push(group.id.to_string());
            versions.push(group.version);
        }
    }
    Ok(Seeded {
        conversations,
        versions: Some(versions),
        publisher,
        tokens: users.into_iter().map(|(_, t)| t).collect(),
        group_size: group_size.unwrap_or(clients).max(1),
    })
}

/// `--seed-only`: seeds one group of every client and writes the tokens file.
pub async fn seed_only(args: &Args, db: &Path) -> Result<(), Failure> {
    let url = format!("sqlite://{}", db.display());
    let seeded = seed(&url, args.clients, Some(args.clients)).await?;
    let path = args.tokens.as_ref().ok_or("--tokens is required")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{}", seeded.conversations.join(" "))?;
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
    let conversation: String = lines.next().ok_or("tokens file: no conversation")?.into();
    let publisher = lines.next().ok_or("tokens file: no publisher")?.into();
    let tokens: Vec<String> = lines.map(String::from).collect();
    Ok(Seeded {
        conversations: vec![conversation],
        versions: None,
        publisher,
        group_size: tokens.len().max(1),
        tokens,
    })
}

/// A server under test: one process or, with `--nodes N`, N kith-server
/// processes on one database.
pub struct Server {
    /// `kith` or `baseline`.
    pub name: &'static str,
    /// Its processes (one unless `--nodes`), in the order clients are spread
    /// over them.
    pub nodes: Vec<Node>,
    /// The run's PostgreSQL database, for the loadgen's probes (write
    /// transactions, notifications, PostgreSQL's CPU time).
    pub database_url: Option<String>,
    /// Whether PostgreSQL's processes are this machine's (`--postgres`), so
    /// that their CPU time can be read from `/proc`.
    pub local_postgres: bool,
    db: Option<Database>,
}

/// One server process: its address, URL and (if we started it) process.
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its WebSocket URL.
    pub url: String,
    /// Its process, for CPU time and RSS.
    pub pid: Option<u32>,
    child: Option<Child>,
}

impl Server {
    /// The node client `i` connects to (round robin).
    pub fn node_of(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }
}

/// The database of a run, removed when its server is dropped.
enum Database {
    /// A SQLite file (with its `-wal` and `-shm`).
    Sqlite(PathBuf),
    /// A database created for the run on a PostgreSQL server given with
    /// `--database-url`: connect as `admin` and drop `name`.
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
    /// A database on the throwaway server of `--postgres`, which goes away
    /// with this process.
    Throwaway,
}

impl Drop for Server {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        match self.db.take() {
            Some(Database::Sqlite(db)) => drop_db(&db),
            Some(Database::Postgres { admin, name }) => {
                // Drop runs inside the runtime: a thread of its own, with a
                // runtime of its own, for the async driver.
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let mut conn = admin.connect().await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await?;
                        Ok::<(), Failure>(())
                    })
                })
                .join();
                if let Ok(Err(e)) = dropped {
                    eprintln!("dropping the run's PostgreSQL database: {e}");
                }
            }
            Some(Database::Throwaway) | None => {}
        }
    }
}

/// A fresh, empty database for one run on PostgreSQL: on the server of
/// `--database-url` (a new database `kith_loadgen_PID_N`, created through
/// a connection to the URL's database), or on the throwaway durable server
/// of `--postgres`. Returns its URL and what removes it.
async fn fresh_postgres(args: &Args) -> Result<(String, Database), Failure> {
    let Some(url) = &args.database_url else {
        let url = kith_postgres::testing::durable_server()
            .fresh_database_url()
            .await;
        return Ok((url, Database::Throwaway));
    };
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("kith_loadgen_{}_{n}", std::process::id());
    let admin: PgConnectOptions = url.parse()?;
    let mut conn = admin.connect().await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    drop(conn);
    Ok((
        with_database(url, &name)?,
        Database::Postgres {
            admin: Box::new(admin),
            name,
        },
    ))
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, Failure> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("--database-url: not a postgres:// URL")?;
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The executable `name` in this one's directory.
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

/// Seeds a fresh database (with groups, unless `group` is false) and starts
/// `nodes` kith-server processes on it, each on a port of its own.
pub async fn start_kith(
    args: &Args,
    group: bool,
    nodes: usize,
) -> Result<(Server, Seeded), Failure> {
    if nodes > 1 && !args.postgres() {
        return Err(NODES_NEED_POSTGRES.into());
    }
    let mut server = Server {
        name: "kith",
        nodes: Vec::new(),
        database_url: None,
        local_postgres: args.postgres && args.database_url.is_none(),
        db: None,
    };
    let url = if args.postgres() {
        let (url, db) = fresh_postgres(args).await?;
        server.db = Some(db);
        server.database_url = Some(url.clone());
        url
    } else {
        let dir = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
        let db = dir.join(format!("kith-loadgen-{}.db", std::process::id()));
        drop_db(&db);
        server.db = Some(Database::Sqlite(db.clone()));
        format!("sqlite://{}", db.display())
    };
    let seeded = seed(&url, args.clients, group.then(|| args.group_size())).await?;
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
    for _ in 0..nodes.max(1) {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(&bin)
            .args([
                "--listen",
                &addr.to_string(),
                "--database-url",
                &url,
                "--no-rate-limits",
                "--log",
                &args.server_log,
            ])
            .args(&args.server_arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let pid = child.id();
        let ready = wait_ready(addr, true, &mut child).await;
        server.nodes.push(Node {
            addr,
            url: format!("ws://127.0.0.1:{port}/api/v1/ws"),
            pid: Some(pid),
            child: Some(child),
        });
        ready?;
    }
    Ok((server, seeded))
}

/// Why `--nodes` above 1 is refused on SQLite.
pub const NODES_NEED_POSTGRES: &str = "--nodes above 1 needs PostgreSQL (--postgres or \
     --database-url): several kith-server processes share one database only there \
     (SQLite is one server's file)";

fn drop_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// Starts this executable as the bare broadcaster. Its tokens name the
/// client's conversation (see [`crate::baseline`]).
pub async fn start_baseline(args: &Args) -> Result<(Server, Seeded), Failure> {
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
        nodes: vec![Node {
            addr,
            url: format!("ws://127.0.0.1:{port}/ws"),
            pid: Some(child.id()),
            child: Some(child),
        }],
        database_url: None,
        local_postgres: false,
        db: None,
    };
    ready?;
    let group_size = args.group_size();
    let groups = args.clients.div_ceil(group_size).max(1);
    let seeded = Seeded {
        conversations: (1..=groups).map(|c| c.to_string()).collect(),
        versions: None,
        publisher: crate::baseline::PUBLISHER.into(),
        tokens: (0..args.clients)
            .map(|i| format!("{}.{i}", 1 + i / group_size))
            .collect(),
        group_size,
    };
    Ok((server, seeded))
}

/// `--target`: a running server and the tokens file's users.
pub fn target(args: &Args, url: &str) -> Result<(Server, Seeded), Failure> {
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
    seeded.group_size = args.clients.max(1);
    let server = Server {
        name: "kith",
        nodes: vec![Node {
            addr,
            url: url.into(),
            pid: args.server_pid,
            child: None,
        }],
        database_url: None,
        local_postgres: false,
        db: None,
    };
    Ok((server, seeded))
}
