//! [`ReactionStore`] for [`PgStore`]: reactions to posts and comments, one
//! row per user per target, as in `kith-sqlite`; the target's row is
//! share-locked so that its deletion runs wholly before or after. Setting one
//! takes the pair lock of the user and the target's author before it
//! checks for a block, so it runs wholly before or after a block between
//! them.

use async_trait::async_trait;
use kith_core::page::{IdKey, Window};
use kith_core::{
    Reactable, Reaction, ReactionKind, ReactionStore, ReactionSummary, Result, UserId, Viewed,
};

use crate::graph::blocked_between;
use crate::rows::{cursor_id, raw_count, sql_id, sql_limit, ReactionRow};
use crate::{db, lock_pair, PgStore};

/// The statements of one kind of target's reactions.
struct ReactionSql {
    /// The author of target `$1`.
    owner: &'static str,
    /// The kind of `$2`'s reaction to `$1`.
    current: &'static str,
    /// Sets `$2`'s reaction to `$1` to `$3`.
    upsert: &'static str,
    /// Removes `$2`'s reaction to `$1`.
    delete: &'static str,
    /// The counts per kind of the reactions of live accounts to `$1`.
    counts: &'static str,
    /// Who reacted to `$2` (of kind `$3`, or any if NULL) after user `$4`,
    /// `$5` of them, with the links to viewer `$1`.
    list: &'static str,
}

macro_rules! reaction_sql {
    ($table:literal, $target:literal, $owner:literal) => {
        ReactionSql {
            owner: $owner,
            current: concat!(
                "SELECT kind FROM ",
                $table,
                " WHERE ",
                $target,
                " = $1 AND user_id = $2"
            ),
            upsert: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $target,
                ", user_id, kind) VALUES ($1, $2, $3) ",
                "ON CONFLICT (",
                $target,
                ", user_id) DO UPDATE SET kind = excluded.kind"
            ),
            delete: concat!(
                "DELETE FROM ",
                $table,
                " WHERE ",
                $target,
                " = $1 AND user_id = $2"
            ),
            counts: concat!(
                "SELECT r.kind, count(*) FROM ",
                $table,
                " r ",
                "JOIN accounts a ON a.id = r.user_id ",
                "WHERE r.",
                $target,
                " = $1 AND a.deleted_at IS NULL GROUP BY r.kind"
            ),
            list: concat!(
                "SELECT a.id AS user_id, a.username, a.display_name, a.avatar_url, r.kind, ",
                viewer_links!("r.user_id"),
                "FROM ",
                $table,
                " r JOIN accounts a ON a.id = r.user_id ",
                "WHERE r.",
                $target,
                " = $2 AND ($3::TEXT IS NULL OR r.kind = $3) ",
                "AND r.user_id > $4 AND a.deleted_at IS NULL ",
                "ORDER BY r.user_id LIMIT $5"
            ),
        }
    };
}

const POSTS: ReactionSql = reaction_sql!(
    "post_reactions",
    "post_id",
    "SELECT author_id FROM posts WHERE id = $1 FOR SHARE"
);

const COMMENTS: ReactionSql = reaction_sql!(
    "comment_reactions",
    "comment_id",
    "SELECT author_id FROM comments WHERE id = $1 AND deleted_at IS NULL FOR SHARE"
);

/// The statements and the raw id of `target`.
fn sql_of(target: Reactable) -> (&'static ReactionSql, i64) {
    match target {
        Reactable::Post(id) => (&POSTS, sql_id(id.get())),
        Reactable::Comment(id) => (&COMMENTS, sql_id(id.get())),
    }
}

#[async_trait]
impl ReactionStore for PgStore {
    async fn set_reaction_on(
        &self,
        target: Reactable,
        user: UserId,
        kind: Option<ReactionKind>,
    ) -> Result<Option<bool>> {
        let (sql, id) = sql_of(target);
        let user = sql_id(user.get());
        let mut tx = self.begin().await?;
        let owner: Option<i64> = sqlx::query_scalar(sql.owner)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        if owner != user {
            // A block between them runs wholly before or after this.
            lock_pair(&mut tx, user, owner).await?;
            if blocked_between(&mut tx, user, owner).await? {
                return Ok(None);
            }
        }
        let current: Option<String> = sqlx::query_scalar(sql.current)
            .bind(id)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if current.as_deref() == kind.map(ReactionKind::as_str) {
            return Ok(Some(false));
        }
        let write = match kind {
            Some(kind) => sqlx::query(sql.upsert)
                .bind(id)
                .bind(user)
                .bind(kind.as_str()),
            None => sqlx::query(sql.delete).bind(id).bind(user),
        };
        write.execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(true))
    }

    async fn reaction_summary(
        &self,
        target: Reactable,
        viewer: Option<UserId>,
    ) -> Result<ReactionSummary> {
        let (sql, id) = sql_of(target);
        let counts: Vec<(String, i64)> = sqlx::query_as(sql.counts)
            .bind(id)
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        let mine: Option<String> = match viewer {
            Some(viewer) => sqlx::query_scalar(sql.current)
                .bind(id)
                .bind(sql_id(viewer.get()))
                .fetch_optional(self.read())
                .await
                .map_err(db)?,
            None => None,
        };
        let counts = counts
            .into_iter()
            .filter_map(|(kind, n)| Some((ReactionKind::parse(&kind)?, raw_count(n))));
        Ok(ReactionSummary::new(
            counts,
            mine.as_deref().and_then(ReactionKind::parse),
        ))
    }

    async fn reactions(
        &self,
        target: Reactable,
        kind: Option<ReactionKind>,
        viewer: Option<UserId>,
        window: &Window<IdKey>,
    ) -> Result<Vec<Viewed<Reaction>>> {
        let (sql, id) = sql_of(target);
        let rows: Vec<ReactionRow> = sqlx::query_as(sql.list)
            .bind(viewer.map(|v| sql_id(v.get())))
            .bind(id)
            .bind(kind.map(ReactionKind::as_str))
            .bind(window.after.map_or(i64::MIN, |key| cursor_id(key.0)))
            .bind(sql_limit(window.limit))
            .fetch_all(self.read())
            .await
            .map_err(db)?;
        rows.into_iter().map(Viewed::try_from).collect()
    }
}
