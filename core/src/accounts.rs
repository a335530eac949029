//! Accounts, sessions and profiles: [`Accounts`], reached through
//! [`Kith::accounts`](crate::Kith::accounts).

use serde::{Deserialize, Deserializer, Serialize};
use time::Date;

use crate::error::{Clash, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{SessionId, UserId};
use crate::kith::Inner;
use crate::model::{
    Account, AccountRecord, ContactInfo, LoginSession, Profile, ProfileDetails, ProfileView,
    Session, Visibility,
};
use crate::password::{is_well_formed_token, issue_token, token_digest};
use crate::privacy::Role;
use crate::validate;

/// Input of [`Accounts::register`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 3 to 30 ASCII letters, digits or underscores; unique ignoring case.
    pub username: String,
    /// A valid email address, unique ignoring case.
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
}

/// Input of [`Accounts::create_user`]: an account for an app that brings its
/// own identity, with no password.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// As in [`NewAccount::username`].
    pub username: String,
    /// An optional email, validated and unique like [`NewAccount::email`].
    pub email: Option<String>,
}

/// Input of [`Accounts::change_password`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password; required when the account has one.
    pub current_password: Option<String>,
    /// The new password, 8 to 128 characters.
    pub new_password: String,
    /// The session to keep (usually the one making the change); every other
    /// session of the account is revoked.
    pub keep_session: Option<SessionId>,
}

/// A partial profile update: fields left `None` are unchanged. For the
/// nullable fields, `Some(None)` (JSON `null`) clears the field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ProfilePatch {
    /// At most 50 characters, one line.
    #[serde(deserialize_with = "nullable")]
    pub display_name: Option<Option<String>>,
    /// At most 500 characters.
    #[serde(deserialize_with = "nullable")]
    pub bio: Option<Option<String>>,
    /// At most 100 characters, one line.
    #[serde(deserialize_with = "nullable")]
    pub location: Option<Option<String>>,
    /// Not in the future, not before 1900.
    #[serde(deserialize_with = "nullable")]
    pub birth_date: Option<Option<Date>>,
    /// At most 100 characters, one line.
    #[serde(deserialize_with = "nullable")]
    pub job: Option<Option<String>>,
    /// Replaces all interests; see [`validate::interests`].
    pub interests: Option<Vec<String>>,
    /// An http(s) URL.
    #[serde(deserialize_with = "nullable")]
    pub avatar_url: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(deserialize_with = "nullable")]
    pub cover_url: Option<Option<String>>,
    /// Replaces all contact details.
    pub contact: Option<ContactInfo>,
    /// Who may see the details.
    pub visibility: Option<Visibility>,
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ProfilePatch {
    /// Applies the patch to `profile`, validating every field it sets.
    fn apply(self, mut p: Profile, today: crate::Timestamp) -> Result<Profile> {
        use validate::{text, url, BIO_MAX, DISPLAY_NAME_MAX, SHORT_TEXT_MAX};
        if let Some(v) = self.display_name {
            p.display_name = text("display_name", v.as_deref(), DISPLAY_NAME_MAX, false)?;
        }
        if let Some(v) = self.bio {
            p.bio = text("bio", v.as_deref(), BIO_MAX, true)?;
        }
        if let Some(v) = self.location {
            p.location = text("location", v.as_deref(), SHORT_TEXT_MAX, false)?;
        }
        if let Some(v) = self.birth_date {
            p.birth_date = validate::birth_date("birth_date", v, today)?;
        }
        if let Some(v) = self.job {
            p.job = text("job", v.as_deref(), SHORT_TEXT_MAX, false)?;
        }
        if let Some(v) = self.interests {
            p.interests = validate::interests("interests", &v)?;
        }
        if let Some(v) = self.avatar_url {
            p.avatar_url = url("avatar_url", v.as_deref())?;
        }
        if let Some(v) = self.cover_url {
            p.cover_url = url("cover_url", v.as_deref())?;
        }
        if let Some(c) = self.contact {
            p.contact = ContactInfo {
                email: c
                    .email
                    .as_deref()
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|e| validate::email("contact.email", e))
                    .transpose()?,
                phone: validate::phone("contact.phone", c.phone.as_deref())?,
                website: url("contact.website", c.website.as_deref())?,
            };
        }
        if let Some(v) = self.visibility {
            p.visibility = v;
        }
        Ok(p)
    }
}

/// Accounts, sessions and profiles.
pub struct Accounts<'k> {
    pub(crate) kith: &'k Inner,
}

