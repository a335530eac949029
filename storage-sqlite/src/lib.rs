//! # kith-sqlite
//!
//! Kith's embedded default storage backend: [`SqliteStore`] implements
//! [`kith_core::Storage`] over a SQLite database file (or an in-memory
//! database) through sqlx. It is what an application gets when it does not
//! want to run a database server.
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kith_core::{Kith, NewAccount};
//! use kith_sqlite::SqliteStore;
//!
//! // Creates the file if it is missing and applies the migrations.
//! let store = SqliteStore::open("kith.db").await?;
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
//! ## Layout
//! - `lib.rs`: [`SqliteStore`] (opening, connection handling, migrations)
//!   and this crate's one error type, [`Error`], for setup failures.
//! - `accounts.rs`: [`AccountStore`](kith_core::AccountStore): accounts,
//!   profiles, sessions.
//! - `graph.rs`: [`GraphStore`](kith_core::GraphStore): friend requests,
//!   friendships, follows, blocks, mutes.
//! - `chat/`: [`ChatStore`](kith_core::ChatStore), one module per concern
//!   with its statements: `conversations.rs` (conversations, members),
//!   `send.rs` (message appends, one by one and set-based), `messages.rs`
//!   (edits, deletes, reactions, history) and `read.rs` (read positions,
//!   unread counts, the conversation list, changes since a version).
//! - `posts.rs`: [`PostStore`](kith_core::PostStore): posts, hashtags,
//!   mentions, timelines and hashtag lists.
//! - `comments.rs`: [`CommentStore`](kith_core::CommentStore): comments,
//!   replies and tombstones.
//! - `reactions.rs`: [`ReactionStore`](kith_core::ReactionStore):
//!   reactions to posts and comments.
//! - `append.rs`: group commit of message appends (the writer task and its
//!   queue).
//! - `rows.rs`: the private row structs and the conversions between SQL
//!   values and Kith's domain types.
//! - `migrations/`: the schema, embedded with `sqlx::migrate!()` and applied
//!   on open, each file documenting its tables and indexes:
//!   `0001_accounts_and_graph.sql`, `0002_chat.sql` ... `0007_posts.sql`.
//!
//! Trait methods return [`kith_core::Error`]: driver failures become
//! [`kith_core::Error::Storage`] and unique-constraint collisions the
//! [`kith_core::Error::Conflict`] each trait method names; `sqlx::Error`
//! never appears in this crate's API.
//!
//! ## Schema
//! Ids are `INTEGER` (Kith's ids are below 2^63), timestamps `INTEGER`
//! milliseconds, birth dates `TEXT` `YYYY-MM-DD`, interests a JSON array,
//! token digests a 32-byte `BLOB`. Tables are `STRICT`. A deleted account is
//! a tombstone: the row stays (so its id is never reused) with `deleted_at`
//! set and username, email, password and profile erased; the unique indexes
//! on the lowercased username and email skip the NULLs, which frees both for
//! new accounts. "Live" means `deleted_at IS NULL`. Friendships are stored in
//! both directions with the friend's lowercased username beside them, so
//! every list (friends by name, followers/following/blocks/mutes by
//! `(since, id)`, requests by id) is one ordered index range with keyset
//! pagination, never a sort.
//!
//! Chat keeps a row per conversation holding its counters (`last_seq`,
//! `version`, `last_activity`) and, for a direct conversation, its pair of
//! users under a unique index (one direct conversation per pair). Members
//! who leave keep their row, marked with the version they left at, so that
//! changes after a version can report departures; every member row carries
//! the version of its latest membership change. Messages are never deleted:
//! a deleted message is a tombstone with its `seq` and no body, so seqs
//! never get holes (deleting an account leaves its messages too). History
//! pages (by `(conversation, seq)`), changes (by `(conversation, version)`),
//! members, unread counts and idempotent sends (by `(sender, client_id)`)
//! are index ranges or lookups without a sort. A message's reactions are
//! aggregated into JSON by a subquery of the statement that reads the
//! message, so a page of messages is one statement. The conversation list
//! is the one exception to "no sort": it walks the user's memberships and
//! keeps the `limit` most recently active, because the alternative, a copy
//! of `last_activity` in every member row, would make each message in a
//! large group rewrite one index entry per member on the single writer
//! (the migration explains the trade-off).
//!
//! ## Connections
//! Every connection runs with `foreign_keys=ON` and a `busy_timeout`. A file
//! database is put in WAL mode (readers never block the writer and the
//! writer never blocks readers) with `synchronous=FULL`: in WAL mode that
//! syncs the log on every commit, so a write that returned `Ok` survives a
//! power loss, not only a crash of the process (`NORMAL` would only
//! guarantee the latter). This is what makes a chat message durable once
//! its sender is told so.
//!
//! A new database file gets **1 KiB pages** (SQLite's default is 4 KiB). A
//! batch of messages into many conversations changes a few rows in many
//! index pages (a message touches four b-trees, each at that conversation's
//! or sender's place), and a commit writes every changed page whole into the
//! WAL: smaller pages mean less to write and sync per message (100 senders
//! in 100 conversations: ~12,000 → ~15,000 messages/s, see
//! `docs/BENCHMARKS.md`), at the cost of deeper trees for long scans. The
//! page size of an existing file is kept. The writer checkpoints the WAL
//! every 4,096 pages, which is SQLite's default of 1,000 pages in bytes
//! (4 MiB) rather than in pages.
//!
//! Writes go through **one writer connection**: a pool of exactly one
//! connection, which is a fair FIFO queue of writers. Every write, even a
//! single statement, is a transaction started with `BEGIN IMMEDIATE`, so it
//! takes SQLite's write lock up front; since no other connection of this
//! process ever writes, a write never fails with `SQLITE_BUSY` ("database is
//! locked") however many tasks write at once, and it never has to upgrade a
//! read snapshot into a write (`SQLITE_BUSY_SNAPSHOT`). Transactions are
//! sqlx `Transaction`s: if the future running one is dropped (cancelled)
//! halfway, the transaction is rolled back before the connection is handed
//! to the next writer (the `BEGIN IMMEDIATE` itself runs in a task of its
//! own, because sqlx's custom-`BEGIN` path is not safe to cancel). A write
//! reports success only after its `COMMIT`. Operations the traits call
//! atomic (accepting a friend request, changing a password, deleting an
//! account, blocking) are each one such transaction. Chat fits the same
//! shape: every change to a conversation takes its next gap-free `version`
//! (and a message its next `seq`) with an `UPDATE ... RETURNING` inside the
//! transaction that makes the change, after re-checking there that the
//! change is still allowed (the sender is still a member, the message not
//! deleted). That is race-free because write transactions never overlap,
//! and a message is acknowledged only once committed. (Publishing events in
//! `seq` order stays Kith's job: storage returns after the commit.)
//!
//! **Message appends are group-committed** (`append.rs`). `append_message`
//! queues the message for a writer task and waits; the writer task takes
//! every append waiting, up to [`SqliteStore::set_append_batch_limit`]
//! ([`DEFAULT_APPEND_BATCH`], 256, by default), and runs them in order in
//! **one** `BEGIN IMMEDIATE` transaction taken through the same writer
//! connection as every other write (so a batch never interleaves with
//! another write transaction), commits once, and only then answers each
//! caller. A batch of several is stored with a fixed number of set-based
//! statements (reads of the existing `(sender, client_id)` pairs, the
//! senders' memberships and counters, and the `reply_to` targets; then one
//! `INSERT` of all the messages and one `UPDATE` each of the counters and
//! read positions); each append gets exactly the outcome it would have had
//! on its own, checked in order: an earlier append of the same batch counts
//! for idempotency and as a `reply_to` target, a non-member gets
//! `NotFound`. If one of those statements fails anyway (a constraint the
//! checks do not foresee), the transaction is rolled back and the batch
//! replayed in a new one, one append at a time, **each in a `SAVEPOINT` of
//! its own** (the set-based path takes no savepoint, which would make SQLite
//! copy every page it changes to a statement journal first), so
//! a failing append is rolled back alone and reports its own error. Only a
//! failure of the transaction itself (`BEGIN`, a savepoint, `COMMIT`) fails
//! the whole batch, and then every caller gets an error and nothing of it
//! is stored. The commit is the same `synchronous=FULL` commit as before:
//! **an `Ok` from `append_message` still means committed and durable**;
//! what the batch shares is the cost of the commit and its WAL sync.
//! Seqs and versions stay gap-free (the counters are taken inside the one
//! transaction, in queue order). The writer task is spawned on demand on
//! the caller's runtime and ends when the queue is empty; while a batch
//! commits, the next appends queue up, so batches grow with the load
//! without a timer. A caller that goes away only stops listening: its
//! append stays queued and is committed with its batch (a retry with the
//! same `client_id` returns it). A batch limit of 1 commits every append on
//! its own (benchmarks compare the two). `append_messages` (Kith's batch
//! of one conversation's sends) queues its appends together, so they share
//! a commit. The in-memory mode uses the same path on its single connection.
//!
//! Reads use a **separate pool of four read-only connections**
//! and never wait for the writer. Each list or lookup is a single statement,
//! so it reads one consistent snapshot; the one read made of several
//! statements, the changes to a conversation after a version, runs them in
//! one read transaction for the same reason.
//!
//! An **in-memory** database lives in its connection, so
//! [`SqliteStore::memory`] uses a single connection for reads and writes
//! alike (sqlx's shared-cache memory mode would let several connections
//! share it, but shared cache takes table-level locks that fail instead of
//! waiting). That connection never idles out or expires, so the database
//! lives exactly as long as the store. WAL does not apply to memory
//! databases.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{Sqlite, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Transaction;

