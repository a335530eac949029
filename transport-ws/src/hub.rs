//! The fan-out hub: who is connected, and how an event reaches every one of
//! their connections.
//!
//! - The registry maps `UserId -> connections`, split into shards, each behind
//!   its own `RwLock`, so publishers and (dis)connecting clients rarely meet.
//! - An event is serialised **once** into a [`Frame`] (a reference-counted
//!   UTF-8 buffer); every recipient connection gets a clone of the same frame,
//!   which is a reference-count increment, not an allocation.
//! - Each connection has a bounded [`Outbox`]. Publishing pushes and returns;
//!   it never waits. A connection whose outbox is full is closed with
//!   [`close::SLOW_CONSUMER`]: it
//!   resumes from its last version and loses nothing, because messages are
//!   stored before they are published. Full means that the frames already
//!   waiting reached the limit: a run of frames published together (a
//!   batch of sends, a node catching up on a conversation) is taken whole
//!   by a queue with room, however long, so that a client that reads at
//!   full speed is never closed for the size of one burst.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use kith_core::{ConversationId, Delivery, Event, EventSink, SessionId, UserId};
use tokio::sync::Notify;

use crate::protocol::close;

/// A serialised frame, shared by every connection it is sent to.
#[derive(Debug, Clone)]
pub struct Frame {
    text: Utf8Bytes,
    /// For changes to a conversation: its id and the change's version, so a
    /// resuming connection can drop what its replay already covered.
    order: Option<(ConversationId, u64)>,
}

impl Frame {
    /// A frame without an order key.
    pub fn text(text: String) -> Self {
        Self {
            text: text.into(),
            order: None,
        }
    }

    /// The frame of a core event: its JSON, and its order key if it is a
    /// versioned change to a conversation.
    pub fn event(event: &Event) -> Self {
        let order = event.conversation_version();
        // Events are plain data; serialising them cannot fail.
        let text = serde_json::to_string(event).unwrap_or_default();
        Self {
            text: text.into(),
            order,
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The conversation and version this frame changes, if any.
    pub fn order(&self) -> Option<(ConversationId, u64)> {
        self.order
    }

    pub(crate) fn into_text(self) -> Utf8Bytes {
        self.text
    }
}

/// The hub's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Frames a connection may have waiting before it counts as a slow
    /// consumer and is closed (at the next frame published to it). A run of
    /// frames published together is queued whole when fewer are waiting,
    /// so a queue holds at most `queue_len - 1` plus one run.
    pub queue_len: usize,
}

impl Default for HubConfig {
    /// 256 frames: about a second of a busy group's traffic, small enough
    /// that a stalled client is noticed quickly.
    fn default() -> Self {
        Self { queue_len: 256 }
    }
}

/// A connection's bounded queue of frames to write.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    wake: Notify,
    /// Signalled once when a close is requested, for the connection's
    /// supervisor (the writer may be stuck writing to a stalled socket).
    closing: Notify,
    capacity: usize,
    session: Option<SessionId>,
}

/// What became of a frame offered to an outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offered {
    Queued,
    /// The queue was full: the connection is now closing as a slow consumer.
    Overflowed,
    /// The connection was already closing; the frame was dropped.
    Closed,
}

#[derive(Debug, Default)]
struct OutboxState {
    queue: VecDeque<Frame>,
    /// Set once: the close code the connection must end with.
    closed: Option<u16>,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a frame. Returns `false` if the connection is closed or has
    /// just been closed because its queue is full.
    pub fn push(&self, frame: Frame) -> bool {
        self.offer(std::slice::from_ref(&frame)) == Offered::Queued
    }

