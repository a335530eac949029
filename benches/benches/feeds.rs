//! The home feed over a generated social network, on both backends, driven
//! through [`kith_core::Kith`] (no write limits):
//!
//! - 10,000 users (`KITH_FEED_USERS`) and 1,000,000 posts
//!   (`KITH_FEED_POSTS`), each by a uniformly drawn author, in time order;
//! - power-law follows: each user follows a log-normal number of others
//!   (median 100, between 5 and 2,000), drawn by popularity (weight
//!   `1 / (rank + 50)`), so that the most popular authors have about 5,000
//!   followers; one user in ten befriends five of the users it follows.
//!
//! The data is made through the library (`accounts().create_user`,
//! `graph().follow`, `graph().send_friend_request` / `accept`,
//! `posts().create`), never with SQL, on SQLite (in `/dev/shm`, so that
//! making it takes minutes, not hours), kept in `target/feed-bench/` and
//! copied for each run; PostgreSQL's is that one moved by `kith-server
//! migrate-data` into a database on the durable throwaway server, then
//! `VACUUM ANALYZE`d.
//!
//! Groups (`pg_` prefix on PostgreSQL):
//! - `feed/home_page_1` and `feed/home_page_50`: `posts().home` with a page
//!   of 20, the first page and the 50th (the cursor of the 49th read
//!   before), for 500 sampled users in turn (`KITH_FEED_SAMPLED`).
//! - `feed/naive_page_1` and `feed/naive_page_50`: the same pages by the
//!   naive query (`author_id IN (...) ORDER BY id DESC LIMIT 21`, the same
//!   author set and columns as Kith's, without the per-author floor), raw
//!   SQL on the same database.
//! - `feed/create_post_5000_followers`: `posts().create` by the most
//!   followed author.
//!
//! Criterion reports means; the p50 and p99 over the sampled users (each
//! call timed on its own) are printed before each group, as
//! `latency <name>: p50 … p99 … (n calls)`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::stream::{self, StreamExt};
use kith_core::{
    Config, Kith, NewPost, NewUser, Page, Post, Storage, UserId, Visibility, WriteRates,
};
use kith_postgres::PgStore;
use kith_sqlite::SqliteStore;
use tokio::runtime::Runtime;

/// How many users and posts; `KITH_FEED_USERS` / `KITH_FEED_POSTS`.
fn sizes() -> (usize, usize) {
    let read = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        read("KITH_FEED_USERS", 10_000),
        read("KITH_FEED_POSTS", 1_000_000),
    )
}

