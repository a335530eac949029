//! Media: [`Media`], reached through [`Kith::media`](crate::Kith::media).
//!
//! An upload is a [`MediaItem`] (the record storage keeps, through
//! [`MediaStore`](crate::MediaStore)) and the bytes of its [`Variant`]s
//! (kept by a [`ByteStore`] the embedder gives the builder, under
//! [`MediaItem::key`]). Kith does not decode anything: the embedder (the
//! server) detects the type from the bytes, decodes, re-encodes and
//! thumbnails, then hands the results to [`Media::upload`], which stores the
//! bytes and then the record, or nothing.
//!
//! The rules:
//! - an upload starts unattached and expires [`Config::media_grace`] after
//!   it was made; [`Media::collect_garbage`] removes expired uploads (record
//!   and bytes);
//! - only its owner may [attach](Media::attach) it, and only once, before
//!   it expires; attaching it as the owner's avatar or cover releases the one
//!   attached there before (it expires at once);
//! - who may see it follows what it is attached to ([`MediaItem::can_view`]):
//!   an unattached upload only its owner, an avatar or cover whoever may see
//!   the owner's card.
//!
//! [`Config::media_grace`]: crate::Config::media_grace

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Clash, Denied, Entity, Error, Result};
use crate::ids::{MediaId, UserId};
use crate::kith::Inner;
use crate::privacy::Role;
use crate::rate::WriteKind;

/// What kind of media an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaKind {
    /// A still image.
    Image,
}

impl MediaKind {
    /// The stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(MediaKind::Image),
            _ => None,
        }
    }
}

/// One stored rendition of a media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The upload as the embedder re-encoded it (upright, without metadata).
    Original,
    /// A small rendition for lists and previews.
    Thumbnail,
}

impl Variant {
    /// Every variant, in order.
    pub const ALL: [Variant; 2] = [Variant::Original, Variant::Thumbnail];

    /// The stable lowercase name, as stored and as URLs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumbnail => "thumbnail",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What a media item is attached to. Until it is attached, only its owner
/// sees it and it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Attachment {
    /// The owner's avatar.
    Avatar,
    /// The owner's cover image.
    Cover,
}

impl Attachment {
    /// The stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Attachment::Avatar => "avatar",
            Attachment::Cover => "cover",
        }
    }

    /// The id of what it is attached to, as stored next to
    /// [`Self::as_str`]: the owner for an avatar or a cover.
    pub fn target(self, owner: UserId) -> u64 {
        match self {
            Attachment::Avatar | Attachment::Cover => owner.get(),
        }
    }

    /// The attachment stored as `kind` and `target` for media of `owner`;
    /// `None` for an unknown kind or a target that does not fit it.
    pub fn parse(kind: &str, target: u64, owner: UserId) -> Option<Self> {
        let attachment = match kind {
            "avatar" => Attachment::Avatar,
            "cover" => Attachment::Cover,
            _ => return None,
        };
        (attachment.target(owner) == target).then_some(attachment)
    }

    /// Whether at most one item is attached here at a time: attaching
    /// another releases the previous one.
    pub fn is_single(self) -> bool {
        matches!(self, Attachment::Avatar | Attachment::Cover)
    }
}

/// An uploaded media item, as storage keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaItem {
    /// The item's id.
    pub id: MediaId,
    /// Who uploaded it.
    pub owner: UserId,
    /// What it is.
    pub kind: MediaKind,
    /// The MIME type of the original variant (`image/jpeg`...).
    pub content_type: String,
    /// The size of the original variant in bytes.
    pub byte_size: u64,
    /// The original's width in pixels.
    pub width: u32,
    /// The original's height in pixels.
    pub height: u32,
    /// The variants stored, in [`Variant`] order; always with the original.
    pub variants: Vec<Variant>,
    /// When it was uploaded.
    pub created_at: Timestamp,
    /// What it is attached to; `None` while unattached.
    pub attachment: Option<Attachment>,
    /// When an unattached item stops being attachable and may be removed;
    /// `None` once attached.
    pub expires_at: Option<Timestamp>,
}

