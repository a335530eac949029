//! [`ChatStore`] for [`PgStore`]: conversations, members, messages,
//! reactions and read positions.
//!
//! Every change runs in one transaction that first locks the
//! conversation's row, by taking its next `version` (and, for a message, the
//! next `seq`) with `UPDATE conversations ... RETURNING`, or with
//! `SELECT ... FOR NO KEY UPDATE` when the change may turn out to be
//! nothing, and only then re-checks the change's precondition (the sender
//! is a current member, the message is not deleted) in a later statement,
//! which under READ COMMITTED sees everything the previous holder of the
//! lock committed. A precondition that fails rolls the transaction back,
//! version included, so both counters stay gap-free however many
//! connections write at once.
//!
//! A message is always read together with its reactions, aggregated into a
//! JSON array by a correlated subquery in the same statement
//! (`message_columns!`): a page of history, a list of changes or a
//! conversation list is one statement, not one query per message.
//!
//! This module implements the trait, each method handing over to the module
//! that holds the statements it runs: `conversations` (conversations and
//! members), `send` (appends, one by one and in batches), `messages` (one
//! message's changes and history pages) and `read` (read positions, unread
//! counts, the conversation list, the change log).

use async_trait::async_trait;
use kith_core::page::{ActivityKey, Window};
use kith_core::{
    Appended, Change, ChangeKind, ChangeRecord, ChatStore, Clash, Conversation, ConversationId,
    ConversationKind, ConversationSummary, Denied, Entity, Error, Member, MemberRole, Message,
    MessageId, MessageReaction, NewMessageRecord, ReactionKind, Removed, Result, SeqRange,
    Timestamp, UnreadCounts, UnreadEntry, Updated, UserId,
};
use sqlx::PgConnection;

use crate::rows::{
    cursor_id, raw_count, raw_id, sql_count, sql_id, sql_limit, ConversationRow, MemberChangeRow,
    MemberRow, MessageRow, SummaryRow,
};
use crate::{db, unique_violation, PgStore};

/// The columns [`MessageRow`] decodes, read from the `messages` table
/// (unaliased, so that `UPDATE messages ... RETURNING` can use them too).
/// Reactions come in user order, as a JSON array of `[user_id, kind]`.
macro_rules! message_columns {
    () => {
        "messages.id, messages.conversation_id, messages.seq, messages.version, \
         messages.sender_id, messages.client_id, messages.body, messages.reply_to, \
         messages.created_at, messages.edited_at, messages.deleted_at, \
         COALESCE((SELECT json_agg(json_build_array(r.user_id, r.kind) ORDER BY r.user_id)::text \
          FROM message_reactions r WHERE r.message_id = messages.id), '[]') AS reactions"
    };
}

/// `SELECT <message columns> FROM messages <rest>`.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!("SELECT ", message_columns!(), " FROM messages ", $rest)
    };
}

// After the macros, which the modules use.
mod conversations;
pub(crate) mod group;
mod messages;
mod read;
mod send;

/// Takes the next version (and locks the conversation's row).
const BUMP: &str = "UPDATE conversations SET version = version + 1 WHERE id = $1 RETURNING version";

/// Locks the conversation's row without changing it.
const LOCK: &str = "SELECT version FROM conversations WHERE id = $1 FOR NO KEY UPDATE";

/// Inside a transaction: takes the conversation's next version, locking
/// its row until the transaction ends; `None` if there is no such
/// conversation.
async fn next_version(conn: &mut PgConnection, id: ConversationId) -> Result<Option<i64>> {
    sqlx::query_scalar(BUMP)
        .bind(sql_id(id.get()))
        .fetch_optional(conn)
        .await
        .map_err(db)
}

/// Inside a transaction: locks the conversation's row until the
/// transaction ends; `false` if there is no such conversation.
async fn lock_conversation(conn: &mut PgConnection, id: ConversationId) -> Result<bool> {
    let version: Option<i64> = sqlx::query_scalar(LOCK)
        .bind(sql_id(id.get()))
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    Ok(version.is_some())
}

/// Inside a write transaction: the change-log entry of `version`.
async fn log_change(
    conn: &mut PgConnection,
    id: ConversationId,
    version: i64,
    kind: ChangeKind,
    actor: UserId,
    subject: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sql_id(id.get()))
    .bind(version)
    .bind(kind.as_str())
    .bind(sql_id(actor.get()))
    .bind(subject)
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
}

/// Inside a write transaction: the change-log entry of a message's latest
/// version, by its sender.
async fn log_message_change(
    conn: &mut PgConnection,
    message: MessageId,
    kind: ChangeKind,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
         SELECT conversation_id, version, $2, sender_id, id FROM messages WHERE id = $1",
    )
    .bind(sql_id(message.get()))
    .bind(kind.as_str())
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
}

