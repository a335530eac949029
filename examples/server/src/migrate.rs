//! `kith-server migrate-data`: copies a SQLite deployment (kith-sqlite's
//! database) into an empty PostgreSQL database (kith-postgres's), so that a
//! server can move from one backend to the other.
//!
//! ## Where this lives, and why
//! The copy needs both schemas, and neither storage crate should know the
//! other's: kith-postgres does not depend on kith-sqlite, nor kith-sqlite on
//! kith-postgres. The server already depends on both, so the copy is here,
//! in one module: it opens the SQLite file **read-only** with sqlx directly
//! (no [`kith_sqlite::SqliteStore`], which would migrate and write), and
//! writes PostgreSQL with sqlx directly after [`kith_postgres::PgStore::connect`]
//! has brought the target's schema up to date. It copies rows, not domain
//! values: ids, `seq`s, versions, password hashes and token digests are
//! carried over exactly, so that everything (logins, sessions, cursors,
//! clients resuming with `changes_since`) goes on as before.
//!
//! ## What it does
//! 1. Opens the source read-only and checks its schema: the migrations
//!    recorded in its `_sqlx_migrations` must be exactly the ones this build
//!    embeds (same versions, same checksums). A database from another version
//!    of Kith is refused; start the matching kith-server on it once to bring
//!    it up to date first.
//! 2. Refuses a target that already holds any of Kith's rows, before
//!    touching it. Otherwise connects (applying kith-postgres's migrations).
//! 3. In **one** PostgreSQL transaction, locks Kith's tables, checks again
//!    that they are empty, and copies every table in an order that satisfies
//!    the foreign keys ([`TABLES`]), in batches of `batch_size` rows: each
//!    batch is one `INSERT ... SELECT ... FROM UNNEST($1, $2, ...)` with one
//!    array per column. The source is read in one SQLite read transaction,
//!    so the copy is one consistent snapshot even if a server still writes
//!    to it (stop it first anyway: what it writes afterwards is not copied).
//! 4. Commits, and reports how many rows each table got ([`Report`]).
//!
//! Any error rolls the whole transaction back: the target is left as it was
//! (with the schema created, if it was a blank database).
//!
//! ## The column mapping
//! The two schemas have the same tables and column names
//! (`storage-sqlite/migrations`, `storage-postgres/migrations`); the types
//! differ in three places, mapped explicitly in each table's copy:
//! - `accounts.birth_date`: `'YYYY-MM-DD'` TEXT → `DATE`;
//! - `accounts.interests`: a JSON array of strings in TEXT → `TEXT[]` (in
//!   order);
//! - `sessions.token_digest`: BLOB → `BYTEA`;
//!
//! and INTEGER becomes BIGINT everywhere. A new migration in either crate
//! changes this mapping: the unit tests below fail until this module is
//! updated for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use kith_postgres::PgStore;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

/// The migrations of kith-sqlite's schema, as this build embeds them: the
/// schema version a source database must have.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("../../storage-sqlite/migrations");

/// How many rows each `INSERT` carries by default.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// Kith's tables, parents before children: the order they are copied in.
/// `node_leases`, `presence`, `presence_nodes`, `send_buckets` and
/// `write_buckets` are not among them: leases and presence belong to the
/// servers running on a database, and rate-limit buckets refill (within
/// seconds for sends, within the hour for other writes). Nor is
/// `post_positions`, the one-row counter of post positions, which is set
/// to the source's value rather than copied (the target's migration made
/// the row).
pub const TABLES: [&str; 19] = [
    "accounts",
    "sessions",
    "friend_requests",
    "friendships",
    "follows",
    "blocks",
    "mutes",
    "conversations",
    "conversation_members",
    "messages",
    "message_reactions",
    "conversation_changes",
    "posts",
    "post_hashtags",
    "post_mentions",
    "post_reactions",
    "comments",
    "comment_reactions",
    "media",
];

