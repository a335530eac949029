//! [`PostStore`] for [`SqliteStore`]: posts, their hashtags and mentions.
//!
//! A post is read in one statement with its author's card, its hashtags and
//! mentions (aggregated into JSON arrays by correlated subqueries) and the
//! links between the viewer and the author (`post_columns!`). Lists are
//! index ranges on position descending: `posts_author_visibility` for a timeline,
//! `post_hashtags_tag` for a hashtag.

use async_trait::async_trait;
use kith_core::page::{IdKey, Window};
use kith_core::{
    NewPostRecord, Post, PostContent, PostEditRecord, PostId, PostList, PostStore, Result, UserId,
    Viewed,
};
use sqlx::SqliteConnection;

use crate::graph::blocked_between;
use crate::rows::{cursor_id, sql_id, sql_limit, PostRow};
use crate::{db, SqliteStore};

/// The columns of [`PostRow`], from `posts p JOIN accounts a`; `?1` is the
/// viewer (NULL for anonymous).
macro_rules! post_columns {
    () => {
        concat!(
            "SELECT p.id, p.text, p.visibility, p.created_at, p.edited_at, p.position, \
         a.id AS user_id, a.username, a.display_name, a.avatar_url, \
         (SELECT json_group_array(t.tag) FROM post_hashtags t WHERE t.post_id = p.id) \
             AS hashtags, \
         (SELECT json_group_array(m.user_id) FROM post_mentions m \
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

/// The posts of the JSON array of ids `?2`.
const BY_IDS: &str = concat!(
    post_columns!(),
    "FROM posts p JOIN accounts a ON a.id = p.author_id ",
    "WHERE p.id IN (SELECT value FROM json_each(?2)) AND a.deleted_at IS NULL"
);

/// The posts of author `?2` below position `?3`, newest first, `?4` of them.
const BY_AUTHOR: &str = concat!(
    post_columns!(),
    "FROM posts p JOIN accounts a ON a.id = p.author_id ",
    "WHERE p.author_id = ?2 AND p.position < ?3 AND a.deleted_at IS NULL ",
    "ORDER BY p.position DESC LIMIT ?4"
);

/// The posts with hashtag `?2` below position `?3`, newest first, `?4` of them.
const BY_HASHTAG: &str = concat!(
    post_columns!(),
    "FROM post_hashtags h JOIN posts p ON p.id = h.post_id ",
    "JOIN accounts a ON a.id = p.author_id ",
    "WHERE h.tag = ?2 AND h.position < ?3 AND a.deleted_at IS NULL ",
    "ORDER BY h.position DESC LIMIT ?4"
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

/// The home feed of user `?2` below position `?3`, newest first, `?4` of
/// them: the posts of `?2`, `?2`'s friends and followees, minus those `?2`
/// mutes, as far as each author's link to `?2` shows them (`level`: 2 for
/// `?2`'s own posts, 1 for a friend's public and friends-only posts, 0 for
/// a followee's public posts; Kith checks every post again). Read from the
/// authors' own index (`posts_author_visibility`), whatever the depth: for
/// each author, the position of its `?4`-th shown post below `?3` (one index
/// probe); the highest of them is a floor above which the set holds at
/// least `?4` posts. The positions of the set's shown posts between the
/// floor and `?3` (index entries only: a short range per author) give the
/// page's `?4` positions, and only those posts are read whole.
const BY_HOME: &str = concat!(
    "WITH links (id, level) AS (SELECT ?2, 2 \
        UNION ALL SELECT friend_id, 1 FROM friendships WHERE user_id = ?2 \
        UNION ALL SELECT followee_id, 0 FROM follows WHERE follower_id = ?2), \
    shown (id, level) AS (SELECT id, MAX(level) FROM links \
        WHERE id NOT IN (SELECT muted_id FROM mutes WHERE muter_id = ?2) GROUP BY id), \
    floor (position) AS (SELECT MAX((SELECT f.position FROM posts f \
        WHERE f.author_id = s.id AND f.position < ?3 AND ",
    visibility_level!("f"),
    " <= s.level ORDER BY f.position DESC LIMIT 1 OFFSET ?4 - 1)) FROM shown s), \
    page (position) AS (SELECT f.position FROM shown s JOIN posts f ON f.author_id = s.id \
        WHERE f.position < ?3 AND f.position >= COALESCE((SELECT position FROM floor), 0) AND ",
    visibility_level!("f"),
    " <= s.level ORDER BY f.position DESC LIMIT ?4) ",
    post_columns!(),
    "FROM page JOIN posts p ON p.position = page.position JOIN accounts a ON a.id = p.author_id ",
    "WHERE a.deleted_at IS NULL ORDER BY p.position DESC"
);

/// Stores the hashtags and the mentions of live accounts of post `id`,
/// with the post's position (NULL until the inserting transaction sets it).
async fn write_tags(conn: &mut SqliteConnection, id: i64, content: &PostContent) -> Result<()> {
    sqlx::query(
        "INSERT INTO post_hashtags (post_id, tag, position) \
         SELECT ?1, value, (SELECT position FROM posts WHERE id = ?1) FROM json_each(?2)",
    )
    .bind(id)
    .bind(serde_json::json!(content.hashtags).to_string())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO post_mentions (post_id, user_id) \
         SELECT ?1, a.id FROM json_each(?2) j \
         JOIN accounts a ON a.username_lower = j.value AND a.deleted_at IS NULL",
    )
    .bind(id)
    .bind(serde_json::json!(content.mentions).to_string())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Post `id` as the transaction sees it.
async fn read_back(conn: &mut SqliteConnection, id: i64) -> Result<Option<Post>> {
    let row: Option<PostRow> = sqlx::query_as(BY_IDS)
        .bind(None::<i64>)
        .bind(serde_json::json!([id]).to_string())
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(|row| Viewed::try_from(row).map(|seen| seen.value))
        .transpose()
}

/// Whether `author` may share post `shared`: it exists and no block
/// stands between its author and them.
async fn shareable(conn: &mut SqliteConnection, shared: i64, author: i64) -> Result<bool> {
    let owner: Option<i64> = sqlx::query_scalar("SELECT author_id FROM posts WHERE id = ?1")
        .bind(shared)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match owner {
        None => Ok(false),
        Some(owner) if owner == author => Ok(true),
        Some(owner) => Ok(!blocked_between(conn, author, owner).await?),
    }
}

fn decode(rows: Vec<PostRow>) -> Result<Vec<Viewed<Post>>> {
    rows.into_iter().map(Viewed::try_from).collect()
}

#[async_trait]
impl PostStore for SqliteStore {
    async fn insert_post(&self, post: &NewPostRecord) -> Result<Option<Post>> {
        let id = sql_id(post.id.get());
        let mut tx = self.write().await?;
        if let Some(shared) = post.shared_id {
            if !shareable(&mut tx, sql_id(shared.get()), sql_id(post.author.get())).await? {
                return Ok(None);
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO posts (id, author_id, text, visibility, created_at, shared_id) \
             SELECT ?1, id, ?3, ?4, ?5, ?6 FROM accounts WHERE id = ?2 AND deleted_at IS NULL",
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
        // Last: the next position (the single writer keeps it in commit
        // order), given to the post and its hashtags.
        let position: i64 = sqlx::query_scalar(
            "UPDATE post_positions SET last = last + 1 WHERE id = 1 RETURNING last",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for sql in [
            "UPDATE posts SET position = ?2 WHERE id = ?1",
            "UPDATE post_hashtags SET position = ?2 WHERE post_id = ?1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .bind(position)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let stored = read_back(&mut tx, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn update_post(&self, edit: &PostEditRecord) -> Result<Option<Post>> {
        let id = sql_id(edit.id.get());
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE posts SET text = ?3, visibility = ?4, edited_at = ?5 \
             WHERE id = ?1 AND author_id = ?2",
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
            "DELETE FROM post_hashtags WHERE post_id = ?1",
            "DELETE FROM post_mentions WHERE post_id = ?1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        write_tags(&mut tx, id, &edit.content).await?;
        let stored = read_back(&mut tx, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn delete_post(&self, id: PostId, author: UserId) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM posts WHERE id = ?1 AND author_id = ?2")
            .bind(sql_id(id.get()))
            .bind(sql_id(author.get()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn posts(&self, ids: &[PostId], viewer: Option<UserId>) -> Result<Vec<Viewed<Post>>> {
        let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
        let rows: Vec<PostRow> = sqlx::query_as(BY_IDS)
            .bind(viewer.map(|v| sql_id(v.get())))
            .bind(serde_json::json!(ids).to_string())
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
