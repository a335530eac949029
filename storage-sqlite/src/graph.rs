//! [`GraphStore`] for [`SqliteStore`]: friend requests, friendships,
//! follows, blocks and mutes.
//!
//! Lists are keyset-paginated: each has two statements, one for the first
//! page and one that starts strictly after the cursor's key, so that the
//! bound is always an index range constraint.

use async_trait::async_trait;
use kith_core::page::{IdKey, NameKey, SinceKey, Window};
use kith_core::{
    Clash, Entity, Error, Followed, FriendRequest, FriendRequestEntry, GraphCounts, GraphStore,
    Links, Peer, Relationship, RequestDirection, Requested, Result, Timestamp, UserId,
};
use sqlx::SqliteConnection;

use crate::rows::{cursor_id, raw_id, sql_id, sql_limit, PeerRow, RequestEntryRow, RequestRow};
use crate::{db, unique_violation, SqliteStore};

/// The two statements of a keyset-paginated list.
struct ListSql {
    /// Binds `?1` the list's owner, `?2` the limit.
    first: &'static str,
    /// Also binds the cursor's key from `?3` on.
    after: &'static str,
}

/// A list of links ordered newest first by `(since, other)`, with the other
/// party's card: followers, following, blocks, mutes.
macro_rules! since_list {
    ($table:literal, $owner:literal, $other:literal) => {
        ListSql {
            first: concat!(
                "SELECT a.id AS user_id, a.username, a.display_name, a.avatar_url, l.since ",
                "FROM ",
                $table,
                " l JOIN accounts a ON a.id = l.",
                $other,
                " ",
                "WHERE l.",
                $owner,
                " = ?1 AND a.deleted_at IS NULL ",
                "ORDER BY l.since DESC, l.",
                $other,
                " DESC LIMIT ?2"
            ),
            after: concat!(
                "SELECT a.id AS user_id, a.username, a.display_name, a.avatar_url, l.since ",
                "FROM ",
                $table,
                " l JOIN accounts a ON a.id = l.",
                $other,
                " ",
                "WHERE l.",
                $owner,
                " = ?1 AND a.deleted_at IS NULL ",
                "AND (l.since, l.",
                $other,
                ") < (?3, ?4) ",
                "ORDER BY l.since DESC, l.",
                $other,
                " DESC LIMIT ?2"
            ),
        }
    };
}

const FOLLOWERS: ListSql = since_list!("follows", "followee_id", "follower_id");
const FOLLOWING: ListSql = since_list!("follows", "follower_id", "followee_id");
const BLOCKS: ListSql = since_list!("blocks", "blocker_id", "blocked_id");
const MUTES: ListSql = since_list!("mutes", "muter_id", "muted_id");

/// Pending requests newest first (by id), with the other party's card.
macro_rules! request_list {
    ($owner:literal, $other:literal) => {
        ListSql {
            first: concat!(
                "SELECT r.id, r.from_user, r.to_user, r.created_at, ",
                "a.id AS user_id, a.username, a.display_name, a.avatar_url ",
                "FROM friend_requests r JOIN accounts a ON a.id = r.",
                $other,
                " ",
                "WHERE r.",
                $owner,
                " = ?1 AND a.deleted_at IS NULL ",
                "ORDER BY r.id DESC LIMIT ?2"
            ),
            after: concat!(
                "SELECT r.id, r.from_user, r.to_user, r.created_at, ",
                "a.id AS user_id, a.username, a.display_name, a.avatar_url ",
                "FROM friend_requests r JOIN accounts a ON a.id = r.",
                $other,
                " ",
                "WHERE r.",
                $owner,
                " = ?1 AND a.deleted_at IS NULL AND r.id < ?3 ",
                "ORDER BY r.id DESC LIMIT ?2"
            ),
        }
    };
}

const INCOMING: ListSql = request_list!("to_user", "from_user");
const OUTGOING: ListSql = request_list!("from_user", "to_user");

