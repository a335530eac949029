//! The per-conversation sequencer of a node that shares its storage with
//! others through a [`Broker`]: every change of a conversation reaches this
//! node's sink once, in version order, whoever committed it.
//!
//! For each conversation it serves, the node keeps the last version it
//! delivered. Its own commits and the versions it hears of from other nodes
//! go through the same track:
//! - an own change at the next version is delivered at once;
//! - an own change ahead of a gap waits while the gap is read from storage;
//! - a version heard of ahead of the last delivered is read from storage.
//!
//! A read takes every change in the gap at once ([`ChatStore::changes`],
//! each in its current state) and delivers it as one [`Event::Change`] per
//! change to the conversation's members: one read per node and gap, never
//! one per recipient, and one read at a time per conversation (versions
//! heard meanwhile extend the next read). A node starts serving a
//! conversation at its creation, at the version a client's replay covered
//! ([`crate::Kith::serve`], held until [`crate::Kith::release`]), or else
//! at the first version it commits or hears of. As a safety net the
//! embedder calls [`crate::Kith::poll`] every second or two: it compares
//! the served conversations' versions with storage's, so a lost notice
//! costs latency, never delivery; it also forgets the conversations no
//! client holds that were idle for [`IDLE`].
//!
//! [`ChatStore::changes`]: crate::ChatStore::changes

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::broker::{Broker, Notice, NoticeBatch, Subscriber};
use crate::chat::{Change, MAX_CHANGES};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::events::{Delivery, Event};
use crate::ids::ConversationId;
use crate::kith::Inner;

/// How long a conversation nobody changed stays served.
pub const IDLE: Duration = Duration::from_secs(600);

const SHARDS: usize = 32;

/// One served conversation.
#[derive(Debug)]
struct Track {
    /// The last version delivered to this node's sink.
    delivered: u64,
    /// Own changes ahead of a gap, by version.
    ahead: BTreeMap<u64, Delivery>,
    /// The highest version known to be in storage and not delivered by an
    /// own change: what the next read reads up to.
    wanted: u64,
    /// A read is under way (or queued).
    reading: bool,
    /// When the conversation last changed here.
    used: Timestamp,
    /// Clients whose replay started it ([`Sequencer::serve`]) and that are
    /// still connected: a held track is never forgotten.
    holders: u32,
}

impl Track {
    fn new(delivered: u64, now: Timestamp) -> Self {
        Self {
            delivered,
            ahead: BTreeMap::new(),
            wanted: delivered,
            reading: false,
            used: now,
            holders: 0,
        }
    }

    /// Delivers the own changes that follow `delivered` without a gap;
    /// then, if some wait after a gap, asks for a read through the last of
    /// them: the read delivers them too, in their current state, so that a
    /// client never gets a change of a message (an edit) whose earlier
    /// versions the read coalesced away.
    fn drain(&mut self, out: &mut Vec<Delivery>) {
        self.ahead = self.ahead.split_off(&(self.delivered + 1));
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.delivered + 1 {
                if let Some((&last, _)) = self.ahead.last_key_value() {
                    self.wanted = self.wanted.max(last);
                }
                break;
            }
            self.delivered += 1;
            out.push(entry.remove());
        }
    }

    /// Whether a read must start (and marks it started).
    fn start_read(&mut self) -> bool {
        if self.reading || self.wanted <= self.delivered {
            return false;
        }
        self.reading = true;
        true
    }
}

type Shard = Mutex<HashMap<ConversationId, Arc<Mutex<Track>>>>;

