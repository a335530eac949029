//! Appending messages. Every call, one message or many, is a batch in one
//! transaction of two statements ([`append_many`]: read everything, write
//! everything) between `BEGIN` and `COMMIT`; if a statement fails, the batch is replayed one message at a
//! time ([`append_in`]), each in a savepoint.
//!
//! Idempotency on `(sender, client_id)` is checked by index lookups (a
//! stored message never goes away, so a retry costs one lookup) and
//! enforced by the unique index `messages_client`: an append that collides
//! with a concurrent one (the same `client_id` sent to two conversations at
//! once, or twice to one) is rolled back and answered with the message that
//! won, as [`Appended::Existing`].

use std::collections::{HashMap, HashSet};

use sqlx::postgres::Postgres;
use sqlx::Transaction;

use super::*;
use kith_core::Bucket;

/// Locks the send-rate buckets of the users of the sorted array `$N`, in
/// that order, if the condition holds (a way to make it wait for others), creating full ones where missing (so that two transactions
/// cannot both start from a missing row; a full bucket: any refill reaches
/// the burst), and returns them as `(user_id, milli_tokens, at)`.
macro_rules! lock_buckets {
    ($users:literal, $when:literal) => {
        concat!(
            "INSERT INTO send_buckets (user_id, milli_tokens, at) \
             SELECT u, 9223372036854775807, 0 FROM unnest(",
            $users,
            "::bigint[]) AS u WHERE ",
            $when,
            " ORDER BY u \
             ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id \
             RETURNING user_id, milli_tokens, at"
        )
    };
}

/// Sets the send-rate buckets of the arrays `$A`, `$B`, `$C` (users,
/// milli-tokens, times).
macro_rules! store_buckets {
    ($users:literal, $tokens:literal, $at:literal) => {
        concat!(
            "UPDATE send_buckets SET milli_tokens = k.tokens, at = k.at \
             FROM unnest(",
            $users,
            "::bigint[], ",
            $tokens,
            "::bigint[], ",
            $at,
            "::bigint[]) AS k (user_id, tokens, at) \
             WHERE send_buckets.user_id = k.user_id"
        )
    };
}

/// [`lock_buckets!`] on `$1`.
const LOCK_BUCKETS: &str = lock_buckets!("$1", "true");

/// [`store_buckets!`] on `$1` to `$3`.
const STORE_BUCKETS: &str = store_buckets!("$1", "$2", "$3");

/// Takes the next seq and version for a message sent at `$2`, locking the
/// conversation's row.
pub(super) const BUMP_FOR_MESSAGE: &str = "\
    UPDATE conversations SET last_seq = last_seq + 1, version = version + 1, last_activity = $2 \
    WHERE id = $1 RETURNING last_seq, version";

/// Inserts a message if its sender is a current member. It runs after
/// [`BUMP_FOR_MESSAGE`] took the conversation's lock, so the membership it
/// sees includes every change committed before.
pub(super) const INSERT_MESSAGE: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
    WHERE EXISTS (SELECT 1 FROM conversation_members \
        WHERE conversation_id = $2 AND user_id = $5 AND left_version IS NULL)";

/// Moves the sender's read position to its new message.
pub(super) const READ_OWN: &str = "\
    UPDATE conversation_members SET last_read_seq = $3 \
    WHERE conversation_id = $1 AND user_id = $2";

pub(super) const SELECT_BY_CLIENT_ID: &str =
    select_messages!("WHERE sender_id = $1 AND client_id = $2");

/// Why an append did not go through. Statements may have run either way:
/// the caller rolls back (to a savepoint, or the transaction).
pub(super) enum Failure {
    /// The append's own outcome (not a member, a failed statement...).
    Rejected(Error),
    /// Another transaction stored a message with the same
    /// `(sender, client_id)` first; after rolling back, read that one.
    Raced,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Rejected(err)
    }
}

