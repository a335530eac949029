//! One reaction model for posts, comments and chat messages: [`Reactions`], reached
//! through [`Kith::reactions`](crate::Kith::reactions).
//!
//! The same kinds ([`ReactionKind`]), the same rules and the same calls for
//! every [`ReactionTarget`]: a user has at most one reaction per target;
//! setting another kind replaces it, setting none removes it. Whoever may
//! see the target may read its counts and who reacted, and may react,
//! unless a block stands between them and the target's owner. Reactions of
//! deleted accounts are never counted nor listed, and the list leaves out
//! the users the viewer blocks or who block the viewer.
//!
//! Storage keeps one table per kind of target. A chat message's reaction
//! goes through [`Chat::react`](crate::Chat::react): it takes the
//! conversation's next version and tells the members live.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chat::{Chat, Message};
use crate::comments::Comments;
use crate::error::{Entity, Error, Result};
use crate::ids::{CommentId, ConversationId, MessageId, PostId, UserId};
use crate::kith::Inner;
use crate::model::User;
use crate::page::{fill, IdKey, Page, Paged};
use crate::posts::Posts;
use crate::privacy::Role;
use crate::rate::WriteKind;
use crate::storage::{Reactable, Viewed};

/// The kinds of reaction, shared by messages, posts and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    /// 👍
    Like,
    /// ❤️
    Love,
    /// 😆
    Haha,
    /// 😮
    Wow,
    /// 😢
    Sad,
    /// 😠
    Angry,
}

impl ReactionKind {
    /// Every kind, in display order.
    pub const ALL: [ReactionKind; 6] = [
        ReactionKind::Like,
        ReactionKind::Love,
        ReactionKind::Haha,
        ReactionKind::Wow,
        ReactionKind::Sad,
        ReactionKind::Angry,
    ];

    /// The stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReactionKind::Like => "like",
            ReactionKind::Love => "love",
            ReactionKind::Haha => "haha",
            ReactionKind::Wow => "wow",
            ReactionKind::Sad => "sad",
            ReactionKind::Angry => "angry",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What can be reacted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReactionTarget {
    /// A post (a share is a post too).
    Post {
        /// The post.
        post_id: PostId,
    },
    /// A comment (a reply is a comment too).
    Comment {
        /// The comment.
        comment_id: CommentId,
    },
    /// A chat message.
    Message {
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
    },
}

/// How many reactions of one kind a target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReactionCount {
    /// The kind.
    pub kind: ReactionKind,
    /// How many users reacted so.
    pub count: u64,
}

/// A target's reactions as a viewer sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReactionSummary {
    /// The count of each kind that has reactions, in [`ReactionKind::ALL`]'s order.
    pub counts: Vec<ReactionCount>,
    /// Every reaction.
    pub total: u64,
    /// The viewer's own reaction.
    pub mine: Option<ReactionKind>,
}

impl ReactionSummary {
    /// The summary of `counts` (how many of each kind, in any order, each
    /// kind once) and the viewer's own reaction.
    pub fn new(
        counts: impl IntoIterator<Item = (ReactionKind, u64)>,
        mine: Option<ReactionKind>,
    ) -> Self {
        let mut by_kind = [0u64; ReactionKind::ALL.len()];
        for (kind, count) in counts {
            if let Some(at) = ReactionKind::ALL.iter().position(|k| *k == kind) {
                by_kind[at] += count;
            }
        }
        ReactionSummary {
            counts: ReactionKind::ALL
                .into_iter()
                .zip(by_kind)
                .filter(|(_, count)| *count > 0)
                .map(|(kind, count)| ReactionCount { kind, count })
                .collect(),
            total: by_kind.iter().sum(),
            mine,
        }
    }
}

/// One user's reaction, in the list of who reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    /// Who reacted.
    pub user: User,
    /// How.
    pub kind: ReactionKind,
}

/// Reactions to posts, comments and chat messages, one API for all.
pub struct Reactions<'k> {
    pub(crate) kith: &'k Arc<Inner>,
}

