//! # kith-postgres
//!
//! Kith's server-grade storage backend: [`PgStore`] implements
//! [`kith_core::Storage`] over a PostgreSQL database through sqlx. It is
//! what an application uses when several processes serve one database, or
//! when the data belongs on a database server. It passes the same
//! conformance suite (`kith_core::testkit`) as `kith-sqlite`, the reference
//! implementation of every storage contract.
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kith_core::{Kith, NewAccount};
//! use kith_postgres::PgStore;
//!
//! // Connects a pool and applies any pending migrations.
//! let store = PgStore::connect("postgres://kith@localhost/kith").await?;
//! let kith = Kith::builder(Arc::new(store.clone())).build();
//! let alice = kith.accounts().register(NewAccount {
//!     username: "alice".into(),
//!     email: "alice@example.com".into(),
//!     password: "correct horse battery".into(),
//! }).await?;
//! assert_eq!(kith.accounts().me(alice.id).await?.username, "alice");
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! [`PgStore::connect`] takes a `postgres://` URL (any form libpq accepts
//! that sqlx understands, including `?host=/run/postgresql` for a unix
//! socket); [`PgStore::connect_with`] takes sqlx's connection and pool
//! options for everything else (TLS, pool size, timeouts). Both apply the
//! embedded migrations (`migrations/`) before returning; the database must
//! exist and the role must be allowed to create tables in it the first time.
//!
//! ## Layout
//! - `lib.rs`: [`PgStore`] (connecting, transactions, migrations) and this
//!   crate's one error type, [`Error`], for setup failures.
//! - `accounts.rs`: [`AccountStore`](kith_core::AccountStore).
//! - `graph.rs`: [`GraphStore`](kith_core::GraphStore).
//! - `chat/`: [`ChatStore`](kith_core::ChatStore): `conversations.rs`,
//!   `send.rs` (appends, one by one and set-based), `messages.rs` and
//!   `read.rs`, as in `kith-sqlite`.
//! - `posts.rs`, `comments.rs`, `reactions.rs`:
//!   [`PostStore`](kith_core::PostStore),
//!   [`CommentStore`](kith_core::CommentStore) and
//!   [`ReactionStore`](kith_core::ReactionStore), as in `kith-sqlite`.
//! - `rows.rs`: the private row structs and their conversions.
//! - `migrations/`: the schema, each file documenting its tables and
//!   indexes.
//!
//! Trait methods return [`kith_core::Error`]: driver failures become
//! [`kith_core::Error::Storage`], and unique-constraint violations the
//! [`kith_core::Error::Conflict`] each contract names, recognised by the
//! **name of the violated constraint** (`accounts_username_lower`,
//! `accounts_email_lower`, `friend_requests_pair`,
//! `conversations_direct_pair`, `messages_client`), never by message text.
//!
//! ## Schema
//! The schema mirrors `kith-sqlite`'s: ids are `BIGINT` (Kith's ids are
//! below 2^63), timestamps `BIGINT` milliseconds, birth dates `DATE`,
//! interests `TEXT[]`, token digests 32-byte `BYTEA`. A deleted account is
//! a tombstone whose username and email are NULL, which frees the unique
//! indexes on the lowercased values. The lowercased usernames that the
//! friends list is ordered and paginated by are `COLLATE "C"` (byte order,
//! as SQLite's `BINARY`), so keyset pages are the same on both backends
//! whatever the database's default collation. Every list and lookup is an
//! index range; the conversation list is a bounded top-N sort over the
//! user's memberships (see `migrations/0002_chat.sql`). The plans of the
//! hot statements are in `docs/ARCHITECTURE.md`.
//!
//! ## What an acknowledgement means
//! Every write is one transaction (or one autocommit statement), and a
//! trait method returns `Ok` only after its `COMMIT` returned: the change is
//! committed and visible to every later call, and durable as far as the
//! server's `synchronous_commit` makes it (with the default, `on`, the
//! commit record is flushed to the server's WAL before the commit returns;
//! with synchronous replication, as the replication settings say). A chat
//! message acknowledged by `append_message` is therefore committed with its
//! `seq`.
//!
//! ## Atomicity of the guarded rules
//! Transactions run at PostgreSQL's default isolation, READ COMMITTED, where
//! each statement sees what was committed before it started. A check in
//! one statement followed by a write in another races with other
//! transactions, so every rule that the traits say is checked "inside the
//! writing transaction" is made race-free by a lock taken **before** the
//! check:
//! - **Per conversation**: every change to a conversation first locks its
//!   row, either by taking the next version (`UPDATE conversations SET
//!   version = version + 1 ... RETURNING`) or with `SELECT ... FOR NO KEY
//!   UPDATE`, and only then checks its precondition (the sender is a
//!   current member, the message exists and is not deleted). `seq` and
//!   `version` are thus assigned one transaction at a time and stay
//!   gap-free; a check that fails rolls the transaction back, version
//!   included.
//! - **Per pair of users**: `insert_friend_request`, `accept_friend_request`,
//!   `insert_follow` and `insert_block` start by taking a transaction-scoped
//!   advisory lock on the unordered pair (`pg_advisory_xact_lock` on a key
//!   derived from the smaller and the larger id), so crossing requests,
//!   a request or follow racing a block, and an accept racing a block run one
//!   after the other, each seeing the other's effect.
//! - **Per account**: every write that links two users (requests,
//!   friendships, follows, blocks, mutes) and `insert_session` take a share
//!   lock on the account rows involved (`FOR SHARE`) while checking they
//!   are live; `delete_account` takes the row's exclusive lock (`FOR NO KEY
//!   UPDATE`) before it removes the account's links. Either the link is
//!   committed first and then removed by the deletion, or the deletion
//!   commits first and the link finds the account deleted.
//! - **Idempotent appends**: the unique index on `(sender, client_id)` is
//!   the final arbiter; an append that loses a race on it (the same
//!   `client_id` sent at once to two conversations) returns the winner's
//!   message as [`Appended::Existing`](kith_core::Appended::Existing).
//!
//! Conversation rows are always locked in id order and pair locks are taken
//! before any row lock, so these locks cannot deadlock with each other.
//!
//! `append_messages` stores the whole batch in **one** transaction: it locks
//! the batch's conversations, reads what the checks need (existing
//! `(sender, client_id)` pairs, memberships, `reply_to` targets) and writes
//! every message with one set-based `INSERT` (arrays through `unnest`), one
//! counter update and one read-position update; each message gets the
//! outcome it would have had alone at its place in the batch. Should one of
//! those statements fail anyway, the batch is replayed in a new transaction
//! one message at a time, each in a `SAVEPOINT`, so a failing message is
//! rolled back alone and gets its own error.
//!
//! Transactions are sqlx [`Transaction`] values: one dropped
//! before it commits (its caller's future was cancelled) is rolled back
//! before its connection is reused. `BEGIN` itself runs in a task of its
//! own, because sqlx does not roll back a connection whose `BEGIN` was
//! cancelled half-way.

//!
//! ## Testing
//! `cargo test -p kith-postgres` needs PostgreSQL's server binaries
//! (Debian/Ubuntu: `apt-get install postgresql`; found through
//! `$KITH_PG_BINDIR`, `pg_config --bindir` or `/usr/lib/postgresql/*/bin`)
//! and fails, saying so, without them. Each test binary starts one
//! throwaway server of its own in a temporary directory (unix socket only,
//! `fsync=off`; run as the `postgres` user when the tests run as root),
//! migrates a template database once and gives every case a copy of it;
//! the server and its directory go away when the test process exits. The
//! harness is the module `testing` (cargo feature `testing`). `tests/conformance.rs` runs Kith's
//! conformance suite, `tests/postgres.rs` the races between stores that
//! only a multi-writer backend has, and the unit tests check the plans of
//! the hot statements.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::Connection;
use sqlx::Transaction;

/// The two columns of [`kith_core::Viewed`]'s links between the viewer,
/// bound as parameter 1 (NULL for anonymous), and the user in column
/// `$owner`: `friends` and `blocked` (either direction).
macro_rules! viewer_links {
    ($owner:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = ",
            $owner,
            ") AS friends, (EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = ",
            $owner,
            ") OR EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ",
            $owner,
            " AND blocked_id = $1)) AS blocked "
        )
    };
}

