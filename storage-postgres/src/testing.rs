//! The PostgreSQL the tests run against: one throwaway server per test
//! binary, started on first use and stopped when the test process exits.
//!
//! - The server binaries come from `$KITH_PG_BINDIR`, else
//!   `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`
//!   (Debian's layout). Without them the tests fail, saying to install
//!   PostgreSQL (Debian: the `postgresql` package); they never skip.
//! - `initdb` makes a cluster in a new temporary directory. PostgreSQL
//!   refuses to run as root, so when the tests run as root (as in CI) the
//!   directory is given to the `postgres` user and `initdb` and `postgres`
//!   run as that user.
//! - The server listens only on a unix socket in that directory
//!   (`listen_addresses=''`), with `fsync`, `synchronous_commit` and
//!   `full_page_writes` off: the data is thrown away, so durability buys
//!   nothing here. `max_connections` is 300, so that many cases can run at
//!   once with their small pools. Autovacuum is off: its workers visit the
//!   template database, and `CREATE DATABASE` waits for them to leave
//!   (~0.5 s per case instead of ~50 ms).
//! - A watchdog process (`sh`) waits for its stdin to close, which happens
//!   when the test process exits however it exits (Rust never drops
//!   statics), then stops the server (SIGQUIT) and removes the directory.
//! - The schema is migrated once into a template database; each case gets
//!   `CREATE DATABASE case_N TEMPLATE kith_template` and a pool of at most
//!   four connections, and the database is dropped (`WITH (FORCE)`) by a
//!   background thread once the case's runtime shuts down.
//!
//! Behind the cargo feature `testing`, for the tests of this crate and of
//! the crates that run Kith on PostgreSQL (kith-server's). It panics on
//! any failure: it is test code.
//!
//! ## A durable server, for benchmarks
//! [`durable_server`] starts a second throwaway server the same way, but
//! with PostgreSQL's durable defaults ([`Durability::Durable`]: `fsync`,
//! `synchronous_commit` and `full_page_writes` on, autovacuum on, `initdb`
//! syncing its files), so that a commit waits for its WAL flush as in
//! production. [`Server::settings`] lists the settings a server was started
//! with, for benchmark reports; [`Server::fresh_store_with`] and
//! [`Server::fresh_database_url`] give fresh databases on either server.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kith_postgres::{PgConnectOptions, PgPoolOptions, PgStore};
use sqlx::{ConnectOptions, Connection};

/// The database every case's database is copied from.
const TEMPLATE: &str = "kith_template";
/// The port, which only names the socket file in the server's directory.
const PORT: u16 = 5432;
/// The most connections one case's store opens.
const POOL_SIZE: u32 = 4;

const INSTALL_HINT: &str = "the kith-postgres tests start a throwaway PostgreSQL server \
    and need its binaries (initdb, postgres, pg_isready): install PostgreSQL (Debian/Ubuntu: \
    `apt-get install postgresql`) or set KITH_PG_BINDIR to the directory that holds them";

/// How durable a throwaway server's commits are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and `full_page_writes` off, autovacuum
    /// off: for tests, whose data is thrown away ([`server`]).
    Off,
    /// PostgreSQL's defaults: `fsync=on`, `synchronous_commit=on`,
    /// `full_page_writes=on`, autovacuum on; a commit returns once its WAL
    /// record is flushed to disk. For benchmarks ([`durable_server`]).
    Durable,
}

impl Durability {
    /// The `-c name=value` settings given to `postgres` for this
    /// durability, besides the common ones of [`COMMON_SETTINGS`].
    fn settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Durability::Off => &[
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
                ("autovacuum", "off"),
            ],
            Durability::Durable => &[
                ("fsync", "on"),
                ("synchronous_commit", "on"),
                ("full_page_writes", "on"),
                ("autovacuum", "on"),
            ],
        }
    }
}

/// The settings of every throwaway server: only a unix socket, room for
/// many small pools, no parallel query workers.
const COMMON_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", ""),
    ("max_connections", "300"),
    ("dynamic_shared_memory_type", "mmap"),
    ("max_parallel_workers_per_gather", "0"),
];

/// A running throwaway server.
pub struct Server {
    /// How durable its commits are.
    durability: Durability,
    /// Holds the socket and the data directory (`data/`).
    dir: PathBuf,
    /// Its stdin (a pipe from us) closes when this process exits, which
    /// stops the server.
    _watchdog: Mutex<Child>,
    /// The postmaster, kept so that it is not reaped early.
    _postgres: Mutex<Child>,
    /// Numbers the case databases.
    next: AtomicU64,
    /// Names of databases to drop, for the dropper thread.
    dropper: Mutex<mpsc::Sender<String>>,
}

