//! The broker seam: how the nodes sharing one storage tell each other what
//! changed, so that each delivers every change to its own connections.
//!
//! A node (a [`Kith`](crate::Kith) handle) that commits a change delivers it
//! to its own [`EventSink`](crate::EventSink) and, after the commit,
//! publishes a [`Notice`] through the [`Broker`]: for a conversation only its
//! id and new version (the other nodes read the change from storage, see
//! the sequencer in [`Kith`](crate::Kith)'s docs), for an unversioned event
//! (typing, presence, read receipts, friend requests, revoked sessions...)
//! the event itself. Every node subscribes to the broker when it is built
//! and ignores its own notices.
//!
//! What a broker must do, and what it may fail to do:
//! - deliver each batch of notices to every subscriber, possibly late,
//!   possibly never (a lost conversation notice costs latency, because each
//!   node polls the versions of the conversations it serves; a lost event
//!   notice is lost for the connections of the nodes that missed it);
//! - call [`Subscriber::lost`] when it knows that notices may have been lost
//!   (its connection dropped and came back), so that nodes catch up from
//!   storage and close the connections they cannot catch up.
//!
//! [`MemoryBroker`] connects handles in one process (tests, and several
//! handles over one storage). `kith-postgres` has one over PostgreSQL's
//! `LISTEN/NOTIFY`; a Redis or NATS broker can implement the same trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::events::Delivery;
use crate::ids::ConversationId;

/// What a node tells the others after a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "n", rename_all = "snake_case")]
pub enum Notice {
    /// A conversation reached `version`: its changes up to it are in
    /// storage (ids only; the receivers read them).
    Conversation {
        /// The conversation.
        id: ConversationId,
        /// Its version after the commit.
        version: u64,
    },
    /// A conversation was created: the receivers read it and its members
    /// and tell the members' connections.
    Created {
        /// The new conversation.
        id: ConversationId,
        /// Its version at creation.
        version: u64,
    },
    /// An unversioned event, for the recipients' connections on every node.
    Event(Delivery),
}

/// The notices of one node, in the order it published them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeBatch {
    /// The publishing node ([`crate::Kith::origin`]); a node ignores its own.
    pub origin: u64,
    /// The notices.
    pub notices: Vec<Notice>,
}

/// A node listening to a broker: the [`Kith`](crate::Kith) handle registers
/// itself when it is built with [`KithBuilder::broker`](crate::KithBuilder::broker).
pub trait Subscriber: Send + Sync {
    /// Notices published by some node (possibly this one, which ignores its
    /// own). Must not block: it queues work and returns.
    fn receive(&self, batch: NoticeBatch);

    /// Notices may have been lost (the broker's connection dropped and came
    /// back): catch up from storage.
    fn lost(&self);
}

/// Carries notices between the nodes sharing one storage.
pub trait Broker: Send + Sync {
    /// Publishes a batch after the commit it tells of. Never waits: a
    /// broker queues the batch and sends it from a task of its own
    /// (coalescing as it likes, as long as each conversation's highest
    /// version and every event survive).
    fn publish(&self, batch: NoticeBatch);

    /// Adds a subscriber; every later batch reaches it.
    fn subscribe(&self, subscriber: Arc<dyn Subscriber>);
}

/// The subscribers of a broker: what every [`Broker`] keeps and hands
/// batches to. Cheap to clone (clones share the list), so a broker's task
/// can hold one.
#[derive(Clone, Default)]
pub struct Subscribers(Arc<Mutex<Vec<Arc<dyn Subscriber>>>>);

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribers")
            .field("len", &self.all().len())
            .finish()
    }
}

impl Subscribers {
    /// Adds a subscriber.
    pub fn add(&self, subscriber: Arc<dyn Subscriber>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(subscriber);
    }

    /// Hands `batch` to every subscriber (outside the list's lock).
    pub fn receive(&self, batch: &NoticeBatch) {
        for subscriber in self.all() {
            subscriber.receive(batch.clone());
        }
    }

    /// Tells every subscriber that notices were lost.
    pub fn lost(&self) {
        for subscriber in self.all() {
            subscriber.lost();
        }
    }

    fn all(&self) -> Vec<Arc<dyn Subscriber>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A broker inside one process: every batch published reaches every
/// subscriber at once, on the publisher's thread. For several handles over
/// one storage in one process, and for tests, which can make it drop
/// batches ([`MemoryBroker::drop_next`]) to see that nothing depends on it.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    subscribers: Subscribers,
    /// Batches to drop before delivering again.
    dropping: AtomicU64,
    /// Batches dropped so far.
    dropped: AtomicU64,
}

impl MemoryBroker {
    /// A broker with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the next `n` batches published (as a broker losing
    /// notifications would).
    pub fn drop_next(&self, n: u64) {
        self.dropping.store(n, Ordering::SeqCst);
    }

    /// How many batches were dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, batch: NoticeBatch) {
        let dropping = self
            .dropping
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if dropping.is_ok() {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.subscribers.receive(&batch);
    }

    fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.subscribers.add(subscriber);
    }
}
