//! Appending messages: one at a time ([`append_in`]) or a batch in a fixed
//! number of set-based statements ([`append_many`]), with a fallback that
//! replays a batch one message at a time, each in a savepoint.
//!
//! Idempotency on `(sender, client_id)` is checked before taking any lock
//! (a stored message never goes away, so a retry costs one index lookup)
//! and enforced by the unique index `messages_client`: an append that
//! collides with a concurrent one (the same `client_id` sent to two
//! conversations at once, or twice to one) is rolled back and answered with
//! the message that won, as [`Appended::Existing`].

use std::collections::{HashMap, HashSet};

use sqlx::postgres::Postgres;
use sqlx::Transaction;

use super::*;
use kith_core::SendBucket;

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

/// Inside a transaction: the steps of [`ChatStore::append_message`],
/// without the idempotency check when the caller made it already
/// (`check_existing` false).
pub(super) async fn append_in(
    conn: &mut PgConnection,
    message: &NewMessageRecord,
    check_existing: bool,
) -> Result<Appended, Failure> {
    if check_existing {
        if let Some(existing) = by_client_id(&mut *conn, message.sender, &message.client_id).await?
        {
            return Ok(Appended::Existing(existing));
        }
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

/// The messages stored under the `(sender, client_id)` pairs of the arrays
/// `$1` and `$2`: one lookup of index `messages_client` per pair. The
/// lookup is a `LATERAL` subquery with a `LIMIT` so that the planner cannot
/// turn it into a hash join over the whole table: with a plain join it did
/// so once a conversation held some ten thousand messages, and a batch's
/// idempotency check grew with the table (from 0.2 to 9 ms).
pub(super) const SELECT_BY_CLIENT_IDS: &str = concat!(
    "SELECT m.* FROM unnest($1::bigint[], $2::text[]) AS k (sender_id, client_id) \
     CROSS JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE messages.sender_id = k.sender_id \
         AND messages.client_id = k.client_id LIMIT 1) m"
);

/// Which of the `(conversation, user)` pairs of the arrays `$1` and `$2`
/// are current memberships: one primary-key lookup per pair (`LATERAL` with
/// `LIMIT 1`, as [`SELECT_BY_CLIENT_IDS`], so that no plan reads the whole
/// table).
pub(super) const SELECT_SENDERS: &str = "\
    SELECT m.conversation_id, m.user_id \
    FROM unnest($1::bigint[], $2::bigint[]) AS k (conversation_id, user_id) \
    CROSS JOIN LATERAL (SELECT conversation_id, user_id FROM conversation_members \
        WHERE conversation_id = k.conversation_id AND user_id = k.user_id \
            AND left_version IS NULL LIMIT 1) m";

/// Which of the message ids of the array `$1` exist.
pub(super) const SELECT_EXISTING_IDS: &str = "SELECT id FROM messages WHERE id = ANY($1)";

/// Inserts the messages of the arrays `$1` to `$9`, one per column.
pub(super) const INSERT_MESSAGES: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
        $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[])";

/// The change-log entries of the messages [`INSERT_MESSAGES`] inserts:
/// arrays of conversations, versions, senders and message ids.
pub(super) const LOG_MESSAGES: &str = "\
    INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
    SELECT k.conversation_id, k.version, 'message_created', k.sender_id, k.id \
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
        AS k (conversation_id, version, sender_id, id)";

/// Sets the counters of the conversations of the arrays `$1` (ids), `$2`
/// (`last_seq`), `$3` (`version`) and `$4` (`last_activity`).
pub(super) const UPDATE_COUNTERS: &str = "\
    UPDATE conversations SET last_seq = k.last_seq, version = k.version, \
        last_activity = k.last_activity \
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
        AS k (id, last_seq, version, last_activity) \
    WHERE conversations.id = k.id";

/// Sets the read positions of the arrays `$1` (conversations), `$2`
/// (users) and `$3` (seqs).
pub(super) const UPDATE_READ: &str = "\
    UPDATE conversation_members SET last_read_seq = k.seq \
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS k (conversation_id, user_id, seq) \
    WHERE conversation_members.conversation_id = k.conversation_id \
        AND conversation_members.user_id = k.user_id";

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
    let mut conversations: Vec<i64> = records
        .iter()
        .map(|r| sql_id(r.conversation_id.get()))
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    sqlx::query_as(LOCK_COUNTERS)
        .bind(conversations)
        .fetch_all(conn)
        .await
        .map_err(db)
}

