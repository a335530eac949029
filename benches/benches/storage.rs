//! The storage path on both backends, driven through [`kith_core::Kith`]
//! without a send rate limit:
//! - **SQLite** (groups `append` and `read`): a kith-sqlite **file**
//!   database in a temporary directory (WAL, `synchronous=FULL`).
//! - **PostgreSQL** (groups `pg_append` and `pg_read`): a kith-postgres
//!   store (a pool of [`kith_postgres::DEFAULT_MAX_CONNECTIONS`], as
//!   `PgStore::connect` and kith-server open) over a database of its own on
//!   a throwaway local server started for the run with durable settings
//!   (`kith_postgres::testing::durable_server`: `fsync`,
//!   `synchronous_commit` and `full_page_writes` on; unix socket in a
//!   temporary directory; run as the `postgres` user when we are root;
//!   stopped when the bench exits). The settings are printed at start.
//!
//! `KITH_BENCH_BACKENDS` (default `sqlite,pg`) selects the backends.
//!
//! - `append/1_sender`: one sender, one `chat().send` after the other.
//! - `append/100_conversations/batch_N`: 100 senders at once, each in a group
//!   of its own, each waiting for its ack before its next send; `N` is the
//!   SQLite store's append batch limit (1 switches its group commit off, so
//!   both figures come from the same run); on PostgreSQL, the store's group
//!   commit limit across calls (`PgStore::set_group_commit_limit`; 1, off,
//!   is its default: one transaction per `append_messages` call). Every
//!   concurrent PostgreSQL workload runs with both limits.
//! - `append/100_conversations/send_rate` and
//!   `append/1_group_100_senders/send_rate`: the same with a send rate
//!   (too high to refuse anything) at the default batch limit: what keeping
//!   the senders' buckets in storage costs.
//! - `append/100_conversations_8_in_flight`: the same 100 senders, each
//!   making 8 sends at once and waiting for their acks before the next 8
//!   (the store's default batch limit).
//! - `append/store_100_conversations/batch_N`: the same 100 senders
//!   straight through `ChatStore::append_message`, without Kith's checks,
//!   lane and publication.
//! - `append/1_group_100_senders/batch_N`: 100 senders at once in one group
//!   of 100 (Kith stores the sends waiting in a conversation as one batch,
//!   one `append_messages` call; with `N` = 1 the SQLite store still commits
//!   each on its own).
//! - `append/1_group_100_senders_8_in_flight`: the same, each sender with 8
//!   sends in flight.
//! - `read/history_latest_50_of_10k`: the newest 50 of 10,000 messages.
//! - `read/unread_1k_conversations`: unread counts of a user in 1,000
//!   conversations, every one with an unread message.
//! - `read/conversations_first_20_of_1k`: the first page (20) of that user's
//!   conversation list.
//!
//! The data is seeded once per group through the library, not with SQL.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kith_core::{
    Appended, Argon2Hasher, ChatStore, Config, ConversationId, History, Kith, MessageId, NewGroup,
    NewMessage, NewMessageRecord, NewUser, Page, Rate, Storage, Timestamp, UserId,
};
use kith_postgres::{PgPoolOptions, PgStore, DEFAULT_MAX_CONNECTIONS};
use kith_sqlite::{SqliteStore, DEFAULT_APPEND_BATCH};
use tokio::runtime::Runtime;

/// Senders of the concurrent append benches.
const SENDERS: usize = 100;
/// Messages in the conversation of the history bench.
const HISTORY_MESSAGES: usize = 10_000;
/// The append batch limits compared: 1 (no group commit) and the default.
const BATCH_LIMITS: [usize; 2] = [1, DEFAULT_APPEND_BATCH];
/// Conversations of the unread and conversation-list benches.
const CONVERSATIONS: usize = 1_000;

/// A unique `client_id` per message, across every bench of the run.
static CLIENT_IDS: AtomicU64 = AtomicU64::new(0);

fn message() -> NewMessage {
    let n = CLIENT_IDS.fetch_add(1, Ordering::Relaxed);
    NewMessage {
        client_id: format!("c-{n}"),
        body: "x".repeat(100),
        reply_to: None,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The backends benchmarked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backends `KITH_BENCH_BACKENDS` names (default: both).
    fn selected() -> Vec<Backend> {
        let names = std::env::var("KITH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,pg".into());
        let mut backends = Vec::new();
        for name in names.split(',').map(str::trim) {
            match name {
                "sqlite" => backends.push(Backend::Sqlite),
                "pg" | "postgres" => backends.push(Backend::Postgres),
                "" => {}
                other => panic!("KITH_BENCH_BACKENDS: unknown backend {other:?} (sqlite, pg)"),
            }
        }
        backends
    }

    /// The prefix of this backend's criterion groups.
    fn prefix(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "pg_",
        }
    }
}

