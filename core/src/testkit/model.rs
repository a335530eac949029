//! The model-based test: random sequences of graph, chat and post
//! operations by several users are applied both to [`Kith`] and to a small
//! in-memory reference model. After every step the call's result, the
//! events emitted and the observable state (friends, requests,
//! conversations, members, messages, seqs, versions, unread counts,
//! changes, and which posts each viewer, anonymous included, sees in each
//! timeline and by id) must agree.
//!
//! The model re-states Kith's rules in the plainest possible form; where the
//! two disagree, proptest shrinks the sequence to a minimal failing one.
//! Backends run it through [`conformance_tests!`](crate::conformance_tests)
//! with `PROPTEST_CASES` cases (default [`DEFAULT_CASES`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{
    Config as RunnerConfig, FileFailurePersistence, TestCaseError, TestError, TestRunner,
};

use crate::chat::{
    Change, Conversation, ConversationKind, ConversationSummary, DirectMessages, History, Member,
    MemberRole, Message, MessageReaction, NewGroup, NewMessage, ReactionKind, ReadState,
    UnreadCounts, UnreadEntry,
};
use crate::clock::Clock;
use crate::rate::Rate;
use crate::testkit::START;
use crate::{
    Argon2Hasher, Config, ConversationId, Delivery, Error, Event, FriendRequest,
    FriendRequestOutcome, Friendship, Kith, ManualClock, MessageId, NewPost, NewUser, Page, PostId,
    PostPatch, RecordingSink, Storage, Timestamp, UserId, Visibility,
};

/// Number of users in every run.
const USERS: usize = 4;
/// Cases per run unless `PROPTEST_CASES` says otherwise.
pub const DEFAULT_CASES: u32 = 24;
/// The send rate the model runs with: small, so that limits are hit.
const RATE: Rate = Rate::per_second(4, 1);
const TITLES: [&str; 3] = ["Team", "Crew", "   "];
const VISIBILITIES: [Visibility; 3] =
    [Visibility::Public, Visibility::Friends, Visibility::Private];

/// One operation; users, conversations and messages are indices resolved
/// against what exists when the operation runs.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Befriend {
        a: u8,
        b: u8,
    },
    Accept {
        a: u8,
        b: u8,
    },
    Unfriend {
        a: u8,
        b: u8,
    },
    Block {
        a: u8,
        b: u8,
    },
    Unblock {
        a: u8,
        b: u8,
    },
    OpenDirect {
        a: u8,
        b: u8,
    },
    CreateGroup {
        a: u8,
        members: Vec<u8>,
        title: u8,
    },
    Add {
        a: u8,
        c: u8,
        b: u8,
    },
    Remove {
        a: u8,
        c: u8,
        b: u8,
    },
    Leave {
        a: u8,
        c: u8,
    },
    SetRole {
        a: u8,
        c: u8,
        b: u8,
        admin: bool,
    },
    Rename {
        a: u8,
        c: u8,
        title: u8,
    },
    Send {
        a: u8,
        c: u8,
        client: u8,
        reply: Option<u8>,
    },
    Edit {
        a: u8,
        c: u8,
        m: u8,
    },
    Delete {
        a: u8,
        c: u8,
        m: u8,
    },
    React {
        a: u8,
        c: u8,
        m: u8,
        kind: Option<ReactionKind>,
    },
    Read {
        a: u8,
        c: u8,
        seq: u8,
    },
    Wait {
        ms: u16,
    },
    Post {
        a: u8,
        visibility: u8,
    },
    PostVisibility {
        a: u8,
        p: u8,
        visibility: u8,
    },
    DeletePost {
        a: u8,
        p: u8,
    },
}

fn user() -> impl Strategy<Value = u8> {
    0..USERS as u8
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop::option::of(prop::sample::select(ReactionKind::ALL.to_vec()));
    prop_oneof![
        3 => (user(), user()).prop_map(|(a, b)| Op::Befriend { a, b }),
        2 => (user(), user()).prop_map(|(a, b)| Op::Accept { a, b }),
        1 => (user(), user()).prop_map(|(a, b)| Op::Unfriend { a, b }),
        1 => (user(), user()).prop_map(|(a, b)| Op::Block { a, b }),
        1 => (user(), user()).prop_map(|(a, b)| Op::Unblock { a, b }),
        2 => (user(), user()).prop_map(|(a, b)| Op::OpenDirect { a, b }),
        2 => (user(), prop::collection::vec(user(), 0..4), 0..3u8)
            .prop_map(|(a, members, title)| Op::CreateGroup { a, members, title }),
        2 => (user(), any::<u8>(), user()).prop_map(|(a, c, b)| Op::Add { a, c, b }),
        1 => (user(), any::<u8>(), user()).prop_map(|(a, c, b)| Op::Remove { a, c, b }),
        1 => (user(), any::<u8>()).prop_map(|(a, c)| Op::Leave { a, c }),
        1 => (user(), any::<u8>(), user(), any::<bool>())
            .prop_map(|(a, c, b, admin)| Op::SetRole { a, c, b, admin }),
        1 => (user(), any::<u8>(), 0..3u8).prop_map(|(a, c, title)| Op::Rename { a, c, title }),
        8 => (user(), any::<u8>(), 0..12u8, prop::option::of(any::<u8>()))
            .prop_map(|(a, c, client, reply)| Op::Send { a, c, client, reply }),
        2 => (user(), any::<u8>(), any::<u8>()).prop_map(|(a, c, m)| Op::Edit { a, c, m }),
        2 => (user(), any::<u8>(), any::<u8>()).prop_map(|(a, c, m)| Op::Delete { a, c, m }),
        2 => (user(), any::<u8>(), any::<u8>(), kind)
            .prop_map(|(a, c, m, kind)| Op::React { a, c, m, kind }),
        2 => (user(), any::<u8>(), 0..8u8).prop_map(|(a, c, seq)| Op::Read { a, c, seq }),
        1 => (0..3000u16).prop_map(|ms| Op::Wait { ms }),
        3 => (user(), 0..3u8).prop_map(|(a, visibility)| Op::Post { a, visibility }),
        1 => (user(), any::<u8>(), 0..3u8)
            .prop_map(|(a, p, visibility)| Op::PostVisibility { a, p, visibility }),
        1 => (user(), any::<u8>()).prop_map(|(a, p)| Op::DeletePost { a, p }),
    ]
}