/// The message `sender` stored with `client_id`, if any.
async fn by_client_id<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    sender: UserId,
    client_id: &str,
) -> Result<Option<Message>> {
    let row: Option<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_ID)
        .bind(sql_id(sender.get()))
        .bind(client_id)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(Message::try_from).transpose()
}

/// The message that beat an append to its `(sender, client_id)`.
async fn winner<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    message: &NewMessageRecord,
) -> Result<Appended> {
    by_client_id(conn, message.sender, &message.client_id)
        .await?
        .map(Appended::Existing)
        .ok_or_else(|| Error::storage("a message with this client_id collided and then vanished"))
}

/// Inside a transaction: the steps of [`ChatStore::append_message`] one
/// statement at a time (the fallback of a batch).
pub(super) async fn append_in(
    conn: &mut PgConnection,
    message: &NewMessageRecord,
) -> Result<Appended, Failure> {
    if let Some(existing) = by_client_id(&mut *conn, message.sender, &message.client_id).await? {
        return Ok(Appended::Existing(existing));
    }
    let conversation = sql_id(message.conversation_id.get());
    let sender = sql_id(message.sender.get());
    let bumped: Option<(i64, i64)> = sqlx::query_as(BUMP_FOR_MESSAGE)
        .bind(conversation)
        .bind(message.created_at.as_millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let (seq, version) = bumped.ok_or(Error::NotFound(Entity::Conversation))?;
    // After the conversation's lock, as in a batch (no lock cycles).
    if let Some(rate) = message.rate {
        let mut buckets = lock_buckets(conn, &[sender]).await?;
        let bucket = rate
            .take(buckets.remove(&sender), message.created_at)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
        store_buckets(conn, &[(sender, bucket)]).await?;
    }
    let inserted = sqlx::query(INSERT_MESSAGE)
        .bind(sql_id(message.id.get()))
        .bind(conversation)
        .bind(seq)
        .bind(version)
        .bind(sender)
        .bind(&message.client_id)
        .bind(&message.body)
        .bind(message.reply_to.map(|id| sql_id(id.get())))
        .bind(message.created_at.as_millis())
        .execute(&mut *conn)
        .await;
    match inserted {
        Ok(done) if done.rows_affected() == 0 => {
            return Err(Failure::Rejected(Error::NotFound(Entity::Conversation)))
        }
        Ok(_) => {}
        Err(err) if unique_violation(&err) == Some("messages_client") => {
            return Err(Failure::Raced)
        }
        Err(err) => return Err(Failure::Rejected(db(err))),
    }
    sqlx::query(READ_OWN)
        .bind(conversation)
        .bind(sender)
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    log_message_change(conn, message.id, ChangeKind::MessageCreated).await?;
    Ok(Appended::Created(Message {
        id: message.id,
        conversation_id: message.conversation_id,
        seq: raw_count(seq),
        version: raw_count(version),
        sender: message.sender,
        client_id: message.client_id.clone(),
        body: Some(message.body.clone()),
        reply_to: message.reply_to,
        reactions: Vec::new(),
        created_at: message.created_at,
        edited_at: None,
        deleted_at: None,
    }))
}

/// Locks the conversations of the array `$1` in id order and reads their
/// counters.
pub(super) const LOCK_COUNTERS: &str = "\
    SELECT id, last_seq, version FROM conversations WHERE id = ANY($1) \
    ORDER BY id FOR NO KEY UPDATE";

/// The first statement of a batch, every read at once. Rows `(kind, a, b,
/// c)`:
/// - `0`: the conversations of the array `$1`, locked in id order, with
///   their counters `(id, last_seq, version)` as locked (the latest, after
///   any wait for a lock);
/// - `1`: the same conversations' versions in the statement's snapshot
///   `(id, version, 0)`, which is taken when the statement starts, so
///   before any wait: where they differ from the locked ones, a writer
///   committed while this batch waited, and the reads below (memberships
///   above all) must be made again ([`SELECT_SENDERS`]);
/// - `2`: the messages already stored under the `(sender, client_id)` pairs
///   of the arrays `$2` and `$3` `(id, 0, 0)`: one lookup of index
///   `messages_client` per pair, a `LATERAL` subquery with a `LIMIT` so that
///   the planner cannot turn it into a hash join over the whole table (with
///   a plain join it did so once a conversation held some ten thousand
///   messages, and the check grew with the table, from 0.2 to 9 ms). An
///   old snapshot is enough here: a stored message never goes away, and one
///   with the same pair committed while this batch waited makes its insert
///   fail on the unique index, which sends the batch to the fallback;
/// - `3`: which of the `(conversation, user)` pairs of the arrays `$4` and
///   `$5` are current memberships `(conversation, user, 0)`, one
///   primary-key lookup per pair (`LATERAL` as above);
/// - `4`: which of the message ids of `$6` exist `(id, 0, 0)` (a message
///   never goes away, so the snapshot is enough);
/// - `5`: the send-rate buckets of the users of `$7` ([`lock_buckets!`],
///   `(user, milli_tokens, at)`), locked after every conversation (the
///   insert waits for the count of `locked`), as every writer locks them.
pub(super) const READ_BATCH: &str = concat!(
    "WITH locked AS MATERIALIZED (SELECT id, last_seq, version FROM conversations \
        WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE), \
    locks AS MATERIALIZED (SELECT count(*) AS n FROM locked), \
    buckets AS (",
    lock_buckets!("$7", "(SELECT n FROM locks) >= 0"),
    ") SELECT 0 AS kind, id, last_seq, version FROM locked \
    UNION ALL \
    SELECT 1, id, version, 0 FROM conversations WHERE id = ANY($1) \
    UNION ALL \
    SELECT 2, m.id, 0, 0 FROM unnest($2::bigint[], $3::text[]) AS k (sender_id, client_id) \
    CROSS JOIN LATERAL (SELECT id FROM messages WHERE messages.sender_id = k.sender_id \
        AND messages.client_id = k.client_id LIMIT 1) m \
    UNION ALL \
    SELECT 3, m.conversation_id, m.user_id, 0 \
    FROM unnest($4::bigint[], $5::bigint[]) AS k (conversation_id, user_id) \
    CROSS JOIN LATERAL (SELECT conversation_id, user_id FROM conversation_members \
        WHERE conversation_id = k.conversation_id AND user_id = k.user_id \
            AND left_version IS NULL LIMIT 1) m \
    UNION ALL \
    SELECT 4, id, 0, 0 FROM messages WHERE id = ANY($6) \
    UNION ALL \
    SELECT 5, user_id, milli_tokens, at FROM buckets"
);

/// Which of the `(conversation, user)` pairs of the arrays `$1` and `$2`
/// are current memberships, as [`READ_BATCH`] reads them: for a batch that
/// waited for a conversation's lock, after the lock.
pub(super) const SELECT_SENDERS: &str = "\
    SELECT m.conversation_id, m.user_id \
    FROM unnest($1::bigint[], $2::bigint[]) AS k (conversation_id, user_id) \
    CROSS JOIN LATERAL (SELECT conversation_id, user_id FROM conversation_members \
        WHERE conversation_id = k.conversation_id AND user_id = k.user_id \
            AND left_version IS NULL LIMIT 1) m";

/// The stored messages of the ids of the array `$1`.
pub(super) const SELECT_BY_IDS: &str = select_messages!("WHERE id = ANY($1)");

/// The last statement of a batch, every write at once: inserts the
/// messages of the arrays `$1` to `$9` (one per column) and their
/// change-log entries, sets the counters of the conversations of `$10` to
/// `$13` (ids, `last_seq`, `version`, `last_activity`), the read positions
/// of `$14` to `$16` (conversations, users, seqs) and the send-rate buckets
/// of `$17` to `$19` (users, milli-tokens, times). The statements touch
/// different tables, so that one snapshot for all of them changes nothing.
pub(super) const WRITE_BATCH: &str = concat!(
    "WITH inserted AS (INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
        SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
            $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[])), \
    logged AS (INSERT INTO conversation_changes \
        (conversation_id, version, kind, actor, subject) \
        SELECT k.conversation_id, k.version, 'message_created', k.sender_id, k.id \
        FROM unnest($2::bigint[], $4::bigint[], $5::bigint[], $1::bigint[]) \
            AS k (conversation_id, version, sender_id, id)), \
    counted AS (UPDATE conversations SET last_seq = k.last_seq, version = k.version, \
            last_activity = k.last_activity \
        FROM unnest($10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
            AS k (id, last_seq, version, last_activity) \
        WHERE conversations.id = k.id), \
    read AS (UPDATE conversation_members SET last_read_seq = k.seq \
        FROM unnest($14::bigint[], $15::bigint[], $16::bigint[]) \
            AS k (conversation_id, user_id, seq) \
        WHERE conversation_members.conversation_id = k.conversation_id \
            AND conversation_members.user_id = k.user_id), \
    rated AS (",
    store_buckets!("$17", "$18", "$19"),
    ") SELECT 1"
);

/// The columns of the messages a batch inserts.
#[derive(Default)]
struct Inserts {
    id: Vec<i64>,
    conversation: Vec<i64>,
    seq: Vec<i64>,
    version: Vec<i64>,
    sender: Vec<i64>,
    client_id: Vec<String>,
    body: Vec<String>,
    reply_to: Vec<Option<i64>>,
    created_at: Vec<i64>,
}

/// Inside a transaction: locks the conversations of `records` in id order
/// and returns their `(id, last_seq, version)`.
async fn lock_conversations(
    conn: &mut PgConnection,
    records: &[NewMessageRecord],
) -> Result<Vec<(i64, i64, i64)>> {
    sqlx::query_as(LOCK_COUNTERS)
        .bind(conversation_ids(records))
        .fetch_all(conn)
        .await
        .map_err(db)
}

/// The conversations of `records`, sorted, each once.
fn conversation_ids(records: &[NewMessageRecord]) -> Vec<i64> {
    let mut conversations: Vec<i64> = records
        .iter()
        .map(|r| sql_id(r.conversation_id.get()))
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    conversations
}

/// Inside a transaction: the appends of a batch, in order, with the outcome
/// [`append_in`] would give each if they ran one after the other, in two
/// statements: [`READ_BATCH`] (the conversations locked in id order) and
/// [`WRITE_BATCH`], with [`SELECT_SENDERS`] between them when a lock was
/// waited for and [`SELECT_BY_IDS`] when some sends are retries. The checks of
/// [`append_in`] (idempotency, membership, the send rate and the
/// `reply_to` foreign key) are made in Rust against what the reads returned
/// and what the earlier appends of the batch stored.
///
/// `Err` if a statement failed (a constraint these checks do not foresee,
/// such as a reused message id, or a concurrent append of the same
/// `(sender, client_id)`): statements may have run, and the caller rolls
/// back and falls back to [`append_in`] one message at a time.
async fn append_many(
    conn: &mut PgConnection,
    records: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    let senders: Vec<i64> = records.iter().map(|r| sql_id(r.sender.get())).collect();
    let client_ids: Vec<&str> = records.iter().map(|r| r.client_id.as_str()).collect();
    let member_pairs: Vec<(i64, i64)> = records
        .iter()
        .map(|r| (sql_id(r.conversation_id.get()), sql_id(r.sender.get())))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let (pair_conversations, pair_users): (Vec<i64>, Vec<i64>) = member_pairs.into_iter().unzip();
    let replies: Vec<i64> = records
        .iter()
        .filter_map(|r| r.reply_to.map(|id| sql_id(id.get())))
        .collect();
    let mut limited: Vec<i64> = records
        .iter()
        .filter(|r| r.rate.is_some())
        .map(|r| sql_id(r.sender.get()))
        .collect();
    limited.sort_unstable();
    limited.dedup();
    let rows: Vec<(i32, i64, i64, i64)> = sqlx::query_as(READ_BATCH)
        .bind(conversation_ids(records))
        .bind(&senders)
        .bind(&client_ids)
        .bind(&pair_conversations)
        .bind(&pair_users)
        .bind(replies)
        .bind(limited)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    // conversation -> (last_seq, version, last_activity)
    let mut counters: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let mut retried: Vec<i64> = Vec::new();
    let mut members: HashSet<(i64, i64)> = HashSet::new();
    let mut known: HashSet<i64> = HashSet::new();
    let mut buckets: HashMap<i64, Bucket> = HashMap::new();
    for (kind, a, b, c) in rows {
        match kind {
            0 => {
                counters.insert(a, (b, c, 0));
            }
            1 => {
                seen.insert(a, b);
            }
            2 => retried.push(a),
            3 => {
                members.insert((a, b));
            }
            4 => {
                known.insert(a);
            }
            _ => {
                buckets.insert(a, bucket(b, c));
            }
        }
    }
    // A writer committed while this batch waited for a lock: read the
    // memberships again, after the locks.
    if counters
        .iter()
        .any(|(id, (_, version, _))| seen.get(id) != Some(version))
    {
        members = sqlx::query_as(SELECT_SENDERS)
            .bind(pair_conversations)
            .bind(pair_users)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
    }
    let mut stored: HashMap<(i64, String), Message> = HashMap::with_capacity(retried.len());
    if !retried.is_empty() {
        let rows: Vec<MessageRow> = sqlx::query_as(SELECT_BY_IDS)
            .bind(retried)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        for row in rows {
            let message = Message::try_from(row)?;
            stored.insert(
                (sql_id(message.sender.get()), message.client_id.clone()),
                message,
            );
        }
    }
    let mut taken: Vec<i64> = Vec::new();

    let mut outcomes = Vec::with_capacity(records.len());
    let mut inserts = Inserts::default();
    let mut touched: Vec<i64> = Vec::new();
    let mut read: HashMap<(i64, i64), i64> = HashMap::new();
    for record in records {
        let (conversation, sender) = (
            sql_id(record.conversation_id.get()),
            sql_id(record.sender.get()),
        );
        let key = (sender, record.client_id.clone());
        if let Some(existing) = stored.get(&key) {
            outcomes.push(Ok(Appended::Existing(existing.clone())));
            continue;
        }
        if !members.contains(&(conversation, sender)) {
            outcomes.push(Err(Error::NotFound(Entity::Conversation)));
            continue;
        }
        let reply_to = record.reply_to.map(|id| sql_id(id.get()));
        if reply_to.is_some_and(|id| !known.contains(&id)) {
            outcomes.push(Err(Error::storage(
                "foreign key violation: reply_to names no message",
            )));
            continue;
        }
        if !counters.contains_key(&conversation) {
            outcomes.push(Err(Error::NotFound(Entity::Conversation)));
            continue;
        }
        if let Some(rate) = record.rate {
            match rate.take(buckets.get(&sender).copied(), record.created_at) {
                Ok(bucket) => {
                    buckets.insert(sender, bucket);
                    if !taken.contains(&sender) {
                        taken.push(sender);
                    }
                }
                Err(retry_after) => {
                    outcomes.push(Err(Error::RateLimited { retry_after }));
                    continue;
                }
            }
        }
        let Some(counter) = counters.get_mut(&conversation) else {
            outcomes.push(Err(Error::NotFound(Entity::Conversation)));
            continue;
        };
        counter.0 += 1;
        counter.1 += 1;
        counter.2 = record.created_at.as_millis();
        let (seq, version) = (counter.0, counter.1);
        if !touched.contains(&conversation) {
            touched.push(conversation);
        }
        read.insert((conversation, sender), seq);
        inserts.id.push(sql_id(record.id.get()));
        inserts.conversation.push(conversation);
        inserts.seq.push(seq);
        inserts.version.push(version);
        inserts.sender.push(sender);
        inserts.client_id.push(record.client_id.clone());
        inserts.body.push(record.body.clone());
        inserts.reply_to.push(reply_to);
        inserts.created_at.push(record.created_at.as_millis());
        known.insert(sql_id(record.id.get()));
        let message = Message {
            id: record.id,
            conversation_id: record.conversation_id,
            seq: raw_count(seq),
            version: raw_count(version),
            sender: record.sender,
            client_id: record.client_id.clone(),
            body: Some(record.body.clone()),
            reply_to: record.reply_to,
            reactions: Vec::new(),
            created_at: record.created_at,
            edited_at: None,
            deleted_at: None,
        };
        stored.insert(key, message.clone());
        outcomes.push(Ok(Appended::Created(message)));
    }
    if inserts.id.is_empty() {
        return Ok(outcomes);
    }
    let mut ids = Vec::with_capacity(touched.len());
    let mut seqs = Vec::with_capacity(touched.len());
    let mut versions = Vec::with_capacity(touched.len());
    let mut activities = Vec::with_capacity(touched.len());
    for id in touched {
        if let Some(&(seq, version, at)) = counters.get(&id) {
            ids.push(id);
            seqs.push(seq);
            versions.push(version);
            activities.push(at);
        }
    }
    let mut read_conversations = Vec::with_capacity(read.len());
    let mut read_users = Vec::with_capacity(read.len());
    let mut read_seqs = Vec::with_capacity(read.len());
    for ((conversation, user), seq) in read {
        read_conversations.push(conversation);
        read_users.push(user);
        read_seqs.push(seq);
    }
    let (bucket_users, bucket_tokens, bucket_at) = bucket_columns(
        &taken
            .into_iter()
            .filter_map(|sender| buckets.get(&sender).map(|b| (sender, *b)))
            .collect::<Vec<_>>(),
    );
    sqlx::query(WRITE_BATCH)
        .bind(inserts.id)
        .bind(inserts.conversation)
        .bind(inserts.seq)
        .bind(inserts.version)
        .bind(inserts.sender)
        .bind(inserts.client_id)
        .bind(inserts.body)
        .bind(inserts.reply_to)
        .bind(inserts.created_at)
        .bind(ids)
        .bind(seqs)
        .bind(versions)
        .bind(activities)
        .bind(read_conversations)
        .bind(read_users)
        .bind(read_seqs)
        .bind(bucket_users)
        .bind(bucket_tokens)
        .bind(bucket_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(outcomes)
}

/// [`ChatStore::append_message`]: a batch of one.
pub(super) async fn append_message(
    store: &PgStore,
    message: &NewMessageRecord,
) -> Result<Appended> {
    append_messages(store, std::slice::from_ref(message))
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(Error::storage(
                "the store answered no outcome for an append",
            ))
        })
}

