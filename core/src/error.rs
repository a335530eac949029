//! The one error type of `kith-core`.

use std::fmt;
use std::time::Duration;

/// A boxed error from a storage backend or another collaborator.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout Kith.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Kith call.
///
/// The variants do not depend on the storage backend: a backend maps its own
/// failures to [`Error::Storage`] (or to [`Error::Conflict`] for a unique
/// constraint it enforces), so callers match on the same variants whatever
/// database sits underneath. [`Error::code`] gives a stable machine-readable
/// code for each variant, which the transports send to clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing does not exist, or the actor may not even know that it exists
    /// (for example a user who has blocked the actor).
    #[error("{0} not found")]
    NotFound(Entity),
    /// The actor may see the thing but may not do this to it.
    #[error("forbidden: {0}")]
    Forbidden(Denied),
    /// The change collides with existing state.
    #[error("conflict: {0}")]
    Conflict(Clash),
    /// An input failed validation; `field` names it and `reason` says why.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The name of the offending field, as callers spell it.
        field: &'static str,
        /// A human-readable explanation.
        reason: String,
    },
    /// A login with a wrong username, email or password, or a password
    /// confirmation that did not match.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A session token that is unknown, revoked or malformed.
    #[error("invalid or revoked session token")]
    Unauthenticated,
    /// The actor is doing this too often; try again after `retry_after`.
    #[error("rate limited: retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long to wait before the next attempt can succeed.
        retry_after: Duration,
    },
    /// The storage backend failed; the change did not happen.
    #[error("storage error: {0}")]
    Storage(#[source] BoxError),
    /// A collaborator such as the password hasher failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps a backend error as [`Error::Storage`].
    pub fn storage(err: impl Into<BoxError>) -> Self {
        Error::Storage(err.into())
    }

    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// The same error again, for answering every caller of a batch that
    /// failed as a whole (a storage error keeps its message, not its source).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Error::NotFound(e) => Error::NotFound(*e),
            Error::Forbidden(d) => Error::Forbidden(*d),
            Error::Conflict(c) => Error::Conflict(*c),
            Error::InvalidInput { field, reason } => Error::invalid(field, reason.clone()),
            Error::InvalidCredentials => Error::InvalidCredentials,
            Error::Unauthenticated => Error::Unauthenticated,
            Error::RateLimited { retry_after } => Error::RateLimited {
                retry_after: *retry_after,
            },
            Error::Storage(e) => Error::storage(e.to_string()),
            Error::Internal(m) => Error::Internal(m.clone()),
        }
    }

    /// Whether this is Kith's own failure ([`Error::Storage`],
    /// [`Error::Internal`]) rather than a refusal of the request.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Storage(_) | Error::Internal(_))
    }

    /// The message a client is shown: the error's text for refusals, and a
    /// generic `"internal error"` for [internal](Self::is_internal) failures,
    /// whose details (driver messages, paths) belong in the server's log only.
    /// Every transport answers with this, so REST and WebSocket say the same.
    pub fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error".to_owned()
        } else {
            self.to_string()
        }
    }

    /// A stable, machine-readable code for the error's kind, such as
    /// `"not_found"` or `"invalid_input"`. Transports send it to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Unauthenticated => "unauthenticated",
            Error::RateLimited { .. } => "rate_limited",
            Error::Storage(_) => "storage",
            Error::Internal(_) => "internal",
        }
    }
}

/// The kind of thing that was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entity {
    /// A user account (also a deleted one, or one hidden by a block).
    User,
    /// A login session.
    Session,
    /// A pending friend request.
    FriendRequest,
    /// A friendship.
    Friendship,
    /// A conversation (also one the actor is not a member of).
    Conversation,
    /// A chat message (also a deleted one, where the action needs its body).
    Message,
    /// A member of a conversation.
    Member,
    /// A post (also one the actor may not see).
    Post,
    /// A comment (also a deleted one, or one the actor may not see).
    Comment,
    /// An uploaded media item (also an expired upload, or one the actor may
    /// not see).
    Media,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Session => "session",
            Entity::FriendRequest => "friend request",
            Entity::Friendship => "friendship",
            Entity::Conversation => "conversation",
            Entity::Message => "message",
            Entity::Member => "member",
            Entity::Post => "post",
            Entity::Comment => "comment",
            Entity::Media => "media",
        })
    }
}

/// Why an action was forbidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied {
    /// The actor has blocked the other user; unblock first.
    BlockedByActor,
    /// The resource's privacy settings do not let the actor see this.
    Private,
    /// Direct messages are limited to friends and the two are not friends.
    NotFriends,
    /// Only the sender of a message may change it.
    NotSender,
    /// Only an admin of the group may do this.
    NotAdmin,
    /// Direct conversations have exactly two members and no title.
    DirectConversation,
    /// The other user does not accept messages from the actor.
    Unreachable,
    /// Only the author of a post or comment may change it (or, for
    /// deleting a comment, the author of its post).
    NotAuthor,
    /// Only the user who uploaded a media item may attach it.
    NotOwner,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denied::BlockedByActor => "you have blocked this user",
            Denied::Private => "this is private",
            Denied::NotFriends => "direct messages are limited to friends",
            Denied::NotSender => "only the sender may change this message",
            Denied::NotAdmin => "only a group admin may do this",
            Denied::DirectConversation => "direct conversations cannot be changed this way",
            Denied::Unreachable => "this user cannot receive your messages",
            Denied::NotAuthor => "only the author may change this",
            Denied::NotOwner => "only the uploader may attach this media",
        })
    }
}

/// What a change collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Clash {
    /// Another account already uses this username (compared case-insensitively).
    UsernameTaken,
    /// Another account already uses this email address.
    EmailTaken,
    /// The two users are already friends.
    AlreadyFriends,
    /// The actor already has a pending friend request to this user.
    RequestPending,
    /// The actor already used this `client_id` for a message in another
    /// conversation.
    ClientIdReused,
    /// The direct conversation between these two users already exists
    /// (reported by storage; Kith then returns the existing one).
    DirectExists,
    /// Every node number of the storage is leased by another writer.
    NoFreeNode,
    /// This writer's node lease ended and another writer took the number.
    LeaseLost,
    /// The media item is already attached (an upload is attached once).
    MediaAttached,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clash::UsernameTaken => "username is taken",
            Clash::EmailTaken => "email is already registered",
            Clash::AlreadyFriends => "already friends",
            Clash::RequestPending => "a friend request is already pending",
            Clash::ClientIdReused => "client_id was already used in another conversation",
            Clash::DirectExists => "the direct conversation already exists",
            Clash::NoFreeNode => "every node number is leased by another writer",
            Clash::LeaseLost => "the node lease ended and another writer took the number",
            Clash::MediaAttached => "the media is already attached",
        })
    }
}
