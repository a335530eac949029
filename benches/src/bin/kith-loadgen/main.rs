//! `kith-loadgen`: the end-to-end WebSocket load generator of Kith.
//!
//! It seeds C users and one group conversation (all of them plus a
//! publisher) directly through kith-core into a fresh SQLite file (or a
//! fresh PostgreSQL database, with `--database-url postgres://...` or
//! `--postgres`), starts `kith-server` on that database as a child process, connects C authenticated
//! WebSockets, and has a publisher connection send M messages of 100 bytes
//! into the group. Every receiving client records the receive time of every
//! `message_created` frame; the publisher records the send times. It then
//! reports deliveries per second, send->receipt latency (p50, p99, max),
//! lost, duplicated and out-of-order deliveries, and the server process's CPU
//! time and RSS.
//!
//! With `--compare` (on by default) the same workload is also run against a
//! bare broadcaster (this same executable re-run with a hidden flag: a
//! tokio-tungstenite server without authentication or storage that forwards
//! one pre-built frame to every member of the conversation), and every
//! figure is also given as a ratio to it. With `--repeats N` the pair runs N
//! times, the baseline first on odd repeats and Kith first on even ones.
//!
//! With `--nodes N` (PostgreSQL only) N kith-server processes share the
//! database: the clients and the publisher's connections (one per node) are
//! spread round robin over them, and a message committed on another node
//! counts when it arrives as a `change` frame just as a `message_created`
//! does. `--nodes 1,2` runs each count in turn, each on a fresh database,
//! and compares them.
//!
//! Modules: `servers` (seeding, starting and stopping the servers),
//! `baseline` (the bare broadcaster), `clients` (connections, the publisher
//! and the receivers), `runs` (one run's figures, the tables), `probes`
//! (what a run costs PostgreSQL).
//!
//! Build first: `cargo build --release -p kith-server -p kith-benches`, then
//! `target/release/kith-loadgen --help`. Figures are in `docs/BENCHMARKS.md`.

mod baseline;
mod clients;
mod probes;
mod runs;
mod servers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use kith_benches::raise_open_file_limit;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// The same allocator as kith-server's, so that the bare broadcaster (this
/// executable) and Kith are compared on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<TcpStream>;

