//! [`ChatStore`] for [`SqliteStore`]: conversations, members, messages,
//! reactions and read positions.
//!
//! Every change runs in one write transaction that first takes the
//! conversation's next `version` (and, for a message, the next `seq`) with
//! `UPDATE conversations ... RETURNING`, usually guarded by an `EXISTS` that
//! re-checks the change's precondition (the sender is a current member, the
//! message is not deleted) inside the transaction. Write transactions never
//! overlap, so both counters stay gap-free however many tasks write at once.
//!
//! A message is always read together with its reactions, aggregated into a
//! JSON array by a correlated subquery in the same statement
//! (`message_columns!`): a page of history, a list of changes or a
//! conversation list is one statement, not one query per message.

use async_trait::async_trait;
use kith_core::page::{ActivityKey, Window};
use kith_core::{
    Appended, Change, ChatStore, Clash, Conversation, ConversationId, ConversationKind,
    ConversationSummary, Entity, Error, Member, MemberRole, Message, MessageId, MessageReaction,
    NewMessageRecord, ReactionKind, Result, SeqRange, Timestamp, UnreadCounts, UnreadEntry,
    Updated, UserId,
};
use sqlx::SqliteConnection;

use crate::rows::{
    cursor_id, raw_count, raw_id, sql_count, sql_id, sql_limit, ConversationRow, MemberChangeRow,
    MemberRow, MessageRow, SummaryRow,
};
use crate::{db, unique_violation, SqliteStore};

/// The columns [`MessageRow`] decodes, read from the `messages` table (which
/// the statement must not alias: SQLite's `UPDATE ... RETURNING` cannot).
macro_rules! message_columns {
    () => {
        "messages.id, messages.conversation_id, messages.seq, messages.version, \
         messages.sender_id, messages.client_id, messages.body, messages.reply_to, \
         messages.created_at, messages.edited_at, messages.deleted_at, \
         (SELECT json_group_array(json_array(r.user_id, r.kind)) FROM message_reactions r \
          WHERE r.message_id = messages.id) AS reactions"
    };
}

/// `SELECT <message columns> FROM messages <rest>`.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!("SELECT ", message_columns!(), " FROM messages ", $rest)
    };
}

const SELECT_CONVERSATION: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE id = ?1";

const SELECT_DIRECT: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE direct_low = ?1 AND direct_high = ?2";

/// The current members in user order, straight from the primary key.
const SELECT_MEMBERS: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = ?1 AND left_version IS NULL ORDER BY user_id";

const SELECT_MEMBER: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL";

/// Inserts (or, for a former member, reinstates) the members of the JSON
/// array `?2` of `[user_id, role, joined_at, last_read_seq]` under version
/// `?3`. A current member is left alone, so it does not count as a change.
const UPSERT_MEMBERS: &str = "\
    INSERT INTO conversation_members \
        (conversation_id, user_id, role, joined_at, last_read_seq, left_version, version) \
    SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, NULL, ?3 \
    FROM json_each(?2) WHERE true \
    ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
        role = excluded.role, joined_at = excluded.joined_at, \
        last_read_seq = excluded.last_read_seq, left_version = NULL, version = excluded.version \
    WHERE conversation_members.left_version IS NOT NULL";

/// Takes the next version.
const BUMP: &str = "UPDATE conversations SET version = version + 1 WHERE id = ?1 RETURNING version";

/// Takes the next version if `?2` is a current member.
const BUMP_IF_MEMBER: &str = "\
    UPDATE conversations SET version = version + 1 \
    WHERE id = ?1 AND EXISTS (SELECT 1 FROM conversation_members \
        WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL) \
    RETURNING version";

/// Takes the next version if `?2` is a message of the conversation that is
/// not deleted.
const BUMP_IF_LIVE_MESSAGE: &str = "\
    UPDATE conversations SET version = version + 1 \
    WHERE id = ?1 AND EXISTS (SELECT 1 FROM messages \
        WHERE id = ?2 AND conversation_id = ?1 AND deleted_at IS NULL) \
    RETURNING version";

/// Takes the next seq and version for a message from `?2` sent at `?3`, if
/// `?2` is a current member.
const BUMP_FOR_MESSAGE: &str = "\
    UPDATE conversations SET last_seq = last_seq + 1, version = version + 1, last_activity = ?3 \
    WHERE id = ?1 AND EXISTS (SELECT 1 FROM conversation_members \
        WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL) \
    RETURNING last_seq, version";

