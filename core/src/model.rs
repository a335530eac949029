//! The domain types that Kith's API returns and its storage traits exchange.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::clock::Timestamp;
use crate::ids::{FriendRequestId, SessionId, UserId};

/// Who may see a profile's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone who is not blocked, signed in or not.
    #[default]
    Public,
    /// The owner and the owner's friends.
    Friends,
    /// The owner only.
    Private,
}

impl Visibility {
    /// The stable lowercase name (`public`, `friends`, `private`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Friends => "friends",
            Visibility::Private => "private",
        }
    }

    /// Whether this lets more people see than `other` does (public is
    /// wider than friends, which is wider than private).
    pub fn is_wider_than(self, other: Visibility) -> bool {
        let breadth = |v: Visibility| match v {
            Visibility::Public => 2,
            Visibility::Friends => 1,
            Visibility::Private => 0,
        };
        breadth(self) > breadth(other)
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "friends" => Some(Visibility::Friends),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// Ways to reach a user, as they chose to publish them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactInfo {
    /// A public contact email (not the login email).
    pub email: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
    /// A website URL.
    pub website: Option<String>,
}

/// The user-editable profile of an account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// The name shown instead of the username.
    pub display_name: Option<String>,
    /// A short text about the user.
    pub bio: Option<String>,
    /// Where the user is.
    pub location: Option<String>,
    /// Date of birth.
    pub birth_date: Option<Date>,
    /// Job or occupation.
    pub job: Option<String>,
    /// Interests as lowercase tags, without duplicates.
    pub interests: Vec<String>,
    /// URL of the avatar image.
    pub avatar_url: Option<String>,
    /// URL of the cover image.
    pub cover_url: Option<String>,
    /// Published contact details.
    pub contact: ContactInfo,
    /// Who may see the details above (display name and avatar are always shown
    /// to anyone who may see the user at all).
    pub visibility: Visibility,
}

/// A user as anyone who may see them sees them: the public card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The username, with the case it was registered with.
    pub username: String,
    /// The display name, if set.
    pub display_name: Option<String>,
    /// The avatar URL, if set.
    pub avatar_url: Option<String>,
}

/// A user's own view of their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// The user's id.
    pub id: UserId,
    /// The username.
    pub username: String,
    /// The login email, if the account has one.
    pub email: Option<String>,
    /// Whether the account can log in with a password.
    pub has_password: bool,
    /// When the account was created.
    pub created_at: Timestamp,
    /// The full profile.
    pub profile: Profile,
}

impl Account {
    /// The public card of this account.
    pub fn user(&self) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            display_name: self.profile.display_name.clone(),
            avatar_url: self.profile.avatar_url.clone(),
        }
    }
}

/// An account as stored, including its password hash. Storage traits
/// exchange it; Kith never returns it to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The account.
    pub account: Account,
    /// The password hash, if the account has a password.
    pub password_hash: Option<String>,
}

/// A profile as a particular viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileView {
    /// The public card, always visible.
    pub user: User,
    /// The profile's visibility setting.
    pub visibility: Visibility,
    /// The details, or `None` when the visibility hides them from this viewer.
    pub details: Option<ProfileDetails>,
}

/// The parts of a profile that its visibility setting protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileDetails {
    /// See [`Profile::bio`].
    pub bio: Option<String>,
    /// See [`Profile::location`].
    pub location: Option<String>,
    /// See [`Profile::birth_date`].
    pub birth_date: Option<Date>,
    /// See [`Profile::job`].
    pub job: Option<String>,
    /// See [`Profile::interests`].
    pub interests: Vec<String>,
    /// See [`Profile::cover_url`].
    pub cover_url: Option<String>,
    /// See [`Profile::contact`].
    pub contact: ContactInfo,
    /// When the account was created.
    pub created_at: Timestamp,
    /// Number of friends.
    pub friends: u64,
    /// Number of followers.
    pub followers: u64,
    /// Number of users followed.
    pub following: u64,
}

/// A login session. The token that proves it is only ever shown once, at login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The session's id (safe to show; it is not the token).
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When it was created.
    pub created_at: Timestamp,
}

/// What a successful login returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginSession {
    /// The bearer token. Kith stores only its SHA-256 digest, so this is the
    /// only time it can be read.
    pub token: String,
    /// The session the token opens.
    pub session: Session,
    /// The account that logged in.
    pub account: Account,
}

/// A pending friend request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FriendRequest {
    /// The request's id.
    pub id: FriendRequestId,
    /// Who sent it.
    pub from: UserId,
    /// Who may accept or decline it.
    pub to: UserId,
    /// When it was sent.
    pub created_at: Timestamp,
}

/// A pending friend request together with the other party's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FriendRequestEntry {
    /// The request.
    pub request: FriendRequest,
    /// The other party: the sender for incoming requests, the recipient for
    /// outgoing ones.
    pub user: User,
}

/// What sending a friend request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FriendRequestOutcome {
    /// The request waits for the recipient.
    Pending {
        /// The new request.
        request: FriendRequest,
    },
    /// The recipient had already asked the actor: they are now friends.
    Accepted {
        /// The new friendship.
        friendship: Friendship,
    },
}

/// A friendship between two users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Friendship {
    /// One friend (the one who accepted).
    pub user: UserId,
    /// The other friend.
    pub friend: UserId,
    /// When they became friends.
    pub since: Timestamp,
}

/// Another user in one of a user's lists (friends, followers, blocks...),
/// with the time the link was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Peer {
    /// The other user.
    pub user: User,
    /// When the link was made.
    pub since: Timestamp,
}

/// Where a user stands with another, from the actor's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relationship {
    /// They are friends.
    pub friends: bool,
    /// The actor sent a friend request that is pending.
    pub request_sent: bool,
    /// The other user sent a friend request that is pending.
    pub request_received: bool,
    /// The actor follows the other user.
    pub following: bool,
    /// The other user follows the actor.
    pub followed_by: bool,
    /// The actor blocks the other user.
    pub blocking: bool,
    /// The actor mutes the other user.
    pub muting: bool,
}

/// The raw links between two users as storage reports them, including whether
/// the other user blocks the actor (which Kith never reveals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Links {
    /// What the actor may be told.
    pub visible: Relationship,
    /// The other user blocks the actor.
    pub blocked_by: bool,
}

/// Follower and following counts of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphCounts {
    /// Number of friends.
    pub friends: u64,
    /// Number of followers.
    pub followers: u64,
    /// Number of users followed.
    pub following: u64,
}