/// A node's sequencer and its link to the broker.
pub(crate) struct Sequencer {
    inner: Weak<Inner>,
    broker: Arc<dyn Broker>,
    origin: u64,
    shards: Vec<Shard>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sequencer {
    pub(crate) fn new(inner: Weak<Inner>, broker: Arc<dyn Broker>, origin: u64) -> Self {
        Self {
            inner,
            broker,
            origin,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub(crate) fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    fn shard(&self, id: ConversationId) -> &Shard {
        &self.shards[(id.get() % SHARDS as u64) as usize]
    }

    /// The conversation's track, created at `start` if it has none.
    fn track(&self, id: ConversationId, start: u64, now: Timestamp) -> Arc<Mutex<Track>> {
        let mut shard = lock(self.shard(id));
        Arc::clone(
            shard
                .entry(id)
                .or_insert_with(|| Arc::new(Mutex::new(Track::new(start, now)))),
        )
    }

    /// Hands this node's committed changes over, in commit order: to the
    /// sink (through each conversation's track for the versioned ones) and
    /// to the other nodes.
    pub(crate) fn publish(self: &Arc<Self>, inner: &Inner, deliveries: Vec<Delivery>) {
        let now = inner.clock.now();
        let mut notices: Vec<Notice> = Vec::new();
        let mut direct: Vec<Delivery> = Vec::new();
        let mut versions: Vec<(ConversationId, u64)> = Vec::new();
        let mut reads = Vec::new();
        // Runs of one conversation's changes go through its track together.
        let mut rest = deliveries.into_iter().peekable();
        while let Some(delivery) = rest.next() {
            let Some((id, version)) = delivery.event.conversation_version() else {
                match &delivery.event {
                    Event::ConversationCreated { conversation, .. } => {
                        self.track(conversation.id, conversation.version, now);
                        notices.push(Notice::Created {
                            id: conversation.id,
                            version: conversation.version,
                        });
                    }
                    _ => notices.push(Notice::Event(delivery.clone())),
                }
                direct.push(delivery);
                continue;
            };
            if !direct.is_empty() {
                inner.sink.publish_all(std::mem::take(&mut direct));
            }
            let mut run = vec![(version, delivery)];
            while let Some(next) = rest.peek() {
                match next.event.conversation_version() {
                    Some((next_id, v)) if next_id == id => {
                        if let Some(next) = rest.next() {
                            run.push((v, next));
                        }
                    }
                    _ => break,
                }
            }
            let highest = run.iter().map(|(v, _)| *v).max().unwrap_or(version);
            match versions.iter_mut().find(|(c, _)| *c == id) {
                Some(entry) => entry.1 = entry.1.max(highest),
                None => versions.push((id, highest)),
            }
            let track = self.track(id, version.saturating_sub(1), now);
            let mut t = lock(&track);
            t.used = now;
            let mut out = Vec::new();
            for (v, d) in run {
                if v > t.delivered {
                    t.ahead.insert(v, d);
                }
            }
            t.drain(&mut out);
            if !out.is_empty() {
                inner.sink.publish_all(out);
            }
            if t.start_read() {
                reads.push(id);
            }
        }
        if !direct.is_empty() {
            inner.sink.publish_all(direct);
        }
        notices.extend(
            versions
                .into_iter()
                .map(|(id, version)| Notice::Conversation { id, version }),
        );
        if !notices.is_empty() {
            self.broker.publish(NoticeBatch {
                origin: self.origin,
                notices,
            });
        }
        for id in reads {
            self.spawn_read(inner, id);
        }
    }

    /// Runs the read of a conversation's gap as a task of its own, if the
    /// embedder gave a spawner; otherwise the next [`Self::poll`] does it.
    fn spawn_read(self: &Arc<Self>, inner: &Inner, id: ConversationId) {
        match &inner.spawner {
            Some(spawner) => {
                let this = Arc::clone(self);
                spawner.spawn(Box::pin(async move {
                    // A failed read leaves the gap to the next poll.
                    let _ = this.read(id).await;
                }));
            }
            None => {
                if let Some(track) = lock(self.shard(id)).get(&id) {
                    lock(track).reading = false;
                }
            }
        }
    }

    /// Reads the conversation's gaps from storage and delivers them, until
    /// none is left.
    async fn read(&self, id: ConversationId) -> Result<()> {
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        let Some(track) = lock(self.shard(id)).get(&id).cloned() else {
            return Ok(());
        };
        loop {
            let (since, until) = {
                let mut t = lock(&track);
                if t.wanted <= t.delivered {
                    t.reading = false;
                    return Ok(());
                }
                (
                    t.delivered,
                    t.wanted.min(t.delivered + u64::from(MAX_CHANGES)),
                )
            };
            let read = async {
                let changes = inner.storage.changes(id, since, until).await?;
                // The roster the sends use, kept between reads while the
                // membership does not move.
                let roster = crate::Chat { kith: &inner }.roster(id).await?;
                Ok::<_, crate::Error>((changes, roster.members))
            }
            .await;
            let (changes, members) = match read {
                Ok(read) => read,
                Err(err) => {
                    lock(&track).reading = false;
                    return Err(err);
                }
            };
            let recipients: Vec<_> = members.to_vec();
            let mut t = lock(&track);
            let mut out: Vec<Delivery> = changes
                .into_iter()
                .filter(|change| change.version() > t.delivered)
                .map(|change| {
                    let mut to = recipients.clone();
                    if let Change::Member {
                        member, left: true, ..
                    } = &change
                    {
                        to.push(member.user_id);
                    }
                    Delivery::new(
                        Event::Change {
                            conversation_id: id,
                            change,
                        },
                        to,
                    )
                })
                .collect();
            t.delivered = t.delivered.max(until);
            t.drain(&mut out);
            out.retain(|d| !d.recipients.is_empty());
            if !out.is_empty() {
                inner.sink.publish_all(out);
            }
        }
    }

    /// A version heard of from another node (or found by a poll).
    fn heard(self: &Arc<Self>, inner: &Inner, id: ConversationId, version: u64) {
        let track = self.track(id, version.saturating_sub(1), inner.clock.now());
        let mut t = lock(&track);
        if version > t.wanted {
            t.wanted = version;
        }
        if t.start_read() {
            drop(t);
            self.spawn_read(inner, id);
        }
    }

    /// Starts serving a conversation at `version` (what a client's replay
    /// covered), unless it is served already, and holds it until
    /// [`Self::release`].
    pub(crate) fn serve(&self, id: ConversationId, version: u64, now: Timestamp) {
        let track = self.track(id, version, now);
        lock(&track).holders += 1;
    }

    /// Lets go of a conversation held by [`Self::serve`].
    pub(crate) fn release(&self, id: ConversationId) {
        if let Some(track) = lock(self.shard(id)).get(&id) {
            let mut t = lock(track);
            t.holders = t.holders.saturating_sub(1);
        }
    }

    /// Compares every served conversation's version with storage's and
    /// reads what is missing (in this call, one conversation after the
    /// other); forgets conversations idle for [`IDLE`].
    pub(crate) async fn poll(self: &Arc<Self>, inner: &Inner) -> Result<()> {
        let now = inner.clock.now();
        let idle_before = now.as_millis() - IDLE.as_millis() as i64;
        let mut served = Vec::new();
        for shard in &self.shards {
            lock(shard).retain(|id, track| {
                let t = lock(track);
                let keep = t.holders > 0
                    || t.reading
                    || !t.ahead.is_empty()
                    || t.used.as_millis() >= idle_before;
                if keep {
                    served.push(*id);
                }
                keep
            });
        }
        if served.is_empty() {
            return Ok(());
        }
        let versions = inner.storage.versions(&served).await?;
        let mut behind = Vec::new();
        for (id, version) in versions {
            let Some(track) = lock(self.shard(id)).get(&id).cloned() else {
                continue;
            };
            let mut t = lock(&track);
            t.wanted = t.wanted.max(version);
            if t.wanted > t.delivered && !t.reading {
                t.reading = true;
                behind.push(id);
            }
        }
        let mut result = Ok(());
        for id in behind {
            if let Err(err) = self.read(id).await {
                result = Err(err);
            }
        }
        result
    }

    /// Hands a batch heard from another node to this node's sink.
    fn receive_batch(self: &Arc<Self>, batch: NoticeBatch) {
        if batch.origin == self.origin {
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let mut events = Vec::new();
        for notice in batch.notices {
            match notice {
                Notice::Conversation { id, version } => self.heard(&inner, id, version),
                Notice::Event(delivery) => events.push(delivery),
                Notice::Created { id, version } => {
                    // Served from its first version at once, so that no
                    // change made meanwhile is missed.
                    self.track(id, version, inner.clock.now());
                    self.spawn_created(&inner, id);
                }
            }
        }
        if !events.is_empty() {
            inner.sink.publish_all(events);
        }
    }

    /// Reads a conversation created on another node and tells its members'
    /// connections here.
    fn spawn_created(self: &Arc<Self>, inner: &Inner, id: ConversationId) {
        let Some(spawner) = &inner.spawner else {
            return;
        };
        let this = Arc::clone(self);
        spawner.spawn(Box::pin(async move {
            let Some(inner) = this.inner.upgrade() else {
                return;
            };
            let read = async {
                let conversation = inner.storage.conversation(id).await?;
                let members = inner.storage.members(id).await?;
                Ok::<_, crate::Error>((conversation, members))
            };
            if let Ok((Some(conversation), members)) = read.await {
                let recipients: Vec<_> = members.iter().map(|m| m.user_id).collect();
                inner.sink.publish(Delivery::new(
                    Event::ConversationCreated {
                        conversation,
                        members,
                    },
                    recipients,
                ));
            }
        }));
    }
}

/// What the broker holds: the sequencer, weakly, so that a dropped `Kith`
/// is not kept alive by its broker.
pub(crate) struct Listener(pub(crate) Weak<Sequencer>);

impl Subscriber for Listener {
    fn receive(&self, batch: NoticeBatch) {
        if let Some(sequencer) = self.0.upgrade() {
            sequencer.receive_batch(batch);
        }
    }

    fn lost(&self) {
        let Some(sequencer) = self.0.upgrade() else {
            return;
        };
        let Some(inner) = sequencer.inner.upgrade() else {
            return;
        };
        inner.sink.missed();
        if let Some(spawner) = &inner.spawner {
            let this = Arc::clone(&sequencer);
            spawner.spawn(Box::pin(async move {
                if let Some(inner) = this.inner.upgrade() {
                    let _ = this.poll(&inner).await;
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn delivery(version: u64) -> Delivery {
        Delivery::new(
            Event::ConversationRenamed {
                conversation_id: ConversationId::new(1),
                title: format!("v{version}"),
                by: UserId::new(1),
                version,
            },
            [UserId::new(1)],
        )
    }

    fn versions(out: &[Delivery]) -> Vec<u64> {
        out.iter()
            .filter_map(|d| d.event.conversation_version())
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn own_changes_are_delivered_in_order_and_a_gap_asks_for_a_read_through_them() {
        let mut t = Track::new(2, Timestamp::from_millis(0));
        for v in [4, 3, 7, 6] {
            t.ahead.insert(v, delivery(v));
        }
        let mut out = Vec::new();
        t.drain(&mut out);
        assert_eq!(versions(&out), [3, 4]);
        assert_eq!(t.delivered, 4);
        assert_eq!(t.wanted, 7, "the read covers the waiting 6 and 7");
        assert!(t.start_read());
        assert!(!t.start_read(), "one read at a time");
        // The read delivered 5 to 7: what waited is dropped, not repeated.
        t.delivered = 7;
        t.reading = false;
        out.clear();
        t.drain(&mut out);
        assert!(out.is_empty());
        assert!(t.ahead.is_empty());
        assert!(!t.start_read(), "nothing left to read");
    }
}