const INSERT_MESSAGE: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const SELECT_MESSAGE: &str = select_messages!("WHERE id = ?2 AND conversation_id = ?1");

const SELECT_BY_CLIENT_ID: &str = select_messages!("WHERE sender_id = ?1 AND client_id = ?2");

/// The newest `?2` messages, newest first.
const LATEST: &str = select_messages!("WHERE conversation_id = ?1 ORDER BY seq DESC LIMIT ?2");
/// The `?2` messages before seq `?3`, newest first.
const BEFORE: &str =
    select_messages!("WHERE conversation_id = ?1 AND seq < ?3 ORDER BY seq DESC LIMIT ?2");
/// The `?2` messages after seq `?3`, oldest first.
const AFTER: &str =
    select_messages!("WHERE conversation_id = ?1 AND seq > ?3 ORDER BY seq LIMIT ?2");

/// Messages whose latest change is in `(?2, ?3]`, in version order.
const MESSAGE_CHANGES: &str = select_messages!(
    "WHERE conversation_id = ?1 AND version > ?2 AND version <= ?3 ORDER BY version"
);

/// Members whose latest membership change is in `(?2, ?3]`.
const MEMBER_CHANGES: &str = "\
    SELECT user_id, role, joined_at, last_read_seq, left_version IS NOT NULL AS has_left, version \
    FROM conversation_members \
    WHERE conversation_id = ?1 AND version > ?2 AND version <= ?3 ORDER BY version, user_id";

/// The title, if it was last set in `(?2, ?3]`.
const TITLE_CHANGE: &str = "\
    SELECT title, title_version FROM conversations \
    WHERE id = ?1 AND title IS NOT NULL AND title_version > ?2 AND title_version <= ?3";

/// A user's conversation list. The inner query walks the user's current
/// memberships (index `conversation_members_user`), joins each conversation
/// by primary key and keeps the newest `?2` after the cursor (a bounded
/// sort, see the migration); only those rows then get their newest message
/// and its reactions.
macro_rules! conversation_list {
    ($after:literal) => {
        concat!(
            "SELECT p.id, p.kind, p.title, p.created_by, p.created_at, p.last_seq, p.version, ",
            "p.last_activity, p.last_read_seq, ",
            "messages.id AS m_id, messages.conversation_id AS m_conversation_id, ",
            "messages.seq AS m_seq, messages.version AS m_version, ",
            "messages.sender_id AS m_sender_id, messages.client_id AS m_client_id, ",
            "messages.body AS m_body, messages.reply_to AS m_reply_to, ",
            "messages.created_at AS m_created_at, messages.edited_at AS m_edited_at, ",
            "messages.deleted_at AS m_deleted_at, ",
            "CASE WHEN messages.id IS NOT NULL THEN ",
            "(SELECT json_group_array(json_array(r.user_id, r.kind)) FROM message_reactions r ",
            "WHERE r.message_id = messages.id) END AS m_reactions ",
            "FROM (",
            "SELECT c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq, c.version, ",
            "c.last_activity, mb.last_read_seq ",
            "FROM conversation_members mb JOIN conversations c ON c.id = mb.conversation_id ",
            "WHERE mb.user_id = ?1 AND mb.left_version IS NULL ",
            $after,
            "ORDER BY c.last_activity DESC, c.id DESC LIMIT ?2",
            ") p ",
            "LEFT JOIN messages ON messages.conversation_id = p.id AND messages.seq = p.last_seq ",
            "ORDER BY p.last_activity DESC, p.id DESC"
        )
    };
}

const CONVERSATIONS_FIRST: &str = conversation_list!("");
const CONVERSATIONS_AFTER: &str = conversation_list!("AND (c.last_activity, c.id) < (?3, ?4) ");

/// The user's conversations with unread messages, in id order (index
/// `conversation_members_user`, then the conversation by primary key).
const UNREAD: &str = "\
    SELECT mb.conversation_id, c.last_seq - mb.last_read_seq AS unread \
    FROM conversation_members mb JOIN conversations c ON c.id = mb.conversation_id \
    WHERE mb.user_id = ?1 AND mb.left_version IS NULL AND c.last_seq > mb.last_read_seq \
    ORDER BY mb.conversation_id";

