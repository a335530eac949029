//! [`PostStore`] for [`PgStore`]: posts, their hashtags and mentions.
//!
//! As in `kith-sqlite`: a post is read in one statement with its author's
//! card, its hashtags and mentions (arrays aggregated by correlated
//! subqueries) and the links between the viewer and the author; lists are
//! index ranges on position descending. A new post takes its position in
//! the last statement before COMMIT (see `migrations/0007_posts.sql`).

use async_trait::async_trait;
use kith_core::page::{IdKey, Window};
use kith_core::{
    NewPostRecord, Post, PostContent, PostEditRecord, PostId, PostList, PostStore, Result, UserId,
    Viewed,
};
use sqlx::PgConnection;

use crate::graph::blocked_between;
use crate::rows::{cursor_id, sql_id, sql_limit, PostRow};
use crate::{db, lock_pair, PgStore};

/// The columns of [`PostRow`], from `posts p JOIN accounts a`; `$1` is the
/// viewer (NULL for anonymous).
macro_rules! post_columns {
    () => {
        concat!(
            "SELECT p.id, p.text, p.visibility, p.created_at, p.edited_at, p.position, \
         a.id AS user_id, a.username, a.display_name, a.avatar_url, \
         ARRAY(SELECT t.tag::TEXT FROM post_hashtags t WHERE t.post_id = p.id) AS hashtags, \
         ARRAY(SELECT m.user_id FROM post_mentions m \
             JOIN accounts ma ON ma.id = m.user_id \
             WHERE m.post_id = p.id AND ma.deleted_at IS NULL) AS mentions, \
         (SELECT count(*) FROM comments c JOIN accounts ca ON ca.id = c.author_id \
             WHERE c.post_id = p.id AND c.deleted_at IS NULL AND ca.deleted_at IS NULL) \
             AS comments, p.shared_id, \
         (SELECT count(*) FROM posts s JOIN accounts sa ON sa.id = s.author_id \
             WHERE s.shared_id = p.id AND sa.deleted_at IS NULL) AS shares, ",
            viewer_links!("p.author_id")
        )
    };
}

/// The posts of the array of ids `$2`.
const BY_IDS: &str = concat!(
    post_columns!(),
    "FROM posts p JOIN accounts a ON a.id = p.author_id ",
    "WHERE p.id = ANY($2) AND a.deleted_at IS NULL"
);

/// The posts of author `$2` below position `$3`, newest first, `$4` of them.
const BY_AUTHOR: &str = concat!(
    post_columns!(),
    "FROM posts p JOIN accounts a ON a.id = p.author_id ",
    "WHERE p.author_id = $2 AND p.position < $3 AND a.deleted_at IS NULL ",
    "ORDER BY p.position DESC LIMIT $4"
);

/// The posts with hashtag `$2` below position `$3`, newest first, `$4` of them.
const BY_HASHTAG: &str = concat!(
    post_columns!(),
    "FROM post_hashtags h JOIN posts p ON p.id = h.post_id ",
    "JOIN accounts a ON a.id = p.author_id ",
    "WHERE h.tag = $2 AND h.position < $3 AND a.deleted_at IS NULL ",
    "ORDER BY h.position DESC LIMIT $4"
);

/// The level of post `$p`'s visibility: 0 public, 1 friends, 2 private.
macro_rules! visibility_level {
    ($p:literal) => {
        concat!(
            "CASE ",
            $p,
            ".visibility WHEN 'public' THEN 0 WHEN 'friends' THEN 1 ELSE 2 END"
        )
    };
}

/// The home feed of user `$2` below position `$3`, newest first, `$4` of
/// them: the posts of `$2`, `$2`'s friends and followees, minus those `$2`
/// mutes, as far as each author's link to `$2` shows them (`level`: 2 for
/// `$2`'s own posts, 1 for a friend's public and friends-only posts, 0 for
/// a followee's public posts; Kith checks every post again). Read from the
/// authors' own index (`posts_author_visibility`), whatever the depth: for
/// each author its newest `$4` shown posts below `$3` (one index range,
/// `LATERAL`), of which the newest `$4` of all make the page.
const BY_HOME: &str = concat!(
    "WITH links (id, level) AS (SELECT $2::BIGINT, 2 \
        UNION ALL SELECT friend_id, 1 FROM friendships WHERE user_id = $2 \
        UNION ALL SELECT followee_id, 0 FROM follows WHERE follower_id = $2), \
    shown (id, level) AS (SELECT id, MAX(level) FROM links \
        WHERE id NOT IN (SELECT muted_id FROM mutes WHERE muter_id = $2) GROUP BY id), \
    page AS (SELECT f.id, f.position FROM shown s CROSS JOIN LATERAL \
        (SELECT f.id, f.position FROM posts f \
        WHERE f.author_id = s.id AND f.position < $3 AND ",
    visibility_level!("f"),
    " <= s.level ORDER BY f.position DESC LIMIT $4) f \
        ORDER BY f.position DESC LIMIT $4) ",
    post_columns!(),
    "FROM page JOIN posts p ON p.id = page.id JOIN accounts a ON a.id = p.author_id ",
    "WHERE a.deleted_at IS NULL ORDER BY p.position DESC"
);

