//! Conformance cases for comments: threads of comments and replies, their
//! counts, editing and deleting (tombstones), who may read and write them,
//! and reactions to them.

use crate::testkit::posts::{cast, post};
use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, Refusal};
use crate::{
    Clock, Comment, CommentId, Denied, Entity, Page, PostId, ReactionKind, ReactionTarget, UserId,
    Visibility,
};

const NO_POST: Refusal = NotFound(Entity::Post);
const NO_COMMENT: Refusal = NotFound(Entity::Comment);

/// `author` comments on `post` (or replies to `parent`) and the clock moves.
async fn comment(
    f: &Fixture,
    author: UserId,
    post: PostId,
    parent: Option<CommentId>,
    text: &str,
) -> Comment {
    let c = f.kith.comments();
    let made = c.create(author, post, parent, text).await.unwrap();
    f.tick();
    made
}

/// A whole thread as `viewer` sees it, `limit` at a time.
async fn thread_of(
    f: &Fixture,
    viewer: Option<UserId>,
    post: PostId,
    parent: Option<CommentId>,
    limit: u32,
) -> Vec<Comment> {
    all_pages(limit, |page| async move {
        f.kith.comments().thread(viewer, post, parent, &page).await
    })
    .await
}

fn ids_of(comments: &[Comment]) -> Vec<CommentId> {
    comments.iter().map(|c| c.id).collect()
}

/// The number of comments on `post` as its author sees it.
async fn count_on(f: &Fixture, author: UserId, post: PostId) -> u64 {
    f.kith
        .posts()
        .get(Some(author), post)
        .await
        .unwrap()
        .comments
}

/// Comments and replies form threads, oldest first, each comment with its
/// number of replies and the post with its number of comments.
pub async fn comments_and_replies_form_counted_threads(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let p = post(&f, alice.id, "hi", Visibility::Public).await.id;
    let now = f.clock.now();
    let first = comment(&f, bob.id, p, None, "first").await;
    assert_eq!(first.author, Some(bob.user()));
    assert_eq!(first.text.as_deref(), Some("first"));
    assert_eq!((first.post_id, first.parent_id), (p, None));
    assert_eq!((first.created_at, first.edited_at), (now, None));
    assert!(!first.deleted && first.replies == 0);
    let second = comment(&f, carol.id, p, None, "second").await;
    let reply = comment(&f, alice.id, p, Some(first.id), "reply").await;
    let deeper = comment(&f, bob.id, p, Some(reply.id), "deeper").await;
    assert_eq!(reply.parent_id, Some(first.id));
    let top = thread_of(&f, None, p, None, 1).await;
    assert_eq!(ids_of(&top), vec![first.id, second.id]);
    assert_eq!(top[0].replies, 1);
    let replies = thread_of(&f, Some(carol.id), p, Some(first.id), 1).await;
    assert_eq!(ids_of(&replies), vec![reply.id]);
    let below = thread_of(&f, None, p, Some(reply.id), 5).await;
    assert_eq!(ids_of(&below), vec![deeper.id]);
    assert_eq!(count_on(&f, alice.id, p).await, 4);
    f.assert_no_events();
}

/// A blank or too long text is invalid; a post one may not see, a parent
/// of another post, an unknown parent or a tombstone parent is not found;
/// nothing is stored.
pub async fn comments_refuse_bad_text_and_parents(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let p = post(&f, alice.id, "one", Visibility::Public).await.id;
    let other = post(&f, alice.id, "two", Visibility::Public).await.id;
    let private = post(&f, alice.id, "mine", Visibility::Private).await.id;
    let elsewhere = comment(&f, bob.id, other, None, "there").await;
    let c = f.kith.comments();
    let long = "x".repeat(4_001);
    for text in ["", "  ", long.as_str()] {
        f.refuses(c.create(bob.id, p, None, text).await, Invalid("text"));
    }
    f.refuses(c.create(bob.id, private, None, "hi").await, NO_POST);
    f.refuses(c.create(bob.id, PostId::new(5), None, "hi").await, NO_POST);
    let crossed = c.create(bob.id, p, Some(elsewhere.id), "hi").await;
    f.refuses(crossed, NO_COMMENT);
    let unknown = c.create(bob.id, p, Some(CommentId::new(9)), "hi").await;
    f.refuses(unknown, NO_COMMENT);
    let parent = comment(&f, bob.id, p, None, "parent").await;
    comment(&f, alice.id, p, Some(parent.id), "child").await;
    c.delete(bob.id, parent.id).await.unwrap();
    let on_tombstone = c.create(bob.id, p, Some(parent.id), "hi").await;
    f.refuses(on_tombstone, NO_COMMENT);
    assert_eq!(count_on(&f, alice.id, p).await, 1);
}

