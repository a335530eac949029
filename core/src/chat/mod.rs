//! Chat: [`Chat`], reached through [`Kith::chat`](crate::Kith::chat).
//!
//! Direct conversations (one per pair, found or created) and groups (title,
//! members, admins). Messages carry a client-chosen `client_id` so retries
//! never duplicate, and take a gap-free per-conversation `seq`; every change
//! to a conversation takes a gap-free `version`, so a client that was away
//! asks for [`Chat::changes_since`] its last version and misses nothing.
//!
//! Each conversation's writes run one at a time inside its lane (an async lock
//! per conversation) together with their publication, so its events reach the
//! sink in version order however many tasks write at once.
//!
//! The rules shared by every action (who is a member, what a block forbids
//! in a direct conversation) are here; `conversations.rs` holds
//! conversations and membership, `send.rs` (with `lanes.rs` and the crate's `rate.rs`)
//! sending, and `messages.rs` message changes, history and read state.

mod conversations;
mod lanes;
mod messages;
pub mod model;
mod send;

pub(crate) use lanes::Lanes;
pub use model::*;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Denied, Entity, Error, Result};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::kith::Inner;
use crate::model::Links;

/// Who may open a direct conversation with whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectMessages {
    /// Any two users who do not block each other.
    #[default]
    Anyone,
    /// Only friends (the "friend-only chat" policy).
    FriendsOnly,
}

/// Input of [`Chat::create_group`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// 1 to 100 characters.
    pub title: String,
    /// The other members; the creator joins as admin. Duplicates and the
    /// creator are ignored.
    pub members: Vec<UserId>,
}

/// Input of [`Chat::send`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The client's idempotency key: 1 to 64 visible ASCII characters, unique
    /// per sender. Sending again with the same key returns the first message.
    pub client_id: String,
    /// The text: not blank, at most [`Config::max_message_chars`](crate::Config) characters.
    pub body: String,
    /// The message this one replies to, in the same conversation.
    pub reply_to: Option<MessageId>,
}

/// Which messages [`Chat::history`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum History {
    /// The newest messages.
    #[default]
    Latest,
    /// Messages before this `seq`, going back in time.
    Before(u64),
    /// Messages after this `seq`, going forward.
    After(u64),
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    /// Messages in ascending `seq` order.
    pub messages: Vec<Message>,
    /// Whether more messages lie beyond this page in the direction asked
    /// (older for `Latest` and `Before`, newer for `After`).
    pub more: bool,
}

/// The largest number of versions [`Chat::changes_since`] covers per call.
pub const MAX_CHANGES: u32 = 500;

/// Conversations, messages, reactions and read state.
pub struct Chat<'k> {
    pub(crate) kith: &'k Arc<Inner>,
}

/// A conversation loaded for an action by one of its members.
struct Scene {
    conversation: Conversation,
    members: Vec<Member>,
    me: Member,
}

impl Scene {
    fn recipients(&self) -> Vec<UserId> {
        self.members.iter().map(|m| m.user_id).collect()
    }

    fn require_admin(&self) -> Result<()> {
        if self.conversation.kind == ConversationKind::Direct {
            return Err(Error::Forbidden(Denied::DirectConversation));
        }
        if self.me.role != MemberRole::Admin {
            return Err(Error::Forbidden(Denied::NotAdmin));
        }
        Ok(())
    }
}

impl Chat<'_> {
    /// Loads a conversation the actor is a current member of.
    async fn scene(&self, actor: UserId, id: ConversationId) -> Result<Scene> {
        let store = &self.kith.storage;
        let not_found = Error::NotFound(Entity::Conversation);
        let conversation = store.conversation(id).await?.ok_or(not_found)?;
        let members = store.members(id).await?;
        let me = members
            .iter()
            .find(|m| m.user_id == actor)
            .cloned()
            .ok_or(Error::NotFound(Entity::Conversation))?;
        Ok(Scene {
            conversation,
            members,
            me,
        })
    }

    /// Checks that no block stands between the scene's two members when the
    /// conversation is direct: a block in either direction stops every
    /// change and signal in it (send, edit, delete, reaction, typing), while
    /// both may still read the history and mark it read. Groups are not
    /// affected: their streams have no holes.
    async fn may_change(&self, scene: &Scene, actor: UserId) -> Result<()> {
        if scene.conversation.kind != ConversationKind::Direct {
            return Ok(());
        }
        let Some(other) = scene.members.iter().find(|m| m.user_id != actor) else {
            return Ok(());
        };
        let links = self.kith.storage.links(actor, other.user_id).await?;
        unblocked(&links)
    }

    /// Checks that `actor` may message `other` directly.
    async fn may_message(&self, actor: UserId, other: UserId) -> Result<()> {
        let links = self.kith.storage.links(actor, other).await?;
        unblocked(&links)?;
        if self.kith.config.direct_messages == DirectMessages::FriendsOnly && !links.visible.friends
        {
            return Err(Error::Forbidden(Denied::NotFriends));
        }
        Ok(())
    }
}

/// No block between the two, in either direction: the blocker is told it
/// blocks, the blocked user only that the other cannot be reached.
fn unblocked(links: &Links) -> Result<()> {
    if links.visible.blocking {
        return Err(Error::Forbidden(Denied::BlockedByActor));
    }
    if links.blocked_by {
        return Err(Error::Forbidden(Denied::Unreachable));
    }
    Ok(())
}
