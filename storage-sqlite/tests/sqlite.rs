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
    Account, AccountRecord, AccountStore, Argon2Hasher, ChatStore, Clash, Config, Conversation,
    ConversationId, ConversationKind, Error, Event, GraphStore, History, Kith, Member, MemberRole,
    Message, NewAccount, NewGroup, NewMessage, Page, Profile, ReactionKind, RecordingSink, Storage,
    Timestamp, UserId,
};
use kith_sqlite::{SqliteConnectOptions, SqliteStore};
use sqlx::ConnectOptions;

/// A [`Kith`] over `store` with cheap password hashing.
fn kith(store: &SqliteStore) -> Kith {
    Kith::builder(Arc::new(store.clone()))
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .build()
}

/// A [`Kith`] over `store` without the send rate limit, publishing to `sink`.
fn chat_kith(store: &SqliteStore, sink: Arc<RecordingSink>) -> Kith {
    let mut config = Config::default();
    config.send_rate = None;
    Kith::builder(Arc::new(store.clone()))
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .sink(sink)
        .config(config)
        .build()
}

fn text(client_id: &str, body: &str) -> NewMessage {
    NewMessage {
        client_id: client_id.into(),
        body: body.into(),
        reply_to: None,
    }
}

/// The whole history of a conversation, read 100 messages at a time.
async fn full_history(kith: &Kith, reader: UserId, id: ConversationId) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
    loop {
        let after = messages.last().map_or(0, |m| m.seq);
        let page = kith
            .chat()
            .history(reader, id, History::After(after), Some(100))
            .await
            .unwrap();
        messages.extend(page.messages);
        if !page.more {
            return messages;
        }
    }
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
    assert_eq!(
        applied,
        vec![
            (1, true),
            (2, true),
            (3, true),
            (4, true),
            (5, true),
            (6, true),
            (8, true)
        ]
    );
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
            "conversation_changes",
            "conversation_members",
            "conversations",
            "follows",
            "friend_requests",
            "friendships",
            "media",
            "message_reactions",
            "messages",
            "mutes",
            "node_leases",
            "presence",
            "presence_nodes",
            "send_buckets",
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

/// Many tasks sending into one conversation at once (on several threads)
/// get the seqs 1..=N without a gap or a duplicate, each task's messages in
/// the order it sent them, and never see "database is locked"; the events
/// reach the sink in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_take_gap_free_seqs() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    let sink = Arc::new(RecordingSink::new());
    let kith = chat_kith(&store, sink.clone());
    let mut users = Vec::new();
    for t in 0..TASKS {
        users.push(register(&kith, &format!("user_{t}")).await.id);
    }
    let group = kith
        .chat()
        .create_group(
            users[0],
            NewGroup {
                title: "everyone".into(),
                members: users.clone(),
            },
        )
        .await
        .unwrap();
    sink.take();

    let mut tasks = Vec::new();
    for (t, &user) in users.iter().enumerate() {
        let kith = kith.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..PER_TASK {
                let message = kith
                    .chat()
                    .send(
                        user,
                        group.id,
                        text(&format!("t{t}-{n}"), &format!("{n} from {t}")),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("task {t}, message {n}: {e}"));
                seqs.push(message.seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        seqs.extend(mine);
    }
    let n = (TASKS * PER_TASK) as u64;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());

    let conversation = kith.chat().conversation(users[0], group.id).await.unwrap();
    assert_eq!((conversation.last_seq, conversation.version), (n, n));
    let history = full_history(&kith, users[0], group.id).await;
    let stored: Vec<(u64, u64)> = history.iter().map(|m| (m.seq, m.version)).collect();
    assert_eq!(stored, (1..=n).map(|s| (s, s)).collect::<Vec<_>>());
    let published: Vec<u64> = sink
        .take()
        .into_iter()
        .map(|delivery| match delivery.event {
            Event::MessageCreated { message } => message.seq,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(published, (1..=n).collect::<Vec<_>>());
    // Each sender has read up to their own last message.
    for &user in &users {
        let last_own = history.iter().rev().find(|m| m.sender == user).unwrap().seq;
        let unread = kith.chat().unread(user).await.unwrap();
        assert_eq!(unread.total, n - last_own);
    }
    store.close().await;
}

/// Sends cancelled at any point either happen entirely or not at all: the
/// seqs stay gap-free and the writer connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sends_leave_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    let kith = chat_kith(&store, Arc::new(RecordingSink::new()));
    let alice = register(&kith, "alice").await;
    let group = kith
        .chat()
        .create_group(
            alice.id,
            NewGroup {
                title: "notes".into(),
                members: Vec::new(),
            },
        )
        .await
        .unwrap();
    let chat = kith.chat();
    for n in 0..40u64 {
        let message = text(&format!("m{n}"), "hello");
        let send = chat.send(alice.id, group.id, message);
        let _ = tokio::time::timeout(Duration::from_micros(25 * n), send).await;
    }
    let last = tokio::time::timeout(
        Duration::from_secs(10),
        kith.chat()
            .send(alice.id, group.id, text("after", "still here")),
    )
    .await
    .expect("the writer connection was left busy")
    .unwrap();
    let history = full_history(&kith, alice.id, group.id).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=last.seq).collect::<Vec<_>>());
    let conversation = kith.chat().conversation(alice.id, group.id).await.unwrap();
    assert_eq!(conversation.last_seq, last.seq);
    assert_eq!(conversation.version, last.seq);
    // Retrying every send is safe: the stored ones come back unchanged, the
    // lost ones are stored now, still without a gap.
    for n in 0..40u64 {
        let id = format!("m{n}");
        let stored = history.iter().find(|m| m.client_id == id);
        let sent = kith
            .chat()
            .send(alice.id, group.id, text(&id, "hello"))
            .await
            .unwrap();
        if let Some(stored) = stored {
            assert_eq!(&sent, stored);
        }
    }
    let history = full_history(&kith, alice.id, group.id).await;
    assert_eq!(history.len(), 41);
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=41).collect::<Vec<_>>());
    store.close().await;
}

