//! Behaviour specific to the PostgreSQL backend: connecting, migrations,
//! and the storage calls themselves racing each other from many
//! connections (and from two stores, as two server processes would), which
//! the conformance suite cannot provoke through Kith (its lanes admit one
//! batch of a conversation at a time). The storage contract itself is
//! checked by `tests/conformance.rs`.

// Test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

use kith_postgres::testing as support;

use std::collections::HashSet;

use kith_core::{
    Account, AccountRecord, AccountStore, Appended, ChatStore, Conversation, ConversationId,
    ConversationKind, GraphStore, Member, MemberRole, MessageId, NewMessageRecord, Profile,
    SeqRange, Timestamp, UserId,
};
use kith_postgres::{Error, PgPoolOptions, PgStore};

const AT: Timestamp = Timestamp::from_millis(1_767_225_600_000);

async fn user(store: &PgStore, id: u64) -> UserId {
    let record = AccountRecord {
        account: Account {
            id: UserId::new(id),
            username: format!("user{id}"),
            email: None,
            has_password: false,
            created_at: AT,
            profile: Profile::default(),
        },
        password_hash: None,
    };
    store.insert_account(&record).await.unwrap();
    UserId::new(id)
}

async fn group(store: &PgStore, id: u64, members: &[UserId]) -> ConversationId {
    let conversation = Conversation {
        id: ConversationId::new(id),
        kind: ConversationKind::Group,
        title: Some(format!("group {id}")),
        created_by: members[0],
        created_at: AT,
        last_seq: 0,
        version: 0,
        last_activity: AT,
    };
    let members: Vec<Member> = members
        .iter()
        .map(|&user_id| Member {
            user_id,
            role: MemberRole::Admin,
            joined_at: AT,
            last_read_seq: 0,
        })
        .collect();
    store
        .create_conversation(&conversation, &members)
        .await
        .unwrap();
    conversation.id
}

fn message(
    id: u64,
    conversation: ConversationId,
    sender: UserId,
    client_id: &str,
) -> NewMessageRecord {
    NewMessageRecord {
        id: MessageId::new(id),
        conversation_id: conversation,
        sender,
        client_id: client_id.into(),
        body: format!("message {id}"),
        reply_to: None,
        created_at: AT,
        rate: None,
    }
}

