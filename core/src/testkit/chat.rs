//! Conformance cases for chat: the helpers every chat area shares, direct
//! conversations, what non-members see, read state, the conversation list,
//! the send rate limit and concurrent sends. Groups are in
//! [`super::chat_groups`], messages, history and resuming in
//! [`super::chat_messages`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use futures::FutureExt;

use crate::testkit::blocks::block;
use crate::testkit::graph::ids;
use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, Refusal, NO_USER};
use crate::{
    Appended, Clock, Config, Conversation, ConversationId, ConversationKind, ConversationSummary,
    Delivery, Denied, DirectMessages, Entity, Event, History, Member, MemberRole, Message,
    MessageId, NewGroup, NewMessage, NewMessageRecord, Page, Rate, ReactionKind, ReadState,
    Timestamp, UnreadCounts, UnreadEntry, UserId,
};

/// The fixture with its handle rebuilt over the default [`Config`] as
/// changed by `change`.
pub(crate) fn configured(f: Fixture, change: impl FnOnce(&mut Config)) -> Fixture {
    let mut config = crate::testkit::config();
    change(&mut config);
    f.reconfigure(config)
}

/// A message to send.
pub(crate) fn new_message(client_id: &str, body: &str) -> NewMessage {
    NewMessage {
        client_id: client_id.into(),
        body: body.into(),
        reply_to: None,
    }
}

/// A conversation as created at `at`, before any change to it.
pub(crate) fn created(
    id: ConversationId,
    kind: ConversationKind,
    title: Option<&str>,
    created_by: UserId,
    at: Timestamp,
) -> Conversation {
    Conversation {
        id,
        kind,
        title: title.map(Into::into),
        created_by,
        created_at: at,
        last_seq: 0,
        version: 0,
        last_activity: at,
    }
}

/// A member as the cases expect to see them.
pub(crate) fn member(user_id: UserId, role: MemberRole, joined_at: Timestamp, read: u64) -> Member {
    Member {
        user_id,
        role,
        joined_at,
        last_read_seq: read,
    }
}

/// Hands out client ids that no other helper-sent message uses.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// `sender` sends `body` with a fresh client id; discards the events.
pub(crate) async fn say(f: &Fixture, sender: UserId, id: ConversationId, body: &str) -> Message {
    let client_id = format!("c{}", NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed));
    let sent = f
        .kith
        .chat()
        .send(sender, id, new_message(&client_id, body))
        .await;
    let message = sent.unwrap_or_else(|e| panic!("sending {body:?}: {e}"));
    f.take_events();
    message
}

/// `sender` sends `n` messages, `m1` to `m<n>`, with [`say`].
pub(crate) async fn say_many(
    f: &Fixture,
    sender: UserId,
    id: ConversationId,
    n: usize,
) -> Vec<Message> {
    let mut sent = Vec::with_capacity(n);
    for i in 1..=n {
        sent.push(say(f, sender, id, &format!("m{i}")).await);
    }
    sent
}

/// Opens the direct conversation of `a` and `b`; discards the events.
pub(crate) async fn direct(f: &Fixture, a: UserId, b: UserId) -> Conversation {
    let opened = f.kith.chat().open_direct(a, b).await;
    let conversation = opened.unwrap_or_else(|e| panic!("opening a direct conversation: {e}"));
    f.take_events();
    conversation
}

/// `admin` creates the group "Team" with `members`; discards the events.
pub(crate) async fn group(f: &Fixture, admin: UserId, members: &[UserId]) -> Conversation {
    let input = NewGroup {
        title: "Team".into(),
        members: members.to_vec(),
    };
    let created = f.kith.chat().create_group(admin, input).await;
    let conversation = created.unwrap_or_else(|e| panic!("creating a group: {e}"));
    f.take_events();
    conversation
}

/// What a member sees of a conversation: the conversation, its members and
/// its whole history. Comparing it before and after a refused call shows
/// that nothing changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub conversation: Conversation,
    pub members: Vec<Member>,
    pub messages: Vec<Message>,
}

/// What `viewer` sees of conversation `id` (at most 100 messages).
pub(crate) async fn seen(f: &Fixture, viewer: UserId, id: ConversationId) -> Seen {
    let chat = f.kith.chat();
    let history = chat.history(viewer, id, History::Latest, Some(100)).await;
    let history = history.unwrap();
    assert!(!history.more, "more than 100 messages");
    Seen {
        conversation: chat.conversation(viewer, id).await.unwrap(),
        members: chat.members(viewer, id).await.unwrap(),
        messages: history.messages,
    }
}

/// Every conversation of `user`, most recently active first, read `limit`
/// at a time.
pub(crate) async fn conversations_of(
    f: &Fixture,
    user: UserId,
    limit: u32,
) -> Vec<ConversationSummary> {
    all_pages(limit, |page| async move {
        f.kith.chat().conversations(user, &page).await
    })
    .await
}

/// The ids of the conversations of `user`, most recently active first.
pub(crate) async fn conversation_ids(f: &Fixture, user: UserId) -> Vec<ConversationId> {
    let summaries = conversations_of(f, user, 100).await;
    summaries.iter().map(|s| s.conversation.id).collect()
}

