//! Conformance cases for blocks, mutes, relationships and counts.

use crate::testkit::graph::{
    assert_no_requests, followers_of, following_of, friends_of, ids_of, request, social_lists,
};
use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, NO_USER};
use crate::{Account, Clock, Denied, Event, GraphCounts, Peer, Relationship, UserId, Visibility};

/// Every user `user` blocks, newest first, read `limit` at a time.
async fn blocked_of(f: &Fixture, user: UserId, limit: u32) -> Vec<Peer> {
    all_pages(limit, |page| async move {
        f.kith.graph().blocked(user, &page).await
    })
    .await
}

/// Every user `user` mutes, newest first, read `limit` at a time.
async fn muted_of(f: &Fixture, user: UserId, limit: u32) -> Vec<Peer> {
    all_pages(limit, |page| async move {
        f.kith.graph().muted(user, &page).await
    })
    .await
}

/// `blocker` blocks `blocked`; asserts that only the blocker was told.
pub(crate) async fn block(f: &Fixture, blocker: UserId, blocked: UserId) {
    f.kith.graph().block(blocker, blocked).await.unwrap();
    f.assert_event(Event::Blocked { blocker, blocked }, &[blocker]);
}

/// Asserts that `viewer` finds neither `user` nor anything of theirs: no
/// profile, no counts, no lists, no relationship.
async fn assert_hidden(f: &Fixture, viewer: &Account, user: &Account) {
    let (accounts, g, v) = (f.kith.accounts(), f.kith.graph(), Some(viewer.id));
    let lookups = [
        refusal(accounts.profile(v, user.id).await),
        refusal(accounts.profile_by_username(v, &user.username).await),
        refusal(g.counts(v, user.id).await),
    ];
    let lists = social_lists(f, viewer.id, user.id).await.map(refusal);
    for got in lookups.into_iter().chain(lists) {
        let (who, whom) = (&viewer.username, &user.username);
        assert_eq!(got, NO_USER, "{who} looking at {whom}");
    }
}

/// Asserts that `viewer` sees `user`'s profile, counts and lists again.
async fn assert_visible(f: &Fixture, viewer: &Account, user: &Account) {
    let profile = f.kith.accounts().profile(Some(viewer.id), user.id).await;
    assert_eq!(profile.unwrap().user, user.user());
    f.kith
        .graph()
        .counts(Some(viewer.id), user.id)
        .await
        .unwrap();
    for list in social_lists(f, viewer.id, user.id).await {
        list.unwrap();
    }
}

/// Blocking ends friendship, requests and follows both ways, telling only the blocker.
pub async fn block_ends_friendship_requests_and_follows(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let g = f.kith.graph();
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, bob.id).await;
    f.follow(bob.id, alice.id).await;
    request(&f, carol.id, alice.id).await;
    f.follow(carol.id, alice.id).await;
    request(&f, alice.id, dave.id).await;
    f.follow(alice.id, dave.id).await;
    for other in [&bob, &carol, &dave] {
        block(&f, alice.id, other.id).await;
        let rel = g.relationship(alice.id, other.id).await.unwrap();
        assert_eq!(
            rel,
            Relationship {
                blocking: true,
                ..Relationship::default()
            },
            "after blocking {}",
            other.username
        );
    }
    for user in [&alice, &bob, &carol, &dave] {
        assert_no_requests(&f, &[user.id]).await;
        assert!(friends_of(&f, user.id, None, 20).await.is_empty());
        assert!(followers_of(&f, user.id, 20).await.is_empty());
        assert!(following_of(&f, user.id, 20).await.is_empty());
        let counts = g.counts(Some(user.id), user.id).await.unwrap();
        assert_eq!(counts, GraphCounts::default(), "{}", user.username);
    }
}

/// Blocking again changes nothing and tells nobody.
pub async fn block_twice_tells_only_the_blocker_once(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, alice.id, bob.id).await;
    let since = f.clock.now();
    f.tick();
    f.kith.graph().block(alice.id, bob.id).await.unwrap();
    f.assert_no_events();
    let blocked = blocked_of(&f, alice.id, 20).await;
    assert_eq!(
        blocked,
        vec![Peer {
            user: bob.user(),
            since
        }]
    );
}

