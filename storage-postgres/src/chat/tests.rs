//! The plans of the hot statements, on a database with enough rows that
//! the planner's choices are the ones a real deployment gets.
//! `cargo test -p kith-postgres --lib hot_statements -- --nocapture`
//! prints them (they are quoted in `docs/ARCHITECTURE.md`).

#![allow(clippy::unwrap_used)]

use super::conversations::*;
use super::messages::*;
use super::read::*;
use super::send::*;
use super::*;

/// A bind parameter of a statement to explain.
enum Arg {
    Int(i64),
    Text(&'static str),
    Ints(Vec<i64>),
    Texts(Vec<&'static str>),
}
use Arg::*;

/// 2,000 users; 20,000 groups of 5 members, the first 100 with 200
/// messages each and the others with 10 (210,000 messages), a reaction on
/// every fifth message; members have read up to various points.
const POPULATE: &[&str] = &[
    "INSERT INTO accounts (id, username, username_lower, email, email_lower, created_at) \
     SELECT i, 'user' || i, 'user' || i, 'user' || i || '@example.com', \
         'user' || i || '@example.com', 0 FROM generate_series(1, 2000) i",
    "INSERT INTO conversations (id, kind, title, created_by, created_at, last_seq, version, \
         last_activity) \
     SELECT c, 'group', 'group ' || c, 1, 0, n, n, c \
     FROM generate_series(1, 20000) c, LATERAL (SELECT CASE WHEN c <= 100 THEN 200 ELSE 10 END) \
         AS s (n)",
    "INSERT INTO conversation_members (conversation_id, user_id, role, joined_at, \
         last_read_seq, version) \
     SELECT c, ((c * 7 + m * 397) % 2000) + 1, 'member', 0, m, 0 \
     FROM generate_series(1, 20000) c, generate_series(1, 5) m",
    "INSERT INTO messages (id, conversation_id, seq, version, sender_id, client_id, body, \
         created_at) \
     SELECT c * 1000 + s, c, s, s, ((c * 7 + 397) % 2000) + 1, 'c-' || c || '-' || s, 'hello', s \
     FROM conversations, generate_series(1, last_seq) s, LATERAL (SELECT id) AS k (c)",
    "INSERT INTO message_reactions (message_id, user_id, kind) \
     SELECT id, sender_id, 'like' FROM messages WHERE seq % 5 = 0",
    // As autovacuum would have: statistics and the visibility map (for
    // index-only scans).
    "VACUUM ANALYZE",
];

/// `EXPLAIN (COSTS OFF)` of `sql` with `args` bound, one line per row.
async fn plan(store: &PgStore, sql: &str, args: Vec<Arg>) -> Vec<String> {
    let explain = format!("EXPLAIN (COSTS OFF) {sql}");
    let mut query = sqlx::query_scalar::<_, String>(&explain);
    for arg in args {
        query = match arg {
            Int(v) => query.bind(v),
            Text(v) => query.bind(v),
            Ints(v) => query.bind(v),
            Texts(v) => query.bind(v),
        };
    }
    query
        .fetch_all(store.read())
        .await
        .unwrap_or_else(|e| panic!("explaining {sql}: {e}"))
}

/// Every hot statement is served by indexes: no plan scans a whole table.
/// History pages and changes are read in index order, without a sort (they
/// can be long); the reads over one user's memberships (the conversation
/// list, a bounded top-N sort, see the migration; the unread counts) and
/// over one conversation's members may sort those few rows, as the planner
/// sees fit.
#[tokio::test]
async fn hot_statements_use_indexes() {
    let store = crate::testing::fresh_store().await;
    for sql in POPULATE {
        sqlx::raw_sql(sql).execute(store.read()).await.unwrap();
    }
    // Conversation 14 and user 105 stand for any: the plans do not depend
    // on which.
    let statements: Vec<(&str, &str, Vec<Arg>)> = vec![
        (
            "append: idempotency",
            SELECT_BY_CLIENT_ID,
            vec![Int(105), Text("c-x")],
        ),
        (
            "append: seq and version",
            BUMP_FOR_MESSAGE,
            vec![Int(14), Int(1)],
        ),
        (
            "append: insert if a member",
            INSERT_MESSAGE,
            vec![
                Int(99_999),
                Int(14),
                Int(51),
                Int(51),
                Int(105),
                Text("c-new"),
                Text("hi"),
                Int(14_001),
                Int(1),
            ],
        ),
        (
            "append: read position",
            READ_OWN,
            vec![Int(14), Int(105), Int(51)],
        ),
        (
            "batch: lock counters",
            LOCK_COUNTERS,
            vec![Ints(vec![14, 15])],
        ),
        (
            "batch: every read",
            READ_BATCH,
            vec![
                Ints(vec![14, 15]),
                Ints(vec![105, 106]),
                Texts(vec!["a", "b"]),
                Ints(vec![14, 15]),
                Ints(vec![105, 106]),
                Ints(vec![14_001]),
                Ints(vec![105, 106]),
            ],
        ),
        (
            "batch: memberships again",
            SELECT_SENDERS,
            vec![Ints(vec![14, 15]), Ints(vec![105, 106])],
        ),
        ("history: latest", LATEST, vec![Int(14), Int(30)]),
        ("history: before", BEFORE, vec![Int(14), Int(30), Int(40)]),
        ("history: after", AFTER, vec![Int(14), Int(30), Int(10)]),
        (
            "conversation list",
            CONVERSATIONS_FIRST,
            vec![Int(105), Int(20)],
        ),
        (
            "conversation list, next page",
            CONVERSATIONS_AFTER,
            vec![Int(105), Int(20), Int(300), Int(300)],
        ),
        ("unread counts", UNREAD, vec![Int(105)]),
        (
            "changes: messages",
            MESSAGE_CHANGES,
            vec![Int(14), Int(40), Int(50)],
        ),
        (
            "changes: members",
            MEMBER_CHANGES,
            vec![Int(14), Int(40), Int(50)],
        ),
        (
            "changes: title",
            TITLE_CHANGE,
            vec![Int(14), Int(40), Int(50)],
        ),
        ("message", SELECT_MESSAGE, vec![Int(14), Int(14_001)]),
        ("members", SELECT_MEMBERS, vec![Int(14)]),
    ];
    for (name, sql, args) in statements {
        let lines = plan(&store, sql, args).await;
        println!("-- {name}\n{}\n", lines.join("\n"));
        let text = lines.join("\n");
        assert!(!text.contains("Seq Scan"), "{name} scans a table:\n{text}");
        if name.starts_with("history") || name.starts_with("changes") {
            assert!(!text.contains("Sort"), "{name} sorts:\n{text}");
        }
        if name.starts_with("conversation list") || name == "unread counts" {
            assert!(
                text.contains("conversation_members_user"),
                "{name} does not walk the memberships:\n{text}"
            );
        }
    }
}
