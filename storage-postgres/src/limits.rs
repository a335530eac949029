//! [`LimitStore`] for [`PgStore`]: one bucket per user and kind of write in
//! `write_buckets`, locked by an upsert that creates a full bucket where
//! none is (so two transactions cannot both start from a missing row), then
//! updated in the same transaction.

use std::time::Duration;

use async_trait::async_trait;
use kith_core::{Bucket, LimitStore, Rate, Result, Timestamp, UserId, WriteKind};

use crate::rows::sql_id;
use crate::{db, PgStore};

#[async_trait]
impl LimitStore for PgStore {
    async fn take_token(
        &self,
        user: UserId,
        kind: WriteKind,
        rate: Rate,
        now: Timestamp,
    ) -> Result<std::result::Result<(), Duration>> {
        let mut tx = self.begin().await?;
        // A full bucket: any refill reaches the burst.
        let (milli_tokens, at): (i64, i64) = sqlx::query_as(
            "INSERT INTO write_buckets (user_id, kind, milli_tokens, at) \
             VALUES ($1, $2, 9223372036854775807, 0) \
             ON CONFLICT (user_id, kind) DO UPDATE SET user_id = EXCLUDED.user_id \
             RETURNING milli_tokens, at",
        )
        .bind(sql_id(user.get()))
        .bind(kind.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let bucket = Bucket {
            milli_tokens: milli_tokens.max(0) as u64,
            at: Timestamp::from_millis(at),
        };
        let taken = match rate.take(Some(bucket), now) {
            Ok(taken) => taken,
            // Dropping the transaction rolls back the upsert.
            Err(wait) => return Ok(Err(wait)),
        };
        sqlx::query(
            "UPDATE write_buckets SET milli_tokens = $3, at = $4 WHERE user_id = $1 AND kind = $2",
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
