//! [`NodeStore`] for [`SqliteStore`]: node leases in `node_leases`, leased
//! inside a write transaction (the one writer serialises them).

use async_trait::async_trait;
use kith_core::{NodeStore, Result, Timestamp};

use crate::{db, SqliteStore};

#[async_trait]
impl NodeStore for SqliteStore {
    async fn lease_node(
        &self,
        nodes: u16,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<u16>> {
        let mut tx = self.write().await?;
        let taken: Vec<i64> =
            sqlx::query_scalar("SELECT node FROM node_leases WHERE until >= ?1 ORDER BY node")
                .bind(now.as_millis())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let Some(node) = (0..nodes).find(|n| !taken.contains(&i64::from(*n))) else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO node_leases (node, holder, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (node) DO UPDATE SET holder = excluded.holder, until = excluded.until",
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
        let mut tx = self.write().await?;
        let done = sqlx::query("UPDATE node_leases SET until = ?3 WHERE node = ?1 AND holder = ?2")
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
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM node_leases WHERE node = ?1 AND holder = ?2")
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