/// Inside a write transaction: takes the conversation's next version; `None`
/// if there is no such conversation.
async fn next_version(conn: &mut SqliteConnection, id: ConversationId) -> Result<Option<i64>> {
    sqlx::query_scalar(BUMP)
        .bind(sql_id(id.get()))
        .fetch_optional(conn)
        .await
        .map_err(db)
}

/// Inside a write transaction: takes the conversation's next version with
/// `guarded`, a `BUMP_IF_*` statement binding `?1` the conversation and `?2`
/// `arg`; `None` if its guard does not hold (or there is no such
/// conversation).
async fn next_version_if(
    conn: &mut SqliteConnection,
    guarded: &'static str,
    id: ConversationId,
    arg: i64,
) -> Result<Option<i64>> {
    sqlx::query_scalar(guarded)
        .bind(sql_id(id.get()))
        .bind(arg)
        .fetch_optional(conn)
        .await
        .map_err(db)
}

/// Inside a write transaction: a message of the conversation, deleted or not.
async fn load_message(
    conn: &mut SqliteConnection,
    id: ConversationId,
    message: MessageId,
) -> Result<Option<Message>> {
    let row: Option<MessageRow> = sqlx::query_as(SELECT_MESSAGE)
        .bind(sql_id(id.get()))
        .bind(sql_id(message.get()))
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(Message::try_from).transpose()
}

/// Members as the JSON array [`UPSERT_MEMBERS`] reads.
fn members_json(members: &[Member]) -> Result<String> {
    let rows: Vec<(i64, &str, i64, i64)> = members
        .iter()
        .map(|m| {
            (
                sql_id(m.user_id.get()),
                m.role.as_str(),
                m.joined_at.as_millis(),
                sql_count(m.last_read_seq),
            )
        })
        .collect();
    serde_json::to_string(&rows).map_err(Error::storage)
}

fn messages_from(rows: Vec<MessageRow>) -> Result<Vec<Message>> {
    rows.into_iter().map(Message::try_from).collect()
}

fn members_from(rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    rows.into_iter().map(Member::try_from).collect()
}

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
const SELECT_BY_CLIENT_IDS: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM json_each(?1) j CROSS JOIN messages \
     ON messages.sender_id = j.value ->> 0 AND messages.client_id = j.value ->> 1"
);

/// The counters of the conversations of the JSON array `?1` of
/// `[conversation, user]` pairs in which the user is a current member.
const SELECT_SENDERS: &str = "\
    SELECT c.id, m.user_id, c.last_seq, c.version \
    FROM json_each(?1) j \
    CROSS JOIN conversations c ON c.id = j.value ->> 0 \
    JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = j.value ->> 1 \
    WHERE m.left_version IS NULL";

/// Which of the message ids of the JSON array `?1` exist.
const SELECT_EXISTING_IDS: &str =
    "SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?1))";

/// Inserts the messages of the JSON array `?1` of
/// `[id, conversation, seq, version, sender, client_id, body, reply_to, created_at]`.
const INSERT_MESSAGES: &str = "\
    INSERT INTO messages \
        (id, conversation_id, seq, version, sender_id, client_id, body, reply_to, created_at) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
        value ->> 6, value ->> 7, value ->> 8 \
    FROM json_each(?1)";

/// Sets the counters of the JSON array `?1` of
/// `[conversation, last_seq, version, last_activity]`.
const UPDATE_COUNTERS: &str = "\
    UPDATE conversations SET last_seq = j.value ->> 1, version = j.value ->> 2, \
        last_activity = j.value ->> 3 \
    FROM json_each(?1) j WHERE conversations.id = j.value ->> 0";

/// Sets the read positions of the JSON array `?1` of `[conversation, user, seq]`.
const UPDATE_READ: &str = "\
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
    sqlx::query(INSERT_MESSAGES)
        .bind(json(&serde_json::Value::Array(inserts)))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
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

