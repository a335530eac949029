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

use std::time::Duration;

use async_trait::async_trait;

use crate::chat::{
    Change, ChangeRecord, Conversation, ConversationSummary, Member, MemberRole, Message,
    ReactionKind, UnreadCounts,
};
use crate::clock::Timestamp;
use crate::comments::Comment;
use crate::error::Result;
use crate::ids::{CommentId, ConversationId, MediaId, MessageId, PostId, SessionId, UserId};
use crate::media::{Attachment, MediaItem};
use crate::model::{
    AccountRecord, FriendRequest, FriendRequestEntry, GraphCounts, Links, Peer, Profile, Session,
    User, Visibility,
};
use crate::page::{ActivityKey, IdKey, NameKey, SinceKey, Window};
use crate::posts::Post;
use crate::rate::{Rate, WriteKind};
use crate::reactions::{Reaction, ReactionSummary};

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

    /// The cards of the live accounts among `ids`, in any order, each with
    /// the links between `viewer` and the user.
    async fn users(&self, ids: &[UserId], viewer: Option<UserId>) -> Result<Vec<Viewed<User>>>;

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
    /// it, in either direction, is removed; its media is released
    /// (unattached, expiring at `at`, for the garbage collection). Returns the ids of the users who
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

/// What [`GraphStore::insert_friend_request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// The request is stored and pending.
    Pending,
    /// The other user's pending request to the sender was accepted instead;
    /// this is that request. They are friends now.
    Accepted(FriendRequest),
    /// A block stands between them; nothing changed.
    Blocked,
}

/// What [`GraphStore::insert_follow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The follow is stored.
    Inserted,
    /// It already existed; nothing changed.
    Already,
    /// A block stands between them; nothing changed.
    Blocked,
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

    /// Atomically stores a friend request, checking inside the writing
    /// transaction what decides its fate:
    /// - a block between the two users, in either direction: nothing is
    ///   stored, [`Requested::Blocked`];
    /// - a pending request in the other direction: it is accepted instead
    ///   (both requests gone, the friendship created with `since` =
    ///   `request.created_at`), [`Requested::Accepted`] with that request;
    /// - otherwise the request is stored, [`Requested::Pending`].
    ///
    /// # Errors
    /// [`Clash::AlreadyFriends`](crate::Clash::AlreadyFriends) if they are
    /// friends; [`Clash::RequestPending`](crate::Clash::RequestPending) if a
    /// request with the same sender and recipient is pending;
    /// [`Entity::User`](crate::Entity::User) not found if either is not a
    /// live account. Nothing is stored then.
    async fn insert_friend_request(&self, request: &FriendRequest) -> Result<Requested>;

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

    /// The ids of every friend of `user`, in no particular order.
    async fn friend_ids(&self, user: UserId) -> Result<Vec<UserId>>;

    /// Who follows what `user` publishes: `user`'s friends and, with
    /// `followers`, `user`'s followers too, except those who mute `user`;
    /// without duplicates, in no particular order.
    async fn audience(&self, user: UserId, followers: bool) -> Result<Vec<UserId>>;

    /// Ends the friendship between `a` and `b`; `false` if there was none.
    async fn delete_friendship(&self, a: UserId, b: UserId) -> Result<bool>;

    /// Records that `follower` follows `followee` since `since`, unless a
    /// block stands between them in either direction (checked inside the
    /// writing transaction): [`Followed::Blocked`] then, and
    /// [`Followed::Already`] if it already did; nothing changes in both.
    ///
    /// # Errors
    /// [`Entity::User`](crate::Entity::User) not found if either is not a
    /// live account.
    async fn insert_follow(
        &self,
        follower: UserId,
        followee: UserId,
        since: Timestamp,
    ) -> Result<Followed>;

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

/// The window of messages to read, by `seq`. Results are always in ascending
/// `seq` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqRange {
    /// The newest `limit` messages.
    Latest {
        /// How many.
        limit: u32,
    },
    /// The `limit` messages right before `seq` (exclusive).
    Before {
        /// The bound.
        seq: u64,
        /// How many.
        limit: u32,
    },
    /// The `limit` messages right after `seq` (exclusive).
    After {
        /// The bound.
        seq: u64,
        /// How many.
        limit: u32,
    },
}

