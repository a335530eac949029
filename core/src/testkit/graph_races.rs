//! Conformance cases for graph rules under concurrency: two sides act at the
//! same instant and the stored state still obeys the rules ("refused if
//! blocked", "a reverse request auto-accepts"), because the storage checks
//! them inside the transaction that writes.

use futures::future::join;

use crate::testkit::Fixture;
use crate::{FriendRequestOutcome, Links, UserId};

/// How many pairs each case races: enough interleavings that a check made
/// outside the writing transaction would let one through.
const PAIRS: usize = 12;

async fn pairs(f: &Fixture) -> Vec<(UserId, UserId)> {
    let mut out = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let [a, b] = f.users([&format!("left{i}"), &format!("right{i}")]).await;
        out.push((a.id, b.id));
    }
    out
}

async fn links(f: &Fixture, a: UserId, b: UserId) -> Links {
    f.kith.storage().links(a, b).await.unwrap()
}

/// Two users who send each other a friend request at the same instant end
/// as friends with no request pending, whichever ran first.
pub async fn crossing_friend_requests_become_one_friendship(f: Fixture) {
    let g = f.kith.graph();
    for (a, b) in pairs(&f).await {
        let (ab, ba) = join(g.send_friend_request(a, b), g.send_friend_request(b, a)).await;
        let outcomes = [ab.unwrap(), ba.unwrap()];
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, FriendRequestOutcome::Accepted { .. }))
            .count();
        assert_eq!(accepted, 1, "exactly one request accepts the other");
        let rel = links(&f, a, b).await.visible;
        assert!(rel.friends, "they are friends");
        assert!(
            !rel.request_sent && !rel.request_received,
            "nothing pending"
        );
        assert_eq!(f.kith.graph().friend_ids(a).await.unwrap(), vec![b]);
    }
}

/// A block and a friend request from the blocked side at the same instant
/// never leave a pending request (nor a friendship) behind the block.
pub async fn a_friend_request_racing_a_block_never_survives_it(f: Fixture) {
    let g = f.kith.graph();
    for (a, b) in pairs(&f).await {
        let (blocked, requested) = join(g.block(a, b), g.send_friend_request(b, a)).await;
        blocked.unwrap();
        // Refused, or stored first and then removed by the block.
        if let Ok(FriendRequestOutcome::Accepted { .. }) = requested {
            panic!("nothing was pending to accept");
        }
        let rel = links(&f, a, b).await.visible;
        assert!(rel.blocking, "the block stands");
        assert!(
            !rel.request_received && !rel.request_sent && !rel.friends,
            "no request or friendship survives the block: {rel:?}"
        );
    }
}

/// A block and a follow by the blocked side at the same instant never leave
/// the follow behind the block.
pub async fn a_follow_racing_a_block_never_survives_it(f: Fixture) {
    let g = f.kith.graph();
    for (a, b) in pairs(&f).await {
        let (blocked, _followed) = join(g.block(a, b), g.follow(b, a)).await;
        blocked.unwrap();
        let rel = links(&f, a, b).await.visible;
        assert!(rel.blocking, "the block stands");
        assert!(!rel.followed_by, "no follow survives the block");
        assert_eq!(
            f.kith.graph().counts(Some(a), a).await.unwrap().followers,
            0
        );
    }
}

/// A follow by the blocker at the same instant as its own block never
/// survives it either (the block removes follows in both directions).
pub async fn the_blockers_own_follow_racing_its_block_never_survives_it(f: Fixture) {
    let g = f.kith.graph();
    for (a, b) in pairs(&f).await {
        let (blocked, _followed) = join(g.block(a, b), g.follow(a, b)).await;
        blocked.unwrap();
        let rel = links(&f, a, b).await.visible;
        assert!(
            rel.blocking && !rel.following,
            "no follow survives the block"
        );
    }
}
