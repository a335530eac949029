//! [`MediaStore`] for [`PgStore`]: media records in `media`. An attach
//! takes the owner's advisory lock (`lock_pair` on the owner with itself, a
//! pair no graph write uses), so that two attaches of one owner's avatar at
//! once run one after the other and leave one attached.

use async_trait::async_trait;
use kith_core::{
    Attachment, Error, MediaId, MediaItem, MediaKind, MediaStore, Result, Timestamp, UserId,
    Variant,
};

use crate::rows::{raw_id, sql_id, sql_limit};
use crate::{db, lock_pair, PgStore};

const SELECT_MEDIA: &str = "\
    SELECT id, owner, kind, content_type, byte_size, width, height, variants, created_at, \
        attached_kind, attached_to, expires_at FROM media";

/// A row of `media`.
#[derive(sqlx::FromRow)]
struct MediaRow {
    id: i64,
    owner: i64,
    kind: String,
    content_type: String,
    byte_size: i64,
    width: i64,
    height: i64,
    variants: String,
    created_at: i64,
    attached_kind: Option<String>,
    attached_to: Option<i64>,
    expires_at: Option<i64>,
}

impl MediaRow {
    fn into_item(self) -> Result<MediaItem> {
        let corrupt = |what: &str| {
            Error::storage(format!(
                "corrupt media {} in the PostgreSQL database: {what}",
                self.id
            ))
        };
        let owner = UserId::new(raw_id(self.owner));
        let kind = MediaKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?;
        let variants = self
            .variants
            .split(',')
            .map(Variant::parse)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("variants"))?;
        let attachment = match (&self.attached_kind, self.attached_to) {
            (Some(kind), Some(to)) => Some(
                Attachment::parse(kind, raw_id(to), owner).ok_or_else(|| corrupt("attachment"))?,
            ),
            _ => None,
        };
        let size = |n: i64| u32::try_from(n).map_err(|_| corrupt("size"));
        Ok(MediaItem {
            id: MediaId::new(raw_id(self.id)),
            owner,
            kind,
            byte_size: u64::try_from(self.byte_size).map_err(|_| corrupt("byte_size"))?,
            width: size(self.width)?,
            height: size(self.height)?,
            variants,
            created_at: Timestamp::from_millis(self.created_at),
            attachment,
            expires_at: self.expires_at.map(Timestamp::from_millis),
            content_type: self.content_type,
        })
    }
}

#[async_trait]
impl MediaStore for PgStore {
    async fn insert_media(&self, item: &MediaItem) -> Result<()> {
        let variants: Vec<&str> = item.variants.iter().map(|v| v.as_str()).collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO media (id, owner, kind, content_type, byte_size, width, height, \
                variants, created_at, attached_kind, attached_to, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(sql_id(item.id.get()))
        .bind(sql_id(item.owner.get()))
        .bind(item.kind.as_str())
        .bind(&item.content_type)
        .bind(i64::try_from(item.byte_size).unwrap_or(i64::MAX))
        .bind(i64::from(item.width))
        .bind(i64::from(item.height))
        .bind(variants.join(","))
        .bind(item.created_at.as_millis())
        .bind(item.attachment.map(Attachment::as_str))
        .bind(item.attachment.map(|a| sql_id(a.target(item.owner))))
        .bind(item.expires_at.map(Timestamp::as_millis))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn media(&self, id: MediaId) -> Result<Option<MediaItem>> {
        let row: Option<MediaRow> = sqlx::query_as(&format!("{SELECT_MEDIA} WHERE id = $1"))
            .bind(sql_id(id.get()))
            .fetch_optional(self.read())
            .await
            .map_err(db)?;
        row.map(MediaRow::into_item).transpose()
    }

    async fn attach_media(
        &self,
        id: MediaId,
        owner: UserId,
        attachment: Attachment,
        now: Timestamp,
    ) -> Result<bool> {
        let (kind, target) = (attachment.as_str(), sql_id(attachment.target(owner)));
        let mut tx = self.begin().await?;
        lock_pair(&mut tx, sql_id(owner.get()), sql_id(owner.get())).await?;
        if attachment.is_single() {
            sqlx::query(
                "UPDATE media SET attached_kind = NULL, attached_to = NULL, expires_at = $3 \
                 WHERE owner = $4 AND attached_kind = $1 AND attached_to = $2 AND id <> $5 \
                 AND EXISTS (SELECT 1 FROM media WHERE id = $5 AND owner = $4 \
                     AND attached_kind IS NULL AND expires_at > $3)",
            )
            .bind(kind)
            .bind(target)
            .bind(now.as_millis())
            .bind(sql_id(owner.get()))
            .bind(sql_id(id.get()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let done = sqlx::query(
            "UPDATE media SET attached_kind = $1, attached_to = $2, expires_at = NULL \
             WHERE id = $5 AND owner = $4 AND attached_kind IS NULL AND expires_at > $3",
        )
        .bind(kind)
        .bind(target)
        .bind(now.as_millis())
        .bind(sql_id(owner.get()))
        .bind(sql_id(id.get()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_media(&self, now: Timestamp, limit: u32) -> Result<Vec<MediaItem>> {
        let rows: Vec<MediaRow> = sqlx::query_as(&format!(
            "{SELECT_MEDIA} WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
        ))
        .bind(now.as_millis())
        .bind(sql_limit(limit))
        .fetch_all(self.read())
        .await
        .map_err(db)?;
        rows.into_iter().map(MediaRow::into_item).collect()
    }

    async fn delete_media(&self, id: MediaId, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM media WHERE id = $1 AND expires_at <= $2")
            .bind(sql_id(id.get()))
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
