//! Conformance cases for the one reaction model: reactions to posts and to
//! chat messages through `kith.reactions()`, counts, who reacted, and who
//! may react and read them.

use crate::testkit::blocks::block;
use crate::testkit::chat::{group, say};
use crate::testkit::posts::{cast, post};
use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, Refusal};
use crate::{
    Entity, Event, Message, Page, PostId, ReactionCount, ReactionKind, ReactionSummary,
    ReactionTarget, UserId, Visibility,
};

const NO_POST: Refusal = NotFound(Entity::Post);

fn on_post(post_id: PostId) -> ReactionTarget {
    ReactionTarget::Post { post_id }
}

fn on_message(message: &Message) -> ReactionTarget {
    ReactionTarget::Message {
        conversation_id: message.conversation_id,
        message_id: message.id,
    }
}

/// Every reaction to `target` as `viewer` sees them, `limit` at a time:
/// `(user, kind)` in user order.
pub(crate) async fn who_of(
    f: &Fixture,
    viewer: Option<UserId>,
    target: ReactionTarget,
    kind: Option<ReactionKind>,
    limit: u32,
) -> Vec<(UserId, ReactionKind)> {
    let reactions = all_pages(limit, |page| async move {
        f.kith.reactions().who(viewer, target, kind, &page).await
    })
    .await;
    reactions.into_iter().map(|r| (r.user.id, r.kind)).collect()
}

fn summary(counts: &[(ReactionKind, u64)], mine: Option<ReactionKind>) -> ReactionSummary {
    ReactionSummary {
        counts: counts
            .iter()
            .map(|&(kind, count)| ReactionCount { kind, count })
            .collect(),
        total: counts.iter().map(|(_, n)| n).sum(),
        mine,
    }
}

/// A user has at most one reaction per post: setting another kind replaces
/// it, setting the same changes nothing, none removes it; counts per kind,
/// the viewer's own, and who reacted (of a kind, or any) follow.
pub async fn post_reactions_are_set_replaced_and_removed(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let target = on_post(post(&f, alice.id, "hi", Visibility::Public).await.id);
    let r = f.kith.reactions();
    let (like, love) = (ReactionKind::Like, ReactionKind::Love);
    let set = r.set(bob.id, target, Some(like)).await.unwrap();
    assert_eq!(set, summary(&[(like, 1)], Some(like)));
    let set = r.set(bob.id, target, Some(love)).await.unwrap();
    assert_eq!(set, summary(&[(love, 1)], Some(love)));
    r.set(carol.id, target, Some(like)).await.unwrap();
    let again = r.set(carol.id, target, Some(like)).await.unwrap();
    assert_eq!(again, summary(&[(like, 1), (love, 1)], Some(like)));
    r.set(alice.id, target, Some(love)).await.unwrap();
    let seen = r.summary(None, target).await.unwrap();
    assert_eq!(seen, summary(&[(like, 1), (love, 2)], None));
    let everyone = who_of(&f, None, target, None, 1).await;
    assert_eq!(
        everyone,
        vec![(alice.id, love), (bob.id, love), (carol.id, like)]
    );
    let loves = who_of(&f, Some(carol.id), target, Some(love), 1).await;
    assert_eq!(loves, vec![(alice.id, love), (bob.id, love)]);
    let removed = r.set(bob.id, target, None).await.unwrap();
    assert_eq!(removed, summary(&[(like, 1), (love, 1)], None));
    let none_again = r.set(bob.id, target, None).await.unwrap();
    assert_eq!(none_again, removed);
    assert!(who_of(&f, None, target, Some(ReactionKind::Sad), 5)
        .await
        .is_empty());
    f.assert_no_events();
}

/// A chat message's reaction set through `kith.reactions()` goes through
/// chat: the conversation's next version and the members' live event; the
/// summary and who reacted have the same shape as a post's. Only members
/// may react or read them.
pub async fn message_reactions_go_through_chat(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let news = say(&f, alice.id, team.id, "news").await;
    let target = on_message(&news);
    let r = f.kith.reactions();
    let like = ReactionKind::Like;
    let set = r.set(bob.id, target, Some(like)).await.unwrap();
    assert_eq!(set, summary(&[(like, 1)], Some(like)));
    let events = f.take_events();
    assert_eq!(events.len(), 1);
    match &events[0].event {
        Event::ReactionChanged {
            message,
            user_id,
            kind,
        } => {
            assert_eq!((*user_id, *kind), (bob.id, Some(like)));
            assert_eq!(message.version, news.version + 1);
        }
        other => panic!("expected a reaction event, got {other:?}"),
    }
    let seen = r.summary(Some(alice.id), target).await.unwrap();
    assert_eq!(seen, summary(&[(like, 1)], None));
    assert_eq!(
        who_of(&f, Some(alice.id), target, None, 1).await,
        vec![(bob.id, like)]
    );
    let outsider = NotFound(Entity::Conversation);
    f.refuses(r.set(carol.id, target, Some(like)).await, outsider.clone());
    assert_eq!(refusal(r.summary(Some(carol.id), target).await), outsider);
    assert_eq!(refusal(r.summary(None, target).await), outsider);
    let page = Page::first();
    assert_eq!(refusal(r.who(None, target, None, &page).await), outsider);
}