/// Friends by lowercased username; `?3` is the optional name filter (NULL
/// for none), matched with `instr` so that no LIKE escaping is needed.
macro_rules! friends_list {
    ($bound:literal) => {
        concat!(
            "SELECT a.id AS user_id, a.username, a.display_name, a.avatar_url, f.since ",
            "FROM friendships f JOIN accounts a ON a.id = f.friend_id ",
            "WHERE f.user_id = ?1 AND a.deleted_at IS NULL ",
            "AND (?3 IS NULL OR instr(f.friend_name, ?3) > 0 ",
            "OR instr(a.display_name_lower, ?3) > 0) ",
            $bound,
            "ORDER BY f.friend_name LIMIT ?2"
        )
    };
}

const FRIENDS: ListSql = ListSql {
    first: friends_list!(""),
    after: friends_list!("AND f.friend_name > ?4 "),
};

const LINKS: &str = "\
    SELECT \
        EXISTS (SELECT 1 FROM friendships WHERE user_id = ?1 AND friend_id = ?2) AS friends, \
        EXISTS (SELECT 1 FROM friend_requests WHERE from_user = ?1 AND to_user = ?2) \
            AS request_sent, \
        EXISTS (SELECT 1 FROM friend_requests WHERE from_user = ?2 AND to_user = ?1) \
            AS request_received, \
        EXISTS (SELECT 1 FROM follows WHERE follower_id = ?1 AND followee_id = ?2) AS following, \
        EXISTS (SELECT 1 FROM follows WHERE follower_id = ?2 AND followee_id = ?1) \
            AS followed_by, \
        EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2) AS blocking, \
        EXISTS (SELECT 1 FROM mutes WHERE muter_id = ?1 AND muted_id = ?2) AS muting, \
        EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?2 AND blocked_id = ?1) AS blocked_by";

#[derive(sqlx::FromRow)]
struct LinksRow {
    friends: bool,
    request_sent: bool,
    request_received: bool,
    following: bool,
    followed_by: bool,
    blocking: bool,
    muting: bool,
    blocked_by: bool,
}

#[derive(sqlx::FromRow)]
struct CountsRow {
    friends: i64,
    followers: i64,
    following: i64,
}

/// Inside a write transaction: fails with [`Error::NotFound`] unless both
/// users are live. Links are only ever made between live accounts, so that
/// an account deleted after the caller checked it cannot gain new links.
async fn ensure_live(conn: &mut SqliteConnection, a: UserId, b: UserId) -> Result<()> {
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE id IN (?1, ?2) AND deleted_at IS NULL",
    )
    .bind(sql_id(a.get()))
    .bind(sql_id(b.get()))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    let expected = if a == b { 1 } else { 2 };
    if live == expected {
        Ok(())
    } else {
        Err(Error::NotFound(Entity::User))
    }
}

/// Whether either user blocks the other.
pub(crate) async fn blocked_between(conn: &mut SqliteConnection, a: i64, b: i64) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2) \
             OR EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?2 AND blocked_id = ?1)",
    )
    .bind(a)
    .bind(b)
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Deletes the pending request from `from` to `to` and returns it.
async fn take_request(
    conn: &mut SqliteConnection,
    from: i64,
    to: i64,
) -> Result<Option<FriendRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(
        "DELETE FROM friend_requests WHERE from_user = ?1 AND to_user = ?2 \
         RETURNING id, from_user, to_user, created_at",
    )
    .bind(from)
    .bind(to)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    Ok(row.map(FriendRequest::from))
}