/// Sampled users per page depth; `KITH_FEED_SAMPLED`.
fn sampled() -> usize {
    std::env::var("KITH_FEED_SAMPLED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}
/// The page size.
const PAGE: u32 = 20;

/// splitmix64: a small deterministic generator, so that every run builds
/// the same network.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The network: who follows whom (by index), who befriends whom.
struct Network {
    follows: Vec<Vec<usize>>,
    friends: Vec<(usize, usize)>,
    /// Post authors, in posting order.
    authors: Vec<usize>,
}

fn network(users: usize, posts: usize) -> Network {
    let mut rng = Rng(0x6B69_7468);
    // Popularity by rank: user i has rank i.
    let weights: Vec<f64> = (0..users).map(|r| 1.0 / (r as f64 + 50.0)).collect();
    let mut cumulative = Vec::with_capacity(users);
    let mut total = 0.0;
    for w in &weights {
        total += w;
        cumulative.push(total);
    }
    let mut follows = Vec::with_capacity(users);
    let mut friends = Vec::new();
    for user in 0..users {
        let k = (100.0 * (0.8 * rng.normal()).exp()).clamp(5.0, 2000.0) as usize;
        let k = k.min(users - 1);
        let mut chosen = HashSet::with_capacity(k);
        while chosen.len() < k {
            let x = rng.unit() * total;
            let pick = cumulative.partition_point(|&c| c < x).min(users - 1);
            if pick != user {
                chosen.insert(pick);
            }
        }
        let mut chosen: Vec<usize> = chosen.into_iter().collect();
        chosen.sort_unstable();
        if user % 10 == 0 {
            for &other in chosen.iter().take(5) {
                friends.push((user, other));
            }
        }
        follows.push(chosen);
    }
    let authors = (0..posts).map(|_| rng.below(users)).collect();
    Network {
        follows,
        friends,
        authors,
    }
}

/// Kith over `storage` without write limits.
fn kith(storage: Arc<dyn Storage>) -> Kith {
    let mut config = Config::default();
    config.write_rates = WriteRates::none();
    config.send_rate = None;
    Kith::builder(storage).config(config).build()
}

/// Makes the network's users, links and posts through `kith`; returns the
/// users' ids by index.
async fn populate(kith: &Kith, net: &Network) -> Vec<UserId> {
    let started = Instant::now();
    let accounts = kith.accounts();
    let mut ids = Vec::with_capacity(net.follows.len());
    for i in 0..net.follows.len() {
        let user = NewUser {
            username: format!("user{i}"),
            email: None,
        };
        ids.push(accounts.create_user(user).await.expect("a user").id);
    }
    let ids = Arc::new(ids);
    let follows: Vec<(usize, usize)> = net
        .follows
        .iter()
        .enumerate()
        .flat_map(|(u, fs)| fs.iter().map(move |&f| (u, f)))
        .collect();
    stream::iter(follows)
        .for_each_concurrent(16, |(u, f)| {
            let (kith, ids) = (kith.clone(), Arc::clone(&ids));
            async move {
                kith.graph().follow(ids[u], ids[f]).await.expect("a follow");
            }
        })
        .await;
    for &(a, b) in &net.friends {
        let graph = kith.graph();
        graph
            .send_friend_request(ids[a], ids[b])
            .await
            .expect("a request");
        graph
            .accept_friend_request(ids[b], ids[a])
            .await
            .expect("accepted");
    }
    eprintln!(
        "feed data: {} users, {} follows, {} friendships in {:.0?}",
        ids.len(),
        net.follows.iter().map(Vec::len).sum::<usize>(),
        net.friends.len(),
        started.elapsed()
    );
    let started = Instant::now();
    let posts: Vec<(usize, usize)> = net.authors.iter().copied().enumerate().collect();
    stream::iter(posts)
        .for_each_concurrent(16, |(n, author)| {
            let (kith, ids) = (kith.clone(), Arc::clone(&ids));
            async move {
                let visibility = if n % 5 == 0 {
                    Visibility::Friends
                } else {
                    Visibility::Public
                };
                let post = NewPost {
                    text: format!("post {n} #tag{}", n % 100),
                    visibility,
                    shared_id: None,
                };
                kith.posts()
                    .create(ids[author], post)
                    .await
                    .expect("a post");
            }
        })
        .await;
    eprintln!(
        "feed data: {} posts in {:.0?}",
        net.authors.len(),
        started.elapsed()
    );
    Arc::try_unwrap(ids).unwrap_or_else(|ids| (*ids).clone())
}

/// p50 and p99 of `samples`.
fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    eprintln!(
        "latency {name}: p50 {:.0?} p99 {:.0?} ({} calls)",
        at(0.50),
        at(0.99),
        samples.len()
    );
}

/// One backend's data set and the raw connection for the naive query.
struct Fixture {
    kith: Kith,
    users: Vec<UserId>,
    naive: Naive,
    _dir: Option<tempfile::TempDir>,
}

/// The naive query, on the fixture's database.
enum Naive {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The author set of Kith's home feed (own, friends', followees', minus
/// mutes) and the posts' columns, newest first by id, without a floor.
const NAIVE_SQLITE: &str = "\
    WITH shown (id) AS (SELECT ?1 \
        UNION SELECT friend_id FROM friendships WHERE user_id = ?1 \
        UNION SELECT followee_id FROM follows WHERE follower_id = ?1 \
        EXCEPT SELECT muted_id FROM mutes WHERE muter_id = ?1) \
    SELECT p.id, p.text, p.visibility, p.created_at, p.position, a.username \
    FROM posts p JOIN accounts a ON a.id = p.author_id \
    WHERE p.author_id IN (SELECT id FROM shown) AND p.id < ?2 AND a.deleted_at IS NULL \
    ORDER BY p.id DESC LIMIT 21";

/// [`NAIVE_SQLITE`] for PostgreSQL.
const NAIVE_POSTGRES: &str = "\
    WITH shown (id) AS (SELECT $1::bigint \
        UNION SELECT friend_id FROM friendships WHERE user_id = $1 \
        UNION SELECT followee_id FROM follows WHERE follower_id = $1 \
        EXCEPT SELECT muted_id FROM mutes WHERE muter_id = $1) \
    SELECT p.id, p.text, p.visibility, p.created_at, p.position, a.username \
    FROM posts p JOIN accounts a ON a.id = p.author_id \
    WHERE p.author_id IN (SELECT id FROM shown) AND p.id < $2 AND a.deleted_at IS NULL \
    ORDER BY p.id DESC LIMIT 21";

type NaiveRow = (i64, String, String, i64, Option<i64>, String);

impl Naive {
    /// A naive page of `user`'s feed below post id `below`; the last id.
    async fn page(&self, user: UserId, below: i64) -> Option<i64> {
        let user = user.get() as i64;
        let rows: Vec<NaiveRow> = match self {
            Naive::Sqlite(pool) => sqlx::query_as(NAIVE_SQLITE)
                .bind(user)
                .bind(below)
                .fetch_all(pool)
                .await
                .expect("the naive query"),
            Naive::Postgres(pool) => sqlx::query_as(NAIVE_POSTGRES)
                .bind(user)
                .bind(below)
                .fetch_all(pool)
                .await
                .expect("the naive query"),
        };
        rows.get(PAGE as usize - 1).map(|r| r.0)
    }
}

/// The SQLite data set: built once into `target/feed-bench/`, copied into a
/// temporary directory per run.
async fn sqlite_fixture(users: usize, posts: usize) -> Fixture {
    let cache: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "target", "feed-bench"]
        .iter()
        .collect();
    std::fs::create_dir_all(&cache).expect("the cache directory");
    let kept = cache.join(format!("feed-{users}-{posts}-v1.db"));
    if !kept.exists() {
        // Built in memory-backed storage (/dev/shm, where a commit's fsync
        // costs nothing: making the data set is not what is measured),
        // then kept on disk.
        let building = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary directory");
        let path = building.path().join("feed.db");
        let store = SqliteStore::open(path.to_str().expect("a UTF-8 path"))
            .await
            .expect("the database opens");
        populate(&kith(Arc::new(store.clone())), &network(users, posts)).await;
        store.close().await;
        let partial = cache.join("building.db");
        std::fs::copy(&path, &partial).expect("the data set is copied");
        std::fs::rename(&partial, &kept).expect("the data set is kept");
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("kith.db");
    std::fs::copy(&kept, &path).expect("the data set is copied");
    let path = path.to_str().expect("a UTF-8 path").to_owned();
    let store = SqliteStore::open(&path).await.expect("the database opens");
    let kith = kith(Arc::new(store));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
        .await
        .expect("a raw connection");
    let users = all_users(&kith, users).await;
    Fixture {
        kith,
        users,
        naive: Naive::Sqlite(pool),
        _dir: Some(dir),
    }
}

/// The PostgreSQL data set: SQLite's, moved by `kith-server migrate-data`
/// into a database of its own on the durable throwaway server.
async fn postgres_fixture(users: usize, posts: usize) -> Fixture {
    let source = sqlite_fixture(users, posts).await;
    let dir = source._dir.expect("the SQLite copy's directory");
    let from = dir.path().join("kith.db");
    let url = kith_postgres::testing::durable_server()
        .fresh_database_url()
        .await;
    let started = Instant::now();
    kith_server::migrate::migrate_data(
        from.to_str().expect("a UTF-8 path"),
        &url,
        kith_server::migrate::DEFAULT_BATCH_SIZE,
    )
    .await
    .expect("the data set moves to PostgreSQL");
    eprintln!(
        "feed data: moved to PostgreSQL in {:.0?}",
        started.elapsed()
    );
    let store = PgStore::connect(&url).await.expect("the database opens");
    // As autovacuum would have left a database that old: statistics, and a
    // visibility map so that index-only scans skip the table.
    sqlx::query("VACUUM ANALYZE")
        .execute(store.pool())
        .await
        .expect("VACUUM ANALYZE");
    let kith = kith(Arc::new(store));
    let pool = sqlx::PgPool::connect(&url).await.expect("a raw connection");
    Fixture {
        kith,
        users: source.users,
        naive: Naive::Postgres(pool),
        _dir: None,
    }
}

/// The ids of `user0` … `user{n-1}`, as the cached data set holds them.
async fn all_users(kith: &Kith, n: usize) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let account = kith
            .accounts()
            .profile_by_username(None, &format!("user{i}"))
            .await
            .expect("a user of the data set");
        ids.push(account.user.id);
    }
    ids
}