/// The ids of `members`, in order.
pub(crate) fn member_ids(members: &[Member]) -> Vec<UserId> {
    members.iter().map(|m| m.user_id).collect()
}

/// The `seq`s of `messages`, in order.
pub(crate) fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Opening a direct conversation creates one per pair and tells both; either side opening again gets the same one.
pub async fn open_direct_creates_one_conversation_per_pair(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let chat = f.kith.chat();
    let now = f.clock.now();
    let opened = chat.open_direct(alice.id, bob.id).await.unwrap();
    let expected = created(opened.id, ConversationKind::Direct, None, alice.id, now);
    assert_eq!(opened, expected);
    let members = vec![
        member(alice.id, MemberRole::Member, now, 0),
        member(bob.id, MemberRole::Member, now, 0),
    ];
    let event = Event::ConversationCreated {
        conversation: expected.clone(),
        members: members.clone(),
    };
    f.assert_event(event, &[alice.id, bob.id]);
    f.tick();
    for (a, b) in [(alice.id, bob.id), (bob.id, alice.id)] {
        assert_eq!(chat.open_direct(a, b).await.unwrap(), expected);
        f.assert_no_events();
        let view = seen(&f, a, expected.id).await;
        assert_eq!(
            (view.conversation, view.members),
            (expected.clone(), members.clone())
        );
        assert_eq!(conversation_ids(&f, a).await, vec![expected.id]);
    }
    let other = chat.open_direct(carol.id, alice.id).await.unwrap();
    assert_ne!(other.id, expected.id);
    assert_eq!(f.take_events()[0].recipients, vec![alice.id, carol.id]);
    assert_eq!(conversation_ids(&f, bob.id).await, vec![expected.id]);
}

/// A direct conversation with oneself is invalid.
pub async fn open_direct_with_oneself_is_invalid(f: Fixture) {
    let alice = f.user("alice").await;
    let opened = f.kith.chat().open_direct(alice.id, alice.id).await;
    f.refuses(opened, Invalid("user_id"));
    assert!(conversation_ids(&f, alice.id).await.is_empty());
}

/// A direct conversation with an unknown or deleted user is not found.
pub async fn open_direct_with_unknown_or_deleted_user_is_not_found(f: Fixture) {
    let [alice, ghost] = f.users(["alice", "ghost"]).await;
    f.delete(&ghost).await;
    let chat = f.kith.chat();
    for other in [ghost.id, UserId::new(42)] {
        f.refuses(chat.open_direct(alice.id, other).await, NO_USER);
    }
    assert!(conversation_ids(&f, alice.id).await.is_empty());
}

/// Across a block, the blocked user does not find the blocker and the blocker is forbidden.
pub async fn open_direct_across_a_block_is_refused(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, bob.id, alice.id).await;
    let chat = f.kith.chat();
    f.refuses(chat.open_direct(alice.id, bob.id).await, NO_USER);
    f.refuses(
        chat.open_direct(bob.id, alice.id).await,
        Forbidden(Denied::BlockedByActor),
    );
    for user in [alice.id, bob.id] {
        assert!(conversation_ids(&f, user).await.is_empty());
    }
}

/// Under the friends-only policy only friends may open a direct conversation.
pub async fn open_direct_under_friends_only_needs_friendship(f: Fixture) {
    let f = configured(f, |c| c.direct_messages = DirectMessages::FriendsOnly);
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let chat = f.kith.chat();
    for (a, b) in [(alice.id, bob.id), (bob.id, alice.id)] {
        f.refuses(chat.open_direct(a, b).await, Forbidden(Denied::NotFriends));
        assert!(conversation_ids(&f, a).await.is_empty());
    }
    f.befriend(alice.id, bob.id).await;
    let opened = chat.open_direct(bob.id, alice.id).await.unwrap();
    assert_eq!(f.take_events()[0].recipients, vec![alice.id, bob.id]);
    let members = chat.members(alice.id, opened.id).await.unwrap();
    assert_eq!(member_ids(&members), vec![alice.id, bob.id]);
}

/// Asserts that each sender's message to conversation `id` is refused as
/// paired, changing nothing and telling nobody.
async fn assert_sends_refused(f: &Fixture, id: ConversationId, refusals: [(UserId, Refusal); 2]) {
    f.take_events();
    let viewer = refusals[0].0;
    let before = seen(f, viewer, id).await;
    for (sender, refusal) in refusals {
        let sent = f
            .kith
            .chat()
            .send(sender, id, new_message("c-x", "there?"))
            .await;
        f.refuses(sent, refusal);
        assert_eq!(seen(f, viewer, id).await, before);
    }
}

/// Once the other user blocks you, you cannot reach them and they may not message you: nothing is stored.
pub async fn send_in_direct_across_a_block_is_forbidden(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    say(&f, alice.id, pair.id, "hi").await;
    block(&f, bob.id, alice.id).await;
    let refusals = [
        (alice.id, Forbidden(Denied::Unreachable)),
        (bob.id, Forbidden(Denied::BlockedByActor)),
    ];
    assert_sends_refused(&f, pair.id, refusals).await;
    f.refuses(f.kith.chat().open_direct(alice.id, bob.id).await, NO_USER);
}

