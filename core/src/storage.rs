//! The storage traits every backend implements.
//!
//! One trait per aggregate, gathered into [`Storage`], which Kith holds as
//! `Arc<dyn Storage>`. Backends store and fetch; every rule (validation,
//! permissions, privacy, blocking) is checked by Kith before it calls them.
//! Operations that must be atomic are single methods so that each backend runs
//! them in one transaction. The contracts below are checked by the
//! conformance suite in `kith_core::testkit`.
//!
//! Conventions: "live" accounts are those not deleted; usernames and emails
//! are passed already lowercased; ids are below 2^63; timestamps are
//! milliseconds. A backend reports its own failures as [`Error::Storage`]
//! (never leaking its driver's error type) and unique-constraint collisions
//! as the [`Error::Conflict`] named in each method's contract.
//!
//! [`Error::Storage`]: crate::Error::Storage
//! [`Error::Conflict`]: crate::Error::Conflict

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{SessionId, UserId};
use crate::model::{
    AccountRecord, FriendRequest, FriendRequestEntry, GraphCounts, Links, Peer, Profile, Session,
};
use crate::page::{IdKey, NameKey, SinceKey, Window};

/// Accounts, profiles and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts a new account with its profile.
    ///
    /// # Errors
    /// [`Clash::UsernameTaken`](crate::Clash::UsernameTaken) if a live account
    /// has the same username ignoring ASCII case;
    /// [`Clash::EmailTaken`](crate::Clash::EmailTaken) if a live account has the
    /// same email ignoring case. Nothing is stored then.
    async fn insert_account(&self, record: &AccountRecord) -> Result<()>;

    /// The live account with this id.
    async fn account(&self, id: UserId) -> Result<Option<AccountRecord>>;

    /// The live account whose lowercased username is `username_lower`.
    async fn account_by_username(&self, username_lower: &str) -> Result<Option<AccountRecord>>;

    /// The live account whose lowercased email is `email_lower`.
    async fn account_by_email(&self, email_lower: &str) -> Result<Option<AccountRecord>>;

    /// Replaces the profile of a live account; `false` if there is none.
    async fn update_profile(&self, id: UserId, profile: &Profile) -> Result<bool>;

    /// Atomically sets the password hash of a live account and deletes all of
    /// its sessions except `keep`. Returns the ids of the deleted sessions.
    async fn set_password(
        &self,
        id: UserId,
        hash: &str,
        keep: Option<SessionId>,
    ) -> Result<Vec<SessionId>>;

    /// Atomically deletes an account at time `at`: the account becomes a
    /// tombstone (its id stays reserved; username and email are freed for new
    /// accounts; password and profile are erased), its sessions are deleted,
    /// and every friend request, friendship, follow, block and mute involving
    /// it, in either direction, is removed. Returns the ids of the users who
    /// were its friends. Unknown or already deleted ids change nothing and
    /// return an empty list.
    async fn delete_account(&self, id: UserId, at: Timestamp) -> Result<Vec<UserId>>;

    /// Stores a new session under the SHA-256 digest of its token.
    async fn insert_session(&self, session: &Session, token_digest: &[u8; 32]) -> Result<()>;

    /// The session stored under this token digest.
    async fn session_by_digest(&self, token_digest: &[u8; 32]) -> Result<Option<Session>>;

    /// All sessions of a user, oldest first.
    async fn sessions(&self, user: UserId) -> Result<Vec<Session>>;

    /// Deletes one session of `user`; `false` if `user` has no such session.
    async fn delete_session(&self, user: UserId, id: SessionId) -> Result<bool>;
}

/// Which friend requests of a user to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDirection {
    /// Requests sent to the user.
    Incoming,
    /// Requests the user sent.
    Outgoing,
}

/// Friend requests, friendships, follows, blocks and mutes.
///
/// Lists return [`Peer`]s whose `user` is the other party's card, and never
/// include deleted accounts. `Window::limit` is the exact maximum number of
/// rows to return; `Window::after` is exclusive.
#[async_trait]
pub trait GraphStore: Send + Sync {
    /// Every link between `actor` and `other`, seen from `actor`'s side.
    async fn links(&self, actor: UserId, other: UserId) -> Result<Links>;

