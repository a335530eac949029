//! # kith-core
//!
//! The pure domain of Kith, an embeddable social and chat library: accounts
//! and profiles, the social graph, their rules and permissions, the events
//! they emit, and the storage and transport traits that backends and
//! transports implement. No runtime, no SQL, no HTTP: `kith-core` depends on
//! none of them.
//!
//! ## Layout
//! - [`Kith`]: the entry point an application holds, built over an
//!   `Arc<dyn Storage>`; its API is grouped by area: [`Kith::accounts`]
//!   ([`Accounts`]), [`Kith::graph`] ([`Graph`]), [`Kith::chat`] ([`Chat`])
//!   [`Kith::posts`] ([`Posts`]), [`Kith::comments`] ([`Comments`]),
//!   [`Kith::reactions`] ([`Reactions`]) and [`Kith::media`] ([`Media`]).
//! - [`storage`]: the traits a backend implements (`kith-sqlite`, `kith-postgres`).
//! - [`events`]: [`Event`], [`Delivery`] and the [`EventSink`] a transport implements.
//! - [`broker`]: how several nodes sharing one storage tell each other what
//!   changed ([`Broker`], [`MemoryBroker`]).
//! - [`privacy`]: who may see what ([`privacy::Role`]).
//! - [`validate`]: the input rules.
//! - [`Clock`], [`IdGenerator`] and [`PasswordHasher`]: injectable collaborators.
//! - `testkit` (feature): the conformance suite every backend runs.
//!
//! ## Example
//! ```no_run
//! # async fn demo(storage: std::sync::Arc<dyn kith_core::Storage>) -> kith_core::Result<()> {
//! use kith_core::{Kith, NewAccount, Page};
//!
//! let kith = Kith::builder(storage).build();
//! let alice = kith.accounts().register(NewAccount {
//!     username: "alice".into(),
//!     email: "alice@example.com".into(),
//!     password: "correct horse battery".into(),
//! }).await?;
//! let bob = kith.accounts().register(NewAccount {
//!     username: "bob".into(),
//!     email: "bob@example.com".into(),
//!     password: "staple battery horse".into(),
//! }).await?;
//! kith.graph().send_friend_request(alice.id, bob.id).await?;
//! kith.graph().accept_friend_request(bob.id, alice.id).await?;
//! let friends = kith.graph().friends(alice.id, alice.id, None, &Page::first()).await?;
//! assert_eq!(friends.items[0].user.username, "bob");
//! # Ok(()) }
//! ```

pub mod accounts;
pub mod broker;
pub mod chat;
pub mod clock;
pub mod comments;
pub mod error;
pub mod events;
pub mod graph;
pub mod ids;
mod kith;
pub mod media;
pub mod model;
pub mod node;
pub mod page;
pub mod password;
pub mod posts;
pub mod privacy;
pub mod rate;
pub mod reactions;
mod sequencer;
pub mod storage;
pub mod validate;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use accounts::{Accounts, ChangePassword, NewAccount, NewUser, ProfilePatch};
pub use broker::{Broker, MemoryBroker, Notice, NoticeBatch, Subscriber, Subscribers};
pub use chat::{
    Change, ChangeKind, ChangeRecord, ChangeSet, Chat, Conversation, ConversationKind,
    ConversationSummary, DirectMessages, History, HistoryPage, Member, MemberRole, Message,
    MessageReaction, NewGroup, NewMessage, ReactionKind, ReadState, UnreadCounts, UnreadEntry,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use comments::{Comment, Comments};
pub use error::{BoxError, Clash, Denied, Entity, Error, Result};
pub use events::{Delivery, Event, EventSink, NoopSink, RecordingSink};
pub use graph::{Graph, PRESENCE_TTL};
pub use ids::{
    CommentId, ConversationId, FriendRequestId, IdGenerator, MediaId, MessageId, PostId, SessionId,
    TimeOrderedIds, UserId, NODES,
};
pub use kith::{Config, Kith, KithBuilder, Spawner};
pub use media::{
    Attachment, ByteStore, Media, MediaItem, MediaKind, MemoryBytes, NewMedia, Variant,
};
pub use model::*;
pub use node::NodeLease;
pub use page::{Page, Paged};
pub use password::{Argon2Hasher, PasswordHasher};
pub use posts::{NewPost, Post, PostPatch, Posts};
pub use rate::{Bucket, Rate, WriteKind, WriteRates};
pub use reactions::{Reaction, ReactionCount, ReactionSummary, ReactionTarget, Reactions};
pub use storage::{
    AccountStore, Appended, ChatStore, CommentStore, Followed, GraphStore, LimitStore, MediaStore,
    NewCommentRecord, NewMessageRecord, NewPostRecord, NodeStore, PostContent, PostEditRecord,
    PostList, PostStore, Reactable, ReactionStore, Removed, RequestDirection, Requested, SeqRange,
    Storage, Updated, Viewed,
};

/// Re-exported so that callers can build dates for [`Profile::birth_date`].
pub use time::Date;