impl MediaItem {
    /// The key of a variant's bytes in the [`ByteStore`]: `media/<id>/<variant>`.
    pub fn key(id: MediaId, variant: Variant) -> String {
        format!("media/{id}/{}", variant.as_str())
    }

    /// The content type of a variant: the original's for every variant
    /// (embedders re-encode thumbnails in the original's format).
    pub fn content_type_of(&self, variant: Variant) -> Option<&str> {
        self.variants
            .contains(&variant)
            .then_some(self.content_type.as_str())
    }

    /// Whether anyone holding its URL may read it without signing in: what
    /// is shown wherever the owner's card is (an avatar, a cover). Other
    /// media is served through signed, expiring URLs only.
    pub fn is_public(&self) -> bool {
        matches!(
            self.attachment,
            Some(Attachment::Avatar | Attachment::Cover)
        )
    }

    /// Whether a viewer with `role` towards the owner may see the item:
    /// an unattached upload only its owner; an avatar or a cover whoever may
    /// see the owner's card.
    pub fn can_view(&self, role: Role) -> bool {
        match self.attachment {
            None => role == Role::Owner,
            Some(Attachment::Avatar | Attachment::Cover) => role.can_see_user(),
        }
    }

    /// Whether it is unattached and expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Input of [`Media::upload`]: what the embedder made of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMedia {
    /// What it is.
    pub kind: MediaKind,
    /// The MIME type the embedder detected from the bytes and encoded the
    /// variants in (`type/subtype`).
    pub content_type: String,
    /// The original's width in pixels.
    pub width: u32,
    /// The original's height in pixels.
    pub height: u32,
    /// The bytes of each variant; the original is required, each variant at
    /// most once, none empty.
    pub variants: Vec<(Variant, Vec<u8>)>,
}

/// Where the bytes of media live, by key: a local directory, an object
/// store shared by several nodes... The embedder implements it over its
/// runtime; [`MemoryBytes`] keeps them in memory.
#[async_trait]
pub trait ByteStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;

    /// The bytes under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the bytes under `key`; removing a missing key is no error.
    async fn delete(&self, key: &str) -> Result<()>;
}

/// A [`ByteStore`] in memory: the default of
/// [`KithBuilder::bytes`](crate::KithBuilder::bytes), for tests and
/// embedders that keep nothing between runs.
#[derive(Debug, Default)]
pub struct MemoryBytes(Mutex<HashMap<String, Vec<u8>>>);

impl MemoryBytes {
    /// The keys stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.map().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ByteStore for MemoryBytes {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.map().insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map().get(key).cloned())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.map().remove(key);
        Ok(())
    }
}

/// How many expired uploads [`Media::collect_garbage`] removes per storage
/// read.
const COLLECT_BATCH: u32 = 100;

/// Uploads, attachments and who may see them; see the [module](self).
pub struct Media<'a> {
    pub(crate) kith: &'a Inner,
}