#[tokio::test]
async fn chat_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (alice, bob, group, direct, before) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let kith = chat_kith(&store, Arc::new(RecordingSink::new()));
        let chat = kith.chat();
        let alice = register(&kith, "alice").await.id;
        let bob = register(&kith, "bob").await.id;
        let direct = chat.open_direct(alice, bob).await.unwrap();
        chat.send(bob, direct.id, text("d1", "hi alice"))
            .await
            .unwrap();
        let group = chat
            .create_group(
                alice,
                NewGroup {
                    title: "Team".into(),
                    members: vec![bob],
                },
            )
            .await
            .unwrap();
        let first = chat
            .send(alice, group.id, text("g1", "first"))
            .await
            .unwrap();
        let mut reply = text("g2", "a reply");
        reply.reply_to = Some(first.id);
        let second = chat.send(bob, group.id, reply).await.unwrap();
        chat.send(alice, group.id, text("g3", "third"))
            .await
            .unwrap();
        chat.edit(alice, group.id, first.id, "first, edited")
            .await
            .unwrap();
        chat.react(bob, group.id, first.id, Some(ReactionKind::Love))
            .await
            .unwrap();
        chat.react(alice, group.id, first.id, Some(ReactionKind::Like))
            .await
            .unwrap();
        chat.delete(bob, group.id, second.id).await.unwrap();
        chat.rename(alice, group.id, "Team B").await.unwrap();
        chat.mark_read(bob, group.id, 1).await.unwrap();
        let before = snapshot(&kith, bob, group.id).await;
        store.close().await;
        (alice, bob, group, direct, before)
    };

    let store = SqliteStore::open(&path).await.unwrap();
    let kith = chat_kith(&store, Arc::new(RecordingSink::new()));
    assert_eq!(snapshot(&kith, bob, group.id).await, before);
    let (history, ..) = &before;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].body.as_deref(), Some("first, edited"));
    let reactions: Vec<(UserId, ReactionKind)> = history[0]
        .reactions
        .iter()
        .map(|r| (r.user_id, r.kind))
        .collect();
    let mut expected = vec![(alice, ReactionKind::Like), (bob, ReactionKind::Love)];
    expected.sort();
    assert_eq!(reactions, expected);
    assert_eq!(history[1].body, None);
    assert!(history[1].deleted_at.is_some());
    // The direct conversation is still the pair's one.
    assert_eq!(
        kith.chat().open_direct(bob, alice).await.unwrap().id,
        direct.id
    );
    // Sending resumes at the next seq; a retried send finds its message.
    let next = kith
        .chat()
        .send(bob, group.id, text("g4", "back again"))
        .await
        .unwrap();
    assert_eq!(next.seq, 4);
    let retried = kith
        .chat()
        .send(alice, group.id, text("g3", "third"))
        .await
        .unwrap();
    assert_eq!(retried, history[2]);
    store.close().await;
}

