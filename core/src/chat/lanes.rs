//! One async lock per conversation, so that a conversation's changes are
//! stored and published one at a time and reach the event sink in version
//! order, however many tasks write to it at once. Conversations do not wait
//! for each other: the locks are created on demand in a sharded map and
//! dropped when nobody holds or waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::lock::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::ids::ConversationId;

const SHARDS: usize = 32;

type Lane = Arc<AsyncMutex<()>>;

/// The per-conversation locks.
pub(crate) struct Lanes {
    shards: Vec<Mutex<HashMap<ConversationId, Lane>>>,
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// Holds a conversation's lane until dropped.
pub(crate) struct LaneGuard<'a> {
    lanes: &'a Lanes,
    id: ConversationId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Lanes {
    fn shard(&self, id: ConversationId) -> &Mutex<HashMap<ConversationId, Lane>> {
        &self.shards[(id.get() % SHARDS as u64) as usize]
    }

    /// Waits for the conversation's lane and holds it.
    pub async fn enter(&self, id: ConversationId) -> LaneGuard<'_> {
        let lane = {
            let mut map = lock(self.shard(id));
            Arc::clone(map.entry(id).or_default())
        };
        let guard = lane.lock_owned().await;
        LaneGuard {
            lanes: self,
            id,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl Drop for LaneGuard<'_> {
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