/// A blocked user cannot befriend, follow, mute or see the blocker: it is not found.
pub async fn blocked_user_cannot_befriend_follow_or_see_the_blocker(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, alice.id, bob.id).await;
    let g = f.kith.graph();
    f.refuses(g.send_friend_request(bob.id, alice.id).await, NO_USER);
    f.refuses(g.follow(bob.id, alice.id).await, NO_USER);
    f.refuses(g.mute(bob.id, alice.id).await, NO_USER);
    f.refuses(g.relationship(bob.id, alice.id).await, NO_USER);
    assert_hidden(&f, &bob, &alice).await;
    assert_no_requests(&f, &[alice.id]).await;
    assert!(followers_of(&f, alice.id, 20).await.is_empty());
    assert!(muted_of(&f, bob.id, 20).await.is_empty());
    f.assert_no_events();
}

/// The blocker is forbidden to befriend or follow the blocked user and cannot see them.
pub async fn blocker_cannot_befriend_follow_or_see_the_blocked_user(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, alice.id, bob.id).await;
    let g = f.kith.graph();
    f.refuses(
        g.send_friend_request(alice.id, bob.id).await,
        Forbidden(Denied::BlockedByActor),
    );
    f.refuses(
        g.follow(alice.id, bob.id).await,
        Forbidden(Denied::BlockedByActor),
    );
    assert_hidden(&f, &alice, &bob).await;
    assert_no_requests(&f, &[bob.id]).await;
    assert!(following_of(&f, alice.id, 20).await.is_empty());
    f.assert_no_events();
}

/// Blocking hides both users' profiles, counts and lists from each other, not from others.
pub async fn blocked_users_cannot_see_each_others_lists(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    block(&f, carol.id, bob.id).await;
    for visibility in [Visibility::Public, Visibility::Friends, Visibility::Private] {
        for user in [&bob, &carol] {
            f.set_visibility(user.id, visibility).await;
        }
        assert_hidden(&f, &bob, &carol).await;
        assert_hidden(&f, &carol, &bob).await;
    }
    // Bob's friend Alice still sees Bob's lists.
    f.set_visibility(bob.id, Visibility::Friends).await;
    assert_visible(&f, &alice, &bob).await;
}

/// The users one blocks are listed newest first, in pages.
pub async fn blocked_users_are_listed_newest_first_in_pages(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let mut blocked = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        let other = f.user(name).await;
        block(&f, alice.id, other.id).await;
        blocked.push(Peer {
            user: other.user(),
            since: f.clock.now(),
        });
        f.tick();
    }
    f.kith.graph().block(bob.id, alice.id).await.unwrap();
    blocked.reverse();
    for limit in [1, 2, 5, 6] {
        let listed = blocked_of(&f, alice.id, limit).await;
        assert_eq!(listed, blocked, "limit {limit}");
    }
    let of_bob = blocked_of(&f, bob.id, 20).await;
    assert_eq!(ids_of(&of_bob), vec![alice.id]);
}

/// Unblocking tells the blocker and allows befriending again but restores no old link.
pub async fn unblock_allows_befriending_again_but_restores_nothing(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, bob.id).await;
    f.follow(bob.id, alice.id).await;
    block(&f, alice.id, bob.id).await;
    let g = f.kith.graph();
    g.unblock(alice.id, bob.id).await.unwrap();
    f.assert_event(
        Event::Unblocked {
            blocker: alice.id,
            blocked: bob.id,
        },
        &[alice.id],
    );
    assert!(blocked_of(&f, alice.id, 20).await.is_empty());
    assert_eq!(
        g.relationship(alice.id, bob.id).await.unwrap(),
        Relationship::default()
    );
    assert_eq!(
        g.relationship(bob.id, alice.id).await.unwrap(),
        Relationship::default()
    );
    assert_visible(&f, &alice, &bob).await;
    assert_visible(&f, &bob, &alice).await;
    f.befriend(bob.id, alice.id).await;
    f.follow(alice.id, bob.id).await;
    let rel = g.relationship(alice.id, bob.id).await.unwrap();
    assert!(rel.friends && rel.following && !rel.followed_by);
}