impl Media<'_> {
    /// Stores an upload of `actor`: each variant's bytes under
    /// [`MediaItem::key`], then the unattached record, which expires
    /// [`Config::media_grace`](crate::Config::media_grace) from now. If any
    /// step fails, the bytes stored so far are removed again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`content_type`, `variants`) for a malformed
    /// content type, no original, a variant given twice or empty bytes;
    /// [`Error::NotFound`] ([`Entity::User`]) if `actor` is not a live
    /// account; [`Error::RateLimited`] beyond the actor's upload rate
    /// ([`Config::write_rates`](crate::Config::write_rates)). Nothing is
    /// stored then.
    pub async fn upload(&self, actor: UserId, input: NewMedia) -> Result<MediaItem> {
        let mut variants: Vec<Variant> = input.variants.iter().map(|(v, _)| *v).collect();
        variants.sort();
        variants.dedup();
        if !is_mime_type(&input.content_type) {
            return Err(Error::invalid("content_type", "expected type/subtype"));
        }
        if variants.len() != input.variants.len() {
            return Err(Error::invalid("variants", "a variant is given twice"));
        }
        if !variants.contains(&Variant::Original) {
            return Err(Error::invalid("variants", "the original is required"));
        }
        if input.variants.iter().any(|(_, bytes)| bytes.is_empty()) {
            return Err(Error::invalid("variants", "a variant is empty"));
        }
        self.kith.account(actor).await?;
        self.kith.take_write(actor, WriteKind::Upload).await?;
        let now = self.kith.clock.now();
        let grace = i64::try_from(self.kith.config.media_grace.as_millis()).unwrap_or(i64::MAX);
        let byte_size = input
            .variants
            .iter()
            .find(|(v, _)| *v == Variant::Original)
            .map_or(0, |(_, bytes)| bytes.len() as u64);
        let item = MediaItem {
            id: MediaId::new(self.kith.ids.next_id()),
            owner: actor,
            kind: input.kind,
            content_type: input.content_type,
            byte_size,
            width: input.width,
            height: input.height,
            variants,
            created_at: now,
            attachment: None,
            expires_at: Some(Timestamp::from_millis(
                now.as_millis().saturating_add(grace),
            )),
        };
        let bytes = &self.kith.bytes;
        let mut stored = Vec::with_capacity(input.variants.len());
        let mut outcome = Ok(());
        for (variant, data) in input.variants {
            let key = MediaItem::key(item.id, variant);
            outcome = bytes.put(&key, data).await;
            stored.push(key);
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_ok() {
            outcome = self.kith.storage.insert_media(&item).await;
        }
        if let Err(e) = outcome {
            for key in stored {
                // The error to report is the first one; a key left behind
                // here has no record and is never served.
                let _ = bytes.delete(&key).await;
            }
            return Err(e);
        }
        Ok(item)
    }

    /// The item as `viewer` (`None`: not signed in) may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Media`]) if there is no such item, it
    /// expired, or the viewer may not see it ([`MediaItem::can_view`]).
    pub async fn get(&self, viewer: Option<UserId>, id: MediaId) -> Result<MediaItem> {
        let not_found = Error::NotFound(Entity::Media);
        let item = self.kith.storage.media(id).await?.ok_or(not_found)?;
        if item.is_expired(self.kith.clock.now()) {
            return Err(Error::NotFound(Entity::Media));
        }
        let role = self.kith.role(viewer, item.owner).await?;
        if !item.can_view(role) {
            return Err(Error::NotFound(Entity::Media));
        }
        Ok(item)
    }

    /// The item, whoever asks, if it has not expired: for serving bytes
    /// through a URL whose signature the embedder checked, or that of
    /// [public](MediaItem::is_public) media.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Media`]) if there is no such item or
    /// it expired.
    pub async fn find(&self, id: MediaId) -> Result<MediaItem> {
        let item = self.kith.storage.media(id).await?;
        item.filter(|item| !item.is_expired(self.kith.clock.now()))
            .ok_or(Error::NotFound(Entity::Media))
    }

    /// Attaches `actor`'s upload `id` to `attachment` and returns the item
    /// as it now is. Attaching an avatar or a cover releases the item
    /// attached there before: it expires at once and the next
    /// [`Self::collect_garbage`] removes it. Storage re-checks the owner,
    /// that it is unattached and that it has not expired in the writing
    /// transaction, so of two attaches at once one wins.
    ///
    /// This is what other areas call to attach media (posts, messages): each
    /// adds its [`Attachment`] and the rule of who may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Media`]) as [`Self::get`];
    /// [`Error::Forbidden`] ([`Denied::NotOwner`]) if the actor may see it
    /// but did not upload it; [`Error::Conflict`] ([`Clash::MediaAttached`])
    /// if it is already attached. Nothing changes then.
    pub async fn attach(
        &self,
        actor: UserId,
        id: MediaId,
        attachment: Attachment,
    ) -> Result<MediaItem> {
        let mut item = self.get(Some(actor), id).await?;
        if item.owner != actor {
            return Err(Error::Forbidden(Denied::NotOwner));
        }
        if item.attachment.is_some() {
            return Err(Error::Conflict(Clash::MediaAttached));
        }
        let now = self.kith.clock.now();
        if !self
            .kith
            .storage
            .attach_media(id, actor, attachment, now)
            .await?
        {
            // Attached (or expired) meanwhile.
            return match self.kith.storage.media(id).await? {
                Some(now) if now.attachment.is_some() => Err(Error::Conflict(Clash::MediaAttached)),
                _ => Err(Error::NotFound(Entity::Media)),
            };
        }
        item.attachment = Some(attachment);
        item.expires_at = None;
        Ok(item)
    }

    /// Removes every upload that expired (never attached in time, or
    /// released): the bytes of each variant, then the record. A node's
    /// periodic work; several nodes may run it at once. Returns how many
    /// items were removed.
    ///
    /// # Errors
    /// Storage and byte-store errors; the items not yet removed are removed
    /// by the next call.
    pub async fn collect_garbage(&self) -> Result<usize> {
        let now = self.kith.clock.now();
        let mut removed = 0;
        loop {
            let expired = self.kith.storage.expired_media(now, COLLECT_BATCH).await?;
            let last = expired.len() < COLLECT_BATCH as usize;
            for item in expired {
                for variant in &item.variants {
                    self.kith
                        .bytes
                        .delete(&MediaItem::key(item.id, *variant))
                        .await?;
                }
                if self.kith.storage.delete_media(item.id, now).await? {
                    removed += 1;
                }
            }
            if last {
                return Ok(removed);
            }
        }
    }

    /// The bytes of a variant of `item`, as a [`Self::get`] or
    /// [`Self::find`] returned it.
    ///
    /// # Errors
    /// [`Error::NotFound`] ([`Entity::Media`]) if the item has no such
    /// variant or its bytes are gone.
    pub async fn bytes(&self, item: &MediaItem, variant: Variant) -> Result<Vec<u8>> {
        if !item.variants.contains(&variant) {
            return Err(Error::NotFound(Entity::Media));
        }
        self.kith
            .bytes
            .get(&MediaItem::key(item.id, variant))
            .await?
            .ok_or(Error::NotFound(Entity::Media))
    }
}

