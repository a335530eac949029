//! Sending: each send is queued in its conversation when called, and whoever
//! takes the conversation's lane next stores every waiting send as one batch
//! (one roster, the rules per send, one `append_messages` call), publishes
//! the batch's events in order, then answers each sender. See `lanes.rs`.

use std::future::Future;
use std::sync::Arc;

use futures::future::{select, Either};

use super::lanes::{QueuedSend, Roster};
use super::*;
use crate::error::{Clash, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::storage::{Appended, NewMessageRecord};
use crate::validate;

impl Chat<'_> {
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
                Ok(record) => {
                    records.push(record);
                    accepted.push(send);
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
                for send in accepted {
                    let _ = send.reply.send(Err(e.duplicate()));
                }
                return;
            }
        };
        let mut outcomes = outcomes.into_iter();
        let mut created = Vec::with_capacity(accepted.len());
        let mut answers = Vec::with_capacity(accepted.len());
        for send in accepted {
            let outcome = match outcomes.next() {
                None => Err(Error::storage(
                    "the store answered fewer appends than asked",
                )),
                Some(Err(e)) => Err(e),
                Some(Ok(Appended::Existing(message))) if message.conversation_id == id => {
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

    /// The conversation's kind and members, kept between batches; call
    /// inside the lane.
    pub(crate) async fn roster(&self, id: ConversationId) -> Result<Roster> {
        let store = &self.kith.storage;
        // Another writer may have changed the membership: the kept roster
        // is used only while it is at the latest membership change.
        let membership = store.membership_version(id).await?;
        if let Some(roster) = self.kith.lanes.roster(id) {
            if roster.membership == membership {
                return Ok(roster);
            }
        }
        let conversation = store
            .conversation(id)
            .await?
            .ok_or(Error::NotFound(Entity::Conversation))?;
        let members = store.members(id).await?;
        let roster = Roster {
            kind: conversation.kind,
            members: members.iter().map(|m| m.user_id).collect(),
            membership,
        };
        self.kith.lanes.keep_roster(id, roster.clone());
        Ok(roster)
    }

    /// Checks one send of a batch against the conversation and the rules,
    /// and prepares its record. The send rate is taken by storage, in the
    /// transaction that stores the message (a retry of a stored message
    /// takes nothing).
    async fn admit(
        &self,
        id: ConversationId,
        roster: &Roster,
        send: &QueuedSend,
    ) -> Result<NewMessageRecord> {
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
        let record = NewMessageRecord {
            id: MessageId::new(self.kith.ids.next_id()),
            conversation_id: id,
            sender: actor,
            client_id: input.client_id.clone(),
            body: input.body.clone(),
            reply_to: input.reply_to,
            created_at: self.kith.clock.now(),
            rate: self.kith.config.send_rate,
        };
        Ok(record)
    }
}