/// Under the friends-only policy, unfriending ends direct messages both ways.
pub async fn send_in_direct_after_unfriending_under_friends_only_is_forbidden(f: Fixture) {
    let f = configured(f, |c| c.direct_messages = DirectMessages::FriendsOnly);
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    let pair = direct(&f, alice.id, bob.id).await;
    say(&f, alice.id, pair.id, "friends").await;
    f.kith.graph().unfriend(bob.id, alice.id).await.unwrap();
    let refusals = [
        (alice.id, Forbidden(Denied::NotFriends)),
        (bob.id, Forbidden(Denied::NotFriends)),
    ];
    assert_sends_refused(&f, pair.id, refusals).await;
}

/// After unblocking, the two may message each other again.
pub async fn send_in_direct_after_unblocking_works_again(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let conversation = direct(&f, alice.id, bob.id).await;
    block(&f, alice.id, bob.id).await;
    f.kith.graph().unblock(alice.id, bob.id).await.unwrap();
    f.take_events();
    let first = say(&f, alice.id, conversation.id, "sorry").await;
    let second = say(&f, bob.id, conversation.id, "fine").await;
    assert_eq!(seqs(&[first, second]), vec![1, 2]);
    let reopened = f.kith.chat().open_direct(bob.id, alice.id).await.unwrap();
    assert_eq!(reopened.id, conversation.id);
}

/// After a block, neither side may change their old direct conversation or signal into it (edit, delete, react, type); both still read it and mark it read; nothing is stored or told.
pub async fn a_blocked_direct_conversation_is_read_only_for_both(f: Fixture) {
    let [alice, dave, carol] = f.users(["alice", "dave", "carol"]).await;
    let pair = direct(&f, alice.id, dave.id).await;
    let hers = say(&f, alice.id, pair.id, "hi").await;
    let his = say(&f, dave.id, pair.id, "yo").await;
    let team = group(&f, alice.id, &[dave.id, carol.id]).await;
    block(&f, alice.id, dave.id).await;
    let before = seen(&f, alice.id, pair.id).await;
    let chat = f.kith.chat();
    for (actor, own, other, refusal) in [
        (dave.id, &his, &hers, Forbidden(Denied::Unreachable)),
        (alice.id, &hers, &his, Forbidden(Denied::BlockedByActor)),
    ] {
        f.refuses(
            chat.edit(actor, pair.id, own.id, "changed").await,
            refusal.clone(),
        );
        f.refuses(chat.delete(actor, pair.id, own.id).await, refusal.clone());
        let like = Some(ReactionKind::Like);
        f.refuses(
            chat.react(actor, pair.id, other.id, like).await,
            refusal.clone(),
        );
        f.refuses(
            chat.react(actor, pair.id, own.id, None).await,
            refusal.clone(),
        );
        f.refuses(chat.typing(actor, pair.id).await, refusal);
        assert_eq!(seen(&f, actor, pair.id).await.messages, before.messages);
    }
    // Reading stays possible for both.
    let read = chat.mark_read(alice.id, pair.id, 2).await.unwrap();
    assert_eq!(read.last_read_seq, 2);
    f.take_events();
    // In a group both are in, nothing changes: its stream has no holes.
    let them = chat.typing(dave.id, team.id).await.unwrap();
    assert_eq!(them, vec![alice.id, carol.id]);
    let said = say(&f, dave.id, team.id, "still here").await;
    chat.edit(dave.id, team.id, said.id, "still here!")
        .await
        .unwrap();
}