/// Only the author edits a comment (not even the post's author); an edit
/// sets `edited_at`. The author or the post's author deletes it; anyone
/// else is forbidden.
pub async fn comments_are_edited_by_their_author_and_deleted_by_either_author(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let p = post(&f, alice.id, "hi", Visibility::Public).await.id;
    let c = f.kith.comments();
    let mine = comment(&f, bob.id, p, None, "typo").await;
    let at = f.clock.now();
    let edited = c.edit(bob.id, mine.id, "fixed").await.unwrap();
    assert_eq!(edited.text.as_deref(), Some("fixed"));
    assert_eq!(edited.edited_at, Some(at));
    let forbidden = Forbidden(Denied::NotAuthor);
    f.refuses(c.edit(alice.id, mine.id, "mine").await, forbidden.clone());
    f.refuses(c.edit(carol.id, mine.id, "mine").await, forbidden.clone());
    f.refuses(c.edit(bob.id, mine.id, " ").await, Invalid("text"));
    f.refuses(c.delete(carol.id, mine.id).await, forbidden);
    assert_eq!(c.get(None, mine.id).await.unwrap(), edited);
    c.delete(alice.id, mine.id).await.unwrap();
    assert_eq!(refusal(c.get(None, mine.id).await), NO_COMMENT);
    let again = comment(&f, bob.id, p, None, "again").await;
    c.delete(bob.id, again.id).await.unwrap();
    f.refuses(c.delete(bob.id, again.id).await, NO_COMMENT);
    f.refuses(c.edit(bob.id, again.id, "x").await, NO_COMMENT);
    assert!(thread_of(&f, None, p, None, 5).await.is_empty());
}

/// A deleted comment with replies stays as a tombstone (no text, no author)
/// and no longer counts; once its last reply is deleted, it goes too.
pub async fn a_deleted_comment_with_replies_stays_as_a_tombstone(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let p = post(&f, alice.id, "hi", Visibility::Public).await.id;
    let top = comment(&f, bob.id, p, None, "top").await;
    let reply = comment(&f, carol.id, p, Some(top.id), "reply").await;
    let c = f.kith.comments();
    let r = f.kith.reactions();
    let on_top = ReactionTarget::Comment { comment_id: top.id };
    r.set(carol.id, on_top, Some(ReactionKind::Like))
        .await
        .unwrap();
    c.delete(bob.id, top.id).await.unwrap();
    let shown = thread_of(&f, Some(bob.id), p, None, 5).await;
    assert_eq!(shown.len(), 1);
    let tombstone = &shown[0];
    assert_eq!(tombstone.id, top.id);
    assert!(tombstone.deleted && tombstone.author.is_none() && tombstone.text.is_none());
    assert_eq!(tombstone.replies, 1);
    assert_eq!(count_on(&f, alice.id, p).await, 1);
    let like = Some(ReactionKind::Like);
    f.refuses(r.set(carol.id, on_top, like).await, NO_COMMENT);
    assert_eq!(refusal(r.summary(None, on_top).await), NO_COMMENT);
    let replies = thread_of(&f, None, p, Some(top.id), 5).await;
    assert_eq!(ids_of(&replies), vec![reply.id]);
    c.delete(carol.id, reply.id).await.unwrap();
    assert!(thread_of(&f, None, p, None, 5).await.is_empty());
    assert_eq!(refusal(c.get(None, top.id).await), NO_COMMENT);
    assert_eq!(count_on(&f, alice.id, p).await, 0);
}