mod accounts;
pub mod broker;
mod chat;
mod comments;
mod graph;
mod limits;
mod media;
mod nodes;
mod posts;
mod reactions;
mod rows;

// The test harness names this crate `kith_postgres`, as its users do.
#[cfg(any(test, feature = "testing"))]
extern crate self as kith_postgres;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The sqlx connection options accepted by [`PgStore::connect_with`],
/// re-exported so that callers do not need their own `sqlx` dependency.
pub use broker::PgBroker;
pub use sqlx::postgres::PgConnectOptions;

/// The sqlx pool options accepted by [`PgStore::connect_with`].
pub use sqlx::postgres::PgPoolOptions;

/// How many connections [`PgStore::connect`] opens at most.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The migrations of `migrations/`, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// A boxed error from the driver, as this crate's [`Error`] carries it.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`PgStore`] could not be set up.
///
/// Only connecting fails with this type; the [`kith_core::Storage`] methods
/// return [`kith_core::Error`]. It converts into
/// [`kith_core::Error::Storage`] for callers who want one error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The argument of [`PgStore::connect`] is not a valid `postgres://`
    /// URL.
    #[error("invalid PostgreSQL database URL: {0}")]
    InvalidUrl(#[source] BoxError),
    /// The server could not be reached or refused the connection
    /// (authentication, missing database...).
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] BoxError),
    /// The schema migrations could not be applied, for example because the
    /// database was migrated by a newer, incompatible version of this crate
    /// or the role may not create tables.
    #[error("cannot migrate the PostgreSQL database: {0}")]
    Migrate(#[source] BoxError),
}