/// [`ChatStore::append_messages`]: the whole batch in one transaction of
/// its own, or queued for a grouped one (`group.rs`) when group commit is
/// on.
pub(super) async fn append_messages(
    store: &PgStore,
    messages: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    if store.appender.limit().is_none() {
        return append_batch(store, messages).await;
    }
    group::append_grouped(store, messages).await
}

/// A batch (possibly across conversations) in one transaction, set-based;
/// replayed one message at a time, each in a savepoint, if a statement of
/// the set-based path fails.
pub(super) async fn append_batch(
    store: &PgStore,
    messages: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin_batch().await?;
    match append_many(&mut tx, messages).await {
        Ok(outcomes) => {
            finish(tx, &outcomes).await?;
            return Ok(outcomes);
        }
        Err(_) => tx.rollback().await.map_err(db)?,
    }
    let mut tx = store.begin_batch().await?;
    // The conversations in id order first, as the set-based path takes
    // them, so that two batches never wait for each other's locks in a
    // cycle.
    lock_conversations(&mut tx, messages).await?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for message in messages {
        outcomes.push(append_savepoint(&mut tx, message).await?);
    }
    finish(tx, &outcomes).await?;
    Ok(outcomes)
}

/// Commits a batch's transaction, or rolls it back if no append of it
/// stored anything.
async fn finish(tx: Transaction<'static, Postgres>, outcomes: &[Result<Appended>]) -> Result<()> {
    if outcomes
        .iter()
        .any(|o| matches!(o, Ok(Appended::Created(_))))
    {
        tx.commit().await.map_err(db)
    } else {
        tx.rollback().await.map_err(db)
    }
}