impl Reactions<'_> {
    /// For a post or a comment: checks that `viewer` may see it and
    /// returns it as storage keeps its reactions; `None` for a message.
    async fn stored(
        &self,
        viewer: Option<UserId>,
        target: ReactionTarget,
    ) -> Result<Option<Reactable>> {
        let kith = self.kith.as_ref();
        match target {
            ReactionTarget::Post { post_id } => {
                Posts { kith }.seen(viewer, post_id).await?;
                Ok(Some(Reactable::Post(post_id)))
            }
            ReactionTarget::Comment { comment_id } => {
                let comment = Comments { kith }.get(viewer, comment_id).await?;
                if comment.deleted {
                    return Err(Error::NotFound(Entity::Comment));
                }
                Ok(Some(Reactable::Comment(comment_id)))
            }
            ReactionTarget::Message { .. } => Ok(None),
        }
    }

    /// The message `target` names, if the viewer is a member who may read it.
    async fn message(&self, viewer: Option<UserId>, target: ReactionTarget) -> Result<Message> {
        let actor = viewer.ok_or(Error::NotFound(Entity::Conversation))?;
        match target {
            ReactionTarget::Message {
                conversation_id,
                message_id,
            } => {
                let chat = Chat { kith: self.kith };
                chat.message(actor, conversation_id, message_id).await
            }
            _ => Err(Error::NotFound(Entity::Message)),
        }
    }

    /// Sets (`Some`) or removes (`None`) the actor's reaction to `target`
    /// and returns the target's reactions as they are now. Setting the
    /// reaction one already has, or removing none, changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor may not see the target (a post or
    /// comment: its post's visibility, or a block in either direction with
    /// its author, also one committed meanwhile; a comment that is a
    /// tombstone; a message: not a member, or the message is deleted);
    /// [`Error::Forbidden`] as [`Chat::react`](crate::Chat::react) in a
    /// direct conversation under a block; [`Error::RateLimited`] beyond the
    /// actor's reaction rate (setting one, not removing it;
    /// [`Config::write_rates`](crate::Config::write_rates)).
    pub async fn set(
        &self,
        actor: UserId,
        target: ReactionTarget,
        kind: Option<ReactionKind>,
    ) -> Result<ReactionSummary> {
        let storage = &self.kith.storage;
        let stored = self.stored(Some(actor), target).await?;
        // A message's reaction takes its token in `Chat::react`.
        if stored.is_some() && kind.is_some() {
            self.kith.take_write(actor, WriteKind::Reaction).await?;
        }
        match (stored, target) {
            (Some(stored), _) => {
                let gone = match stored {
                    Reactable::Post(_) => Entity::Post,
                    Reactable::Comment(_) => Entity::Comment,
                };
                storage
                    .set_reaction_on(stored, actor, kind)
                    .await?
                    .ok_or(Error::NotFound(gone))?;
                storage.reaction_summary(stored, Some(actor)).await
            }
            (
                None,
                ReactionTarget::Message {
                    conversation_id,
                    message_id,
                },
            ) => {
                let chat = Chat { kith: self.kith };
                let updated = chat.react(actor, conversation_id, message_id, kind).await?;
                self.message_summary(&updated.message, actor).await
            }
            (None, _) => Err(Error::NotFound(Entity::Message)),
        }
    }

    /// The reactions of `target` as `viewer` (`None`: anonymous) sees them.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the viewer may not see the target (an
    /// anonymous viewer sees no message).
    pub async fn summary(
        &self,
        viewer: Option<UserId>,
        target: ReactionTarget,
    ) -> Result<ReactionSummary> {
        match self.stored(viewer, target).await? {
            Some(stored) => self.kith.storage.reaction_summary(stored, viewer).await,
            None => {
                let message = self.message(viewer, target).await?;
                let actor = viewer.ok_or(Error::NotFound(Entity::Conversation))?;
                self.message_summary(&message, actor).await
            }
        }
    }

    /// Who reacted to `target` (of one `kind`, or of any), ordered by user
    /// id, as `viewer` may see them: never deleted accounts, nor users with
    /// a block between them and the viewer.
    ///
    /// # Errors
    /// As [`Self::summary`]; [`Error::InvalidInput`] for `limit` or `cursor`.
    pub async fn who(
        &self,
        viewer: Option<UserId>,
        target: ReactionTarget,
        kind: Option<ReactionKind>,
        page: &Page,
    ) -> Result<Paged<Reaction>> {
        let (window, limit) = page.window::<IdKey>("reactions")?;
        let storage = &self.kith.storage;
        let key = |seen: &Viewed<Reaction>| IdKey(seen.value.user.id.get());
        let keep = |seen: &Viewed<Reaction>| {
            let role = Role::between(viewer, seen.value.user.id, seen.friends, seen.blocked);
            role.can_see_user()
        };
        let rows = match self.stored(viewer, target).await? {
            Some(stored) => {
                fill(window, key, keep, |window| async move {
                    storage.reactions(stored, kind, viewer, &window).await
                })
                .await?
            }
            None => {
                let message = self.message(viewer, target).await?;
                let chosen: Vec<_> = message
                    .reactions
                    .iter()
                    .filter(|r| kind.is_none_or(|k| r.kind == k))
                    .collect();
                let ids: Vec<UserId> = chosen.iter().map(|r| r.user_id).collect();
                // Deleted accounts are not among the users.
                let users = storage.users(&ids, viewer).await?;
                let mut live: Vec<Viewed<Reaction>> = users
                    .into_iter()
                    .filter_map(|seen| {
                        let r = chosen.iter().find(|r| r.user_id == seen.value.id)?;
                        Some(Viewed {
                            value: Reaction {
                                user: seen.value,
                                kind: r.kind,
                            },
                            friends: seen.friends,
                            blocked: seen.blocked,
                        })
                    })
                    .collect();
                live.sort_by_key(|seen| seen.value.user.id);
                let live = &live;
                fill(window, key, keep, |window| async move {
                    let after = window.after.map_or(0, |key| key.0);
                    Ok(live
                        .iter()
                        .filter(|seen| seen.value.user.id.get() > after)
                        .take(window.limit as usize)
                        .cloned()
                        .collect())
                })
                .await?
            }
        };
        let visible = rows.into_iter().map(|seen| seen.value).collect();
        Ok(Paged::from_rows(visible, limit, |r: &Reaction| {
            IdKey(r.user.id.get())
        }))
    }

    /// A message's reactions as `viewer` sees them: those of live accounts.
    async fn message_summary(&self, message: &Message, viewer: UserId) -> Result<ReactionSummary> {
        let ids: Vec<UserId> = message.reactions.iter().map(|r| r.user_id).collect();
        let users = self.kith.storage.users(&ids, None).await?;
        let live: std::collections::HashSet<UserId> = users.iter().map(|u| u.value.id).collect();
        let live_reactions = || {
            message
                .reactions
                .iter()
                .filter(|r| live.contains(&r.user_id))
        };
        let counts = live_reactions().map(|r| (r.kind, 1));
        let mine = live_reactions()
            .find(|r| r.user_id == viewer)
            .map(|r| r.kind);
        Ok(ReactionSummary::new(counts, mine))
    }
}
