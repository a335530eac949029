//! [`AccountStore`] for [`PgStore`]: accounts, profiles and sessions.

use async_trait::async_trait;
use kith_core::{
    AccountRecord, AccountStore, Clash, Entity, Error, Profile, Result, Session, SessionId,
    Timestamp, User, UserId, Viewed,
};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;

use crate::rows::{raw_id, sql_id, AccountRow, ProfileColumns, SessionRow, ViewedCardRow};
use crate::{db, unique_violation, PgStore};

/// The cards of the live accounts among ids `$2`, with the links to
/// viewer `$1`.
const USERS: &str = concat!(
    "SELECT a.id AS user_id, a.username, a.display_name, a.avatar_url, ",
    viewer_links!("a.id"),
    "FROM accounts a WHERE a.id = ANY($2) AND a.deleted_at IS NULL"
);

/// `SELECT <account columns> FROM accounts WHERE <condition>`, for live
/// accounts.
macro_rules! select_account {
    ($condition:literal) => {
        concat!(
            "SELECT id, username, email, password_hash, created_at, display_name, bio, ",
            "location, to_char(birth_date, 'YYYY-MM-DD') AS birth_date, job, interests, ",
            "avatar_url, cover_url, contact_email, contact_phone, contact_website, visibility ",
            "FROM accounts WHERE deleted_at IS NULL AND ",
            $condition
        )
    };
}

const INSERT_ACCOUNT: &str = "\
    INSERT INTO accounts (id, username, username_lower, email, email_lower, password_hash, \
        created_at, display_name, display_name_lower, bio, location, birth_date, job, interests, \
        avatar_url, cover_url, contact_email, contact_phone, contact_website, visibility) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::date, $13, $14, $15, $16, $17, \
        $18, $19, $20)";

const UPDATE_PROFILE: &str = "\
    UPDATE accounts SET display_name = $2, display_name_lower = $3, bio = $4, location = $5, \
        birth_date = $6::date, job = $7, interests = $8, avatar_url = $9, cover_url = $10, \
        contact_email = $11, contact_phone = $12, contact_website = $13, visibility = $14 \
    WHERE id = $1 AND deleted_at IS NULL";

/// Releases every media item of a deleted account: unattached, expiring
/// at the deletion.
const RELEASE_MEDIA: &str = "\
    UPDATE media SET attached_kind = NULL, attached_to = NULL, expires_at = $2 \
    WHERE owner = $1 AND (expires_at IS NULL OR expires_at > $2)";

/// Erases everything personal of an account and marks it deleted.
const TOMBSTONE: &str = "\
    UPDATE accounts SET deleted_at = $2, username = NULL, username_lower = NULL, email = NULL, \
        email_lower = NULL, password_hash = NULL, display_name = NULL, display_name_lower = NULL, \
        bio = NULL, location = NULL, birth_date = NULL, job = NULL, interests = '{}', \
        avatar_url = NULL, cover_url = NULL, contact_email = NULL, contact_phone = NULL, \
        contact_website = NULL, visibility = 'public' \
    WHERE id = $1";