/// One append of a batch inside a savepoint of its own: a failing append
/// is rolled back alone and gets its own outcome. The outer `Err` is a
/// failure of the transaction itself.
async fn append_savepoint(
    tx: &mut Transaction<'static, Postgres>,
    message: &NewMessageRecord,
) -> Result<Result<Appended>> {
    control(tx, "SAVEPOINT append").await?;
    let failure = match append_in(tx, message).await {
        Ok(appended) => {
            control(tx, "RELEASE SAVEPOINT append").await?;
            return Ok(Ok(appended));
        }
        Err(failure) => failure,
    };
    control(tx, "ROLLBACK TO SAVEPOINT append").await?;
    control(tx, "RELEASE SAVEPOINT append").await?;
    Ok(match failure {
        Failure::Rejected(err) => Err(err),
        // A new statement sees the message that won once it committed.
        Failure::Raced => winner(&mut **tx, message).await,
    })
}

/// Runs a statement that manages the batch's transaction.
async fn control(tx: &mut Transaction<'static, Postgres>, sql: &'static str) -> Result<()> {
    sqlx::query(sql)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(db)
}

/// [`ChatStore::message_by_client_id`].
pub(super) async fn message_by_client_id(
    store: &PgStore,
    sender: UserId,
    client_id: &str,
) -> Result<Option<Message>> {
    by_client_id(store.read(), sender, client_id).await
}

