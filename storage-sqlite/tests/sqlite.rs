//! Behaviour specific to the SQLite backend: files, migrations, connection
//! settings and concurrency. The storage contract itself is checked by
//! `tests/conformance.rs`.

// Test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kith_core::page::{SinceKey, Window};
use kith_core::{
    Account, AccountRecord, AccountStore, Argon2Hasher, Clash, Error, GraphStore, Kith, NewAccount,
    Page, Profile, Storage, Timestamp, UserId,
};
use kith_sqlite::{SqliteConnectOptions, SqliteStore};
use sqlx::ConnectOptions;

/// A [`Kith`] over `store` with cheap password hashing.
fn kith(store: &SqliteStore) -> Kith {
    Kith::builder(Arc::new(store.clone()))
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .build()
}

async fn register(kith: &Kith, username: &str) -> Account {
    kith.accounts()
        .register(NewAccount {
            username: username.into(),
            email: format!("{username}@example.com"),
            password: format!("pw-{username}-secret"),
        })
        .await
        .unwrap_or_else(|e| panic!("registering {username}: {e}"))
}

fn db_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("kith.db").to_str().unwrap().to_owned()
}

/// A plain sqlx connection to the file, bypassing the store.
async fn raw_connection(path: &str) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

fn record(id: u64, username: &str, email: Option<&str>) -> AccountRecord {
    AccountRecord {
        account: Account {
            id: UserId::new(id),
            username: username.into(),
            email: email.map(Into::into),
            has_password: false,
            created_at: Timestamp::from_millis(1_000 + id as i64),
            profile: Profile::default(),
        },
        password_hash: None,
    }
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (alice, bob, token) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let kith = kith(&store);
        let alice = register(&kith, "alice").await;
        let bob = register(&kith, "bob").await;
        kith.graph()
            .send_friend_request(alice.id, bob.id)
            .await
            .unwrap();
        kith.graph()
            .accept_friend_request(bob.id, alice.id)
            .await
            .unwrap();
        kith.graph().follow(bob.id, alice.id).await.unwrap();
        let login = kith
            .accounts()
            .login("alice", "pw-alice-secret")
            .await
            .unwrap();
        store.close().await;
        (alice, bob, login.token)
    };
    assert!(Path::new(&path).exists());

    let store = SqliteStore::open(&path).await.unwrap();
    let kith = kith(&store);
    assert_eq!(kith.accounts().me(alice.id).await.unwrap(), alice);
    let session = kith.accounts().authenticate(&token).await.unwrap();
    assert_eq!(session.user_id, alice.id);
    let friends = kith
        .graph()
        .friends(alice.id, alice.id, None, &Page::first())
        .await
        .unwrap();
    assert_eq!(friends.items.len(), 1);
    assert_eq!(friends.items[0].user, bob.user());
    let counts = kith.graph().counts(None, alice.id).await.unwrap();
    assert_eq!(
        (counts.friends, counts.followers, counts.following),
        (1, 1, 0)
    );
    // The reopened store accepts writes too.
    register(&kith, "carol").await;
    store.close().await;
}

#[tokio::test]
async fn migrations_apply_once_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
    }
    let mut conn = raw_connection(&path).await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(applied, vec![(1, true)]);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "accounts",
            "blocks",
            "follows",
            "friend_requests",
            "friendships",
            "mutes",
            "sessions"
        ]
    );
}