#[async_trait]
impl ChatStore for SqliteStore {
    /// As the trait says. A direct conversation must have exactly two
    /// distinct members ([`Error::InvalidInput`] `members` otherwise); every
    /// member and the creator must be accounts (a storage error otherwise).
    /// The conversation is stored with `last_seq` and `version` 0, whatever
    /// `conversation` says.
    async fn create_conversation(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<()> {
        let pair = match (conversation.kind, members) {
            (ConversationKind::Direct, [a, b]) if a.user_id != b.user_id => {
                let (a, b) = (sql_id(a.user_id.get()), sql_id(b.user_id.get()));
                Some((a.min(b), a.max(b)))
            }
            (ConversationKind::Direct, _) => {
                return Err(Error::invalid(
                    "members",
                    "a direct conversation has exactly two members",
                ))
            }
            (ConversationKind::Group, _) => None,
        };
        let members = members_json(members)?;
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, kind, title, title_version, created_by, created_at, \
                 last_seq, version, last_activity, direct_low, direct_high) \
             VALUES (?1, ?2, ?3, 0, ?4, ?5, 0, 0, ?6, ?7, ?8)",
        )
        .bind(sql_id(conversation.id.get()))
        .bind(conversation.kind.as_str())
        .bind(conversation.title.as_deref())
        .bind(sql_id(conversation.created_by.get()))
        .bind(conversation.created_at.as_millis())
        .bind(conversation.last_activity.as_millis())
        .bind(pair.map(|p| p.0))
        .bind(pair.map(|p| p.1))
        .execute(&mut *tx)
        .await;
        if let Err(err) = inserted {
            return Err(match unique_violation(&err) {
                Some(m) if m.contains("conversations.direct_low") => {
                    Error::Conflict(Clash::DirectExists)
                }
                _ => db(err),
            });
        }
        sqlx::query(UPSERT_MEMBERS)
            .bind(sql_id(conversation.id.get()))
            .bind(members)
            .bind(0_i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> Result<Option<Conversation>> {
        let (a, b) = (sql_id(a.get()), sql_id(b.get()));
        let row: Option<ConversationRow> = sqlx::query_as(SELECT_DIRECT)
            .bind(a.min(b))
            .bind(a.max(b))
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(Conversation::try_from).transpose()
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        let row: Option<ConversationRow> = sqlx::query_as(SELECT_CONVERSATION)
            .bind(sql_id(id.get()))
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(Conversation::try_from).transpose()
    }

    async fn members(&self, id: ConversationId) -> Result<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(SELECT_MEMBERS)
            .bind(sql_id(id.get()))
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        members_from(rows)
    }

    async fn member(&self, id: ConversationId, user: UserId) -> Result<Option<Member>> {
        let row: Option<MemberRow> = sqlx::query_as(SELECT_MEMBER)
            .bind(sql_id(id.get()))
            .bind(sql_id(user.get()))
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(Member::try_from).transpose()
    }

    /// As the trait says; [`Error::NotFound`] ([`Entity::Conversation`]) if
    /// there is no such conversation, and [`Error::InvalidInput`]
    /// (`members`), with nothing changed, if one of `members` is a current
    /// member (or listed twice).
    async fn add_members(&self, id: ConversationId, members: &[Member]) -> Result<u64> {
        let json = members_json(members)?;
        let mut tx = self.write().await?;
        let version = next_version(&mut tx, id)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        let added = sqlx::query(UPSERT_MEMBERS)
            .bind(sql_id(id.get()))
            .bind(json)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if added != members.len() as u64 {
            // Dropping the transaction rolls it back, version included.
            return Err(Error::invalid("members", "already a current member"));
        }
        tx.commit().await.map_err(db)?;
        Ok(raw_count(version))
    }

