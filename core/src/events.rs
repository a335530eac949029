//! Events: what Kith tells the transport after a change has committed.
//!
//! Kith never knows about sockets. After each state change that someone should
//! see live, it hands one [`Delivery`] (an [`Event`] and its exact recipients)
//! to the [`EventSink`] it was built with. The WebSocket transport implements
//! the sink; tests use [`RecordingSink`].

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::chat::{Change, Conversation, Member, MemberRole, Message, ReactionKind};
use crate::clock::Timestamp;
use crate::ids::{ConversationId, FriendRequestId, PostId, SessionId, UserId};
use crate::model::{FriendRequest, Friendship};

/// A change someone should see live. Serialised with a `type` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A friend request was sent. Recipients: sender and recipient.
    FriendRequestSent {
        /// The request.
        request: FriendRequest,
    },
    /// The sender withdrew a friend request. Recipients: sender and recipient.
    FriendRequestCancelled {
        /// The withdrawn request.
        request_id: FriendRequestId,
        /// Its sender.
        from: UserId,
        /// Its recipient.
        to: UserId,
    },
    /// The recipient declined a friend request. Recipients: the recipient
    /// only; the sender is not told.
    FriendRequestDeclined {
        /// The declined request.
        request_id: FriendRequestId,
        /// Its sender.
        from: UserId,
        /// Its recipient.
        to: UserId,
    },
    /// Two users became friends. Recipients: both.
    FriendAdded {
        /// The friendship.
        friendship: Friendship,
    },
    /// A friendship ended by unfriending. Recipients: both.
    FriendRemoved {
        /// Who ended it.
        by: UserId,
        /// The former friend.
        other: UserId,
    },
    /// A user followed another. Recipients: both.
    Followed {
        /// The new follower.
        follower: UserId,
        /// The user now followed.
        followee: UserId,
        /// When.
        since: Timestamp,
    },
    /// A user stopped following another. Recipients: the former follower only.
    Unfollowed {
        /// The former follower.
        follower: UserId,
        /// The user no longer followed.
        followee: UserId,
    },
    /// The actor blocked a user. Recipients: the blocker only; the blocked
    /// user is never told.
    Blocked {
        /// Who blocked.
        blocker: UserId,
        /// Who was blocked.
        blocked: UserId,
    },
    /// The actor unblocked a user. Recipients: the blocker only.
    Unblocked {
        /// Who unblocked.
        blocker: UserId,
        /// Who was unblocked.
        blocked: UserId,
    },
    /// The actor muted a user. Recipients: the muter only.
    Muted {
        /// Who muted.
        muter: UserId,
        /// Who was muted.
        muted: UserId,
    },
    /// The actor unmuted a user. Recipients: the muter only.
    Unmuted {
        /// Who unmuted.
        muter: UserId,
        /// Who was unmuted.
        muted: UserId,
    },
    /// A user edited their profile. Recipients: the user (their other devices).
    ProfileUpdated {
        /// Whose profile.
        user_id: UserId,
    },
    /// Sessions were revoked (logout, password change): transports should
    /// close connections opened with them. Recipients: their owner.
    SessionsRevoked {
        /// Whose sessions.
        user_id: UserId,
        /// The revoked sessions.
        sessions: Vec<SessionId>,
    },
    /// A conversation was created. Recipients: its members.
    ConversationCreated {
        /// The new conversation.
        conversation: Conversation,
        /// Its members.
        members: Vec<Member>,
    },
    /// Members were added to a group. Recipients: every member, old and new.
    MembersAdded {
        /// The group.
        conversation_id: ConversationId,
        /// The new members.
        members: Vec<Member>,
        /// Who added them.
        by: UserId,
        /// The conversation version of this change.
        version: u64,
    },
    /// A member left or was removed. Recipients: the members before the
    /// change, including the one who left.
    MemberRemoved {
        /// The group.
        conversation_id: ConversationId,
        /// Who is gone.
        user_id: UserId,
        /// Who removed them (themselves when leaving).
        by: UserId,
        /// The member made admin because the last admin left, if any.
        promoted: Option<UserId>,
        /// The conversation version of this change.
        version: u64,
    },
    /// A member's role changed. Recipients: the members.
    MemberRoleChanged {
        /// The group.
        conversation_id: ConversationId,
        /// Whose role.
        user_id: UserId,
        /// The new role.
        role: MemberRole,
        /// Who changed it.
        by: UserId,
        /// The conversation version of this change.
        version: u64,
    },
    /// A group was renamed. Recipients: the members.
    ConversationRenamed {
        /// The group.
        conversation_id: ConversationId,
        /// The new title.
        title: String,
        /// Who renamed it.
        by: UserId,
        /// The conversation version of this change.
        version: u64,
    },
    /// A message was sent. Recipients: the members, the sender included.
    MessageCreated {
        /// The message, with its `seq` and `version`.
        message: Message,
    },
    /// A message was edited. Recipients: the members.
    MessageEdited {
        /// The message now.
        message: Message,
    },
    /// A message was deleted; it is now a tombstone. Recipients: the members.
    MessageDeleted {
        /// The tombstone.
        message: Message,
    },
    /// A reaction was set, replaced or removed. Recipients: the members.
    ReactionChanged {
        /// The message with its reactions now.
        message: Message,
        /// Who reacted.
        user_id: UserId,
        /// The reaction now (`None`: removed).
        kind: Option<ReactionKind>,
    },
    /// A member's read position moved forward (a read receipt). Recipients:
    /// the members.
    ReadUpdated {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who read.
        user_id: UserId,
        /// The newest message they have read.
        last_read_seq: u64,
    },
    /// An account was deleted. Recipients: the account (to close its
    /// connections) and its former friends.
    AccountDeleted {
        /// The deleted account.
        user_id: UserId,
    },
    /// A change to a conversation committed on another node, read from
    /// storage, in its current state (as a replay gives it). Recipients:
    /// the members, and the member who left for a departure.
    Change {
        /// The conversation.
        conversation_id: ConversationId,
        /// The change.
        change: Change,
    },
    /// A member is typing (not stored). Recipients: the other members.
    Typing {
        /// Where.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
        /// How long the indicator lasts unless repeated.
        expires_in_ms: u64,
    },
    /// A post was published. Recipients: its author and, as far as its
    /// visibility lets them read it, the author's friends (friends-only and
    /// public posts) and followers (public posts), except those who mute
    /// the author. The event names the post; clients read it with
    /// [`crate::Posts::get`] (`GET /api/v1/posts/{id}`).
    PostCreated {
        /// The post.
        post_id: PostId,
        /// Its author.
        author_id: UserId,
    },
    /// A user came online or went offline (not stored). Recipients: who
    /// may see it ([`crate::Graph::presence_audience`]).
    Presence {
        /// Who.
        user_id: UserId,
        /// Whether they have an open connection.
        online: bool,
        /// When they went offline (absent while online).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<Timestamp>,
    },
}