/// Sequences of 1 to 30 operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=30)
}

/// Runs the model-based test. `exec` runs [`check`] for one sequence on a
/// fresh backend (the backend's test supplies the async runtime) and returns
/// its verdict. Failures are shrunk, persisted next to `source_file` in
/// `proptest-regressions/`, and reported with the minimal sequence.
pub fn run(source_file: &'static str, exec: impl Fn(Vec<Op>) -> Result<(), String>) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = RunnerConfig {
        cases,
        source_file: Some(source_file),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&ops(), |ops| exec(ops).map_err(TestCaseError::fail)) {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("model and Kith disagree: {why}\nminimal sequence: {ops:#?}")
        }
        Err(e) => panic!("model-based test aborted: {e}"),
    }
}

/// What a call returned, in a comparable form.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An error, as [`err_key`] renders it.
    Err(String),
    /// `()`.
    Unit,
    /// From `send_friend_request`.
    Friend(FriendRequestOutcome),
    /// From `accept_friend_request`.
    Friendship(Friendship),
    /// A conversation.
    Conversation(Conversation),
    /// Members added.
    Members(Vec<Member>),
    /// A message.
    Message(Message),
    /// A read position.
    Read(ReadState),
    /// A post: its id, author and visibility.
    Post(PostId, UserId, Visibility),
    /// Post ids, in order.
    Posts(Vec<PostId>),
}

fn post_outcome(post: crate::Post) -> Outcome {
    Outcome::Post(post.id, post.author.id, post.visibility)
}

/// The comparable part of an error: its kind and the entity, reason, clash
/// or field it names.
pub fn err_key(e: &Error) -> String {
    match e {
        Error::NotFound(en) => format!("not_found:{en:?}"),
        Error::Forbidden(d) => format!("forbidden:{d:?}"),
        Error::Conflict(c) => format!("conflict:{c:?}"),
        Error::InvalidInput { field, .. } => format!("invalid_input:{field}"),
        Error::RateLimited { retry_after } => format!("rate_limited:{}", retry_after.as_millis()),
        other => format!("{}:{other}", other.code()),
    }
}

fn outcome<T>(r: crate::Result<T>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => Outcome::Err(err_key(&e)),
    }
}

/// Runs one sequence against a fresh `storage` and the model.
///
/// # Errors
/// A description of the first disagreement.
pub async fn check(storage: Arc<dyn Storage>, ops: Vec<Op>) -> Result<(), String> {
    let clock = Arc::new(ManualClock::new(START));
    let events = Arc::new(RecordingSink::new());
    let config = Config {
        direct_messages: DirectMessages::FriendsOnly,
        send_rate: Some(RATE),
        ..crate::testkit::config()
    };
    let kith = Kith::builder(storage)
        .clock(clock.clone())
        .sink(events.clone())
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .config(config)
        .build();
    let mut users = Vec::new();
    for i in 0..USERS {
        let account = kith
            .accounts()
            .create_user(NewUser {
                username: format!("user{i}"),
                email: None,
            })
            .await
            .map_err(|e| format!("setup: {e}"))?;
        users.push(account.id);
        clock.advance(Duration::from_millis(1));
    }
    events.take();
    let mut model = Model::new(users, clock.now());
    for (step, op) in ops.iter().enumerate() {
        let real = apply_real(&kith, &clock, &model, op).await;
        let real_events = events.take();
        let at = |what: String| format!("step {step} ({op:?}): {what}");
        let expected_events = model.apply(op, &real).map_err(at)?;
        if real_events != expected_events {
            return Err(at(format!(
                "events differ\n  kith:  {real_events:?}\n  model: {expected_events:?}"
            )));
        }
        compare_state(&kith, &model).await.map_err(at)?;
    }
    Ok(())
}

async fn apply_real(kith: &Kith, clock: &ManualClock, model: &Model, op: &Op) -> Outcome {
    let u = |i: u8| model.users[i as usize];
    let (graph, chat) = (kith.graph(), kith.chat());
    match *op {
        Op::Befriend { a, b } => {
            outcome(graph.send_friend_request(u(a), u(b)).await, Outcome::Friend)
        }
        Op::Accept { a, b } => outcome(
            graph.accept_friend_request(u(a), u(b)).await,
            Outcome::Friendship,
        ),
        Op::Unfriend { a, b } => outcome(graph.unfriend(u(a), u(b)).await, |()| Outcome::Unit),
        Op::Block { a, b } => outcome(graph.block(u(a), u(b)).await, |()| Outcome::Unit),
        Op::Unblock { a, b } => outcome(graph.unblock(u(a), u(b)).await, |()| Outcome::Unit),
        Op::OpenDirect { a, b } => {
            outcome(chat.open_direct(u(a), u(b)).await, Outcome::Conversation)
        }
        Op::CreateGroup {
            a,
            ref members,
            title,
        } => {
            let input = NewGroup {
                title: TITLES[title as usize].into(),
                members: members.iter().map(|&m| u(m)).collect(),
            };
            outcome(chat.create_group(u(a), input).await, Outcome::Conversation)
        }
        Op::Add { a, c, b } => outcome(
            chat.add_members(u(a), model.conv_id(c), &[u(b)]).await,
            Outcome::Members,
        ),
        Op::Remove { a, c, b } => outcome(
            chat.remove_member(u(a), model.conv_id(c), u(b)).await,
            |()| Outcome::Unit,
        ),
        Op::Leave { a, c } => outcome(chat.leave(u(a), model.conv_id(c)).await, |()| Outcome::Unit),
        Op::SetRole { a, c, b, admin } => {
            let role = if admin {
                MemberRole::Admin
            } else {
                MemberRole::Member
            };
            outcome(
                chat.set_role(u(a), model.conv_id(c), u(b), role).await,
                |()| Outcome::Unit,
            )
        }
        Op::Rename { a, c, title } => outcome(
            chat.rename(u(a), model.conv_id(c), TITLES[title as usize])
                .await,
            Outcome::Conversation,
        ),
        Op::Send {
            a,
            c,
            client,
            reply,
        } => {
            let input = NewMessage {
                client_id: format!("c{client}"),
                body: body_of(client),
                reply_to: reply.map(|r| model.message_id(c, r)),
            };
            outcome(
                chat.send(u(a), model.conv_id(c), input).await,
                Outcome::Message,
            )
        }
        Op::Edit { a, c, m } => outcome(
            chat.edit(
                u(a),
                model.conv_id(c),
                model.message_id(c, m),
                &format!("edited {m}"),
            )
            .await,
            Outcome::Message,
        ),
        Op::Delete { a, c, m } => outcome(
            chat.delete(u(a), model.conv_id(c), model.message_id(c, m))
                .await
                .map(|u| u.message),
            Outcome::Message,
        ),
        Op::React { a, c, m, kind } => outcome(
            chat.react(u(a), model.conv_id(c), model.message_id(c, m), kind)
                .await
                .map(|u| u.message),
            Outcome::Message,
        ),
        Op::Read { a, c, seq } => outcome(
            chat.mark_read(u(a), model.conv_id(c), u64::from(seq)).await,
            Outcome::Read,
        ),
        Op::Wait { ms } => {
            clock.advance(Duration::from_millis(u64::from(ms)));
            Outcome::Unit
        }
        Op::Post { a, visibility } => {
            let post = NewPost {
                text: format!("post by {a}"),
                visibility: VISIBILITIES[visibility as usize],
                shared_id: None,
            };
            outcome(kith.posts().create(u(a), post).await, post_outcome)
        }
        Op::PostVisibility { a, p, visibility } => {
            let patch = PostPatch {
                text: None,
                visibility: Some(VISIBILITIES[visibility as usize]),
            };
            let edited = kith.posts().edit(u(a), model.post_id(p), patch).await;
            outcome(edited, post_outcome)
        }
        Op::DeletePost { a, p } => {
            outcome(kith.posts().delete(u(a), model.post_id(p)).await, |()| {
                Outcome::Unit
            })
        }
    }
}