/// Inside a transaction: the appends of a batch, in order, with the outcome
/// [`append_in`] would give each if they ran one after the other, in a
/// fixed number of statements: the conversations are locked first (in id
/// order), then three reads, then three set-based writes. The checks of
/// [`append_in`] (idempotency, membership, and the `reply_to` foreign key)
/// are made in Rust against what the reads returned and what the earlier
/// appends of the batch stored.
///
/// `Err` if a statement failed (a constraint these checks do not foresee,
/// such as a reused message id, or a concurrent append of the same
/// `(sender, client_id)` to another conversation): statements may have run,
/// and the caller rolls back and falls back to [`append_in`] one message
/// at a time.
async fn append_many(
    conn: &mut PgConnection,
    records: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    let locked = lock_conversations(&mut *conn, records).await?;
    // conversation -> (last_seq, version, last_activity)
    let mut counters: HashMap<i64, (i64, i64, i64)> = locked
        .into_iter()
        .map(|(id, seq, version)| (id, (seq, version, 0)))
        .collect();

    let senders: Vec<i64> = records.iter().map(|r| sql_id(r.sender.get())).collect();
    let client_ids: Vec<&str> = records.iter().map(|r| r.client_id.as_str()).collect();
    let rows: Vec<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_IDS)
        .bind(&senders)
        .bind(&client_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut stored: HashMap<(i64, String), Message> = HashMap::with_capacity(rows.len());
    for row in rows {
        let message = Message::try_from(row)?;
        stored.insert(
            (sql_id(message.sender.get()), message.client_id.clone()),
            message,
        );
    }

    let member_pairs: Vec<(i64, i64)> = records
        .iter()
        .map(|r| (sql_id(r.conversation_id.get()), sql_id(r.sender.get())))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let (pair_conversations, pair_users): (Vec<i64>, Vec<i64>) = member_pairs.into_iter().unzip();
    let members: HashSet<(i64, i64)> = sqlx::query_as(SELECT_SENDERS)
        .bind(pair_conversations)
        .bind(pair_users)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .into_iter()
        .collect();

    let replies: Vec<i64> = records
        .iter()
        .filter_map(|r| r.reply_to.map(|id| sql_id(id.get())))
        .collect();
    let mut known: HashSet<i64> = if replies.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(SELECT_EXISTING_IDS)
            .bind(replies)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .into_iter()
            .collect()
    };

    let limited: Vec<i64> = records
        .iter()
        .filter(|r| r.rate.is_some())
        .map(|r| sql_id(r.sender.get()))
        .collect();
    let mut buckets = if limited.is_empty() {
        HashMap::new()
    } else {
        lock_buckets(&mut *conn, &limited).await?
    };
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
    let taken: Vec<(i64, SendBucket)> = taken
        .into_iter()
        .filter_map(|sender| buckets.get(&sender).map(|b| (sender, *b)))
        .collect();
    store_buckets(&mut *conn, &taken).await?;
    sqlx::query(LOG_MESSAGES)
        .bind(&inserts.conversation)
        .bind(&inserts.version)
        .bind(&inserts.sender)
        .bind(&inserts.id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query(INSERT_MESSAGES)
        .bind(inserts.id)
        .bind(inserts.conversation)
        .bind(inserts.seq)
        .bind(inserts.version)
        .bind(inserts.sender)
        .bind(inserts.client_id)
        .bind(inserts.body)
        .bind(inserts.reply_to)
        .bind(inserts.created_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
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
    sqlx::query(UPDATE_COUNTERS)
        .bind(ids)
        .bind(seqs)
        .bind(versions)
        .bind(activities)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let mut read_conversations = Vec::with_capacity(read.len());
    let mut read_users = Vec::with_capacity(read.len());
    let mut read_seqs = Vec::with_capacity(read.len());
    for ((conversation, user), seq) in read {
        read_conversations.push(conversation);
        read_users.push(user);
        read_seqs.push(seq);
    }
    sqlx::query(UPDATE_READ)
        .bind(read_conversations)
        .bind(read_users)
        .bind(read_seqs)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(outcomes)
}

/// [`ChatStore::append_message`]: one transaction of its own, or queued
/// for a grouped one (`group.rs`) when group commit is on.
pub(super) async fn append_message(
    store: &PgStore,
    message: &NewMessageRecord,
) -> Result<Appended> {
    if store.appender.limit().is_none() {
        return append_one(store, message).await;
    }
    group::append_grouped(store, std::slice::from_ref(message))
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(Error::storage(
                "the store answered no outcome for an append",
            ))
        })
}