/// The two columns of [`kith_core::Viewed`]'s links between the viewer,
/// bound as parameter 1 (NULL for anonymous), and the user in column
/// `$owner`: `friends` and `blocked` (either direction).
macro_rules! viewer_links {
    ($owner:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM friendships WHERE user_id = ?1 AND friend_id = ",
            $owner,
            ") AS friends, (EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ",
            $owner,
            ") OR EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ",
            $owner,
            " AND blocked_id = ?1)) AS blocked "
        )
    };
}

mod accounts;
mod append;
mod chat;
mod comments;
mod graph;
mod limits;
mod media;
mod nodes;
mod posts;
mod reactions;
mod rows;

/// The sqlx connection options accepted by [`SqliteStore::connect_with`],
/// re-exported so that callers do not need their own `sqlx` dependency.
pub use sqlx::sqlite::SqliteConnectOptions;

pub use append::DEFAULT_APPEND_BATCH;

/// How many read-only connections a file database gets.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for a lock held by another process (this
/// process never contends with itself for the write lock).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call may wait for its turn at a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// The migrations of `migrations/`, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// A boxed error from the driver, as this crate's [`Error`] carries it.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`SqliteStore`] could not be opened.
///
/// Only opening fails with this type; the [`kith_core::Storage`] methods
/// return [`kith_core::Error`]. It converts into
/// [`kith_core::Error::Storage`] for callers who want one error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The argument of [`SqliteStore::open`] is neither a path nor a valid
    /// `sqlite:` URL.
    #[error("invalid SQLite database URL: {0}")]
    InvalidUrl(#[source] BoxError),
    /// The database could not be opened or configured (missing directory,
    /// permissions, not a database file...).
    #[error("cannot open the SQLite database: {0}")]
    Open(#[source] BoxError),
    /// The schema migrations could not be applied, for example because the
    /// file was migrated by a newer, incompatible version of this crate.
    #[error("cannot migrate the SQLite database: {0}")]
    Migrate(#[source] BoxError),
}

impl From<Error> for kith_core::Error {
    fn from(err: Error) -> Self {
        kith_core::Error::storage(err)
    }
}

/// Kith's storage in a SQLite database. See the [crate docs](crate) for how
/// it uses its connections.
///
/// Cheap to clone: clones share the same connections. Put it in an `Arc` to
/// hand it to [`kith_core::Kith::builder`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection; every write transaction runs on it.
    writer: SqlitePool,
    /// Read-only connections for a file database; the writer's pool itself
    /// for an in-memory one.
    reader: SqlitePool,
    /// The queue of message appends waiting to be group-committed.
    appender: Arc<append::Appender>,
}

/// The PRAGMA settings of the writer connection, as SQLite reports them.
/// Returned by [`SqliteStore::connection_settings`], for diagnostics and
/// tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `PRAGMA journal_mode`: `wal` for a file database, `memory` for an
    /// in-memory one.
    pub journal_mode: String,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA synchronous` as a number: 0 off, 1 normal, 2 full, 3 extra.
    pub synchronous: i64,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `path_or_url` and
    /// applies any pending migrations.
    ///
    /// `path_or_url` is a file path (`kith.db`, `/var/lib/app/kith.db`), a
    /// `sqlite:` URL (`sqlite://kith.db`, `sqlite:///abs/kith.db?mode=rwc`),
    /// or `:memory:` / `sqlite::memory:` for [`Self::memory`].
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a malformed URL, [`Error::Open`] if the file
    /// cannot be opened or created, [`Error::Migrate`] if the schema cannot
    /// be brought up to date.
    pub async fn open(path_or_url: impl AsRef<str>) -> Result<Self, Error> {
        let target = path_or_url.as_ref();
        if is_memory_target(target) {
            return Self::memory().await;
        }
        let options = if target.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(target).map_err(|e| Error::InvalidUrl(e.into()))?
        } else {
            SqliteConnectOptions::new().filename(target)
        };
        Self::connect_with(options.create_if_missing(true)).await
    }

    /// A fresh, empty in-memory database, gone when the last clone of the
    /// store is dropped. For tests and throwaway instances.
    ///
    /// # Errors
    /// [`Error::Open`] or [`Error::Migrate`] (neither is expected).
    pub async fn memory() -> Result<Self, Error> {
        Self::connect_memory(SqliteConnectOptions::new().in_memory(true)).await
    }

    /// Opens a file database with sqlx connection options, for settings
    /// [`Self::open`] does not expose (a VFS, extra pragmas, the statement
    /// cache size...). The options' `create_if_missing` is respected (sqlx's
    /// default is not to create the file).
    ///
    /// Kith sets `journal_mode=WAL`, `synchronous=FULL`, `foreign_keys=ON`,
    /// the busy timeout, the page size of a new file and the WAL checkpoint
    /// interval itself, overriding those in `options`: its
    /// durability and concurrency guarantees depend on them. Options naming
    /// sqlx's in-memory database (`sqlite::memory:`) get the single-connection
    /// in-memory mode of [`Self::memory`].
    ///
    /// # Errors
    /// As [`Self::open`], without [`Error::InvalidUrl`].
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self, Error> {
        if is_memory_filename(options.get_filename()) {
            return Self::connect_memory(options.shared_cache(false)).await;
        }
        let options = options
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .shared_cache(false);
        let write_options = options
            .clone()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .page_size(1024)
            .pragma("wal_autocheckpoint", "4096");
        // The writer connects first: it creates the file, switches it to WAL
        // (persistent) and migrates it, so the readers find it ready.
        let writer = single_connection_pool()
            .connect_with(write_options)
            .await
            .map_err(|e| Error::Open(e.into()))?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options.read_only(true).create_if_missing(false))
            .await
            .map_err(|e| Error::Open(e.into()))?;
        Ok(Self {
            writer,
            reader,
            appender: Arc::default(),
        })
    }

    async fn connect_memory(options: SqliteConnectOptions) -> Result<Self, Error> {
        let pool = single_connection_pool()
            .connect_with(options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT))
            .await
            .map_err(|e| Error::Open(e.into()))?;
        migrate(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            appender: Arc::default(),
        })
    }

    /// Waits for the calls in flight, then closes every connection (which
    /// also checkpoints the WAL into the database file). Calls made after it
    /// fail with [`kith_core::Error::Storage`]; an in-memory database is gone.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Sets the largest number of message appends committed together in
    /// one transaction (group commit; see the [crate docs](crate)), for
    /// every clone of this store. The default is [`DEFAULT_APPEND_BATCH`];
    /// 1 commits each append on its own, as a store without group commit
    /// would (benchmarks compare the two). 0 counts as 1.
    pub fn set_append_batch_limit(&self, limit: usize) {
        self.appender.set_limit(limit);
    }

    /// The largest number of message appends committed together.
    pub fn append_batch_limit(&self) -> usize {
        self.appender.limit()
    }

    /// The PRAGMA settings the writer connection runs with.
    ///
    /// # Errors
    /// [`kith_core::Error::Storage`] if the database cannot be queried.
    pub async fn connection_settings(&self) -> kith_core::Result<ConnectionSettings> {
        let mut conn = self.writer.acquire().await.map_err(db)?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let foreign_keys: bool = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        Ok(ConnectionSettings {
            journal_mode,
            foreign_keys,
            synchronous,
            busy_timeout_ms,
        })
    }

    /// Starts a write transaction on the writer connection, waiting for the
    /// writers queued before it. Dropping the transaction without committing
    /// rolls it back.
    pub(crate) async fn write(&self) -> kith_core::Result<Transaction<'static, Sqlite>> {
        // sqlx 0.8.6's `begin_with` is not cancellation-safe for SQLite: if
        // its future is dropped after BEGIN ran but before it returned (it
        // awaits a check that the statement opened a transaction), the
        // connection goes back to the pool inside a transaction that no
        // `Transaction` will ever roll back, and every later write fails.
        // Run it in a task of its own so that it always completes; if our
        // caller is gone by then, the task drops the `Transaction`, which
        // rolls it back and returns the connection.
        let writer = self.writer.clone();
        tokio::spawn(async move { writer.begin_with("BEGIN IMMEDIATE").await })
            .await
            .map_err(kith_core::Error::storage)?
            .map_err(db)
    }

    /// The pool to run single-statement reads on.
    pub(crate) fn read(&self) -> &SqlitePool {
        &self.reader
    }
}