    /// As the trait says; [`Error::InvalidInput`] (`promote`), with nothing
    /// changed, if `promote` is not a current member other than `user`.
    async fn remove_member(
        &self,
        id: ConversationId,
        user: UserId,
        promote: Option<UserId>,
    ) -> Result<Option<u64>> {
        let mut tx = self.write().await?;
        let Some(version) =
            next_version_if(&mut tx, BUMP_IF_MEMBER, id, sql_id(user.get())).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE conversation_members SET left_version = ?3, version = ?3 \
             WHERE conversation_id = ?1 AND user_id = ?2",
        )
        .bind(sql_id(id.get()))
        .bind(sql_id(user.get()))
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(promote) = promote {
            let promoted = sqlx::query(
                "UPDATE conversation_members SET role = 'admin', version = ?3 \
                 WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL",
            )
            .bind(sql_id(id.get()))
            .bind(sql_id(promote.get()))
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if promoted == 0 {
                return Err(Error::invalid("promote", "not a current member"));
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(Some(raw_count(version)))
    }

    async fn set_role(
        &self,
        id: ConversationId,
        user: UserId,
        role: MemberRole,
    ) -> Result<Option<u64>> {
        let mut tx = self.write().await?;
        let Some(version) =
            next_version_if(&mut tx, BUMP_IF_MEMBER, id, sql_id(user.get())).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE conversation_members SET role = ?3, version = ?4 \
             WHERE conversation_id = ?1 AND user_id = ?2",
        )
        .bind(sql_id(id.get()))
        .bind(sql_id(user.get()))
        .bind(role.as_str())
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(raw_count(version)))
    }

    /// As the trait says; [`Error::NotFound`] ([`Entity::Conversation`]) if
    /// there is no such conversation. Direct conversations have no title: a
    /// storage error (the schema's check) if one is renamed.
    async fn rename(&self, id: ConversationId, title: &str) -> Result<u64> {
        let mut tx = self.write().await?;
        // The right-hand sides see the row before the update: title_version
        // becomes the new version.
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE conversations SET version = version + 1, title = ?2, \
                 title_version = version + 1 \
             WHERE id = ?1 RETURNING version",
        )
        .bind(sql_id(id.get()))
        .bind(title)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let version = version.ok_or(Error::NotFound(Entity::Conversation))?;
        tx.commit().await.map_err(db)?;
        Ok(raw_count(version))
    }

    /// As the trait says. Appends are group-committed: see `append.rs`.
    async fn append_message(&self, message: &NewMessageRecord) -> Result<Appended> {
        let outcome = self.append_grouped(std::slice::from_ref(message)).await;
        outcome
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(Error::storage("the SQLite writer gave no outcome")))
    }

    /// As the trait says: the messages are queued together, so they are
    /// committed together (unless the batch limit splits them).
    async fn append_messages(
        &self,
        messages: &[NewMessageRecord],
    ) -> Result<Vec<Result<Appended>>> {
        Ok(self.append_grouped(messages).await)
    }

    async fn message(&self, id: ConversationId, message: MessageId) -> Result<Option<Message>> {
        let row: Option<MessageRow> = sqlx::query_as(SELECT_MESSAGE)
            .bind(sql_id(id.get()))
            .bind(sql_id(message.get()))
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(Message::try_from).transpose()
    }

    async fn message_by_client_id(
        &self,
        sender: UserId,
        client_id: &str,
    ) -> Result<Option<Message>> {
        let row: Option<MessageRow> = sqlx::query_as(SELECT_BY_CLIENT_ID)
            .bind(sql_id(sender.get()))
            .bind(client_id)
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(Message::try_from).transpose()
    }

    async fn edit_message(
        &self,
        id: ConversationId,
        message: MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Option<Message>> {
        let mut tx = self.write().await?;
        let Some(version) =
            next_version_if(&mut tx, BUMP_IF_LIVE_MESSAGE, id, sql_id(message.get())).await?
        else {
            return Ok(None);
        };
        let row: MessageRow = sqlx::query_as(concat!(
            "UPDATE messages SET body = ?2, edited_at = ?3, version = ?4 WHERE id = ?1 ",
            "RETURNING ",
            message_columns!()
        ))
        .bind(sql_id(message.get()))
        .bind(body)
        .bind(at.as_millis())
        .bind(version)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.try_into().map(Some)
    }

    async fn delete_message(
        &self,
        id: ConversationId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<Option<Updated>> {
        let mut tx = self.write().await?;
        let Some(current) = load_message(&mut tx, id, message).await? else {
            return Ok(None);
        };
        if current.deleted_at.is_some() {
            return Ok(Some(Updated {
                message: current,
                changed: false,
            }));
        }
        let version = next_version(&mut tx, id)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        sqlx::query("DELETE FROM message_reactions WHERE message_id = ?1")
            .bind(sql_id(message.get()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("UPDATE messages SET body = NULL, deleted_at = ?2, version = ?3 WHERE id = ?1")
            .bind(sql_id(message.get()))
            .bind(at.as_millis())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(Updated {
            message: Message {
                version: raw_count(version),
                body: None,
                reactions: Vec::new(),
                deleted_at: Some(at),
                ..current
            },
            changed: true,
        }))
    }

    async fn set_reaction(
        &self,
        id: ConversationId,
        message: MessageId,
        user: UserId,
        kind: Option<ReactionKind>,
    ) -> Result<Option<Updated>> {
        let mut tx = self.write().await?;
        let Some(mut current) = load_message(&mut tx, id, message).await? else {
            return Ok(None);
        };
        if current.deleted_at.is_some() {
            return Ok(None);
        }
        let mine = current.reactions.iter().position(|r| r.user_id == user);
        if mine.map(|i| current.reactions[i].kind) == kind {
            return Ok(Some(Updated {
                message: current,
                changed: false,
            }));
        }
        let version = next_version(&mut tx, id)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        let (msg, usr) = (sql_id(message.get()), sql_id(user.get()));
        match kind {
            Some(kind) => sqlx::query(
                "INSERT INTO message_reactions (message_id, user_id, kind) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (message_id, user_id) DO UPDATE SET kind = excluded.kind",
            )
            .bind(msg)
            .bind(usr)
            .bind(kind.as_str()),
            None => {
                sqlx::query("DELETE FROM message_reactions WHERE message_id = ?1 AND user_id = ?2")
                    .bind(msg)
                    .bind(usr)
            }
        }
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE messages SET version = ?2 WHERE id = ?1")
            .bind(msg)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        if let Some(i) = mine {
            current.reactions.remove(i);
        }
        if let Some(kind) = kind {
            let at = current.reactions.partition_point(|r| r.user_id < user);
            current.reactions.insert(
                at,
                MessageReaction {
                    user_id: user,
                    kind,
                },
            );
        }
        current.version = raw_count(version);
        Ok(Some(Updated {
            message: current,
            changed: true,
        }))
    }

    async fn messages(&self, id: ConversationId, range: SeqRange) -> Result<Vec<Message>> {
        let conversation = sql_id(id.get());
        let (query, newest_first) = match range {
            SeqRange::Latest { limit } => (
                sqlx::query_as(LATEST)
                    .bind(conversation)
                    .bind(sql_limit(limit)),
                true,
            ),
            SeqRange::Before { seq, limit } => (
                sqlx::query_as(BEFORE)
                    .bind(conversation)
                    .bind(sql_limit(limit))
                    .bind(cursor_id(seq)),
                true,
            ),
            SeqRange::After { seq, limit } => (
                sqlx::query_as(AFTER)
                    .bind(conversation)
                    .bind(sql_limit(limit))
                    .bind(cursor_id(seq)),
                false,
            ),
        };
        let rows: Vec<MessageRow> = query.fetch_all(self.read()).await.map_err(db)?;
        let mut messages = messages_from(rows)?;
        if newest_first {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn mark_read(&self, id: ConversationId, user: UserId, seq: u64) -> Result<Option<u64>> {
        let (conversation, member) = (sql_id(id.get()), sql_id(user.get()));
        let mut tx = self.write().await?;
        // Only a position that moves is written, so re-reading changes
        // nothing on disk.
        let raised: Option<i64> = sqlx::query_scalar(
            "UPDATE conversation_members SET last_read_seq = ?3 \
             WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL \
                 AND last_read_seq < ?3 \
             RETURNING last_read_seq",
        )
        .bind(conversation)
        .bind(member)
        .bind(cursor_id(seq))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let now = match raised {
            Some(now) => Some(now),
            None => sqlx::query_scalar(
                "SELECT last_read_seq FROM conversation_members \
                 WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL",
            )
            .bind(conversation)
            .bind(member)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?,
        };
        tx.commit().await.map_err(db)?;
        Ok(now.map(raw_count))
    }

    async fn conversations(
        &self,
        user: UserId,
        window: Window<ActivityKey>,
    ) -> Result<Vec<ConversationSummary>> {
        let owner = sql_id(user.get());
        let limit = sql_limit(window.limit);
        let query = match window.after {
            None => sqlx::query_as(CONVERSATIONS_FIRST).bind(owner).bind(limit),
            Some(key) => sqlx::query_as(CONVERSATIONS_AFTER)
                .bind(owner)
                .bind(limit)
                .bind(key.last_activity.as_millis())
                .bind(cursor_id(key.id.get())),
        };
        let rows: Vec<SummaryRow> = query.fetch_all(self.read()).await.map_err(db)?;
        rows.into_iter()
            .map(|row| {
                let last_read_seq = raw_count(row.last_read_seq);
                let conversation = Conversation::try_from(row.conversation)?;
                Ok(ConversationSummary {
                    last_message: row.last_message.try_into()?,
                    last_read_seq,
                    unread: conversation.last_seq.saturating_sub(last_read_seq),
                    conversation,
                })
            })
            .collect()
    }

    async fn unread_counts(&self, user: UserId) -> Result<UnreadCounts> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(UNREAD)
            .bind(sql_id(user.get()))
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        let conversations: Vec<UnreadEntry> = rows
            .into_iter()
            .map(|(id, unread)| UnreadEntry {
                conversation_id: ConversationId::new(raw_id(id)),
                unread: raw_count(unread),
            })
            .collect();
        Ok(UnreadCounts {
            total: conversations.iter().map(|e| e.unread).sum(),
            conversations,
        })
    }

    /// As the trait says. The three kinds of change are read in one read
    /// transaction, so they come from one snapshot of the conversation.
    async fn changes(&self, id: ConversationId, since: u64, until: u64) -> Result<Vec<Change>> {
        let (conversation, since, until) = (sql_id(id.get()), cursor_id(since), cursor_id(until));
        let mut tx = self.read().begin().await.map_err(db)?;
        let messages: Vec<MessageRow> = sqlx::query_as(MESSAGE_CHANGES)
            .bind(conversation)
            .bind(since)
            .bind(until)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let members: Vec<MemberChangeRow> = sqlx::query_as(MEMBER_CHANGES)
            .bind(conversation)
            .bind(since)
            .bind(until)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let title: Option<(String, i64)> = sqlx::query_as(TITLE_CHANGE)
            .bind(conversation)
            .bind(since)
            .bind(until)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;

        let mut changes = Vec::with_capacity(messages.len() + members.len() + 1);
        for row in messages {
            changes.push(Change::Message {
                message: row.try_into()?,
            });
        }
        for row in members {
            changes.push(Change::Member {
                member: row.member.try_into()?,
                left: row.has_left,
                version: raw_count(row.version),
            });
        }
        if let Some((title, version)) = title {
            changes.push(Change::Renamed {
                title,
                version: raw_count(version),
            });
        }
        // Each part is in version order (members by user id within a
        // version) and no two parts share a version; a stable sort merges
        // them.
        changes.sort_by_key(Change::version);
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.read())
                .await
                .unwrap_or_else(|e| panic!("planning {sql}: {e}"));
        rows.into_iter().map(|row| row.3).collect()
    }

    /// Every hot statement is served by an index: no step scans a table, and
    /// none sorts except the bounded top-N sort of the conversation list
    /// (see the migration for why) and the re-sort of its page.
    #[tokio::test]
    async fn hot_statements_use_indexes_without_sorting() {
        let store = SqliteStore::memory().await.unwrap();
        let no_sort = [
            SELECT_CONVERSATION,
            SELECT_DIRECT,
            SELECT_MEMBERS,
            SELECT_MEMBER,
            BUMP,
            BUMP_IF_MEMBER,
            BUMP_IF_LIVE_MESSAGE,
            BUMP_FOR_MESSAGE,
            SELECT_MESSAGE,
            SELECT_BY_CLIENT_ID,
            LATEST,
            BEFORE,
            AFTER,
            MESSAGE_CHANGES,
            MEMBER_CHANGES,
            TITLE_CHANGE,
            UNREAD,
        ];
        for sql in no_sort {
            let steps = plan(&store, sql).await;
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN") && !step.contains("TEMP B-TREE"),
                    "{sql}\n{steps:#?}"
                );
            }
        }
        for sql in [CONVERSATIONS_FIRST, CONVERSATIONS_AFTER] {
            let steps = plan(&store, sql).await;
            let sorts = steps.iter().filter(|s| s.contains("TEMP B-TREE")).count();
            assert_eq!(sorts, 2, "{sql}\n{steps:#?}");
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("conversation_members_user")),
                "{steps:#?}"
            );
            let scans: Vec<_> = steps.iter().filter(|s| s.starts_with("SCAN")).collect();
            // Only the materialised page is scanned.
            assert_eq!(scans, ["SCAN p"], "{sql}\n{steps:#?}");
        }
    }
}