impl Event {
    /// The conversation and version of a versioned change to a
    /// conversation (messages, reactions, memberships, renames), which
    /// every node delivers in version order; `None` for the other events.
    pub fn conversation_version(&self) -> Option<(ConversationId, u64)> {
        match self {
            Event::MessageCreated { message }
            | Event::MessageEdited { message }
            | Event::MessageDeleted { message }
            | Event::ReactionChanged { message, .. } => {
                Some((message.conversation_id, message.version))
            }
            Event::MembersAdded {
                conversation_id,
                version,
                ..
            }
            | Event::MemberRemoved {
                conversation_id,
                version,
                ..
            }
            | Event::MemberRoleChanged {
                conversation_id,
                version,
                ..
            }
            | Event::ConversationRenamed {
                conversation_id,
                version,
                ..
            } => Some((*conversation_id, *version)),
            Event::Change {
                conversation_id,
                change,
            } => Some((*conversation_id, change.version())),
            _ => None,
        }
    }
}

/// An event and exactly who should receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The users to deliver to, without duplicates.
    pub recipients: Vec<UserId>,
    /// The event.
    pub event: Event,
}

impl Delivery {
    /// A delivery to `recipients`, de-duplicated with their order kept.
    pub fn new(event: Event, recipients: impl IntoIterator<Item = UserId>) -> Self {
        let mut list: Vec<UserId> = recipients.into_iter().collect();
        if list.len() <= 16 {
            let mut kept = 0;
            for i in 0..list.len() {
                if !list[..kept].contains(&list[i]) {
                    list[kept] = list[i];
                    kept += 1;
                }
            }
            list.truncate(kept);
        } else {
            // Large groups: linear time instead of quadratic.
            let mut seen = std::collections::HashSet::with_capacity(list.len());
            list.retain(|r| seen.insert(*r));
        }
        Self {
            recipients: list,
            event,
        }
    }
}

/// The transport seam: receives every [`Delivery`] after its change committed.
///
/// `publish` is called on the caller's task and must not block or wait on
/// slow recipients: queue the delivery and return.
pub trait EventSink: Send + Sync {
    /// Hands a delivery to the transport.
    fn publish(&self, delivery: Delivery);

    /// Hands several deliveries over at once, to be delivered in this order:
    /// Kith publishes the messages of one batch of sends together, so a
    /// transport can queue them together (and wake each connection once).
    /// The default publishes them one after the other.
    fn publish_all(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.publish(delivery);
        }
    }

    /// Events from other nodes may have been lost (the broker's connection
    /// dropped and came back). Conversations are caught up from storage,
    /// but the unversioned events are gone: a transport closes its
    /// connections with a code that asks clients to reconnect and resume.
    /// The default does nothing.
    fn missed(&self) {}
}

/// A sink that drops every event, for apps without a real-time transport.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl EventSink for NoopSink {
    fn publish(&self, _delivery: Delivery) {}
}

/// A sink that keeps every delivery in memory; for tests and debugging.
#[derive(Debug, Default)]
pub struct RecordingSink(Mutex<Vec<Delivery>>);

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns everything recorded so far, oldest first.
    pub fn take(&self) -> Vec<Delivery> {
        match self.0.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl EventSink for RecordingSink {
    fn publish(&self, delivery: Delivery) {
        match self.0.lock() {
            Ok(mut guard) => guard.push(delivery),
            Err(poisoned) => poisoned.into_inner().push(delivery),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_type_tag() {
        let e = Event::Blocked {
            blocker: UserId::new(1),
            blocked: UserId::new(2),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "blocked");
        assert_eq!(v["blocker"], "1");
    }

    #[test]
    fn large_deliveries_deduplicate_recipients_in_order() {
        let ids: Vec<UserId> = (0..40).chain(0..40).map(UserId::new).collect();
        let d = Delivery::new(
            Event::ProfileUpdated {
                user_id: UserId::new(1),
            },
            ids,
        );
        assert_eq!(d.recipients, (0..40).map(UserId::new).collect::<Vec<_>>());
    }

    #[test]
    fn deliveries_deduplicate_recipients() {
        let d = Delivery::new(
            Event::ProfileUpdated {
                user_id: UserId::new(1),
            },
            [UserId::new(1), UserId::new(2), UserId::new(1)],
        );
        assert_eq!(d.recipients, vec![UserId::new(1), UserId::new(2)]);
    }
}