/// Why `migrate-data` failed. In every case the target holds what it held
/// before (plus Kith's schema, if it was a blank database).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// `--from` is not a SQLite URL or path.
    #[error("--from must be a SQLite database (sqlite://kith.db or a file path), got {0:?}")]
    InvalidSource(String),
    /// `--to` is not a PostgreSQL URL.
    #[error("--to must be a PostgreSQL URL (postgres://user:password@host/db)")]
    InvalidTarget,
    /// The SQLite database could not be opened or read.
    #[error("cannot read the SQLite database: {0}")]
    Source(#[source] sqlx::Error),
    /// The SQLite database's schema is not the one this build knows.
    #[error(
        "the SQLite database's schema ({found}) is not the one this kith-server knows ({expected}); \
         start the kith-server of the same version on it once to bring it up to date, then migrate"
    )]
    SchemaVersion {
        /// The migrations recorded in the source (`version:checksum-prefix`).
        found: String,
        /// The migrations this build embeds.
        expected: String,
    },
    /// The PostgreSQL database could not be reached or migrated.
    #[error(transparent)]
    Connect(#[from] kith_postgres::Error),
    /// The target already holds Kith data; nothing was changed.
    #[error(
        "the PostgreSQL database already holds Kith data (rows in {}); migrate-data only fills \
         an empty database, and changed nothing",
        tables.join(", ")
    )]
    TargetNotEmpty {
        /// The tables that have rows.
        tables: Vec<&'static str>,
    },
    /// Reading or writing a table failed; the transaction was rolled back.
    #[error("copying {table}: {source}")]
    Copy {
        /// The table being copied.
        table: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement on the target outside the copy of a table failed
    /// (beginning, locking, committing); the transaction was rolled back.
    #[error("PostgreSQL: {0}")]
    Target(#[source] sqlx::Error),
}

/// What [`migrate_data`] copied: the rows of each table, in copy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `(table, rows)` for every table of [`TABLES`].
    pub tables: Vec<(&'static str, u64)>,
}

impl Report {
    /// The rows copied into `table` (0 for an unknown table).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(name, _)| *name == table)
            .map_or(0, |(_, rows)| *rows)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, rows) in &self.tables {
            writeln!(f, "  {table:<22}{rows:>10}")?;
        }
        Ok(())
    }
}

/// Copies the SQLite database at `from` (`sqlite://path`, `sqlite:path` or a
/// file path; opened read-only, never written) into the empty PostgreSQL
/// database at `to`, `batch_size` rows per statement (at least 1). See the
/// [module docs](self).
///
/// # Errors
/// [`MigrateError`]: bad URLs, a source of another schema version, a target
/// that is not empty, or a driver error. The target is left unchanged.
pub async fn migrate_data(from: &str, to: &str, batch_size: usize) -> Result<Report, MigrateError> {
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(MigrateError::InvalidTarget);
    }
    let batch = batch_size.max(1);

    let mut src = open_source(from).await?;
    let result = copy(&mut src, to, batch).await;
    let _ = src.close().await;
    result
}