/// The store under a bench.
#[derive(Clone)]
enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Store::Sqlite(s) => Arc::new(s.clone()),
            Store::Postgres(s) => Arc::new(s.clone()),
        }
    }

    async fn append_message(&self, record: &NewMessageRecord) -> kith_core::Result<Appended> {
        match self {
            Store::Sqlite(s) => s.append_message(record).await,
            Store::Postgres(s) => s.append_message(record).await,
        }
    }

    /// Sets SQLite's append batch limit, or PostgreSQL's group commit
    /// limit (1: off).
    fn set_append_batch_limit(&self, limit: usize) {
        match self {
            Store::Sqlite(s) => s.set_append_batch_limit(limit),
            Store::Postgres(s) => s.set_group_commit_limit(limit),
        }
    }

    async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// Starts the durable PostgreSQL server (once) and prints its settings.
fn announce_postgres() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let server = kith_postgres::testing::durable_server();
        let settings: Vec<String> = server
            .settings()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!(
            "PostgreSQL (durable, pool of {DEFAULT_MAX_CONNECTIONS}): {}",
            settings.join(" ")
        );
    });
}

/// A Kith over a fresh database (SQLite: a file in a temporary directory
/// that lives as long as it; PostgreSQL: a database of its own on the
/// durable server).
struct Env {
    kith: Kith,
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn new(backend: Backend) -> Self {
        let (store, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let path = dir.path().join("kith.db");
                let store = SqliteStore::open(path.to_str().expect("a UTF-8 path"))
                    .await
                    .expect("the database opens");
                (Store::Sqlite(store), Some(dir))
            }
            Backend::Postgres => {
                announce_postgres();
                let store = kith_postgres::testing::durable_server()
                    .fresh_store_with(PgPoolOptions::new().max_connections(DEFAULT_MAX_CONNECTIONS))
                    .await;
                (Store::Postgres(store), None)
            }
        };
        let mut config = Config::default();
        config.send_rate = None;
        let kith = Kith::builder(store.storage())
            .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
            .config(config)
            .build();
        Self {
            kith,
            store,
            _dir: dir,
        }
    }

    async fn users(&self, prefix: &str, n: usize) -> Vec<UserId> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            let account = self
                .kith
                .accounts()
                .create_user(NewUser {
                    username: format!("{prefix}_{i}"),
                    email: None,
                })
                .await
                .expect("the user is created");
            users.push(account.id);
        }
        users
    }

    async fn group(&self, creator: UserId, members: Vec<UserId>) -> ConversationId {
        self.kith
            .chat()
            .create_group(
                creator,
                NewGroup {
                    title: "bench".into(),
                    members,
                },
            )
            .await
            .expect("the group is created")
            .id
    }

    /// The same store under a handle with a send rate too high to refuse
    /// anything, to measure what keeping the senders' buckets costs.
    fn rated(&self) -> Arc<Env> {
        let mut config = Config::default();
        config.send_rate = Some(Rate::per_second(1_000_000, 1_000_000));
        let kith = Kith::builder(self.store.storage())
            .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
            .config(config)
            .build();
        Arc::new(Env {
            kith,
            store: self.store.clone(),
            _dir: None,
        })
    }

    async fn send(&self, sender: UserId, conversation: ConversationId) {
        self.kith
            .chat()
            .send(sender, conversation, message())
            .await
            .expect("the message is sent");
    }
}

/// Runs `each(i)` for `i` in `0..n`, `width` at a time.
async fn concurrently<F, Fut>(n: usize, width: usize, each: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    use futures::stream::StreamExt;
    futures::stream::iter((0..n).map(each))
        .buffer_unordered(width)
        .collect::<Vec<()>>()
        .await;
}

/// Every sender sends `per_sender` messages into its conversation, all
/// senders at once; returns the elapsed time.
async fn flood(env: &Arc<Env>, senders: &[(UserId, ConversationId)], per_sender: u64) -> Duration {
    flood_in_bursts(env, senders, per_sender, 1).await
}