/// Whether `s` looks like `type/subtype`: two non-empty tokens of ASCII
/// letters, digits and `+-.`, at most 100 characters.
fn is_mime_type(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    s.len() <= 100 && s.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attachment: Option<Attachment>) -> MediaItem {
        MediaItem {
            id: MediaId::new(1),
            owner: UserId::new(2),
            kind: MediaKind::Image,
            content_type: "image/png".into(),
            byte_size: 10,
            width: 1,
            height: 1,
            variants: vec![Variant::Original],
            created_at: Timestamp::from_millis(0),
            attachment,
            expires_at: None,
        }
    }

    #[test]
    fn who_may_view_follows_the_attachment() {
        use Role::*;
        let roles = [Owner, Friend, Stranger, Blocked, Anonymous];
        let unattached = item(None);
        let avatar = item(Some(Attachment::Avatar));
        for role in roles {
            assert_eq!(unattached.can_view(role), role == Owner, "{role:?}");
            assert_eq!(avatar.can_view(role), role.can_see_user(), "{role:?}");
        }
        assert!(avatar.is_public() && !unattached.is_public());
    }

    #[test]
    fn names_round_trip() {
        for v in Variant::ALL {
            assert_eq!(Variant::parse(v.as_str()), Some(v));
        }
        assert_eq!(Variant::parse("huge"), None);
        let owner = UserId::new(7);
        for a in [Attachment::Avatar, Attachment::Cover] {
            assert_eq!(Attachment::parse(a.as_str(), 7, owner), Some(a));
            assert_eq!(Attachment::parse(a.as_str(), 8, owner), None);
        }
        assert_eq!(MediaKind::parse("image"), Some(MediaKind::Image));
        assert_eq!(
            MediaItem::key(MediaId::new(5), Variant::Thumbnail),
            "media/5/thumbnail"
        );
    }

    #[test]
    fn mime_types_are_type_slash_subtype() {
        assert!(is_mime_type("image/jpeg"));
        assert!(is_mime_type("image/svg+xml"));
        for bad in ["", "image", "image/", "/png", "image/png; q=1", "a/b/c"] {
            assert!(!is_mime_type(bad), "{bad}");
        }
    }
}