/// A message to append, as Kith prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessageRecord {
    /// The new message's id.
    pub id: MessageId,
    /// Where it goes.
    pub conversation_id: ConversationId,
    /// Who sends it.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_id: String,
    /// The validated text.
    pub body: String,
    /// The message it replies to (checked to exist in the conversation).
    pub reply_to: Option<MessageId>,
    /// When it is sent.
    pub created_at: Timestamp,
    /// The send rate the sender is held to, if any: storing the message
    /// takes a token from the sender's stored bucket with
    /// [`Rate::take`](crate::Rate::take) at `created_at`.
    pub rate: Option<crate::Rate>,
}

/// What [`ChatStore::append_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The message was stored with the next `seq` and `version`.
    Created(Message),
    /// The sender had already used this `client_id`; this is that message
    /// (possibly in another conversation) and nothing changed.
    Existing(Message),
}

/// What [`ChatStore::remove_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// The change's version.
    pub version: u64,
    /// The member made admin because no admin remained.
    pub promoted: Option<UserId>,
}

/// The result of a change to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The message as it is now.
    pub message: Message,
    /// Whether anything changed (and a new version was assigned).
    pub changed: bool,
}

/// Conversations, members, messages, reactions and read state.
///
/// Every change to a conversation (message, edit, delete, reaction,
/// membership change, rename) takes the conversation's next `version` in the
/// same transaction that makes it; a new message also takes the next `seq`.
/// Both are gap-free, starting at 1. Read positions do not take versions.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Stores a new conversation (with `last_seq` and `version` 0) and its
    /// first members.
    ///
    /// # Errors
    /// [`Clash::DirectExists`](crate::Clash::DirectExists) if `conversation`
    /// is direct and the two members already have a direct conversation.
    async fn create_conversation(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<()>;

    /// The direct conversation between `a` and `b` (in either order).
    async fn direct_conversation(&self, a: UserId, b: UserId) -> Result<Option<Conversation>>;

    /// A conversation by id.
    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>>;

    /// The current members, ordered by user id.
    async fn members(&self, id: ConversationId) -> Result<Vec<Member>>;

    /// One current member.
    async fn member(&self, id: ConversationId, user: UserId) -> Result<Option<Member>>;

    /// The version of the conversation's latest membership change (a member
    /// added, removed, promoted or demoted; creation counts as version 0):
    /// the members can only differ from those read at the same membership
    /// version if this moved. 0 for an unknown conversation.
    async fn membership_version(&self, id: ConversationId) -> Result<u64>;

    /// The current versions of the conversations among `ids` that exist,
    /// in any order (a node's poll of the conversations it serves).
    async fn versions(&self, ids: &[ConversationId]) -> Result<Vec<(ConversationId, u64)>>;

    /// Atomically adds `members` (none of them current members; former
    /// members are re-added with the given role, join time and read
    /// position) under one new version, which it returns. Checked inside
    /// the transaction, after the conversation's lock: `by` is a current
    /// admin, and the group has at most `max_members` current members
    /// afterwards.
    ///
    /// # Errors
    /// [`Entity::Conversation`](crate::Entity::Conversation) not found if
    /// `by` is not a current member; [`Denied::NotAdmin`](crate::Denied::NotAdmin)
    /// if not an admin; [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// (`members`) beyond `max_members`. Nothing changes then.
    async fn add_members(
        &self,
        id: ConversationId,
        members: &[Member],
        by: UserId,
        max_members: usize,
    ) -> Result<u64>;

    /// Atomically removes a current member under a new version and, if no
    /// current member is an admin afterwards, makes the one who joined
    /// earliest (then the lowest id) an admin under the same version. With
    /// `by`, that user must be a current admin (checked inside the
    /// transaction, after the conversation's lock); without, the member
    /// leaves. `None` with nothing changed if `user` is not a current member.
    ///
    /// # Errors
    /// As [`Self::add_members`] for `by`.
    async fn remove_member(
        &self,
        id: ConversationId,
        user: UserId,
        by: Option<UserId>,
    ) -> Result<Option<Removed>>;

    /// Sets a current member's role under a new version; `None` with nothing
    /// changed if `user` is not a current member. Checked inside the
    /// transaction, after the conversation's lock: `by` is a current admin,
    /// and at least one current member is an admin afterwards.
    ///
    /// # Errors
    /// As [`Self::add_members`] for `by`; [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// (`role`) if no admin would remain. Nothing changes then.
    async fn set_role(
        &self,
        id: ConversationId,
        user: UserId,
        role: MemberRole,
        by: UserId,
    ) -> Result<Option<u64>>;

    /// Sets the title under a new version, which it returns; `by` must be a
    /// current admin (checked inside the transaction).
    ///
    /// # Errors
    /// As [`Self::add_members`] for `by`.
    async fn rename(&self, id: ConversationId, title: &str, by: UserId) -> Result<u64>;

    /// Atomically appends a message: if the sender already has a message
    /// with this `client_id`, returns it as [`Appended::Existing`] and changes
    /// nothing. Otherwise, if the sender is a current member, stores the
    /// message with the next `seq` and `version`, sets the conversation's
    /// `last_seq`, `version` and `last_activity` (to `created_at`) and the
    /// sender's `last_read_seq` to the new `seq`.
    ///
    /// With `message.rate`, storing a new message (not an existing one)
    /// also takes a token from the sender's bucket, kept by the backend and
    /// read and written in the same transaction with
    /// [`Rate::take`](crate::Rate::take) at `created_at`, so the rate
    /// holds across every writer of the storage.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound)
    /// ([`Entity::Conversation`](crate::Entity::Conversation)) if the sender
    /// is not a current member; [`Error::RateLimited`](crate::Error::RateLimited)
    /// if the bucket is empty, with the time until it is not. Nothing is
    /// stored (nor taken from the bucket) then.
    async fn append_message(&self, message: &NewMessageRecord) -> Result<Appended>;

    /// Appends `messages` in order, each with the outcome
    /// [`append_message`](Self::append_message) would have given it at its
    /// place in the sequence (a later message sees the earlier ones: a
    /// repeated `(sender, client_id)` is [`Appended::Existing`] of the first).
    /// One failing message does not stop the others. Kith hands a
    /// conversation's waiting sends over in one call, so a backend can share
    /// one commit among them; the default appends one after the other.
    ///
    /// # Errors
    /// An outer `Err` only if the backend failed as a whole; then no message
    /// of the call was stored.
    async fn append_messages(
        &self,
        messages: &[NewMessageRecord],
    ) -> Result<Vec<Result<Appended>>> {
        let mut outcomes = Vec::with_capacity(messages.len());
        for message in messages {
            outcomes.push(self.append_message(message).await);
        }
        Ok(outcomes)
    }

    /// A message of the conversation, deleted or not.
    async fn message(&self, id: ConversationId, message: MessageId) -> Result<Option<Message>>;

    /// The message `sender` sent with this `client_id` (in any conversation,
    /// deleted or not), if any.
    async fn message_by_client_id(
        &self,
        sender: UserId,
        client_id: &str,
    ) -> Result<Option<Message>>;

    /// Replaces the body of a message that is not deleted, sets `edited_at`,
    /// under a new version. `None` if there is no such message or it is deleted.
    async fn edit_message(
        &self,
        id: ConversationId,
        message: MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Option<Message>>;

    /// Deletes a message, leaving a tombstone with its `seq`: the body and
    /// reactions are removed and `deleted_at` set, under a new version. An
    /// already deleted message is returned unchanged. `None` if there is no
    /// such message.
    async fn delete_message(
        &self,
        id: ConversationId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<Option<Updated>>;

    /// Sets (`Some`) or removes (`None`) `user`'s reaction to a message that
    /// is not deleted, under a new version if that changes anything. `None`
    /// if there is no such message or it is deleted.
    async fn set_reaction(
        &self,
        id: ConversationId,
        message: MessageId,
        user: UserId,
        kind: Option<ReactionKind>,
    ) -> Result<Option<Updated>>;

    /// Messages of the conversation in `range`, ascending by `seq`.
    async fn messages(&self, id: ConversationId, range: SeqRange) -> Result<Vec<Message>>;

    /// Raises a current member's `last_read_seq` to `seq` if it is lower
    /// (never lowers it). Returns the position now, or `None` if `user` is
    /// not a current member.
    async fn mark_read(&self, id: ConversationId, user: UserId, seq: u64) -> Result<Option<u64>>;

    /// The conversations `user` is a current member of, ordered by
    /// `last_activity` descending, then id descending; the window's key is
    /// that pair.
    async fn conversations(
        &self,
        user: UserId,
        window: Window<ActivityKey>,
    ) -> Result<Vec<ConversationSummary>>;

    /// The unread counts of `user` over the conversations they are a current
    /// member of.
    async fn unread_counts(&self, user: UserId) -> Result<UnreadCounts>;

    /// The change-log entries of the conversation with versions above
    /// `since`, in version order, at most `limit` of them. Every versioned
    /// write above logs its version in its own transaction: `message_created`
    /// (actor the sender, subject the message), `message_edited` and
    /// `message_deleted` (the sender, the message), `reaction_changed` (the
    /// reacting user, the message), `members_added` (`by`, no subject),
    /// `member_removed` (`by`, or the member who left; the member),
    /// `member_role_changed` (`by`, the member), `conversation_renamed`
    /// (`by`, no subject).
    async fn change_log(
        &self,
        id: ConversationId,
        since: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>>;

    /// The changes with versions in `(since, until]`, in version order, each
    /// in its current state: messages whose latest change is in the range,
    /// members (current or former) whose latest membership change is in the
    /// range (ordered by user id within a version), and the title if it was
    /// last set in the range.
    async fn changes(&self, id: ConversationId, since: u64, until: u64) -> Result<Vec<Change>>;
}

/// Node numbers for writers sharing one storage: each writer leases one, so
/// the ids it makes (which hold it in their low bits) are its own.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Atomically leases to `holder`, until `until`, the lowest node number
    /// below `nodes` that nobody leases or whose lease ended before `now`.
    /// `None`, with nothing changed, if every number is leased.
    async fn lease_node(
        &self,
        nodes: u16,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<u16>>;

    /// Extends `holder`'s lease of `node` to `until`; `false`, with nothing
    /// changed, if `holder` does not hold it any more (it ended and another
    /// writer leased the number).
    async fn renew_node(&self, node: u16, holder: u64, until: Timestamp) -> Result<bool>;

    /// Ends `holder`'s lease of `node`, if it still holds it.
    async fn release_node(&self, node: u16, holder: u64) -> Result<()>;

    /// Counts one more connection of `user` on the node `holder` (a
    /// handle's [`Kith::origin`](crate::Kith::origin)) and extends that
    /// node's presence lease to `until`. Atomic per user, so that nodes
    /// connecting one user at once agree. Returns whether the user had no
    /// connection before on any node whose presence lease is live at `now`
    /// (they came online).
    async fn presence_up(
        &self,
        user: UserId,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;

    /// Counts one connection fewer of `user` on `holder`. Returns whether
    /// the user now has no connection on any node whose presence lease is
    /// live at `now` (they went offline); `false`, with nothing changed, if
    /// `holder` had no connection of theirs counted.
    async fn presence_down(&self, user: UserId, holder: u64, now: Timestamp) -> Result<bool>;

    /// Extends the presence lease of `holder` to `until`.
    async fn renew_presence(&self, holder: u64, until: Timestamp) -> Result<()>;

    /// Forgets the nodes whose presence lease ended before `now` (stopped
    /// without saying so, or killed) and their connections; returns the
    /// users who had connections there and have none left on a live node.
    async fn expire_presence(&self, now: Timestamp) -> Result<Vec<UserId>>;
}

/// Per-user rate limits of writes other than message sends (those take
/// their bucket in [`ChatStore::append_messages`]).
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Takes one token from `user`'s bucket of `kind` at `now` under `rate`
    /// ([`Rate::take`], a user without a bucket having a full one), atomically
    /// across every writer of the storage. `Ok(Err(wait))`, with the bucket
    /// unchanged, if none is left: `wait` is how long until one is.
    async fn take_token(
        &self,
        user: UserId,
        kind: WriteKind,
        rate: Rate,
        now: Timestamp,
    ) -> Result<std::result::Result<(), Duration>>;
}

/// Something read for a viewer, with the two links between the viewer and
/// its owner that decide whether the viewer may see it (Kith decides, with
/// [`Role::between`](crate::privacy::Role::between)). Both are `false` for
/// an anonymous viewer and for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewed<T> {
    /// What was read.
    pub value: T,
    /// The viewer and the owner are friends.
    pub friends: bool,
    /// One of the two blocks the other.
    pub blocked: bool,
}

/// What a post says and who may read it, as Kith prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostContent {
    /// The validated text.
    pub text: String,
    /// Who may read it.
    pub visibility: Visibility,
    /// The hashtags of the text, lowercased and distinct.
    pub hashtags: Vec<String>,
    /// The usernames the text mentions, lowercased and distinct; storage
    /// keeps those of live accounts.
    pub mentions: Vec<String>,
}

/// A post to insert, as Kith prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPostRecord {
    /// The new post's id.
    pub id: PostId,
    /// Its author.
    pub author: UserId,
    /// What it says.
    pub content: PostContent,
    /// For a share: the original it shares.
    pub shared_id: Option<PostId>,
    /// When it is created.
    pub created_at: Timestamp,
}

