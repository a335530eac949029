//! [`PgBroker`]: Kith's [`Broker`] over PostgreSQL's `LISTEN/NOTIFY`, for
//! several server processes sharing one database.
//!
//! - **Notify after commit, from one connection.** `NOTIFY` inside a
//!   writing transaction takes a database-wide lock through the commit's
//!   WAL flush, so Kith never notifies in its transactions: a node hands
//!   its notices to [`Broker::publish`] after the commit, and one task
//!   sends whatever is waiting, coalesced (each conversation's highest
//!   version), as `pg_notify` calls in one statement on a connection of
//!   its own with `synchronous_commit = off` (nothing is lost if a
//!   notification is: the nodes' polls catch up).
//! - **Small payloads.** Conversation notices carry ids and versions only;
//!   events are split (by recipients) into payloads below PostgreSQL's
//!   8,000-byte limit.
//! - **A dedicated listener.** One connection, not from the store's pool,
//!   `LISTEN`s on the channel; its task hands every payload to the
//!   subscribers. When the connection drops, sqlx's listener connects and
//!   listens again, and the subscribers are told
//!   ([`Subscriber::lost`]) so that they catch up from storage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kith_core::broker::{Broker, Notice, NoticeBatch, Subscriber, Subscribers};
use kith_core::Delivery;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, PgStore};

/// The channel every node listens on (per database).
pub const CHANNEL: &str = "kith";

/// The largest payload sent: PostgreSQL refuses 8,000 bytes and more.
const MAX_PAYLOAD: usize = 7_900;

/// Kith's broker over `LISTEN/NOTIFY` on the store's database (see the
/// [module docs](self)). Dropping it stops its tasks.
pub struct PgBroker {
    queue: mpsc::UnboundedSender<NoticeBatch>,
    subscribers: Subscribers,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PgBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBroker").finish_non_exhaustive()
    }
}

impl Drop for PgBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PgBroker {
    /// Opens the broker's two connections to the store's database (with the
    /// store's connect options) and starts listening: once it returns,
    /// every notification published by any node reaches the subscribers.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Connect`] if the server cannot be reached.
    pub async fn start(store: &PgStore) -> Result<Arc<Self>, Error> {
        let options = store
            .pool()
            .connect_options()
            .as_ref()
            .clone()
            .options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        let subscribers = Subscribers::default();
        let (queue, waiting) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(listen(listener, subscribers.clone())),
            tokio::spawn(notify(pool, waiting)),
        ];
        Ok(Arc::new(Self {
            queue,
            subscribers,
            tasks,
        }))
    }
}

impl Broker for PgBroker {
    fn publish(&self, batch: NoticeBatch) {
        // Fails only once the notifying task is gone (the runtime is
        // shutting down): then the notices are lost, which the other nodes'
        // polls make up for.
        let _ = self.queue.send(batch);
    }

    fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.subscribers.add(subscriber);
    }
}

/// The listening task: hands every notification to the subscribers; tells
/// them when the connection dropped.
async fn listen(mut listener: PgListener, subscribers: Subscribers) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<NoticeBatch>(notification.payload()) {
                    Ok(batch) => subscribers.receive(&batch),
                    Err(e) => tracing::warn!(error = %e, "ignored a notification Kith cannot read"),
                }
            }
            // The connection dropped: the next call connects and listens
            // again. What was sent meanwhile is lost.
            Ok(None) => {
                tracing::warn!("the broker's listening connection dropped; catching up");
                subscribers.lost();
            }
            Err(e) => {
                tracing::warn!(error = %e, "the broker cannot listen; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The notifying task: sends what is waiting, coalesced, in one statement.
async fn notify(pool: PgPool, mut waiting: mpsc::UnboundedReceiver<NoticeBatch>) {
    while let Some(first) = waiting.recv().await {
        let mut batches = vec![first];
        while let Ok(next) = waiting.try_recv() {
            batches.push(next);
        }
        let payloads = payloads(coalesce(batches));
        if payloads.is_empty() {
            continue;
        }
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(payloads)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            // Lost notices cost latency: the nodes' polls catch up.
            tracing::warn!(error = %e, "notices not sent");
        }
    }
}

/// Merges the batches of each origin, in order: one conversation notice
/// per conversation, at its highest version, after the other notices.
fn coalesce(batches: Vec<NoticeBatch>) -> Vec<NoticeBatch> {
    let mut merged: Vec<(NoticeBatch, HashMap<kith_core::ConversationId, u64>)> = Vec::new();
    for batch in batches {
        let index = match merged.iter().position(|(m, _)| m.origin == batch.origin) {
            Some(index) => index,
            None => {
                merged.push((
                    NoticeBatch {
                        origin: batch.origin,
                        notices: Vec::new(),
                    },
                    HashMap::new(),
                ));
                merged.len() - 1
            }
        };
        let (into, versions) = &mut merged[index];
        for notice in batch.notices {
            match notice {
                Notice::Conversation { id, version } => {
                    let highest = versions.entry(id).or_insert(version);
                    *highest = (*highest).max(version);
                }
                other => into.notices.push(other),
            }
        }
    }
    merged
        .into_iter()
        .map(|(mut batch, versions)| {
            let mut versions: Vec<_> = versions.into_iter().collect();
            versions.sort_unstable();
            batch.notices.extend(
                versions
                    .into_iter()
                    .map(|(id, version)| Notice::Conversation { id, version }),
            );
            batch
        })
        .collect()
}

/// The JSON payloads of `batches`, each below [`MAX_PAYLOAD`]: notices are
/// packed in order, and an event too large alone is split by recipients.
/// An event that does not fit even with one recipient is dropped (logged):
/// Kith's unversioned events are far smaller.
fn payloads(batches: Vec<NoticeBatch>) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let mut current = NoticeBatch {
            origin: batch.origin,
            notices: Vec::new(),
        };
        for notice in batch.notices.into_iter().flat_map(split) {
            current.notices.push(notice);
            if encoded_len(&current) <= MAX_PAYLOAD {
                continue;
            }
            let Some(notice) = current.notices.pop() else {
                continue;
            };
            if let Some(full) = encode(&current) {
                out.push(full);
            }
            current.notices = vec![notice];
            if encoded_len(&current) > MAX_PAYLOAD {
                tracing::warn!("dropped a notice larger than a notification can carry");
                current.notices.clear();
            }
        }
        if let Some(last) = encode(&current) {
            out.push(last);
        }
    }
    out
}

