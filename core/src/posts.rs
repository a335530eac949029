//! Posts: [`Posts`], reached through [`Kith::posts`](crate::Kith::posts).
//!
//! A post has an author, a text, a [`Visibility`] (who may read it, decided
//! by [`Role::can_see`]: a follower sees what a stranger sees), and the
//! hashtags and @mentions parsed from its text, stored beside it and parsed
//! again on every edit. Every post gets a `position` when it commits:
//! positions grow in commit order (storage takes them from one counter as the
//! last statement of the inserting transaction), so a list paged by position
//! never lets a post that committed late fall behind a cursor unseen.
//!
//! Every read applies the rules at read time: a post is shown only to a
//! viewer its visibility admits, never across a block (either direction),
//! and never once its author's account is deleted. What a viewer may not
//! see does not exist for them ([`Error::NotFound`]).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Denied, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{PostId, UserId};
use crate::kith::Inner;
use crate::model::{User, Visibility};
use crate::page::{fill, IdKey, Page, Paged};
use crate::privacy::Role;
use crate::rate::WriteKind;
use crate::storage::{NewPostRecord, PostContent, PostEditRecord, PostList, Viewed};
use crate::validate;

/// At most this many distinct hashtags in one post.
pub const HASHTAGS_MAX: usize = 30;
/// At most this many distinct @mentions in one post.
pub const MENTIONS_MAX: usize = 30;
/// A hashtag is at most this many characters (without the `#`).
pub const HASHTAG_LEN_MAX: usize = 100;
/// At most this many posts in one [`Posts::get_many`] call.
pub const GET_MANY_MAX: usize = 100;

/// A post as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Post {
    /// The post's id.
    pub id: PostId,
    /// Its author's card.
    pub author: User,
    /// The text, as written.
    pub text: String,
    /// Who may read it.
    pub visibility: Visibility,
    /// The hashtags of the text, lowercased, without `#`, without
    /// duplicates, sorted.
    pub hashtags: Vec<String>,
    /// The live users the text @mentions, by id, ordered by id.
    pub mentions: Vec<UserId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// Its place in commit order: a post committed later has a greater
    /// position. Lists of posts are ordered by it, newest first.
    pub position: u64,
    /// How many comments it has (replies included; neither tombstones nor
    /// comments of deleted accounts).
    pub comments: u64,
    /// How many shares of it there are (by live accounts).
    pub shares: u64,
    /// For a share: the post it shares (an original, never a share).
    pub shared_id: Option<PostId>,
    /// For a share: the shared post, if this viewer may see it (its
    /// visibility towards its own author decides); `None` if it is
    /// unavailable to them (hidden, deleted, or its author's account is).
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub original: Option<Box<Post>>,
}

/// A post to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPost {
    /// The text: at most [`Config::max_post_chars`](crate::Config::max_post_chars),
    /// not blank unless the post is a share (a share's blank text is empty).
    #[serde(default)]
    pub text: String,
    /// Who may read it (default public). A share's may not be wider than
    /// the shared post's.
    #[serde(default)]
    pub visibility: Visibility,
    /// To share a post: its id (sharing a share shares its original).
    #[serde(default)]
    pub shared_id: Option<PostId>,
}

/// Changes to a post; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostPatch {
    /// The new text (its hashtags and mentions are parsed again).
    #[serde(default)]
    pub text: Option<String>,
    /// The new visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// Creating, editing, deleting and reading posts.
pub struct Posts<'k> {
    pub(crate) kith: &'k Inner,
}