/// What a member sees of a conversation: history, changes since 0,
/// conversation list and unread counts.
async fn snapshot(
    kith: &Kith,
    reader: UserId,
    id: ConversationId,
) -> (
    Vec<Message>,
    kith_core::ChangeSet,
    Vec<kith_core::ConversationSummary>,
    kith_core::UnreadCounts,
) {
    let chat = kith.chat();
    (
        full_history(kith, reader, id).await,
        chat.changes_since(reader, id, 0, None).await.unwrap(),
        chat.conversations(reader, &Page::first())
            .await
            .unwrap()
            .items,
        chat.unread(reader).await.unwrap(),
    )
}

fn direct(id: u64, a: u64, b: u64) -> (Conversation, Vec<Member>) {
    let at = Timestamp::from_millis(10);
    let conversation = Conversation {
        id: ConversationId::new(id),
        kind: ConversationKind::Direct,
        title: None,
        created_by: UserId::new(a),
        created_at: at,
        last_seq: 0,
        version: 0,
        last_activity: at,
    };
    let members = [a, b]
        .into_iter()
        .map(|user| Member {
            user_id: UserId::new(user),
            role: MemberRole::Member,
            joined_at: at,
            last_read_seq: 0,
        })
        .collect();
    (conversation, members)
}

/// The unique pair index makes a second direct conversation between the same
/// two users, in either order, a conflict that stores nothing.
#[tokio::test]
async fn direct_conversations_are_unique_per_pair() {
    let store = SqliteStore::memory().await.unwrap();
    for (id, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        store.insert_account(&record(id, name, None)).await.unwrap();
    }
    let (first, members) = direct(100, 2, 1);
    store.create_conversation(&first, &members).await.unwrap();
    let (again, members) = direct(101, 1, 2);
    let clash = store.create_conversation(&again, &members).await;
    assert!(
        matches!(clash, Err(Error::Conflict(Clash::DirectExists))),
        "{clash:?}"
    );
    assert_eq!(store.conversation(again.id).await.unwrap(), None);
    for (a, b) in [(1, 2), (2, 1)] {
        let found = store
            .direct_conversation(UserId::new(a), UserId::new(b))
            .await
            .unwrap();
        assert_eq!(found, Some(first.clone()));
    }
    let (other, members) = direct(102, 1, 3);
    store.create_conversation(&other, &members).await.unwrap();
    assert_eq!(
        store
            .members(other.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.user_id.get())
            .collect::<Vec<_>>(),
        [1, 3]
    );
}

/// A group conversation `id` of `members`, created by the first.
fn group_of(id: u64, members: &[u64]) -> (Conversation, Vec<Member>) {
    let at = Timestamp::from_millis(10);
    let conversation = Conversation {
        id: ConversationId::new(id),
        kind: ConversationKind::Group,
        title: Some(format!("group {id}")),
        created_by: UserId::new(members[0]),
        created_at: at,
        last_seq: 0,
        version: 0,
        last_activity: at,
    };
    let members = members
        .iter()
        .map(|&user| Member {
            user_id: UserId::new(user),
            role: MemberRole::Member,
            joined_at: at,
            last_read_seq: 0,
        })
        .collect();
    (conversation, members)
}

fn new_message(
    id: u64,
    conversation: u64,
    sender: u64,
    client_id: &str,
    reply_to: Option<u64>,
) -> kith_core::NewMessageRecord {
    kith_core::NewMessageRecord {
        id: kith_core::MessageId::new(id),
        conversation_id: ConversationId::new(conversation),
        sender: UserId::new(sender),
        client_id: client_id.into(),
        body: format!("message {id}"),
        reply_to: reply_to.map(kith_core::MessageId::new),
        created_at: Timestamp::from_millis(1_000 + id as i64),
        rate: None,
    }
}