impl Server {
    /// How durable this server's commits are.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Every `-c name=value` setting the server was started with (the rest
    /// are PostgreSQL's defaults).
    pub fn settings(&self) -> Vec<(&'static str, &'static str)> {
        let mut all = COMMON_SETTINGS.to_vec();
        all.extend_from_slice(self.durability.settings());
        all
    }

    /// A store over a fresh, migrated, empty database of its own on this
    /// server, with the pool `pool`; the database is dropped when the
    /// calling runtime shuts down.
    pub async fn fresh_store_with(&'static self, pool: PgPoolOptions) -> PgStore {
        let name = self.fresh_database().await;
        PgStore::connect_with(self.options(&name), pool)
            .await
            .unwrap_or_else(|e| panic!("opening database {name}: {e}"))
    }

    /// A fresh, migrated, empty database of its own on this server as a
    /// `postgres://` URL (for a server started with `--database-url`),
    /// dropped when the calling runtime shuts down.
    pub async fn fresh_database_url(&'static self) -> String {
        let name = self.fresh_database().await;
        let socket_dir = self.dir.to_string_lossy().into_owned();
        format!("postgres://postgres@localhost:{PORT}/{name}?host={socket_dir}")
    }

    /// Creates a database from the template; returns its name. It is
    /// dropped when the calling runtime shuts down.
    async fn fresh_database(&'static self) -> String {
        let name = format!("case_{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut admin = self
            .options("postgres")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        admin.close().await.ok();
        // Drop the database when the runtime shuts down: this task never
        // finishes, so it is dropped then, and with it the guard.
        let guard = DropDatabase(self, name.clone());
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        name
    }

    /// Connection options for `database` as the superuser.
    pub fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.dir.to_string_lossy())
            .port(PORT)
            .username("postgres")
            .database(database)
    }
}

/// The server of this test binary ([`Durability::Off`]), started on
/// first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| spawn_start(Durability::Off))
}

/// The durable server of this process ([`Durability::Durable`]), for
/// benchmarks, started on first use; a different server from [`server`]'s.
pub fn durable_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| spawn_start(Durability::Durable))
}

/// Starts a server on a thread of its own: the caller may be inside a
/// runtime, and setting up the template needs one of its own.
fn spawn_start(durability: Durability) -> Server {
    std::thread::spawn(move || start(durability))
        .join()
        .unwrap_or_else(|_| panic!("starting PostgreSQL for the tests failed (see above)"))
}

/// A store over a fresh, migrated, empty database of its own on [`server`]
/// (a pool of at most four connections), dropped when the calling runtime
/// shuts down.
pub async fn fresh_store() -> PgStore {
    server()
        .fresh_store_with(PgPoolOptions::new().max_connections(POOL_SIZE))
        .await
}

/// A fresh, migrated, empty database of its own on [`server`] as a
/// `postgres://` URL (for a server started with `--database-url`),
/// dropped when the calling runtime shuts down.
pub async fn fresh_database_url() -> String {
    server().fresh_database_url().await
}

/// Drops its database (through its server's dropper thread) when dropped.
struct DropDatabase(&'static Server, String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let sender = self
            .0
            .dropper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The dropper only stops with the process.
        let _ = sender.send(std::mem::take(&mut self.1));
    }
}

