//! Comments on posts: [`Comments`], reached through
//! [`Kith::comments`](crate::Kith::comments).
//!
//! A comment answers a post or, as a reply, another comment of the same
//! post. Whoever may see a post may read its comments and comment on it,
//! unless a block stands between them and the post's author (checked again
//! in the writing transaction). Its author edits it; its author or the
//! post's author deletes it. A deleted comment that has replies stays as a
//! tombstone (no text, no author) so its thread holds together; without
//! replies it is removed.
//!
//! Reads apply the rules at read time: comments of users with a block
//! between them and the viewer are left out, and a deleted account's
//! comments are too (or shown as tombstones when they have replies).
//! Threads are ordered oldest first, by id.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Denied, Entity, Error, Result};
use crate::ids::{CommentId, PostId, UserId};
use crate::kith::Inner;
use crate::model::User;
use crate::page::{fill, IdKey, Page, Paged};
use crate::posts::Posts;
use crate::privacy::Role;
use crate::rate::WriteKind;
use crate::storage::{NewCommentRecord, Viewed};
use crate::validate;

/// A comment as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comment {
    /// The comment's id.
    pub id: CommentId,
    /// The post it belongs to.
    pub post_id: PostId,
    /// The comment it replies to; `None` for a comment on the post itself.
    pub parent_id: Option<CommentId>,
    /// Its author's card; `None` for a tombstone.
    pub author: Option<User>,
    /// The text; `None` for a tombstone.
    pub text: Option<String>,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// Whether it is a tombstone: deleted (or its author's account is), kept
    /// for its replies.
    pub deleted: bool,
    /// How many replies it has (tombstones included).
    pub replies: u64,
}

/// Writing, editing, deleting and reading comments.
pub struct Comments<'k> {
    pub(crate) kith: &'k Inner,
}