#[async_trait]
impl ChatStore for PgStore {
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
        conversations::create_conversation(self, conversation, members).await
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> Result<Option<Conversation>> {
        conversations::direct_conversation(self, a, b).await
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        conversations::conversation(self, id).await
    }

    async fn members(&self, id: ConversationId) -> Result<Vec<Member>> {
        conversations::members(self, id).await
    }

    async fn member(&self, id: ConversationId, user: UserId) -> Result<Option<Member>> {
        conversations::member(self, id, user).await
    }

    async fn membership_version(&self, id: ConversationId) -> Result<u64> {
        conversations::membership_version(self, id).await
    }

    async fn versions(&self, ids: &[ConversationId]) -> Result<Vec<(ConversationId, u64)>> {
        conversations::versions(self, ids).await
    }

    /// As the trait says; [`Error::NotFound`] ([`Entity::Conversation`]) if
    /// there is no such conversation, and [`Error::InvalidInput`]
    /// (`members`), with nothing changed, if one of `members` is a current
    /// member (or listed twice).
    async fn add_members(
        &self,
        id: ConversationId,
        members: &[Member],
        by: UserId,
        max_members: usize,
    ) -> Result<u64> {
        conversations::add_members(self, id, members, by, max_members).await
    }

    async fn remove_member(
        &self,
        id: ConversationId,
        user: UserId,
        by: Option<UserId>,
    ) -> Result<Option<Removed>> {
        conversations::remove_member(self, id, user, by).await
    }

    async fn set_role(
        &self,
        id: ConversationId,
        user: UserId,
        role: MemberRole,
        by: UserId,
    ) -> Result<Option<u64>> {
        conversations::set_role(self, id, user, role, by).await
    }

    /// As the trait says; [`Error::NotFound`] ([`Entity::Conversation`]) if
    /// there is no such conversation. Direct conversations have no title: a
    /// storage error (the schema's check) if one is renamed.
    async fn rename(&self, id: ConversationId, title: &str, by: UserId) -> Result<u64> {
        conversations::rename(self, id, title, by).await
    }

    /// As the trait says. The steps run in one transaction under the conversation's lock.
    async fn append_message(&self, message: &NewMessageRecord) -> Result<Appended> {
        send::append_message(self, message).await
    }

    /// As the trait says, in one transaction (see the [crate docs](crate)).
    async fn append_messages(
        &self,
        messages: &[NewMessageRecord],
    ) -> Result<Vec<Result<Appended>>> {
        send::append_messages(self, messages).await
    }

    async fn message_by_client_id(
        &self,
        sender: UserId,
        client_id: &str,
    ) -> Result<Option<Message>> {
        send::message_by_client_id(self, sender, client_id).await
    }

    async fn message(&self, id: ConversationId, message: MessageId) -> Result<Option<Message>> {
        messages::message(self, id, message).await
    }

    async fn edit_message(
        &self,
        id: ConversationId,
        message: MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Option<Message>> {
        messages::edit_message(self, id, message, body, at).await
    }

    async fn delete_message(
        &self,
        id: ConversationId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<Option<Updated>> {
        messages::delete_message(self, id, message, at).await
    }

    async fn set_reaction(
        &self,
        id: ConversationId,
        message: MessageId,
        user: UserId,
        kind: Option<ReactionKind>,
    ) -> Result<Option<Updated>> {
        messages::set_reaction(self, id, message, user, kind).await
    }

    async fn messages(&self, id: ConversationId, range: SeqRange) -> Result<Vec<Message>> {
        messages::messages(self, id, range).await
    }

    async fn mark_read(&self, id: ConversationId, user: UserId, seq: u64) -> Result<Option<u64>> {
        read::mark_read(self, id, user, seq).await
    }

    async fn conversations(
        &self,
        user: UserId,
        window: Window<ActivityKey>,
    ) -> Result<Vec<ConversationSummary>> {
        read::conversations(self, user, window).await
    }

    async fn unread_counts(&self, user: UserId) -> Result<UnreadCounts> {
        read::unread_counts(self, user).await
    }

    /// As the trait says. The three kinds of change are read in one
    /// REPEATABLE READ transaction, so they come from one snapshot of the
    /// conversation.
    async fn change_log(
        &self,
        id: ConversationId,
        since: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        read::change_log(self, id, since, limit).await
    }

    async fn changes(&self, id: ConversationId, since: u64, until: u64) -> Result<Vec<Change>> {
        read::changes(self, id, since, until).await
    }
}

#[cfg(test)]
mod tests;