/// A post's new state, as Kith prepared it for [`PostStore::update_post`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostEditRecord {
    /// The post.
    pub id: PostId,
    /// Its author (checked inside the transaction).
    pub author: UserId,
    /// What it says now (hashtags and mentions replace the stored ones).
    pub content: PostContent,
    /// The edit's time.
    pub edited_at: Timestamp,
}

/// A list of posts ordered by position, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostList {
    /// The posts of one author.
    Author(UserId),
    /// The posts with one (lowercased) hashtag.
    Hashtag(String),
    /// A user's home feed: the user's own posts and those of the user's
    /// friends and of the users they follow, except users they mute.
    Home(UserId),
}

/// Posts, their hashtags and mentions.
///
/// Reads return each post with the links between the viewer and its author
/// ([`Viewed`]) and never return a post whose author's account is deleted;
/// whether the viewer may see it is Kith's decision.
#[async_trait]
pub trait PostStore: Send + Sync {
    /// Atomically stores a post, its hashtags and the mentions of live
    /// accounts, and gives it the next position as the last statement
    /// before the commit: positions are taken from one counter whose lock
    /// is held until the commit, so they grow in commit order. Returns the
    /// post as stored (without `original`); `None`, with nothing stored, if
    /// the author is not a live account or, for a share, if the shared post
    /// does not exist or a block stands between its author and this one
    /// (checked inside the transaction).
    async fn insert_post(&self, post: &NewPostRecord) -> Result<Option<Post>>;