/// As [`flood`], but every sender makes `burst` sends at once (queued in
/// order, as a WebSocket connection does with the frames it has read) and
/// waits for their acks before the next burst.
async fn flood_in_bursts(
    env: &Arc<Env>,
    senders: &[(UserId, ConversationId)],
    per_sender: u64,
    burst: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .iter()
        .map(|&(user, conversation)| {
            let env = Arc::clone(env);
            tokio::spawn(async move {
                let mut left = per_sender;
                while left > 0 {
                    let n = left.min(burst);
                    let chat = env.kith.chat();
                    let sends: Vec<_> = (0..n)
                        .map(|_| chat.send(user, conversation, message()))
                        .collect();
                    for sent in futures::future::join_all(sends).await {
                        sent.expect("the message is sent");
                    }
                    left -= n;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender task");
    }
    start.elapsed()
}

/// As [`flood`], straight through `ChatStore::append_message`.
async fn flood_store(
    env: &Arc<Env>,
    senders: &[(UserId, ConversationId)],
    per_sender: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .iter()
        .map(|&(sender, conversation_id)| {
            let env = Arc::clone(env);
            tokio::spawn(async move {
                for _ in 0..per_sender {
                    let n = CLIENT_IDS.fetch_add(1, Ordering::Relaxed);
                    let record = NewMessageRecord {
                        id: MessageId::new((1 << 50) + n),
                        conversation_id,
                        sender,
                        client_id: format!("c-{n}"),
                        body: "x".repeat(100),
                        reply_to: None,
                        created_at: Timestamp::from_millis(1_767_225_600_000 + n as i64),
                        rate: None,
                    };
                    let appended = env.store.append_message(&record).await;
                    assert!(matches!(appended, Ok(Appended::Created(_))));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender task");
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    for backend in Backend::selected() {
        append_on(c, backend);
    }
}

fn append_on(c: &mut Criterion, backend: Backend) {
    let rt = runtime();
    let mut group = c.benchmark_group(format!("{}append", backend.prefix()));
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    // The batch limits a workload runs with: SQLite's append batch limit,
    // PostgreSQL's group commit limit (`PgStore::set_group_commit_limit`;
    // 1, its default, is off). `None`: the default limit, without a suffix
    // (SQLite's workloads that had one figure keep their names).
    let limits = |sqlite_loops: bool| -> Vec<Option<usize>> {
        if backend == Backend::Sqlite && !sqlite_loops {
            vec![None]
        } else {
            BATCH_LIMITS.iter().copied().map(Some).collect()
        }
    };
    let named = |base: &str, batch: Option<usize>| match batch {
        Some(n) => format!("{base}/batch_{n}"),
        None => base.to_string(),
    };

    // One sender, one message after the other.
    let (env, alice, notes) = rt.block_on(async {
        let env = Env::new(backend).await;
        let alice = env.users("solo", 1).await[0];
        let notes = env.group(alice, Vec::new()).await;
        (env, alice, notes)
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_sender", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    env.send(alice, notes).await;
                }
                start.elapsed()
            })
        });
    });
    drop(env);

    // 100 senders, each in a conversation of its own.
    let (env, own) = rt.block_on(async {
        let env = Env::new(backend).await;
        let users = env.users("own", SENDERS).await;
        let mut own = Vec::with_capacity(SENDERS);
        for &user in &users {
            own.push((user, env.group(user, Vec::new()).await));
        }
        (Arc::new(env), own)
    });
    group.throughput(Throughput::Elements(SENDERS as u64));
    for batch in limits(true) {
        env.store
            .set_append_batch_limit(batch.unwrap_or(DEFAULT_APPEND_BATCH));
        group.bench_function(named("100_conversations", batch), |b| {
            b.iter_custom(|iters| rt.block_on(flood(&env, &own, iters)));
        });
    }

    // The same with a send rate: every batch also reads and writes its
    // senders' buckets (default batch limit).
    env.store.set_append_batch_limit(DEFAULT_APPEND_BATCH);
    let rated = env.rated();
    group.bench_function("100_conversations/send_rate", |b| {
        b.iter_custom(|iters| rt.block_on(flood(&rated, &own, iters)));
    });
    drop(rated);

    // The same 100 senders, each with 8 sends in flight (bursts of 8).
    group.throughput(Throughput::Elements(SENDERS as u64 * 8));
    for batch in limits(false) {
        env.store
            .set_append_batch_limit(batch.unwrap_or(DEFAULT_APPEND_BATCH));
        group.bench_function(named("100_conversations_8_in_flight", batch), |b| {
            b.iter_custom(|iters| rt.block_on(flood_in_bursts(&env, &own, iters * 8, 8)));
        });
    }
    group.throughput(Throughput::Elements(SENDERS as u64));

    // The same through the store alone (`ChatStore::append_message`), without
    // Kith's checks, lane and publication: the ceiling of the storage layer.
    let store_senders: Vec<(UserId, ConversationId)> = own.clone();
    for batch in limits(true) {
        env.store
            .set_append_batch_limit(batch.unwrap_or(DEFAULT_APPEND_BATCH));
        group.bench_function(named("store_100_conversations", batch), |b| {
            b.iter_custom(|iters| rt.block_on(flood_store(&env, &store_senders, iters)));
        });
    }
    rt.block_on(env.store.close());
    drop(env);

    // 100 senders in one shared group.
    let (env, shared) = rt.block_on(async {
        let env = Env::new(backend).await;
        let users = env.users("shared", SENDERS).await;
        let group = env.group(users[0], users.clone()).await;
        let shared: Vec<_> = users.into_iter().map(|u| (u, group)).collect();
        (Arc::new(env), shared)
    });
    group.throughput(Throughput::Elements(SENDERS as u64));
    for batch in limits(true) {
        env.store
            .set_append_batch_limit(batch.unwrap_or(DEFAULT_APPEND_BATCH));
        group.bench_function(named("1_group_100_senders", batch), |b| {
            b.iter_custom(|iters| rt.block_on(flood(&env, &shared, iters)));
        });
    }

    env.store.set_append_batch_limit(DEFAULT_APPEND_BATCH);
    let rated = env.rated();
    group.bench_function("1_group_100_senders/send_rate", |b| {
        b.iter_custom(|iters| rt.block_on(flood(&rated, &shared, iters)));
    });
    drop(rated);

    // The same 100 senders, each with 8 sends in flight.
    group.throughput(Throughput::Elements(SENDERS as u64 * 8));
    for batch in limits(false) {
        env.store
            .set_append_batch_limit(batch.unwrap_or(DEFAULT_APPEND_BATCH));
        group.bench_function(named("1_group_100_senders_8_in_flight", batch), |b| {
            b.iter_custom(|iters| rt.block_on(flood_in_bursts(&env, &shared, iters * 8, 8)));
        });
    }
    rt.block_on(env.store.close());
    drop(env);
    group.finish();
}

fn reads(c: &mut Criterion) {
    for backend in Backend::selected() {
        reads_on(c, backend);
    }
}

fn reads_on(c: &mut Criterion, backend: Backend) {
    let rt = runtime();
    let mut group = c.benchmark_group(format!("{}read", backend.prefix()));
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));

    // A conversation of 10,000 messages, sent 100 at a time (stored in
    // order, as batches).
    let (env, reader, long) = rt.block_on(async {
        let env = Env::new(backend).await;
        let users = env.users("history", 2).await;
        let long = env.group(users[0], vec![users[1]]).await;
        let seeding = Instant::now();
        let env = Arc::new(env);
        flood_in_bursts(&env, &[(users[1], long)], HISTORY_MESSAGES as u64, 100).await;
        eprintln!(
            "seeded {HISTORY_MESSAGES} messages in {:.1?}",
            seeding.elapsed()
        );
        (env, users[0], long)
    });
    group.bench_function("history_latest_50_of_10k", |b| {
        b.to_async(&rt).iter(|| async {
            let page = env
                .kith
                .chat()
                .history(reader, long, History::Latest, Some(50))
                .await
                .expect("a page of history");
            assert_eq!(page.messages.len(), 50);
            page
        });
    });
    rt.block_on(env.store.close());
    drop(env);

    // A user in 1,000 conversations, each with one message from someone else.
    let (env, user) = rt.block_on(async {
        let env = Arc::new(Env::new(backend).await);
        let users = env.users("busy", 2).await;
        let (user, other) = (users[0], users[1]);
        let seeding = Instant::now();
        concurrently(CONVERSATIONS, SENDERS, |_| {
            let env = Arc::clone(&env);
            async move {
                let id = env.group(user, vec![other]).await;
                env.send(other, id).await;
            }
        })
        .await;
        eprintln!(
            "seeded {CONVERSATIONS} conversations in {:.1?}",
            seeding.elapsed()
        );
        (env, user)
    });
    group.bench_function("unread_1k_conversations", |b| {
        b.to_async(&rt).iter(|| async {
            let unread = env.kith.chat().unread(user).await.expect("unread counts");
            assert_eq!(unread.conversations.len(), CONVERSATIONS);
            unread
        });
    });
    group.bench_function("conversations_first_20_of_1k", |b| {
        b.to_async(&rt).iter(|| async {
            let page = env
                .kith
                .chat()
                .conversations(user, &Page::with_limit(20))
                .await
                .expect("a page of conversations");
            assert_eq!(page.items.len(), 20);
            page
        });
    });
    group.finish();
    rt.block_on(env.store.close());
}

criterion_group!(benches, append, reads);
criterion_main!(benches);