    /// Queues frames (all or none), telling apart the push that overflows
    /// the queue (and closes the connection) from pushes to an already
    /// closed connection.
    ///
    /// The connection is slow when the frames already waiting, which it had
    /// the time to take, reached the capacity; the length of the run
    /// offered does not count against it. (A node's sequencer publishes a
    /// gap of up to `MAX_CHANGES` changes as one run, and a batch of sends
    /// is up to 256 messages: were a run counted against the room left, a
    /// node catching up on a busy conversation would close every
    /// connection of it, however fast their clients read.)
    fn offer(&self, frames: &[Frame]) -> Offered {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Offered::Closed;
        }
        if state.queue.len() >= self.capacity {
            state.closed = Some(close::SLOW_CONSUMER);
            state.queue.clear();
            drop(state);
            self.wake.notify_one();
            self.closing.notify_one();
            return Offered::Overflowed;
        }
        let was_empty = state.queue.is_empty();
        state.queue.extend(frames.iter().cloned());
        drop(state);
        // A non-empty queue has already woken the writer, which has not
        // drained it yet: one wake per batch is enough.
        if was_empty {
            self.wake.notify_one();
        }
        Offered::Queued
    }

    /// Asks the connection to close with `code` (the first code wins).
    pub fn close(&self, code: u16) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(code);
        }
        drop(state);
        self.wake.notify_one();
        self.closing.notify_one();
    }

    /// Waits until a close has been requested.
    pub async fn closed(&self) {
        self.closing.notified().await;
    }

    /// Moves every queued frame into `into`; returns the close code if the
    /// connection must close (its queue is then empty).
    pub fn drain(&self, into: &mut Vec<Frame>) -> Option<u16> {
        let mut state = self.lock();
        into.extend(state.queue.drain(..));
        state.closed
    }

    /// Waits until something was pushed or the connection was closed since
    /// the last wait.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }
}

/// A fast hasher for user ids (they are already well-distributed integers
/// after mixing; SipHash would dominate the fan-out loop).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(n);
    }
}

