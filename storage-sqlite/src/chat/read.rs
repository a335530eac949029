//! What a member reads across conversations: read positions, unread
//! counts, the conversation list, and the changes a client resumes from.

use super::*;

/// Messages whose latest change is in `(?2, ?3]`, in version order.
pub(super) const MESSAGE_CHANGES: &str = select_messages!(
    "WHERE conversation_id = ?1 AND version > ?2 AND version <= ?3 ORDER BY version"
);

/// Members whose latest membership change is in `(?2, ?3]`.
pub(super) const MEMBER_CHANGES: &str = "\
    SELECT user_id, role, joined_at, last_read_seq, left_version IS NOT NULL AS has_left, version \
    FROM conversation_members \
    WHERE conversation_id = ?1 AND version > ?2 AND version <= ?3 ORDER BY version, user_id";

/// The title, if it was last set in `(?2, ?3]`.
pub(super) const TITLE_CHANGE: &str = "\
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

pub(super) const CONVERSATIONS_FIRST: &str = conversation_list!("");

pub(super) const CONVERSATIONS_AFTER: &str =
    conversation_list!("AND (c.last_activity, c.id) < (?3, ?4) ");

/// The user's conversations with unread messages, in id order (index
/// `conversation_members_user`, then the conversation by primary key).
pub(super) const UNREAD: &str = "\
    SELECT mb.conversation_id, c.last_seq - mb.last_read_seq AS unread \
    FROM conversation_members mb JOIN conversations c ON c.id = mb.conversation_id \
    WHERE mb.user_id = ?1 AND mb.left_version IS NULL AND c.last_seq > mb.last_read_seq \
    ORDER BY mb.conversation_id";

/// [`ChatStore::mark_read`].
pub(super) async fn mark_read(
    store: &SqliteStore,
    id: ConversationId,
    user: UserId,
    seq: u64,
) -> Result<Option<u64>> {
    let (conversation, member) = (sql_id(id.get()), sql_id(user.get()));
    let mut tx = store.write().await?;
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

/// [`ChatStore::conversations`].
pub(super) async fn conversations(
    store: &SqliteStore,
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
    let rows: Vec<SummaryRow> = query.fetch_all(store.read()).await.map_err(db)?;
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

/// [`ChatStore::unread_counts`].
pub(super) async fn unread_counts(store: &SqliteStore, user: UserId) -> Result<UnreadCounts> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(UNREAD)
        .bind(sql_id(user.get()))
        .fetch_all(store.read())
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

/// [`ChatStore::changes`].
pub(super) async fn changes(
    store: &SqliteStore,
    id: ConversationId,
    since: u64,
    until: u64,
) -> Result<Vec<Change>> {
    let (conversation, since, until) = (sql_id(id.get()), cursor_id(since), cursor_id(until));
    let mut tx = store.read().begin().await.map_err(db)?;
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

/// A conversation's change-log entries after a version, in version order
/// (the primary key).
pub(super) const CHANGE_LOG: &str = "\
    SELECT version, kind, actor, subject FROM conversation_changes \
    WHERE conversation_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3";

/// [`ChatStore::change_log`].
pub(super) async fn change_log(
    store: &SqliteStore,
    id: ConversationId,
    since: u64,
    limit: u32,
) -> Result<Vec<ChangeRecord>> {
    let rows: Vec<(i64, String, i64, Option<i64>)> = sqlx::query_as(CHANGE_LOG)
        .bind(sql_id(id.get()))
        .bind(sql_count(since))
        .bind(sql_limit(limit))
        .fetch_all(store.read())
        .await
        .map_err(db)?;
    rows.into_iter()
        .map(|(version, kind, actor, subject)| {
            Ok(ChangeRecord {
                version: raw_count(version),
                kind: ChangeKind::parse(&kind)
                    .ok_or_else(|| Error::storage(format!("unknown change kind {kind:?}")))?,
                actor: UserId::new(raw_id(actor)),
                subject: subject.map(raw_id),
            })
        })
        .collect()
}
