//! Conformance cases for the home feed: whose posts it holds, what each
//! viewer may see of them, mutes and blocks, and pages that neither repeat
//! nor skip a post while posts arrive, at any depth.

use crate::testkit::posts::{post, post_ids};
use crate::testkit::{all_pages, Fixture};
use crate::{Event, Page, PostId, UserId, Visibility};

/// Every post of `viewer`'s home feed, read `limit` at a time.
async fn home_of(f: &Fixture, viewer: UserId, limit: u32) -> Vec<PostId> {
    let posts = all_pages(limit, |page| async move {
        f.kith.posts().home(viewer, &page).await
    })
    .await;
    post_ids(&posts)
}

/// The home feed holds the viewer's own posts and those of friends and
/// followed users, newest first; strangers' posts and followers' posts
/// (following is one way) are not in it.
pub async fn home_feed_has_own_friends_and_followed_posts_newest_first(f: Fixture) {
    let [alice, bob, carol, dave, erin] = f.users(["alice", "bob", "carol", "dave", "erin"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, carol.id).await;
    f.follow(erin.id, alice.id).await;
    let mut expected = Vec::new();
    for (i, author) in [
        alice.id, bob.id, carol.id, dave.id, erin.id, bob.id, alice.id,
    ]
    .into_iter()
    .enumerate()
    {
        let p = post(&f, author, &format!("post {i}"), Visibility::Public).await;
        if author != dave.id && author != erin.id {
            expected.push(p.id);
        }
    }
    expected.reverse();
    assert_eq!(home_of(&f, alice.id, 20).await, expected);
    // Each user's own feed: Dave has only his own post.
    assert_eq!(home_of(&f, dave.id, 20).await.len(), 1);
}

/// What the feed shows of each author is what the viewer may see: a
/// friend's friends-only posts, a followed non-friend's public posts only,
/// the viewer's own private posts, nobody else's.
pub async fn home_feed_shows_each_author_what_the_viewer_may_see(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, carol.id).await;
    let mut expected = Vec::new();
    for author in [alice.id, bob.id, carol.id] {
        for visibility in [Visibility::Public, Visibility::Friends, Visibility::Private] {
            let p = post(&f, author, "hello", visibility).await;
            let shown = author == alice.id
                || visibility == Visibility::Public
                || (author == bob.id && visibility == Visibility::Friends);
            if shown {
                expected.push(p.id);
            }
        }
    }
    expected.reverse();
    for limit in [1, 2, 20] {
        assert_eq!(
            home_of(&f, alice.id, limit).await,
            expected,
            "limit {limit}"
        );
    }
}

/// Muting someone takes their posts out of the feed on the next read,
/// without unfriending; unmuting brings them back.
pub async fn home_feed_leaves_out_muted_users(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, carol.id).await;
    let by_bob = post(&f, bob.id, "bob", Visibility::Public).await;
    let by_carol = post(&f, carol.id, "carol", Visibility::Public).await;
    f.kith.graph().mute(alice.id, bob.id).await.unwrap();
    assert_eq!(home_of(&f, alice.id, 20).await, [by_carol.id]);
    f.kith.graph().unmute(alice.id, bob.id).await.unwrap();
    assert_eq!(home_of(&f, alice.id, 20).await, [by_carol.id, by_bob.id]);
}

/// Unfollowing, unfriending, a block in either direction and a deleted
/// account take the author's posts out of the feed on the next read.
pub async fn home_feed_ends_with_the_link_to_the_author(f: Fixture) {
    let [alice, bob, carol, dave, erin] = f.users(["alice", "bob", "carol", "dave", "erin"]).await;
    for friend in [bob.id, carol.id] {
        f.befriend(alice.id, friend).await;
    }
    for followee in [dave.id, erin.id] {
        f.follow(alice.id, followee).await;
    }
    for author in [bob.id, carol.id, dave.id, erin.id] {
        post(&f, author, "hi", Visibility::Public).await;
    }
    assert_eq!(home_of(&f, alice.id, 20).await.len(), 4);
    f.kith.graph().unfriend(alice.id, bob.id).await.unwrap();
    f.kith.graph().block(carol.id, alice.id).await.unwrap();
    f.kith.graph().unfollow(alice.id, dave.id).await.unwrap();
    f.delete(&erin).await;
    assert_eq!(home_of(&f, alice.id, 20).await, Vec::<PostId>::new());
}

