//! What a run costs PostgreSQL, read by the loadgen itself on the run's
//! database: write transactions (transaction ids assigned), the broker's
//! notifications, and (on the local throwaway server of `--postgres`) the
//! CPU time of PostgreSQL's processes.

use std::collections::HashMap;

use futures::StreamExt;
use kith_benches::process_cpu_seconds;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::servers::Server;
use crate::Failure;

/// The PostgreSQL side of a run, from [`Probes::start`] to
/// [`Probes::finish`].
pub struct Probes {
    conn: PgConnection,
    xid_before: i64,
    cpu_before: Option<HashMap<u32, f64>>,
    stop: watch::Sender<bool>,
    listener: JoinHandle<(u64, u64)>,
}

/// The next transaction id PostgreSQL will assign (cluster-wide; reading
/// it assigns none). Read-only transactions get no id, so the difference
/// over a run counts the transactions that wrote: Kith's batches and other
/// writes, and the broker's `pg_notify` statements (a notifying transaction
/// gets an id).
async fn next_xid(conn: &mut PgConnection) -> Result<i64, Failure> {
    let row = sqlx::query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// The CPU seconds so far of every process of the cluster
/// (`pg_stat_activity`: the backends and PostgreSQL's own workers).
async fn cluster_cpu(conn: &mut PgConnection) -> Result<HashMap<u32, f64>, Failure> {
    let rows = sqlx::query("SELECT pid FROM pg_stat_activity")
        .fetch_all(conn)
        .await?;
    let mut cpu = HashMap::new();
    for row in rows {
        let pid: i32 = row.try_get(0)?;
        if let Some(seconds) = u32::try_from(pid).ok().and_then(process_cpu_seconds) {
            cpu.insert(pid as u32, seconds);
        }
    }
    Ok(cpu)
}

impl Probes {
    /// Starts probing the run's database, if `server` has one: listens on
    /// Kith's notification channel and notes the transaction id and the
    /// CPU time of PostgreSQL's processes.
    pub async fn start(server: &Server) -> Result<Option<Self>, Failure> {
        let Some(url) = &server.database_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(kith_postgres::broker::CHANNEL).await?;
        let (stop, mut stopped) = watch::channel(false);
        let listener = tokio::spawn(async move {
            let (mut count, mut bytes) = (0u64, 0u64);
            let mut notifications = listener.into_stream();
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    n = notifications.next() => match n {
                        Some(Ok(n)) => {
                            count += 1;
                            bytes += n.payload().len() as u64;
                        }
                        Some(Err(_)) | None => break,
                    },
                }
            }
            (count, bytes)
        });
        let mut conn = PgConnection::connect(url).await?;
        let cpu_before = if server.local_postgres {
            Some(cluster_cpu(&mut conn).await?)
        } else {
            None
        };
        let xid_before = next_xid(&mut conn).await?;
        Ok(Some(Self {
            conn,
            xid_before,
            cpu_before,
            stop,
            listener,
        }))
    }

    /// The figures since [`Self::start`], rates over `elapsed` seconds.
    pub async fn finish(mut self, elapsed: f64) -> Result<Value, Failure> {
        let xid_after = next_xid(&mut self.conn).await?;
        let cpu = match &self.cpu_before {
            Some(before) => {
                let after = cluster_cpu(&mut self.conn).await?;
                // A process started meanwhile counts from zero; one that
                // ended meanwhile is missed (the pools keep theirs).
                Some(
                    after
                        .iter()
                        .map(|(pid, a)| a - before.get(pid).copied().unwrap_or(0.0))
                        .sum::<f64>(),
                )
            }
            None => None,
        };
        let _ = self.stop.send(true);
        let (notifications, bytes) = self.listener.await?;
        let _ = self.conn.close().await;
        let writes = (xid_after - self.xid_before).max(0);
        let per_s = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
        Ok(json!({
            "pg_write_xacts": writes,
            "pg_write_xacts_per_s": per_s(writes as f64),
            "pg_notifications": notifications,
            "pg_notifications_per_s": per_s(notifications as f64),
            "pg_notification_bytes": bytes,
            "postgres_cpu_s": cpu,
        }))
    }
}
