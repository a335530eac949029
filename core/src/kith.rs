//! The entry point: [`Kith`], its builder and its configuration.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::accounts::Accounts;
use crate::broker::Broker;
use crate::chat::{Chat, DirectMessages, Lanes};
use crate::clock::{Clock, SystemClock};
use crate::comments::Comments;
use crate::events::{Delivery, EventSink, NoopSink};
use crate::graph::Graph;
use crate::ids::{IdGenerator, TimeOrderedIds};
use crate::media::{ByteStore, Media, MemoryBytes};
use crate::password::{Argon2Hasher, PasswordHasher};
use crate::posts::Posts;
use crate::rate::{Rate, WriteKind, WriteRates};
use crate::reactions::Reactions;
use crate::sequencer::{Listener, Sequencer};
use crate::storage::Storage;

/// Library settings. Start from [`Config::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Who may open direct conversations: anyone (default) or friends only.
    pub direct_messages: DirectMessages,
    /// The per-user send rate limit; `None` switches it off. Storage keeps
    /// the buckets, so it holds across every writer of a storage.
    pub send_rate: Option<Rate>,
    /// The per-user limit of every other kind of write (friend requests,
    /// follows, posts, comments, reactions, uploads); kept by storage too.
    pub write_rates: WriteRates,
    /// The largest group, creator included (default 10,000).
    pub max_group_members: usize,
    /// The longest message body in characters (default 4,000).
    pub max_message_chars: usize,
    /// The longest post text in characters (default 5,000).
    pub max_post_chars: usize,
    /// How long an upload may stay unattached before it expires and
    /// [`Media::collect_garbage`](crate::Media::collect_garbage) removes it
    /// (default 24 hours).
    pub media_grace: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            direct_messages: DirectMessages::Anyone,
            send_rate: Some(Rate::default()),
            write_rates: WriteRates::default(),
            max_group_members: 10_000,
            max_message_chars: 4_000,
            max_post_chars: 5_000,
            media_grace: std::time::Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The handle an application holds: cheap to clone, safe to share.
///
/// Its API is grouped by area: [`Kith::accounts`], [`Kith::graph`],
/// [`Kith::chat`], [`Kith::posts`], [`Kith::comments`],
/// [`Kith::reactions`], [`Kith::media`]. Every call
/// takes the acting user's id; the application authenticates (possibly with
/// [`Accounts::authenticate`]) and Kith authorises.
#[derive(Clone)]
pub struct Kith {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub storage: Arc<dyn Storage>,
    pub sink: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub bytes: Arc<dyn ByteStore>,
    pub config: Config,
    pub lanes: Arc<Lanes>,
    pub spawner: Option<Arc<dyn Spawner>>,
    /// With a broker: the sequencer every change goes through.
    pub sequencer: Option<Arc<Sequencer>>,
    /// This handle's id as a node ([`Kith::origin`]).
    pub origin: u64,
    /// When this node last renewed its presence lease (milliseconds).
    pub presence_renewed: std::sync::atomic::AtomicI64,
}

impl Inner {
    /// Hands an event to the sink (and, with a broker, to the other
    /// nodes). Called only after the change committed.
    pub fn emit(&self, delivery: Delivery) {
        self.emit_all(vec![delivery]);
    }

    /// Publishes deliveries together, in order.
    pub fn emit_all(&self, mut deliveries: Vec<Delivery>) {
        deliveries.retain(|d| !d.recipients.is_empty());
        if deliveries.is_empty() {
            return;
        }
        match &self.sequencer {
            Some(sequencer) => sequencer.publish(self, deliveries),
            None => self.sink.publish_all(deliveries),
        }
    }

    /// Takes one token of `actor`'s `kind` limit ([`Config::write_rates`])
    /// before a write of that kind; every limited write calls it first.
    ///
    /// # Errors
    /// [`Error::RateLimited`](crate::Error::RateLimited) with the wait when
    /// the bucket is empty.
    pub async fn take_write(&self, actor: crate::UserId, kind: WriteKind) -> crate::Result<()> {
        let Some(rate) = self.config.write_rates.get(kind) else {
            return Ok(());
        };
        let now = self.clock.now();
        match self.storage.take_token(actor, kind, rate, now).await? {
            Ok(()) => Ok(()),
            Err(retry_after) => Err(crate::Error::RateLimited { retry_after }),
        }
    }
}