fn start(durability: Durability) -> Server {
    let bindir = bindir();
    let dir = tempfile::Builder::new()
        .prefix("kith-pg-")
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"))
        .keep();
    let data = dir.join("data");
    let owner = server_user();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("giving {} to the postgres user: {e}", dir.display()));
    }
    // The watchdog first, so that the directory goes away whatever happens
    // next.
    let watchdog = watchdog(&dir);
    let initdb = run_as(owner, Command::new(bindir.join("initdb")), &dir)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args((durability == Durability::Off).then_some("--no-sync"))
        .output()
        .unwrap_or_else(|e| panic!("running initdb: {e}; {INSTALL_HINT}"));
    assert!(
        initdb.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&initdb.stdout),
        String::from_utf8_lossy(&initdb.stderr)
    );
    let log = std::fs::File::create(dir.join("postgres.log"))
        .unwrap_or_else(|e| panic!("creating the server log: {e}"));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("creating the server log: {e}"));
    let mut postgres = run_as(owner, Command::new(bindir.join("postgres")), &dir)
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&dir)
        .args(["-p", &PORT.to_string()])
        .args(
            COMMON_SETTINGS
                .iter()
                .chain(durability.settings())
                .flat_map(|(name, value)| ["-c".to_string(), format!("{name}={value}")]),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting postgres: {e}; {INSTALL_HINT}"));
    wait_ready(&bindir, &dir, &mut postgres);
    let (dropper, names) = mpsc::channel();
    let server = Server {
        durability,
        dir,
        _watchdog: Mutex::new(watchdog),
        _postgres: Mutex::new(postgres),
        next: AtomicU64::new(0),
        dropper: Mutex::new(dropper),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
    runtime.block_on(make_template(&server));
    let admin = server.options("postgres");
    std::thread::spawn(move || drop_databases(runtime, admin, names));
    server
}

/// Where the server binaries are.
fn bindir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("KITH_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "KITH_PG_BINDIR={} holds no initdb and postgres; {INSTALL_HINT}",
            dir.display()
        );
        return dir;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| has_server(dir)) {
        return dir;
    }
    // Debian installs each major version beside the others.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let dir = entry.path().join("bin");
            has_server(&dir).then_some((version, dir))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir,
        None => panic!("PostgreSQL is not installed: {INSTALL_HINT}"),
    }
}

/// The uid and gid to run the server as: the `postgres` user's when this
/// process is root (PostgreSQL refuses to run as root), else `None` (run as
/// ourselves).
fn server_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => panic!(
            "running as root, the tests run PostgreSQL as the `postgres` user, which does not \
             exist; {INSTALL_HINT} (its package creates the user)"
        ),
    }
}

/// `command`, run as `owner` if given, in `dir`, with the C locale and in a
/// process group of its own (so that ^C reaches the watchdog's cleanup,
/// not the server).
fn run_as(owner: Option<(u32, u32)>, mut command: Command, dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .process_group(0);
    command
}

/// Starts the watchdog: when its stdin closes (this process exited), it
/// stops the server with SIGQUIT (immediate shutdown), waits up to ten
/// seconds for it to go, and removes `dir`.
fn watchdog(dir: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let script = r#"
        cat >/dev/null
        pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ]; then
            kill -QUIT "$pid" 2>/dev/null
            n=0
            while [ -e "$1/data/postmaster.pid" ] && [ "$n" -lt 100 ]; do
                sleep 0.1
                n=$((n + 1))
            done
        fi
        rm -rf "$1"
    "#;
    Command::new("sh")
        .args(["-c", script, "kith-pg-watchdog"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting the watchdog: {e}"))
}

/// Waits until the server accepts connections; fails with its log if it
/// exits or takes more than a minute.
fn wait_ready(bindir: &Path, dir: &Path, postgres: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = || {
            let mut text = String::new();
            std::fs::File::open(dir.join("postgres.log"))
                .and_then(|mut f| f.read_to_string(&mut text))
                .ok();
            text
        };
        if let Ok(Some(status)) = postgres.try_wait() {
            panic!("postgres exited ({status}) at startup:\n{}", log());
        }
        let ready = Command::new(bindir.join("pg_isready"))
            .arg("-h")
            .arg(dir)
            .args(["-p", &PORT.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "postgres did not start within a minute:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates the template database and migrates it, then closes every
/// connection to it (a template must have none when it is copied).
async fn make_template(server: &Server) {
    let mut admin = server
        .options("postgres")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    sqlx::query(&format!("CREATE DATABASE {TEMPLATE}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the template database: {e}"));
    admin.close().await.ok();
    let store = PgStore::connect_with(
        server.options(TEMPLATE),
        PgPoolOptions::new().max_connections(1),
    )
    .await
    .unwrap_or_else(|e| panic!("migrating the template database: {e}"));
    store.close().await;
}

/// The dropper thread: drops each case database named on `names`, for as
/// long as the process runs. Failures only leave a database behind in a
/// cluster that is thrown away anyway.
fn drop_databases(
    runtime: tokio::runtime::Runtime,
    admin: PgConnectOptions,
    names: mpsc::Receiver<String>,
) {
    runtime.block_on(async move {
        let mut conn = None;
        for name in names {
            if conn.is_none() {
                conn = admin.connect().await.ok();
            }
            let Some(c) = conn.as_mut() else { continue };
            let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *c)
                .await;
            if dropped.is_err() {
                conn = None;
            }
        }
    });
}
