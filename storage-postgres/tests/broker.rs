//! `PgBroker` over a real PostgreSQL server: two `Kith` handles on one
//! database, each with its own store and broker (as two server processes
//! would be), see each other's changes; a listener whose connection is
//! killed listens again and tells its node to catch up.

// Test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_core::{
    Argon2Hasher, Change, Delivery, Event, EventSink, Kith, NewAccount, NewGroup, NewMessage,
};
use kith_postgres::testing as support;
use kith_postgres::{PgBroker, PgPoolOptions, PgStore};

/// A sink that records deliveries and counts `missed` calls.
#[derive(Default)]
struct Sink {
    deliveries: Mutex<Vec<Delivery>>,
    missed: AtomicUsize,
}

impl Sink {
    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock().unwrap())
    }
}

impl EventSink for Sink {
    fn publish(&self, delivery: Delivery) {
        self.deliveries.lock().unwrap().push(delivery);
    }

    fn missed(&self) {
        self.missed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A node: a store of its own over `database`, its broker, a handle.
async fn node(database: &str) -> (Kith, Arc<Sink>) {
    let store = PgStore::connect_with(
        support::server().options(database),
        PgPoolOptions::new().max_connections(4),
    )
    .await
    .unwrap();
    let broker = PgBroker::start(&store).await.unwrap();
    let sink = Arc::new(Sink::default());
    let kith = Kith::builder(Arc::new(store))
        .sink(sink.clone())
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .broker(broker)
        .spawner(Arc::new(|task| {
            tokio::spawn(task);
        }))
        .build();
    (kith, sink)
}

/// Waits until `sink` holds a delivery that `done` accepts; returns
/// everything it delivered.
async fn until(sink: &Sink, done: impl Fn(&Delivery) -> bool) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        seen.extend(sink.take());
        if seen.iter().any(&done) {
            return seen;
        }
        assert!(Instant::now() < deadline, "never delivered; got {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn database() -> String {
    let store = support::fresh_store().await;
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_others_changes_and_a_dropped_listener_catches_up() {
    let database = database().await;
    let (a, a_sink) = node(&database).await;
    // Kept alive to the end: the broker holds its node weakly.
    let (_b, b_sink) = node(&database).await;
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        users.push(
            a.accounts()
                .register(NewAccount {
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    password: format!("pw-{name}-secret"),
                })
                .await
                .unwrap()
                .id,
        );
    }
    let (alice, bob) = (users[0], users[1]);
    let team = a
        .chat()
        .create_group(
            alice,
            NewGroup {
                title: "Team".into(),
                members: vec![bob],
            },
        )
        .await
        .unwrap();
    // b announces the group a created (read from the database).
    until(&b_sink, |d| {
        matches!(&d.event, Event::ConversationCreated { conversation, .. } if conversation.id == team.id)
    })
    .await;
    let sent = a
        .chat()
        .send(
            alice,
            team.id,
            NewMessage {
                client_id: "m1".into(),
                body: "hello".into(),
                reply_to: None,
            },
        )
        .await
        .unwrap();
    let on_b = until(&b_sink, |d| {
        d.event.conversation_version() == Some((team.id, 1))
    })
    .await;
    assert_eq!(
        on_b.last().map(|d| &d.event),
        Some(&Event::Change {
            conversation_id: team.id,
            change: Change::Message {
                message: sent.clone()
            },
        })
    );
    // a got its own change once, as its event.
    let on_a = a_sink.take();
    let own: Vec<_> = on_a
        .iter()
        .filter(|d| d.event.conversation_version().is_some())
        .collect();
    assert_eq!(own.len(), 1, "{on_a:?}");

    // Kill b's listening connection: b is told, listens again, and hears
    // the next change.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&database)
    .fetch_all(&mut admin(&database).await)
    .await
    .unwrap();
    assert_eq!(killed.len(), 2, "one listener per node");
    let deadline = Instant::now() + Duration::from_secs(20);
    while b_sink.missed.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "b was never told");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Until b listens again, what a sends is heard by nobody (b's poll
    // would catch up; this test does not poll): send until b hears.
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        let next = a
            .chat()
            .send(
                bob,
                team.id,
                NewMessage {
                    client_id: format!("again-{i}"),
                    body: "again".into(),
                    reply_to: None,
                },
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let heard = b_sink.take();
        if heard
            .iter()
            .any(|d| d.event.conversation_version() == Some((team.id, next.version)))
        {
            break;
        }
        assert!(Instant::now() < deadline, "b never listened again");
    }
}

/// A plain connection to `database`.
async fn admin(database: &str) -> sqlx::PgConnection {
    use sqlx::ConnectOptions;
    support::server().options(database).connect().await.unwrap()
}