/// Unblocking someone not blocked changes nothing; the blocked user cannot lift a block.
pub async fn unblock_of_a_user_not_blocked_changes_nothing(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let g = f.kith.graph();
    g.unblock(alice.id, carol.id).await.unwrap();
    g.unblock(alice.id, UserId::new(42)).await.unwrap();
    block(&f, alice.id, bob.id).await;
    g.unblock(bob.id, alice.id).await.unwrap();
    f.assert_no_events();
    assert_hidden(&f, &bob, &alice).await;
    assert!(g.relationship(alice.id, bob.id).await.unwrap().blocking);
}

/// When both block each other, each block holds until its own blocker lifts it.
pub async fn mutual_blocks_hold_until_both_are_lifted(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, alice.id, bob.id).await;
    block(&f, bob.id, alice.id).await;
    let g = f.kith.graph();
    assert_eq!(refusal(g.relationship(alice.id, bob.id).await), NO_USER);
    g.unblock(alice.id, bob.id).await.unwrap();
    f.take_events();
    assert_hidden(&f, &alice, &bob).await;
    assert_hidden(&f, &bob, &alice).await;
    f.refuses(g.send_friend_request(alice.id, bob.id).await, NO_USER);
    f.refuses(
        g.send_friend_request(bob.id, alice.id).await,
        Forbidden(Denied::BlockedByActor),
    );
    let blocked = blocked_of(&f, bob.id, 20).await;
    assert_eq!(ids_of(&blocked), vec![alice.id]);
    g.unblock(bob.id, alice.id).await.unwrap();
    f.take_events();
    assert_visible(&f, &alice, &bob).await;
    f.befriend(alice.id, bob.id).await;
}

/// Blocking a user who does not exist (or no longer does) is not found.
pub async fn block_unknown_or_deleted_user_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.delete(&bob).await;
    for other in [UserId::new(42), bob.id] {
        f.refuses(f.kith.graph().block(alice.id, other).await, NO_USER);
    }
    let blocked = blocked_of(&f, alice.id, 20).await;
    assert!(blocked.is_empty());
}

/// Muting and unmuting tell only the muter, once however often asked.
pub async fn mute_and_unmute_tell_only_the_muter(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    g.mute(alice.id, bob.id).await.unwrap();
    let since = f.clock.now();
    let muted = Event::Muted {
        muter: alice.id,
        muted: bob.id,
    };
    f.assert_event(muted, &[alice.id]);
    f.tick();
    g.mute(alice.id, bob.id).await.unwrap();
    f.assert_no_events();
    assert!(g.relationship(alice.id, bob.id).await.unwrap().muting);
    assert_eq!(
        g.relationship(bob.id, alice.id).await.unwrap(),
        Relationship::default()
    );
    let listed = muted_of(&f, alice.id, 20).await;
    assert_eq!(
        listed,
        vec![Peer {
            user: bob.user(),
            since
        }]
    );
    assert!(muted_of(&f, bob.id, 20).await.is_empty());

    g.unmute(alice.id, bob.id).await.unwrap();
    let unmuted = Event::Unmuted {
        muter: alice.id,
        muted: bob.id,
    };
    f.assert_event(unmuted, &[alice.id]);
    g.unmute(alice.id, bob.id).await.unwrap();
    g.unmute(alice.id, UserId::new(42)).await.unwrap();
    f.assert_no_events();
    assert!(!g.relationship(alice.id, bob.id).await.unwrap().muting);
    assert!(muted_of(&f, alice.id, 20).await.is_empty());
}

/// Muting leaves friendship, follows and profile access as they were.
pub async fn mute_keeps_friendship_and_follows(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, bob.id).await;
    f.follow(bob.id, alice.id).await;
    g.mute(alice.id, bob.id).await.unwrap();
    let expected = Relationship {
        friends: true,
        following: true,
        followed_by: true,
        muting: true,
        ..Relationship::default()
    };
    assert_eq!(g.relationship(alice.id, bob.id).await.unwrap(), expected);
    assert_visible(&f, &alice, &bob).await;
    assert_visible(&f, &bob, &alice).await;
    let counts = g.counts(None, bob.id).await.unwrap();
    assert_eq!(
        counts,
        GraphCounts {
            friends: 1,
            followers: 1,
            following: 1
        }
    );
}