impl Accounts<'_> {
    /// Registers an account with a password.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `username`, `email` or `password`;
    /// [`Error::Conflict`] with [`Clash::UsernameTaken`] or [`Clash::EmailTaken`].
    pub async fn register(&self, input: NewAccount) -> Result<Account> {
        let username = validate::username("username", &input.username)?;
        let email = validate::email("email", &input.email)?;
        validate::password("password", &input.password)?;
        self.ensure_available(&username, Some(&email)).await?;
        let hash = self.kith.hasher.hash(&input.password).await?;
        self.insert(username, Some(email), Some(hash)).await
    }

    /// Creates an account without a password, for apps that authenticate
    /// users themselves. Such an account cannot log in with a password until
    /// one is set with [`Self::change_password`]; the app can open sessions
    /// for it with [`Self::create_session`].
    ///
    /// # Errors
    /// As [`Self::register`], without the password rules.
    pub async fn create_user(&self, input: NewUser) -> Result<Account> {
        let username = validate::username("username", &input.username)?;
        let email = input
            .email
            .as_deref()
            .map(|e| validate::email("email", e))
            .transpose()?;
        self.ensure_available(&username, email.as_deref()).await?;
        self.insert(username, email, None).await
    }

    /// Checks uniqueness before the (possibly slow) password hash; storage
    /// enforces it again on insert, so a race still ends in a conflict.
    async fn ensure_available(&self, username: &str, email: Option<&str>) -> Result<()> {
        let store = &self.kith.storage;
        if store
            .account_by_username(&username.to_ascii_lowercase())
            .await?
            .is_some()
        {
            return Err(Error::Conflict(Clash::UsernameTaken));
        }
        if let Some(email) = email {
            if store
                .account_by_email(&email.to_lowercase())
                .await?
                .is_some()
            {
                return Err(Error::Conflict(Clash::EmailTaken));
            }
        }
        Ok(())
    }

    async fn insert(
        &self,
        username: String,
        email: Option<String>,
        password_hash: Option<String>,
    ) -> Result<Account> {
        let record = AccountRecord {
            account: Account {
                id: UserId::new(self.kith.ids.next_id()),
                username,
                email,
                has_password: password_hash.is_some(),
                created_at: self.kith.clock.now(),
                profile: Profile::default(),
            },
            password_hash,
        };
        self.kith.storage.insert_account(&record).await?;
        Ok(record.account)
    }

    /// Logs in with a username or email (anything containing `@` is taken as
    /// an email) and a password, and opens a new session.
    ///
    /// Unknown accounts cost the same hashing work as wrong passwords, so the
    /// response time does not tell which usernames exist.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for an unknown login, a wrong password or
    /// an account without a password.
    pub async fn login(&self, login: &str, password: &str) -> Result<LoginSession> {
        let store = &self.kith.storage;
        let login = login.trim();
        let record = if login.contains('@') {
            store.account_by_email(&login.to_lowercase()).await?
        } else {
            store
                .account_by_username(&login.to_ascii_lowercase())
                .await?
        };
        let hash = record.as_ref().and_then(|r| r.password_hash.as_deref());
        let (Some(record), Some(hash)) = (record.as_ref(), hash) else {
            // Spend the time a verification would have taken.
            self.kith.hasher.hash(password).await?;
            return Err(Error::InvalidCredentials);
        };
        if !self.kith.hasher.verify(password, hash).await? {
            return Err(Error::InvalidCredentials);
        }
        self.open_session(record.account.clone()).await
    }

    /// Opens a session for a live account without a password check, for apps
    /// that authenticated the user by their own means.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no live account `user`.
    pub async fn create_session(&self, user: UserId) -> Result<LoginSession> {
        let record = self.record(user).await?;
        self.open_session(record.account).await
    }

    async fn open_session(&self, account: Account) -> Result<LoginSession> {
        let token = issue_token()?;
        let session = Session {
            id: SessionId::new(self.kith.ids.next_id()),
            user_id: account.id,
            created_at: self.kith.clock.now(),
        };
        self.kith
            .storage
            .insert_session(&session, &token.digest)
            .await?;
        Ok(LoginSession {
            token: token.secret,
            session,
            account,
        })
    }

    /// The session a bearer token opens.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] if the token is malformed, unknown or revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Session> {
        if !is_well_formed_token(token) {
            return Err(Error::Unauthenticated);
        }
        self.kith
            .storage
            .session_by_digest(&token_digest(token))
            .await?
            .ok_or(Error::Unauthenticated)
    }

    /// Revokes the session a token opens.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] if the token opens no session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let session = self.authenticate(token).await?;
        self.revoke_session(session.user_id, session.id).await
    }

    /// The actor's sessions, oldest first.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn sessions(&self, actor: UserId) -> Result<Vec<Session>> {
        self.kith.storage.sessions(actor).await
    }

    /// Revokes one of the actor's sessions.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Session`]) if the actor has no such session.
    pub async fn revoke_session(&self, actor: UserId, session: SessionId) -> Result<()> {
        if !self.kith.storage.delete_session(actor, session).await? {
            return Err(Error::NotFound(Entity::Session));
        }
        self.kith.emit(Delivery::new(
            Event::SessionsRevoked {
                user_id: actor,
                sessions: vec![session],
            },
            [actor],
        ));
        Ok(())
    }

    /// Changes the actor's password and revokes every other session.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `current_password` (missing while the
    /// account has a password) or `new_password`; [`Error::InvalidCredentials`]
    /// if the current password is wrong; [`Error::NotFound`] if the actor has
    /// no live account.
    pub async fn change_password(&self, actor: UserId, input: ChangePassword) -> Result<()> {
        validate::password("new_password", &input.new_password)?;
        let record = self.record(actor).await?;
        self.check_password(
            &record,
            input.current_password.as_deref(),
            "current_password",
        )
        .await?;
        let hash = self.kith.hasher.hash(&input.new_password).await?;
        let revoked = self
            .kith
            .storage
            .set_password(actor, &hash, input.keep_session)
            .await?;
        if !revoked.is_empty() {
            self.kith.emit(Delivery::new(
                Event::SessionsRevoked {
                    user_id: actor,
                    sessions: revoked,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// Checks `given` against the account's password, if it has one.
    async fn check_password(
        &self,
        record: &AccountRecord,
        given: Option<&str>,
        field: &'static str,
    ) -> Result<()> {
        let Some(hash) = &record.password_hash else {
            return Ok(());
        };
        let given = given.ok_or_else(|| Error::invalid(field, "is required"))?;
        if self.kith.hasher.verify(given, hash).await? {
            Ok(())
        } else {
            Err(Error::InvalidCredentials)
        }
    }

    /// Deletes the actor's account. Its id stays reserved (so that content
    /// can keep pointing at a tombstone), its username and email become free,
    /// its sessions are revoked and its friendships, requests, follows, blocks
    /// and mutes are removed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`password`) if the account has a password and
    /// none was given; [`Error::InvalidCredentials`] if it is wrong;
    /// [`Error::NotFound`] if there is no live account.
    pub async fn delete_account(&self, actor: UserId, password: Option<&str>) -> Result<()> {
        let record = self.record(actor).await?;
        self.check_password(&record, password, "password").await?;
        let friends = self
            .kith
            .storage
            .delete_account(actor, self.kith.clock.now())
            .await?;
        self.kith.emit(Delivery::new(
            Event::AccountDeleted { user_id: actor },
            std::iter::once(actor).chain(friends),
        ));
        Ok(())
    }

    /// The actor's own account, with email and full profile.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no live account.
    pub async fn me(&self, actor: UserId) -> Result<Account> {
        Ok(self.record(actor).await?.account)
    }

    /// Updates the actor's profile and returns the account as it now is.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first invalid field (nothing is
    /// changed then); [`Error::NotFound`] if there is no live account.
    pub async fn update_profile(&self, actor: UserId, patch: ProfilePatch) -> Result<Account> {
        let mut account = self.record(actor).await?.account;
        account.profile = patch.apply(account.profile, self.kith.clock.now())?;
        if !self
            .kith
            .storage
            .update_profile(actor, &account.profile)
            .await?
        {
            return Err(Error::NotFound(Entity::User));
        }
        self.kith.emit(Delivery::new(
            Event::ProfileUpdated { user_id: actor },
            [actor],
        ));
        Ok(account)
    }

    /// A user's profile as `viewer` (`None`: not signed in) may see it: the
    /// card always, the details only where the profile's visibility allows.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such live user, or if either of the
    /// two blocks the other.
    pub async fn profile(&self, viewer: Option<UserId>, user: UserId) -> Result<ProfileView> {
        let record = self.record(user).await?;
        self.view(viewer, record).await
    }

    /// Like [`Self::profile`], by username (ignoring case).
    ///
    /// # Errors
    /// As [`Self::profile`].
    pub async fn profile_by_username(
        &self,
        viewer: Option<UserId>,
        username: &str,
    ) -> Result<ProfileView> {
        let record = self
            .kith
            .storage
            .account_by_username(&username.to_ascii_lowercase())
            .await?
            .ok_or(Error::NotFound(Entity::User))?;
        self.view(viewer, record).await
    }

    async fn view(&self, viewer: Option<UserId>, record: AccountRecord) -> Result<ProfileView> {
        let account = record.account;
        let role = self.kith.role(viewer, account.id).await?;
        if !role.can_see_user() {
            return Err(Error::NotFound(Entity::User));
        }
        let user = account.user();
        let p = account.profile;
        let details = if role.can_see(p.visibility) {
            let counts = self.kith.storage.counts(account.id).await?;
            Some(ProfileDetails {
                bio: p.bio,
                location: p.location,
                birth_date: p.birth_date,
                job: p.job,
                interests: p.interests,
                cover_url: p.cover_url,
                contact: p.contact,
                created_at: account.created_at,
                friends: counts.friends,
                followers: counts.followers,
                following: counts.following,
            })
        } else {
            None
        };
        Ok(ProfileView {
            user,
            visibility: p.visibility,
            details,
        })
    }

    async fn record(&self, user: UserId) -> Result<AccountRecord> {
        self.kith.account(user).await
    }
}

impl Inner {
    /// The live account `user`.
    pub(crate) async fn account(&self, user: UserId) -> Result<AccountRecord> {
        self.storage
            .account(user)
            .await?
            .ok_or(Error::NotFound(Entity::User))
    }

    /// The role of `viewer` towards `owner`.
    pub(crate) async fn role(&self, viewer: Option<UserId>, owner: UserId) -> Result<Role> {
        let links = match viewer {
            Some(v) if v != owner => self.storage.links(v, owner).await?,
            _ => Default::default(),
        };
        Ok(Role::of(viewer, owner, &links))
    }
}