    /// Stores a pending friend request.
    ///
    /// # Errors
    /// [`Clash::RequestPending`](crate::Clash::RequestPending) if a request
    /// with the same sender and recipient is pending; nothing is stored then.
    async fn insert_friend_request(&self, request: &FriendRequest) -> Result<()>;

    /// Deletes the pending request from `from` to `to` and returns it, or
    /// `None` if there was none.
    async fn delete_friend_request(
        &self,
        from: UserId,
        to: UserId,
    ) -> Result<Option<FriendRequest>>;

    /// Atomically accepts the pending request from `from` to `to`: deletes it
    /// (and any pending request in the other direction) and creates the
    /// friendship with `since`. Returns the accepted request, or `None`, with
    /// nothing changed, if no request from `from` to `to` was pending.
    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        since: Timestamp,
    ) -> Result<Option<FriendRequest>>;

    /// Pending requests of `user`, newest first (by id, descending), each with
    /// the other party's card. The window's key is the request id.
    async fn friend_requests(
        &self,
        user: UserId,
        direction: RequestDirection,
        window: Window<IdKey>,
    ) -> Result<Vec<FriendRequestEntry>>;

    /// The friends of `user` ordered by lowercased username, ascending; the
    /// window's key is the lowercased username. With `name` (already
    /// lowercased with `str::to_lowercase`), only friends whose lowercased
    /// username or lowercased display name contains it.
    async fn friends(
        &self,
        user: UserId,
        name: Option<&str>,
        window: Window<NameKey>,
    ) -> Result<Vec<Peer>>;

    /// Ends the friendship between `a` and `b`; `false` if there was none.
    async fn delete_friendship(&self, a: UserId, b: UserId) -> Result<bool>;

    /// Records that `follower` follows `followee` since `since`; `false`, with
    /// nothing changed, if it already did.
    async fn insert_follow(
        &self,
        follower: UserId,
        followee: UserId,
        since: Timestamp,
    ) -> Result<bool>;

    /// Removes a follow; `false` if there was none.
    async fn delete_follow(&self, follower: UserId, followee: UserId) -> Result<bool>;

    /// The followers of `user`, newest first: ordered by `since` descending,
    /// then by the follower's id descending.
    async fn followers(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>>;

    /// The users `user` follows, in the same order as [`Self::followers`].
    async fn following(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>>;

    /// Friend, follower and following counts of `user`.
    async fn counts(&self, user: UserId) -> Result<GraphCounts>;

    /// Atomically records that `blocker` blocks `blocked` since `since` and
    /// removes their friendship, the pending friend requests between them and
    /// the follows between them, in both directions. Returns `false` if the
    /// block already existed (the removals still apply).
    async fn insert_block(
        &self,
        blocker: UserId,
        blocked: UserId,
        since: Timestamp,
    ) -> Result<bool>;

    /// Removes a block; `false` if there was none.
    async fn delete_block(&self, blocker: UserId, blocked: UserId) -> Result<bool>;

    /// The users `user` blocks, in the same order as [`Self::followers`].
    async fn blocks(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>>;

    /// Records that `muter` mutes `muted`; `false` if it already did.
    async fn insert_mute(&self, muter: UserId, muted: UserId, since: Timestamp) -> Result<bool>;

    /// Removes a mute; `false` if there was none.
    async fn delete_mute(&self, muter: UserId, muted: UserId) -> Result<bool>;

    /// The users `user` mutes, in the same order as [`Self::followers`].
    async fn mutes(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>>;
}

/// Everything Kith stores, in one object-safe trait held as `Arc<dyn Storage>`.
#[async_trait]
pub trait Storage: AccountStore + GraphStore + Send + Sync + 'static {
    /// Checks that the backend can serve requests (for health checks).
    async fn ping(&self) -> Result<()>;
}