/// The users one mutes are listed newest first, a page at a time.
pub async fn muted_users_are_listed_newest_first_in_pages(f: Fixture) {
    let alice = f.user("alice").await;
    let mut muted = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        let other = f.user(name).await;
        f.kith.graph().mute(alice.id, other.id).await.unwrap();
        muted.push(other.id);
        f.tick();
    }
    muted.reverse();
    for limit in [1, 2, 5, 6] {
        let listed = muted_of(&f, alice.id, limit).await;
        assert_eq!(ids_of(&listed), muted, "limit {limit}");
        assert!(listed.windows(2).all(|w| w[0].since > w[1].since));
    }
}

/// Muting a user who blocks the actor, or who does not exist, is not found.
pub async fn mute_of_a_blocker_or_unknown_user_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    block(&f, bob.id, alice.id).await;
    let g = f.kith.graph();
    f.refuses(g.mute(alice.id, bob.id).await, NO_USER);
    f.refuses(g.mute(alice.id, UserId::new(42)).await, NO_USER);
    assert!(muted_of(&f, alice.id, 20).await.is_empty());
}

/// Asserts the relationship of `a` to `b` and of `b` to `a`.
async fn assert_relationship(
    f: &Fixture,
    a: UserId,
    b: UserId,
    of_a: Relationship,
    of_b: Relationship,
) {
    let g = f.kith.graph();
    assert_eq!(g.relationship(a, b).await.unwrap(), of_a, "of {a} to {b}");
    assert_eq!(g.relationship(b, a).await.unwrap(), of_b, "of {b} to {a}");
}

/// The relationship reports requests, friendship, follows, mutes and blocks from each side.
pub async fn relationship_reports_each_link(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let (a, b, g) = (alice.id, bob.id, f.kith.graph());
    let (mut of_a, mut of_b) = (Relationship::default(), Relationship::default());
    assert_relationship(&f, a, b, of_a, of_b).await;
    request(&f, a, b).await;
    (of_a.request_sent, of_b.request_received) = (true, true);
    assert_relationship(&f, a, b, of_a, of_b).await;
    g.accept_friend_request(b, a).await.unwrap();
    (of_a.request_sent, of_b.request_received) = (false, false);
    (of_a.friends, of_b.friends) = (true, true);
    assert_relationship(&f, a, b, of_a, of_b).await;
    f.follow(a, b).await;
    (of_a.following, of_b.followed_by) = (true, true);
    assert_relationship(&f, a, b, of_a, of_b).await;
    g.mute(b, a).await.unwrap();
    of_b.muting = true;
    assert_relationship(&f, a, b, of_a, of_b).await;
    g.unfriend(a, b).await.unwrap();
    g.unfollow(a, b).await.unwrap();
    g.unmute(b, a).await.unwrap();
    let none = Relationship::default();
    assert_relationship(&f, a, b, none, none).await;
    g.block(a, b).await.unwrap();
    let blocking = Relationship {
        blocking: true,
        ..none
    };
    assert_eq!(g.relationship(a, b).await.unwrap(), blocking);
}

/// The relationship with a user who blocks the actor, or does not exist, is not found.
pub async fn relationship_with_a_blocker_or_unknown_user_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    block(&f, bob.id, alice.id).await;
    let g = f.kith.graph();
    f.refuses(g.relationship(alice.id, bob.id).await, NO_USER);
    f.refuses(g.relationship(alice.id, UserId::new(42)).await, NO_USER);
    f.refuses(g.relationship(UserId::new(42), alice.id).await, NO_USER);
}

/// Counts are shown to all who may see the user, whatever the visibility; not when blocked.
pub async fn counts_are_shown_to_all_who_may_see_the_user(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(carol.id, alice.id).await;
    f.set_visibility(alice.id, Visibility::Private).await;
    f.kith.graph().block(alice.id, dave.id).await.unwrap();
    let expected = GraphCounts {
        friends: 1,
        followers: 1,
        following: 0,
    };
    for viewer in [None, Some(alice.id), Some(bob.id), Some(carol.id)] {
        assert_eq!(
            f.kith.graph().counts(viewer, alice.id).await.unwrap(),
            expected
        );
    }
    let g = f.kith.graph();
    assert_eq!(refusal(g.counts(Some(dave.id), alice.id).await), NO_USER);
    assert_eq!(refusal(g.counts(None, UserId::new(42)).await), NO_USER);
}