#[async_trait]
impl kith_core::Storage for SqliteStore {
    async fn ping(&self) -> kith_core::Result<()> {
        if self.writer.is_closed() {
            return Err(kith_core::Error::storage("the SQLite store is closed"));
        }
        sqlx::query("SELECT 1")
            .execute(self.read())
            .await
            .map(drop)
            .map_err(db)
    }
}

/// A pool of exactly one connection that is never closed for idleness or
/// age: the write queue of a file database, or all of an in-memory one.
fn single_connection_pool() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A SQLite connection is a thread in this process, not a socket that
        // can go stale; checking it before every use would only add a
        // round-trip to that thread.
        .test_before_acquire(false)
}

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| Error::Migrate(e.into()))
}

/// Whether [`SqliteStore::open`]'s argument names an in-memory database.
fn is_memory_target(target: &str) -> bool {
    matches!(target, ":memory:" | "sqlite::memory:" | "sqlite://:memory:")
        || (target.starts_with("sqlite:")
            && target
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|kv| kv == "mode=memory")))
}

/// Whether sqlx options name an in-memory database: `:memory:` or the
/// `file:sqlx-in-memory-N` name sqlx gives `sqlite::memory:`.
fn is_memory_filename(filename: &std::path::Path) -> bool {
    filename
        .to_str()
        .is_some_and(|name| name == ":memory:" || name.starts_with("file:sqlx-in-memory-"))
}

/// Maps a driver error to [`kith_core::Error::Storage`].
pub(crate) fn db(err: sqlx::Error) -> kith_core::Error {
    kith_core::Error::storage(err)
}

/// The message of a unique-constraint violation, if `err` is one. SQLite
/// names the violated columns in it (`UNIQUE constraint failed: t.a, t.b`).
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error()
        .filter(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
        .map(|e| e.message())
}

/// The README's embedding example, compiled and run as a doctest so that it
/// cannot go stale.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