/// End-to-end WebSocket load generator for Kith, with a bare-broadcaster
/// baseline.
///
/// Seeds C users and one group (the C users plus a publisher) directly
/// through kith-core into a fresh SQLite file (or, with `--database-url` or
/// `--postgres`, a fresh PostgreSQL database), starts `kith-server` (found
/// next to this executable) on it with `--no-rate-limits` on a free
/// 127.0.0.1 port, connects C authenticated WebSockets (each sends `resume`
/// and waits for `unread`), then one publisher sends M messages of
/// `--body-bytes` into the group. Reports deliveries/s (message frames
/// received by all clients / time from first send to last receipt),
/// send->receipt latency p50/p99/max, lost, duplicated and out-of-order
/// deliveries, and the server's CPU time and RSS, as a table and one JSON
/// line. With `--nodes N` (PostgreSQL only), N kith-server processes share
/// the database; clients and the publisher's sends are spread over them
/// (a message committed on another node arrives as a `change` frame and
/// counts as a delivery); CPU and RSS are summed over the nodes; on
/// PostgreSQL the run's write transactions and notifications are counted
/// too. With `--compare` (default) the same workload also runs against a
/// bare tokio-tungstenite broadcaster (no auth, no storage, one shared frame
/// per message) and figures are also given as ratios to it; `--repeats`
/// alternates which of the two runs first.
///
/// Build first: `cargo build --release -p kith-server -p kith-benches`.
///
/// Examples:
///   kith-loadgen                                    # C=1000, M=2000, W=8, throughput
///   kith-loadgen --mode rate --rate 10 -m 600       # latency at 10 msg/s for 60 s
///   kith-loadgen --mode light -c 200 -m 150         # latency at 5 msg/s, groups of 5
///   kith-loadgen --mode light --server-arg=--tcp-nodelay=false   # the same without TCP_NODELAY
///   kith-loadgen --postgres                         # the same on PostgreSQL (throwaway durable server)
///   kith-loadgen --database-url postgres://kith@localhost/postgres   # on that server, a fresh database per run
///   kith-loadgen --postgres --nodes 1,2 --repeats 2 --compare false # one kith-server vs two on one database
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
    /// Rate mode: messages per second (light mode: 5 unless given).
    #[arg(long)]
    rate: Option<f64>,
    /// Light mode: members of each group besides the publisher.
    #[arg(long, default_value_t = 5)]
    group_size: usize,
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
    /// Run kith-server on PostgreSQL, on the server of this `postgres://`
    /// URL: each run creates a fresh database `kith_loadgen_PID_N` there
    /// (through a connection to the URL's database, so the role needs
    /// CREATEDB), seeds it through kith-postgres, starts kith-server with
    /// the URL of that database and drops it after the run.
    #[arg(long, conflicts_with_all = ["postgres", "seed_only"])]
    database_url: Option<String>,
    /// Run kith-server on PostgreSQL, on a throwaway local server started
    /// for this invocation with durable settings (`fsync`,
    /// `synchronous_commit`, `full_page_writes` on; unix socket only; see
    /// `kith_postgres::testing::durable_server`), a fresh database per run.
    /// Needs PostgreSQL's server binaries.
    #[arg(long, conflicts_with = "seed_only")]
    postgres: bool,
    /// kith-server processes sharing the database (above 1: PostgreSQL
    /// only), on ports of their own; client `i` connects to node `i % N`,
    /// the publisher has one connection per node and sends each group's
    /// messages through the nodes in turn. A list (`--nodes 1,2`) runs the
    /// workload once per count, each on a fresh database (in the list's
    /// order on odd repeats, reversed on even ones), then compares them.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    nodes: Vec<usize>,
    /// An argument passed to kith-server as is (repeatable), for instance
    /// `--server-arg=--tcp-nodelay=false`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Run the workload (against Kith and, with `--compare`, the baseline)
    /// this many times; the baseline runs first on odd repeats, Kith on even.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Internal: run as the bare broadcaster on this address.
    #[arg(long, hide = true)]
    baseline_server: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Keep W messages unacknowledged at all times.
    Throughput,
    /// Send at `--rate` messages per second (latency mode), into one group.
    Rate,
    /// Light traffic: `--rate` (default 5) messages per second in all, round
    /// robin over groups of `--group-size` clients plus the publisher, so
    /// that each connection carries a frame now and then (latency when
    /// nothing is queued: what Nagle's algorithm and delayed ACKs would add).
    Light,
}

impl Args {
    /// Messages per second in the rate and light modes.
    fn rate(&self) -> f64 {
        self.rate.unwrap_or(match self.mode {
            Mode::Light => 5.0,
            _ => 10.0,
        })
    }

    /// Whether kith-server runs on PostgreSQL (`--database-url` or
    /// `--postgres`).
    fn postgres(&self) -> bool {
        self.postgres || self.database_url.is_some()
    }

    /// The backend's name, for the reports.
    fn backend(&self) -> &'static str {
        if self.postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Members per group (besides the publisher): all clients in one group
    /// except in light mode.
    fn group_size(&self) -> usize {
        match self.mode {
            Mode::Light => self.group_size.max(1),
            _ => self.clients.max(1),
        }
    }
}

fn main() -> Result<(), Failure> {
    let args = Args::parse();
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(addr) = args.baseline_server {
        return runtime.block_on(baseline::serve(addr));
    }
    if let Some(db) = &args.seed_only {
        return runtime.block_on(servers::seed_only(&args, db));
    }
    runtime.block_on(run(args))
}

