//! Chat types: conversations, members, messages, reactions and changes.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConversationId, MessageId, UserId};

/// Whether a conversation is between two users or a named group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two users; one per pair.
    Direct,
    /// A titled group with admins.
    Group,
}

impl ConversationKind {
    /// The stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(ConversationKind::Direct),
            "group" => Some(ConversationKind::Group),
            _ => None,
        }
    }
}

/// A member's role in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// May send, react, read and leave.
    Member,
    /// Also may add and remove members, rename the group and change roles.
    Admin,
}

impl MemberRole {
    /// The stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Member => "member",
            MemberRole::Admin => "admin",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(MemberRole::Member),
            "admin" => Some(MemberRole::Admin),
            _ => None,
        }
    }
}

/// A conversation's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The conversation's id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// The group's title; `None` for direct conversations.
    pub title: Option<String>,
    /// Who created it.
    pub created_by: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// The `seq` of the newest message (0 before the first message).
    pub last_seq: u64,
    /// The newest change `version` (every change to the conversation: a
    /// message, an edit, a delete, a reaction, a membership change, a rename).
    pub version: u64,
    /// When the newest message was sent (or the conversation created).
    pub last_activity: Timestamp,
}

/// A member of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: MemberRole,
    /// When they joined.
    pub joined_at: Timestamp,
    /// The `seq` of the newest message they have read.
    pub last_read_seq: u64,
}

pub use crate::reactions::ReactionKind;

/// One user's reaction to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageReaction {
    /// Who reacted.
    pub user_id: UserId,
    /// How.
    pub kind: ReactionKind,
}

/// A chat message in its current state. A deleted message stays as a
/// tombstone: it keeps its `seq`, loses its body and reactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The message's id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its position in the conversation: 1, 2, 3... without gaps.
    pub seq: u64,
    /// The conversation version of the latest change to this message.
    pub version: u64,
    /// Who sent it.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_id: String,
    /// The text; `None` once deleted.
    pub body: Option<String>,
    /// The message this one replies to.
    pub reply_to: Option<MessageId>,
    /// Reactions, ordered by user id.
    pub reactions: Vec<MessageReaction>,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// When it was deleted.
    pub deleted_at: Option<Timestamp>,
}

/// A conversation as it appears in a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// The newest message, for the preview.
    pub last_message: Option<Message>,
    /// The user's read position.
    pub last_read_seq: u64,
    /// `last_seq - last_read_seq`.
    pub unread: u64,
}

/// A user's read position in a conversation after [`crate::Chat::mark_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadState {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The newest message read.
    pub last_read_seq: u64,
    /// Messages after it.
    pub unread: u64,
    /// Whether this call moved the read position (it only moves forward).
    pub changed: bool,
}

/// Unread messages in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnreadEntry {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Messages after the user's read position.
    pub unread: u64,
}

/// Unread counts of a user: per conversation (only those with unread
/// messages) and in total.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnreadCounts {
    /// Sum over all conversations.
    pub total: u64,
    /// Each conversation with unread messages, ordered by conversation id.
    pub conversations: Vec<UnreadEntry>,
}

/// One change to a conversation after some version, for resuming clients.
/// Changes are reported in their current state: a message edited twice since
/// the client's version is reported once, as it is now, at its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A message was sent, edited, deleted or reacted to.
    Message {
        /// The message now.
        message: Message,
    },
    /// A member joined, changed role or left.
    Member {
        /// The member now.
        member: Member,
        /// Whether they have left (or were removed).
        left: bool,
        /// The version of this change.
        version: u64,
    },
    /// The group was renamed.
    Renamed {
        /// The new title.
        title: String,
        /// The version of this change.
        version: u64,
    },
}

impl Change {
    /// The version this change is at.
    pub fn version(&self) -> u64 {
        match self {
            Change::Message { message } => message.version,
            Change::Member { version, .. } | Change::Renamed { version, .. } => *version,
        }
    }
}

/// What [`crate::Chat::changes_since`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeSet {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The changes with versions in `(since, until]`, in version order.
    pub changes: Vec<Change>,
    /// The version the client has caught up to; pass it as the next `since`.
    pub until: u64,
    /// Whether more changes follow `until`.
    pub more: bool,
}

/// What a conversation's version changed, as its change-log entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A message was sent (`subject`: the message).
    MessageCreated,
    /// A message was edited (`subject`: the message).
    MessageEdited,
    /// A message was deleted (`subject`: the message).
    MessageDeleted,
    /// A reaction was set or removed (`subject`: the message).
    ReactionChanged,
    /// Members were added (no `subject`: they share the version).
    MembersAdded,
    /// A member left or was removed (`subject`: the member).
    MemberRemoved,
    /// A member's role changed (`subject`: the member).
    MemberRoleChanged,
    /// The group was renamed (no `subject`).
    ConversationRenamed,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::MessageCreated,
        ChangeKind::MessageEdited,
        ChangeKind::MessageDeleted,
        ChangeKind::ReactionChanged,
        ChangeKind::MembersAdded,
        ChangeKind::MemberRemoved,
        ChangeKind::MemberRoleChanged,
        ChangeKind::ConversationRenamed,
    ];

    /// The kind's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::MessageCreated => "message_created",
            ChangeKind::MessageEdited => "message_edited",
            ChangeKind::MessageDeleted => "message_deleted",
            ChangeKind::ReactionChanged => "reaction_changed",
            ChangeKind::MembersAdded => "members_added",
            ChangeKind::MemberRemoved => "member_removed",
            ChangeKind::MemberRoleChanged => "member_role_changed",
            ChangeKind::ConversationRenamed => "conversation_renamed",
        }
    }

    /// The kind named `name`, as stored.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One entry of a conversation's change log: what its version changed, who
/// did it and to what. Written in the same transaction as the change, so
/// the log has exactly one entry per version (from the version the log was
/// introduced on), in order: a writer that missed some changes replays them
/// from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The version.
    pub version: u64,
    /// What changed.
    pub kind: ChangeKind,
    /// Who changed it.
    pub actor: UserId,
    /// The message or member it changed, if one.
    pub subject: Option<u64>,
}