    /// Atomically replaces the text, visibility, hashtags and mentions of a
    /// post whose author is `edit.author` and sets `edited_at` (the position
    /// stays). `None`, with nothing changed, if there is no such post.
    async fn update_post(&self, edit: &PostEditRecord) -> Result<Option<Post>>;

    /// Deletes a post whose author is `author`, with its hashtags and
    /// mentions; `false` if there is no such post.
    async fn delete_post(&self, id: PostId, author: UserId) -> Result<bool>;

    /// The posts among `ids` whose authors are live, in any order.
    async fn posts(&self, ids: &[PostId], viewer: Option<UserId>) -> Result<Vec<Viewed<Post>>>;

    /// The posts of `list` whose authors are live, by position descending;
    /// the window's key is the position.
    async fn list_posts(
        &self,
        list: &PostList,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Post>>>;
}

/// A comment to insert, as Kith prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommentRecord {
    /// The new comment's id.
    pub id: CommentId,
    /// The post it belongs to.
    pub post_id: PostId,
    /// The comment it replies to.
    pub parent_id: Option<CommentId>,
    /// Its author.
    pub author: UserId,
    /// The validated text.
    pub text: String,
    /// When it is written.
    pub created_at: Timestamp,
}

/// Comments on posts and their replies.
///
/// Reads return tombstones too (deleted comments kept for their replies,
/// with `deleted` set and no text), each with the links between the viewer
/// and its author; `author` is `None` when the author's account is
/// deleted. Whether and how the viewer sees each is Kith's decision.
#[async_trait]
pub trait CommentStore: Send + Sync {
    /// Atomically stores a comment, checking inside the transaction that
    /// the post exists, that no block stands between the author and the
    /// post's author (either direction), and that the parent, if any, is a
    /// comment of the same post that is not deleted. `false`, with nothing
    /// stored, if a check fails.
    async fn insert_comment(&self, comment: &NewCommentRecord) -> Result<bool>;

