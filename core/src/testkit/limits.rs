//! Conformance cases for the per-user limits of writes other than message
//! sends ([`WriteRates`]): friend requests, follows,
//! posts, comments, reactions and uploads; each limited kind of write has
//! its own bucket, kept by storage.

use std::time::Duration;

use crate::testkit::chat::configured;
use crate::testkit::Refusal::*;
use crate::testkit::{refusal, Fixture};
use crate::{
    MediaKind, NewMedia, NewPost, Page, Rate, ReactionKind, ReactionTarget, Variant, Visibility,
    WriteKind, WriteRates,
};

/// The fixture with only `kind` limited to `rate`.
fn limited(f: Fixture, kind: WriteKind, rate: Rate) -> Fixture {
    configured(f, |c| {
        c.write_rates = WriteRates::none().with(kind, Some(rate))
    })
}

/// Past its burst a user's friend request is refused with the time until
/// the next one, and nothing is stored; other users are not affected, and
/// the bucket refills with time.
pub async fn friend_requests_are_limited_per_user(f: Fixture) {
    let f = limited(f, WriteKind::FriendRequest, Rate::per_hour(2, 60));
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let graph = f.kith.graph();
    graph.send_friend_request(alice.id, bob.id).await.unwrap();
    graph.send_friend_request(alice.id, carol.id).await.unwrap();
    assert_eq!(
        refusal(graph.send_friend_request(alice.id, dave.id).await),
        RateLimited(Duration::from_secs(60))
    );
    let incoming = graph
        .incoming_requests(dave.id, &Page::first())
        .await
        .unwrap();
    assert!(incoming.items.is_empty());
    // Dave's own bucket is full.
    graph.send_friend_request(dave.id, bob.id).await.unwrap();
    f.clock.advance(Duration::from_secs(30));
    assert_eq!(
        refusal(graph.send_friend_request(alice.id, dave.id).await),
        RateLimited(Duration::from_secs(30))
    );
    f.clock.advance(Duration::from_secs(30));
    graph.send_friend_request(alice.id, dave.id).await.unwrap();
    let incoming = graph
        .incoming_requests(dave.id, &Page::first())
        .await
        .unwrap();
    assert_eq!(incoming.items.len(), 1);
}

/// Follows have a bucket of their own; following someone already followed
/// changes nothing and takes nothing.
pub async fn follows_are_limited_and_a_repeat_follow_takes_nothing(f: Fixture) {
    let f = limited(f, WriteKind::Follow, Rate::per_hour(1, 1));
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let graph = f.kith.graph();
    graph.follow(alice.id, bob.id).await.unwrap();
    graph.follow(alice.id, bob.id).await.unwrap();
    assert_eq!(
        refusal(graph.follow(alice.id, carol.id).await),
        RateLimited(Duration::from_secs(3600))
    );
    let followers = graph
        .followers(carol.id, carol.id, &Page::first())
        .await
        .unwrap();
    assert!(followers.items.is_empty());
    // Friend requests are not limited here: another kind, another bucket.
    graph.send_friend_request(alice.id, carol.id).await.unwrap();
}

/// A write refused for another reason (bad input, a block, a pending
/// request) takes no token.
pub async fn refused_writes_take_no_token(f: Fixture) {
    let f = limited(f, WriteKind::FriendRequest, Rate::per_hour(1, 1));
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let graph = f.kith.graph();
    graph.block(alice.id, carol.id).await.unwrap();
    assert_eq!(
        refusal(graph.send_friend_request(alice.id, alice.id).await),
        Invalid("user_id")
    );
    assert!(graph.send_friend_request(alice.id, carol.id).await.is_err());
    graph.send_friend_request(alice.id, bob.id).await.unwrap();
    assert_eq!(
        refusal(graph.send_friend_request(alice.id, bob.id).await),
        Conflict(crate::Clash::RequestPending)
    );
}

/// The buckets are in storage: two writers share one user's limit.
pub async fn write_limits_hold_across_two_writers(f: Fixture) {
    let f = limited(f, WriteKind::Follow, Rate::per_hour(2, 60));
    let (f, other) = f.two_writers().await;
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    f.kith.graph().follow(alice.id, bob.id).await.unwrap();
    other.graph().follow(alice.id, carol.id).await.unwrap();
    for writer in [&f.kith, &other] {
        assert_eq!(
            refusal(writer.graph().follow(alice.id, dave.id).await),
            RateLimited(Duration::from_secs(60))
        );
    }
}

/// [`WriteRates::none`] limits nobody.
pub async fn write_rates_none_limit_nobody(f: Fixture) {
    let f = configured(f, |c| c.write_rates = WriteRates::none());
    let alice = f.user("alice").await;
    for i in 0..60 {
        let other = f.user(&format!("user{i}")).await;
        f.kith.graph().follow(alice.id, other.id).await.unwrap();
        f.kith
            .graph()
            .send_friend_request(alice.id, other.id)
            .await
            .unwrap();
    }
}

/// Posts (shares included), comments, reactions and uploads each have a
/// bucket per user: past it the write is refused with the wait and stores
/// nothing; removing a reaction takes nothing.
pub async fn posts_comments_reactions_and_uploads_are_limited(f: Fixture) {
    let once = Rate::per_hour(1, 1);
    let hour = Duration::from_secs(3600);
    let f = configured(f, |c| {
        c.write_rates = WriteRates::none()
            .with(WriteKind::Post, Some(once))
            .with(WriteKind::Comment, Some(once))
            .with(WriteKind::Reaction, Some(once))
            .with(WriteKind::Upload, Some(once));
    });
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let new_post = |shared_id| NewPost {
        text: "hello".into(),
        visibility: Visibility::Public,
        shared_id,
    };
    let posts = f.kith.posts();
    let first = posts.create(alice.id, new_post(None)).await.unwrap();
    for refused in [
        posts.create(alice.id, new_post(None)).await,
        posts.create(alice.id, new_post(Some(first.id))).await,
    ] {
        assert_eq!(refusal(refused), RateLimited(hour));
    }
    let timeline = posts
        .timeline(None, alice.id, &Page::first())
        .await
        .unwrap();
    assert_eq!(timeline.items.len(), 1);
    // Bob shares: his own bucket.
    posts
        .create(bob.id, new_post(Some(first.id)))
        .await
        .unwrap();

    let comments = f.kith.comments();
    comments.create(bob.id, first.id, None, "hi").await.unwrap();
    assert_eq!(
        refusal(comments.create(bob.id, first.id, None, "again").await),
        RateLimited(hour)
    );

    let reactions = f.kith.reactions();
    let target = ReactionTarget::Post { post_id: first.id };
    reactions
        .set(bob.id, target, Some(ReactionKind::Like))
        .await
        .unwrap();
    assert_eq!(
        refusal(
            reactions
                .set(bob.id, target, Some(ReactionKind::Love))
                .await
        ),
        RateLimited(hour)
    );
    let summary = reactions.set(bob.id, target, None).await.unwrap();
    assert_eq!(summary.mine, None);

    let upload = || NewMedia {
        kind: MediaKind::Image,
        content_type: "image/png".into(),
        width: 1,
        height: 1,
        variants: vec![(Variant::Original, vec![1, 2, 3])],
    };
    f.kith.media().upload(alice.id, upload()).await.unwrap();
    assert_eq!(
        refusal(f.kith.media().upload(alice.id, upload()).await),
        RateLimited(hour)
    );
}