impl From<Error> for kith_core::Error {
    fn from(err: Error) -> Self {
        kith_core::Error::storage(err)
    }
}

/// Kith's storage in a PostgreSQL database. See the [crate docs](crate) for
/// its transactions and locks.
///
/// Cheap to clone: clones share the same pool of connections. Put it in an
/// `Arc` to hand it to [`kith_core::Kith::builder`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The queue of grouped appends (see [`PgStore::set_group_commit_limit`]).
    appender: std::sync::Arc<chat::group::Appender>,
}

impl PgStore {
    /// Connects to the database at `url` with a pool of at most
    /// [`DEFAULT_MAX_CONNECTIONS`] connections and applies any pending
    /// migrations.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a malformed URL, [`Error::Connect`] if the
    /// server cannot be reached or refuses the connection,
    /// [`Error::Migrate`] if the schema cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options: PgConnectOptions = url.parse().map_err(|e| Error::InvalidUrl(Box::new(e)))?;
        let pool = PgPoolOptions::new().max_connections(DEFAULT_MAX_CONNECTIONS);
        Self::connect_with(options, pool).await
    }

    /// Connects with explicit sqlx connection and pool options (TLS, pool
    /// size, timeouts...) and applies any pending migrations over a first
    /// connection opened here; the pool then connects as it needs.
    ///
    /// # Errors
    /// [`Error::Connect`] or [`Error::Migrate`], as [`Self::connect`].
    pub async fn connect_with(
        options: PgConnectOptions,
        pool: PgPoolOptions,
    ) -> Result<Self, Error> {
        // Migrate over one direct connection first: an unreachable server or
        // a refused login is reported at once with its cause, where the pool
        // would only say that it timed out waiting for a connection.
        let mut first = PgConnection::connect_with(&options)
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        MIGRATOR
            .run(&mut first)
            .await
            .map_err(|e| Error::Migrate(e.into()))?;
        // Closing it is a courtesy to the server; the schema is in place.
        let _ = first.close().await;
        let pool = pool.connect_lazy_with(options);
        Ok(Self {
            pool,
            appender: std::sync::Arc::default(),
        })
    }

    /// Sets group commit of appends across calls, for this store and every
    /// clone of it: with `limit` above 1, the appends of concurrent
    /// `append_message` / `append_messages` calls (so of different
    /// conversations) wait in a queue, and up to four writer tasks each take
    /// every call waiting, whole, up to `limit` messages (at least one
    /// call), and store them in **one** transaction with one commit, instead
    /// of one transaction per call. Each message keeps the outcome it would
    /// have had alone, and a call returns only once the transaction holding
    /// its messages committed; if that transaction fails, every call in it
    /// gets the error. 0 or 1 (the default) turns it off.
    pub fn set_group_commit_limit(&self, limit: usize) {
        self.appender.set_limit(limit);
    }

    /// The pool of connections, for an application's own queries
    /// (diagnostics, its own tables). Kith's tables are this crate's to
    /// write.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits for the calls in flight, then closes every connection. Calls
    /// made after it fail with [`kith_core::Error::Storage`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction (READ COMMITTED, the server's default). Dropping
    /// it without committing rolls it back.
    pub(crate) async fn begin(&self) -> kith_core::Result<Transaction<'static, Postgres>> {
        self.begin_with("BEGIN").await
    }

    /// Starts the transaction of a batch of appends: as [`Self::begin`],
    /// with generic plans for its statements, in the same round trip.
    /// Their statements are prepared once per connection and look rows up
    /// by key, so one generic plan serves every call, where PostgreSQL's
    /// default plans each call with array parameters anew (which cost a
    /// batch's statements about a third of their time, measured with the
    /// append benches). Only there: reads keep PostgreSQL's own choice.
    pub(crate) async fn begin_batch(&self) -> kith_core::Result<Transaction<'static, Postgres>> {
        self.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
            .await
    }

    async fn begin_with(
        &self,
        statement: &'static str,
    ) -> kith_core::Result<Transaction<'static, Postgres>> {
        // sqlx 0.8.6 does not roll back a `BEGIN` whose future is dropped
        // after the statement was sent but before it returned: the
        // connection would go back to the pool inside a transaction that
        // no `Transaction` owns, and later autocommit statements on it
        // would never commit. Run it in a task of its own so that it always
        // completes; if our caller is gone by then, the task drops the
        // `Transaction`, which rolls it back.
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.begin_with(statement).await })
            .await
            .map_err(kith_core::Error::storage)?
            .map_err(db)
    }

    /// Starts a read-only transaction that reads one snapshot
    /// (REPEATABLE READ), for reads made of several statements.
    pub(crate) async fn begin_snapshot(&self) -> kith_core::Result<Transaction<'static, Postgres>> {
        self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    /// The pool, to run single statements on (autocommit).
    pub(crate) fn read(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl kith_core::Storage for PgStore {
    async fn ping(&self) -> kith_core::Result<()> {
        if self.pool.is_closed() {
            return Err(kith_core::Error::storage("the PostgreSQL store is closed"));
        }
        sqlx::query("SELECT 1")
            .execute(self.read())
            .await
            .map(drop)
            .map_err(db)
    }
}

/// Maps a driver error to [`kith_core::Error::Storage`].
pub(crate) fn db(err: sqlx::Error) -> kith_core::Error {
    kith_core::Error::storage(err)
}

/// The name of the unique constraint (or unique index) that `err`
/// violated, if it is a unique violation.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error()
        .filter(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
        .and_then(|e| e.constraint())
}

/// A transaction-scoped advisory lock on the unordered pair `{a, b}`: two
/// transactions that take it for the same two users run one after the
/// other. Taken before any row lock. The 64-bit key is split into the two
/// 32-bit halves of `pg_advisory_xact_lock(int4, int4)`, whose key space is
/// separate from the one-argument form's (which sqlx's migrator uses).
pub(crate) async fn lock_pair(
    conn: &mut sqlx::PgConnection,
    a: i64,
    b: i64,
) -> kith_core::Result<()> {
    let (hi, lo) = pair_key(a, b);
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(hi)
        .bind(lo)
        .execute(conn)
        .await
        .map(drop)
        .map_err(db)
}

/// The two halves of the advisory lock key of the unordered pair `{a, b}`:
/// a mix of both ids (collisions only make two unrelated pairs wait for
/// each other).
fn pair_key(a: i64, b: i64) -> (i32, i32) {
    let (low, high) = (a.min(b) as u64, a.max(b) as u64);
    // splitmix64's finaliser over the combination of both ids.
    let mut x = low ^ high.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    ((x >> 32) as u32 as i32, x as u32 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_ignore_order_and_differ_between_pairs() {
        assert_eq!(pair_key(1, 2), pair_key(2, 1));
        assert_ne!(pair_key(1, 2), pair_key(1, 3));
        assert_ne!(pair_key(1, 2), pair_key(2, 3));
        assert_eq!(pair_key(i64::MAX, 7), pair_key(7, i64::MAX));
    }
}
