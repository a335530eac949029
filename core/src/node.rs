//! Several writers (processes, `Kith` handles) sharing one storage: each
//! leases a node number from the storage, and its ids carry that number in
//! their low bits ([`TimeOrderedIds::for_node`](crate::TimeOrderedIds::for_node)),
//! so two writers never make the same id.
//!
//! A lease lasts a while and is renewed well before it ends; a writer that
//! stops without releasing its number (killed) frees it when the lease
//! ends. One writer alone needs no lease: it is node 0.

use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::{Clash, Error, Result};
use crate::ids::NODES;
use crate::storage::Storage;

/// A node number leased from a storage. Renew it every
/// [`NodeLease::RENEW_EVERY`] and release it on shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLease {
    node: u16,
    holder: u64,
}

impl NodeLease {
    /// How long a lease lasts from when it was taken or last renewed.
    pub const TTL: Duration = Duration::from_secs(10 * 60);
    /// How often to renew: a few renewals may fail before the lease ends.
    pub const RENEW_EVERY: Duration = Duration::from_secs(60);

    /// Leases the lowest free node number of `storage`.
    ///
    /// # Errors
    /// [`Error::Conflict`] ([`Clash::NoFreeNode`]) if every number is
    /// leased; storage errors.
    pub async fn acquire(storage: &dyn Storage, clock: &dyn Clock) -> Result<Self> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        // Below 2^63, so every backend stores it as a signed integer.
        let holder = u64::from_le_bytes(bytes) >> 1;
        let now = clock.now();
        let node = storage
            .lease_node(NODES, holder, now, until(now))
            .await?
            .ok_or(Error::Conflict(Clash::NoFreeNode))?;
        Ok(Self { node, holder })
    }

    /// The node number, for [`TimeOrderedIds::for_node`](crate::TimeOrderedIds::for_node).
    pub fn node(&self) -> u16 {
        self.node
    }

    /// Extends the lease by [`Self::TTL`] from now.
    ///
    /// # Errors
    /// [`Error::Conflict`] ([`Clash::LeaseLost`]) if the lease ended and
    /// another writer took the number: this writer must stop making ids;
    /// storage errors.
    pub async fn renew(&self, storage: &dyn Storage, clock: &dyn Clock) -> Result<()> {
        if storage
            .renew_node(self.node, self.holder, until(clock.now()))
            .await?
        {
            Ok(())
        } else {
            Err(Error::Conflict(Clash::LeaseLost))
        }
    }

    /// Ends the lease, so that the number is free at once.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn release(&self, storage: &dyn Storage) -> Result<()> {
        storage.release_node(self.node, self.holder).await
    }
}

fn until(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.as_millis() + NodeLease::TTL.as_millis() as i64)
}