/// Appends queued together are committed in one batch, each in a savepoint
/// of its own: one that fails (not a member; a `reply_to` that breaks a
/// foreign key; a message id already taken) is rolled back alone with its
/// own error, a repeated `client_id` inside the batch returns the first
/// message, and the others commit with gap-free seqs.
#[tokio::test]
async fn a_failing_append_inside_a_batch_does_not_affect_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    for id in 1..=4 {
        let name = format!("user_{id}");
        store
            .insert_account(&record(id, &name, None))
            .await
            .unwrap();
    }
    let (group, members) = group_of(100, &[1, 2, 3]);
    store.create_conversation(&group, &members).await.unwrap();
    let records = [
        new_message(1_001, 100, 1, "a", None),
        new_message(1_002, 100, 4, "b", None), // not a member
        new_message(1_003, 100, 2, "c", None),
        new_message(1_004, 100, 3, "d", Some(999_999)), // no such message
        new_message(1_005, 100, 1, "a", None),          // repeats 1_001
        new_message(1_006, 100, 2, "e", Some(1_001)),
        // Reuses the id of 1_001: the set-based insert of the batch fails,
        // and the batch is replayed one append after the other.
        new_message(1_001, 100, 3, "g", None),
    ];
    // On this single-threaded runtime every task queues its append before
    // the writer task (spawned by the first) runs: they form one batch.
    let tasks: Vec<_> = records
        .iter()
        .cloned()
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move { store.append_message(&r).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let created = |n: usize| match &outcomes[n] {
        Ok(kith_core::Appended::Created(m)) => m.clone(),
        other => panic!("append {n}: {other:?}"),
    };
    assert_eq!(
        [created(0).seq, created(2).seq, created(5).seq],
        [1, 2, 3],
        "{outcomes:?}"
    );
    assert!(matches!(
        outcomes[1],
        Err(Error::NotFound(kith_core::Entity::Conversation))
    ));
    assert!(
        matches!(outcomes[3], Err(Error::Storage(_))),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[6], Err(Error::Storage(_))),
        "{outcomes:?}"
    );
    match &outcomes[4] {
        Ok(kith_core::Appended::Existing(m)) => assert_eq!(m, &created(0)),
        other => panic!("the repeated client_id: {other:?}"),
    }
    let conversation = store
        .conversation(ConversationId::new(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((conversation.last_seq, conversation.version), (3, 3));
    let stored = store
        .messages(
            ConversationId::new(100),
            kith_core::SeqRange::After { seq: 0, limit: 10 },
        )
        .await
        .unwrap();
    let ids: Vec<u64> = stored.iter().map(|m| m.id.get()).collect();
    assert_eq!(ids, [1_001, 1_003, 1_006]);
    // The failed appends left nothing, and the writer is free.
    for id in [1_002, 1_004, 1_005] {
        let message = kith_core::MessageId::new(id);
        let found = store.message(ConversationId::new(100), message).await;
        assert_eq!(found.unwrap(), None);
    }
    let after = store
        .append_message(&new_message(1_007, 100, 3, "f", None))
        .await
        .unwrap();
    assert!(matches!(after, kith_core::Appended::Created(m) if m.seq == 4));
    store.close().await;
}

/// Many tasks on several threads appending straight to the store (without
/// Kith's per-conversation lanes) into a few conversations: every append is
/// committed, each conversation's seqs and versions are 1..=N without a gap
/// or duplicate, and each task's messages keep the order it sent them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_many_tasks_are_all_committed_with_gap_free_seqs() {
    const CONVERSATIONS: u64 = 5;
    const PER_CONVERSATION: u64 = 8;
    const PER_TASK: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).await.unwrap();
    let users = CONVERSATIONS * PER_CONVERSATION;
    for id in 1..=users {
        let name = format!("user_{id}");
        store
            .insert_account(&record(id, &name, None))
            .await
            .unwrap();
    }
    for c in 0..CONVERSATIONS {
        let members: Vec<u64> = (1..=PER_CONVERSATION)
            .map(|m| c * PER_CONVERSATION + m)
            .collect();
        let (group, members) = group_of(100 + c, &members);
        store.create_conversation(&group, &members).await.unwrap();
    }
    let mut tasks = Vec::new();
    for user in 1..=users {
        let store = store.clone();
        let conversation = 100 + (user - 1) / PER_CONVERSATION;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..PER_TASK {
                let id = 10_000 + user * 1_000 + n;
                let record = new_message(id, conversation, user, &format!("m{n}"), None);
                match store.append_message(&record).await.unwrap() {
                    kith_core::Appended::Created(m) => seqs.push(m.seq),
                    other => panic!("{other:?}"),
                }
            }
            seqs
        }));
    }
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    let n = PER_CONVERSATION * PER_TASK;
    for c in 0..CONVERSATIONS {
        let id = ConversationId::new(100 + c);
        let conversation = store.conversation(id).await.unwrap().unwrap();
        assert_eq!((conversation.last_seq, conversation.version), (n, n));
        let mut stored = Vec::new();
        loop {
            let after = stored.last().map_or(0, |m: &Message| m.seq);
            let range = kith_core::SeqRange::After {
                seq: after,
                limit: 100,
            };
            let page = store.messages(id, range).await.unwrap();
            if page.is_empty() {
                break;
            }
            stored.extend(page);
        }
        let seqs: Vec<(u64, u64)> = stored.iter().map(|m| (m.seq, m.version)).collect();
        assert_eq!(seqs, (1..=n).map(|s| (s, s)).collect::<Vec<_>>());
    }
    store.close().await;
}
