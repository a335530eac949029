//! One async lock per conversation, so that a conversation's changes are
//! stored and published one at a time and reach the event sink in version
//! order, however many tasks write to it at once. Conversations do not wait
//! for each other: the locks are created on demand in a sharded map and
//! dropped when nobody holds or waits for them.
//!
//! Sends do not take the lane one by one. [`Lanes::queue_send`] puts a send
//! in its conversation's queue at once (so sends queued one after the other
//! by one caller keep that order), and whichever send gets the lane next
//! takes every send waiting and runs them as one batch: one look at the
//! members, one call to the store (so one commit), then their events in
//! order. While a batch commits, the next one queues up, so a busy
//! conversation's batches grow with its load.
//!
//! Batches read who is in the conversation from a [`Roster`] kept here per
//! conversation: loaded from the store by the first batch, dropped by every
//! membership change (which holds the lane, as batches do), and used only
//! while the conversation's membership version in storage is still the one
//! it was loaded at, so a membership change made by another writer (another
//! `Kith` handle or process) is seen by the next batch. The lanes order one
//! handle's writes; storage's transactions keep every number and rule right
//! across handles.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::lock::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::model::{ConversationKind, Message};
use super::NewMessage;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};

const SHARDS: usize = 32;

/// The most sends one batch takes.
pub(crate) const MAX_SEND_BATCH: usize = 256;

type Lane = Arc<AsyncMutex<()>>;
type SendShard = Mutex<HashMap<ConversationId, VecDeque<QueuedSend>>>;

/// The most rosters a shard keeps before it starts over.
const ROSTERS_PER_SHARD: usize = 1024;

/// A conversation's kind and current members, in the store's order.
#[derive(Clone)]
pub(crate) struct Roster {
    pub kind: ConversationKind,
    pub members: Arc<[UserId]>,
    /// The version of the membership change it reflects
    /// ([`ChatStore::membership_version`](crate::ChatStore::membership_version)),
    /// read before the members, so that a change by another writer makes
    /// the next batch load the roster again.
    pub membership: u64,
}

/// A validated send waiting for its conversation's next batch.
pub(crate) struct QueuedSend {
    ticket: u64,
    pub actor: UserId,
    /// With its body validated.
    pub input: NewMessage,
    pub reply: oneshot::Sender<Result<Message>>,
}

/// The per-conversation locks and send queues.
pub(crate) struct Lanes {
    shards: Vec<Mutex<HashMap<ConversationId, Lane>>>,
    sends: Arc<[SendShard]>,
    tickets: AtomicU64,
    rosters: Vec<Mutex<HashMap<ConversationId, Roster>>>,
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            sends: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            tickets: AtomicU64::new(0),
            rosters: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// A queued send's claim on its outcome. Dropping it before the send was
/// taken into a batch withdraws the send.
pub(crate) struct SendTicket {
    sends: Arc<[SendShard]>,
    id: ConversationId,
    ticket: u64,
    outcome: oneshot::Receiver<Result<Message>>,
}

impl SendTicket {
    /// The outcome, if the send's batch has run (or was abandoned).
    pub fn outcome(&mut self) -> Option<Result<Message>> {
        match self.outcome.try_recv() {
            Ok(Some(outcome)) => Some(outcome),
            Ok(None) => None,
            Err(oneshot::Canceled) => Some(Err(interrupted())),
        }
    }

