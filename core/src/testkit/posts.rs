//! Conformance cases for posts: creating, editing and deleting them, their
//! hashtags and mentions, who may read them, and the two lists of posts (a
//! profile's timeline and a hashtag's posts).

use crate::testkit::blocks::block;
use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, Refusal, NO_USER};
use crate::{
    Account, Clock, Config, Denied, Entity, NewPost, Page, Post, PostId, PostPatch, Result, UserId,
    Visibility,
};

const NO_POST: Refusal = NotFound(Entity::Post);

/// Creates a post by `author` and advances the clock. Its announcement
/// (checked in `feeds`) is taken from the recorded events.
pub(crate) async fn post(f: &Fixture, author: UserId, text: &str, visibility: Visibility) -> Post {
    let new = NewPost {
        text: text.into(),
        visibility,
        shared_id: None,
    };
    let post = f.kith.posts().create(author, new).await.unwrap();
    f.take_events();
    f.tick();
    post
}

/// The ids of `posts`, in order.
pub(crate) fn post_ids(posts: &[Post]) -> Vec<PostId> {
    posts.iter().map(|p| p.id).collect()
}

/// Every post of `user`'s timeline as `viewer` sees it, read `limit` at a time.
pub(crate) async fn timeline_of(
    f: &Fixture,
    viewer: Option<UserId>,
    user: UserId,
    limit: u32,
) -> Vec<PostId> {
    let posts = all_pages(limit, |page| async move {
        f.kith.posts().timeline(viewer, user, &page).await
    })
    .await;
    post_ids(&posts)
}

/// Every post with `tag` as `viewer` sees them, read `limit` at a time.
pub(crate) async fn hashtag_of(
    f: &Fixture,
    viewer: Option<UserId>,
    tag: &str,
    limit: u32,
) -> Vec<PostId> {
    let posts = all_pages(limit, |page| async move {
        f.kith.posts().hashtag(viewer, tag, &page).await
    })
    .await;
    post_ids(&posts)
}

/// Creating a post returns it with its author, hashtags (lowercased, once
/// each) and the live users it mentions (usernames in any case); unknown
/// and deleted users are not mentions.
pub async fn create_returns_the_post_with_hashtags_and_mentions(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    f.delete(&dave).await;
    let text = "Hello @BOB and @carol, not @nobody nor @dave: #Rust #rust #Ünï_2 a#b";
    let now = f.clock.now();
    let created = post(&f, alice.id, text, Visibility::Friends).await;
    assert_eq!(created.author, alice.user());
    assert_eq!(created.text, text);
    assert_eq!(created.visibility, Visibility::Friends);
    assert_eq!(created.hashtags, vec!["rust", "ünï_2"]);
    let mut mentioned = vec![bob.id, carol.id];
    mentioned.sort();
    assert_eq!(created.mentions, mentioned);
    assert_eq!(created.created_at, now);
    assert_eq!(created.edited_at, None);
    let read = f
        .kith
        .posts()
        .get(Some(alice.id), created.id)
        .await
        .unwrap();
    assert_eq!(read, created);
    let second = post(&f, alice.id, "again", Visibility::Public).await;
    assert!(second.position > created.position);
    assert!(second.hashtags.is_empty() && second.mentions.is_empty());
    f.assert_no_events();
}

