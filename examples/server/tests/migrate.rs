//! `kith-server migrate-data`: a SQLite deployment built through Kith's
//! public API is copied into PostgreSQL, and both are then compared through
//! the public API, as every user sees them. Then the PostgreSQL copy must go
//! on where the SQLite one stopped (logins, sessions, sequences, ids).
//! A non-empty target and a source of another schema version are refused
//! and change nothing.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions too

use std::path::Path;
use std::sync::Arc;

use kith_core::{Attachment, Config, ContactInfo, Date, MediaId, MediaKind, NewMedia, Variant};
use kith_core::{
    ChangePassword, ConversationId, History, Kith, MemberRole, Message, NewAccount, NewGroup,
    NewMessage, NewPost, Page, Post, PostId, ProfilePatch, ReactionKind, ReactionTarget, UserId,
    Visibility,
};
use kith_postgres::PgStore;
use kith_server::migrate::{migrate_data, MigrateError, TABLES};
use kith_sqlite::SqliteStore;

/// The password of every user but bob, who changed his.
const PASSWORD: &str = "correct horse battery";
/// Bob's password after he changed it.
const BOB_NEW_PASSWORD: &str = "staple battery horse";

/// Kith over `storage`, without the send rate limit (the scenario sends in
/// bursts) and otherwise as configured by default.
fn kith_over(storage: Arc<dyn kith_core::Storage>) -> Kith {
    let mut config = Config::default();
    config.send_rate = None;
    Kith::builder(storage).config(config).build()
}

/// What the scenario made, to look at it again from both backends.
struct World {
    /// Every account ever registered, the deleted one included:
    /// `(id, username, password)`.
    users: Vec<(UserId, String, String)>,
    /// The deleted account.
    deleted: UserId,
    /// Bearer tokens of the sessions opened (some revoked since).
    tokens: Vec<String>,
    /// Every conversation.
    conversations: Vec<ConversationId>,
    /// The direct conversation of alice and bob, and the group.
    direct: ConversationId,
    group: ConversationId,
    /// Every message sent.
    messages: Vec<Message>,
    /// Every post (a share among them).
    posts: Vec<PostId>,
    /// Every upload: alice's avatar, then one never attached.
    media: Vec<MediaId>,
}

impl World {
    fn id(&self, name: &str) -> UserId {
        self.users
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(id, _, _)| *id)
            .unwrap_or_else(|| panic!("no user {name}"))
    }
}

/// Sends `body` as `actor`, with `client_id`.
async fn send(
    kith: &Kith,
    actor: UserId,
    id: ConversationId,
    client_id: &str,
    body: &str,
    reply_to: Option<&Message>,
) -> Message {
    kith.chat()
        .send(
            actor,
            id,
            NewMessage {
                client_id: client_id.into(),
                body: body.into(),
                reply_to: reply_to.map(|m| m.id),
            },
        )
        .await
        .unwrap()
}