    /// Waits for the outcome.
    pub async fn answered(&mut self) -> Result<Message> {
        (&mut self.outcome)
            .await
            .unwrap_or_else(|_| Err(interrupted()))
    }
}

/// The batch that took a send was dropped before it answered (its caller
/// went away): the send may or may not be stored.
fn interrupted() -> Error {
    Error::Internal("the send was interrupted; send again with the same client_id".into())
}

impl Drop for SendTicket {
    fn drop(&mut self) {
        let mut map = lock(send_shard(&self.sends, self.id));
        if let Some(queue) = map.get_mut(&self.id) {
            queue.retain(|s| s.ticket != self.ticket);
            if queue.is_empty() {
                map.remove(&self.id);
            }
        }
    }
}

/// Holds a conversation's lane until dropped. It owns a handle on the lanes,
/// so a batch can be handed with its lane to a spawned task.
pub(crate) struct LaneGuard {
    lanes: Arc<Lanes>,
    id: ConversationId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Lanes {
    fn shard(&self, id: ConversationId) -> &Mutex<HashMap<ConversationId, Lane>> {
        &self.shards[(id.get() % SHARDS as u64) as usize]
    }

    /// Queues a send for the conversation's next batch.
    pub fn queue_send(&self, id: ConversationId, actor: UserId, input: NewMessage) -> SendTicket {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, outcome) = oneshot::channel();
        lock(send_shard(&self.sends, id))
            .entry(id)
            .or_default()
            .push_back(QueuedSend {
                ticket,
                actor,
                input,
                reply,
            });
        SendTicket {
            sends: Arc::clone(&self.sends),
            id,
            ticket,
            outcome,
        }
    }

    /// Takes the conversation's waiting sends, oldest first, at most
    /// [`MAX_SEND_BATCH`]; call with the lane held.
    pub fn take_sends(&self, id: ConversationId) -> Vec<QueuedSend> {
        let mut map = lock(send_shard(&self.sends, id));
        let Some(queue) = map.get_mut(&id) else {
            return Vec::new();
        };
        let n = queue.len().min(MAX_SEND_BATCH);
        let batch: Vec<QueuedSend> = queue.drain(..n).collect();
        if queue.is_empty() {
            map.remove(&id);
        }
        batch
    }

    fn roster_shard(&self, id: ConversationId) -> &Mutex<HashMap<ConversationId, Roster>> {
        &self.rosters[(id.get() % SHARDS as u64) as usize]
    }

    /// The conversation's roster, if kept; call with the lane held.
    pub fn roster(&self, id: ConversationId) -> Option<Roster> {
        lock(self.roster_shard(id)).get(&id).cloned()
    }

    /// Keeps the conversation's roster as just loaded; call with the lane held.
    pub fn keep_roster(&self, id: ConversationId, roster: Roster) {
        let mut map = lock(self.roster_shard(id));
        if map.len() >= ROSTERS_PER_SHARD {
            map.clear();
        }
        map.insert(id, roster);
    }

    /// Drops the conversation's roster before its membership changes; call
    /// with the lane held.
    pub fn forget_roster(&self, id: ConversationId) {
        lock(self.roster_shard(id)).remove(&id);
    }

    /// Waits for the conversation's lane and holds it.
    pub async fn enter(self: &Arc<Self>, id: ConversationId) -> LaneGuard {
        let lane = {
            let mut map = lock(self.shard(id));
            Arc::clone(map.entry(id).or_default())
        };
        let guard = lane.lock_owned().await;
        LaneGuard {
            lanes: Arc::clone(self),
            id,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum::<usize>()
            + self.sends.iter().map(|s| lock(s).len()).sum::<usize>()
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = lock(self.lanes.shard(self.id));
        // Only the map still refers to the lane: nobody holds or awaits it.
        if map
            .get(&self.id)
            .is_some_and(|lane| Arc::strong_count(lane) == 1)
        {
            map.remove(&self.id);
        }
    }
}

fn send_shard(sends: &[SendShard], id: ConversationId) -> &SendShard {
    &sends[(id.get() % SHARDS as u64) as usize]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_conversation_and_cleanup() {
        let lanes = Arc::new(Lanes::default());
        let a = ConversationId::new(1);
        let g = lanes.enter(a).await;
        // Another conversation is not blocked.
        drop(lanes.enter(ConversationId::new(2)).await);
        let l2 = Arc::clone(&lanes);
        let waiter = tokio::spawn(async move {
            let _g = l2.enter(a).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap();
        assert_eq!(lanes.len(), 0);
    }
}