fn mix(n: u64) -> u64 {
    (n ^ (n >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (n >> 32)
}

type Registry = HashMap<UserId, Vec<Arc<Outbox>>, BuildHasherDefault<IdHasher>>;

const SHARDS: usize = 64;

fn shard_of(user: UserId) -> usize {
    (mix(user.get()) % SHARDS as u64) as usize
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Open connections.
    pub connections: AtomicUsize,
    /// Frames queued to connections.
    pub frames_queued: AtomicU64,
    /// Connections closed because their queue was full.
    pub slow_consumer_disconnects: AtomicU64,
}

/// The fan-out hub. Implements [`EventSink`]: give it to
/// [`kith_core::KithBuilder::sink`].
#[derive(Debug)]
pub struct Hub {
    shards: Box<[RwLock<Registry>]>,
    config: HubConfig,
    stats: HubStats,
    idle: Notify,
}

/// A connection's registration; unregisters when dropped.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    user: UserId,
    outbox: Arc<Outbox>,
}

impl Subscription {
    /// The connection's queue.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The connected user.
    pub fn user(&self) -> UserId {
        self.user
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.user, &self.outbox);
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Registry::default()))
                .collect(),
            config,
            stats: HubStats::default(),
            idle: Notify::new(),
        }
    }

    /// How many frames a connection may have waiting.
    pub fn queue_len(&self) -> usize {
        self.config.queue_len
    }

    /// Counts a connection closed as a slow consumer outside [`Hub::send`]
    /// (it fell too far behind before its handshake completed).
    pub fn count_slow_consumer(&self) {
        self.stats
            .slow_consumer_disconnects
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The hub's counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    fn shard(&self, user: UserId) -> &RwLock<Registry> {
        &self.shards[shard_of(user)]
    }

    /// Registers a connection of `user` opened with `session`. Returns the
    /// subscription and whether it is the user's first open connection.
    pub fn subscribe(
        self: &Arc<Self>,
        user: UserId,
        session: Option<SessionId>,
    ) -> (Subscription, bool) {
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutboxState::default()),
            wake: Notify::new(),
            closing: Notify::new(),
            capacity: self.config.queue_len.max(1),
            session,
        });
        let mut shard = write(self.shard(user));
        let conns = shard.entry(user).or_default();
        let first = conns.is_empty();
        conns.push(Arc::clone(&outbox));
        drop(shard);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        (
            Subscription {
                hub: Arc::clone(self),
                user,
                outbox,
            },
            first,
        )
    }

    fn unsubscribe(&self, user: UserId, outbox: &Arc<Outbox>) {
        let mut shard = write(self.shard(user));
        if let Some(conns) = shard.get_mut(&user) {
            conns.retain(|c| !Arc::ptr_eq(c, outbox));
            if conns.is_empty() {
                shard.remove(&user);
            }
        }
        drop(shard);
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        self.idle.notify_waiters();
    }

    /// Whether `user` has an open connection.
    pub fn is_online(&self, user: UserId) -> bool {
        read(self.shard(user)).contains_key(&user)
    }

    /// Queues `frame` to every connection of every user in `recipients`.
    /// Never waits: a connection whose queue is full is closed instead.
    pub fn send(&self, recipients: &[UserId], frame: &Frame) {
        self.send_all(recipients, std::slice::from_ref(frame));
    }

    /// Queues `frames`, in order, to every connection of every user in
    /// `recipients`, waking each connection once. Never waits: a connection
    /// whose queue is full is closed instead (a queue with room takes the
    /// whole run, see [`HubConfig::queue_len`]).
    pub fn send_all(&self, recipients: &[UserId], frames: &[Frame]) {
        let mut queued = 0u64;
        let mut slow = 0u64;
        let mut offer = |conns: &Vec<Arc<Outbox>>| {
            for conn in conns {
                match conn.offer(frames) {
                    Offered::Queued => queued += frames.len() as u64,
                    // Counted once: later frames to the closing
                    // connection are dropped without counting again.
                    Offered::Overflowed => slow += 1,
                    Offered::Closed => {}
                }
            }
        };
        for &user in recipients {
            if let Some(conns) = read(self.shard(user)).get(&user) {
                offer(conns);
            }
        }
        self.stats
            .frames_queued
            .fetch_add(queued, Ordering::Relaxed);
        if slow > 0 {
            self.stats
                .slow_consumer_disconnects
                .fetch_add(slow, Ordering::Relaxed);
        }
    }

    /// Closes every connection of `user` (those opened with one of
    /// `sessions`, when given) with `code`.
    pub fn close_user(&self, user: UserId, sessions: Option<&[SessionId]>, code: u16) {
        let shard = read(self.shard(user));
        for conn in shard.get(&user).into_iter().flatten() {
            let hit = match (sessions, conn.session) {
                (None, _) => true,
                (Some(list), Some(s)) => list.contains(&s),
                (Some(_), None) => false,
            };
            if hit {
                conn.close(code);
            }
        }
    }

    /// Asks every connection to close with `code`.
    fn close_all(&self, code: u16) {
        for shard in self.shards.iter() {
            for conns in read(shard).values() {
                for conn in conns {
                    conn.close(code);
                }
            }
        }
    }

    /// Closes every connection with [`close::GOING_AWAY`] and waits until
    /// they are gone or `deadline` passes. Returns the connections left.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.close_all(close::GOING_AWAY);
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.stats.connections.load(Ordering::Relaxed) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.stats.connections.load(Ordering::Relaxed)
    }
}

impl EventSink for Hub {
    fn publish(&self, delivery: Delivery) {
        let frame = Frame::event(&delivery.event);
        self.send(&delivery.recipients, &frame);
        self.after(&delivery.event);
    }

    /// Runs of deliveries to the same recipients (the messages of one batch
    /// of sends) are queued together, one wake per connection.
    fn publish_all(&self, deliveries: Vec<Delivery>) {
        let mut rest = &deliveries[..];
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .take_while(|d| d.recipients == first.recipients && !closes(&d.event))
                .count()
                .max(1);
            let frames: Vec<Frame> = rest[..run].iter().map(|d| Frame::event(&d.event)).collect();
            self.send_all(&first.recipients, &frames);
            for delivery in &rest[..run] {
                self.after(&delivery.event);
            }
            rest = &rest[run..];
        }
    }

    /// Closes every connection with [`close::RESUME`]: their clients
    /// reconnect and resume, and so miss nothing.
    fn missed(&self) {
        self.close_all(close::RESUME);
    }
}

/// Whether publishing `event` closes connections (see [`Hub::after`]).
fn closes(event: &Event) -> bool {
    matches!(
        event,
        Event::SessionsRevoked { .. } | Event::AccountDeleted { .. }
    )
}

