//! Changes to messages (edit, delete, reactions), typing, history, read
//! state, the conversation list and the change log a client resumes from.

use super::*;
use crate::error::{Denied, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::page::{ActivityKey, Page, Paged};
use crate::rate::WriteKind;
use crate::storage::{SeqRange, Updated};
use crate::validate;

impl Chat<'_> {
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
    /// tombstone with its `seq`. Deleting it again changes nothing. Returns
    /// the message as it is now and whether this call changed it.
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
    ) -> Result<Updated> {
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
        Ok(updated)
    }

    /// Sets (`Some`) or removes (`None`) the actor's reaction to a message.
    /// A user has at most one reaction per message; setting another replaces it.
    /// Returns the message as it is now and whether this call changed it
    /// (setting the reaction one already has, or removing none, does not).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member or the message does
    /// not exist or is deleted; [`Error::Forbidden`] in a direct conversation
    /// with a block in either direction; [`Error::RateLimited`] beyond the
    /// actor's reaction rate (setting one, not removing it;
    /// [`Config::write_rates`](crate::Config::write_rates)).
    pub async fn react(
        &self,
        actor: UserId,
        id: ConversationId,
        message: MessageId,
        kind: Option<ReactionKind>,
    ) -> Result<Updated> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.may_change(&scene, actor).await?;
        if kind.is_some() {
            self.kith.take_write(actor, WriteKind::Reaction).await?;
        }
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
        Ok(updated)
    }

    /// A message of a conversation the actor is a current member of.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member or the message does
    /// not exist or is deleted.
    pub async fn message(
        &self,
        actor: UserId,
        id: ConversationId,
        message: MessageId,
    ) -> Result<Message> {
        self.scene(actor, id).await?;
        self.kith
            .storage
            .message(id, message)
            .await?
            .filter(|m| m.deleted_at.is_none())
            .ok_or(Error::NotFound(Entity::Message))
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
            changed: now > scene.me.last_read_seq,
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