/// Who may react to a post, read its counts and who reacted is who may see
/// it: owner, friend, follower (as a stranger), stranger, anonymous (read
/// only), and nobody across a block in either direction.
pub async fn post_reactions_follow_visibility_for_every_role(f: Fixture) {
    let c = cast(&f).await;
    let (owner, friend) = (&c.owner, &c.friend);
    let public = on_post(post(&f, owner.id, "all", Visibility::Public).await.id);
    let friends = on_post(post(&f, owner.id, "friends", Visibility::Friends).await.id);
    let private = on_post(post(&f, owner.id, "me", Visibility::Private).await.id);
    c.block(&f).await;
    let r = f.kith.reactions();
    let like = Some(ReactionKind::Like);
    let cases = [
        (owner.id, [true, true, true]),
        (friend.id, [true, true, false]),
        (c.follower.id, [true, false, false]),
        (c.stranger.id, [true, false, false]),
        (c.blocker.id, [false, false, false]),
        (c.blocked.id, [false, false, false]),
    ];
    for (viewer, allowed) in cases {
        for (target, ok) in [public, friends, private].into_iter().zip(allowed) {
            let set = r.set(viewer, target, like).await;
            let read = r.summary(Some(viewer), target).await;
            let who = r.who(Some(viewer), target, None, &Page::first()).await;
            if ok {
                assert_eq!(set.unwrap().mine, like, "{viewer} {target:?}");
                assert!(read.is_ok() && who.is_ok());
            } else {
                f.refuses(set, NO_POST);
                assert_eq!(refusal(read), NO_POST);
                assert_eq!(refusal(who), NO_POST);
            }
        }
    }
    assert!(r.summary(None, public).await.is_ok());
    assert_eq!(refusal(r.summary(None, friends).await), NO_POST);
    let reacted = who_of(&f, Some(owner.id), friends, None, 10).await;
    let mut expected = vec![owner.id, friend.id];
    expected.sort();
    let users: Vec<UserId> = reacted.iter().map(|(u, _)| *u).collect();
    assert_eq!(users, expected);
}

/// A block made after a reaction hides the reacting user from the other's
/// list of who reacted (either direction) and the counts stay; a deleted
/// account's reactions disappear from counts and lists, on posts and on
/// messages.
pub async fn blocked_and_deleted_reactors_are_hidden(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let target = on_post(post(&f, alice.id, "hi", Visibility::Public).await.id);
    let team = group(&f, alice.id, &[bob.id, carol.id, dave.id]).await;
    let message = on_message(&say(&f, alice.id, team.id, "news").await);
    let r = f.kith.reactions();
    let like = ReactionKind::Like;
    for user in [bob.id, carol.id, dave.id] {
        r.set(user, target, Some(like)).await.unwrap();
        r.set(user, message, Some(like)).await.unwrap();
    }
    f.take_events();
    block(&f, bob.id, carol.id).await;
    let users = |list: Vec<(UserId, ReactionKind)>| -> Vec<UserId> {
        list.into_iter().map(|(u, _)| u).collect()
    };
    let from_bob = users(who_of(&f, Some(bob.id), target, None, 1).await);
    assert_eq!(from_bob, vec![bob.id, dave.id]);
    let from_carol = users(who_of(&f, Some(carol.id), target, None, 1).await);
    assert_eq!(from_carol, vec![carol.id, dave.id]);
    let in_chat = users(who_of(&f, Some(bob.id), message, None, 1).await);
    assert_eq!(in_chat, vec![bob.id, dave.id]);
    assert_eq!(r.summary(Some(bob.id), target).await.unwrap().total, 3);
    f.delete(&dave).await;
    let seen = r.summary(None, target).await.unwrap();
    assert_eq!(seen, summary(&[(like, 2)], None));
    let anyone = users(who_of(&f, None, target, None, 1).await);
    assert_eq!(anyone, vec![bob.id, carol.id]);
    let chat_seen = r.summary(Some(alice.id), message).await.unwrap();
    assert_eq!(chat_seen, summary(&[(like, 2)], None));
    let in_chat = users(who_of(&f, Some(alice.id), message, None, 1).await);
    assert_eq!(in_chat, vec![bob.id, carol.id]);
}

/// Reacting to an unknown or deleted post is not found; who reacted
/// refuses bad limits and cursors.
pub async fn reactions_to_missing_posts_and_bad_pages_are_refused(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let gone = post(&f, alice.id, "bye", Visibility::Public).await;
    let kept = on_post(post(&f, alice.id, "hi", Visibility::Public).await.id);
    f.kith.posts().delete(alice.id, gone.id).await.unwrap();
    let r = f.kith.reactions();
    let like = Some(ReactionKind::Like);
    f.refuses(r.set(bob.id, on_post(gone.id), like).await, NO_POST);
    f.refuses(r.set(bob.id, on_post(PostId::new(77)), like).await, NO_POST);
    for limit in [0, 101] {
        let bad = r.who(None, kept, None, &Page::with_limit(limit)).await;
        assert_eq!(refusal(bad), Invalid("limit"));
    }
    let bad = r.who(None, kept, None, &Page::after("zz", None)).await;
    assert_eq!(refusal(bad), Invalid("cursor"));
}