/// Inside a transaction, after the conversations' locks: locks the stored
/// send-rate buckets of `senders` ([`LOCK_BUCKETS`]) and returns them.
async fn lock_buckets(conn: &mut PgConnection, senders: &[i64]) -> Result<HashMap<i64, Bucket>> {
    let mut senders = senders.to_vec();
    senders.sort_unstable();
    senders.dedup();
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(LOCK_BUCKETS)
        .bind(&senders)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(user, tokens, at)| (user, bucket(tokens, at)))
        .collect())
}

/// A stored bucket's columns.
fn bucket(milli_tokens: i64, at: i64) -> Bucket {
    Bucket {
        milli_tokens: raw_count(milli_tokens),
        at: Timestamp::from_millis(at),
    }
}

/// The columns (users, milli-tokens, times) of the buckets to store.
fn bucket_columns(buckets: &[(i64, Bucket)]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let users = buckets.iter().map(|(u, _)| *u).collect();
    let tokens = buckets
        .iter()
        .map(|(_, b)| sql_count(b.milli_tokens))
        .collect();
    let at = buckets.iter().map(|(_, b)| b.at.as_millis()).collect();
    (users, tokens, at)
}

/// Inside a transaction: stores the buckets a batch took from (locked by
/// [`lock_buckets`]).
async fn store_buckets(conn: &mut PgConnection, buckets: &[(i64, Bucket)]) -> Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let (users, tokens, at) = bucket_columns(buckets);
    sqlx::query(STORE_BUCKETS)
        .bind(users)
        .bind(tokens)
        .bind(at)
        .execute(conn)
        .await
        .map(drop)
        .map_err(db)
}