/// The cursor of page `page - 1` of `user`'s home feed (`None` for page 1).
async fn cursor_before(kith: &Kith, user: UserId, page: usize) -> Option<String> {
    let mut cursor: Option<String> = None;
    for _ in 1..page {
        let p = match &cursor {
            None => Page::with_limit(PAGE),
            Some(c) => Page::after(c.clone(), Some(PAGE)),
        };
        cursor = kith
            .posts()
            .home(user, &p)
            .await
            .expect("a page")
            .next_cursor;
        cursor.as_ref()?;
    }
    cursor
}

/// The id below which the naive query's page `page` starts.
async fn naive_before(naive: &Naive, user: UserId, page: usize) -> Option<i64> {
    let mut below = i64::MAX;
    for _ in 1..page {
        below = naive.page(user, below).await?;
    }
    Some(below)
}

fn feeds(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let (users, posts) = sizes();
    for backend in backends() {
        let prefix = if backend == "pg" { "pg_" } else { "" };
        let fixture = runtime.block_on(async {
            match backend {
                "pg" => postgres_fixture(users, posts).await,
                _ => sqlite_fixture(users, posts).await,
            }
        });
        let mut rng = Rng(7);
        let sampled: Vec<UserId> = (0..sampled())
            .map(|_| fixture.users[rng.below(fixture.users.len())])
            .collect();
        let mut group = c.benchmark_group(format!("{prefix}feed"));
        group.sample_size(20);
        for depth in [1usize, 50] {
            let starts: Vec<(UserId, Option<String>)> = runtime.block_on(async {
                let mut starts = Vec::new();
                for &user in &sampled {
                    let cursor = cursor_before(&fixture.kith, user, depth).await;
                    if depth == 1 || cursor.is_some() {
                        starts.push((user, cursor));
                    }
                }
                starts
            });
            let home = |user: UserId, cursor: &Option<String>| {
                let page = match cursor {
                    None => Page::with_limit(PAGE),
                    Some(c) => Page::after(c.clone(), Some(PAGE)),
                };
                let kith = fixture.kith.clone();
                async move {
                    let paged = kith.posts().home(user, &page).await.expect("a page");
                    std::hint::black_box::<Vec<Post>>(paged.items);
                }
            };
            let samples = runtime.block_on(async {
                let mut samples = Vec::with_capacity(starts.len());
                for (user, cursor) in &starts {
                    let t = Instant::now();
                    home(*user, cursor).await;
                    samples.push(t.elapsed());
                }
                samples
            });
            report(&format!("{prefix}feed/home_page_{depth}"), samples);
            let mut next = 0;
            group.bench_function(format!("home_page_{depth}"), |b| {
                b.to_async(&runtime).iter(|| {
                    let (user, cursor) = &starts[next % starts.len()];
                    next += 1;
                    home(*user, cursor)
                })
            });
            let naive_starts: Vec<(UserId, i64)> = runtime.block_on(async {
                let mut out = Vec::new();
                for &user in &sampled {
                    if let Some(below) = naive_before(&fixture.naive, user, depth).await {
                        out.push((user, below));
                    }
                }
                out
            });
            let samples = runtime.block_on(async {
                let mut samples = Vec::with_capacity(naive_starts.len());
                for (user, below) in &naive_starts {
                    let t = Instant::now();
                    fixture.naive.page(*user, *below).await;
                    samples.push(t.elapsed());
                }
                samples
            });
            report(&format!("{prefix}feed/naive_page_{depth}"), samples);
            let mut next = 0;
            group.bench_function(format!("naive_page_{depth}"), |b| {
                b.to_async(&runtime).iter(|| {
                    let (user, below) = naive_starts[next % naive_starts.len()];
                    next += 1;
                    let naive = &fixture.naive;
                    async move { std::hint::black_box(naive.page(user, below).await) }
                })
            });
        }
        // The most followed author is user0 (rank 0).
        let author = fixture.users[0];
        let create = || {
            let kith = fixture.kith.clone();
            async move {
                let post = NewPost {
                    text: "a post for 5,000 followers #bench".into(),
                    visibility: Visibility::Public,
                    shared_id: None,
                };
                kith.posts().create(author, post).await.expect("a post");
            }
        };
        let samples = runtime.block_on(async {
            let mut samples = Vec::with_capacity(500);
            for _ in 0..500 {
                let t = Instant::now();
                create().await;
                samples.push(t.elapsed());
            }
            samples
        });
        report(&format!("{prefix}feed/create_post_5000_followers"), samples);
        group.bench_function("create_post_5000_followers", |b| {
            b.to_async(&runtime).iter(create)
        });
        group.finish();
    }
}

/// The backends `KITH_BENCH_BACKENDS` names (default `sqlite,pg`).
fn backends() -> Vec<&'static str> {
    let names = std::env::var("KITH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,pg".into());
    names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n {
            "sqlite" => "sqlite",
            "pg" | "postgres" => "pg",
            other => panic!("KITH_BENCH_BACKENDS: unknown backend {other:?} (sqlite, pg)"),
        })
        .collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = feeds
}
criterion_main!(benches);
