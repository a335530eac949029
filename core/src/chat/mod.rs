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

mod lanes;
pub mod model;
mod rate;

pub(crate) use lanes::Lanes;
use lanes::{QueuedSend, Roster};
pub use model::*;
pub(crate) use rate::RateLimiter;
pub use rate::SendRate;

use std::future::Future;
use std::sync::Arc;

use futures::future::{select, Either};
use serde::{Deserialize, Serialize};

use crate::error::{Clash, Denied, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::kith::Inner;
use crate::page::{ActivityKey, Page, Paged};
use crate::storage::{Appended, NewMessageRecord, SeqRange};
use crate::validate;

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
        if links.visible.blocking {
            return Err(Error::Forbidden(Denied::BlockedByActor));
        }
        if links.blocked_by {
            return Err(Error::Forbidden(Denied::Unreachable));
        }
        Ok(())
    }

    /// Checks that `actor` may message `other` directly.
    async fn may_message(&self, actor: UserId, other: UserId) -> Result<()> {
        let links = self.kith.storage.links(actor, other).await?;
        if links.visible.blocking {
            return Err(Error::Forbidden(Denied::BlockedByActor));
        }
        if links.blocked_by {
            return Err(Error::Forbidden(Denied::Unreachable));
        }
        if self.kith.config.direct_messages == DirectMessages::FriendsOnly && !links.visible.friends
        {
            return Err(Error::Forbidden(Denied::NotFriends));
        }
        Ok(())
    }

    /// The direct conversation between the actor and `other`, created if it
    /// does not exist yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`user_id`) for oneself; [`Error::NotFound`] if
    /// `other` does not exist or blocks the actor; [`Error::Forbidden`] if the
    /// actor blocks `other` or, under [`DirectMessages::FriendsOnly`], they
    /// are not friends.
    pub async fn open_direct(&self, actor: UserId, other: UserId) -> Result<Conversation> {
        if actor == other {
            return Err(Error::invalid("user_id", "cannot be yourself"));
        }
        self.kith.account(actor).await?;
        self.kith.account(other).await?;
        if self.kith.storage.links(actor, other).await?.blocked_by {
            return Err(Error::NotFound(Entity::User));
        }
        self.may_message(actor, other).await?;
        let store = &self.kith.storage;
        if let Some(existing) = store.direct_conversation(actor, other).await? {
            return Ok(existing);
        }
        let now = self.kith.clock.now();
        let conversation = Conversation {
            id: ConversationId::new(self.kith.ids.next_id()),
            kind: ConversationKind::Direct,
            title: None,
            created_by: actor,
            created_at: now,
            last_seq: 0,
            version: 0,
            last_activity: now,
        };
        let mut pair = [actor, other];
        pair.sort();
        let members: Vec<Member> = pair
            .into_iter()
            .map(|user_id| Member {
                user_id,
                role: MemberRole::Member,
                joined_at: now,
                last_read_seq: 0,
            })
            .collect();
        match store.create_conversation(&conversation, &members).await {
            Ok(()) => {}
            // Someone created it at the same time: use theirs.
            Err(Error::Conflict(Clash::DirectExists)) => {
                return store
                    .direct_conversation(actor, other)
                    .await?
                    .ok_or(Error::NotFound(Entity::Conversation));
            }
            Err(e) => return Err(e),
        }
        self.kith.emit(Delivery::new(
            Event::ConversationCreated {
                conversation: conversation.clone(),
                members,
            },
            pair,
        ));
        Ok(conversation)
    }

    /// Checks that every user in `users` is live and that the actor may add
    /// them: neither blocks the other.
    async fn may_add(&self, actor: UserId, users: &[UserId]) -> Result<()> {
        for &user in users {
            self.kith.account(user).await?;
            let links = self.kith.storage.links(actor, user).await?;
            if links.blocked_by {
                return Err(Error::NotFound(Entity::User));
            }
            if links.visible.blocking {
                return Err(Error::Forbidden(Denied::BlockedByActor));
            }
        }
        Ok(())
    }

    fn check_size(&self, members: usize) -> Result<()> {
        let max = self.kith.config.max_group_members;
        if members > max {
            return Err(Error::invalid(
                "members",
                format!("a group has at most {max} members"),
            ));
        }
        Ok(())
    }

    /// Creates a group with the actor as its admin.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `title` or too many `members`;
    /// [`Error::NotFound`] if a member does not exist or blocks the actor;
    /// [`Error::Forbidden`] if the actor blocks a member.
    pub async fn create_group(&self, actor: UserId, input: NewGroup) -> Result<Conversation> {
        let title = validate::title("title", &input.title)?;
        let mut others: Vec<UserId> = Vec::new();
        for u in input.members {
            if u != actor && !others.contains(&u) {
                others.push(u);
            }
        }
        self.check_size(others.len() + 1)?;
        self.kith.account(actor).await?;
        self.may_add(actor, &others).await?;
        let now = self.kith.clock.now();
        let conversation = Conversation {
            id: ConversationId::new(self.kith.ids.next_id()),
            kind: ConversationKind::Group,
            title: Some(title),
            created_by: actor,
            created_at: now,
            last_seq: 0,
            version: 0,
            last_activity: now,
        };
        let mut members: Vec<Member> = std::iter::once((actor, MemberRole::Admin))
            .chain(others.iter().map(|&u| (u, MemberRole::Member)))
            .map(|(user_id, role)| Member {
                user_id,
                role,
                joined_at: now,
                last_read_seq: 0,
            })
            .collect();
        members.sort_by_key(|m| m.user_id);
        self.kith
            .storage
            .create_conversation(&conversation, &members)
            .await?;
        let recipients: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        self.kith.emit(Delivery::new(
            Event::ConversationCreated {
                conversation: conversation.clone(),
                members,
            },
            recipients,
        ));
        Ok(conversation)
    }

    /// A conversation the actor is a member of.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist or the actor is not a member.
    pub async fn conversation(&self, actor: UserId, id: ConversationId) -> Result<Conversation> {
        Ok(self.scene(actor, id).await?.conversation)
    }

    /// The current members of a conversation, ordered by user id.
    ///
    /// # Errors
    /// As [`Self::conversation`].
    pub async fn members(&self, actor: UserId, id: ConversationId) -> Result<Vec<Member>> {
        Ok(self.scene(actor, id).await?.members)
    }

    /// Adds users to a group (an admin's action). Users already in it are
    /// skipped; returns the members added. New members start with everything
    /// before their arrival read.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member, or a user does not
    /// exist or blocks the actor; [`Error::Forbidden`] if the conversation is
    /// direct, the actor is not an admin or blocks a user;
    /// [`Error::InvalidInput`] (`members`) if the group would grow too large.
    pub async fn add_members(
        &self,
        actor: UserId,
        id: ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let mut new: Vec<UserId> = Vec::new();
        for &u in users {
            if !scene.members.iter().any(|m| m.user_id == u) && !new.contains(&u) {
                new.push(u);
            }
        }
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.check_size(scene.members.len() + new.len())?;
        self.may_add(actor, &new).await?;
        let now = self.kith.clock.now();
        new.sort();
        let added: Vec<Member> = new
            .iter()
            .map(|&user_id| Member {
                user_id,
                role: MemberRole::Member,
                joined_at: now,
                last_read_seq: scene.conversation.last_seq,
            })
            .collect();
        self.kith.lanes.forget_roster(id);
        let version = self.kith.storage.add_members(id, &added).await?;
        self.kith.emit(Delivery::new(
            Event::MembersAdded {
                conversation_id: id,
                members: added.clone(),
                by: actor,
                version,
            },
            scene.recipients().into_iter().chain(new),
        ));
        Ok(added)
    }

    /// Removes a member from a group (an admin's action; see [`Self::leave`]
    /// for oneself).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member, or ([`Entity::Member`])
    /// `user` is not; [`Error::Forbidden`] if the conversation is direct or
    /// the actor is not an admin.
    pub async fn remove_member(
        &self,
        actor: UserId,
        id: ConversationId,
        user: UserId,
    ) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        if user == actor {
            return self.depart(scene, actor).await;
        }
        scene.require_admin()?;
        if !scene.members.iter().any(|m| m.user_id == user) {
            return Err(Error::NotFound(Entity::Member));
        }
        self.depart(scene, user).await
    }

    /// The actor leaves a group. If they were its last admin, the member who
    /// joined earliest becomes admin.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member; [`Error::Forbidden`]
    /// for a direct conversation.
    pub async fn leave(&self, actor: UserId, id: ConversationId) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.depart(scene, actor).await
    }

    /// Removes `user` from the scene's group, by the scene's member.
    async fn depart(&self, scene: Scene, user: UserId) -> Result<()> {
        if scene.conversation.kind == ConversationKind::Direct {
            return Err(Error::Forbidden(Denied::DirectConversation));
        }
        let id = scene.conversation.id;
        let remaining: Vec<&Member> = scene.members.iter().filter(|m| m.user_id != user).collect();
        let promote = if remaining.iter().any(|m| m.role == MemberRole::Admin) {
            None
        } else {
            remaining
                .iter()
                .min_by_key(|m| (m.joined_at, m.user_id))
                .map(|m| m.user_id)
        };
        self.kith.lanes.forget_roster(id);
        let version = self
            .kith
            .storage
            .remove_member(id, user, promote)
            .await?
            .ok_or(Error::NotFound(Entity::Member))?;
        self.kith.emit(Delivery::new(
            Event::MemberRemoved {
                conversation_id: id,
                user_id: user,
                by: scene.me.user_id,
                promoted: promote,
                version,
            },
            scene.recipients(),
        ));
        Ok(())
    }

    /// Makes a member an admin or a plain member (an admin's action). The last
    /// admin cannot step down while other members remain.
    ///
    /// # Errors
    /// As [`Self::remove_member`]; [`Error::InvalidInput`] (`role`) when it
    /// would leave the group without an admin.
    pub async fn set_role(
        &self,
        actor: UserId,
        id: ConversationId,
        user: UserId,
        role: MemberRole,
    ) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let target = scene
            .members
            .iter()
            .find(|m| m.user_id == user)
            .ok_or(Error::NotFound(Entity::Member))?;
        if target.role == role {
            return Ok(());
        }
        let admins = scene
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Admin)
            .count();
        if role == MemberRole::Member && admins == 1 {
            return Err(Error::invalid("role", "a group needs at least one admin"));
        }
        let version = self
            .kith
            .storage
            .set_role(id, user, role)
            .await?
            .ok_or(Error::NotFound(Entity::Member))?;
        self.kith.emit(Delivery::new(
            Event::MemberRoleChanged {
                conversation_id: id,
                user_id: user,
                role,
                by: actor,
                version,
            },
            scene.recipients(),
        ));
        Ok(())
    }

    /// Renames a group (an admin's action).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`title`); otherwise as [`Self::remove_member`].
    pub async fn rename(
        &self,
        actor: UserId,
        id: ConversationId,
        title: &str,
    ) -> Result<Conversation> {
        let title = validate::title("title", title)?;
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let version = self.kith.storage.rename(id, &title).await?;
        self.kith.emit(Delivery::new(
            Event::ConversationRenamed {
                conversation_id: id,
                title: title.clone(),
                by: actor,
                version,
            },
            scene.recipients(),
        ));
        Ok(Conversation {
            title: Some(title),
            version,
            ..scene.conversation
        })
    }

    /// Sends a message. Sending again with the same `client_id` returns the
    /// first message and changes nothing, so clients retry safely. The
    /// returned message is durable: its `seq` is assigned and committed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `client_id`, `body` or `reply_to`;
    /// [`Error::NotFound`] if the actor is not a member; [`Error::Forbidden`]
    /// in a direct conversation the actor may not message (blocked, or not
    /// friends under [`DirectMessages::FriendsOnly`]); [`Error::Conflict`]
    /// ([`Clash::ClientIdReused`]) if the `client_id` was used in another
    /// conversation; [`Error::RateLimited`] beyond the configured send rate.
    ///
    /// The send is queued for its conversation when `send` is called, before
    /// the returned future is first polled: sends a caller makes one after
    /// the other (without awaiting each) are stored in that order, and a
    /// conversation's waiting sends are stored together, in one call to
    /// [`ChatStore::append_messages`](crate::ChatStore::append_messages).
    /// Dropping the future before its send was taken into a batch withdraws
    /// the send. With a [`Spawner`](crate::Spawner) (see
    /// [`KithBuilder::spawner`](crate::KithBuilder::spawner)) each batch runs
    /// as its own task, so dropping any send's future never stops a batch.
    /// Without one, the future that takes the lane runs the batch for every
    /// send in it: dropped in the middle, the others get
    /// [`Error::Internal`] and their messages may be stored without being
    /// published, so such an embedder must drive the future to completion
    /// (it is `'static`).
    pub fn send(
        &self,
        actor: UserId,
        id: ConversationId,
        input: NewMessage,
    ) -> impl Future<Output = Result<Message>> + Send + 'static {
        let kith = Arc::clone(self.kith);
        let checked = validate::client_id("client_id", &input.client_id).and_then(|()| {
            validate::message_body("body", &input.body, kith.config.max_message_chars)
        });
        let queued = checked.map(|body| {
            kith.lanes
                .queue_send(id, actor, NewMessage { body, ..input })
        });
        async move {
            let mut ticket = queued?;
            loop {
                // Whoever holds the lane next runs every waiting send: this
                // one's outcome comes from that batch, or this one takes the
                // lane and runs the batch itself. (Waiting for the lane alone
                // would make every answered send pass through the lane one
                // by one, and new sends queue behind that convoy.)
                let enter = std::pin::pin!(kith.lanes.enter(id));
                let lane = match select(std::pin::pin!(ticket.answered()), enter).await {
                    Either::Left((outcome, _)) => return outcome,
                    Either::Right((lane, _)) => lane,
                };
                if let Some(outcome) = ticket.outcome() {
                    return outcome;
                }
                let batch = kith.lanes.take_sends(id);
                match kith.spawner.clone() {
                    // The batch runs to completion, holding the lane, even
                    // if this future is dropped: every stored message of it
                    // is published and every sender answered.
                    Some(spawner) => {
                        let kith = Arc::clone(&kith);
                        spawner.spawn(Box::pin(async move {
                            Chat { kith: &kith }.send_batch(id, batch).await;
                            drop(lane);
                        }));
                    }
                    None => {
                        Chat { kith: &kith }.send_batch(id, batch).await;
                        drop(lane);
                    }
                }
            }
        }
    }

    /// Stores a batch of the conversation's sends and publishes them, in
    /// order; answers every send. Runs inside the lane, so the roster (and
    /// with it the recipients) is the one at the messages' versions.
    async fn send_batch(&self, id: ConversationId, batch: Vec<QueuedSend>) {
        let roster = match self.roster(id).await {
            Ok(roster) => roster,
            Err(e) => {
                for send in batch {
                    let _ = send.reply.send(Err(e.duplicate()));
                }
                return;
            }
        };
        let mut accepted = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        for send in batch {
            match self.admit(id, &roster, &send).await {
                Ok((record, charged)) => {
                    records.push(record);
                    accepted.push((send, charged));
                }
                Err(e) => {
                    let _ = send.reply.send(Err(e));
                }
            }
        }
        if records.is_empty() {
            return;
        }
        let outcomes = match self.kith.storage.append_messages(&records).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                for (send, _) in accepted {
                    let _ = send.reply.send(Err(e.duplicate()));
                }
                return;
            }
        };
        let mut outcomes = outcomes.into_iter();
        let mut created = Vec::with_capacity(accepted.len());
        let mut answers = Vec::with_capacity(accepted.len());
        for (send, charged) in accepted {
            let outcome = match outcomes.next() {
                None => Err(Error::storage(
                    "the store answered fewer appends than asked",
                )),
                Some(Err(e)) => Err(e),
                Some(Ok(Appended::Existing(message))) if message.conversation_id == id => {
                    if charged {
                        self.refund(message.sender);
                    }
                    Ok(message)
                }
                Some(Ok(Appended::Existing(_))) => Err(Error::Conflict(Clash::ClientIdReused)),
                Some(Ok(Appended::Created(message))) => {
                    created.push(Delivery::new(
                        Event::MessageCreated {
                            message: message.clone(),
                        },
                        roster.members.iter().copied(),
                    ));
                    Ok(message)
                }
            };
            answers.push((send.reply, outcome));
        }
        // Published before anyone is answered, so an acknowledged message
        // has always been handed to the sink.
        self.kith.emit_all(created);
        for (reply, outcome) in answers {
            // A caller that went away does not listen any more.
            let _ = reply.send(outcome);
        }
    }

    /// Gives back the send-rate token of a send that stored nothing.
    fn refund(&self, sender: UserId) {
        if let Some(rate) = self.kith.config.send_rate {
            self.kith.rate.refund(rate, sender);
        }
    }

    /// The conversation's kind and members, kept between batches; call
    /// inside the lane.
    async fn roster(&self, id: ConversationId) -> Result<Roster> {
        if let Some(roster) = self.kith.lanes.roster(id) {
            return Ok(roster);
        }
        let store = &self.kith.storage;
        let conversation = store
            .conversation(id)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        let members = store.members(id).await?;
        let roster = Roster {
            kind: conversation.kind,
            members: members.iter().map(|m| m.user_id).collect(),
        };
        self.kith.lanes.keep_roster(id, roster.clone());
        Ok(roster)
    }

    /// Checks one send of a batch against the conversation and the rules,
    /// and prepares its record; says whether it took a send-rate token.
    async fn admit(
        &self,
        id: ConversationId,
        roster: &Roster,
        send: &QueuedSend,
    ) -> Result<(NewMessageRecord, bool)> {
        let actor = send.actor;
        if !roster.members.contains(&actor) {
            return Err(Error::NotFound(Entity::Conversation));
        }
        if roster.kind == ConversationKind::Direct {
            if let Some(&other) = roster.members.iter().find(|&&m| m != actor) {
                self.may_message(actor, other).await?;
            }
        }
        let input = &send.input;
        if let Some(reply_to) = input.reply_to {
            if self.kith.storage.message(id, reply_to).await?.is_none() {
                return Err(Error::invalid(
                    "reply_to",
                    "no such message in this conversation",
                ));
            }
        }
        let mut charged = false;
        if let Some(rate) = self.kith.config.send_rate {
            charged = true;
            if let Err(limited) = self.kith.rate.take(rate, actor, self.kith.clock.now()) {
                charged = false;
                // A retry of a stored message is answered with it (the
                // append finds it) and costs nothing, even at the limit.
                let stored = self
                    .kith
                    .storage
                    .message_by_client_id(actor, &input.client_id)
                    .await?;
                if stored.is_none() {
                    return Err(limited);
                }
            }
        }
        let record = NewMessageRecord {
            id: MessageId::new(self.kith.ids.next_id()),
            conversation_id: id,
            sender: actor,
            client_id: input.client_id.clone(),
            body: input.body.clone(),
            reply_to: input.reply_to,
            created_at: self.kith.clock.now(),
        };
        Ok((record, charged))
    }

    /// Loads a message of the scene that the actor sent.
    async fn own_message(
        &self,
        scene: &Scene,
        actor: UserId,
        message: MessageId,
    ) -> Result<Message> {
        let found = self
            .kith
            .storage
            .message(scene.conversation.id, message)
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        if found.sender != actor {
            return Err(Error::Forbidden(Denied::NotSender));
        }
        Ok(found)
    }

    /// Edits a message the actor sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`body`); [`Error::NotFound`] if the actor is
    /// not a member or the message does not exist or is deleted;
    /// [`Error::Forbidden`] ([`Denied::NotSender`]) for someone else's
    /// message, or in a direct conversation with a block in either direction.
    pub async fn edit(
        &self,
        actor: UserId,
        id: ConversationId,
        message: MessageId,
        body: &str,
    ) -> Result<Message> {
        let body = validate::message_body("body", body, self.kith.config.max_message_chars)?;
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.may_change(&scene, actor).await?;
        self.own_message(&scene, actor, message).await?;
        let edited = self
            .kith
            .storage
            .edit_message(id, message, &body, self.kith.clock.now())
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        self.kith.emit(Delivery::new(
            Event::MessageEdited {
                message: edited.clone(),
            },
            scene.recipients(),
        ));
        Ok(edited)
    }

    /// Deletes a message the actor sent, for everyone. The message stays as a
    /// tombstone with its `seq`. Deleting it again changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member or the message does
    /// not exist; [`Error::Forbidden`] ([`Denied::NotSender`]) for someone
    /// else's message, or in a direct conversation with a block in either
    /// direction.
    pub async fn delete(
        &self,
        actor: UserId,
        id: ConversationId,
        message: MessageId,
    ) -> Result<Message> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.may_change(&scene, actor).await?;
        self.own_message(&scene, actor, message).await?;
        let updated = self
            .kith
            .storage
            .delete_message(id, message, self.kith.clock.now())
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        if updated.changed {
            self.kith.emit(Delivery::new(
                Event::MessageDeleted {
                    message: updated.message.clone(),
                },
                scene.recipients(),
            ));
        }
        Ok(updated.message)
    }

    /// Sets (`Some`) or removes (`None`) the actor's reaction to a message.
    /// A user has at most one reaction per message; setting another replaces it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member or the message does
    /// not exist or is deleted; [`Error::Forbidden`] in a direct conversation
    /// with a block in either direction.
    pub async fn react(
        &self,
        actor: UserId,
        id: ConversationId,
        message: MessageId,
        kind: Option<ReactionKind>,
    ) -> Result<Message> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.may_change(&scene, actor).await?;
        let updated = self
            .kith
            .storage
            .set_reaction(id, message, actor, kind)
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        if updated.changed {
            self.kith.emit(Delivery::new(
                Event::ReactionChanged {
                    message: updated.message.clone(),
                    user_id: actor,
                    kind,
                },
                scene.recipients(),
            ));
        }
        Ok(updated.message)
    }

    /// Who is told that the actor is typing in a conversation: its other
    /// members. Typing indicators are not stored; the transport relays them
    /// (and may coalesce or switch them off).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member; [`Error::Forbidden`]
    /// in a direct conversation with a block in either direction.
    pub async fn typing(&self, actor: UserId, id: ConversationId) -> Result<Vec<UserId>> {
        let scene = self.scene(actor, id).await?;
        self.may_change(&scene, actor).await?;
        Ok(scene
            .members
            .iter()
            .map(|m| m.user_id)
            .filter(|&u| u != actor)
            .collect())
    }

    /// A page of the conversation's history, by `seq`, in either direction.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member;
    /// [`Error::InvalidInput`] (`limit`).
    pub async fn history(
        &self,
        actor: UserId,
        id: ConversationId,
        from: History,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        let limit = Page {
            cursor: None,
            limit,
        }
        .limit()?;
        self.scene(actor, id).await?;
        let fetch = limit + 1;
        let range = match from {
            History::Latest => SeqRange::Latest { limit: fetch },
            History::Before(seq) => SeqRange::Before { seq, limit: fetch },
            History::After(seq) => SeqRange::After { seq, limit: fetch },
        };
        let mut messages = self.kith.storage.messages(id, range).await?;
        let more = messages.len() > limit as usize;
        if more {
            match from {
                // The extra row is the oldest one.
                History::Latest | History::Before(_) => {
                    messages.remove(0);
                }
                History::After(_) => messages.truncate(limit as usize),
            }
        }
        Ok(HistoryPage { messages, more })
    }

    /// Marks the conversation read up to `seq` for the actor. Read positions
    /// only move forward; an older `seq` changes nothing. Members are told
    /// (read receipts) when the position moves.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member;
    /// [`Error::InvalidInput`] (`seq`) beyond the newest message.
    pub async fn mark_read(
        &self,
        actor: UserId,
        id: ConversationId,
        seq: u64,
    ) -> Result<ReadState> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        let last_seq = scene.conversation.last_seq;
        if seq > last_seq {
            return Err(Error::invalid(
                "seq",
                format!("the newest message is {last_seq}"),
            ));
        }
        let now = self
            .kith
            .storage
            .mark_read(id, actor, seq)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        if now > scene.me.last_read_seq {
            self.kith.emit(Delivery::new(
                Event::ReadUpdated {
                    conversation_id: id,
                    user_id: actor,
                    last_read_seq: now,
                },
                scene.recipients(),
            ));
        }
        Ok(ReadState {
            conversation_id: id,
            last_read_seq: now,
            unread: last_seq.saturating_sub(now),
        })
    }

    /// The actor's unread counts, per conversation and in total.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn unread(&self, actor: UserId) -> Result<UnreadCounts> {
        self.kith.storage.unread_counts(actor).await
    }

    /// The actor's conversations, most recently active first, each with its
    /// last message and unread count.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `limit` or `cursor`.
    pub async fn conversations(
        &self,
        actor: UserId,
        page: &Page,
    ) -> Result<Paged<ConversationSummary>> {
        let (window, limit) = page.window::<ActivityKey>("conversations")?;
        let rows = self.kith.storage.conversations(actor, window).await?;
        Ok(Paged::from_rows(rows, limit, |s| ActivityKey {
            last_activity: s.conversation.last_activity,
            id: s.conversation.id,
        }))
    }

    /// The changes to a conversation after version `since`, for a client that
    /// was away: every message sent, edited, deleted or reacted to, every
    /// membership change and rename, in version order and in their current
    /// state, covering at most `limit` versions (default and maximum
    /// [`MAX_CHANGES`]). Call again with `until` while `more` is true.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member;
    /// [`Error::InvalidInput`] (`since`) beyond the conversation's version, or
    /// (`limit`) outside 1 to [`MAX_CHANGES`].
    pub async fn changes_since(
        &self,
        actor: UserId,
        id: ConversationId,
        since: u64,
        limit: Option<u32>,
    ) -> Result<ChangeSet> {
        let limit = limit.unwrap_or(MAX_CHANGES);
        if !(1..=MAX_CHANGES).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_CHANGES}"),
            ));
        }
        let scene = self.scene(actor, id).await?;
        let version = scene.conversation.version;
        if since > version {
            return Err(Error::invalid(
                "since",
                format!("the conversation is at version {version}"),
            ));
        }
        let until = version.min(since + u64::from(limit));
        let changes = self.kith.storage.changes(id, since, until).await?;
        Ok(ChangeSet {
            conversation_id: id,
            changes,
            until,
            more: until < version,
        })
    }
}