/// A blank, too long or over-tagged text is invalid and stores nothing.
pub async fn create_rejects_bad_texts_and_stores_nothing(f: Fixture) {
    let [alice] = f.users(["alice"]).await;
    let f = f.reconfigure(Config {
        max_post_chars: 10,
        ..crate::testkit::config()
    });
    let many_tags: String = (0..31)
        .map(|i| format!("#t{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    for text in [
        "",
        "   ",
        "\n",
        "12345678901",
        "a\u{7}b",
        many_tags.as_str(),
    ] {
        let new = NewPost {
            text: text.into(),
            visibility: Visibility::Public,
            shared_id: None,
        };
        let created = f.kith.posts().create(alice.id, new).await;
        f.refuses(created, Invalid("text"));
    }
    assert!(timeline_of(&f, Some(alice.id), alice.id, 10)
        .await
        .is_empty());
    let unknown = UserId::new(12345);
    let new = NewPost {
        text: "hi".into(),
        visibility: Visibility::Public,
        shared_id: None,
    };
    f.refuses(f.kith.posts().create(unknown, new).await, NO_USER);
}

/// Editing replaces the text and visibility, parses hashtags and mentions
/// again, sets `edited_at` and keeps the post's place in its lists.
pub async fn edit_replaces_text_and_reparses_tags(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let first = post(&f, alice.id, "#old @bob", Visibility::Public).await;
    let later = post(&f, alice.id, "later", Visibility::Public).await;
    let at = f.clock.now();
    let patch = PostPatch {
        text: Some("#New text".into()),
        visibility: None,
    };
    let edited = f
        .kith
        .posts()
        .edit(alice.id, first.id, patch)
        .await
        .unwrap();
    assert_eq!(edited.text, "#New text");
    assert_eq!(edited.hashtags, vec!["new"]);
    assert!(edited.mentions.is_empty());
    assert_eq!(edited.edited_at, Some(at));
    assert_eq!(edited.position, first.position);
    assert_eq!(edited.visibility, Visibility::Public);
    assert!(hashtag_of(&f, None, "old", 10).await.is_empty());
    assert_eq!(hashtag_of(&f, None, "#NEW", 10).await, vec![first.id]);
    let patch = PostPatch {
        text: None,
        visibility: Some(Visibility::Private),
    };
    let private = f
        .kith
        .posts()
        .edit(alice.id, first.id, patch)
        .await
        .unwrap();
    assert_eq!(private.text, "#New text");
    assert_eq!(private.hashtags, vec!["new"]);
    assert_eq!(private.visibility, Visibility::Private);
    assert_eq!(
        timeline_of(&f, Some(bob.id), alice.id, 10).await,
        vec![later.id]
    );
    assert_eq!(
        timeline_of(&f, Some(alice.id), alice.id, 10).await,
        vec![later.id, first.id]
    );
    let blank = PostPatch {
        text: Some(" ".into()),
        visibility: None,
    };
    let refused = f.kith.posts().edit(alice.id, first.id, blank).await;
    f.refuses(refused, Invalid("text"));
    let read = f.kith.posts().get(Some(alice.id), first.id).await.unwrap();
    assert_eq!(read, private);
}

/// Only the author edits or deletes a post: others who see it are
/// forbidden, others who may not see it find nothing; nothing changes.
pub async fn only_the_author_edits_or_deletes(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let public = post(&f, alice.id, "public", Visibility::Public).await;
    let private = post(&f, alice.id, "private", Visibility::Private).await;
    let posts = f.kith.posts();
    let patch = || PostPatch {
        text: Some("mine now".into()),
        visibility: None,
    };
    f.refuses(
        posts.edit(bob.id, public.id, patch()).await,
        Forbidden(Denied::NotAuthor),
    );
    f.refuses(
        posts.delete(bob.id, public.id).await,
        Forbidden(Denied::NotAuthor),
    );
    f.refuses(posts.edit(bob.id, private.id, patch()).await, NO_POST);
    f.refuses(posts.delete(bob.id, private.id).await, NO_POST);
    let unknown = PostId::new(999);
    f.refuses(posts.edit(alice.id, unknown, patch()).await, NO_POST);
    f.refuses(posts.delete(alice.id, unknown).await, NO_POST);
    assert_eq!(posts.get(None, public.id).await.unwrap(), public);
    assert_eq!(
        posts.get(Some(alice.id), private.id).await.unwrap(),
        private
    );
}

/// A deleted post is gone from every read, its hashtags with it.
pub async fn delete_removes_the_post_from_every_read(f: Fixture) {
    let [alice] = f.users(["alice"]).await;
    let kept = post(&f, alice.id, "#tag kept", Visibility::Public).await;
    let gone = post(&f, alice.id, "#tag gone", Visibility::Public).await;
    f.kith.posts().delete(alice.id, gone.id).await.unwrap();
    f.assert_no_events();
    let posts = f.kith.posts();
    assert_eq!(refusal(posts.get(Some(alice.id), gone.id).await), NO_POST);
    let many = posts.get_many(None, &[gone.id, kept.id]).await.unwrap();
    assert_eq!(post_ids(&many), vec![kept.id]);
    assert_eq!(timeline_of(&f, None, alice.id, 10).await, vec![kept.id]);
    assert_eq!(hashtag_of(&f, None, "tag", 10).await, vec![kept.id]);
    assert_eq!(refusal(posts.delete(alice.id, gone.id).await), NO_POST);
}

/// The roles every read of posts, comments and reactions is checked for,
/// towards `owner`'s: friend, follower, stranger, and (once
/// [`Cast::block`]ed) a user who blocks the owner and one the owner blocks.
pub(crate) struct Cast {
    pub owner: Account,
    pub friend: Account,
    pub follower: Account,
    pub stranger: Account,
    pub blocker: Account,
    pub blocked: Account,
}

/// Registers the [`Cast`], befriends and follows; blocks come later.
pub(crate) async fn cast(f: &Fixture) -> Cast {
    let [owner, friend, follower, stranger, blocker, blocked] = f
        .users([
            "owner", "friend", "follower", "stranger", "blocker", "blocked",
        ])
        .await;
    f.befriend(owner.id, friend.id).await;
    f.follow(follower.id, owner.id).await;
    Cast {
        owner,
        friend,
        follower,
        stranger,
        blocker,
        blocked,
    }
}

impl Cast {
    /// The blocker blocks the owner, and the owner the blocked user.
    pub(crate) async fn block(&self, f: &Fixture) {
        block(f, self.blocker.id, self.owner.id).await;
        block(f, self.owner.id, self.blocked.id).await;
    }
}

/// Each viewer sees exactly what the visibility admits on every read:
/// one post, several, the timeline and the hashtag list. A follower sees
/// what a stranger sees; a block hides everything both ways.
pub async fn every_read_follows_visibility_for_every_role(f: Fixture) {
    let c = cast(&f).await;
    c.block(&f).await;
    let public = post(&f, c.owner.id, "#all public", Visibility::Public).await;
    let friends = post(&f, c.owner.id, "#all friends", Visibility::Friends).await;
    let private = post(&f, c.owner.id, "#all private", Visibility::Private).await;
    let all = [public.id, friends.id, private.id];
    let viewers: [(Option<UserId>, &[PostId]); 7] = [
        (Some(c.owner.id), &[private.id, friends.id, public.id]),
        (Some(c.friend.id), &[friends.id, public.id]),
        (Some(c.follower.id), &[public.id]),
        (Some(c.stranger.id), &[public.id]),
        (None, &[public.id]),
        (Some(c.blocker.id), &[]),
        (Some(c.blocked.id), &[]),
    ];
    let posts = f.kith.posts();
    for (viewer, expected) in viewers {
        for id in all {
            let read = posts.get(viewer, id).await;
            match expected.contains(&id) {
                true => assert_eq!(read.unwrap().id, id, "{viewer:?}"),
                false => assert_eq!(refusal(read), NO_POST, "{viewer:?}"),
            }
        }
        let mut many = post_ids(&posts.get_many(viewer, &all).await.unwrap());
        many.reverse();
        assert_eq!(many, expected, "{viewer:?}");
        assert_eq!(
            hashtag_of(&f, viewer, "all", 1).await,
            expected,
            "{viewer:?}"
        );
        let timeline = posts
            .timeline(viewer, c.owner.id, &Page::with_limit(1))
            .await;
        if viewer == Some(c.blocker.id) || viewer == Some(c.blocked.id) {
            assert_eq!(refusal(timeline), NO_USER, "{viewer:?}");
        } else {
            let listed = timeline_of(&f, viewer, c.owner.id, 1).await;
            assert_eq!(listed, expected, "{viewer:?}");
        }
    }
}

/// A deleted account's posts disappear from every read.
pub async fn a_deleted_accounts_posts_disappear(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let gone = post(&f, alice.id, "#tag bye", Visibility::Public).await;
    let kept = post(&f, bob.id, "#tag hi @alice", Visibility::Public).await;
    assert_eq!(kept.mentions, vec![alice.id]);
    f.delete(&alice).await;
    let posts = f.kith.posts();
    assert_eq!(refusal(posts.get(Some(bob.id), gone.id).await), NO_POST);
    let many = posts.get_many(None, &[gone.id, kept.id]).await.unwrap();
    assert_eq!(post_ids(&many), vec![kept.id]);
    assert!(many[0].mentions.is_empty());
    assert_eq!(hashtag_of(&f, None, "tag", 10).await, vec![kept.id]);
    let timeline = posts.timeline(None, alice.id, &Page::first()).await;
    assert_eq!(refusal(timeline), NO_USER);
}

/// Lists are newest first (by position) and pages neither repeat nor skip
/// a post while new posts arrive between them; a page is short only at the
/// end, even when posts the viewer may not see lie between.
pub async fn lists_page_newest_first_while_posts_arrive(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let mut mine = Vec::new();
    for i in 0..7 {
        let visibility = match i % 3 {
            0 => Visibility::Public,
            _ => Visibility::Private,
        };
        let p = post(&f, alice.id, &format!("#t post {i}"), visibility).await;
        if visibility == Visibility::Public {
            mine.push(p.id);
        }
    }
    mine.reverse();
    let posts = &f.kith.posts();
    let (alice, bob) = (alice.id, bob.id);
    for list in ["timeline", "hashtag"] {
        let page = |page: Page| async move {
            match list {
                "timeline" => posts.timeline(Some(bob), alice, &page).await,
                _ => posts.hashtag(Some(bob), "t", &page).await,
            }
        };
        let first = page(Page::with_limit(2)).await.unwrap();
        assert_eq!(post_ids(&first.items), mine[..2]);
        let newer = post(&f, alice, "#t newer", Visibility::Public).await;
        let cursor = first.next_cursor.unwrap();
        let second = page(Page::after(cursor, Some(2))).await.unwrap();
        assert_eq!(post_ids(&second.items), mine[2..]);
        assert_eq!(second.next_cursor, None);
        let fresh = page(Page::with_limit(10)).await.unwrap();
        assert_eq!(fresh.items[0].id, newer.id);
        mine.insert(0, newer.id);
    }
}

/// Posts created at once all get distinct positions and every list shows
/// each once.
pub async fn concurrent_posts_get_distinct_positions(f: Fixture) {
    let [alice] = f.users(["alice"]).await;
    let posts = &f.kith.posts();
    let creates = (0..20).map(|i| {
        let new = NewPost {
            text: format!("#busy {i}"),
            visibility: Visibility::Public,
            shared_id: None,
        };
        posts.create(alice.id, new)
    });
    let created: Vec<Post> = futures::future::try_join_all(creates).await.unwrap();
    let mut positions: Vec<u64> = created.iter().map(|p| p.position).collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 20);
    let mut by_position = created.clone();
    by_position.sort_by_key(|p| std::cmp::Reverse(p.position));
    let expected = post_ids(&by_position);
    assert_eq!(timeline_of(&f, None, alice.id, 3).await, expected);
    assert_eq!(hashtag_of(&f, None, "busy", 3).await, expected);
}

