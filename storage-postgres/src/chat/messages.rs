//! Single messages: reading, editing, deleting, reactions, and history pages.

use super::*;

pub(super) const SELECT_MESSAGE: &str = select_messages!("WHERE id = $2 AND conversation_id = $1");

/// Edits a message that is not deleted, under version `$4`; `$5` is the
/// conversation.
pub(super) const EDIT: &str = concat!(
    "UPDATE messages SET body = $2, edited_at = $3, version = $4 ",
    "WHERE id = $1 AND conversation_id = $5 AND deleted_at IS NULL ",
    "RETURNING ",
    message_columns!()
);

/// The newest `$2` messages, newest first.
pub(super) const LATEST: &str =
    select_messages!("WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2");

/// The `$2` messages before seq `$3`, newest first.
pub(super) const BEFORE: &str =
    select_messages!("WHERE conversation_id = $1 AND seq < $3 ORDER BY seq DESC LIMIT $2");

/// The `$2` messages after seq `$3`, oldest first.
pub(super) const AFTER: &str =
    select_messages!("WHERE conversation_id = $1 AND seq > $3 ORDER BY seq LIMIT $2");

/// Inside a transaction: a message of the conversation, deleted or not.
pub(super) async fn load_message(
    conn: &mut PgConnection,
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

pub(super) fn messages_from(rows: Vec<MessageRow>) -> Result<Vec<Message>> {
    rows.into_iter().map(Message::try_from).collect()
}

/// [`ChatStore::message`].
pub(super) async fn message(
    store: &PgStore,
    id: ConversationId,
    message: MessageId,
) -> Result<Option<Message>> {
    let row: Option<MessageRow> = sqlx::query_as(SELECT_MESSAGE)
        .bind(sql_id(id.get()))
        .bind(sql_id(message.get()))
        .fetch_optional(store.read())
        .await
        .map_err(db)?;
    row.map(Message::try_from).transpose()
}

/// [`ChatStore::edit_message`].
pub(super) async fn edit_message(
    store: &PgStore,
    id: ConversationId,
    message: MessageId,
    body: &str,
    at: Timestamp,
) -> Result<Option<Message>> {
    let mut tx = store.begin().await?;
    let Some(version) = next_version(&mut tx, id).await? else {
        return Ok(None);
    };
    // Under the conversation's lock: the message is checked to exist and
    // not be deleted after every earlier change committed.
    let row: Option<MessageRow> = sqlx::query_as(EDIT)
        .bind(sql_id(message.get()))
        .bind(body)
        .bind(at.as_millis())
        .bind(version)
        .bind(sql_id(id.get()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let Some(row) = row else {
        // Dropping the transaction rolls the version back.
        return Ok(None);
    };
    log_message_change(&mut tx, message, ChangeKind::MessageEdited).await?;
    tx.commit().await.map_err(db)?;
    row.try_into().map(Some)
}

/// [`ChatStore::delete_message`].
pub(super) async fn delete_message(
    store: &PgStore,
    id: ConversationId,
    message: MessageId,
    at: Timestamp,
) -> Result<Option<Updated>> {
    let mut tx = store.begin().await?;
    if !lock_conversation(&mut tx, id).await? {
        return Ok(None);
    }
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
    sqlx::query("DELETE FROM message_reactions WHERE message_id = $1")
        .bind(sql_id(message.get()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("UPDATE messages SET body = NULL, deleted_at = $2, version = $3 WHERE id = $1")
        .bind(sql_id(message.get()))
        .bind(at.as_millis())
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    log_message_change(&mut tx, message, ChangeKind::MessageDeleted).await?;
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

/// [`ChatStore::set_reaction`].
pub(super) async fn set_reaction(
    store: &PgStore,
    id: ConversationId,
    message: MessageId,
    user: UserId,
    kind: Option<ReactionKind>,
) -> Result<Option<Updated>> {
    let mut tx = store.begin().await?;
    if !lock_conversation(&mut tx, id).await? {
        return Ok(None);
    }
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
            "INSERT INTO message_reactions (message_id, user_id, kind) VALUES ($1, $2, $3) \
             ON CONFLICT (message_id, user_id) DO UPDATE SET kind = excluded.kind",
        )
        .bind(msg)
        .bind(usr)
        .bind(kind.as_str()),
        None => sqlx::query("DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2")
            .bind(msg)
            .bind(usr),
    }
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("UPDATE messages SET version = $2 WHERE id = $1")
        .bind(msg)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let subject = Some(sql_id(message.get()));
    log_change(
        &mut tx,
        id,
        version,
        ChangeKind::ReactionChanged,
        user,
        subject,
    )
    .await?;
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

/// [`ChatStore::messages`].
pub(super) async fn messages(
    store: &PgStore,
    id: ConversationId,
    range: SeqRange,
) -> Result<Vec<Message>> {
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
    let rows: Vec<MessageRow> = query.fetch_all(store.read()).await.map_err(db)?;
    let mut messages = messages_from(rows)?;
    if newest_first {
        messages.reverse();
    }
    Ok(messages)
}