/// Message bodies; one client id in twelve sends a blank (invalid) body.
fn body_of(client: u8) -> String {
    if client == 11 {
        "  ".into()
    } else {
        format!("hello {client}")
    }
}

/// Which posts each viewer (anonymous too) sees, by id and in each
/// author's timeline.
async fn compare_posts(kith: &Kith, model: &Model) -> Result<(), String> {
    let posts = kith.posts();
    let all = Page::with_limit(100);
    let mut viewers: Vec<Option<usize>> = vec![None];
    viewers.extend((0..model.users.len()).map(Some));
    for viewer in viewers {
        let as_user = viewer.map(|v| model.users[v]);
        for post in &model.posts {
            let real = outcome(posts.get(as_user, post.id).await, post_outcome);
            let expected = if !post.deleted && model.sees(viewer, post.author, post.visibility) {
                Outcome::Post(post.id, model.users[post.author], post.visibility)
            } else {
                Outcome::Err("not_found:Post".into())
            };
            if real != expected {
                return Err(format!(
                    "post as {viewer:?} differs\n  kith:  {real:?}\n  model: {expected:?}"
                ));
            }
        }
        for (author, &user) in model.users.iter().enumerate() {
            let listed = posts.timeline(as_user, user, &all).await;
            let real = outcome(listed, |page| {
                Outcome::Posts(page.items.iter().map(|p| p.id).collect())
            });
            let expected = model.timeline(viewer, author);
            if real != expected {
                return Err(format!(
                    "timeline of {author} as {viewer:?} differs\n  kith:  {real:?}\n  model: {expected:?}"
                ));
            }
        }
    }
    Ok(())
}

async fn compare_state(kith: &Kith, model: &Model) -> Result<(), String> {
    compare_posts(kith, model).await?;
    let (graph, chat) = (kith.graph(), kith.chat());
    let all = Page::with_limit(100);
    let differ = |what: &str, real: &dyn std::fmt::Debug, expected: &dyn std::fmt::Debug| {
        Err(format!(
            "{what} differ\n  kith:  {real:?}\n  model: {expected:?}"
        ))
    };
    for (i, &user) in model.users.iter().enumerate() {
        let friends: Vec<UserId> = graph
            .friends(user, user, None, &all)
            .await
            .map_err(|e| format!("friends: {e}"))?
            .items
            .iter()
            .map(|p| p.user.id)
            .collect();
        let expected = model.friends_of(i);
        if friends != expected {
            return differ("friends", &friends, &expected);
        }
        let incoming: BTreeSet<UserId> = graph
            .incoming_requests(user, &all)
            .await
            .map_err(|e| format!("incoming: {e}"))?
            .items
            .iter()
            .map(|r| r.request.from)
            .collect();
        let expected: BTreeSet<UserId> = model
            .requests
            .keys()
            .filter(|(_, to)| *to == i)
            .map(|&(from, _)| model.users[from])
            .collect();
        if incoming != expected {
            return differ("incoming requests", &incoming, &expected);
        }
        let unread = chat
            .unread(user)
            .await
            .map_err(|e| format!("unread: {e}"))?;
        let expected = model.unread(i);
        if unread != expected {
            return differ("unread counts", &unread, &expected);
        }
        let list = chat
            .conversations(user, &all)
            .await
            .map_err(|e| format!("conversations: {e}"))?
            .items;
        let expected = model.summaries(i);
        if list != expected {
            return differ("conversation list", &list, &expected);
        }
    }
    for conv in &model.convs {
        let id = conv.conversation.id;
        for (i, &user) in model.users.iter().enumerate() {
            let members = outcome(chat.members(user, id).await, Outcome::Members);
            let expected = if conv.members.contains_key(&i) {
                Outcome::Members(conv.members.values().cloned().collect())
            } else {
                Outcome::Err("not_found:Conversation".into())
            };
            if members != expected {
                return differ("members", &members, &expected);
            }
        }
        let Some(&reader) = conv.members.keys().next() else {
            continue;
        };
        let reader = model.users[reader];
        let real = chat
            .conversation(reader, id)
            .await
            .map_err(|e| format!("conversation: {e}"))?;
        if real != conv.conversation {
            return differ("conversation", &real, &conv.conversation);
        }
        let history = chat
            .history(reader, id, History::After(0), Some(100))
            .await
            .map_err(|e| format!("history: {e}"))?;
        if history.messages != conv.messages || history.more {
            return differ("history", &history, &conv.messages);
        }
        let changes = chat
            .changes_since(reader, id, 0, None)
            .await
            .map_err(|e| format!("changes: {e}"))?;
        let expected = conv.changes();
        if changes.changes != expected || changes.until != conv.conversation.version || changes.more
        {
            return differ("changes since 0", &changes, &expected);
        }
    }
    Ok(())
}