/// One append in one transaction.
async fn append_one(store: &PgStore, message: &NewMessageRecord) -> Result<Appended> {
    // A retry needs no transaction: a stored message never goes away.
    if let Some(existing) = by_client_id(store.read(), message.sender, &message.client_id).await? {
        return Ok(Appended::Existing(existing));
    }
    let mut tx = store.begin().await?;
    match append_in(&mut tx, message, false).await {
        Ok(appended) => {
            tx.commit().await.map_err(db)?;
            Ok(appended)
        }
        // Dropping the transaction rolls it back.
        Err(Failure::Rejected(err)) => Err(err),
        Err(Failure::Raced) => {
            tx.rollback().await.map_err(db)?;
            winner(store.read(), message).await
        }
    }
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
    match messages {
        [] => return Ok(Vec::new()),
        [one] => return Ok(vec![append_one(store, one).await]),
        _ => {}
    }
    let mut tx = store.begin().await?;
    match append_many(&mut tx, messages).await {
        Ok(outcomes) => {
            finish(tx, &outcomes).await?;
            return Ok(outcomes);
        }
        Err(_) => tx.rollback().await.map_err(db)?,
    }
    let mut tx = store.begin().await?;
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
    let failure = match append_in(tx, message, true).await {
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
/// send-rate buckets of `senders`, in user order, creating full ones for
/// senders who have none (so that two transactions cannot both start from
/// a missing row), and returns them.
async fn lock_buckets(
    conn: &mut PgConnection,
    senders: &[i64],
) -> Result<HashMap<i64, SendBucket>> {
    let mut senders = senders.to_vec();
    senders.sort_unstable();
    senders.dedup();
    // A full bucket: any refill reaches the burst.
    sqlx::query(
        "INSERT INTO send_buckets (user_id, milli_tokens, at) \
         SELECT u, 9223372036854775807, 0 FROM unnest($1::bigint[]) AS u \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(&senders)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT user_id, milli_tokens, at FROM send_buckets \
         WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE",
    )
    .bind(&senders)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(user, tokens, at)| {
            let bucket = SendBucket {
                milli_tokens: raw_count(tokens),
                at: Timestamp::from_millis(at),
            };
            (user, bucket)
        })
        .collect())
}

/// Inside a transaction: stores the buckets a batch took from (locked by
/// [`lock_buckets`]).
async fn store_buckets(conn: &mut PgConnection, buckets: &[(i64, SendBucket)]) -> Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = buckets.iter().map(|(u, _)| *u).collect();
    let tokens: Vec<i64> = buckets
        .iter()
        .map(|(_, b)| sql_count(b.milli_tokens))
        .collect();
    let at: Vec<i64> = buckets.iter().map(|(_, b)| b.at.as_millis()).collect();
    sqlx::query(
        "UPDATE send_buckets SET milli_tokens = k.tokens, at = k.at \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS k (user_id, tokens, at) \
         WHERE send_buckets.user_id = k.user_id",
    )
    .bind(users)
    .bind(tokens)
    .bind(at)
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
}