    /// Replaces the text of a comment by `author` that is not deleted and
    /// sets `edited_at`; `false` if there is none.
    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        text: &str,
        at: Timestamp,
    ) -> Result<bool>;

    /// Deletes a comment that is not deleted: with replies (checked inside
    /// the transaction) it becomes a tombstone (text erased, `deleted_at` =
    /// `at`, its reactions removed); without, it is removed, and so is each
    /// tombstone above it left without replies. `false` if there is no
    /// such comment.
    async fn delete_comment(&self, id: CommentId, at: Timestamp) -> Result<bool>;

    /// The comments among `ids`, in any order.
    async fn comments(
        &self,
        ids: &[CommentId],
        viewer: Option<UserId>,
    ) -> Result<Vec<Viewed<Comment>>>;

    /// The comments on `post` (`parent` `None`) or the replies to `parent`,
    /// by id ascending; the window's key is the id.
    async fn list_comments(
        &self,
        post: PostId,
        parent: Option<CommentId>,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Comment>>>;
}

/// What storage keeps reactions for (a table each); chat messages keep
/// theirs through [`ChatStore::set_reaction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reactable {
    /// A post.
    Post(PostId),
    /// A comment that is not deleted.
    Comment(CommentId),
}

/// Reactions to posts and comments: at most one per user per target.
///
/// Reads never count nor list reactions of deleted accounts.
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// Sets (`Some`) or removes (`None`) `user`'s reaction to `target`.
    /// Checked inside the transaction: the target exists (a comment: and is
    /// not deleted) and no block stands between `user` and its author, in
    /// either direction. `None`,
    /// with nothing changed, if either check fails; otherwise whether
    /// anything changed.
    async fn set_reaction_on(
        &self,
        target: Reactable,
        user: UserId,
        kind: Option<ReactionKind>,
    ) -> Result<Option<bool>>;

    /// The counts per kind of `target`'s reactions and `viewer`'s own.
    async fn reaction_summary(
        &self,
        target: Reactable,
        viewer: Option<UserId>,
    ) -> Result<ReactionSummary>;

    /// The reactions to `target` (of `kind`, or of any), by reacting user
    /// id ascending, each with the links between `viewer` and the user;
    /// the window's key is the user id.
    async fn reactions(
        &self,
        target: Reactable,
        kind: Option<ReactionKind>,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Reaction>>>;
}