/// A second store over the database of `store`, as another server process
/// would open it (migrating it again changes nothing).
async fn second_store(store: &PgStore) -> PgStore {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    PgStore::connect_with(
        support::server().options(&name),
        PgPoolOptions::new().max_connections(4),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn connect_reports_bad_urls_and_missing_databases() {
    let bad = PgStore::connect("definitely not a url").await;
    assert!(matches!(bad, Err(Error::InvalidUrl(_))), "{bad:?}");
    let missing = PgStore::connect_with(
        support::server().options("no_such_database"),
        PgPoolOptions::new().max_connections(1),
    )
    .await;
    assert!(matches!(missing, Err(Error::Connect(_))), "{missing:?}");
    // The setup error converts into Kith's storage error.
    let err: kith_core::Error = missing.unwrap_err().into();
    assert!(matches!(err, kith_core::Error::Storage(_)), "{err:?}");
}

/// Fifty appends at once into one conversation, through two stores (eight
/// connections): every one is stored, with seqs and versions 1 to 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_stores_get_gap_free_seqs() {
    let store = support::fresh_store().await;
    let other = second_store(&store).await;
    let senders = [user(&store, 1).await, user(&store, 2).await];
    let id = group(&store, 100, &senders).await;
    let mut tasks = Vec::new();
    for i in 0..50_u64 {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let sender = senders[(i % 2) as usize];
        tasks.push(tokio::spawn(async move {
            let record = message(1_000 + i, id, sender, &format!("c-{i}"));
            store.append_message(&record).await.unwrap()
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        let Appended::Created(message) = task.await.unwrap() else {
            panic!("every append is new");
        };
        assert_eq!(message.seq, message.version);
        assert!(seqs.insert(message.seq), "seq {} twice", message.seq);
    }
    assert_eq!(seqs, (1..=50).collect());
    let conversation = store.conversation(id).await.unwrap().unwrap();
    assert_eq!((conversation.last_seq, conversation.version), (50, 50));
    let stored = store
        .messages(id, SeqRange::Latest { limit: 100 })
        .await
        .unwrap();
    let stored: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(stored, (1..=50).collect::<Vec<_>>());
}

/// The same `(sender, client_id)` sent to two conversations at the same
/// instant is stored once; the other append returns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_id_sent_to_two_conversations_at_once_is_stored_once() {
    let store = support::fresh_store().await;
    let other = second_store(&store).await;
    let alice = user(&store, 1).await;
    let (a, b) = (
        group(&store, 100, &[alice]).await,
        group(&store, 200, &[alice]).await,
    );
    for i in 0..20_u64 {
        let client_id = format!("twice-{i}");
        let (first, second) = (
            message(1_000 + i, a, alice, &client_id),
            message(2_000 + i, b, alice, &client_id),
        );
        let (x, y) = tokio::join!(store.append_message(&first), other.append_message(&second));
        let (x, y) = (x.unwrap(), y.unwrap());
        let (created, existing) = match (x, y) {
            (Appended::Created(c), Appended::Existing(e))
            | (Appended::Existing(e), Appended::Created(c)) => (c, e),
            other => panic!("one append stores, the other finds it: {other:?}"),
        };
        assert_eq!(created, existing);
    }
    let (ca, cb) = (
        store.conversation(a).await.unwrap().unwrap(),
        store.conversation(b).await.unwrap().unwrap(),
    );
    assert_eq!(ca.last_seq + cb.last_seq, 20, "no seq was taken twice");
    assert_eq!((ca.version, cb.version), (ca.last_seq, cb.last_seq));
}

/// Appends by a member racing that member's removal: none is stored after
/// the removal's version, and the versions stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_racing_a_removal_never_land_after_it() {
    let store = support::fresh_store().await;
    let other = second_store(&store).await;
    let [admin, leaver] = [user(&store, 1).await, user(&store, 2).await];
    for round in 0..10_u64 {
        let id = group(&store, 100 + round, &[admin, leaver]).await;
        let mut sends = Vec::new();
        for i in 0..10_u64 {
            let store = other.clone();
            let record = message(
                10_000 * (round + 1) + i,
                id,
                leaver,
                &format!("r{round}-{i}"),
            );
            sends.push(tokio::spawn(
                async move { store.append_message(&record).await },
            ));
        }
        let removed = store
            .remove_member(id, leaver, None)
            .await
            .unwrap()
            .unwrap()
            .version;
        let mut stored = 0;
        for send in sends {
            match send.await.unwrap() {
                Ok(Appended::Created(m)) => {
                    assert!(m.version < removed, "stored after the removal");
                    stored += 1;
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => assert_eq!(
                    e.to_string(),
                    kith_core::Error::NotFound(kith_core::Entity::Conversation).to_string()
                ),
            }
        }
        let conversation = store.conversation(id).await.unwrap().unwrap();
        assert_eq!(conversation.last_seq, stored);
        assert_eq!(conversation.version, stored + 1, "gap-free versions");
    }
}

/// An append that waits for the conversation's lock while another writer
/// removes its sender sees the removal once it has the lock (its reads are
/// made again after the wait), whatever it read before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_that_waited_for_a_removal_is_refused() {
    let store = support::fresh_store().await;
    let [admin, leaver] = [user(&store, 1).await, user(&store, 2).await];
    for rate in [None, Some(kith_core::Rate::default())] {
        let id = group(&store, 100 + u64::from(rate.is_some()), &[admin, leaver]).await;
        // The other writer: the removal's statements, holding the lock.
        let mut removal = store.pool().begin().await.unwrap();
        let version: i64 = sqlx::query_scalar(
            "UPDATE conversations SET version = version + 1 WHERE id = $1 RETURNING version",
        )
        .bind(id.get() as i64)
        .fetch_one(&mut *removal)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE conversation_members SET left_version = $3, version = $3 \
             WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(id.get() as i64)
        .bind(leaver.get() as i64)
        .bind(version)
        .execute(&mut *removal)
        .await
        .unwrap();
        let append = tokio::spawn({
            let store = store.clone();
            let mut record = message(1_000 + id.get(), id, leaver, &format!("w{}", id.get()));
            record.rate = rate;
            async move { store.append_message(&record).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!append.is_finished(), "the append waits for the lock");
        removal.commit().await.unwrap();
        let outcome = append.await.unwrap();
        assert!(
            matches!(
                outcome,
                Err(kith_core::Error::NotFound(kith_core::Entity::Conversation))
            ),
            "a removed member's append was answered {outcome:?}"
        );
        let conversation = store.conversation(id).await.unwrap().unwrap();
        assert_eq!(conversation.last_seq, 0, "nothing stored");
    }
}

/// A follow racing the deletion of the followed account never survives
/// it: the account row locks order the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_racing_account_deletion_never_outlives_it() {
    let store = support::fresh_store().await;
    let other = second_store(&store).await;
    for i in 0..20_u64 {
        let (a, b) = (user(&store, 2 * i + 1).await, user(&store, 2 * i + 2).await);
        let (deleted, followed) =
            tokio::join!(store.delete_account(a, AT), other.insert_follow(b, a, AT),);
        deleted.unwrap();
        // Either it ran first (and was removed) or it found `a` deleted.
        if let Err(e) = followed {
            assert!(matches!(e, kith_core::Error::NotFound(_)), "{e:?}");
        }
        assert_eq!(store.counts(b).await.unwrap().following, 0);
        assert!(!store.links(b, a).await.unwrap().visible.following);
    }
}

/// A batch whose set-based insert fails (a message id already taken, which
/// no pre-check foresees) is replayed one message at a time: the failing
/// message gets its own error and takes no seq, the others are stored.
#[tokio::test]
async fn a_batch_with_a_failing_message_stores_the_others() {
    let store = support::fresh_store().await;
    let alice = user(&store, 1).await;
    let id = group(&store, 100, &[alice]).await;
    store
        .append_message(&message(7, id, alice, "first"))
        .await
        .unwrap();
    let batch = [
        message(8, id, alice, "second"),
        message(7, id, alice, "reuses id 7"),
        message(9, id, alice, "third"),
        message(10, id, alice, "second"),
    ];
    let outcomes = store.append_messages(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 4);
    let created = |i: usize| match &outcomes[i] {
        Ok(Appended::Created(m)) => (m.id.get(), m.seq),
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(created(0), (8, 2));
    assert!(
        matches!(outcomes[1], Err(kith_core::Error::Storage(_))),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(created(2), (9, 3));
    match &outcomes[3] {
        Ok(Appended::Existing(m)) => assert_eq!((m.id.get(), m.seq), (8, 2)),
        other => panic!("a repeated client id in the batch: {other:?}"),
    }
    let conversation = store.conversation(id).await.unwrap().unwrap();
    assert_eq!((conversation.last_seq, conversation.version), (3, 3));
}