#[tokio::test]
async fn file_databases_run_in_wal_mode_with_foreign_keys_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = SqliteStore::open(&path).await.unwrap();
    let settings = store.connection_settings().await.unwrap();
    assert_eq!(settings.journal_mode, "wal");
    assert!(settings.foreign_keys);
    assert_eq!(settings.synchronous, 2, "synchronous=FULL");
    assert_eq!(settings.busy_timeout_ms, 5_000);
    store.close().await;

    // WAL mode is a property of the file: another connection sees it too.
    let mut conn = raw_connection(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn memory_databases_enforce_foreign_keys() {
    let store = SqliteStore::memory().await.unwrap();
    let settings = store.connection_settings().await.unwrap();
    assert_eq!(settings.journal_mode, "memory");
    assert!(settings.foreign_keys);
    for target in [":memory:", "sqlite::memory:"] {
        let store = SqliteStore::open(target).await.unwrap();
        assert_eq!(
            store.connection_settings().await.unwrap().journal_mode,
            "memory"
        );
    }
}

#[tokio::test]
async fn memory_databases_are_independent_and_outlive_idle_time() {
    let a = SqliteStore::memory().await.unwrap();
    let b = SqliteStore::memory().await.unwrap();
    a.insert_account(&record(1, "alice", None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(a.account(UserId::new(1)).await.unwrap().is_some());
    assert!(b.account(UserId::new(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn opening_fails_with_this_crates_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/kith.db");
    let err = SqliteStore::open(missing.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, kith_sqlite::Error::Open(_)), "{err:?}");
    let err = SqliteStore::open("sqlite://kith.db?mode=sideways")
        .await
        .unwrap_err();
    assert!(matches!(err, kith_sqlite::Error::InvalidUrl(_)), "{err:?}");
    // It converts into Kith's error for callers with one error type.
    assert!(matches!(Error::from(err), Error::Storage(_)));
}

#[tokio::test]
async fn sqlite_urls_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db_path(&dir));
    let store = SqliteStore::open(&url).await.unwrap();
    store
        .insert_account(&record(7, "alice", None))
        .await
        .unwrap();
    store.close().await;
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    assert!(store.account(UserId::new(7)).await.unwrap().is_some());
}

#[tokio::test]
async fn unique_violations_become_conflicts() {
    let store = SqliteStore::memory().await.unwrap();
    store
        .insert_account(&record(1, "Alice", Some("Alice@Example.com")))
        .await
        .unwrap();
    let taken = store
        .insert_account(&record(2, "aLICE", Some("other@example.com")))
        .await;
    assert!(
        matches!(taken, Err(Error::Conflict(Clash::UsernameTaken))),
        "{taken:?}"
    );
    let taken = store
        .insert_account(&record(3, "bob", Some("alice@example.COM")))
        .await;
    assert!(
        matches!(taken, Err(Error::Conflict(Clash::EmailTaken))),
        "{taken:?}"
    );
    // Accounts without email do not collide with each other.
    store
        .insert_account(&record(4, "carol", None))
        .await
        .unwrap();
    store
        .insert_account(&record(5, "dave", None))
        .await
        .unwrap();
    // Any other constraint is a storage error, and sqlx's error stays inside it.
    let reused_id = store.insert_account(&record(1, "erin", None)).await;
    assert!(matches!(reused_id, Err(Error::Storage(_))), "{reused_id:?}");
    assert!(store.account(UserId::new(2)).await.unwrap().is_none());
    assert!(store.account(UserId::new(3)).await.unwrap().is_none());
}

#[tokio::test]
async fn deleted_accounts_are_tombstones_without_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = SqliteStore::open(&path).await.unwrap();
    let kith = kith(&store);
    let alice = register(&kith, "alice").await;
    let bob = register(&kith, "bob").await;
    kith.graph().follow(alice.id, bob.id).await.unwrap();
    kith.accounts()
        .delete_account(alice.id, Some("pw-alice-secret"))
        .await
        .unwrap();
    // Links to a tombstone cannot be created, even by a caller who skipped
    // the liveness check.
    let late = store
        .insert_follow(bob.id, alice.id, Timestamp::from_millis(5))
        .await;
    assert!(matches!(late, Err(Error::NotFound(_))), "{late:?}");
    let window = Window::<SinceKey> {
        after: None,
        limit: 10,
    };
    assert!(store.followers(bob.id, window).await.unwrap().is_empty());
    store.close().await;

    let mut conn = raw_connection(&path).await;
    let row: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        String,
    ) = sqlx::query_as(
        "SELECT username, email, password_hash, deleted_at, interests FROM accounts WHERE id = ?1",
    )
    .bind(alice.id.get() as i64)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.0, None);
    assert_eq!(row.1, None);
    assert_eq!(row.2, None);
    assert!(row.3.is_some());
    assert_eq!(row.4, "[]");
    let follows: i64 = sqlx::query_scalar("SELECT count(*) FROM follows")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(follows, 0);
}

