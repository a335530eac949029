//! [`CommentStore`] for [`PgStore`]: comments, replies and tombstones.
//!
//! A comment is read in one statement with its author's card (NULL once
//! the account is deleted), its number of replies and the links between
//! the viewer and its author. A post's comments and a comment's replies
//! are index ranges by id (`comments_post`, `comments_parent`). As in
//! `kith-sqlite`, with row locks where PostgreSQL needs them: a new comment
//! takes the pair lock with the post's author before it checks for a block
//! and share-locks the post and its parent, so a deletion of either runs
//! wholly before or after it; a deletion locks the comment before it looks
//! for replies.

use async_trait::async_trait;
use kith_core::page::{IdKey, Window};
use kith_core::{
    Comment, CommentId, CommentStore, NewCommentRecord, PostId, Result, Timestamp, UserId, Viewed,
};

use crate::graph::blocked_between;
use crate::rows::{cursor_id, sql_id, sql_limit, CommentRow};
use crate::{db, lock_pair, PgStore};

/// The columns of [`CommentRow`], from `comments c LEFT JOIN accounts a`;
/// `$1` is the viewer (NULL for anonymous).
macro_rules! comment_columns {
    ($where:literal) => {
        concat!(
            "SELECT c.id, c.post_id, c.parent_id, c.text, c.created_at, c.edited_at, \
             c.deleted_at, a.id AS user_id, a.username, a.display_name, a.avatar_url, \
             (SELECT count(*) FROM comments r WHERE r.parent_id = c.id) AS replies, ",
            viewer_links!("c.author_id"),
            "FROM comments c LEFT JOIN accounts a ON a.id = c.author_id AND a.deleted_at IS NULL ",
            $where
        )
    };
}

/// The comments of the JSON array of ids `$2`.
const BY_IDS: &str = comment_columns!("WHERE c.id = ANY($2)");

/// The comments on post `$2` (not replies) after id `$3`, `$4` of them.
const ON_POST: &str = comment_columns!(
    "WHERE c.post_id = $2 AND c.parent_id IS NULL AND c.id > $3 ORDER BY c.id LIMIT $4"
);

/// The replies to comment `$2` after id `$3`, `$4` of them.
const REPLIES: &str =
    comment_columns!("WHERE c.parent_id = $2 AND c.id > $3 ORDER BY c.id LIMIT $4");

#[async_trait]
impl CommentStore for PgStore {
    async fn insert_comment(&self, comment: &NewCommentRecord) -> Result<bool> {
        let (post, author) = (sql_id(comment.post_id.get()), sql_id(comment.author.get()));
        let mut tx = self.begin().await?;
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT author_id FROM posts WHERE id = $1 FOR SHARE")
                .bind(post)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        if owner != author {
            lock_pair(&mut tx, author, owner).await?;
            if blocked_between(&mut tx, author, owner).await? {
                return Ok(false);
            }
        }
        if let Some(parent) = comment.parent_id {
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM comments \
                 WHERE id = $1 AND post_id = $2 AND deleted_at IS NULL FOR SHARE",
            )
            .bind(sql_id(parent.get()))
            .bind(post)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if live.is_none() {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO comments (id, post_id, parent_id, author_id, text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sql_id(comment.id.get()))
        .bind(post)
        .bind(comment.parent_id.map(|p| sql_id(p.get())))
        .bind(author)
        .bind(&comment.text)
        .bind(comment.created_at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        text: &str,
        at: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE comments SET text = $3, edited_at = $4 \
             WHERE id = $1 AND author_id = $2 AND deleted_at IS NULL",
        )
        .bind(sql_id(id.get()))
        .bind(sql_id(author.get()))
        .bind(text)
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_comment(&self, id: CommentId, at: Timestamp) -> Result<bool> {
        let id = sql_id(id.get());
        let mut tx = self.begin().await?;
        // The lock first: a reply committing meanwhile is then seen below.
        let found: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT parent_id FROM comments WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(mut parent) = found else {
            return Ok(false);
        };
        let replies: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM comments WHERE parent_id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if replies {
            for sql in [
                "UPDATE comments SET text = NULL, deleted_at = $2 WHERE id = $1",
                "DELETE FROM comment_reactions WHERE comment_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        } else {
            sqlx::query("DELETE FROM comments WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            // Tombstones left without replies go too, up the thread.
            while let Some(above) = parent {
                let removed: Option<Option<i64>> = sqlx::query_scalar(
                    "DELETE FROM comments WHERE id = $1 AND deleted_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM comments r WHERE r.parent_id = $1) \
                     RETURNING parent_id",
                )
                .bind(above)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                parent = removed.flatten();
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn comments(
        &self,
        ids: &[CommentId],
        viewer: Option<UserId>,
    ) -> Result<Vec<Viewed<Comment>>> {
        let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
        let rows: Vec<CommentRow> = sqlx::query_as(BY_IDS)
            .bind(viewer.map(|v| sql_id(v.get())))
            .bind(ids)
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(Viewed::from).collect())
    }

    async fn list_comments(
        &self,
        post: PostId,
        parent: Option<CommentId>,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Comment>>> {
        let viewer = viewer.map(|v| sql_id(v.get()));
        let query = match parent {
            None => sqlx::query_as(ON_POST)
                .bind(viewer)
                .bind(sql_id(post.get())),
            Some(parent) => sqlx::query_as(REPLIES)
                .bind(viewer)
                .bind(sql_id(parent.get())),
        };
        let rows: Vec<CommentRow> = query
            .bind(window.after.map_or(i64::MIN, |key| cursor_id(key.0)))
            .bind(sql_limit(window.limit))
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(Viewed::from).collect())
    }
}
