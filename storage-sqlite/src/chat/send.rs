//! Appending messages: one at a time ([`append`]) or a batch in a fixed
//! number of set-based statements ([`append_many`]); `crate::append` runs
//! them at the one writer, in group commits.

use super::*;
use kith_core::Bucket;

/// Takes the next seq and version for a message from `?2` sent at `?3`, if
/// `?2` is a current member.
pub(super) const BUMP_FOR_MESSAGE: &str = "\
    UPDATE conversations SET last_seq = last_seq + 1, version = version + 1, last_activity = ?3 \
    WHERE id = ?1 AND EXISTS (SELECT 1 FROM conversation_members \
        WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL) \
    RETURNING last_seq, version";

pub(super) const INSERT_MESSAGE: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

pub(super) const SELECT_BY_CLIENT_ID: &str =
    select_messages!("WHERE sender_id = ?1 AND client_id = ?2");

/// Inside a write transaction: the steps of [`ChatStore::append_message`]
/// (see `append.rs` for the batches they run in). On an error, statements
/// may have run: the caller rolls back (to a savepoint, or the transaction).
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    message: &NewMessageRecord,
) -> Result<Appended> {
    let existing: Option<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_ID)
        .bind(sql_id(message.sender.get()))
        .bind(&message.client_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        return Ok(Appended::Existing(row.try_into()?));
    }
    if let Some(rate) = message.rate {
        let sender = sql_id(message.sender.get());
        let mut buckets = load_buckets(conn, &[sender]).await?;
        let bucket = rate
            .take(buckets.remove(&sender), message.created_at)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
        store_buckets(conn, &[(sender, bucket)]).await?;
    }
    let bumped: Option<(i64, i64)> = sqlx::query_as(BUMP_FOR_MESSAGE)
        .bind(sql_id(message.conversation_id.get()))
        .bind(sql_id(message.sender.get()))
        .bind(message.created_at.as_millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let (seq, version) = bumped.ok_or(Error::NotFound(Entity::Conversation))?;
    sqlx::query(INSERT_MESSAGE)
        .bind(sql_id(message.id.get()))
        .bind(sql_id(message.conversation_id.get()))
        .bind(seq)
        .bind(version)
        .bind(sql_id(message.sender.get()))
        .bind(&message.client_id)
        .bind(&message.body)
        .bind(message.reply_to.map(|id| sql_id(id.get())))
        .bind(message.created_at.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query(
        "UPDATE conversation_members SET last_read_seq = ?3 \
         WHERE conversation_id = ?1 AND user_id = ?2",
    )
    .bind(sql_id(message.conversation_id.get()))
    .bind(sql_id(message.sender.get()))
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

/// The messages of the JSON array `?1` of `[sender, client_id]` pairs: one
/// lookup of index `messages_client` per pair (a row-value `IN` would only
/// use the index's first column and read every message of each sender).
pub(super) const SELECT_BY_CLIENT_IDS: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM json_each(?1) j CROSS JOIN messages \
     ON messages.sender_id = j.value ->> 0 AND messages.client_id = j.value ->> 1"
);

/// The counters of the conversations of the JSON array `?1` of
/// `[conversation, user]` pairs in which the user is a current member.
pub(super) const SELECT_SENDERS: &str = "\
    SELECT c.id, m.user_id, c.last_seq, c.version \
    FROM json_each(?1) j \
    CROSS JOIN conversations c ON c.id = j.value ->> 0 \
    JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = j.value ->> 1 \
    WHERE m.left_version IS NULL";

/// Which of the message ids of the JSON array `?1` exist.
pub(super) const SELECT_EXISTING_IDS: &str =
    "SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?1))";

/// Inserts the messages of the JSON array `?1` of
/// `[id, conversation, seq, version, sender, client_id, body, reply_to, created_at]`.
pub(super) const INSERT_MESSAGES: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
        value ->> 6, value ->> 7, value ->> 8 \
    FROM json_each(?1)";

/// The change-log entries of the messages [`INSERT_MESSAGES`] inserts.
pub(super) const LOG_MESSAGES: &str = "\
    INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
    SELECT value ->> 1, value ->> 3, 'message_created', value ->> 4, value ->> 0 \
    FROM json_each(?1)";

/// Sets the counters of the JSON array `?1` of
/// `[conversation, last_seq, version, last_activity]`.
pub(super) const UPDATE_COUNTERS: &str = "\
    UPDATE conversations SET last_seq = j.value ->> 1, version = j.value ->> 2, \
        last_activity = j.value ->> 3 \
    FROM json_each(?1) j WHERE conversations.id = j.value ->> 0";

/// Sets the read positions of the JSON array `?1` of `[conversation, user, seq]`.
pub(super) const UPDATE_READ: &str = "\
    UPDATE conversation_members SET last_read_seq = j.value ->> 2 \
    FROM json_each(?1) j \
    WHERE conversation_members.conversation_id = j.value ->> 0 \
        AND conversation_members.user_id = j.value ->> 1";

/// Inside a write transaction: the appends of a batch, in order, with the
/// outcome [`append`] would give each if they ran one after the other, in a
/// fixed number of statements (three reads, then three set-based writes)
/// instead of four per message. The checks of [`append`] (idempotency,
/// membership, and the `reply_to` foreign key) are made in Rust against what
/// the reads returned and what the earlier appends of the batch stored.
///
/// `Err` if a statement failed (a constraint these checks do not foresee,
/// such as a reused message id): statements may have run, and the caller
/// rolls back and falls back to [`append`] one message at a time.
pub(crate) async fn append_many(
    conn: &mut SqliteConnection,
    records: &[&NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    use std::collections::{HashMap, HashSet};

    let json = |value: &serde_json::Value| value.to_string();
    let keys: Vec<(i64, &str)> = records
        .iter()
        .map(|r| (sql_id(r.sender.get()), r.client_id.as_str()))
        .collect();
    let rows: Vec<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_IDS)
        .bind(json(&serde_json::json!(keys)))
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
    let pairs: Vec<(i64, i64)> = records
        .iter()
        .map(|r| (sql_id(r.conversation_id.get()), sql_id(r.sender.get())))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let senders: Vec<(i64, i64, i64, i64)> = sqlx::query_as(SELECT_SENDERS)
        .bind(json(&serde_json::json!(pairs)))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let members: HashSet<(i64, i64)> = senders.iter().map(|s| (s.0, s.1)).collect();
    // conversation -> (last_seq, version, last_activity)
    let mut counters: HashMap<i64, (i64, i64, i64)> =
        senders.iter().map(|s| (s.0, (s.2, s.3, 0))).collect();
    let replies: Vec<i64> = records
        .iter()
        .filter_map(|r| r.reply_to.map(|id| sql_id(id.get())))
        .collect();
    let mut known: HashSet<i64> = if replies.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(SELECT_EXISTING_IDS)
            .bind(json(&serde_json::json!(replies)))
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
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut buckets = if limited.is_empty() {
        HashMap::new()
    } else {
        load_buckets(conn, &limited).await?
    };
    let mut taken: Vec<i64> = Vec::new();

    let mut outcomes = Vec::with_capacity(records.len());
    let mut inserts = Vec::new();
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
                "FOREIGN KEY constraint failed: reply_to names no message",
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
        inserts.push(serde_json::json!([
            sql_id(record.id.get()),
            conversation,
            seq,
            version,
            sender,
            record.client_id,
            record.body,
            reply_to,
            record.created_at.as_millis(),
        ]));
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
    if inserts.is_empty() {
        return Ok(outcomes);
    }
    let taken: Vec<(i64, Bucket)> = taken
        .into_iter()
        .filter_map(|sender| buckets.get(&sender).map(|b| (sender, *b)))
        .collect();
    store_buckets(conn, &taken).await?;
    let inserts = json(&serde_json::Value::Array(inserts));
    for sql in [INSERT_MESSAGES, LOG_MESSAGES] {
        sqlx::query(sql)
            .bind(&inserts)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let counters: Vec<(i64, i64, i64, i64)> = touched
        .iter()
        .filter_map(|c| {
            counters
                .get(c)
                .map(|&(seq, version, at)| (*c, seq, version, at))
        })
        .collect();
    sqlx::query(UPDATE_COUNTERS)
        .bind(json(&serde_json::json!(counters)))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let read: Vec<(i64, i64, i64)> = read.into_iter().map(|((c, u), s)| (c, u, s)).collect();
    sqlx::query(UPDATE_READ)
        .bind(json(&serde_json::json!(read)))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(outcomes)
}

/// [`ChatStore::append_message`].
pub(super) async fn append_message(
    store: &SqliteStore,
    message: &NewMessageRecord,
) -> Result<Appended> {
    let outcome = store.append_grouped(std::slice::from_ref(message)).await;
    outcome
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::storage("the SQLite writer gave no outcome")))
}