/// Many tasks writing at once through one store never see "database is
/// locked": the single writer connection queues them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_a_locked_database() {
    const TASKS: usize = 8;
    const USERS_PER_TASK: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    let kith = kith(&store);
    let hub = register(&kith, "hub").await;

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let kith = kith.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for u in 0..USERS_PER_TASK {
                let user = register(&kith, &format!("user_{t}_{u}")).await;
                kith.graph().follow(user.id, hub.id).await.unwrap();
                kith.graph().follow(hub.id, user.id).await.unwrap();
                kith.accounts()
                    .login(&user.username, &format!("pw-{}-secret", user.username))
                    .await
                    .unwrap();
                mine.push(user);
            }
            // Friend requests between this task's users, accepted at once.
            for pair in mine.windows(2) {
                kith.graph()
                    .send_friend_request(pair[0].id, pair[1].id)
                    .await
                    .unwrap();
                kith.graph()
                    .accept_friend_request(pair[1].id, pair[0].id)
                    .await
                    .unwrap();
            }
            mine
        }));
    }
    let mut users = Vec::new();
    for task in tasks {
        users.extend(task.await.unwrap());
    }
    assert_eq!(users.len(), TASKS * USERS_PER_TASK);
    let counts = kith.graph().counts(None, hub.id).await.unwrap();
    let n = (TASKS * USERS_PER_TASK) as u64;
    assert_eq!((counts.followers, counts.following), (n, n));
    let friends = store.counts(users[1].id).await.unwrap().friends;
    assert!(friends >= 1);
    store.close().await;
}

/// Two stores on one file (as two processes would be) contend for SQLite's
/// write lock; the busy timeout makes them wait for each other instead of
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let mut tasks = Vec::new();
    for (i, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..25u64 {
                let id = 1 + i as u64 * 1_000 + n;
                store
                    .insert_account(&record(id, &format!("user_{i}_{n}"), None))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for (i, store) in [&first, &second].into_iter().enumerate() {
        let other = 1 + (1 - i as u64) * 1_000 + 24;
        assert!(store.account(UserId::new(other)).await.unwrap().is_some());
    }
    first.close().await;
    second.close().await;
}

/// A write cancelled at any point leaves the database as if it ran entirely
/// or not at all, and the writer connection usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_writes_roll_back_and_release_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    let kith = kith(&store);
    let hub = register(&kith, "hub").await;
    let mut deleted = Vec::new();
    for n in 0..30u64 {
        let user = register(&kith, &format!("user_{n}")).await;
        kith.graph()
            .send_friend_request(user.id, hub.id)
            .await
            .unwrap();
        kith.graph()
            .accept_friend_request(hub.id, user.id)
            .await
            .unwrap();
        kith.graph().follow(user.id, hub.id).await.unwrap();
        // Give the deletion a little time, growing with n, then cancel it.
        let delete = store.delete_account(user.id, Timestamp::from_millis(1));
        let outcome = tokio::time::timeout(Duration::from_micros(20 * n), delete).await;
        deleted.push((user.id, outcome.is_ok()));
    }
    // The writer is free: a new write goes through at once.
    tokio::time::timeout(Duration::from_secs(10), register(&kith, "after"))
        .await
        .expect("the writer connection was left busy");
    // Each deletion happened entirely or not at all.
    let counts = store.counts(hub.id).await.unwrap();
    let mut live = 0;
    for (user, _) in &deleted {
        let account = store.account(*user).await.unwrap();
        let links = store.links(hub.id, *user).await.unwrap();
        if account.is_some() {
            live += 1;
            assert!(
                links.visible.friends && links.visible.followed_by,
                "{user:?}"
            );
        } else {
            assert!(
                !links.visible.friends && !links.visible.followed_by,
                "{user:?}"
            );
        }
    }
    assert_eq!(counts.friends, live);
    assert_eq!(counts.followers, live);
    // Every deletion that reported completion did delete.
    for (user, completed) in deleted {
        if completed {
            assert!(store.account(user).await.unwrap().is_none());
        }
    }
    store.close().await;
}

#[tokio::test]
async fn ping_reports_a_closed_store() {
    let store = SqliteStore::memory().await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(Error::Storage(_))));
    let write = store.insert_account(&record(1, "alice", None)).await;
    assert!(matches!(write, Err(Error::Storage(_))));
}