/// `typing` names the other members to tell; a non-member is refused.
pub async fn typing_tells_the_other_members_only(f: Fixture) {
    let [alice, bob, carol, mallory] = f.users(["alice", "bob", "carol", "mallory"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let chat = f.kith.chat();
    assert_eq!(
        chat.typing(bob.id, team.id).await.unwrap(),
        vec![alice.id, carol.id]
    );
    let pair = direct(&f, alice.id, bob.id).await;
    assert_eq!(chat.typing(alice.id, pair.id).await.unwrap(), vec![bob.id]);
    f.refuses(
        chat.typing(mallory.id, team.id).await,
        NotFound(Entity::Conversation),
    );
}

/// Direct conversations cannot be renamed, left, added to or have members removed or promoted.
pub async fn direct_conversations_cannot_be_renamed_left_or_added_to(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let conversation = direct(&f, alice.id, bob.id).await;
    let id = conversation.id;
    let before = seen(&f, alice.id, id).await;
    let chat = f.kith.chat();
    let denied = || Forbidden(Denied::DirectConversation);
    f.refuses(chat.rename(alice.id, id, "Us").await, denied());
    f.refuses(chat.leave(bob.id, id).await, denied());
    f.refuses(chat.remove_member(bob.id, id, bob.id).await, denied());
    f.refuses(chat.add_members(alice.id, id, &[carol.id]).await, denied());
    f.refuses(chat.remove_member(alice.id, id, bob.id).await, denied());
    let promote = chat.set_role(alice.id, id, bob.id, MemberRole::Admin).await;
    f.refuses(promote, denied());
    assert_eq!(seen(&f, alice.id, id).await, before);
    assert!(conversation_ids(&f, carol.id).await.is_empty());
}

/// Someone who is not a member finds neither the conversation nor anything in it.
pub async fn chat_actions_by_a_non_member_are_not_found(f: Fixture) {
    let [alice, bob, dave] = f.users(["alice", "bob", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let message = say(&f, alice.id, team.id, "hello").await;
    let before = seen(&f, alice.id, team.id).await;
    let chat = f.kith.chat();
    let (d, m) = (dave.id, message.id);
    let gone = || NotFound(Entity::Conversation);
    for id in [team.id, ConversationId::new(42)] {
        f.refuses(chat.conversation(d, id).await, gone());
        f.refuses(chat.members(d, id).await, gone());
        f.refuses(chat.add_members(d, id, &[d]).await, gone());
        f.refuses(chat.remove_member(d, id, bob.id).await, gone());
        f.refuses(chat.leave(d, id).await, gone());
        let promote = chat.set_role(d, id, d, MemberRole::Admin).await;
        f.refuses(promote, gone());
        f.refuses(chat.rename(d, id, "Mine").await, gone());
        f.refuses(chat.send(d, id, new_message("c-1", "hi")).await, gone());
        f.refuses(chat.edit(d, id, m, "mine").await, gone());
        f.refuses(chat.delete(d, id, m).await, gone());
        let like = Some(ReactionKind::Like);
        f.refuses(chat.react(d, id, m, like).await, gone());
        f.refuses(chat.history(d, id, History::Latest, None).await, gone());
        f.refuses(chat.mark_read(d, id, 0).await, gone());
        f.refuses(chat.changes_since(d, id, 0, None).await, gone());
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
    assert!(conversation_ids(&f, d).await.is_empty());
    assert_eq!(chat.unread(d).await.unwrap(), UnreadCounts::default());
}

/// Marking read moves a member's read position forward only, telling every member when it moves.
pub async fn mark_read_moves_forward_only_and_tells_members(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let everyone = ids(&[&alice, &bob, &carol]);
    say_many(&f, alice.id, team.id, 3).await;
    let chat = f.kith.chat();
    let version = chat.conversation(bob.id, team.id).await.unwrap().version;
    let read = |last_read_seq, unread, changed| ReadState {
        conversation_id: team.id,
        last_read_seq,
        unread,
        changed,
    };
    assert_eq!(
        chat.mark_read(bob.id, team.id, 2).await.unwrap(),
        read(2, 1, true)
    );
    let receipt = |last_read_seq| Event::ReadUpdated {
        conversation_id: team.id,
        user_id: bob.id,
        last_read_seq,
    };
    f.assert_event(receipt(2), &everyone);
    let before = seen(&f, carol.id, team.id).await;
    // Read positions take no version.
    assert_eq!(before.conversation.version, version);
    assert_eq!(
        before.members[1],
        member(bob.id, MemberRole::Member, team.created_at, 2)
    );
    for seq in [0, 1, 2] {
        assert_eq!(
            chat.mark_read(bob.id, team.id, seq).await.unwrap(),
            read(2, 1, false)
        );
        f.assert_no_events();
    }
    assert_eq!(seen(&f, carol.id, team.id).await, before);
    assert_eq!(
        chat.mark_read(bob.id, team.id, 3).await.unwrap(),
        read(3, 0, true)
    );
    f.assert_event(receipt(3), &everyone);
    let members = chat.members(carol.id, team.id).await.unwrap();
    assert_eq!(members[1].last_read_seq, 3);
}

/// Marking read beyond the newest message is invalid and changes nothing.
pub async fn mark_read_beyond_the_newest_message_is_invalid(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let chat = f.kith.chat();
    f.refuses(chat.mark_read(bob.id, pair.id, 1).await, Invalid("seq"));
    say_many(&f, alice.id, pair.id, 2).await;
    let before = seen(&f, bob.id, pair.id).await;
    f.refuses(chat.mark_read(bob.id, pair.id, 3).await, Invalid("seq"));
    assert_eq!(seen(&f, bob.id, pair.id).await, before);
}

/// Sending advances the sender's own read position, so only the others' unread counts grow.
pub async fn send_advances_only_the_senders_read_position(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    say_many(&f, alice.id, team.id, 2).await;
    say(&f, bob.id, team.id, "me too").await;
    let chat = f.kith.chat();
    let reads: Vec<u64> = (chat.members(carol.id, team.id).await.unwrap())
        .iter()
        .map(|m| m.last_read_seq)
        .collect();
    assert_eq!(reads, vec![2, 3, 0]);
    for (user, unread) in [(alice.id, 1), (bob.id, 0), (carol.id, 3)] {
        let expected = UnreadCounts {
            total: unread,
            conversations: if unread == 0 {
                vec![]
            } else {
                vec![entry(team.id, unread)]
            },
        };
        assert_eq!(chat.unread(user).await.unwrap(), expected, "{user}");
    }
}

/// Unread counts are kept per conversation and in total; reading lowers them.
pub async fn unread_counts_per_conversation_and_in_total(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let pair = direct(&f, carol.id, bob.id).await;
    say_many(&f, alice.id, team.id, 3).await;
    say_many(&f, carol.id, pair.id, 2).await;
    let chat = f.kith.chat();
    let mut per_conversation = vec![entry(team.id, 3), entry(pair.id, 2)];
    per_conversation.sort_by_key(|e| e.conversation_id);
    let unread = chat.unread(bob.id).await.unwrap();
    assert_eq!(
        unread,
        UnreadCounts {
            total: 5,
            conversations: per_conversation
        }
    );
    assert_eq!(
        chat.unread(alice.id).await.unwrap(),
        UnreadCounts::default()
    );
    chat.mark_read(bob.id, team.id, 3).await.unwrap();
    let unread = chat.unread(bob.id).await.unwrap();
    assert_eq!(
        unread,
        UnreadCounts {
            total: 2,
            conversations: vec![entry(pair.id, 2)]
        }
    );
    let summaries = conversations_of(&f, bob.id, 20).await;
    let counts: Vec<_> = summaries
        .iter()
        .map(|s| (s.last_read_seq, s.unread))
        .collect();
    assert_eq!(counts, vec![(0, 2), (3, 0)]);
}

/// The conversation list is ordered by last activity, newest first, with the last message and unread count, in pages.
pub async fn conversations_are_listed_by_last_activity_in_pages(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let first = group(&f, alice.id, &[bob.id]).await;
    f.tick();
    let second = direct(&f, bob.id, carol.id).await;
    f.tick();
    let third = group(&f, carol.id, &[alice.id, bob.id]).await;
    f.tick();
    let hello = say(&f, alice.id, first.id, "hello").await;
    f.tick();
    say(&f, carol.id, second.id, "hi").await;
    f.tick();
    let hi_again = say(&f, carol.id, second.id, "hi again").await;
    let chat = f.kith.chat();
    let summary =
        async |user, id, last_message: Option<&Message>, read, unread| ConversationSummary {
            conversation: chat.conversation(user, id).await.unwrap(),
            last_message: last_message.cloned(),
            last_read_seq: read,
            unread,
        };
    let of_bob = vec![
        summary(bob.id, second.id, Some(&hi_again), 0, 2).await,
        summary(bob.id, first.id, Some(&hello), 0, 1).await,
        summary(bob.id, third.id, None, 0, 0).await,
    ];
    assert_eq!(of_bob[0].conversation.last_activity, hi_again.created_at);
    for limit in [1, 2, 3, 4] {
        assert_eq!(
            conversations_of(&f, bob.id, limit).await,
            of_bob,
            "limit {limit}"
        );
    }
    let of_alice = vec![
        summary(alice.id, first.id, Some(&hello), 1, 0).await,
        summary(alice.id, third.id, None, 0, 0).await,
    ];
    assert_eq!(conversations_of(&f, alice.id, 1).await, of_alice);
    let bad_cursor = chat
        .conversations(bob.id, &Page::after("nonsense", None))
        .await;
    f.refuses(bad_cursor, Invalid("cursor"));
    for limit in [0, 101] {
        let page = Page::with_limit(limit);
        f.refuses(chat.conversations(bob.id, &page).await, Invalid("limit"));
    }
}

/// A deleted message keeps its seq: it counts for unread, read positions and the list's preview.
pub async fn a_tombstone_still_counts_as_a_message(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let [_, two] = say_many(&f, alice.id, pair.id, 2).await.try_into().unwrap();
    let chat = f.kith.chat();
    let tombstone = chat
        .delete(alice.id, pair.id, two.id)
        .await
        .unwrap()
        .message;
    f.take_events();
    let unread = chat.unread(bob.id).await.unwrap();
    assert_eq!(unread.total, 2);
    let listed = conversations_of(&f, bob.id, 20).await;
    assert_eq!(listed[0].last_message, Some(tombstone));
    assert_eq!((listed[0].conversation.last_seq, listed[0].unread), (2, 2));
    let read = chat.mark_read(bob.id, pair.id, 2).await.unwrap();
    assert_eq!((read.last_read_seq, read.unread), (2, 0));
    f.take_events();
    assert_eq!(say(&f, bob.id, pair.id, "three").await.seq, 3);
}

/// Beyond the burst a sender is rate limited, storing and telling nothing, until time refills it; others are unaffected.
pub async fn sends_beyond_the_rate_are_limited_until_time_passes(f: Fixture) {
    let f = configured(f, |c| {
        c.send_rate = Some(Rate::per_second(3, 1));
    });
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    say_many(&f, alice.id, team.id, 3).await;
    let chat = f.kith.chat();
    let limited = || RateLimited(Duration::from_secs(1));
    let before = seen(&f, alice.id, team.id).await;
    let fourth = chat
        .send(alice.id, team.id, new_message("c-4", "four"))
        .await;
    f.refuses(fourth, limited());
    assert_eq!(seen(&f, alice.id, team.id).await, before);
    assert_eq!(say(&f, bob.id, team.id, "not me").await.seq, 4);
    f.clock.advance(Duration::from_secs(1));
    let fourth = chat
        .send(alice.id, team.id, new_message("c-4", "four"))
        .await;
    assert_eq!(fourth.unwrap().seq, 5);
    f.take_events();
    let fifth = chat
        .send(alice.id, team.id, new_message("c-5", "five"))
        .await;
    f.refuses(fifth, limited());
}

/// A retry of a stored client id returns the stored message and costs no send-rate token, even at the limit.
pub async fn a_retry_of_a_stored_message_costs_nothing_even_at_the_limit(f: Fixture) {
    let f = configured(f, |c| {
        c.send_rate = Some(Rate::per_second(2, 1));
    });
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let send = |client_id: &'static str| chat.send(alice.id, team.id, new_message(client_id, "hi"));
    let first = send("c-1").await.unwrap();
    let second = send("c-2").await.unwrap();
    f.take_events();
    // At the limit: the retry is answered with the original, nothing told.
    assert_eq!(send("c-1").await.unwrap(), first);
    f.assert_no_events();
    let limited = RateLimited(Duration::from_secs(1));
    f.refuses(send("c-3").await, limited.clone());
    // With one token back, a retry does not spend it.
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(send("c-2").await.unwrap(), second);
    f.assert_no_events();
    assert_eq!(send("c-3").await.unwrap().seq, 3);
    f.take_events();
    f.refuses(send("c-4").await, limited);
}

/// Without a send rate nobody is limited.
pub async fn send_rate_none_limits_nobody(f: Fixture) {
    let f = configured(f, |c| c.send_rate = None);
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let sent = say_many(&f, alice.id, pair.id, 30).await;
    assert_eq!(seqs(&sent), (1..=30).collect::<Vec<_>>());
}

/// Eight members sending at once all succeed with seqs 1 to 40 without gaps, and their events come out in order.
pub async fn concurrent_sends_get_gap_free_seqs_and_ordered_events(f: Fixture) {
    let names = [
        "user1", "user2", "user3", "user4", "user5", "user6", "user7", "user8",
    ];
    let users = f.users(names).await;
    let everyone: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let team = group(&f, everyone[0], &everyone).await;
    let chat = &f.kith.chat();
    let senders = users.iter().map(|user| async move {
        let mut sent = Vec::new();
        for i in 0..5 {
            let input = new_message(&format!("{}-{i}", user.username), "hi");
            let result = chat.send(user.id, team.id, input).await;
            sent.push(result.unwrap_or_else(|e| panic!("{} sending: {e}", user.username)));
        }
        sent
    });
    let sent = join_all(senders).await;
    for (user, messages) in users.iter().zip(&sent) {
        let own = seqs(messages);
        assert!(own.is_sorted(), "seqs of {}: {own:?}", user.username);
    }
    let mut all: Vec<u64> = sent.iter().flat_map(|m| seqs(m)).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
    let published: Vec<Message> = (f.take_events().into_iter())
        .map(|delivery| {
            assert_eq!(delivery.recipients, everyone);
            match delivery.event {
                Event::MessageCreated { message } => message,
                other => panic!("expected a new message, got {other:?}"),
            }
        })
        .collect();
    assert_eq!(seqs(&published), (1..=40).collect::<Vec<_>>());
    let versions: Vec<u64> = published.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=40).collect::<Vec<_>>());
    assert_eq!(seen(&f, everyone[7], team.id).await.messages, published);
}

/// Concurrent retries of one client id store exactly one message, told once.
pub async fn concurrent_retries_of_one_client_id_store_one_message(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let retries = (0..8).map(|_| chat.send(alice.id, team.id, new_message("c-1", "hello")));
    let results = join_all(retries).await;
    let first = results[0].as_ref().unwrap().clone();
    for result in results {
        assert_eq!(result.unwrap(), first);
    }
    assert_eq!(first.seq, 1);
    assert_eq!(
        seen(&f, bob.id, team.id).await.messages,
        vec![first.clone()]
    );
    let created = Event::MessageCreated { message: first };
    f.assert_event(created, &[alice.id, bob.id]);
}

/// A message sent while members are removed and added is told to exactly the members at its version.
pub async fn concurrent_send_and_membership_changes_tell_the_members_at_each_version(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let (chat, newcomers) = (f.kith.chat(), [dave.id]);
    let (sent, removed, added) = futures::join!(
        chat.send(carol.id, team.id, new_message("c-1", "hi")),
        chat.remove_member(alice.id, team.id, bob.id),
        chat.add_members(alice.id, team.id, &newcomers),
    );
    let (message, ..) = (sent.unwrap(), removed.unwrap(), added.unwrap());
    let mut members = ids(&[&alice, &bob, &carol]);
    let mut versions = Vec::new();
    for delivery in f.take_events() {
        let (before, version) = (members.clone(), change_version(&delivery.event));
        match &delivery.event {
            Event::MessageCreated { .. } => {}
            Event::MemberRemoved { user_id, .. } => members.retain(|u| u != user_id),
            Event::MembersAdded { members: new, .. } => members.extend(member_ids(new)),
            other => panic!("unexpected event {other:?}"),
        }
        let told = if matches!(delivery.event, Event::MembersAdded { .. }) {
            members.clone()
        } else {
            before
        };
        assert_eq!(delivery.recipients, told, "{:?}", delivery.event);
        members.sort();
        versions.push(version);
    }
    assert_eq!(versions, vec![1, 2, 3]);
    assert!(versions.contains(&message.version));
}

/// The conversation version an event reports.
fn change_version(event: &Event) -> u64 {
    match event {
        Event::MessageCreated { message } => message.version,
        Event::MemberRemoved { version, .. } | Event::MembersAdded { version, .. } => *version,
        other => panic!("no version in {other:?}"),
    }
}

/// An unread entry, for comparisons.
pub(crate) fn entry(conversation_id: ConversationId, unread: u64) -> UnreadEntry {
    UnreadEntry {
        conversation_id,
        unread,
    }
}

/// A created message as the events report it.
fn created_message(delivery: Delivery) -> Message {
    match delivery.event {
        Event::MessageCreated { message } => message,
        other => panic!("expected a new message, got {other:?}"),
    }
}

/// Sends made one after the other without awaiting are stored in the order of the calls, whatever order they are awaited in, each with its own outcome.
pub async fn sends_queued_together_keep_call_order_and_their_own_outcomes(f: Fixture) {
    let [alice, bob, mallory] = f.users(["alice", "bob", "mallory"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let bad_reply = NewMessage {
        reply_to: Some(MessageId::new(42)),
        ..new_message("a-2", "replying to nothing")
    };
    let calls = vec![
        chat.send(alice.id, team.id, new_message("a-1", "one")),
        chat.send(mallory.id, team.id, new_message("m-1", "intruder")),
        chat.send(bob.id, team.id, new_message("b-1", "two")),
        chat.send(alice.id, team.id, new_message("a-1", "retry of one")),
        chat.send(alice.id, team.id, bad_reply),
        chat.send(bob.id, team.id, new_message("b-2", "three")),
    ];
    let mut results = Vec::new();
    for call in calls.into_iter().rev() {
        results.push(call.await);
    }
    results.reverse();
    let mut results = results.into_iter();
    let mut next = || results.next().unwrap_or_else(|| panic!("six results"));
    let one = next().unwrap();
    assert_eq!(refusal(next()), NotFound(Entity::Conversation));
    let two = next().unwrap();
    assert_eq!(next().unwrap(), one);
    assert_eq!(refusal(next()), Invalid("reply_to"));
    let three = next().unwrap();
    let stored = vec![one, two, three];
    assert_eq!(seqs(&stored), [1, 2, 3]);
    let bodies: Vec<_> = stored.iter().map(|m| m.body.as_deref()).collect();
    assert_eq!(bodies, [Some("one"), Some("two"), Some("three")]);
    let published: Vec<Message> = f.take_events().into_iter().map(created_message).collect();
    assert_eq!(published, stored);
    assert_eq!(seen(&f, bob.id, team.id).await.messages, stored);
}

/// A send whose future is dropped before it ran is withdrawn: nothing is stored or told, and its client id stays free.
pub async fn a_send_dropped_before_it_runs_is_withdrawn(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    drop(chat.send(alice.id, team.id, new_message("c-1", "never")));
    let kept = chat.send(alice.id, team.id, new_message("c-2", "kept"));
    let kept = kept.await.unwrap();
    assert_eq!(kept.seq, 1);
    f.assert_event(
        Event::MessageCreated {
            message: kept.clone(),
        },
        &[alice.id, bob.id],
    );
    let reused = chat.send(alice.id, team.id, new_message("c-1", "now"));
    let reused = reused.await.unwrap();
    assert_eq!((reused.seq, reused.body.as_deref()), (2, Some("now")));
    f.take_events();
    assert_eq!(seen(&f, bob.id, team.id).await.messages, vec![kept, reused]);
}

/// With a spawner, dropping the future that took a batch does not stop it: every send of the batch is stored, published and answered.
pub async fn a_batch_runs_to_the_end_when_the_future_that_took_it_is_dropped(f: Fixture) {
    let f = f.spawning();
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let mut first = Box::pin(chat.send(alice.id, team.id, new_message("c-1", "one")));
    let second = chat.send(bob.id, team.id, new_message("c-2", "two"));
    // Polled once, the first send takes the lane and the batch of both,
    // which cannot be stored within one poll; then its caller goes away.
    assert!((&mut first).now_or_never().is_none());
    drop(first);
    let second = second.await.unwrap();
    assert_eq!(second.seq, 2);
    let stored = seen(&f, bob.id, team.id).await.messages;
    assert_eq!(seqs(&stored), vec![1, 2]);
    assert_eq!(stored[0].client_id, "c-1");
    let published: Vec<Message> = f
        .take_events()
        .into_iter()
        .filter_map(|d| match d.event {
            Event::MessageCreated { message } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(published, stored);
}

/// The store takes each new message's token from its sender's stored bucket, in the transaction that stores it: in a batch, one by one, and across calls; a retry of a stored message takes nothing.
pub async fn append_takes_the_senders_rate_from_the_stored_bucket(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let store = f.kith.storage();
    let rate = Some(Rate::per_second(2, 1));
    let at = f.clock.now();
    let record = |id: u64, sender: UserId, client_id: &str, ms: i64| NewMessageRecord {
        id: MessageId::new(id),
        conversation_id: team.id,
        sender,
        client_id: client_id.into(),
        body: format!("body {id}"),
        reply_to: None,
        created_at: Timestamp::from_millis(at.as_millis() + ms),
        rate,
    };
    let outcomes = store
        .append_messages(&[
            record(9_001, alice.id, "r-1", 0),
            record(9_002, alice.id, "r-2", 0),
            record(9_003, alice.id, "r-1", 0),
            record(9_004, alice.id, "r-3", 0),
            record(9_005, bob.id, "r-1", 0),
        ])
        .await
        .unwrap();
    let kinds: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(Appended::Created(m)) => format!("created {}", m.seq),
            Ok(Appended::Existing(m)) => format!("existing {}", m.seq),
            Err(e) => format!("{e:?}"),
        })
        .collect();
    let limited = format!(
        "{:?}",
        crate::Error::RateLimited {
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!(
        kinds,
        [
            "created 1",
            "created 2",
            "existing 1",
            limited.as_str(),
            "created 3"
        ]
    );
    // Another call sees the same bucket: still empty half a second later...
    let later = store
        .append_message(&record(9_006, alice.id, "r-3", 500))
        .await;
    assert!(
        matches!(later, Err(crate::Error::RateLimited { .. })),
        "{later:?}"
    );
    // ...and a retry of a stored message still takes nothing.
    let retry = store
        .append_message(&record(9_007, alice.id, "r-2", 500))
        .await;
    assert!(matches!(retry, Ok(Appended::Existing(_))), "{retry:?}");
    // A second after the burst one token is back.
    let refilled = store
        .append_message(&record(9_008, alice.id, "r-3", 1_000))
        .await;
    assert!(matches!(refilled, Ok(Appended::Created(_))), "{refilled:?}");
    let again = store
        .append_message(&record(9_009, alice.id, "r-4", 1_000))
        .await;
    assert!(
        matches!(again, Err(crate::Error::RateLimited { .. })),
        "{again:?}"
    );
}

/// The store's `append_messages` gives each message the outcome it would have had alone at its place in the sequence.
pub async fn append_messages_gives_each_message_its_own_outcome(f: Fixture) {
    let [alice, bob, mallory] = f.users(["alice", "bob", "mallory"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let at = f.clock.now();
    let record =
        |id: u64, sender: UserId, client_id: &str, reply_to: Option<u64>| NewMessageRecord {
            id: MessageId::new(id),
            conversation_id: team.id,
            sender,
            client_id: client_id.into(),
            body: format!("body {id}"),
            reply_to: reply_to.map(MessageId::new),
            created_at: at,
            rate: None,
        };
    let records = [
        record(9_001, alice.id, "c-1", None),
        record(9_002, mallory.id, "c-1", None),
        record(9_003, alice.id, "c-1", None),
        record(9_004, bob.id, "c-1", Some(9_001)),
        record(9_005, alice.id, "c-2", None),
    ];
    let outcomes = f.kith.storage().append_messages(&records).await.unwrap();
    assert_eq!(outcomes.len(), 5);
    let mut outcomes = outcomes.into_iter();
    let mut next = || outcomes.next().unwrap_or_else(|| panic!("five outcomes"));
    let Appended::Created(first) = next().unwrap() else {
        panic!("the first message is created")
    };
    assert_eq!(
        (first.id, first.seq, first.version),
        (MessageId::new(9_001), 1, 1)
    );
    assert_eq!(refusal(next()), NotFound(Entity::Conversation));
    assert_eq!(next().unwrap(), Appended::Existing(first.clone()));
    let Appended::Created(reply) = next().unwrap() else {
        panic!("bob's message is created")
    };
    assert_eq!((reply.seq, reply.reply_to), (2, Some(first.id)));
    let Appended::Created(last) = next().unwrap() else {
        panic!("alice's second message is created")
    };
    assert_eq!((last.seq, last.version, last.sender), (3, 3, alice.id));
    let view = seen(&f, bob.id, team.id).await;
    assert_eq!(view.messages, vec![first, reply, last]);
    assert_eq!(
        (view.conversation.last_seq, view.conversation.version),
        (3, 3)
    );
    let empty = f.kith.storage().append_messages(&[]).await.unwrap();
    assert!(empty.is_empty());
}