/// Stores the hashtags and the mentions of live accounts of post `id`,
/// with the post's position (NULL until the inserting transaction sets it).
async fn write_tags(conn: &mut PgConnection, id: i64, content: &PostContent) -> Result<()> {
    sqlx::query(
        "INSERT INTO post_hashtags (post_id, tag, position) \
         SELECT $1, tag, (SELECT position FROM posts WHERE id = $1) FROM unnest($2::TEXT[]) tag",
    )
    .bind(id)
    .bind(&content.hashtags)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO post_mentions (post_id, user_id) \
         SELECT $1, a.id FROM unnest($2::TEXT[]) name \
         JOIN accounts a ON a.username_lower = name AND a.deleted_at IS NULL",
    )
    .bind(id)
    .bind(&content.mentions)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Post `id` as the transaction sees it.
async fn read_back(conn: &mut PgConnection, id: i64) -> Result<Option<PostRow>> {
    sqlx::query_as(BY_IDS)
        .bind(None::<i64>)
        .bind(vec![id])
        .fetch_optional(conn)
        .await
        .map_err(db)
}

/// Whether `author` may share post `shared`: it exists and no block
/// stands between its author and them (under their pair lock, so a block
/// runs wholly before or after the share).
async fn shareable(conn: &mut PgConnection, shared: i64, author: i64) -> Result<bool> {
    let owner: Option<i64> = sqlx::query_scalar("SELECT author_id FROM posts WHERE id = $1")
        .bind(shared)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match owner {
        None => Ok(false),
        Some(owner) if owner == author => Ok(true),
        Some(owner) => {
            lock_pair(&mut *conn, author, owner).await?;
            Ok(!blocked_between(conn, author, owner).await?)
        }
    }
}

fn decode(rows: Vec<PostRow>) -> Result<Vec<Viewed<Post>>> {
    rows.into_iter().map(|row| row.into_viewed(None)).collect()
}

#[async_trait]
impl PostStore for PgStore {
    async fn insert_post(&self, post: &NewPostRecord) -> Result<Option<Post>> {
        let id = sql_id(post.id.get());
        let mut tx = self.begin().await?;
        if let Some(shared) = post.shared_id {
            if !shareable(&mut tx, sql_id(shared.get()), sql_id(post.author.get())).await? {
                return Ok(None);
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO posts (id, author_id, text, visibility, created_at, shared_id) \
             SELECT $1, id, $3, $4, $5, $6 FROM accounts WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(sql_id(post.author.get()))
        .bind(&post.content.text)
        .bind(post.content.visibility.as_str())
        .bind(post.created_at.as_millis())
        .bind(post.shared_id.map(|s| sql_id(s.get())))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        write_tags(&mut tx, id, &post.content).await?;
        let Some(row) = read_back(&mut tx, id).await? else {
            return Ok(None);
        };
        // Last before COMMIT: the next position. The counter row stays
        // locked until the commit, so positions are in commit order.
        let position: i64 = sqlx::query_scalar(
            "WITH n AS (UPDATE post_positions SET last = last + 1 WHERE id = 1 RETURNING last), \
             t AS (UPDATE post_hashtags SET position = n.last FROM n WHERE post_id = $1) \
             UPDATE posts SET position = n.last FROM n WHERE posts.id = $1 RETURNING n.last",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.into_viewed(Some(position)).map(|seen| Some(seen.value))
    }

    async fn update_post(&self, edit: &PostEditRecord) -> Result<Option<Post>> {
        let id = sql_id(edit.id.get());
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE posts SET text = $3, visibility = $4, edited_at = $5 \
             WHERE id = $1 AND author_id = $2",
        )
        .bind(id)
        .bind(sql_id(edit.author.get()))
        .bind(&edit.content.text)
        .bind(edit.content.visibility.as_str())
        .bind(edit.edited_at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        for sql in [
            "DELETE FROM post_hashtags WHERE post_id = $1",
            "DELETE FROM post_mentions WHERE post_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        write_tags(&mut tx, id, &edit.content).await?;
        let row = read_back(&mut tx, id).await?;
        tx.commit().await.map_err(db)?;
        row.map(|row| row.into_viewed(None).map(|seen| seen.value))
            .transpose()
    }

    async fn delete_post(&self, id: PostId, author: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM posts WHERE id = $1 AND author_id = $2")
            .bind(sql_id(id.get()))
            .bind(sql_id(author.get()))
            .execute(self.read())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn posts(&self, ids: &[PostId], viewer: Option<UserId>) -> Result<Vec<Viewed<Post>>> {
        let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
        let rows: Vec<PostRow> = sqlx::query_as(BY_IDS)
            .bind(viewer.map(|v| sql_id(v.get())))
            .bind(ids)
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        decode(rows)
    }

    async fn list_posts(
        &self,
        list: &PostList,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Post>>> {
        let viewer = viewer.map(|v| sql_id(v.get()));
        let below = window.after.map_or(i64::MAX, |key| cursor_id(key.0));
        let query = match list {
            PostList::Author(author) => sqlx::query_as(BY_AUTHOR)
                .bind(viewer)
                .bind(sql_id(author.get())),
            PostList::Hashtag(tag) => sqlx::query_as(BY_HASHTAG).bind(viewer).bind(tag.as_str()),
            PostList::Home(user) => sqlx::query_as(BY_HOME)
                .bind(viewer)
                .bind(sql_id(user.get())),
        };
        let rows: Vec<PostRow> = query
            .bind(below)
            .bind(sql_limit(window.limit))
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        decode(rows)
    }
}