/// Lists refuse bad limits, cursors and hashtags; a timeline of an
/// unknown user is not found; `get_many` takes at most 100 ids.
pub async fn lists_reject_bad_input(f: Fixture) {
    let [alice] = f.users(["alice"]).await;
    post(&f, alice.id, "#a one", Visibility::Public).await;
    post(&f, alice.id, "#a two", Visibility::Public).await;
    let posts = &f.kith.posts();
    let alice = alice.id;
    let list = |which: u8, page: Page| async move {
        match which {
            0 => posts.timeline(None, alice, &page).await,
            _ => posts.hashtag(None, "a", &page).await,
        }
    };
    for which in [0, 1] {
        for limit in [0, 101] {
            let bad: Result<_> = list(which, Page::with_limit(limit)).await;
            assert_eq!(refusal(bad), Invalid("limit"));
        }
        for cursor in ["", "zz", "00", "7a7a"] {
            let bad = list(which, Page::after(cursor, None)).await;
            assert_eq!(refusal(bad), Invalid("cursor"));
        }
        // A cursor of one list is no cursor of the other.
        let other = list(1 - which, Page::with_limit(1)).await.unwrap();
        let bad = list(which, Page::after(other.next_cursor.unwrap(), None)).await;
        assert_eq!(refusal(bad), Invalid("cursor"));
    }
    for tag in ["", "#", "a b", "a-b"] {
        let bad = posts.hashtag(None, tag, &Page::first()).await;
        assert_eq!(refusal(bad), Invalid("tag"), "{tag:?}");
    }
    let unknown = posts
        .timeline(None, UserId::new(4242), &Page::first())
        .await;
    assert_eq!(refusal(unknown), NO_USER);
    let ids: Vec<PostId> = (0..101).map(PostId::new).collect();
    assert_eq!(refusal(posts.get_many(None, &ids).await), Invalid("ids"));
}
