//! Conformance cases for shares: a share is a post pointing to an original,
//! never wider than it, embedding it only for viewers who may see it.

use crate::testkit::blocks::block;
use crate::testkit::posts::{post, timeline_of};
use crate::testkit::Refusal::*;
use crate::testkit::{refusal, Fixture, Refusal};
use crate::{
    Entity, NewPost, Page, Post, PostId, PostPatch, ReactionKind, ReactionTarget, Result, UserId,
    Visibility,
};

const NO_POST: Refusal = NotFound(Entity::Post);

/// `author` shares `original` with `text` and `visibility`.
async fn share(
    f: &Fixture,
    author: UserId,
    original: PostId,
    text: &str,
    visibility: Visibility,
) -> Result<Post> {
    let new = NewPost {
        text: text.into(),
        visibility,
        shared_id: Some(original),
    };
    let shared = f.kith.posts().create(author, new).await;
    // Its announcement is checked in `feeds`.
    f.take_events();
    f.tick();
    shared
}

/// A share points to the original (sharing a share points to its
/// original), embeds it, may have a blank text, and counts on the original.
pub async fn a_share_points_to_the_original_and_counts(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let original = post(&f, alice.id, "news", Visibility::Public).await;
    let public = Visibility::Public;
    let first = share(&f, bob.id, original.id, "look #wow", public)
        .await
        .unwrap();
    assert_eq!(first.shared_id, Some(original.id));
    assert_eq!(first.text, "look #wow");
    assert_eq!(first.hashtags, vec!["wow"]);
    let embedded = first.original.as_deref().unwrap();
    assert_eq!((embedded.id, embedded.text.as_str()), (original.id, "news"));
    let second = share(&f, carol.id, first.id, "  ", public).await.unwrap();
    assert_eq!(second.shared_id, Some(original.id));
    assert_eq!(second.text, "");
    let read = f.kith.posts().get(None, original.id).await.unwrap();
    assert_eq!(read.shares, 2);
    assert_eq!(read.shared_id, None);
    let new = NewPost {
        text: " ".into(),
        visibility: public,
        shared_id: None,
    };
    f.refuses(f.kith.posts().create(bob.id, new).await, Invalid("text"));
    let blank = PostPatch {
        text: Some(String::new()),
        visibility: None,
    };
    let edited = f.kith.posts().edit(bob.id, first.id, blank).await.unwrap();
    assert_eq!(edited.text, "");
    assert!(edited.original.is_some());
}

/// A share may not be seen more widely than its original, on creation or
/// edit.
pub async fn a_share_is_never_wider_than_the_original(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    let original = post(&f, alice.id, "among us", Visibility::Friends).await.id;
    let wider = share(&f, bob.id, original, "", Visibility::Public).await;
    f.refuses(wider, Invalid("visibility"));
    let mine = post(&f, alice.id, "mine", Visibility::Private).await.id;
    let own = share(&f, alice.id, mine, "", Visibility::Friends).await;
    f.refuses(own, Invalid("visibility"));
    assert!(share(&f, alice.id, mine, "", Visibility::Private)
        .await
        .is_ok());
    let kept = share(&f, bob.id, original, "", Visibility::Friends).await;
    let kept = kept.unwrap().id;
    let narrower = share(&f, bob.id, original, "", Visibility::Private).await;
    assert!(narrower.is_ok());
    let widen = PostPatch {
        text: None,
        visibility: Some(Visibility::Public),
    };
    let edited = f.kith.posts().edit(bob.id, kept, widen).await;
    f.refuses(edited, Invalid("visibility"));
    assert_eq!(
        timeline_of(&f, None, bob.id, 10).await,
        Vec::<PostId>::new()
    );
}

