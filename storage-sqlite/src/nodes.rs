//! [`NodeStore`] for [`SqliteStore`]: node leases in `node_leases`, leased
//! inside a write transaction (the one writer serialises them); presence in
//! `presence` (connections per user and node) under the nodes' presence
//! leases in `presence_nodes`.

use async_trait::async_trait;
use kith_core::{NodeStore, Result, Timestamp, UserId};

use crate::rows::{raw_id, sql_id};
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
    async fn presence_up(
        &self,
        user: UserId,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let user = sql_id(user.get());
        let mut tx = self.write().await?;
        renew(&mut tx, holder, until).await?;
        let before: i64 = sqlx::query_scalar(LIVE_CONNECTIONS)
            .bind(user)
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO presence (user_id, holder, connections) VALUES (?1, ?2, 1) \
             ON CONFLICT (user_id, holder) DO UPDATE SET connections = presence.connections + 1",
        )
        .bind(user)
        .bind(holder_sql(holder))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(before == 0)
    }

    async fn presence_down(&self, user: UserId, holder: u64, now: Timestamp) -> Result<bool> {
        let user = sql_id(user.get());
        let mut tx = self.write().await?;
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE presence SET connections = connections - 1 \
             WHERE user_id = ?1 AND holder = ?2 AND connections > 1 RETURNING connections",
        )
        .bind(user)
        .bind(holder_sql(holder))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if left.is_none() {
            let gone = sqlx::query("DELETE FROM presence WHERE user_id = ?1 AND holder = ?2")
                .bind(user)
                .bind(holder_sql(holder))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if gone.rows_affected() == 0 {
                return Ok(false);
            }
        }
        let after: i64 = sqlx::query_scalar(LIVE_CONNECTIONS)
            .bind(user)
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(after == 0)
    }

    async fn renew_presence(&self, holder: u64, until: Timestamp) -> Result<()> {
        let mut tx = self.write().await?;
        renew(&mut tx, holder, until).await?;
        tx.commit().await.map_err(db)
    }

    async fn expire_presence(&self, now: Timestamp) -> Result<Vec<UserId>> {
        let mut tx = self.write().await?;
        let mut users: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM presence WHERE holder IN \
                (SELECT holder FROM presence_nodes WHERE until < ?1) \
             RETURNING user_id",
        )
        .bind(now.as_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM presence_nodes WHERE until < ?1")
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        users.sort_unstable();
        users.dedup();
        let offline: Vec<i64> = sqlx::query_scalar(
            "SELECT u.value FROM json_each(?1) AS u WHERE NOT EXISTS \
                (SELECT 1 FROM presence p JOIN presence_nodes n ON n.holder = p.holder \
                 WHERE p.user_id = u.value AND n.until >= ?2) ORDER BY u.value",
        )
        .bind(serde_json::json!(users).to_string())
        .bind(now.as_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(offline
            .into_iter()
            .map(|u| UserId::new(raw_id(u)))
            .collect())
    }
}

/// Extends the presence lease of `holder` to `until` (never shortens it).
async fn renew(conn: &mut sqlx::SqliteConnection, holder: u64, until: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO presence_nodes (holder, until) VALUES (?1, ?2) \
         ON CONFLICT (holder) DO UPDATE \
         SET until = max(presence_nodes.until, excluded.until)",
    )
    .bind(holder_sql(holder))
    .bind(until.as_millis())
    .execute(conn)
    .await
    .map(drop)
    .map_err(db)
}

/// A user's connections on nodes whose presence lease is live at `?2`.
const LIVE_CONNECTIONS: &str = "SELECT count(*) FROM presence p \
    JOIN presence_nodes n ON n.holder = p.holder \
    WHERE p.user_id = ?1 AND n.until >= ?2";

/// A holder as stored: its 64 bits as a signed integer.
fn holder_sql(holder: u64) -> i64 {
    holder as i64
}