impl PgStore {
    /// Runs a bound [`select_account!`] query.
    async fn fetch_account<'q>(
        &self,
        query: QueryAs<'q, Postgres, AccountRow, PgArguments>,
    ) -> Result<Option<AccountRecord>> {
        let row = query.fetch_optional(self.read()).await.map_err(db)?;
        row.map(AccountRecord::try_from).transpose()
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_account(&self, record: &AccountRecord) -> Result<()> {
        let account = &record.account;
        let profile = ProfileColumns::new(&account.profile)?;
        let inserted = sqlx::query(INSERT_ACCOUNT)
            .bind(sql_id(account.id.get()))
            .bind(&account.username)
            .bind(account.username.to_ascii_lowercase())
            .bind(account.email.as_deref())
            .bind(account.email.as_deref().map(str::to_lowercase))
            .bind(record.password_hash.as_deref())
            .bind(account.created_at.as_millis())
            .bind(profile.display_name)
            .bind(profile.display_name_lower)
            .bind(profile.bio)
            .bind(profile.location)
            .bind(profile.birth_date)
            .bind(profile.job)
            .bind(profile.interests)
            .bind(profile.avatar_url)
            .bind(profile.cover_url)
            .bind(profile.contact_email)
            .bind(profile.contact_phone)
            .bind(profile.contact_website)
            .bind(profile.visibility)
            .execute(self.read())
            .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(err) => Err(match unique_violation(&err) {
                Some("accounts_username_lower") => Error::Conflict(Clash::UsernameTaken),
                Some("accounts_email_lower") => Error::Conflict(Clash::EmailTaken),
                _ => db(err),
            }),
        }
    }

    async fn users(&self, ids: &[UserId], viewer: Option<UserId>) -> Result<Vec<Viewed<User>>> {
        let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
        let rows: Vec<ViewedCardRow> = sqlx::query_as(USERS)
            .bind(viewer.map(|v| sql_id(v.get())))
            .bind(ids)
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(Viewed::from).collect())
    }

    async fn account(&self, id: UserId) -> Result<Option<AccountRecord>> {
        self.fetch_account(sqlx::query_as(select_account!("id = $1")).bind(sql_id(id.get())))
            .await
    }

    async fn account_by_username(&self, username_lower: &str) -> Result<Option<AccountRecord>> {
        self.fetch_account(
            sqlx::query_as(select_account!("username_lower = $1")).bind(username_lower),
        )
        .await
    }

    async fn account_by_email(&self, email_lower: &str) -> Result<Option<AccountRecord>> {
        self.fetch_account(sqlx::query_as(select_account!("email_lower = $1")).bind(email_lower))
            .await
    }

    async fn update_profile(&self, id: UserId, profile: &Profile) -> Result<bool> {
        let p = ProfileColumns::new(profile)?;
        let done = sqlx::query(UPDATE_PROFILE)
            .bind(sql_id(id.get()))
            .bind(p.display_name)
            .bind(p.display_name_lower)
            .bind(p.bio)
            .bind(p.location)
            .bind(p.birth_date)
            .bind(p.job)
            .bind(p.interests)
            .bind(p.avatar_url)
            .bind(p.cover_url)
            .bind(p.contact_email)
            .bind(p.contact_phone)
            .bind(p.contact_website)
            .bind(p.visibility)
            .execute(self.read())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_password(
        &self,
        id: UserId,
        hash: &str,
        keep: Option<SessionId>,
    ) -> Result<Vec<SessionId>> {
        let user = sql_id(id.get());
        let mut tx = self.begin().await?;
        // The update locks the account row, so a concurrent delete_account
        // (which locks it too) runs wholly before or after.
        let updated = sqlx::query(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(user)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if updated.rows_affected() == 0 {
            // No live account, hence no sessions either.
            return Ok(Vec::new());
        }
        let mut revoked: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING id",
        )
        .bind(user)
        .bind(keep.map(|s| sql_id(s.get())))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        revoked.sort_unstable();
        Ok(revoked
            .into_iter()
            .map(|id| SessionId::new(raw_id(id)))
            .collect())
    }

    async fn delete_account(&self, id: UserId, at: Timestamp) -> Result<Vec<UserId>> {
        let user = sql_id(id.get());
        let mut tx = self.begin().await?;
        // The exclusive row lock waits for every transaction that holds a
        // share lock on the account to add a link or a session, and makes
        // later ones wait for this one (then find the account deleted). The
        // statements below run after it, so they see those links.
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM accounts WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if live.is_none() {
            return Ok(Vec::new());
        }
        let friends: Vec<i64> = sqlx::query_scalar(
            "SELECT friend_id FROM friendships WHERE user_id = $1 ORDER BY friend_name",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        // Every statement below finds its rows through an index on the
        // deleted user's id.
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM friend_requests WHERE from_user = $1",
            "DELETE FROM friend_requests WHERE to_user = $1",
            "DELETE FROM friendships WHERE friend_id = $1",
            "DELETE FROM friendships WHERE user_id = $1",
            "DELETE FROM follows WHERE follower_id = $1",
            "DELETE FROM follows WHERE followee_id = $1",
            "DELETE FROM blocks WHERE blocker_id = $1",
            "DELETE FROM blocks WHERE blocked_id = $1",
            "DELETE FROM mutes WHERE muter_id = $1",
            "DELETE FROM mutes WHERE muted_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        // Its media is released: it expires now, and the garbage collection
        // removes it, bytes included.
        sqlx::query(RELEASE_MEDIA)
            .bind(user)
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(TOMBSTONE)
            .bind(user)
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(friends
            .into_iter()
            .map(|f| UserId::new(raw_id(f)))
            .collect())
    }

    /// Stores the session if `session.user_id` is a live account.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::User`]) if it is not (for example
    /// because the account was deleted after the caller checked it): the
    /// session is not stored, so no token can outlive its account. The
    /// statement holds a share lock on the account row while it inserts, so
    /// it cannot interleave with `delete_account`.
    async fn insert_session(&self, session: &Session, token_digest: &[u8; 32]) -> Result<()> {
        let done = sqlx::query(
            "WITH live AS (SELECT id FROM accounts WHERE id = $2 AND deleted_at IS NULL FOR SHARE) \
             INSERT INTO sessions (id, user_id, token_digest, created_at) \
             SELECT $1, id, $3, $4 FROM live",
        )
        .bind(sql_id(session.id.get()))
        .bind(sql_id(session.user_id.get()))
        .bind(&token_digest[..])
        .bind(session.created_at.as_millis())
        .execute(self.read())
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(Entity::User));
        }
        Ok(())
    }

    async fn session_by_digest(&self, token_digest: &[u8; 32]) -> Result<Option<Session>> {
        let row: Option<SessionRow> =
            sqlx::query_as("SELECT id, user_id, created_at FROM sessions WHERE token_digest = $1")
                .bind(&token_digest[..])
                .fetch_optional(self.read())
                .await
                .map_err(db)?;
        Ok(row.map(Session::from))
    }

    async fn sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT id, user_id, created_at FROM sessions WHERE user_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(sql_id(user.get()))
        .fetch_all(self.read())
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn delete_session(&self, user: UserId, id: SessionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(sql_id(id.get()))
            .bind(sql_id(user.get()))
            .execute(self.read())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