impl Posts<'_> {
    /// Creates a post by `actor`; with [`NewPost::shared_id`], a share of
    /// that post (or, if it is a share, of its original), which the actor
    /// must be able to see.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`text`) for a blank (unless a share) or too
    /// long text, or one with more than [`HASHTAGS_MAX`] hashtags,
    /// [`MENTIONS_MAX`] mentions or a hashtag longer than
    /// [`HASHTAG_LEN_MAX`]; (`visibility`) for a share wider than the shared
    /// post; [`Error::NotFound`] ([`Entity::User`]) if the actor is not a
    /// live account, ([`Entity::Post`]) if the actor may not see the post
    /// to share (also for a block committed meanwhile);
    /// [`Error::RateLimited`] beyond the actor's post rate (shares included;
    /// [`Config::write_rates`](crate::Config::write_rates)).
    pub async fn create(&self, actor: UserId, post: NewPost) -> Result<Post> {
        let share = post.shared_id.is_some();
        let text = self.text(&post.text, share)?;
        let content = content(text, post.visibility)?;
        self.kith.account(actor).await?;
        let shared_id = match post.shared_id {
            Some(id) => Some(self.shareable(actor, id, post.visibility).await?),
            None => None,
        };
        self.kith.take_write(actor, WriteKind::Post).await?;
        let record = NewPostRecord {
            id: PostId::new(self.kith.ids.next_id()),
            author: actor,
            content,
            shared_id,
            created_at: self.kith.clock.now(),
        };
        let entity = if share { Entity::Post } else { Entity::User };
        let post = self
            .kith
            .storage
            .insert_post(&record)
            .await?
            .ok_or(Error::NotFound(entity))?;
        self.announce(&post).await;
        self.embed(Some(actor), post).await
    }

    /// Tells the post's author and its audience (as far as its visibility
    /// reaches; in id order, after the author) that it was published. The post is stored: a failure to
    /// read the audience costs the live frame only (feeds have the post).
    async fn announce(&self, post: &Post) {
        let author = post.author.id;
        let audience = match post.visibility {
            Visibility::Private => Ok(Vec::new()),
            Visibility::Friends => self.kith.storage.audience(author, false).await,
            Visibility::Public => self.kith.storage.audience(author, true).await,
        };
        let Ok(mut audience) = audience else {
            return;
        };
        audience.sort_unstable();
        let event = Event::PostCreated {
            post_id: post.id,
            author_id: author,
        };
        self.kith.emit(Delivery::new(
            event,
            std::iter::once(author).chain(audience),
        ));
    }

    /// A post's validated text: a share's may be blank (stored empty).
    fn text(&self, text: &str, share: bool) -> Result<String> {
        if share && text.trim().is_empty() {
            return Ok(String::new());
        }
        validate::message_body("text", text, self.kith.config.max_post_chars)
    }

    /// The original that sharing `id` shares, if `actor` may see it and a
    /// share with `visibility` would not be wider.
    async fn shareable(&self, actor: UserId, id: PostId, visibility: Visibility) -> Result<PostId> {
        let post = self.seen(Some(actor), id).await?;
        let original = match post.shared_id {
            Some(original) => self.seen(Some(actor), original).await?,
            None => post,
        };
        if visibility.is_wider_than(original.visibility) {
            return Err(Error::invalid(
                "visibility",
                "a share may not be seen more widely than the post it shares",
            ));
        }
        Ok(original.id)
    }

    /// Edits a post of the actor's: its text and visibility. Sets
    /// `edited_at`; the hashtags and mentions are parsed again from the text.
    ///
    /// # Errors
    /// As [`Self::create`] for the text; [`Error::NotFound`] if the actor
    /// may not see the post; [`Error::Forbidden`] ([`Denied::NotAuthor`]) if
    /// it is someone else's. Nothing changes then.
    pub async fn edit(&self, actor: UserId, id: PostId, patch: PostPatch) -> Result<Post> {
        let post = self.authored(actor, id).await?;
        let share = post.shared_id.is_some();
        let text = patch.text.map(|t| self.text(&t, share)).transpose()?;
        let visibility = patch.visibility.unwrap_or(post.visibility);
        if let Some(original) = post.shared_id {
            // As stored: the author may no longer see it.
            let stored = self.kith.storage.posts(&[original], None).await?;
            if stored
                .iter()
                .any(|seen| visibility.is_wider_than(seen.value.visibility))
            {
                return Err(Error::invalid(
                    "visibility",
                    "a share may not be seen more widely than the post it shares",
                ));
            }
        }
        let record = PostEditRecord {
            id,
            author: actor,
            content: content(text.unwrap_or(post.text), visibility)?,
            edited_at: self.kith.clock.now(),
        };
        let post = self
            .kith
            .storage
            .update_post(&record)
            .await?
            .ok_or(Error::NotFound(Entity::Post))?;
        self.embed(Some(actor), post).await
    }

    /// Deletes a post of the actor's.
    ///
    /// # Errors
    /// As [`Self::edit`].
    pub async fn delete(&self, actor: UserId, id: PostId) -> Result<()> {
        self.authored(actor, id).await?;
        if self.kith.storage.delete_post(id, actor).await? {
            Ok(())
        } else {
            Err(Error::NotFound(Entity::Post))
        }
    }

    /// The post `id` if the actor may see it and wrote it.
    async fn authored(&self, actor: UserId, id: PostId) -> Result<Post> {
        let post = self.seen(Some(actor), id).await?;
        if post.author.id == actor {
            Ok(post)
        } else {
            Err(Error::Forbidden(Denied::NotAuthor))
        }
    }

    /// One post as `viewer` (`None`: anonymous) may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Post`]) if it does not exist, its
    /// author's account is deleted, or the viewer may not see it (its
    /// visibility, or a block in either direction).
    pub async fn get(&self, viewer: Option<UserId>, id: PostId) -> Result<Post> {
        let post = self.seen(viewer, id).await?;
        self.embed(viewer, post).await
    }

    /// As [`Self::get`], without a share's original: for the checks of
    /// whoever needs to know that the viewer may see the post.
    pub(crate) async fn seen(&self, viewer: Option<UserId>, id: PostId) -> Result<Post> {
        let found = self.kith.storage.posts(&[id], viewer).await?;
        found
            .into_iter()
            .find_map(|seen| visible(viewer, seen))
            .ok_or(Error::NotFound(Entity::Post))
    }

    /// `post` with its original embedded if it is a share.
    async fn embed(&self, viewer: Option<UserId>, post: Post) -> Result<Post> {
        let mut one = self.embed_all(viewer, vec![post]).await?;
        one.pop().ok_or(Error::NotFound(Entity::Post))
    }

    /// `posts` with the originals of the shares among them embedded where
    /// `viewer` may see them (one read for all).
    async fn embed_all(&self, viewer: Option<UserId>, mut posts: Vec<Post>) -> Result<Vec<Post>> {
        let mut ids: Vec<PostId> = posts.iter().filter_map(|p| p.shared_id).collect();
        if ids.is_empty() {
            return Ok(posts);
        }
        ids.sort();
        ids.dedup();
        let originals: Vec<Post> = self
            .kith
            .storage
            .posts(&ids, viewer)
            .await?
            .into_iter()
            .filter_map(|seen| visible(viewer, seen))
            .collect();
        for post in &mut posts {
            post.original = post
                .shared_id
                .and_then(|id| originals.iter().find(|o| o.id == id))
                .map(|o| Box::new(o.clone()));
        }
        Ok(posts)
    }

    /// The posts among `ids` that `viewer` may see, in the order of `ids`
    /// (repeated ids once); the others are left out.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`ids`) for more than [`GET_MANY_MAX`] ids.
    pub async fn get_many(&self, viewer: Option<UserId>, ids: &[PostId]) -> Result<Vec<Post>> {
        if ids.len() > GET_MANY_MAX {
            return Err(Error::invalid(
                "ids",
                format!("at most {GET_MANY_MAX} ids at once"),
            ));
        }
        let found = self.kith.storage.posts(ids, viewer).await?;
        let mut visible: Vec<Post> = found
            .into_iter()
            .filter_map(|seen| visible(viewer, seen))
            .collect();
        let mut ordered = Vec::with_capacity(visible.len());
        for id in ids {
            if let Some(at) = visible.iter().position(|p| p.id == *id) {
                ordered.push(visible.swap_remove(at));
            }
        }
        self.embed_all(viewer, ordered).await
    }

    /// The posts of `user` that `viewer` may see (a profile's timeline),
    /// newest first (by position).
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::User`]) if `user` is not a live account
    /// or one of the two blocks the other; [`Error::InvalidInput`] for
    /// `limit` or `cursor`.
    pub async fn timeline(
        &self,
        viewer: Option<UserId>,
        user: UserId,
        page: &Page,
    ) -> Result<Paged<Post>> {
        page.window::<IdKey>("timeline")?;
        self.kith.account(user).await?;
        if !self.kith.role(viewer, user).await?.can_see_user() {
            return Err(Error::NotFound(Entity::User));
        }
        self.list(viewer, PostList::Author(user), page, "timeline")
            .await
    }

    /// `viewer`'s home feed: the posts `viewer` may see by `viewer`, by
    /// `viewer`'s friends and by the users `viewer` follows, except users
    /// `viewer` mutes, newest first (by position). Pages never repeat or
    /// skip a post while posts arrive, at any depth: a post takes its
    /// position when it commits, so one committed after a page was read is
    /// above that page's cursor.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `limit` or `cursor`.
    pub async fn home(&self, viewer: UserId, page: &Page) -> Result<Paged<Post>> {
        self.list(Some(viewer), PostList::Home(viewer), page, "home")
            .await
    }

    /// The posts with hashtag `tag` (given with or without its `#`, in any
    /// case) that `viewer` may see, newest first (by position).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`tag`) if `tag` is not a hashtag; for
    /// `limit` or `cursor`.
    pub async fn hashtag(
        &self,
        viewer: Option<UserId>,
        tag: &str,
        page: &Page,
    ) -> Result<Paged<Post>> {
        let tag = hashtag(tag)?;
        self.list(viewer, PostList::Hashtag(tag), page, "hashtag")
            .await
    }

    /// A page of `list` as `viewer` may see it. Storage returns every post of
    /// the list with the links that decide whether the viewer may see it;
    /// what the viewer may not see is dropped, and storage is asked for more
    /// until the page is full or the list ends, so a page is short only at
    /// the end.
    async fn list(
        &self,
        viewer: Option<UserId>,
        list: PostList,
        page: &Page,
        name: &'static str,
    ) -> Result<Paged<Post>> {
        let (window, limit) = page.window::<IdKey>(name)?;
        let storage = &self.kith.storage;
        let list = &list;
        let rows = fill(
            window,
            |seen: &Viewed<Post>| IdKey(seen.value.position),
            |seen| may_see(viewer, seen),
            |window| async move { storage.list_posts(list, viewer, &window).await },
        )
        .await?;
        let posts = rows.into_iter().map(|seen| seen.value).collect();
        let page = Paged::from_rows(posts, limit, |p: &Post| IdKey(p.position));
        Ok(Paged {
            items: self.embed_all(viewer, page.items).await?,
            next_cursor: page.next_cursor,
        })
    }
}