/// Checks the target, then copies everything from `src` in one transaction.
async fn copy(src: &mut SqliteConnection, to: &str, batch: usize) -> Result<Report, MigrateError> {
    // One read transaction: every table from the same snapshot.
    let mut snapshot = src.begin().await.map_err(MigrateError::Source)?;
    check_source_schema(&mut snapshot).await?;

    // Before PgStore::connect migrates anything: a database with Kith's rows
    // is refused as it is.
    refuse_non_empty_target(to).await?;
    let store = PgStore::connect(to).await?;
    let result = async {
        let mut tx = store.pool().begin().await.map_err(MigrateError::Target)?;
        // No other writer (a server started too early) between the check
        // and the commit; readers may go on.
        sqlx::query(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            TABLES.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .map_err(MigrateError::Target)?;
        let full = non_empty_tables(&mut tx)
            .await
            .map_err(MigrateError::Target)?;
        if !full.is_empty() {
            return Err(MigrateError::TargetNotEmpty { tables: full });
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        tables.push(("accounts", accounts(&mut snapshot, &mut tx, batch).await?));
        tables.push(("sessions", sessions(&mut snapshot, &mut tx, batch).await?));
        tables.push((
            "friend_requests",
            friend_requests(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push((
            "friendships",
            friendships(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push(("follows", follows(&mut snapshot, &mut tx, batch).await?));
        tables.push(("blocks", blocks(&mut snapshot, &mut tx, batch).await?));
        tables.push(("mutes", mutes(&mut snapshot, &mut tx, batch).await?));
        tables.push((
            "conversations",
            conversations(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push((
            "conversation_members",
            conversation_members(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push(("messages", messages(&mut snapshot, &mut tx, batch).await?));
        tables.push((
            "message_reactions",
            message_reactions(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push((
            "conversation_changes",
            conversation_changes(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push(("posts", posts(&mut snapshot, &mut tx, batch).await?));
        let last: i64 = sqlx::query_scalar("SELECT last FROM post_positions WHERE id = 1")
            .fetch_one(&mut *snapshot)
            .await
            .map_err(MigrateError::Source)?;
        sqlx::query("UPDATE post_positions SET last = $1 WHERE id = 1")
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(MigrateError::Target)?;
        tables.push((
            "post_hashtags",
            post_hashtags(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push((
            "post_mentions",
            post_mentions(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push((
            "post_reactions",
            post_reactions(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push(("comments", comments(&mut snapshot, &mut tx, batch).await?));
        tables.push((
            "comment_reactions",
            comment_reactions(&mut snapshot, &mut tx, batch).await?,
        ));
        tables.push(("media", media(&mut snapshot, &mut tx, batch).await?));
        tx.commit().await.map_err(MigrateError::Target)?;
        Ok(Report { tables })
    }
    .await;
    store.close().await;
    // The snapshot was only read; ending it changes nothing.
    let _ = snapshot.rollback().await;
    result
}

/// Opens the source database read-only (it must exist).
async fn open_source(from: &str) -> Result<SqliteConnection, MigrateError> {
    let options = if from.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(from)
            .map_err(|_| MigrateError::InvalidSource(from.to_owned()))?
    } else if from.contains("://") || from.is_empty() {
        return Err(MigrateError::InvalidSource(from.to_owned()));
    } else {
        SqliteConnectOptions::new().filename(from)
    };
    let options = options
        .read_only(true)
        .create_if_missing(false)
        // A server may hold the write lock for a moment.
        .busy_timeout(Duration::from_secs(5));
    SqliteConnection::connect_with(&options)
        .await
        .map_err(MigrateError::Source)
}

/// Refuses a source whose applied migrations are not exactly
/// [`SQLITE_MIGRATIONS`].
async fn check_source_schema(src: &mut SqliteConnection) -> Result<(), MigrateError> {
    let expected: Vec<(i64, Vec<u8>)> = SQLITE_MIGRATIONS
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect();
    let describe = |migrations: &[(i64, Vec<u8>)]| -> String {
        if migrations.is_empty() {
            return "no Kith migrations: not a Kith database".to_owned();
        }
        let versions: Vec<String> = migrations
            .iter()
            .map(|(version, checksum)| format!("{version}:{}", hex_prefix(checksum)))
            .collect();
        format!("migrations {}", versions.join(", "))
    };
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *src)
    .await
    .map_err(MigrateError::Source)?;
    let found: Vec<(i64, Vec<u8>)> = if has_table {
        let rows =
            sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut *src)
                .await
                .map_err(MigrateError::Source)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let version: i64 = row.try_get("version").map_err(MigrateError::Source)?;
            let checksum: Vec<u8> = row.try_get("checksum").map_err(MigrateError::Source)?;
            let success: bool = row.try_get("success").map_err(MigrateError::Source)?;
            if !success {
                return Err(MigrateError::SchemaVersion {
                    found: format!("migration {version} failed half-way"),
                    expected: describe(&expected),
                });
            }
            found.push((version, checksum));
        }
        found
    } else {
        Vec::new()
    };
    if found == expected {
        Ok(())
    } else {
        Err(MigrateError::SchemaVersion {
            found: describe(&found),
            expected: describe(&expected),
        })
    }
}

/// The first bytes of a checksum in hex, to tell two versions apart in a
/// message.
fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Refuses a target whose Kith tables (those that exist yet) hold rows,
/// before anything is written to it.
async fn refuse_non_empty_target(to: &str) -> Result<(), MigrateError> {
    let options: kith_postgres::PgConnectOptions = to
        .parse()
        .map_err(|e: sqlx::Error| kith_postgres::Error::InvalidUrl(Box::new(e)))?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| kith_postgres::Error::Connect(Box::new(e)))?;
    let result = non_empty_tables(&mut conn).await;
    let _ = conn.close().await;
    let full = result.map_err(MigrateError::Target)?;
    if full.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::TargetNotEmpty { tables: full })
    }
}

/// Kith's tables that exist in the target and have at least one row.
async fn non_empty_tables(conn: &mut PgConnection) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut full = Vec::new();
    for table in TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            continue;
        }
        let has_rows: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
            .fetch_one(&mut *conn)
            .await?;
        if has_rows {
            full.push(table);
        }
    }
    Ok(full)
}

/// Defines `async fn $name(src, dst, batch) -> Result<u64, MigrateError>`,
/// which copies one table: it reads the listed columns from SQLite in
/// `$order` (a streaming cursor, `batch` rows held at a time) and inserts
/// each batch with one statement,
/// `INSERT INTO t (cols) SELECT exprs FROM UNNEST($1::type[], ...) AS u(cols)`.
/// Each column is `name: RustType => "postgres element type"`, optionally
/// followed by `as "SQL expression over u.name"` where the PostgreSQL column
/// has another type than the SQLite one.
macro_rules! copy_table {
    (
        $name:ident, $table:literal, order by $order:literal,
        { $( $col:ident : $ty:ty => $pg:literal $( as $expr:literal )? ),+ $(,)? }
    ) => {
        #[doc = concat!("Copies `", $table, "`; returns the rows copied.")]
        async fn $name(
            src: &mut SqliteConnection,
            dst: &mut PgConnection,
            batch: usize,
        ) -> Result<u64, MigrateError> {
            #[derive(sqlx::FromRow)]
            struct SourceRow {
                $( $col: $ty, )+
            }
            let fail = |source| MigrateError::Copy { table: $table, source };
            let columns: &[&str] = &[ $( stringify!($col) ),+ ];
            let casts: &[&str] = &[ $( $pg ),+ ];
            let exprs: &[&str] = &[ $( copy_table!(@expr $col $( $expr )?) ),+ ];
            let select = format!(
                "SELECT {} FROM {} ORDER BY {}",
                columns.join(", "),
                $table,
                $order
            );
            let params: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(i, cast)| format!("${}::{}[]", i + 1, cast))
                .collect();
            let insert = format!(
                "INSERT INTO {table} ({cols}) SELECT {exprs} FROM UNNEST({params}) AS u({cols})",
                table = $table,
                cols = columns.join(", "),
                exprs = exprs.join(", "),
                params = params.join(", "),
            );
            let mut rows = sqlx::query_as::<_, SourceRow>(&select).fetch(&mut *src);
            let mut copied: u64 = 0;
            loop {
                let mut buffer = Vec::with_capacity(batch);
                while buffer.len() < batch {
                    match rows.try_next().await.map_err(fail)? {
                        Some(row) => buffer.push(row),
                        None => break,
                    }
                }
                if buffer.is_empty() {
                    break;
                }
                let n = buffer.len();
                $( let mut $col: Vec<$ty> = Vec::with_capacity(n); )+
                for row in buffer {
                    $( $col.push(row.$col); )+
                }
                sqlx::query(&insert)
                    $( .bind($col) )+
                    .execute(&mut *dst)
                    .await
                    .map_err(fail)?;
                copied += n as u64;
                if n < batch {
                    break;
                }
            }
            Ok(copied)
        }
    };
    (@expr $col:ident) => { concat!("u.", stringify!($col)) };
    (@expr $col:ident $expr:literal) => { $expr };
}

copy_table!(accounts, "accounts", order by "id", {
    id: i64 => "bigint",
    username: Option<String> => "text",
    username_lower: Option<String> => "text",
    email: Option<String> => "text",
    email_lower: Option<String> => "text",
    password_hash: Option<String> => "text",
    created_at: i64 => "bigint",
    deleted_at: Option<i64> => "bigint",
    display_name: Option<String> => "text",
    display_name_lower: Option<String> => "text",
    bio: Option<String> => "text",
    location: Option<String> => "text",
    // 'YYYY-MM-DD' (ISO, read the same whatever the server's DateStyle).
    birth_date: Option<String> => "text" as "u.birth_date::date",
    job: Option<String> => "text",
    // A JSON array of strings, in order, into TEXT[].
    interests: String => "text"
        as "ARRAY(SELECT jsonb_array_elements_text(u.interests::jsonb))",
    avatar_url: Option<String> => "text",
    cover_url: Option<String> => "text",
    contact_email: Option<String> => "text",
    contact_phone: Option<String> => "text",
    contact_website: Option<String> => "text",
    visibility: String => "text",
});

copy_table!(sessions, "sessions", order by "id", {
    id: i64 => "bigint",
    user_id: i64 => "bigint",
    token_digest: Vec<u8> => "bytea",
    created_at: i64 => "bigint",
});

copy_table!(friend_requests, "friend_requests", order by "id", {
    id: i64 => "bigint",
    from_user: i64 => "bigint",
    to_user: i64 => "bigint",
    created_at: i64 => "bigint",
});

copy_table!(friendships, "friendships", order by "user_id, friend_id", {
    user_id: i64 => "bigint",
    friend_id: i64 => "bigint",
    friend_name: String => "text",
    since: i64 => "bigint",
});

copy_table!(follows, "follows", order by "follower_id, followee_id", {
    follower_id: i64 => "bigint",
    followee_id: i64 => "bigint",
    since: i64 => "bigint",
});

copy_table!(blocks, "blocks", order by "blocker_id, blocked_id", {
    blocker_id: i64 => "bigint",
    blocked_id: i64 => "bigint",
    since: i64 => "bigint",
});

copy_table!(mutes, "mutes", order by "muter_id, muted_id", {
    muter_id: i64 => "bigint",
    muted_id: i64 => "bigint",
    since: i64 => "bigint",
});

copy_table!(conversations, "conversations", order by "id", {
    id: i64 => "bigint",
    kind: String => "text",
    title: Option<String> => "text",
    title_version: i64 => "bigint",
    created_by: i64 => "bigint",
    created_at: i64 => "bigint",
    last_seq: i64 => "bigint",
    version: i64 => "bigint",
    last_activity: i64 => "bigint",
    direct_low: Option<i64> => "bigint",
    direct_high: Option<i64> => "bigint",
});

copy_table!(conversation_members, "conversation_members", order by "conversation_id, user_id", {
    conversation_id: i64 => "bigint",
    user_id: i64 => "bigint",
    role: String => "text",
    joined_at: i64 => "bigint",
    last_read_seq: i64 => "bigint",
    left_version: Option<i64> => "bigint",
    version: i64 => "bigint",
});

// In id order: a reply's target is an older message, so it is inserted in an
// earlier batch or earlier in the same statement (whose foreign keys are
// checked at its end).
copy_table!(messages, "messages", order by "id", {
    id: i64 => "bigint",
    conversation_id: i64 => "bigint",
    seq: i64 => "bigint",
    version: i64 => "bigint",
    sender_id: i64 => "bigint",
    client_id: String => "text",
    body: Option<String> => "text",
    reply_to: Option<i64> => "bigint",
    created_at: i64 => "bigint",
    edited_at: Option<i64> => "bigint",
    deleted_at: Option<i64> => "bigint",
});

copy_table!(message_reactions, "message_reactions", order by "message_id, user_id", {
    message_id: i64 => "bigint",
    user_id: i64 => "bigint",
    kind: String => "text",
});

copy_table!(conversation_changes, "conversation_changes", order by "conversation_id, version", {
    conversation_id: i64 => "bigint",
    version: i64 => "bigint",
    kind: String => "text",
    actor: i64 => "bigint",
    subject: Option<i64> => "bigint",
});

copy_table!(posts, "posts", order by "id", {
    id: i64 => "bigint",
    author_id: i64 => "bigint",
    text: String => "text",
    visibility: String => "text",
    created_at: i64 => "bigint",
    edited_at: Option<i64> => "bigint",
    position: Option<i64> => "bigint",
    shared_id: Option<i64> => "bigint",
});

copy_table!(post_hashtags, "post_hashtags", order by "post_id, tag", {
    post_id: i64 => "bigint",
    tag: String => "text",
    position: Option<i64> => "bigint",
});

copy_table!(post_mentions, "post_mentions", order by "post_id, user_id", {
    post_id: i64 => "bigint",
    user_id: i64 => "bigint",
});

copy_table!(post_reactions, "post_reactions", order by "post_id, user_id", {
    post_id: i64 => "bigint",
    user_id: i64 => "bigint",
    kind: String => "text",
});

// In id order: a reply's parent is an older comment, as for messages.
copy_table!(comments, "comments", order by "id", {
    id: i64 => "bigint",
    post_id: i64 => "bigint",
    parent_id: Option<i64> => "bigint",
    author_id: i64 => "bigint",
    text: Option<String> => "text",
    created_at: i64 => "bigint",
    edited_at: Option<i64> => "bigint",
    deleted_at: Option<i64> => "bigint",
});

copy_table!(comment_reactions, "comment_reactions", order by "comment_id, user_id", {
    comment_id: i64 => "bigint",
    user_id: i64 => "bigint",
    kind: String => "text",
});

copy_table!(media, "media", order by "id", {
    id: i64 => "bigint",
    owner: i64 => "bigint",
    kind: String => "text",
    content_type: String => "text",
    byte_size: i64 => "bigint",
    width: i64 => "bigint",
    height: i64 => "bigint",
    variants: String => "text",
    created_at: i64 => "bigint",
    attached_kind: Option<String> => "text",
    attached_to: Option<i64> => "bigint",
    expires_at: Option<i64> => "bigint",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL migrations the mapping above was written for.
    static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
        sqlx::migrate!("../../storage-postgres/migrations");

    /// A new migration in either backend changes the tables or columns this
    /// module copies: update the `copy_table!` lists (and [`TABLES`]) for
    /// it, then the versions here.
    #[test]
    fn the_mapping_is_for_the_current_schemas() {
        let sqlite: Vec<i64> = SQLITE_MIGRATIONS.iter().map(|m| m.version).collect();
        let postgres: Vec<i64> = POSTGRES_MIGRATIONS.iter().map(|m| m.version).collect();
        // 3 adds `node_leases`, 5 `send_buckets`, 6 `presence` and 9
        // `write_buckets`, which are not copied: leases and presence belong
        // to the servers running on a database, and buckets refill. 7 adds
        // posts, comments and their reactions, copied, and the counter of
        // post positions, set; 8 `media` (the records; the bytes stay in the
        // media store); 10 an index.
        assert_eq!(
            sqlite,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "kith-sqlite has a new migration"
        );
        assert_eq!(
            postgres,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "kith-postgres has a new migration"
        );
    }

    #[tokio::test]
    async fn bad_urls_are_refused_before_connecting() {
        let err = migrate_data("sqlite://x.db", "mysql://h/db", 10).await;
        assert!(matches!(err, Err(MigrateError::InvalidTarget)), "{err:?}");
        let err = migrate_data("postgres://h/db", "postgres://h/db", 10).await;
        assert!(
            matches!(err, Err(MigrateError::InvalidSource(_))),
            "{err:?}"
        );
    }
}