impl Kith {
    /// Starts building a `Kith` over `storage`. Without further settings it
    /// uses the system clock, time-ordered ids, argon2id with OWASP's
    /// parameters, no event sink and the default [`Config`].
    pub fn builder(storage: Arc<dyn Storage>) -> KithBuilder {
        KithBuilder {
            storage,
            sink: None,
            clock: None,
            ids: None,
            hasher: None,
            bytes: None,
            spawner: None,
            broker: None,
            config: Config::default(),
        }
    }

    /// Accounts, sessions and profiles.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { kith: &self.inner }
    }

    /// Friends, follows, blocks and mutes.
    pub fn graph(&self) -> Graph<'_> {
        Graph { kith: &self.inner }
    }

    /// Conversations, messages, reactions and read state.
    pub fn chat(&self) -> Chat<'_> {
        Chat { kith: &self.inner }
    }

    /// Posts: creating, editing, deleting and reading them.
    pub fn posts(&self) -> Posts<'_> {
        Posts { kith: &self.inner }
    }

    /// Comments on posts and their replies.
    pub fn comments(&self) -> Comments<'_> {
        Comments { kith: &self.inner }
    }

    /// Reactions to posts, comments and chat messages, one API for all.
    pub fn reactions(&self) -> Reactions<'_> {
        Reactions { kith: &self.inner }
    }

    /// Uploads, attachments and who may see them.
    pub fn media(&self) -> Media<'_> {
        Media { kith: &self.inner }
    }

    /// The store of media bytes.
    pub fn bytes(&self) -> &Arc<dyn ByteStore> {
        &self.inner.bytes
    }

    /// The storage backend, for health checks and tools.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The current time on Kith's clock.
    pub fn now(&self) -> crate::Timestamp {
        self.inner.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Hands a signal that is not stored (typing, presence) to this node's
    /// sink and, with a broker, to every other node's: `delivery` reaches
    /// its recipients' connections wherever they are.
    pub fn relay(&self, delivery: Delivery) {
        self.inner.emit(delivery);
    }

    /// This handle's id as a node: random, fixed for its life, below
    /// 2^63. Its broker notices carry it, and storage counts its users'
    /// connections under it (presence).
    pub fn origin(&self) -> u64 {
        self.inner.origin
    }

    /// With a broker: starts serving a conversation at `version` (what a
    /// client's replay of it covered) unless it is served already, and
    /// keeps serving it until as many [`Self::release`] calls: every later
    /// change reaches this node's sink, even one committed on another node
    /// before this node heard of the conversation. Transports call it for
    /// each conversation a client resumed. Without a broker: nothing.
    pub fn serve(&self, id: crate::ConversationId, version: u64) {
        if let Some(sequencer) = &self.inner.sequencer {
            sequencer.serve(id, version, self.inner.clock.now());
        }
    }

    /// Undoes one [`Self::serve`] (the client went away): the conversation
    /// may be forgotten once idle.
    pub fn release(&self, id: crate::ConversationId) {
        if let Some(sequencer) = &self.inner.sequencer {
            sequencer.release(id);
        }
    }

    /// A node's periodic work, which the embedder runs every second or
    /// two:
    /// - presence: renews this node's presence lease (see
    ///   [`Graph::connected`](crate::Graph::connected)) and forgets the
    ///   connections of nodes whose lease ended (killed nodes), telling
    ///   who may see it that their users went offline;
    /// - with a broker, the safety net under it: compares the versions of
    ///   the conversations this node serves with storage's and delivers
    ///   what a lost notice left out (reading it in this call); forgets
    ///   conversations unchanged for ten minutes that no client holds.
    ///
    /// # Errors
    /// Storage errors; what could be done is done anyway.
    pub async fn poll(&self) -> crate::Result<()> {
        let presence = self.graph().keep_presence().await;
        let served = match &self.inner.sequencer {
            Some(sequencer) => sequencer.poll(&self.inner).await,
            None => Ok(()),
        };
        presence.and(served)
    }
}

