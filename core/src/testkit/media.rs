//! Conformance cases for media: uploads, who may see them, attaching and the
//! expiry of uploads never attached.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::testkit::{refusal, Fixture, Refusal};
use crate::{
    Attachment, ByteStore, Clash, Config, Denied, Entity, Error, Kith, MediaId, MediaItem,
    MediaKind, NewMedia, Result, TimeOrderedIds, UserId, Variant, Visibility,
};

const NO_MEDIA: Refusal = Refusal::NotFound(Entity::Media);

/// An upload of `(variant, bytes)` pairs as the embedder would hand it over.
fn new_media(variants: &[(Variant, &[u8])]) -> NewMedia {
    NewMedia {
        kind: MediaKind::Image,
        content_type: "image/png".into(),
        width: 640,
        height: 480,
        variants: variants.iter().map(|(v, b)| (*v, b.to_vec())).collect(),
    }
}

/// Uploads an original and a thumbnail for `owner`.
async fn upload(f: &Fixture, owner: UserId) -> MediaItem {
    let input = new_media(&[
        (Variant::Original, b"original bytes"),
        (Variant::Thumbnail, b"thumb"),
    ]);
    let item = f.kith.media().upload(owner, input).await.unwrap();
    f.tick();
    item
}

/// The keys the byte store holds for `id`.
async fn stored_variants(f: &Fixture, id: MediaId) -> Vec<Variant> {
    let mut found = Vec::new();
    for variant in Variant::ALL {
        let bytes = f.kith.bytes().get(&MediaItem::key(id, variant)).await;
        if bytes.unwrap().is_some() {
            found.push(variant);
        }
    }
    found
}

/// An upload stores each variant's bytes and an unattached record that
/// expires after the grace period.
pub async fn upload_stores_the_record_and_every_variant(f: Fixture) {
    let alice = f.user("alice").await;
    let now = crate::Clock::now(f.clock.as_ref());
    let item = upload(&f, alice.id).await;
    assert_eq!(item.owner, alice.id);
    assert_eq!(item.kind, MediaKind::Image);
    assert_eq!(item.content_type, "image/png");
    assert_eq!(item.byte_size, b"original bytes".len() as u64);
    assert_eq!((item.width, item.height), (640, 480));
    assert_eq!(item.variants, [Variant::Original, Variant::Thumbnail]);
    assert_eq!(item.created_at, now);
    assert_eq!(item.attachment, None);
    let grace = i64::try_from(Config::default().media_grace.as_millis()).unwrap();
    assert_eq!(
        item.expires_at.unwrap().as_millis(),
        now.as_millis() + grace
    );
    assert_eq!(
        f.kith.storage().media(item.id).await.unwrap(),
        Some(item.clone())
    );
    assert_eq!(stored_variants(&f, item.id).await, Variant::ALL);
    let media = f.kith.media();
    let original = media.bytes(&item, Variant::Original).await.unwrap();
    assert_eq!(original, b"original bytes");
    assert_eq!(
        media.bytes(&item, Variant::Thumbnail).await.unwrap(),
        b"thumb"
    );
    f.assert_no_events();
}

/// Malformed uploads and uploads of unknown users are refused and store
/// neither bytes nor a record.
pub async fn upload_with_bad_input_stores_nothing(f: Fixture) {
    let alice = f.user("alice").await;
    let media = f.kith.media();
    let mut bad_type = new_media(&[(Variant::Original, b"x")]);
    bad_type.content_type = "png".into();
    let cases = [
        (bad_type, alice.id, Refusal::Invalid("content_type")),
        (
            new_media(&[(Variant::Thumbnail, b"x")]),
            alice.id,
            Refusal::Invalid("variants"),
        ),
        (
            new_media(&[(Variant::Original, b"x"), (Variant::Original, b"y")]),
            alice.id,
            Refusal::Invalid("variants"),
        ),
        (
            new_media(&[(Variant::Original, b"x"), (Variant::Thumbnail, b"")]),
            alice.id,
            Refusal::Invalid("variants"),
        ),
        (
            new_media(&[(Variant::Original, b"x")]),
            UserId::new(42),
            Refusal::NotFound(Entity::User),
        ),
    ];
    for (input, actor, expected) in cases {
        f.refuses(media.upload(actor, input).await, expected);
    }
    assert!(f.bytes.keys().is_empty(), "{:?}", f.bytes.keys());
    let expired = f
        .kith
        .storage()
        .expired_media(crate::Timestamp::from_millis(i64::MAX), 10);
    assert!(expired.await.unwrap().is_empty());
}