/// A small but complete deployment, built through the public API.
async fn build_world(kith: &Kith) -> World {
    let accounts = kith.accounts();
    let graph = kith.graph();
    let chat = kith.chat();
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let account = accounts
            .register(NewAccount {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        users.push((account.id, name.to_owned(), PASSWORD.to_owned()));
    }
    let [alice, bob, carol, dave, erin, frank] = [0, 1, 2, 3, 4, 5].map(|i| users[i].0);

    // Profiles: every field of alice's, a few of the others', three visibilities.
    accounts
        .update_profile(
            alice,
            ProfilePatch {
                display_name: Some(Some("Alice Liddell".into())),
                bio: Some(Some("Curiouser and curiouser.\nSecond line.".into())),
                location: Some(Some("Oxford".into())),
                birth_date: Some(Some(
                    Date::from_calendar_date(1990, time::Month::March, 14).unwrap(),
                )),
                job: Some(Some("Explorer".into())),
                interests: Some(vec!["chess".into(), "rabbits".into(), "tea".into()]),
                avatar_url: Some(Some("https://example.com/alice.png".into())),
                cover_url: Some(Some("https://example.com/alice-cover.png".into())),
                contact: Some(ContactInfo {
                    email: Some("hello@alice.example".into()),
                    phone: Some("+44 1865 000000".into()),
                    website: Some("https://alice.example".into()),
                }),
                visibility: Some(Visibility::Public),
            },
        )
        .await
        .unwrap();
    accounts
        .update_profile(
            bob,
            ProfilePatch {
                display_name: Some(Some("Böb".into())),
                birth_date: Some(Some(
                    Date::from_calendar_date(1985, time::Month::December, 1).unwrap(),
                )),
                interests: Some(vec!["music".into()]),
                visibility: Some(Visibility::Friends),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    accounts
        .update_profile(
            carol,
            ProfilePatch {
                bio: Some(Some("Private person".into())),
                visibility: Some(Visibility::Private),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    accounts
        .update_profile(
            dave,
            ProfilePatch {
                location: Some(Some("Lisbon".into())),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();

    // Sessions; bob changes his password, keeping one session.
    let mut tokens = Vec::new();
    for (_, name, _) in &users {
        tokens.push(accounts.login(name, PASSWORD).await.unwrap().token);
    }
    tokens.push(accounts.login("alice", PASSWORD).await.unwrap().token);
    let bob_kept = accounts.login("bob@example.com", PASSWORD).await.unwrap();
    tokens.push(bob_kept.token.clone());
    accounts
        .change_password(
            bob,
            ChangePassword {
                current_password: Some(PASSWORD.into()),
                new_password: BOB_NEW_PASSWORD.into(),
                keep_session: Some(bob_kept.session.id),
            },
        )
        .await
        .unwrap();
    users[1].2 = BOB_NEW_PASSWORD.to_owned();

    // The graph.
    graph.send_friend_request(alice, bob).await.unwrap();
    graph.accept_friend_request(bob, alice).await.unwrap();
    graph.send_friend_request(carol, alice).await.unwrap();
    graph.accept_friend_request(alice, carol).await.unwrap();
    graph.send_friend_request(frank, alice).await.unwrap();
    graph.accept_friend_request(alice, frank).await.unwrap();
    graph.send_friend_request(dave, alice).await.unwrap(); // pending
    graph.send_friend_request(erin, bob).await.unwrap(); // pending
    graph.send_friend_request(alice, erin).await.unwrap(); // pending
    graph.send_friend_request(frank, carol).await.unwrap(); // dropped with frank
    for (follower, followee) in [
        (carol, alice),
        (dave, alice),
        (alice, erin),
        (bob, carol),
        (frank, bob),
    ] {
        graph.follow(follower, followee).await.unwrap();
    }
    graph.block(erin, dave).await.unwrap();
    graph.mute(alice, carol).await.unwrap();
    graph.mute(bob, dave).await.unwrap();

    // A direct conversation: a reply, an edit, a deletion, reactions, reads.
    let direct = chat.open_direct(alice, bob).await.unwrap().id;
    let a1 = send(kith, alice, direct, "a1", "Hi Bob!", None).await;
    let b1 = send(kith, bob, direct, "b1", "Hi Alice, what's up?", Some(&a1)).await;
    let a2 = send(kith, alice, direct, "a2", "Tea at fvie?", None).await;
    let a2 = chat
        .edit(alice, direct, a2.id, "Tea at five?")
        .await
        .unwrap();
    let b2 = send(kith, bob, direct, "b2", "wrong chat, sorry", None).await;
    chat.delete(bob, direct, b2.id).await.unwrap();
    chat.react(bob, direct, a1.id, Some(ReactionKind::Like))
        .await
        .unwrap();
    chat.react(alice, direct, b1.id, Some(ReactionKind::Love))
        .await
        .unwrap();
    chat.react(bob, direct, a2.id, Some(ReactionKind::Wow))
        .await
        .unwrap();
    chat.react(bob, direct, a2.id, None).await.unwrap(); // taken back
    chat.mark_read(bob, direct, a2.seq).await.unwrap();

    // A group: a member who leaves, one who is deleted, a rename, a new admin.
    let group = chat
        .create_group(
            alice,
            NewGroup {
                title: "Climbing".into(),
                members: vec![bob, carol, dave, frank],
            },
        )
        .await
        .unwrap()
        .id;
    let g1 = send(kith, alice, group, "g1", "Saturday at the wall?", None).await;
    let g2 = send(kith, carol, group, "g2", "Count me in", Some(&g1)).await;
    let g3 = send(kith, frank, group, "g3", "Can't, sorry", Some(&g1)).await;
    let g4 = send(kith, dave, group, "g4", "Me too", Some(&g2)).await;
    chat.react(dave, group, g1.id, Some(ReactionKind::Haha))
        .await
        .unwrap();
    chat.react(bob, group, g1.id, Some(ReactionKind::Like))
        .await
        .unwrap();
    chat.leave(carol, group).await.unwrap();
    chat.rename(alice, group, "Climbing club").await.unwrap();
    chat.set_role(alice, group, bob, MemberRole::Admin)
        .await
        .unwrap();
    let g5 = send(kith, bob, group, "g5", "Bringing ropes", None).await;
    chat.mark_read(dave, group, g2.seq).await.unwrap();
    chat.mark_read(alice, group, g5.seq).await.unwrap();

    // A third conversation, unread by its recipient.
    let other = chat.open_direct(carol, dave).await.unwrap().id;
    let c1 = send(kith, carol, other, "c1", "Hello Dave", None).await;

    // Posts: a hashtag and a mention, a friends-only one, a share, a
    // comment with a reply, reactions to a post and to a comment; frank's
    // post goes with his account below.
    let posts = kith.posts();
    let new = |text: &str, visibility, shared_id| NewPost {
        text: text.into(),
        visibility,
        shared_id,
    };
    let public = Visibility::Public;
    let hello = posts.create(alice, new("Hello #kith @bob", public, None));
    let hello = hello.await.unwrap().id;
    let among = new("Friends only #kith", Visibility::Friends, None);
    let among = posts.create(bob, among).await.unwrap().id;
    let shared = posts.create(carol, new("", public, Some(hello)));
    let shared = shared.await.unwrap().id;
    let gone = posts.create(frank, new("#kith from frank", public, None));
    let gone = gone.await.unwrap().id;
    let comments = kith.comments();
    let hi = comments.create(bob, hello, None, "Hi!").await.unwrap().id;
    comments
        .create(alice, hello, Some(hi), "Hey")
        .await
        .unwrap();
    let reactions = kith.reactions();
    let on_hello = ReactionTarget::Post { post_id: hello };
    let on_hi = ReactionTarget::Comment { comment_id: hi };
    reactions
        .set(bob, on_hello, Some(ReactionKind::Love))
        .await
        .unwrap();
    reactions
        .set(alice, on_hi, Some(ReactionKind::Like))
        .await
        .unwrap();

    // alice's avatar, and an upload she never attached.
    let mut media = Vec::new();
    for name in ["avatar", "draft"] {
        let upload = kith
            .media()
            .upload(
                alice,
                NewMedia {
                    kind: MediaKind::Image,
                    content_type: "image/png".into(),
                    width: 2,
                    height: 1,
                    variants: vec![(Variant::Original, name.as_bytes().to_vec())],
                },
            )
            .await
            .unwrap();
        media.push(upload.id);
    }
    kith.media()
        .attach(alice, media[0], Attachment::Avatar)
        .await
        .unwrap();

    // frank goes away: a tombstone whose messages and membership stay.
    accounts
        .delete_account(frank, Some(PASSWORD))
        .await
        .unwrap();

    World {
        users,
        deleted: frank,
        tokens,
        conversations: vec![direct, group, other],
        direct,
        group,
        messages: vec![a1, b1, a2, b2, g1, g2, g3, g4, g5, c1],
        posts: vec![hello, among, shared, gone],
        media,
    }
}

/// Everything each user can see, as `label: {result:?}` lines (errors
/// included: who is refused what must not change either).
async fn observe(kith: &Kith, world: &World) -> Vec<String> {
    let accounts = kith.accounts();
    let graph = kith.graph();
    let chat = kith.chat();
    let mut out = Vec::new();
    let first = Page::first();
    for (u, name, _) in &world.users {
        out.push(format!(
            "anonymous profile of {name}: {:?}",
            accounts.profile(None, *u).await
        ));
        out.push(format!(
            "anonymous profile by name {name}: {:?}",
            accounts.profile_by_username(None, name).await
        ));
        out.push(format!(
            "anonymous counts of {name}: {:?}",
            graph.counts(None, *u).await
        ));
    }
    for (a, actor, _) in &world.users {
        let a = *a;
        out.push(format!("{actor} me: {:?}", accounts.me(a).await));
        out.push(format!(
            "{actor} sessions: {:?}",
            accounts.sessions(a).await
        ));
        out.push(format!("{actor} unread: {:?}", chat.unread(a).await));
        out.push(format!(
            "{actor} conversations: {:?}",
            chat.conversations(a, &first).await
        ));
        // The same list one item per page, through the cursors.
        let mut page = Page::with_limit(1);
        for i in 0..10 {
            let got = chat.conversations(a, &page).await;
            out.push(format!("{actor} conversations page {i}: {got:?}"));
            match got.ok().and_then(|p| p.next_cursor) {
                Some(cursor) => page = Page::after(cursor, Some(1)),
                None => break,
            }
        }
        out.push(format!(
            "{actor} home: {:?}",
            kith.posts().home(a, &first).await
        ));
        for tag in ["kith", "climbing"] {
            out.push(format!(
                "{actor} #{tag}: {:?}",
                kith.posts().hashtag(Some(a), tag, &first).await
            ));
        }
        out.push(format!(
            "{actor} blocked: {:?}",
            graph.blocked(a, &first).await
        ));
        out.push(format!("{actor} muted: {:?}", graph.muted(a, &first).await));
        out.push(format!(
            "{actor} incoming: {:?}",
            graph.incoming_requests(a, &first).await
        ));
        out.push(format!(
            "{actor} outgoing: {:?}",
            graph.outgoing_requests(a, &first).await
        ));
        out.push(format!(
            "{actor} friend ids: {:?}",
            graph.friend_ids(a).await
        ));
        for (u, name, _) in &world.users {
            let u = *u;
            out.push(format!(
                "{actor} profile of {name}: {:?}",
                accounts.profile(Some(a), u).await
            ));
            out.push(format!(
                "{actor} relationship with {name}: {:?}",
                graph.relationship(a, u).await
            ));
            out.push(format!(
                "{actor} counts of {name}: {:?}",
                graph.counts(Some(a), u).await
            ));
            out.push(format!(
                "{actor} friends of {name}: {:?}",
                graph.friends(a, u, None, &first).await
            ));
            out.push(format!(
                "{actor} friends of {name}, first of 1: {:?}",
                graph.friends(a, u, None, &Page::with_limit(1)).await
            ));
            out.push(format!(
                "{actor} followers of {name}: {:?}",
                graph.followers(a, u, &first).await
            ));
            out.push(format!(
                "{actor} following of {name}: {:?}",
                graph.following(a, u, &first).await
            ));
            out.push(format!(
                "{actor} timeline of {name}: {:?}",
                kith.posts().timeline(Some(a), u, &first).await
            ));
        }
        for c in &world.conversations {
            let c = *c;
            out.push(format!(
                "{actor} conversation {c}: {:?}",
                chat.conversation(a, c).await
            ));
            out.push(format!(
                "{actor} members of {c}: {:?}",
                chat.members(a, c).await
            ));
            out.push(format!(
                "{actor} history of {c}: {:?}",
                chat.history(a, c, History::Latest, None).await
            ));
            out.push(format!(
                "{actor} history of {c} after 1, 2: {:?}",
                chat.history(a, c, History::After(1), Some(2)).await
            ));
            out.push(format!(
                "{actor} history of {c} before 4: {:?}",
                chat.history(a, c, History::Before(4), None).await
            ));
            out.push(format!(
                "{actor} changes of {c} since 0: {:?}",
                chat.changes_since(a, c, 0, None).await
            ));
            out.push(format!(
                "{actor} changes of {c} since 3, 2: {:?}",
                chat.changes_since(a, c, 3, Some(2)).await
            ));
            out.push(format!(
                "change log of {c}: {:?}",
                kith.storage().change_log(c, 0, 500).await
            ));
        }
    }
    for id in &world.media {
        out.push(format!("media {id}: {:?}", kith.storage().media(*id).await));
    }
    for (i, token) in world.tokens.iter().enumerate() {
        out.push(format!(
            "token {i}: {:?}",
            accounts.authenticate(token).await
        ));
    }
    observe_posts(kith, world, &mut out).await;
    out
}

/// What every viewer (anonymous too) sees of the posts, their comments and
/// reactions, and of every timeline and the hashtag.
async fn observe_posts(kith: &Kith, world: &World, out: &mut Vec<String>) {
    let posts = kith.posts();
    let first = Page::first();
    let mut viewers: Vec<(Option<UserId>, &str)> = vec![(None, "anonymous")];
    viewers.extend(
        world
            .users
            .iter()
            .map(|(id, name, _)| (Some(*id), name.as_str())),
    );
    for (viewer, label) in viewers {
        for (user, name, _) in &world.users {
            let timeline = posts.timeline(viewer, *user, &first).await;
            out.push(format!("{label} timeline of {name}: {timeline:?}"));
        }
        let tagged = posts.hashtag(viewer, "kith", &first).await;
        out.push(format!("{label} #kith: {tagged:?}"));
        for id in &world.posts {
            out.push(format!(
                "{label} post {id}: {:?}",
                posts.get(viewer, *id).await
            ));
            let thread = kith.comments().thread(viewer, *id, None, &first).await;
            out.push(format!("{label} comments of {id}: {thread:?}"));
            let target = ReactionTarget::Post { post_id: *id };
            let summary = kith.reactions().summary(viewer, target).await;
            out.push(format!("{label} reactions of {id}: {summary:?}"));
            let who = kith.reactions().who(viewer, target, None, &first).await;
            out.push(format!("{label} who reacted to {id}: {who:?}"));
        }
    }
}

/// Fails on the first line that differs, naming it.
fn assert_same(sqlite: &[String], postgres: &[String]) {
    assert_eq!(sqlite.len(), postgres.len());
    for (s, p) in sqlite.iter().zip(postgres) {
        assert_eq!(s, p, "SQLite (left) and PostgreSQL (right) differ");
    }
}

/// The SQLite URL of a file.
fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A SQLite deployment in `dir`, built and closed; returns its URL, what
/// was made and what everyone saw before it was closed.
async fn sqlite_deployment(dir: &Path) -> (String, World, Vec<String>) {
    let url = sqlite_url(&dir.join("kith.db"));
    let store = SqliteStore::open(&url).await.unwrap();
    let kith = kith_over(Arc::new(store.clone()));
    let world = build_world(&kith).await;
    let seen = observe(&kith, &world).await;
    store.close().await;
    (url, world, seen)
}

/// Runs `kith-server migrate-data` (the binary) and returns its output.
async fn run_binary(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kith-server"))
            .arg("migrate-data")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The rows of every Kith table in the target.
async fn row_counts(store: &PgStore) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .unwrap();
        counts.push((table, n));
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_and_goes_on_there() {
    let dir = tempfile::tempdir().unwrap();
    let (from, world, before) = sqlite_deployment(dir.path()).await;
    let to = kith_postgres::testing::fresh_database_url().await;

    // Through the binary, two rows per statement so that every table takes
    // several batches.
    let output = run_binary(vec![
        "--from".into(),
        from.clone(),
        "--to".into(),
        to.clone(),
        "--batch-size".into(),
        "2".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    for table in TABLES {
        assert!(stdout.contains(table), "{table} not reported: {stdout}");
    }

    let sqlite_store = SqliteStore::open(&from).await.unwrap();
    let sqlite = kith_over(Arc::new(sqlite_store.clone()));
    let pg_store = PgStore::connect(&to).await.unwrap();
    let pg = kith_over(Arc::new(pg_store.clone()));

    // The report is what the target holds.
    let counts = row_counts(&pg_store).await;
    for (table, n) in &counts {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(*table))
            .unwrap_or_else(|| panic!("no line for {table}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(n.to_string().as_str()),
            "{line}"
        );
    }
    assert_eq!(counts[0], ("accounts", 6));
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    // Everything every user sees is the same, and the source was only read.
    assert_same(&before, &observe(&sqlite, &world).await);
    assert_same(&before, &observe(&pg, &world).await);

    // Logins with the same passwords (bob's changed one) work, and only those.
    for (id, name, password) in &world.users {
        let on_sqlite = sqlite.accounts().login(name, password).await;
        let on_pg = pg.accounts().login(name, password).await;
        if *id == world.deleted {
            assert!(on_pg.is_err() && on_sqlite.is_err());
            continue;
        }
        let session = on_pg.unwrap();
        assert_eq!(session.account, on_sqlite.unwrap().account);
        assert_eq!(
            pg.accounts().authenticate(&session.token).await.unwrap(),
            session.session
        );
    }
    let old = pg.accounts().login("bob", PASSWORD).await;
    assert_eq!(
        format!("{old:?}"),
        format!("{:?}", sqlite.accounts().login("bob", PASSWORD).await)
    );
    assert!(old.is_err());
    // The copied tokens still open their sessions (the revoked ones still not).
    let mut open = 0;
    for token in &world.tokens {
        if let Ok(s) = pg.accounts().authenticate(token).await {
            assert_eq!(sqlite.accounts().authenticate(token).await.unwrap(), s);
            open += 1;
        }
    }
    assert!(open >= 5, "{open} sessions open");

    // New writes go on from where SQLite stopped.
    let alice = world.id("alice");
    let bob = world.id("bob");
    let newest_message = world.messages.iter().map(|m| m.id).max().unwrap();
    let direct = pg.chat().conversation(alice, world.direct).await.unwrap();
    let next = send(&pg, alice, world.direct, "a3", "Still there?", None).await;
    assert_eq!(next.seq, direct.last_seq + 1);
    assert_eq!(next.version, direct.version + 1);
    assert!(next.id > newest_message);
    // Idempotent sends remember the copied client ids.
    let again = send(&pg, alice, world.direct, "a1", "Hi Bob!", None).await;
    assert_eq!((again.id, again.seq), (world.messages[0].id, 1));
    let group = pg.chat().conversation(alice, world.group).await.unwrap();
    let renamed = pg
        .chat()
        .rename(bob, world.group, "Climbing club (indoor)")
        .await
        .unwrap();
    assert_eq!(renamed.version, group.version + 1);
    assert_eq!(renamed.last_seq, group.last_seq);
    let next = send(&pg, bob, world.group, "g6", "See you there", None).await;
    assert_eq!(next.seq, group.last_seq + 1);
    assert_eq!(next.version, group.version + 2);
    let read = pg
        .chat()
        .mark_read(bob, world.group, next.seq)
        .await
        .unwrap();
    assert_eq!(read.unread, 0);
    // New accounts get larger ids; the deleted account's name is free again.
    let newest_user = world.users.iter().map(|(id, _, _)| *id).max().unwrap();
    let gina = pg
        .accounts()
        .register(NewAccount {
            username: "frank".into(),
            email: "frank@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    assert!(gina.id > newest_user);
    // Unique rules hold: alice's name and email are taken.
    assert!(pg
        .accounts()
        .register(NewAccount {
            username: "ALICE".into(),
            email: "other@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .is_err());
    pg.graph()
        .send_friend_request(gina.id, alice)
        .await
        .unwrap();
    assert!(pg.graph().send_friend_request(alice, bob).await.is_err()); // already friends
    let list = pg.chat().conversations(bob, &Page::first()).await.unwrap();
    assert_eq!(list.items[0].conversation.id, world.group);
    // A new post takes the next position after the copied ones.
    let newest: Vec<Post> = pg.posts().get_many(None, &world.posts).await.unwrap();
    let last = newest.iter().map(|p| p.position).max().unwrap();
    let post = NewPost {
        text: "After the move #kith".into(),
        visibility: Visibility::Public,
        shared_id: None,
    };
    let moved = pg.posts().create(alice, post).await.unwrap();
    assert!(moved.position > last);
    let tagged = pg.posts().hashtag(None, "kith", &Page::first()).await;
    assert_eq!(tagged.unwrap().items[0].id, moved.id);
    sqlite_store.close().await;
    pg_store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_kith_data_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (from, world, _) = sqlite_deployment(dir.path()).await;

    // A target someone already uses.
    let to = kith_postgres::testing::fresh_database_url().await;
    let pg_store = PgStore::connect(&to).await.unwrap();
    let pg = kith_over(Arc::new(pg_store.clone()));
    let zed = pg
        .accounts()
        .register(NewAccount {
            username: "zed".into(),
            email: "zed@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let counts = row_counts(&pg_store).await;
    let err = migrate_data(&from, &to, 100).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::TargetNotEmpty { tables } if tables == &["accounts"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("already holds Kith data"), "{err}");
    assert_eq!(row_counts(&pg_store).await, counts);
    assert_eq!(pg.accounts().me(zed.id).await.unwrap(), zed);

    // A target filled by a first migration is refused the second time, and
    // the binary says why.
    let to = kith_postgres::testing::fresh_database_url().await;
    let report = migrate_data(&from, &to, 3).await.unwrap();
    assert_eq!(report.rows("accounts"), 6);
    let reported: Vec<&str> = report.tables.iter().map(|(table, _)| *table).collect();
    assert_eq!(reported, TABLES);
    let pg_store = PgStore::connect(&to).await.unwrap();
    let pg = kith_over(Arc::new(pg_store.clone()));
    let counts = row_counts(&pg_store).await;
    let seen = observe(&pg, &world).await;
    let output = run_binary(vec![
        "--from".into(),
        from.clone(),
        "--to".into(),
        to.clone(),
    ])
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already holds Kith data"), "{stderr}");
    assert_eq!(row_counts(&pg_store).await, counts);
    assert_eq!(observe(&pg, &world).await, seen);
    pg_store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let to = kith_postgres::testing::fresh_database_url().await;

    // A Kith database one migration behind.
    let old = dir.path().join("old.db");
    SqliteStore::open(sqlite_url(&old))
        .await
        .unwrap()
        .close()
        .await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&sqlite_url(&old))
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let err = migrate_data(&sqlite_url(&old), &to, 100).await.unwrap_err();
    assert!(matches!(err, MigrateError::SchemaVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("start the kith-server"), "{err}");

    // A SQLite file that is not Kith's.
    let other = dir.path().join("other.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "{}?mode=rwc",
        sqlite_url(&other)
    ))
    .await
    .unwrap();
    sqlx::query("CREATE TABLE notes (body TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let output = run_binary(vec![
        "--from".into(),
        other.display().to_string(),
        "--to".into(),
        to.clone(),
    ])
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a Kith database"), "{stderr}");

    // A missing file is not created.
    let missing = dir.path().join("missing.db");
    let err = migrate_data(&sqlite_url(&missing), &to, 100)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Source(_)), "{err:?}");
    assert!(!missing.exists());

    // The target was left empty.
    let pg_store = PgStore::connect(&to).await.unwrap();
    assert!(row_counts(&pg_store).await.iter().all(|(_, n)| *n == 0));
    pg_store.close().await;
}