/// Authors who post at very different rates: every post appears once, in
/// position order, whatever the page size (the quiet author's old post is
/// found below many pages of the busy one's).
pub async fn home_feed_pages_through_authors_of_every_rate(f: Fixture) {
    let [alice, busy, quiet, middle] = f.users(["alice", "busy", "quiet", "middle"]).await;
    f.befriend(alice.id, busy.id).await;
    f.follow(alice.id, quiet.id).await;
    f.follow(alice.id, middle.id).await;
    let mut expected = vec![post(&f, quiet.id, "once", Visibility::Public).await.id];
    for i in 0..40 {
        expected.push(
            post(&f, busy.id, &format!("busy {i}"), Visibility::Friends)
                .await
                .id,
        );
        if i % 7 == 0 {
            expected.push(
                post(&f, middle.id, "sometimes", Visibility::Public)
                    .await
                    .id,
            );
        }
    }
    expected.reverse();
    for limit in [1, 3, 7, 20, 100] {
        assert_eq!(
            home_of(&f, alice.id, limit).await,
            expected,
            "limit {limit}"
        );
    }
}

/// Posts created between pages never repeat a post and never skip one that
/// existed when paging started; they appear on a new first page.
pub async fn home_feed_pages_neither_repeat_nor_skip_while_posts_arrive(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    let mut before = Vec::new();
    for i in 0..12 {
        let author = if i % 2 == 0 { alice.id } else { bob.id };
        before.push(
            post(&f, author, &format!("old {i}"), Visibility::Public)
                .await
                .id,
        );
    }
    before.reverse();
    let mut seen = Vec::new();
    let mut page = Page::with_limit(5);
    let mut arrived = Vec::new();
    loop {
        let paged = f.kith.posts().home(alice.id, &page).await.unwrap();
        seen.extend(post_ids(&paged.items));
        arrived.push(post(&f, bob.id, "new", Visibility::Public).await.id);
        match paged.next_cursor {
            Some(cursor) => page = Page::after(cursor, Some(5)),
            None => break,
        }
    }
    assert_eq!(seen, before);
    let first = f
        .kith
        .posts()
        .home(alice.id, &Page::with_limit(50))
        .await
        .unwrap();
    arrived.reverse();
    assert_eq!(post_ids(&first.items), [arrived, before].concat());
}

/// The recipients of the one [`Event::PostCreated`] emitted since the last
/// take, sorted.
fn announced(f: &Fixture, post_id: PostId, author_id: UserId) -> Vec<UserId> {
    let deliveries = f.take_events();
    let announced: Vec<_> = deliveries
        .into_iter()
        .filter(|d| d.event == (Event::PostCreated { post_id, author_id }))
        .collect();
    assert_eq!(announced.len(), 1, "one announcement of the post");
    let mut recipients = announced[0].recipients.clone();
    recipients.sort();
    recipients
}

/// A new post is announced live to its author and to whom its visibility
/// lets read it: friends and followers for a public post, friends for a
/// friends-only one, nobody else for a private one; never to strangers, to
/// users blocked either way, or to those who mute the author.
pub async fn a_new_post_is_announced_to_its_audience(f: Fixture) {
    let [alice, friend, follower, stranger, muter, blocked] = f
        .users([
            "alice", "friend", "follower", "stranger", "muter", "blocked",
        ])
        .await;
    f.befriend(alice.id, friend.id).await;
    f.befriend(alice.id, muter.id).await;
    f.follow(follower.id, alice.id).await;
    f.follow(blocked.id, alice.id).await;
    f.kith.graph().mute(muter.id, alice.id).await.unwrap();
    f.kith.graph().block(alice.id, blocked.id).await.unwrap();
    f.take_events();
    let sorted = |mut ids: Vec<UserId>| {
        ids.sort();
        ids
    };
    let create = |text: &str, visibility| {
        let new = crate::NewPost {
            text: text.into(),
            visibility,
            shared_id: None,
        };
        let kith = f.kith.clone();
        async move { kith.posts().create(alice.id, new).await }
    };
    let public = create("hello", Visibility::Public).await.unwrap();
    assert_eq!(
        announced(&f, public.id, alice.id),
        sorted(vec![alice.id, friend.id, follower.id])
    );
    let friends = create("hello friends", Visibility::Friends).await.unwrap();
    assert_eq!(
        announced(&f, friends.id, alice.id),
        sorted(vec![alice.id, friend.id])
    );
    let private = create("note to self", Visibility::Private).await.unwrap();
    assert_eq!(announced(&f, private.id, alice.id), [alice.id]);
    let _ = stranger;
}