impl Comments<'_> {
    fn posts(&self) -> Posts<'_> {
        Posts { kith: self.kith }
    }

    /// Comments on post `post_id` as `actor`, or replies to comment `parent`
    /// of that post.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`text`) for a blank or too long text
    /// (at most [`Config::max_message_chars`](crate::Config::max_message_chars));
    /// [`Error::NotFound`] ([`Entity::Post`]) if the actor may not see the
    /// post or a block stands between them and its author;
    /// [`Error::NotFound`] ([`Entity::Comment`]) if `parent` is not a comment
    /// of the post the actor may see (or is a tombstone);
    /// [`Error::RateLimited`] beyond the actor's comment rate
    /// ([`Config::write_rates`](crate::Config::write_rates)).
    pub async fn create(
        &self,
        actor: UserId,
        post_id: PostId,
        parent: Option<CommentId>,
        text: &str,
    ) -> Result<Comment> {
        let text = validate::message_body("text", text, self.kith.config.max_message_chars)?;
        self.posts().seen(Some(actor), post_id).await?;
        if let Some(parent) = parent {
            let parent = self.get(Some(actor), parent).await?;
            if parent.post_id != post_id || parent.deleted {
                return Err(Error::NotFound(Entity::Comment));
            }
        }
        self.kith.take_write(actor, WriteKind::Comment).await?;
        let record = NewCommentRecord {
            id: CommentId::new(self.kith.ids.next_id()),
            post_id,
            parent_id: parent,
            author: actor,
            text,
            created_at: self.kith.clock.now(),
        };
        if !self.kith.storage.insert_comment(&record).await? {
            // The post, the parent, or the way to them went meanwhile.
            return Err(Error::NotFound(Entity::Post));
        }
        self.get(Some(actor), record.id).await
    }

    /// Replaces the text of a comment of the actor's; sets `edited_at`.
    ///
    /// # Errors
    /// As [`Self::create`] for `text`; [`Error::NotFound`] if the actor may
    /// not see it or it is a tombstone; [`Error::Forbidden`]
    /// ([`Denied::NotAuthor`]) if it is someone else's.
    pub async fn edit(&self, actor: UserId, id: CommentId, text: &str) -> Result<Comment> {
        let text = validate::message_body("text", text, self.kith.config.max_message_chars)?;
        let comment = self.get(Some(actor), id).await?;
        if comment.deleted {
            return Err(Error::NotFound(Entity::Comment));
        }
        if comment.author.map(|a| a.id) != Some(actor) {
            return Err(Error::Forbidden(Denied::NotAuthor));
        }
        let at = self.kith.clock.now();
        if !self
            .kith
            .storage
            .update_comment(id, actor, &text, at)
            .await?
        {
            return Err(Error::NotFound(Entity::Comment));
        }
        self.get(Some(actor), id).await
    }

    /// Deletes a comment; its author or the post's author may. With replies
    /// it stays as a tombstone, without it is removed (and so is a
    /// tombstone it was the last reply of).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor may not see it or it is a tombstone;
    /// [`Error::Forbidden`] ([`Denied::NotAuthor`]) for anyone else.
    pub async fn delete(&self, actor: UserId, id: CommentId) -> Result<()> {
        let comment = self.get(Some(actor), id).await?;
        if comment.deleted {
            return Err(Error::NotFound(Entity::Comment));
        }
        let post = self.posts().seen(Some(actor), comment.post_id).await?;
        let by_author = comment.author.map(|a| a.id) == Some(actor);
        if !by_author && post.author.id != actor {
            return Err(Error::Forbidden(Denied::NotAuthor));
        }
        let at = self.kith.clock.now();
        if self.kith.storage.delete_comment(id, at).await? {
            Ok(())
        } else {
            Err(Error::NotFound(Entity::Comment))
        }
    }

    /// One comment as `viewer` (`None`: anonymous) may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Comment`]) if it does not exist, the
    /// viewer may not see its post, or a block stands between the viewer
    /// and its author; a deleted account's comment without replies is gone.
    pub async fn get(&self, viewer: Option<UserId>, id: CommentId) -> Result<Comment> {
        let found = self.kith.storage.comments(&[id], viewer).await?;
        let seen = found
            .into_iter()
            .next()
            .ok_or(Error::NotFound(Entity::Comment))?;
        let post_id = seen.value.post_id;
        let comment = shown(viewer, seen).ok_or(Error::NotFound(Entity::Comment))?;
        match self.posts().seen(viewer, post_id).await {
            Ok(_) => Ok(comment),
            Err(Error::NotFound(_)) => Err(Error::NotFound(Entity::Comment)),
            Err(e) => Err(e),
        }
    }

    /// A page of the comments on a post (`parent` `None`) or of the replies
    /// to comment `parent` of that post, oldest first, as `viewer` may see
    /// them.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Post`]) if the viewer may not see the
    /// post; ([`Entity::Comment`]) if `parent` is not a comment of it that
    /// the viewer may see; [`Error::InvalidInput`] for `limit` or `cursor`.
    pub async fn thread(
        &self,
        viewer: Option<UserId>,
        post_id: PostId,
        parent: Option<CommentId>,
        page: &Page,
    ) -> Result<Paged<Comment>> {
        let (window, limit) = page.window::<IdKey>("comments")?;
        self.posts().seen(viewer, post_id).await?;
        if let Some(parent) = parent {
            if self.get(viewer, parent).await?.post_id != post_id {
                return Err(Error::NotFound(Entity::Comment));
            }
        }
        let storage = &self.kith.storage;
        let rows = fill(
            window,
            |seen: &Viewed<Comment>| IdKey(seen.value.id.get()),
            |seen| shown(viewer, seen.clone()).is_some(),
            |window| async move {
                storage
                    .list_comments(post_id, parent, viewer, &window)
                    .await
            },
        )
        .await?;
        let comments = rows.into_iter().filter_map(|seen| shown(viewer, seen));
        Ok(Paged::from_rows(
            comments.collect(),
            limit,
            |c: &Comment| IdKey(c.id.get()),
        ))
    }
}

/// The comment as `viewer` may see it, if at all: nothing across a block
/// with its author; a tombstone (no text, no author) if it was deleted or
/// its author's account was, as long as it has replies; nothing otherwise.
fn shown(viewer: Option<UserId>, seen: Viewed<Comment>) -> Option<Comment> {
    let mut comment = seen.value;
    let gone = comment.deleted || comment.author.is_none();
    if gone {
        if comment.replies == 0 {
            return None;
        }
        comment.author = None;
        comment.text = None;
        comment.deleted = true;
        return Some(comment);
    }
    let author = comment.author.as_ref().map(|a| a.id)?;
    Role::between(viewer, author, seen.friends, seen.blocked)
        .can_see_user()
        .then_some(comment)
}