/// [`ChatStore::append_messages`].
pub(super) async fn append_messages(
    store: &SqliteStore,
    messages: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    Ok(store.append_grouped(messages).await)
}

/// [`ChatStore::message_by_client_id`].
pub(super) async fn message_by_client_id(
    store: &SqliteStore,
    sender: UserId,
    client_id: &str,
) -> Result<Option<Message>> {
    let row: Option<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_ID)
        .bind(sql_id(sender.get()))
        .bind(client_id)
        .fetch_optional(store.read())
        .await
        .map_err(db)?;
    row.map(Message::try_from).transpose()
}

/// Inside a write transaction: the stored send-rate buckets of `senders`.
async fn load_buckets(
    conn: &mut SqliteConnection,
    senders: &[i64],
) -> Result<std::collections::HashMap<i64, Bucket>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT user_id, milli_tokens, at FROM send_buckets \
         WHERE user_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::json!(senders).to_string())
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(user, tokens, at)| {
            let bucket = Bucket {
                milli_tokens: raw_count(tokens),
                at: Timestamp::from_millis(at),
            };
            (user, bucket)
        })
        .collect())
}

/// Inside a write transaction: stores the buckets a batch took from.
async fn store_buckets(conn: &mut SqliteConnection, buckets: &[(i64, Bucket)]) -> Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i64, i64, i64)> = buckets
        .iter()
        .map(|(user, b)| (*user, sql_count(b.milli_tokens), b.at.as_millis()))
        .collect();
    sqlx::query(
        "INSERT INTO send_buckets (user_id, milli_tokens, at) \
         SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) WHERE true \
         ON CONFLICT (user_id) DO UPDATE SET milli_tokens = excluded.milli_tokens, at = excluded.at",
    )
    .bind(serde_json::json!(rows).to_string())
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
}