/// The reference model of one conversation.
struct MConv {
    conversation: Conversation,
    /// Current members by user index.
    members: BTreeMap<usize, Member>,
    /// Former members by user index, as they were when they left.
    former: BTreeMap<usize, Member>,
    /// The version of each user's latest membership change (not creation).
    member_versions: BTreeMap<usize, u64>,
    messages: Vec<Message>,
    title_version: u64,
}

impl MConv {
    fn bump(&mut self) -> u64 {
        self.conversation.version += 1;
        self.conversation.version
    }

    fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .messages
            .iter()
            .map(|m| Change::Message { message: m.clone() })
            .collect();
        for (&i, &version) in &self.member_versions {
            let (member, left) = match self.members.get(&i) {
                Some(m) => (m.clone(), false),
                None => match self.former.get(&i) {
                    Some(m) => (m.clone(), true),
                    None => continue,
                },
            };
            out.push(Change::Member {
                member,
                left,
                version,
            });
        }
        if self.title_version > 0 {
            out.push(Change::Renamed {
                title: self.conversation.title.clone().unwrap_or_default(),
                version: self.title_version,
            });
        }
        // Stable: members were pushed in user order within a version.
        out.sort_by_key(Change::version);
        out
    }

    fn recipients(&self, model: &Model) -> Vec<UserId> {
        self.members.keys().map(|&i| model.users[i]).collect()
    }
}

/// The reference model of one post.
struct MPost {
    id: PostId,
    author: usize,
    visibility: Visibility,
    deleted: bool,
}

/// The reference model.
struct Model {
    users: Vec<UserId>,
    now: Timestamp,
    friends: BTreeSet<(usize, usize)>,
    requests: BTreeMap<(usize, usize), FriendRequest>,
    blocks: BTreeSet<(usize, usize)>,
    convs: Vec<MConv>,
    client_ids: BTreeMap<(usize, String), (usize, usize)>,
    buckets: BTreeMap<usize, (u64, Timestamp)>,
    /// Every post ever created, oldest first (deleted ones stay, marked).
    posts: Vec<MPost>,
}

type Step = Result<(Outcome, Vec<Delivery>), String>;

fn fail(key: &str) -> Step {
    Ok((Outcome::Err(key.into()), Vec::new()))
}

fn quiet(outcome: Outcome) -> Step {
    Ok((outcome, Vec::new()))
}

fn told(outcome: Outcome, event: Event, recipients: Vec<UserId>) -> Step {
    Ok((outcome, vec![Delivery::new(event, recipients)]))
}

/// Takes the id of a newly created thing from Kith's result.
fn adopt<T>(
    real: &Outcome,
    what: &str,
    f: impl FnOnce(&Outcome) -> Option<T>,
) -> Result<T, String> {
    f(real).ok_or_else(|| format!("model expected a new {what}, kith returned {real:?}"))
}

impl Model {
    fn new(users: Vec<UserId>, now: Timestamp) -> Self {
        Self {
            users,
            now,
            friends: BTreeSet::new(),
            requests: BTreeMap::new(),
            blocks: BTreeSet::new(),
            convs: Vec::new(),
            client_ids: BTreeMap::new(),
            buckets: BTreeMap::new(),
            posts: Vec::new(),
        }
    }

    fn post_index(&self, p: u8) -> Option<usize> {
        (!self.posts.is_empty()).then(|| p as usize % self.posts.len())
    }

    fn post_id(&self, p: u8) -> PostId {
        self.post_index(p)
            .map_or(PostId::new(1), |i| self.posts[i].id)
    }

    /// Whether either of two users blocks the other.
    fn blocked(&self, a: usize, b: usize) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// The visibility rule, restated: the author sees everything; nobody
    /// sees across a block; public is for everyone, friends for friends.
    fn sees(&self, viewer: Option<usize>, author: usize, visibility: Visibility) -> bool {
        match viewer {
            None => visibility == Visibility::Public,
            Some(v) if v == author => true,
            Some(v) if self.blocked(v, author) => false,
            Some(v) => match visibility {
                Visibility::Public => true,
                Visibility::Friends => self.are_friends(v, author),
                Visibility::Private => false,
            },
        }
    }

    fn timeline(&self, viewer: Option<usize>, author: usize) -> Outcome {
        if viewer.is_some_and(|v| v != author && self.blocked(v, author)) {
            return Outcome::Err("not_found:User".into());
        }
        let ids = self
            .posts
            .iter()
            .rev()
            .filter(|p| p.author == author && !p.deleted)
            .filter(|p| self.sees(viewer, p.author, p.visibility))
            .map(|p| p.id)
            .collect();
        Outcome::Posts(ids)
    }