impl Hub {
    /// What publishing `event` does besides queuing it. Revocations take
    /// effect after the event is queued, so that clients learn why before
    /// the socket closes.
    fn after(&self, event: &Event) {
        match event {
            Event::SessionsRevoked { user_id, sessions } => {
                self.close_user(*user_id, Some(sessions), close::SESSION_REVOKED);
            }
            Event::AccountDeleted { user_id } => {
                self.close_user(*user_id, None, close::NORMAL);
            }
            _ => {}
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_shares_one_frame_and_closes_slow_consumers() {
        let hub = Arc::new(Hub::new(HubConfig { queue_len: 2 }));
        let (a1, first) = hub.subscribe(UserId::new(1), None);
        assert!(first);
        let (a2, first) = hub.subscribe(UserId::new(1), None);
        assert!(!first);
        let (b, _) = hub.subscribe(UserId::new(2), None);
        let frame = Frame::text("{}".into());
        hub.send(&[UserId::new(1), UserId::new(2), UserId::new(3)], &frame);
        let mut got = Vec::new();
        assert_eq!(a1.outbox().drain(&mut got), None);
        assert_eq!(a2.outbox().drain(&mut got), None);
        assert_eq!(got.len(), 2);
        // Same buffer, not a copy.
        assert_eq!(got[0].as_str().as_ptr(), frame.as_str().as_ptr());
        // b never drains: the third frame overflows its queue of two.
        hub.send(&[UserId::new(2)], &frame);
        hub.send(&[UserId::new(2)], &frame);
        // Frames sent while it closes are dropped, and it is counted once.
        hub.send(&[UserId::new(2)], &frame);
        got.clear();
        assert_eq!(b.outbox().drain(&mut got), Some(close::SLOW_CONSUMER));
        assert!(got.is_empty());
        assert_eq!(
            hub.stats()
                .slow_consumer_disconnects
                .load(Ordering::Relaxed),
            1
        );
        drop((a1, a2, b));
        assert_eq!(hub.stats().connections.load(Ordering::Relaxed), 0);
        assert!(!hub.is_online(UserId::new(1)));
    }

    #[test]
    fn a_run_longer_than_the_queue_is_taken_whole_by_a_queue_with_room() {
        let hub = Arc::new(Hub::new(HubConfig { queue_len: 4 }));
        let (conn, _) = hub.subscribe(UserId::new(1), None);
        let frames: Vec<Frame> = (0..10).map(|i| Frame::text(format!("{i}"))).collect();
        // A client that drained everything is not slow for one long run
        // (a node catching up on a conversation publishes its gap at once).
        hub.send_all(&[UserId::new(1)], &frames);
        let mut got = Vec::new();
        assert_eq!(conn.outbox().drain(&mut got), None);
        assert_eq!(got.len(), 10);
        // Nor with fewer than `queue_len` frames still waiting...
        hub.send_all(&[UserId::new(1)], &frames[..3]);
        hub.send_all(&[UserId::new(1)], &frames);
        // ...but with `queue_len` waiting, the next frame closes it.
        hub.send(&[UserId::new(1)], &frames[0]);
        got.clear();
        assert_eq!(conn.outbox().drain(&mut got), Some(close::SLOW_CONSUMER));
        assert!(got.is_empty());
        assert_eq!(
            hub.stats()
                .slow_consumer_disconnects
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn large_fan_outs_reach_every_connection_once() {
        let hub = Arc::new(Hub::new(HubConfig { queue_len: 8 }));
        let users: Vec<UserId> = (1..=300).map(UserId::new).collect();
        let subs: Vec<_> = users.iter().map(|&u| hub.subscribe(u, None).0).collect();
        // A second device of one user, and a recipient with no connection.
        let (extra, _) = hub.subscribe(UserId::new(7), None);
        let mut recipients = users.clone();
        recipients.push(UserId::new(10_000));
        hub.send(&recipients, &Frame::text("{}".into()));
        let mut got = Vec::new();
        for s in subs.iter().chain(std::iter::once(&extra)) {
            got.clear();
            assert_eq!(s.outbox().drain(&mut got), None);
            assert_eq!(got.len(), 1, "user {}", s.user());
        }
        assert_eq!(hub.stats().frames_queued.load(Ordering::Relaxed), 301);
    }
}
