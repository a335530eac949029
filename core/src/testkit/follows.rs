//! Conformance cases for follows: following, unfollowing and the followers
//! and following lists.

use crate::testkit::graph::{followers_of, following_of, ids_of};
use crate::testkit::Fixture;
use crate::{Account, Clock, Event, GraphCounts, Peer, UserId};

/// Following tells both, lists each in the other's list, and updates counts and relationships.
pub async fn follow_lists_counts_and_tells_both(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    g.follow(alice.id, bob.id).await.unwrap();
    let since = f.clock.now();
    let followed = Event::Followed {
        follower: alice.id,
        followee: bob.id,
        since,
    };
    f.assert_event(followed, &[alice.id, bob.id]);
    let peer = |user: &Account| Peer {
        user: user.user(),
        since,
    };
    assert_eq!(followers_of(&f, bob.id, 20).await, vec![peer(&alice)]);
    assert_eq!(following_of(&f, alice.id, 20).await, vec![peer(&bob)]);
    assert!(following_of(&f, bob.id, 20).await.is_empty());
    assert!(followers_of(&f, alice.id, 20).await.is_empty());
    let one_way = |followers, following| GraphCounts {
        friends: 0,
        followers,
        following,
    };
    assert_eq!(g.counts(None, bob.id).await.unwrap(), one_way(1, 0));
    let counts = g.counts(Some(bob.id), alice.id).await.unwrap();
    assert_eq!(counts, one_way(0, 1));
    let of_alice = g.relationship(alice.id, bob.id).await.unwrap();
    assert!(of_alice.following && !of_alice.followed_by && !of_alice.friends);
    let of_bob = g.relationship(bob.id, alice.id).await.unwrap();
    assert!(!of_bob.following && of_bob.followed_by && !of_bob.friends);
}

/// Following again changes nothing and tells nobody.
pub async fn follow_twice_changes_nothing(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    f.follow(alice.id, bob.id).await;
    let since = f.clock.now();
    f.tick();
    g.follow(alice.id, bob.id).await.unwrap();
    f.assert_no_events();
    let user = alice.user();
    assert_eq!(
        followers_of(&f, bob.id, 20).await,
        vec![Peer { user, since }]
    );
    assert_eq!(g.counts(None, bob.id).await.unwrap().followers, 1);
}

/// Unfollowing tells only the follower; unfollowing someone not followed changes nothing.
pub async fn unfollow_tells_only_the_follower(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    f.follow(alice.id, bob.id).await;
    f.follow(bob.id, alice.id).await;
    g.unfollow(alice.id, bob.id).await.unwrap();
    f.assert_event(
        Event::Unfollowed {
            follower: alice.id,
            followee: bob.id,
        },
        &[alice.id],
    );
    assert!(followers_of(&f, bob.id, 20).await.is_empty());
    assert!(following_of(&f, alice.id, 20).await.is_empty());
    assert_eq!(g.counts(None, bob.id).await.unwrap().followers, 0);
    // Bob still follows Alice.
    assert!(g.relationship(bob.id, alice.id).await.unwrap().following);
    g.unfollow(alice.id, bob.id).await.unwrap();
    g.unfollow(alice.id, UserId::new(42)).await.unwrap();
    f.assert_no_events();
}

/// Followers and followed users are listed newest first, a page at a time.
pub async fn followers_and_following_are_listed_newest_first_in_pages(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let mut others = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        let other = f.user(name).await;
        f.follow(other.id, bob.id).await;
        f.follow(alice.id, other.id).await;
        f.tick();
        others.push(other);
    }
    let newest_first: Vec<UserId> = others.iter().rev().map(|a| a.id).collect();
    for limit in [1, 2, 5, 6] {
        let followers = followers_of(&f, bob.id, limit).await;
        assert_eq!(ids_of(&followers), newest_first, "followers, limit {limit}");
        assert!(followers.windows(2).all(|w| w[0].since > w[1].since));
        let following = following_of(&f, alice.id, limit).await;
        assert_eq!(ids_of(&following), newest_first, "following, limit {limit}");
    }
}

/// Follows made in the same millisecond are ordered by user id, highest first, across pages.
pub async fn follows_at_the_same_time_are_ordered_by_id(f: Fixture) {
    let bob = f.user("bob").await;
    let others = f.users(["user1", "user2", "user3", "user4"]).await;
    for other in &others {
        f.follow(other.id, bob.id).await;
    }
    let mut expected: Vec<UserId> = others.iter().map(|a| a.id).collect();
    expected.sort_by(|a, b| b.cmp(a));
    for limit in [1, 3] {
        let followers = followers_of(&f, bob.id, limit).await;
        assert_eq!(ids_of(&followers), expected, "limit {limit}");
    }
}