/// One run of the workload against `server` (a started server and its
/// seeded users).
async fn run_one(
    args: &Args,
    server: servers::Server,
    seeded: &servers::Seeded,
) -> Result<Value, Failure> {
    let figures = if args.connect_only {
        runs::connect_only(args, &server, seeded).await?
    } else {
        runs::messages(args, &server, seeded).await?
    };
    drop(server);
    // Let the sockets of the run close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(figures)
}

async fn run(args: Args) -> Result<(), Failure> {
    if args.messages > u32::MAX as usize {
        return Err("--messages is too large".into());
    }
    if args.mode == Mode::Light && (args.target.is_some() || args.seed_only.is_some()) {
        return Err("--mode light seeds its own groups: not with --target or --seed-only".into());
    }
    if args.nodes.is_empty() || args.nodes.contains(&0) {
        return Err("--nodes: each count must be at least 1".into());
    }
    let most_nodes = args.nodes.iter().copied().max().unwrap_or(1);
    if most_nodes > 1 && args.target.is_some() {
        return Err("--nodes above 1 starts its own servers: not with --target".into());
    }
    if most_nodes > 1 && !args.postgres() {
        return Err(servers::NODES_NEED_POSTGRES.into());
    }
    let workload = json!({
        "mode": if args.connect_only { "connect-only" } else {
            match args.mode { Mode::Throughput => "throughput", Mode::Rate => "rate", Mode::Light => "light" }
        },
        "clients": args.clients,
        "messages": args.messages,
        "window": args.window,
        "rate": args.rate(),
        "group_size": args.group_size(),
        "body_bytes": args.body_bytes,
        "concurrency": args.concurrency,
        "server_args": args.server_arg,
        "backend": args.backend(),
        "nodes": args.nodes,
    });
    let mut ratios: Vec<(usize, serde_json::Map<String, Value>)> = Vec::new();
    let mut results: Vec<(usize, Value)> = Vec::new();
    for repeat in 1..=args.repeats.max(1) {
        let baseline_first = repeat % 2 == 1;
        let mut baseline = None;
        if args.compare && baseline_first {
            let (server, seeded) = servers::start_baseline(&args).await?;
            baseline = Some(run_one(&args, server, &seeded).await?);
        }
        let mut order = args.nodes.clone();
        if repeat % 2 == 0 {
            order.reverse();
        }
        let mut kiths = Vec::new();
        for &nodes in &order {
            let (server, seeded) = match &args.target {
                Some(url) => servers::target(&args, url)?,
                None => servers::start_kith(&args, !args.connect_only, nodes).await?,
            };
            kiths.push((nodes, run_one(&args, server, &seeded).await?));
        }
        if args.compare && !baseline_first {
            let (server, seeded) = servers::start_baseline(&args).await?;
            baseline = Some(run_one(&args, server, &seeded).await?);
        }
        for (nodes, kith) in kiths {
            let ratio = runs::ratio(&kith, baseline.as_ref());
            println!(
                "repeat {repeat} of {}, {nodes} node(s) (nodes in the order {order:?}; {} first)",
                args.repeats.max(1),
                if baseline_first && args.compare {
                    "baseline"
                } else {
                    "kith"
                }
            );
            runs::print_table(&kith, baseline.as_ref(), &ratio);
            let line = json!({
                "workload": workload,
                "repeat": repeat,
                "nodes": nodes,
                "nodes_order": order,
                "first": if baseline_first && args.compare { "baseline" } else { "kith" },
                "kith": kith,
                "baseline": baseline,
                "ratio_to_baseline": ratio,
            });
            println!("{line}");
            results.push((nodes, kith));
            ratios.push((nodes, ratio));
        }
    }
    if args.compare && args.repeats > 1 {
        for &nodes in &args.nodes {
            let of_these: Vec<_> = ratios
                .iter()
                .filter(|(n, _)| *n == nodes)
                .map(|(_, r)| r.clone())
                .collect();
            println!("{nodes} node(s):");
            runs::print_medians(&of_these);
        }
    }
    if args.nodes.len() > 1 {
        runs::print_nodes_comparison(&args.nodes, &results);
    }
    Ok(())
}
