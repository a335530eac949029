//! [`LimitStore`] for [`SqliteStore`]: one bucket per user and kind of write
//! in `write_buckets`, read and written in one write transaction (the one
//! writer serialises them).

use std::time::Duration;

use async_trait::async_trait;
use kith_core::{Bucket, LimitStore, Rate, Result, Timestamp, UserId, WriteKind};

use crate::rows::sql_id;
use crate::{db, SqliteStore};

#[async_trait]
impl LimitStore for SqliteStore {
    async fn take_token(
        &self,
        user: UserId,
        kind: WriteKind,
        rate: Rate,
        now: Timestamp,
    ) -> Result<std::result::Result<(), Duration>> {
        let mut tx = self.write().await?;
        let stored: Option<(i64, i64)> = sqlx::query_as(
            "SELECT milli_tokens, at FROM write_buckets WHERE user_id = ?1 AND kind = ?2",
        )
        .bind(sql_id(user.get()))
        .bind(kind.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let bucket = stored.map(|(milli_tokens, at)| Bucket {
            milli_tokens: milli_tokens.max(0) as u64,
            at: Timestamp::from_millis(at),
        });
        let taken = match rate.take(bucket, now) {
            Ok(taken) => taken,
            Err(wait) => return Ok(Err(wait)),
        };
        sqlx::query(
            "INSERT INTO write_buckets (user_id, kind, milli_tokens, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (user_id, kind) DO UPDATE \
             SET milli_tokens = excluded.milli_tokens, at = excluded.at",
        )
        .bind(sql_id(user.get()))
        .bind(kind.as_str())
        .bind(i64::try_from(taken.milli_tokens).unwrap_or(i64::MAX))
        .bind(taken.at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Ok(()))
    }
}