/// The records of uploaded media (their bytes live in a
/// [`ByteStore`](crate::ByteStore)).
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores a new media item as given.
    async fn insert_media(&self, item: &MediaItem) -> Result<()>;

    /// A media item by id, expired or not.
    async fn media(&self, id: MediaId) -> Result<Option<MediaItem>>;

    /// Atomically attaches the item `id` to `attachment`, checking inside
    /// the writing transaction that it belongs to `owner`, is unattached and
    /// expires after `now`; then its `expires_at` is cleared. With a
    /// [single](Attachment::is_single) attachment, the item attached there
    /// before (same owner, same attachment) is released in the same
    /// transaction: unattached again, expiring at `now`. Returns whether it
    /// attached; `false`, with nothing changed, if a check failed.
    async fn attach_media(
        &self,
        id: MediaId,
        owner: UserId,
        attachment: Attachment,
        now: Timestamp,
    ) -> Result<bool>;

    /// Up to `limit` items that expire at or before `now`, oldest expiry
    /// first (then by id).
    async fn expired_media(&self, now: Timestamp, limit: u32) -> Result<Vec<MediaItem>>;

    /// Deletes the item `id` if it still expires at or before `now`;
    /// `false` if it does not (or there is none).
    async fn delete_media(&self, id: MediaId, now: Timestamp) -> Result<bool>;
}

/// Everything Kith stores, in one object-safe trait held as `Arc<dyn Storage>`.
#[async_trait]
pub trait Storage:
    AccountStore
    + GraphStore
    + ChatStore
    + NodeStore
    + LimitStore
    + MediaStore
    + PostStore
    + CommentStore
    + ReactionStore
    + Send
    + Sync
    + 'static
{
    /// Checks that the backend can serve requests (for health checks).
    async fn ping(&self) -> Result<()>;
}
