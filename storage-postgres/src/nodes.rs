//! [`NodeStore`] for [`PgStore`]: node leases in `node_leases`, leased in a
//! transaction that locks the table first, so that writers starting at once
//! never take the same number.

use async_trait::async_trait;
use kith_core::{NodeStore, Result, Timestamp};

use crate::{db, PgStore};

#[async_trait]
impl NodeStore for PgStore {
    async fn lease_node(
        &self,
        nodes: u16,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<u16>> {
        let mut tx = self.begin().await?;
        sqlx::query("LOCK TABLE node_leases IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let taken: Vec<i64> =
            sqlx::query_scalar("SELECT node FROM node_leases WHERE until >= $1 ORDER BY node")
                .bind(now.as_millis())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let Some(node) = (0..nodes).find(|n| !taken.contains(&i64::from(*n))) else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO node_leases (node, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (node) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until",
        )
        .bind(i64::from(node))
        .bind(holder_sql(holder))
        .bind(until.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(node))
    }

    async fn renew_node(&self, node: u16, holder: u64, until: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE node_leases SET until = $3 WHERE node = $1 AND holder = $2")
            .bind(i64::from(node))
            .bind(holder_sql(holder))
            .bind(until.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_node(&self, node: u16, holder: u64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM node_leases WHERE node = $1 AND holder = $2")
            .bind(i64::from(node))
            .bind(holder_sql(holder))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}

/// A holder as stored: its 64 bits as a signed integer.
fn holder_sql(holder: u64) -> i64 {
    holder as i64
}