/// Who may read a post's comments and comment on it is who may see the
/// post: owner, friend, follower (as a stranger), stranger, anonymous (read
/// only), never across a block with the post's author; a commenter with a
/// block towards the viewer is left out of the viewer's threads.
pub async fn comments_follow_visibility_and_blocks_for_every_role(f: Fixture) {
    let c = cast(&f).await;
    let (owner, friend) = (&c.owner, &c.friend);
    let public = post(&f, owner.id, "all", Visibility::Public).await.id;
    let friends = post(&f, owner.id, "friends", Visibility::Friends).await.id;
    let by_blocker = comment(&f, c.blocker.id, public, None, "before").await;
    c.block(&f).await;
    let cases = [
        (owner.id, [true, true]),
        (friend.id, [true, true]),
        (c.follower.id, [true, false]),
        (c.stranger.id, [true, false]),
        (c.blocker.id, [false, false]),
        (c.blocked.id, [false, false]),
    ];
    let c = f.kith.comments();
    for (viewer, allowed) in cases {
        for (p, ok) in [public, friends].into_iter().zip(allowed) {
            let made = c.create(viewer, p, None, "hello").await;
            let read = c.thread(Some(viewer), p, None, &Page::first()).await;
            if ok {
                assert!(made.is_ok() && read.is_ok(), "{viewer} {p}");
            } else {
                f.refuses(made, NO_POST);
                assert_eq!(refusal(read), NO_POST);
            }
        }
    }
    assert!(c.thread(None, public, None, &Page::first()).await.is_ok());
    let anonymous = c.thread(None, friends, None, &Page::first()).await;
    assert_eq!(refusal(anonymous), NO_POST);
    // The blocker's old comment: hidden from the owner, shown to others.
    let for_owner = ids_of(&thread_of(&f, Some(owner.id), public, None, 2).await);
    assert!(!for_owner.contains(&by_blocker.id));
    assert_eq!(for_owner.len(), 4);
    assert_eq!(
        refusal(c.get(Some(owner.id), by_blocker.id).await),
        NO_COMMENT
    );
    let for_friend = ids_of(&thread_of(&f, Some(friend.id), public, None, 2).await);
    assert_eq!(for_friend[0], by_blocker.id);
    assert_eq!(for_friend.len(), 5);
}

/// A deleted account's comments disappear, or stay as tombstones where
/// they have replies; its reactions to comments disappear from counts.
pub async fn a_deleted_accounts_comments_disappear(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let p = post(&f, alice.id, "hi", Visibility::Public).await.id;
    let lone = comment(&f, bob.id, p, None, "lone").await;
    let answered = comment(&f, bob.id, p, None, "answered").await;
    let reply = comment(&f, carol.id, p, Some(answered.id), "reply").await;
    let on_reply = ReactionTarget::Comment {
        comment_id: reply.id,
    };
    let r = f.kith.reactions();
    r.set(bob.id, on_reply, Some(ReactionKind::Wow))
        .await
        .unwrap();
    f.delete(&bob).await;
    let c = f.kith.comments();
    assert_eq!(refusal(c.get(None, lone.id).await), NO_COMMENT);
    let shown = thread_of(&f, None, p, None, 5).await;
    assert_eq!(ids_of(&shown), vec![answered.id]);
    assert!(shown[0].deleted && shown[0].author.is_none() && shown[0].text.is_none());
    assert_eq!(count_on(&f, alice.id, p).await, 1);
    assert_eq!(r.summary(None, on_reply).await.unwrap().total, 0);
}

/// Threads page oldest first without gaps and refuse bad pages; a thread of
/// a comment names its post.
pub async fn threads_page_and_refuse_bad_input(f: Fixture) {
    let [alice] = f.users(["alice"]).await;
    let p = post(&f, alice.id, "hi", Visibility::Public).await.id;
    let other = post(&f, alice.id, "other", Visibility::Public).await.id;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(comment(&f, alice.id, p, None, &format!("c{i}")).await.id);
    }
    assert_eq!(ids_of(&thread_of(&f, None, p, None, 2).await), made);
    let c = f.kith.comments();
    for limit in [0, 101] {
        let bad = c.thread(None, p, None, &Page::with_limit(limit)).await;
        assert_eq!(refusal(bad), Invalid("limit"));
    }
    let bad = c.thread(None, p, None, &Page::after("zz", None)).await;
    assert_eq!(refusal(bad), Invalid("cursor"));
    let crossed = c.thread(None, other, Some(made[0]), &Page::first()).await;
    assert_eq!(refusal(crossed), NO_COMMENT);
}