/// An event notice split into notices of at most 200 recipients each (a
/// user id is at most 22 bytes in JSON, so 200 take under 4,500); other
/// notices as they are.
fn split(notice: Notice) -> Vec<Notice> {
    const RECIPIENTS: usize = 200;
    match notice {
        Notice::Event(delivery) if delivery.recipients.len() > RECIPIENTS => delivery
            .recipients
            .chunks(RECIPIENTS)
            .map(|chunk| {
                Notice::Event(Delivery {
                    recipients: chunk.to_vec(),
                    event: delivery.event.clone(),
                })
            })
            .collect(),
        other => vec![other],
    }
}

fn encode(batch: &NoticeBatch) -> Option<String> {
    if batch.notices.is_empty() {
        return None;
    }
    serde_json::to_string(batch).ok()
}

fn encoded_len(batch: &NoticeBatch) -> usize {
    serde_json::to_string(batch).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    // Test code: a failed expectation panics with its message.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kith_core::{ConversationId, Event, UserId};

    #[test]
    fn batches_are_coalesced_per_origin_and_conversation() {
        let c = ConversationId::new;
        let typing = Notice::Event(Delivery::new(
            Event::Typing {
                conversation_id: c(1),
                user_id: UserId::new(3),
                expires_in_ms: 5_000,
            },
            [UserId::new(4)],
        ));
        let batches = vec![
            NoticeBatch {
                origin: 1,
                notices: vec![Notice::Conversation {
                    id: c(1),
                    version: 4,
                }],
            },
            NoticeBatch {
                origin: 1,
                notices: vec![
                    typing.clone(),
                    Notice::Conversation {
                        id: c(1),
                        version: 6,
                    },
                    Notice::Conversation {
                        id: c(2),
                        version: 1,
                    },
                ],
            },
        ];
        let merged = coalesce(batches);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged[0].notices,
            vec![
                typing,
                Notice::Conversation {
                    id: c(1),
                    version: 6
                },
                Notice::Conversation {
                    id: c(2),
                    version: 1
                },
            ]
        );
    }

    #[test]
    fn payloads_stay_below_the_limit_and_keep_every_recipient() {
        let recipients: Vec<UserId> = (0..5_000).map(|i| UserId::new(u64::MAX - i)).collect();
        let event = Event::Typing {
            conversation_id: ConversationId::new(u64::MAX),
            user_id: UserId::new(u64::MAX),
            expires_in_ms: 5_000,
        };
        let mut notices = vec![Notice::Event(Delivery::new(
            event.clone(),
            recipients.clone(),
        ))];
        notices.extend((0..1_000).map(|i| Notice::Conversation {
            id: ConversationId::new(u64::MAX - i),
            version: u64::MAX,
        }));
        let sent = payloads(vec![NoticeBatch {
            origin: u64::MAX,
            notices,
        }]);
        assert!(sent.len() > 1);
        let mut got_recipients = Vec::new();
        let mut conversations = 0;
        for payload in &sent {
            assert!(payload.len() <= MAX_PAYLOAD, "{} bytes", payload.len());
            let batch: NoticeBatch = serde_json::from_str(payload).unwrap();
            for notice in batch.notices {
                match notice {
                    Notice::Event(d) => {
                        assert_eq!(d.event, event);
                        got_recipients.extend(d.recipients);
                    }
                    Notice::Conversation { .. } => conversations += 1,
                    Notice::Created { .. } => panic!("none sent"),
                }
            }
        }
        assert_eq!(got_recipients, recipients);
        assert_eq!(conversations, 1_000);
    }
}
