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

// After the macros, which the modules use.
mod conversations;
mod messages;
mod read;
mod send;

pub(crate) use send::{append, append_many};

/// Takes the next version.
const BUMP: &str = "UPDATE conversations SET version = version + 1 WHERE id = ?1 RETURNING version";

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

/// Inside a write transaction: the change-log entry of `version`.
async fn log_change(
    conn: &mut SqliteConnection,
    id: ConversationId,
    version: i64,
    kind: ChangeKind,
    actor: UserId,
    subject: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
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
    conn: &mut SqliteConnection,
    message: MessageId,
    kind: ChangeKind,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversation_changes (conversation_id, version, kind, actor, subject) \
         SELECT conversation_id, version, ?2, sender_id, id FROM messages WHERE id = ?1",
    )
    .bind(sql_id(message.get()))
    .bind(kind.as_str())
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
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

    /// As the trait says. Appends are group-committed: see `append.rs`.
    async fn append_message(&self, message: &NewMessageRecord) -> Result<Appended> {
        send::append_message(self, message).await
    }

    /// As the trait says: the messages are queued together, so they are
    /// committed together (unless the batch limit splits them).
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

    /// As the trait says. The three kinds of change are read in one read
    /// transaction, so they come from one snapshot of the conversation.
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::conversations::*;
    use super::messages::*;
    use super::read::*;
    use super::send::*;
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
            MEMBERSHIP_VERSION,
            CHANGE_LOG,
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