/// Runs a task to completion on the embedder's async runtime (kith-core has
/// none of its own). Any `Fn(BoxFuture<'static, ()>)` is one.
pub trait Spawner: Send + Sync {
    /// Starts `task` and drives it to completion, independently of the caller.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

impl<F> Spawner for F
where
    F: Fn(BoxFuture<'static, ()>) + Send + Sync,
{
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self(task);
    }
}

/// Builds a [`Kith`]; see [`Kith::builder`].
pub struct KithBuilder {
    storage: Arc<dyn Storage>,
    sink: Option<Arc<dyn EventSink>>,
    clock: Option<Arc<dyn Clock>>,
    ids: Option<Arc<dyn IdGenerator>>,
    hasher: Option<Arc<dyn PasswordHasher>>,
    bytes: Option<Arc<dyn ByteStore>>,
    spawner: Option<Arc<dyn Spawner>>,
    broker: Option<Arc<dyn Broker>>,
    config: Config,
}

impl KithBuilder {
    /// Where events go after each change commits (the transport).
    pub fn sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The clock. Unless [`Self::ids`] is given too, ids are generated from it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The id generator.
    pub fn ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The password hasher.
    pub fn hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Where the bytes of media live (default: [`MemoryBytes`], which
    /// keeps them in memory only).
    pub fn bytes(mut self, bytes: Arc<dyn ByteStore>) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// The runtime's spawner. With one, a batch of sends (store, then
    /// publish, holding the conversation's lane) runs as its own task, so it
    /// completes even if the future of the send that started it is dropped.
    /// Servers pass their runtime's (`|task| { tokio::spawn(task); }`).
    /// Without one the batch runs inside that future; see
    /// [`Chat::send`](crate::chat::Chat::send).
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// The broker linking this handle to the other nodes (handles or
    /// processes) sharing its storage; see [`crate::broker`]. With one,
    /// every change reaches this handle's sink once and in version order
    /// whoever committed it, and this handle's changes reach the others'.
    /// Give a [`Self::spawner`] too: without one, the changes of other
    /// nodes are read only by [`Kith::poll`]. One node alone needs none.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Builds the handle.
    pub fn build(self) -> Kith {
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ids = self
            .ids
            .unwrap_or_else(|| Arc::new(TimeOrderedIds::new(Arc::clone(&clock))));
        let broker = self.broker;
        let origin = random_origin();
        let inner = Arc::new_cyclic(|weak| Inner {
            storage: self.storage,
            sink: self.sink.unwrap_or_else(|| Arc::new(NoopSink)),
            clock,
            ids,
            hasher: self
                .hasher
                .unwrap_or_else(|| Arc::new(Argon2Hasher::default())),
            bytes: self
                .bytes
                .unwrap_or_else(|| Arc::new(MemoryBytes::default())),
            config: self.config,
            lanes: Arc::default(),
            spawner: self.spawner,
            sequencer: broker.map(|broker| Arc::new(Sequencer::new(weak.clone(), broker, origin))),
            origin,
            presence_renewed: std::sync::atomic::AtomicI64::new(i64::MIN),
        });
        if let Some(sequencer) = &inner.sequencer {
            sequencer
                .broker()
                .subscribe(Arc::new(Listener(Arc::downgrade(sequencer))));
        }
        Kith { inner }
    }
}

/// A random id for a handle as a node, below 2^63 so that every backend
/// stores it as a signed integer (without randomness, one from the clock
/// and the address of a local: distinct enough between processes).
fn random_origin() -> u64 {
    let mut bytes = [0u8; 8];
    let raw = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let local = 0u8;
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default();
            at ^ (std::ptr::addr_of!(local) as u64)
        }
    };
    raw >> 1
}