/// Makes `a` and `b` friends since `since`, removing any request left
/// between them.
async fn befriend(conn: &mut SqliteConnection, a: i64, b: i64, since: Timestamp) -> Result<()> {
    delete_both_ways(
        conn,
        "DELETE FROM friend_requests WHERE from_user = ?1 AND to_user = ?2",
        a,
        b,
    )
    .await?;
    for (user, friend) in [(a, b), (b, a)] {
        sqlx::query(
            "INSERT INTO friendships (user_id, friend_id, friend_name, since) \
             SELECT ?1, id, username_lower, ?3 FROM accounts \
             WHERE id = ?2 AND deleted_at IS NULL \
             ON CONFLICT (user_id, friend_id) DO NOTHING",
        )
        .bind(user)
        .bind(friend)
        .bind(since.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Runs `sql` with `?1` and `?2` bound to the two users, in both orders.
async fn delete_both_ways(conn: &mut SqliteConnection, sql: &str, a: i64, b: i64) -> Result<u64> {
    let mut deleted = 0;
    for (x, y) in [(a, b), (b, a)] {
        deleted += sqlx::query(sql)
            .bind(x)
            .bind(y)
            .execute(&mut *conn)
            .await
            .map_err(db)?
            .rows_affected();
    }
    Ok(deleted)
}

impl SqliteStore {
    async fn since_list(
        &self,
        sql: &ListSql,
        user: UserId,
        window: Window<SinceKey>,
    ) -> Result<Vec<Peer>> {
        let owner = sql_id(user.get());
        let limit = sql_limit(window.limit);
        let query = match window.after {
            None => sqlx::query_as(sql.first).bind(owner).bind(limit),
            Some(key) => sqlx::query_as(sql.after)
                .bind(owner)
                .bind(limit)
                .bind(key.since.as_millis())
                .bind(cursor_id(key.user.get())),
        };
        let rows: Vec<PeerRow> = query.fetch_all(self.read()).await.map_err(db)?;
        Ok(rows.into_iter().map(Peer::from).collect())
    }

    /// Inserts a follow, block or mute between two live users; `false` if
    /// it already existed.
    async fn insert_link(
        conn: &mut SqliteConnection,
        sql: &'static str,
        from: UserId,
        to: UserId,
        since: Timestamp,
    ) -> Result<bool> {
        ensure_live(conn, from, to).await?;
        let done = sqlx::query(sql)
            .bind(sql_id(from.get()))
            .bind(sql_id(to.get()))
            .bind(since.as_millis())
            .execute(conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    /// Inserts one mute in its own transaction; see [`Self::insert_link`].
    async fn insert_link_alone(
        &self,
        sql: &'static str,
        from: UserId,
        to: UserId,
        since: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let inserted = Self::insert_link(&mut tx, sql, from, to, since).await?;
        tx.commit().await.map_err(db)?;
        Ok(inserted)
    }

    /// Deletes one follow, block or mute in its own transaction.
    async fn delete_link(&self, sql: &'static str, from: UserId, to: UserId) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query(sql)
            .bind(sql_id(from.get()))
            .bind(sql_id(to.get()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn links(&self, actor: UserId, other: UserId) -> Result<Links> {
        let row: LinksRow = sqlx::query_as(LINKS)
            .bind(sql_id(actor.get()))
            .bind(sql_id(other.get()))
            .fetch_one(self.read())
            .await
            .map_err(db)?;
        Ok(Links {
            visible: Relationship {
                friends: row.friends,
                request_sent: row.request_sent,
                request_received: row.request_received,
                following: row.following,
                followed_by: row.followed_by,
                blocking: row.blocking,
                muting: row.muting,
            },
            blocked_by: row.blocked_by,
        })
    }

    /// Stores a pending friend request between two live users.
    ///
    /// # Errors
    /// [`Clash::RequestPending`] as the trait says; [`Error::NotFound`]
    /// ([`Entity::User`]) if either user is not a live account.
    async fn insert_friend_request(&self, request: &FriendRequest) -> Result<Requested> {
        let (from, to) = (sql_id(request.from.get()), sql_id(request.to.get()));
        let mut tx = self.write().await?;
        ensure_live(&mut tx, request.from, request.to).await?;
        if blocked_between(&mut tx, from, to).await? {
            return Ok(Requested::Blocked);
        }
        let friends: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = ?1 AND friend_id = ?2)",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if friends {
            return Err(Error::Conflict(Clash::AlreadyFriends));
        }
        if let Some(reverse) = take_request(&mut tx, to, from).await? {
            befriend(&mut tx, from, to, request.created_at).await?;
            tx.commit().await.map_err(db)?;
            return Ok(Requested::Accepted(reverse));
        }
        let inserted = sqlx::query(
            "INSERT INTO friend_requests (id, from_user, to_user, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(sql_id(request.id.get()))
        .bind(from)
        .bind(to)
        .bind(request.created_at.as_millis())
        .execute(&mut *tx)
        .await;
        if let Err(err) = inserted {
            return Err(match unique_violation(&err) {
                Some(m) if m.contains("friend_requests.from_user") => {
                    Error::Conflict(Clash::RequestPending)
                }
                _ => db(err),
            });
        }
        tx.commit().await.map_err(db)?;
        Ok(Requested::Pending)
    }

    async fn delete_friend_request(
        &self,
        from: UserId,
        to: UserId,
    ) -> Result<Option<FriendRequest>> {
        let mut tx = self.write().await?;
        let row: Option<RequestRow> = sqlx::query_as(
            "DELETE FROM friend_requests WHERE from_user = ?1 AND to_user = ?2 \
             RETURNING id, from_user, to_user, created_at",
        )
        .bind(sql_id(from.get()))
        .bind(sql_id(to.get()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(row.map(FriendRequest::from))
    }

    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        since: Timestamp,
    ) -> Result<Option<FriendRequest>> {
        let (a, b) = (sql_id(from.get()), sql_id(to.get()));
        let mut tx = self.write().await?;
        let Some(request) = take_request(&mut tx, a, b).await? else {
            // Dropping the transaction rolls it back; nothing was changed.
            return Ok(None);
        };
        befriend(&mut tx, a, b, since).await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(request))
    }

    async fn friend_requests(
        &self,
        user: UserId,
        direction: RequestDirection,
        window: Window<IdKey>,
    ) -> Result<Vec<FriendRequestEntry>> {
        let sql = match direction {
            RequestDirection::Incoming => &INCOMING,
            RequestDirection::Outgoing => &OUTGOING,
        };
        let owner = sql_id(user.get());
        let limit = sql_limit(window.limit);
        let query = match window.after {
            None => sqlx::query_as(sql.first).bind(owner).bind(limit),
            Some(IdKey(after)) => sqlx::query_as(sql.after)
                .bind(owner)
                .bind(limit)
                .bind(cursor_id(after)),
        };
        let rows: Vec<RequestEntryRow> = query.fetch_all(self.read()).await.map_err(db)?;
        Ok(rows.into_iter().map(FriendRequestEntry::from).collect())
    }

    async fn friends(
        &self,
        user: UserId,
        name: Option<&str>,
        window: Window<NameKey>,
    ) -> Result<Vec<Peer>> {
        let owner = sql_id(user.get());
        let limit = sql_limit(window.limit);
        let query = match &window.after {
            None => sqlx::query_as(FRIENDS.first)
                .bind(owner)
                .bind(limit)
                .bind(name),
            Some(NameKey(after)) => sqlx::query_as(FRIENDS.after)
                .bind(owner)
                .bind(limit)
                .bind(name)
                .bind(after.as_str()),
        };
        let rows: Vec<PeerRow> = query.fetch_all(self.read()).await.map_err(db)?;
        Ok(rows.into_iter().map(Peer::from).collect())
    }

    async fn friend_ids(&self, user: UserId) -> Result<Vec<UserId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = ?1")
                .bind(sql_id(user.get()))
                .fetch_all(self.read())
                .await
                .map_err(db)?;
        Ok(ids.into_iter().map(|id| UserId::new(raw_id(id))).collect())
    }

    async fn audience(&self, user: UserId, followers: bool) -> Result<Vec<UserId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT friend_id FROM friendships WHERE user_id = ?1 \
             UNION SELECT follower_id FROM follows WHERE followee_id = ?1 AND ?2 \
             EXCEPT SELECT muter_id FROM mutes WHERE muted_id = ?1",
        )
        .bind(sql_id(user.get()))
        .bind(followers)
        .fetch_all(self.read())
        .await
        .map_err(db)?;
        Ok(ids.into_iter().map(|id| UserId::new(raw_id(id))).collect())
    }

    async fn delete_friendship(&self, a: UserId, b: UserId) -> Result<bool> {
        let mut tx = self.write().await?;
        let deleted = delete_both_ways(
            &mut tx,
            "DELETE FROM friendships WHERE user_id = ?1 AND friend_id = ?2",
            sql_id(a.get()),
            sql_id(b.get()),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    /// As the trait says; also [`Error::NotFound`] ([`Entity::User`]) if
    /// either user is not a live account.
    async fn insert_follow(
        &self,
        follower: UserId,
        followee: UserId,
        since: Timestamp,
    ) -> Result<Followed> {
        let mut tx = self.write().await?;
        if blocked_between(&mut tx, sql_id(follower.get()), sql_id(followee.get())).await? {
            return Ok(Followed::Blocked);
        }
        let inserted = Self::insert_link(
            &mut tx,
            "INSERT INTO follows (follower_id, followee_id, since) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
            follower,
            followee,
            since,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(if inserted {
            Followed::Inserted
        } else {
            Followed::Already
        })
    }

    async fn delete_follow(&self, follower: UserId, followee: UserId) -> Result<bool> {
        self.delete_link(
            "DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2",
            follower,
            followee,
        )
        .await
    }

    async fn followers(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>> {
        self.since_list(&FOLLOWERS, user, window).await
    }

    async fn following(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>> {
        self.since_list(&FOLLOWING, user, window).await
    }

    async fn counts(&self, user: UserId) -> Result<GraphCounts> {
        let row: CountsRow = sqlx::query_as(
            "SELECT \
                (SELECT count(*) FROM friendships WHERE user_id = ?1) AS friends, \
                (SELECT count(*) FROM follows WHERE followee_id = ?1) AS followers, \
                (SELECT count(*) FROM follows WHERE follower_id = ?1) AS following",
        )
        .bind(sql_id(user.get()))
        .fetch_one(self.read())
        .await
        .map_err(db)?;
        // count(*) is never negative.
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(GraphCounts {
            friends: count(row.friends),
            followers: count(row.followers),
            following: count(row.following),
        })
    }

    /// As the trait says; also [`Error::NotFound`] ([`Entity::User`]) if
    /// either user is not a live account.
    async fn insert_block(
        &self,
        blocker: UserId,
        blocked: UserId,
        since: Timestamp,
    ) -> Result<bool> {
        let (a, b) = (sql_id(blocker.get()), sql_id(blocked.get()));
        let mut tx = self.write().await?;
        let inserted = Self::insert_link(
            &mut tx,
            "INSERT INTO blocks (blocker_id, blocked_id, since) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
            blocker,
            blocked,
            since,
        )
        .await?;
        for sql in [
            "DELETE FROM friendships WHERE user_id = ?1 AND friend_id = ?2",
            "DELETE FROM friend_requests WHERE from_user = ?1 AND to_user = ?2",
            "DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2",
        ] {
            delete_both_ways(&mut tx, sql, a, b).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(inserted)
    }

    async fn delete_block(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        self.delete_link(
            "DELETE FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2",
            blocker,
            blocked,
        )
        .await
    }

    async fn blocks(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>> {
        self.since_list(&BLOCKS, user, window).await
    }

    /// As the trait says; also [`Error::NotFound`] ([`Entity::User`]) if
    /// either user is not a live account.
    async fn insert_mute(&self, muter: UserId, muted: UserId, since: Timestamp) -> Result<bool> {
        self.insert_link_alone(
            "INSERT INTO mutes (muter_id, muted_id, since) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
            muter,
            muted,
            since,
        )
        .await
    }

    async fn delete_mute(&self, muter: UserId, muted: UserId) -> Result<bool> {
        self.delete_link(
            "DELETE FROM mutes WHERE muter_id = ?1 AND muted_id = ?2",
            muter,
            muted,
        )
        .await
    }

    async fn mutes(&self, user: UserId, window: Window<SinceKey>) -> Result<Vec<Peer>> {
        self.since_list(&MUTES, user, window).await
    }
}