/// A byte store that fails every `put` after the first.
#[derive(Default)]
struct FailingBytes {
    inner: crate::MemoryBytes,
    puts: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl ByteStore for FailingBytes {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        if self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(Error::storage("the byte store is full"));
        }
        self.inner.put(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

/// When the byte store fails half-way, the bytes stored so far are removed
/// and no record is stored.
pub async fn a_failed_byte_store_leaves_nothing_behind(f: Fixture) {
    let alice = f.user("alice").await;
    let bytes = Arc::new(FailingBytes::default());
    let kith = Kith::builder(Arc::clone(f.kith.storage()))
        .clock(f.clock.clone())
        .ids(Arc::new(TimeOrderedIds::new(f.clock.clone())))
        .bytes(bytes.clone())
        .build();
    let input = new_media(&[(Variant::Original, b"x"), (Variant::Thumbnail, b"y")]);
    let result = kith.media().upload(alice.id, input).await;
    assert!(matches!(result, Err(Error::Storage(_))), "{result:?}");
    assert!(bytes.inner.keys().is_empty(), "{:?}", bytes.inner.keys());
    let expired = f
        .kith
        .storage()
        .expired_media(crate::Timestamp::from_millis(i64::MAX), 10);
    assert!(expired.await.unwrap().is_empty());
}

/// An unattached upload is seen by its owner only: friends, strangers,
/// blocked users and anonymous viewers get `NotFound`.
pub async fn unattached_media_is_seen_by_its_owner_only(f: Fixture) {
    let [alice, friend, stranger, blocker, blocked] = f
        .users(["alice", "friend", "stranger", "blocker", "blocked"])
        .await;
    f.befriend(alice.id, friend.id).await;
    f.kith.graph().block(blocker.id, alice.id).await.unwrap();
    f.kith.graph().block(alice.id, blocked.id).await.unwrap();
    f.take_events();
    let item = upload(&f, alice.id).await;
    let media = f.kith.media();
    assert_eq!(media.get(Some(alice.id), item.id).await.unwrap(), item);
    for viewer in [
        Some(friend.id),
        Some(stranger.id),
        Some(blocker.id),
        Some(blocked.id),
        None,
    ] {
        assert_eq!(
            refusal(media.get(viewer, item.id).await),
            NO_MEDIA,
            "{viewer:?}"
        );
    }
    assert_eq!(
        refusal(media.get(Some(alice.id), MediaId::new(7)).await),
        NO_MEDIA
    );
}

/// An avatar or a cover is seen by whoever may see the owner's card, what
/// the profile's visibility may be: everyone but users on either side of a
/// block.
pub async fn avatars_and_covers_are_seen_by_whoever_sees_the_card(f: Fixture) {
    let [alice, friend, stranger, blocker, blocked] = f
        .users(["alice", "friend", "stranger", "blocker", "blocked"])
        .await;
    f.befriend(alice.id, friend.id).await;
    f.kith.graph().block(blocker.id, alice.id).await.unwrap();
    f.kith.graph().block(alice.id, blocked.id).await.unwrap();
    f.set_visibility(alice.id, Visibility::Private).await;
    f.take_events();
    let media = f.kith.media();
    for attachment in [Attachment::Avatar, Attachment::Cover] {
        let item = upload(&f, alice.id).await;
        let attached = media.attach(alice.id, item.id, attachment).await.unwrap();
        assert_eq!(attached.attachment, Some(attachment));
        assert_eq!(attached.expires_at, None);
        assert!(attached.is_public());
        for viewer in [Some(alice.id), Some(friend.id), Some(stranger.id), None] {
            let seen = media.get(viewer, item.id).await.unwrap();
            assert_eq!(seen, attached, "{viewer:?}");
        }
        for viewer in [blocker.id, blocked.id] {
            let refused = refusal(media.get(Some(viewer), item.id).await);
            assert_eq!(refused, NO_MEDIA, "{viewer:?}");
        }
    }
    f.assert_no_events();
}

/// Only the uploader may attach an upload: others who cannot see it get
/// `NotFound`, others who can see it `Forbidden`; nothing changes.
pub async fn only_the_owner_may_attach(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let media = f.kith.media();
    let item = upload(&f, alice.id).await;
    f.refuses(
        media.attach(bob.id, item.id, Attachment::Avatar).await,
        NO_MEDIA,
    );
    let stored = f.kith.storage().media(item.id).await.unwrap().unwrap();
    assert_eq!(stored, item);
    let avatar = upload(&f, alice.id).await;
    media
        .attach(alice.id, avatar.id, Attachment::Avatar)
        .await
        .unwrap();
    f.refuses(
        media.attach(bob.id, avatar.id, Attachment::Cover).await,
        Refusal::Forbidden(Denied::NotOwner),
    );
    let stored = f.kith.storage().media(avatar.id).await.unwrap().unwrap();
    assert_eq!(stored.attachment, Some(Attachment::Avatar));
    // Storage re-checks the owner itself.
    let now = crate::Clock::now(f.clock.as_ref());
    let stolen = f
        .kith
        .storage()
        .attach_media(item.id, bob.id, Attachment::Avatar, now);
    assert!(!stolen.await.unwrap());
    assert_eq!(f.kith.storage().media(item.id).await.unwrap(), Some(item));
}

/// An upload is attached once: attaching it again, as the same or another
/// attachment, is a conflict and changes nothing.
pub async fn an_upload_is_attached_only_once(f: Fixture) {
    let alice = f.user("alice").await;
    let media = f.kith.media();
    let item = upload(&f, alice.id).await;
    let attached = media
        .attach(alice.id, item.id, Attachment::Avatar)
        .await
        .unwrap();
    for again in [Attachment::Avatar, Attachment::Cover] {
        f.refuses(
            media.attach(alice.id, item.id, again).await,
            Refusal::Conflict(Clash::MediaAttached),
        );
    }
    let now = crate::Clock::now(f.clock.as_ref());
    let storage = f.kith.storage();
    assert!(!storage
        .attach_media(item.id, alice.id, Attachment::Cover, now)
        .await
        .unwrap());
    assert_eq!(storage.media(item.id).await.unwrap(), Some(attached));
}

/// A new avatar releases the previous one, which expires at once and is
/// collected; the cover stays.
pub async fn a_new_avatar_releases_the_previous_one(f: Fixture) {
    let alice = f.user("alice").await;
    let media = f.kith.media();
    let [first, cover, second] = [
        upload(&f, alice.id).await,
        upload(&f, alice.id).await,
        upload(&f, alice.id).await,
    ];
    media
        .attach(alice.id, first.id, Attachment::Avatar)
        .await
        .unwrap();
    media
        .attach(alice.id, cover.id, Attachment::Cover)
        .await
        .unwrap();
    let now = crate::Clock::now(f.clock.as_ref());
    media
        .attach(alice.id, second.id, Attachment::Avatar)
        .await
        .unwrap();
    let released = f.kith.storage().media(first.id).await.unwrap().unwrap();
    assert_eq!(released.attachment, None);
    assert_eq!(released.expires_at, Some(now));
    f.refuses(media.get(Some(alice.id), first.id).await, NO_MEDIA);
    f.refuses(
        media.attach(alice.id, first.id, Attachment::Avatar).await,
        NO_MEDIA,
    );
    assert_eq!(media.collect_garbage().await.unwrap(), 1);
    assert_eq!(f.kith.storage().media(first.id).await.unwrap(), None);
    assert!(stored_variants(&f, first.id).await.is_empty());
    for kept in [&cover, &second] {
        assert!(media.get(None, kept.id).await.is_ok());
        assert_eq!(stored_variants(&f, kept.id).await, Variant::ALL);
    }
}

/// Uploads never attached expire after the configured grace period: until
/// then they are kept; from then on they cannot be seen or attached, and
/// the garbage collection removes their records and bytes. Attached ones
/// stay.
pub async fn unattached_uploads_expire_after_the_grace_period(f: Fixture) {
    let f = f.reconfigure(Config {
        media_grace: Duration::from_secs(60),
        ..crate::testkit::config()
    });
    let alice = f.user("alice").await;
    let media = f.kith.media();
    let kept = upload(&f, alice.id).await;
    media
        .attach(alice.id, kept.id, Attachment::Cover)
        .await
        .unwrap();
    let stale = upload(&f, alice.id).await;
    // `upload` moved the clock a millisecond past the upload.
    f.clock.advance(Duration::from_millis(59_998));
    assert_eq!(media.collect_garbage().await.unwrap(), 0);
    assert!(media.get(Some(alice.id), stale.id).await.is_ok());
    f.clock.advance(Duration::from_millis(1));
    f.refuses(media.get(Some(alice.id), stale.id).await, NO_MEDIA);
    f.refuses(
        media.attach(alice.id, stale.id, Attachment::Avatar).await,
        NO_MEDIA,
    );
    assert_eq!(stored_variants(&f, stale.id).await, Variant::ALL);
    assert_eq!(media.collect_garbage().await.unwrap(), 1);
    assert_eq!(f.kith.storage().media(stale.id).await.unwrap(), None);
    assert!(stored_variants(&f, stale.id).await.is_empty());
    assert_eq!(media.collect_garbage().await.unwrap(), 0);
    f.clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(media.collect_garbage().await.unwrap(), 0);
    assert!(media.get(None, kept.id).await.is_ok());
    assert_eq!(stored_variants(&f, kept.id).await, Variant::ALL);
    // Storage deletes only what is still expired.
    let now = crate::Clock::now(f.clock.as_ref());
    assert!(!f.kith.storage().delete_media(kept.id, now).await.unwrap());
}

/// Concurrent attaches: one upload attached twice at once is attached once;
/// two avatars attached at once leave exactly one attached.
pub async fn concurrent_attaches_leave_one_attachment(f: Fixture) {
    let alice = f.user("alice").await;
    let media = f.kith.media();
    let item = upload(&f, alice.id).await;
    let (a, b) = futures::join!(
        media.attach(alice.id, item.id, Attachment::Avatar),
        media.attach(alice.id, item.id, Attachment::Cover),
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{outcomes:?}");
    let loser = if outcomes[0] { b } else { a };
    assert_eq!(refusal(loser), Refusal::Conflict(Clash::MediaAttached));
    let [one, two] = [upload(&f, alice.id).await, upload(&f, alice.id).await];
    let (a, b) = futures::join!(
        media.attach(alice.id, one.id, Attachment::Avatar),
        media.attach(alice.id, two.id, Attachment::Avatar),
    );
    a.unwrap();
    b.unwrap();
    let mut avatars = 0;
    for id in [item.id, one.id, two.id] {
        let stored = f.kith.storage().media(id).await.unwrap().unwrap();
        avatars += usize::from(stored.attachment == Some(Attachment::Avatar));
    }
    assert_eq!(avatars, 1);
}

/// Deleting an account releases its media, attached or not: nobody sees it
/// any more and the garbage collection removes it, bytes included.
pub async fn deleting_an_account_releases_its_media(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let media = f.kith.media();
    let avatar = upload(&f, alice.id).await;
    media
        .attach(alice.id, avatar.id, Attachment::Avatar)
        .await
        .unwrap();
    let draft = upload(&f, alice.id).await;
    let kept = upload(&f, bob.id).await;
    f.delete(&alice).await;
    let now = crate::Clock::now(f.clock.as_ref());
    for id in [avatar.id, draft.id] {
        let stored = f.kith.storage().media(id).await.unwrap().unwrap();
        assert_eq!((stored.attachment, stored.expires_at), (None, Some(now)));
        f.refuses(media.get(None, id).await, NO_MEDIA);
        f.refuses(media.find(id).await, NO_MEDIA);
    }
    assert_eq!(media.collect_garbage().await.unwrap(), 2);
    assert!(stored_variants(&f, avatar.id).await.is_empty());
    assert!(stored_variants(&f, draft.id).await.is_empty());
    assert_eq!(media.get(Some(bob.id), kept.id).await.unwrap(), kept);
}