/// Whether `viewer` may see `seen`'s post: the rule of every read of posts.
fn may_see(viewer: Option<UserId>, seen: &Viewed<Post>) -> bool {
    let role = Role::between(viewer, seen.value.author.id, seen.friends, seen.blocked);
    role.can_see(seen.value.visibility)
}

/// `seen`'s post if `viewer` may see it.
fn visible(viewer: Option<UserId>, seen: Viewed<Post>) -> Option<Post> {
    may_see(viewer, &seen).then_some(seen.value)
}

/// A post's content: `text` (validated) with its hashtags and mentions.
fn content(text: String, visibility: Visibility) -> Result<PostContent> {
    let (hashtags, mentions) = parse(&text)?;
    Ok(PostContent {
        text,
        visibility,
        hashtags,
        mentions,
    })
}

/// Whether `c` may be part of a hashtag.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The hashtags (lowercased, distinct, in order of first appearance) and
/// the mentioned usernames (ASCII-lowercased, distinct, in order) of `text`.
/// A `#` or `@` starts one only at the start of the text or after a
/// character that could not be part of it (so `a#b` and `me@example.com`
/// are neither). A hashtag is a run of Unicode letters, digits and `_`; a
/// mention is a run of ASCII letters, digits and `_` of a username's length.
///
/// # Errors
/// [`Error::InvalidInput`] (`text`) beyond [`HASHTAGS_MAX`] hashtags or
/// [`MENTIONS_MAX`] mentions, or for a hashtag longer than [`HASHTAG_LEN_MAX`].
pub fn parse(text: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut hashtags: Vec<String> = Vec::new();
    let mut mentions: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = i == 0 || !(tag_char(chars[i - 1]) || matches!(chars[i - 1], '#' | '@'));
        if !(starts && matches!(c, '#' | '@')) {
            i += 1;
            continue;
        }
        let word = |ok: fn(char) -> bool| -> String {
            chars[i + 1..].iter().take_while(|&&c| ok(c)).collect()
        };
        if c == '#' {
            let tag = word(tag_char);
            i += 1 + tag.chars().count();
            if tag.is_empty() {
                continue;
            }
            if tag.chars().count() > HASHTAG_LEN_MAX {
                return Err(Error::invalid(
                    "text",
                    format!("a hashtag is at most {HASHTAG_LEN_MAX} characters"),
                ));
            }
            push_new(&mut hashtags, tag.to_lowercase());
        } else {
            let name = word(|c| c.is_ascii_alphanumeric() || c == '_');
            i += 1 + name.len();
            if validate::username("mention", &name).is_ok() {
                push_new(&mut mentions, name.to_ascii_lowercase());
            }
        }
    }
    if hashtags.len() > HASHTAGS_MAX {
        return Err(Error::invalid(
            "text",
            format!("at most {HASHTAGS_MAX} hashtags"),
        ));
    }
    if mentions.len() > MENTIONS_MAX {
        return Err(Error::invalid(
            "text",
            format!("at most {MENTIONS_MAX} mentions"),
        ));
    }
    Ok((hashtags, mentions))
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A hashtag as a list names it: with or without its `#`, lowercased.
///
/// # Errors
/// [`Error::InvalidInput`] (`tag`) unless it is one hashtag.
pub fn hashtag(tag: &str) -> Result<String> {
    let bare = tag.strip_prefix('#').unwrap_or(tag);
    let len = bare.chars().count();
    if len == 0 || len > HASHTAG_LEN_MAX || !bare.chars().all(tag_char) {
        return Err(Error::invalid(
            "tag",
            format!("must be 1 to {HASHTAG_LEN_MAX} letters, digits or underscores"),
        ));
    }
    Ok(bare.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtags_and_mentions_are_parsed_from_the_text() {
        let (tags, names) =
            parse("#Rust and #rust, #Ünïcode_1! a#b @Alice @bob_2 me@example.com @al #").unwrap();
        assert_eq!(tags, vec!["rust", "ünïcode_1"]);
        assert_eq!(names, vec!["alice", "bob_2"]);
        let (tags, names) = parse("##double @@twice #日本語").unwrap();
        assert_eq!(tags, vec!["日本語"]);
        assert!(names.is_empty());
    }

    #[test]
    fn too_many_or_too_long_hashtags_are_refused() {
        let many: String = (0..=HASHTAGS_MAX).map(|i| format!("#t{i} ")).collect();
        assert!(parse(&many).is_err());
        assert!(parse(&format!("#{}", "a".repeat(HASHTAG_LEN_MAX + 1))).is_err());
        let mentions: String = (0..=MENTIONS_MAX).map(|i| format!("@user{i} ")).collect();
        assert!(parse(&mentions).is_err());
    }

    #[test]
    fn hashtag_names_are_normalised() {
        assert_eq!(hashtag("#Rust").unwrap(), "rust");
        assert_eq!(hashtag("Ünï").unwrap(), "ünï");
        for bad in ["", "#", "a b", "a#b", "#a-b"] {
            assert!(hashtag(bad).is_err(), "{bad}");
        }
    }
}