    /// The post `p` names, if `a` may see it and wrote it.
    fn authored(&self, a: usize, p: u8) -> Result<usize, &'static str> {
        let i = self.post_index(p).ok_or("not_found:Post")?;
        let post = &self.posts[i];
        if post.deleted || !self.sees(Some(a), post.author, post.visibility) {
            return Err("not_found:Post");
        }
        if post.author != a {
            return Err("forbidden:NotAuthor");
        }
        Ok(i)
    }

    fn post(&mut self, a: usize, visibility: Visibility, real: &Outcome) -> Step {
        let id = adopt(real, "post", |o| match o {
            Outcome::Post(id, _, _) => Some(*id),
            _ => None,
        })?;
        self.posts.push(MPost {
            id,
            author: a,
            visibility,
            deleted: false,
        });
        // Announced to the author, then (the model has no follows or
        // mutes) to the author's friends unless it is private, by id.
        let mut audience: Vec<UserId> = match visibility {
            Visibility::Private => Vec::new(),
            _ => self
                .friends
                .iter()
                .filter_map(|&(x, y)| match (x == a, y == a) {
                    (true, _) => Some(self.users[y]),
                    (_, true) => Some(self.users[x]),
                    _ => None,
                })
                .collect(),
        };
        audience.sort_unstable();
        let event = Event::PostCreated {
            post_id: id,
            author_id: self.users[a],
        };
        let recipients = std::iter::once(self.users[a]).chain(audience).collect();
        told(
            Outcome::Post(id, self.users[a], visibility),
            event,
            recipients,
        )
    }

    fn post_visibility(&mut self, a: usize, p: u8, visibility: Visibility) -> Step {
        let i = match self.authored(a, p) {
            Ok(i) => i,
            Err(key) => return fail(key),
        };
        self.posts[i].visibility = visibility;
        quiet(Outcome::Post(self.posts[i].id, self.users[a], visibility))
    }

    fn delete_post(&mut self, a: usize, p: u8) -> Step {
        let i = match self.authored(a, p) {
            Ok(i) => i,
            Err(key) => return fail(key),
        };
        self.posts[i].deleted = true;
        quiet(Outcome::Unit)
    }

    fn conv_index(&self, c: u8) -> Option<usize> {
        (!self.convs.is_empty()).then(|| c as usize % self.convs.len())
    }

    fn conv_id(&self, c: u8) -> ConversationId {
        self.conv_index(c)
            .map_or(ConversationId::new(1), |i| self.convs[i].conversation.id)
    }

    fn message_index(&self, c: u8, m: u8) -> Option<usize> {
        let conv = &self.convs[self.conv_index(c)?];
        (!conv.messages.is_empty()).then(|| m as usize % conv.messages.len())
    }

    fn message_id(&self, c: u8, m: u8) -> MessageId {
        match (self.conv_index(c), self.message_index(c, m)) {
            (Some(ci), Some(mi)) => self.convs[ci].messages[mi].id,
            _ => MessageId::new(1),
        }
    }

    fn are_friends(&self, a: usize, b: usize) -> bool {
        self.friends.contains(&(a.min(b), a.max(b)))
    }

    fn friends_of(&self, a: usize) -> Vec<UserId> {
        (0..self.users.len())
            .filter(|&b| self.are_friends(a, b))
            .map(|b| self.users[b])
            .collect()
    }

    fn unread(&self, a: usize) -> UnreadCounts {
        let mut counts = UnreadCounts::default();
        let mut per: Vec<UnreadEntry> = Vec::new();
        for conv in &self.convs {
            if let Some(m) = conv.members.get(&a) {
                let n = conv.conversation.last_seq - m.last_read_seq;
                if n > 0 {
                    counts.total += n;
                    per.push(UnreadEntry {
                        conversation_id: conv.conversation.id,
                        unread: n,
                    });
                }
            }
        }
        per.sort_by_key(|e| e.conversation_id);
        counts.conversations = per;
        counts
    }

    fn summaries(&self, a: usize) -> Vec<ConversationSummary> {
        let mut list: Vec<ConversationSummary> = self
            .convs
            .iter()
            .filter_map(|conv| {
                let me = conv.members.get(&a)?;
                Some(ConversationSummary {
                    conversation: conv.conversation.clone(),
                    last_message: conv.messages.last().cloned(),
                    last_read_seq: me.last_read_seq,
                    unread: conv.conversation.last_seq - me.last_read_seq,
                })
            })
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse((s.conversation.last_activity, s.conversation.id)));
        list
    }

    /// The token bucket of [`crate::Rate`], restated.
    fn take_token(&mut self, a: usize) -> Result<(), String> {
        let capacity = u64::from(RATE.burst) * 1000;
        let per_hour = u64::from(RATE.per_hour);
        let now = self.now;
        let (tokens, at) = self.buckets.get(&a).copied().unwrap_or((capacity, now));
        let elapsed = (now.as_millis() - at.as_millis()).max(0) as u64;
        let tokens = (tokens + elapsed * per_hour / 3600).min(capacity);
        if tokens < 1000 {
            let wait = ((1000 - tokens) * 3600).div_ceil(per_hour);
            return Err(format!("rate_limited:{wait}"));
        }
        self.buckets.insert(a, (tokens - 1000, now));
        Ok(())
    }

    fn apply(&mut self, op: &Op, real: &Outcome) -> Result<Vec<Delivery>, String> {
        let (expected, deliveries) = self.step(op, real)?;
        if &expected != real {
            return Err(format!(
                "results differ\n  kith:  {real:?}\n  model: {expected:?}"
            ));
        }
        Ok(deliveries)
    }

    fn step(&mut self, op: &Op, real: &Outcome) -> Step {
        let idx = |i: u8| i as usize;
        match *op {
            Op::Befriend { a, b } => self.befriend(idx(a), idx(b), real),
            Op::Accept { a, b } => self.accept(idx(a), idx(b)),
            Op::Unfriend { a, b } => self.unfriend(idx(a), idx(b)),
            Op::Block { a, b } => self.block(idx(a), idx(b)),
            Op::Unblock { a, b } => self.unblock(idx(a), idx(b)),
            Op::OpenDirect { a, b } => self.open_direct(idx(a), idx(b), real),
            Op::CreateGroup {
                a,
                ref members,
                title,
            } => {
                let members: Vec<usize> = members.iter().map(|&m| idx(m)).collect();
                self.create_group(idx(a), &members, TITLES[title as usize], real)
            }
            Op::Add { a, c, b } => self.add(idx(a), c, idx(b)),
            Op::Remove { a, c, b } => self.remove(idx(a), c, idx(b)),
            Op::Leave { a, c } => self.remove(idx(a), c, idx(a)),
            Op::SetRole { a, c, b, admin } => self.set_role(idx(a), c, idx(b), admin),
            Op::Rename { a, c, title } => self.rename(idx(a), c, TITLES[title as usize]),
            Op::Send {
                a,
                c,
                client,
                reply,
            } => self.send(idx(a), c, client, reply, real),
            Op::Edit { a, c, m } => self.edit(idx(a), c, m),
            Op::Delete { a, c, m } => self.delete(idx(a), c, m),
            Op::React { a, c, m, kind } => self.react(idx(a), c, m, kind),
            Op::Read { a, c, seq } => self.read(idx(a), c, u64::from(seq)),
            Op::Wait { ms } => {
                self.now = self.now.plus(Duration::from_millis(u64::from(ms)));
                quiet(Outcome::Unit)
            }
            Op::Post { a, visibility } => {
                self.post(idx(a), VISIBILITIES[visibility as usize], real)
            }
            Op::PostVisibility { a, p, visibility } => {
                self.post_visibility(idx(a), p, VISIBILITIES[visibility as usize])
            }
            Op::DeletePost { a, p } => self.delete_post(idx(a), p),
        }
    }

    fn befriend(&mut self, a: usize, b: usize, real: &Outcome) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        if self.blocks.contains(&(b, a)) {
            return fail("not_found:User");
        }
        if self.blocks.contains(&(a, b)) {
            return fail("forbidden:BlockedByActor");
        }
        if self.are_friends(a, b) {
            return fail("conflict:AlreadyFriends");
        }
        if self.requests.contains_key(&(b, a)) {
            let (outcome, deliveries) = self.accept(a, b)?;
            let Outcome::Friendship(friendship) = outcome else {
                return Err("model: auto-accept failed".into());
            };
            return Ok((
                Outcome::Friend(FriendRequestOutcome::Accepted { friendship }),
                deliveries,
            ));
        }
        if self.requests.contains_key(&(a, b)) {
            return fail("conflict:RequestPending");
        }
        let id = adopt(real, "friend request", |r| match r {
            Outcome::Friend(FriendRequestOutcome::Pending { request }) => Some(request.id),
            _ => None,
        })?;
        let request = FriendRequest {
            id,
            from: self.users[a],
            to: self.users[b],
            created_at: self.now,
        };
        self.requests.insert((a, b), request.clone());
        told(
            Outcome::Friend(FriendRequestOutcome::Pending {
                request: request.clone(),
            }),
            Event::FriendRequestSent { request },
            vec![self.users[a], self.users[b]],
        )
    }

    /// `a` accepts the request `b` sent.
    fn accept(&mut self, a: usize, b: usize) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        if self.requests.remove(&(b, a)).is_none() {
            return fail("not_found:FriendRequest");
        }
        self.requests.remove(&(a, b));
        self.friends.insert((a.min(b), a.max(b)));
        let friendship = Friendship {
            user: self.users[a],
            friend: self.users[b],
            since: self.now,
        };
        told(
            Outcome::Friendship(friendship.clone()),
            Event::FriendAdded { friendship },
            vec![self.users[a], self.users[b]],
        )
    }

    fn unfriend(&mut self, a: usize, b: usize) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        if !self.friends.remove(&(a.min(b), a.max(b))) {
            return fail("not_found:Friendship");
        }
        let (ua, ub) = (self.users[a], self.users[b]);
        told(
            Outcome::Unit,
            Event::FriendRemoved { by: ua, other: ub },
            vec![ua, ub],
        )
    }

    fn block(&mut self, a: usize, b: usize) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        let new = self.blocks.insert((a, b));
        self.friends.remove(&(a.min(b), a.max(b)));
        self.requests.remove(&(a, b));
        self.requests.remove(&(b, a));
        if !new {
            return quiet(Outcome::Unit);
        }
        let (ua, ub) = (self.users[a], self.users[b]);
        told(
            Outcome::Unit,
            Event::Blocked {
                blocker: ua,
                blocked: ub,
            },
            vec![ua],
        )
    }

    fn unblock(&mut self, a: usize, b: usize) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        if !self.blocks.remove(&(a, b)) {
            return quiet(Outcome::Unit);
        }
        let (ua, ub) = (self.users[a], self.users[b]);
        told(
            Outcome::Unit,
            Event::Unblocked {
                blocker: ua,
                blocked: ub,
            },
            vec![ua],
        )
    }

    /// Kith's direct-message rule, restated; `None` when allowed.
    fn message_denied(&self, a: usize, b: usize) -> Option<&'static str> {
        if self.blocks.contains(&(a, b)) {
            Some("forbidden:BlockedByActor")
        } else if self.blocks.contains(&(b, a)) {
            Some("forbidden:Unreachable")
        } else if !self.are_friends(a, b) {
            Some("forbidden:NotFriends")
        } else {
            None
        }
    }

    fn new_member(&self, i: usize, role: MemberRole, last_read_seq: u64) -> Member {
        Member {
            user_id: self.users[i],
            role,
            joined_at: self.now,
            last_read_seq,
        }
    }

    fn open_direct(&mut self, a: usize, b: usize, real: &Outcome) -> Step {
        if a == b {
            return fail("invalid_input:user_id");
        }
        if self.blocks.contains(&(b, a)) {
            return fail("not_found:User");
        }
        if let Some(denied) = self.message_denied(a, b) {
            return fail(denied);
        }
        if let Some(conv) = self.convs.iter().find(|c| {
            c.conversation.kind == ConversationKind::Direct
                && c.members.contains_key(&a)
                && c.members.contains_key(&b)
        }) {
            return quiet(Outcome::Conversation(conv.conversation.clone()));
        }
        let id = adopt(real, "conversation", |r| match r {
            Outcome::Conversation(c) => Some(c.id),
            _ => None,
        })?;
        let members: BTreeMap<usize, Member> = [a, b]
            .into_iter()
            .map(|i| (i, self.new_member(i, MemberRole::Member, 0)))
            .collect();
        self.create(id, ConversationKind::Direct, None, a, members)
    }

    fn create(
        &mut self,
        id: ConversationId,
        kind: ConversationKind,
        title: Option<String>,
        creator: usize,
        members: BTreeMap<usize, Member>,
    ) -> Step {
        let conversation = Conversation {
            id,
            kind,
            title,
            created_by: self.users[creator],
            created_at: self.now,
            last_seq: 0,
            version: 0,
            last_activity: self.now,
        };
        let conv = MConv {
            conversation: conversation.clone(),
            members,
            former: BTreeMap::new(),
            member_versions: BTreeMap::new(),
            messages: Vec::new(),
            title_version: 0,
        };
        let recipients = conv.recipients(self);
        let members = conv.members.values().cloned().collect();
        self.convs.push(conv);
        told(
            Outcome::Conversation(conversation.clone()),
            Event::ConversationCreated {
                conversation,
                members,
            },
            recipients,
        )
    }

    /// Kith's rule for adding `u` to a group by `a`; `None` when allowed.
    fn add_denied(&self, a: usize, u: usize) -> Option<&'static str> {
        if self.blocks.contains(&(u, a)) {
            Some("not_found:User")
        } else if self.blocks.contains(&(a, u)) {
            Some("forbidden:BlockedByActor")
        } else {
            None
        }
    }

    fn create_group(&mut self, a: usize, members: &[usize], title: &str, real: &Outcome) -> Step {
        let title = title.trim();
        if title.is_empty() {
            return fail("invalid_input:title");
        }
        let mut others: Vec<usize> = Vec::new();
        for &m in members {
            if m != a && !others.contains(&m) {
                others.push(m);
            }
        }
        if let Some(denied) = others.iter().find_map(|&u| self.add_denied(a, u)) {
            return fail(denied);
        }
        let id = adopt(real, "conversation", |r| match r {
            Outcome::Conversation(c) => Some(c.id),
            _ => None,
        })?;
        let mut map = BTreeMap::new();
        map.insert(a, self.new_member(a, MemberRole::Admin, 0));
        for &u in &others {
            map.insert(u, self.new_member(u, MemberRole::Member, 0));
        }
        self.create(id, ConversationKind::Group, Some(title.into()), a, map)
    }

    /// The conversation `c` if `a` is a current member of it.
    fn scene(&self, a: usize, c: u8) -> Result<usize, &'static str> {
        let ci = self.conv_index(c).ok_or("not_found:Conversation")?;
        if self.convs[ci].members.contains_key(&a) {
            Ok(ci)
        } else {
            Err("not_found:Conversation")
        }
    }

    fn require_admin(&self, ci: usize, a: usize) -> Result<(), &'static str> {
        let conv = &self.convs[ci];
        if conv.conversation.kind == ConversationKind::Direct {
            return Err("forbidden:DirectConversation");
        }
        match conv.members.get(&a) {
            Some(m) if m.role == MemberRole::Admin => Ok(()),
            _ => Err("forbidden:NotAdmin"),
        }
    }

    fn add(&mut self, a: usize, c: u8, b: usize) -> Step {
        let ci = match self
            .scene(a, c)
            .and_then(|ci| self.require_admin(ci, a).map(|()| ci))
        {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        if self.convs[ci].members.contains_key(&b) {
            return quiet(Outcome::Members(Vec::new()));
        }
        if let Some(denied) = self.add_denied(a, b) {
            return fail(denied);
        }
        let member = self.new_member(b, MemberRole::Member, self.convs[ci].conversation.last_seq);
        let mut recipients = self.convs[ci].recipients(self);
        recipients.push(self.users[b]);
        let by = self.users[a];
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        conv.former.remove(&b);
        conv.members.insert(b, member.clone());
        conv.member_versions.insert(b, version);
        told(
            Outcome::Members(vec![member.clone()]),
            Event::MembersAdded {
                conversation_id: conv.conversation.id,
                members: vec![member],
                by,
                version,
            },
            recipients,
        )
    }

    /// `a` removes `b` (or leaves, when `a == b`).
    fn remove(&mut self, a: usize, c: u8, b: usize) -> Step {
        let ci = match self.scene(a, c) {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        if a != b {
            if let Err(key) = self.require_admin(ci, a) {
                return fail(key);
            }
            if !self.convs[ci].members.contains_key(&b) {
                return fail("not_found:Member");
            }
        }
        if self.convs[ci].conversation.kind == ConversationKind::Direct {
            return fail("forbidden:DirectConversation");
        }
        let recipients = self.convs[ci].recipients(self);
        let (by, gone) = (self.users[a], self.users[b]);
        let conv = &mut self.convs[ci];
        let remaining: Vec<&Member> = conv
            .members
            .values()
            .filter(|m| m.user_id != gone)
            .collect();
        let promote = if remaining.iter().any(|m| m.role == MemberRole::Admin) {
            None
        } else {
            remaining
                .iter()
                .min_by_key(|m| (m.joined_at, m.user_id))
                .map(|m| m.user_id)
        };
        let version = conv.bump();
        if let Some(member) = conv.members.remove(&b) {
            conv.former.insert(b, member);
        }
        conv.member_versions.insert(b, version);
        if let Some(p) = promote {
            let pi = self.users.iter().position(|&u| u == p).unwrap_or_default();
            let conv = &mut self.convs[ci];
            if let Some(m) = conv.members.get_mut(&pi) {
                m.role = MemberRole::Admin;
            }
            conv.member_versions.insert(pi, version);
        }
        told(
            Outcome::Unit,
            Event::MemberRemoved {
                conversation_id: self.convs[ci].conversation.id,
                user_id: gone,
                by,
                promoted: promote,
                version,
            },
            recipients,
        )
    }

    fn set_role(&mut self, a: usize, c: u8, b: usize, admin: bool) -> Step {
        let ci = match self
            .scene(a, c)
            .and_then(|ci| self.require_admin(ci, a).map(|()| ci))
        {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        let role = if admin {
            MemberRole::Admin
        } else {
            MemberRole::Member
        };
        let conv = &self.convs[ci];
        let Some(target) = conv.members.get(&b) else {
            return fail("not_found:Member");
        };
        if target.role == role {
            return quiet(Outcome::Unit);
        }
        let admins = conv
            .members
            .values()
            .filter(|m| m.role == MemberRole::Admin)
            .count();
        if role == MemberRole::Member && admins == 1 {
            return fail("invalid_input:role");
        }
        let recipients = conv.recipients(self);
        let (by, user_id) = (self.users[a], self.users[b]);
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        if let Some(m) = conv.members.get_mut(&b) {
            m.role = role;
        }
        conv.member_versions.insert(b, version);
        told(
            Outcome::Unit,
            Event::MemberRoleChanged {
                conversation_id: conv.conversation.id,
                user_id,
                role,
                by,
                version,
            },
            recipients,
        )
    }

    fn rename(&mut self, a: usize, c: u8, title: &str) -> Step {
        let title = title.trim();
        if title.is_empty() {
            return fail("invalid_input:title");
        }
        let ci = match self
            .scene(a, c)
            .and_then(|ci| self.require_admin(ci, a).map(|()| ci))
        {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        let recipients = self.convs[ci].recipients(self);
        let by = self.users[a];
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        conv.conversation.title = Some(title.into());
        conv.title_version = version;
        told(
            Outcome::Conversation(conv.conversation.clone()),
            Event::ConversationRenamed {
                conversation_id: conv.conversation.id,
                title: title.into(),
                by,
                version,
            },
            recipients,
        )
    }

    fn send(&mut self, a: usize, c: u8, client: u8, reply: Option<u8>, real: &Outcome) -> Step {
        let body = body_of(client);
        if body.trim().is_empty() {
            return fail("invalid_input:body");
        }
        let ci = match self.scene(a, c) {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        let conv = &self.convs[ci];
        if conv.conversation.kind == ConversationKind::Direct {
            if let Some(&other) = conv.members.keys().find(|&&i| i != a) {
                if let Some(denied) = self.message_denied(a, other) {
                    return fail(denied);
                }
            }
        }
        let reply_to = match reply {
            None => None,
            Some(r) => match self.message_index(c, r) {
                Some(mi) => Some(self.convs[ci].messages[mi].id),
                None => return fail("invalid_input:reply_to"),
            },
        };
        let client_id = format!("c{client}");
        // A stored client id is answered without taking from the rate.
        if let Some(&(cj, mj)) = self.client_ids.get(&(a, client_id.clone())) {
            if cj != ci {
                return fail("conflict:ClientIdReused");
            }
            return quiet(Outcome::Message(self.convs[cj].messages[mj].clone()));
        }
        if let Err(key) = self.take_token(a) {
            return fail(&key);
        }
        let id = adopt(real, "message", |r| match r {
            Outcome::Message(m) => Some(m.id),
            _ => None,
        })?;
        let now = self.now;
        let sender = self.users[a];
        let recipients = self.convs[ci].recipients(self);
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        conv.conversation.last_seq += 1;
        conv.conversation.last_activity = now;
        let message = Message {
            id,
            conversation_id: conv.conversation.id,
            seq: conv.conversation.last_seq,
            version,
            sender,
            client_id: client_id.clone(),
            body: Some(body),
            reply_to,
            reactions: Vec::new(),
            created_at: now,
            edited_at: None,
            deleted_at: None,
        };
        if let Some(m) = conv.members.get_mut(&a) {
            m.last_read_seq = message.seq;
        }
        conv.messages.push(message.clone());
        self.client_ids
            .insert((a, client_id), (ci, conv.messages.len() - 1));
        told(
            Outcome::Message(message.clone()),
            Event::MessageCreated { message },
            recipients,
        )
    }

    /// The message `m` of the scene, if `a` sent it.
    fn own_message(&self, a: usize, c: u8, m: u8) -> Result<(usize, usize), &'static str> {
        let ci = self.scene(a, c)?;
        let mi = self.message_index(c, m).ok_or("not_found:Message")?;
        if self.convs[ci].messages[mi].sender != self.users[a] {
            return Err("forbidden:NotSender");
        }
        Ok((ci, mi))
    }

    fn edit(&mut self, a: usize, c: u8, m: u8) -> Step {
        let (ci, mi) = match self.own_message(a, c, m) {
            Ok(found) => found,
            Err(key) => return fail(key),
        };
        if self.convs[ci].messages[mi].deleted_at.is_some() {
            return fail("not_found:Message");
        }
        let recipients = self.convs[ci].recipients(self);
        let now = self.now;
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        let message = &mut conv.messages[mi];
        message.body = Some(format!("edited {m}"));
        message.edited_at = Some(now);
        message.version = version;
        let message = message.clone();
        told(
            Outcome::Message(message.clone()),
            Event::MessageEdited { message },
            recipients,
        )
    }

    fn delete(&mut self, a: usize, c: u8, m: u8) -> Step {
        let (ci, mi) = match self.own_message(a, c, m) {
            Ok(found) => found,
            Err(key) => return fail(key),
        };
        if self.convs[ci].messages[mi].deleted_at.is_some() {
            return quiet(Outcome::Message(self.convs[ci].messages[mi].clone()));
        }
        let recipients = self.convs[ci].recipients(self);
        let now = self.now;
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        let message = &mut conv.messages[mi];
        message.body = None;
        message.reactions.clear();
        message.deleted_at = Some(now);
        message.version = version;
        let message = message.clone();
        told(
            Outcome::Message(message.clone()),
            Event::MessageDeleted { message },
            recipients,
        )
    }

    fn react(&mut self, a: usize, c: u8, m: u8, kind: Option<ReactionKind>) -> Step {
        let ci = match self.scene(a, c) {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        let Some(mi) = self.message_index(c, m) else {
            return fail("not_found:Message");
        };
        let user_id = self.users[a];
        let message = &self.convs[ci].messages[mi];
        if message.deleted_at.is_some() {
            return fail("not_found:Message");
        }
        let current = message
            .reactions
            .iter()
            .find(|r| r.user_id == user_id)
            .map(|r| r.kind);
        if current == kind {
            return quiet(Outcome::Message(message.clone()));
        }
        let recipients = self.convs[ci].recipients(self);
        let conv = &mut self.convs[ci];
        let version = conv.bump();
        let message = &mut conv.messages[mi];
        message.reactions.retain(|r| r.user_id != user_id);
        if let Some(kind) = kind {
            message.reactions.push(MessageReaction { user_id, kind });
            message.reactions.sort_by_key(|r| r.user_id);
        }
        message.version = version;
        let message = message.clone();
        told(
            Outcome::Message(message.clone()),
            Event::ReactionChanged {
                message,
                user_id,
                kind,
            },
            recipients,
        )
    }

    fn read(&mut self, a: usize, c: u8, seq: u64) -> Step {
        let ci = match self.scene(a, c) {
            Ok(ci) => ci,
            Err(key) => return fail(key),
        };
        let recipients = self.convs[ci].recipients(self);
        let user_id = self.users[a];
        let conv = &mut self.convs[ci];
        let last_seq = conv.conversation.last_seq;
        if seq > last_seq {
            return fail("invalid_input:seq");
        }
        let Some(me) = conv.members.get_mut(&a) else {
            return fail("not_found:Conversation");
        };
        let before = me.last_read_seq;
        me.last_read_seq = before.max(seq);
        let state = ReadState {
            conversation_id: conv.conversation.id,
            last_read_seq: me.last_read_seq,
            unread: last_seq - me.last_read_seq,
            changed: me.last_read_seq > before,
        };
        if state.last_read_seq == before {
            return quiet(Outcome::Read(state));
        }
        told(
            Outcome::Read(state),
            Event::ReadUpdated {
                conversation_id: state.conversation_id,
                user_id,
                last_read_seq: state.last_read_seq,
            },
            recipients,
        )
    }
}