/// Only what one may see can be shared: not a post hidden by its
/// visibility, nor across a block (either direction), nor an unknown one.
pub async fn only_what_one_may_see_can_be_shared(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let friends = post(&f, alice.id, "friends", Visibility::Friends).await.id;
    let public = post(&f, alice.id, "public", Visibility::Public).await.id;
    block(&f, carol.id, alice.id).await;
    block(&f, alice.id, dave.id).await;
    let any = Visibility::Private;
    f.refuses(share(&f, bob.id, friends, "", any).await, NO_POST);
    f.refuses(share(&f, carol.id, public, "", any).await, NO_POST);
    f.refuses(share(&f, dave.id, public, "", any).await, NO_POST);
    f.refuses(share(&f, bob.id, PostId::new(3), "", any).await, NO_POST);
    assert!(timeline_of(&f, Some(bob.id), bob.id, 10).await.is_empty());
}

/// The original is embedded only for viewers who may see it (towards its
/// own author); others see the share with the original unavailable, as
/// everyone does once the original or its author's account is deleted.
pub async fn the_original_is_shown_only_to_those_who_may_see_it(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    f.befriend(alice.id, bob.id).await;
    f.befriend(bob.id, carol.id).await;
    f.befriend(bob.id, dave.id).await;
    block(&f, alice.id, dave.id).await;
    let original = post(&f, alice.id, "#tag ours", Visibility::Friends)
        .await
        .id;
    let shared = share(&f, bob.id, original, "#tag see", Visibility::Friends).await;
    let shared = shared.unwrap().id;
    let posts = f.kith.posts();
    for (viewer, sees) in [(bob.id, true), (carol.id, false), (dave.id, false)] {
        let read = posts.get(Some(viewer), shared).await.unwrap();
        assert_eq!(read.shared_id, Some(original));
        assert_eq!(read.original.is_some(), sees, "{viewer}");
        let page = posts.timeline(Some(viewer), bob.id, &Page::first()).await;
        let listed = page.unwrap().items;
        assert_eq!(listed[0].original.is_some(), sees, "{viewer}");
        let tagged = posts.hashtag(Some(viewer), "tag", &Page::first()).await;
        let tagged = tagged.unwrap().items;
        assert_eq!(tagged[0].id, shared);
        assert_eq!(tagged[0].original.is_some(), sees, "{viewer}");
    }
    posts.delete(alice.id, original).await.unwrap();
    let read = posts.get(Some(bob.id), shared).await.unwrap();
    assert_eq!((read.shared_id, read.original), (Some(original), None));
    let again = post(&f, bob.id, "bob's", Visibility::Public).await.id;
    let of_carol = share(&f, carol.id, again, "", Visibility::Public).await;
    let of_carol = of_carol.unwrap().id;
    f.delete(&bob).await;
    let read = posts.get(None, of_carol).await.unwrap();
    assert_eq!((read.shared_id, read.original), (Some(again), None));
    assert_eq!(refusal(posts.get(None, again).await), NO_POST);
}

/// A share is a post: it can be reacted to and commented on, and a
/// deleted sharer's share no longer counts.
pub async fn shares_are_reacted_to_and_commented_on(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let original = post(&f, alice.id, "news", Visibility::Public).await.id;
    let shared = share(&f, bob.id, original, "", Visibility::Public).await;
    let shared = shared.unwrap().id;
    let target = ReactionTarget::Post { post_id: shared };
    let r = f.kith.reactions();
    let set = r.set(carol.id, target, Some(ReactionKind::Haha)).await;
    assert_eq!(set.unwrap().total, 1);
    let c = f.kith.comments();
    c.create(carol.id, shared, None, "ha").await.unwrap();
    let read = f.kith.posts().get(None, shared).await.unwrap();
    assert_eq!(read.comments, 1);
    assert_eq!(r.summary(None, target).await.unwrap().total, 1);
    let before = f.kith.posts().get(None, original).await.unwrap();
    assert_eq!(before.shares, 1);
    f.delete(&bob).await;
    let after = f.kith.posts().get(None, original).await.unwrap();
    assert_eq!(after.shares, 0);
}
