//! Conformance cases for profiles: `me`, profile updates and their rules,
//! and who sees what of a profile.

use time::macros::date;

use crate::privacy::Role;
use crate::testkit::Refusal::*;
use crate::testkit::{refusal, Fixture, NO_USER};
use crate::{
    Account, ContactInfo, Event, GraphCounts, ProfileDetails, ProfilePatch, ProfileView, Result,
    UserId, Visibility,
};

/// A patch that sets every field, with `visibility`.
fn full_patch(visibility: Visibility) -> ProfilePatch {
    ProfilePatch {
        display_name: Some(Some("Alice Liddell".into())),
        bio: Some(Some("Curiouser and curiouser.\nSecond line.".into())),
        location: Some(Some("Oxford".into())),
        birth_date: Some(Some(date!(1990 - 05 - 04))),
        job: Some(Some("Explorer".into())),
        interests: Some(vec!["rabbits".into(), "tea".into()]),
        avatar_url: Some(Some("https://img.example.com/alice.png".into())),
        cover_url: Some(Some("http://img.example.com/cover.jpg".into())),
        contact: Some(ContactInfo {
            email: Some("contact@alice.example".into()),
            phone: Some("+44 (0)1865 270000".into()),
            website: Some("https://alice.example".into()),
        }),
        visibility: Some(visibility),
    }
}

async fn update(f: &Fixture, user: UserId, patch: ProfilePatch) -> Result<Account> {
    f.kith.accounts().update_profile(user, patch).await
}

/// Applies `patch` to the profile of `user`, which must succeed and tell
/// the user only, and returns the account as stored.
async fn patched(f: &Fixture, user: UserId, patch: ProfilePatch) -> Account {
    let account = update(f, user, patch).await.unwrap();
    f.assert_event(Event::ProfileUpdated { user_id: user }, &[user]);
    assert_eq!(f.kith.accounts().me(user).await.unwrap(), account);
    account
}

/// Registers `name` with every profile field set (public) and discards the
/// events.
async fn profiled_user(f: &Fixture, name: &str) -> Account {
    let account = f.user(name).await;
    let account = patched(f, account.id, full_patch(Visibility::Public)).await;
    account
}

/// Asserts that `patch` is refused naming `field` and leaves the profile of
/// a fully profiled user as it was, telling nobody.
async fn assert_patch_invalid(
    f: &Fixture,
    user: &Account,
    patch: ProfilePatch,
    field: &'static str,
) {
    assert_eq!(refusal(update(f, user.id, patch).await), Invalid(field));
    f.assert_no_events();
    assert_eq!(f.kith.accounts().me(user.id).await.unwrap(), *user);
}

/// `me` returns the actor's own account with login email and full profile.
pub async fn me_returns_own_account_with_email_and_profile(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let me = f.kith.accounts().me(alice.id).await.unwrap();
    assert_eq!(me, alice);
    assert_eq!(me.email.as_deref(), Some("alice@example.com"));
    assert_eq!(me.profile.location.as_deref(), Some("Oxford"));
    assert_eq!(
        refusal(f.kith.accounts().me(UserId::new(42)).await),
        NO_USER
    );
}

/// A patch setting every field stores them all and tells the user only.
pub async fn update_profile_sets_every_field_and_tells_only_the_user(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    let updated = patched(&f, alice.id, full_patch(Visibility::Friends)).await;
    let p = &updated.profile;
    assert_eq!(p.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(
        p.bio.as_deref(),
        Some("Curiouser and curiouser.\nSecond line.")
    );
    assert_eq!(p.location.as_deref(), Some("Oxford"));
    assert_eq!(p.birth_date, Some(date!(1990 - 05 - 04)));
    assert_eq!(p.job.as_deref(), Some("Explorer"));
    assert_eq!(p.interests, vec!["rabbits", "tea"]);
    assert_eq!(
        p.avatar_url.as_deref(),
        Some("https://img.example.com/alice.png")
    );
    assert_eq!(
        p.cover_url.as_deref(),
        Some("http://img.example.com/cover.jpg")
    );
    assert_eq!(p.contact.email.as_deref(), Some("contact@alice.example"));
    assert_eq!(p.contact.phone.as_deref(), Some("+44 (0)1865 270000"));
    assert_eq!(p.contact.website.as_deref(), Some("https://alice.example"));
    assert_eq!(p.visibility, Visibility::Friends);
    assert_eq!((updated.id, &updated.username), (alice.id, &alice.username));
}

/// `Some(None)`, empty interests and empty contact details clear those fields.
pub async fn update_profile_clears_fields_set_to_null(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let patch = ProfilePatch {
        display_name: Some(None),
        bio: Some(None),
        location: Some(None),
        birth_date: Some(None),
        job: Some(None),
        interests: Some(vec![]),
        avatar_url: Some(None),
        cover_url: Some(None),
        contact: Some(ContactInfo::default()),
        visibility: None,
    };
    let cleared = patched(&f, alice.id, patch).await;
    assert_eq!(cleared.profile, Default::default());
}

/// Fields a patch leaves out keep their values.
pub async fn update_profile_leaves_absent_fields_alone(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let patch = ProfilePatch {
        job: Some(Some("Queen".into())),
        ..ProfilePatch::default()
    };
    let updated = patched(&f, alice.id, patch).await;
    let mut expected = alice.profile.clone();
    expected.job = Some("Queen".into());
    assert_eq!(updated.profile, expected);
    assert_eq!(
        f.kith.accounts().me(alice.id).await.unwrap().profile,
        expected
    );
    // An empty patch changes nothing but still succeeds.
    let same = patched(&f, alice.id, ProfilePatch::default()).await;
    assert_eq!(same.profile, expected);
}

/// Text fields are trimmed, and a blank value clears the field.
pub async fn update_profile_trims_text_and_blank_clears(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let patch = ProfilePatch {
        display_name: Some(Some("  Alice  ".into())),
        bio: Some(Some("   \n  ".into())),
        location: Some(Some(String::new())),
        avatar_url: Some(Some("  ".into())),
        contact: Some(ContactInfo {
            email: Some(" ".into()),
            phone: Some(" 555 0100 ".into()),
            website: None,
        }),
        ..ProfilePatch::default()
    };
    let updated = patched(&f, alice.id, patch).await;
    let p = f.kith.accounts().me(alice.id).await.unwrap().profile;
    assert_eq!(p, updated.profile);
    assert_eq!(p.display_name.as_deref(), Some("Alice"));
    assert_eq!((p.bio, p.location, p.avatar_url), (None, None, None));
    assert_eq!(
        p.contact,
        ContactInfo {
            email: None,
            phone: Some("555 0100".into()),
            website: None
        }
    );
}

/// Interests are lowercased and stripped of a leading `#` and of duplicates, order kept.
pub async fn update_profile_normalises_interests(f: Fixture) {
    let alice = f.user("alice").await;
    let tags = [
        "Rust",
        "#rust",
        " Hiking ",
        "#Go",
        "RUST",
        "go",
        "sci-fi",
        "#tea_time",
    ];
    let patch = ProfilePatch {
        interests: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
        ..ProfilePatch::default()
    };
    let updated = patched(&f, alice.id, patch).await;
    let expected = vec!["rust", "hiking", "go", "sci-fi", "tea_time"];
    assert_eq!(updated.profile.interests, expected);
    let stored = f
        .kith
        .accounts()
        .me(alice.id)
        .await
        .unwrap()
        .profile
        .interests;
    assert_eq!(stored, expected);
    // 21 tags that are 20 once de-duplicated are accepted.
    let mut twenty: Vec<String> = (0..20).map(|i| format!("tag{i}")).collect();
    twenty.push("#TAG0".into());
    let patch = ProfilePatch {
        interests: Some(twenty),
        ..ProfilePatch::default()
    };
    let updated = patched(&f, alice.id, patch).await;
    assert_eq!(updated.profile.interests.len(), 20);
}

/// Display names over 50 characters or with control characters are refused.
pub async fn update_profile_rejects_bad_display_names(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    for bad in [
        "x".repeat(51),
        "Al\tice".into(),
        "Al\nice".into(),
        "Al\u{7}ice".into(),
    ] {
        let patch = ProfilePatch {
            display_name: Some(Some(bad)),
            ..ProfilePatch::default()
        };
        assert_patch_invalid(&f, &alice, patch, "display_name").await;
    }
    let ok = ProfilePatch {
        display_name: Some(Some("é".repeat(50))),
        ..ProfilePatch::default()
    };
    patched(&f, alice.id, ok).await;
}

/// Over-long bios, locations and jobs, and control characters in them, are refused.
pub async fn update_profile_rejects_bad_bio_location_and_job(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let none = ProfilePatch::default;
    let bio = |s: String| ProfilePatch {
        bio: Some(Some(s)),
        ..none()
    };
    assert_patch_invalid(&f, &alice, bio("b".repeat(501)), "bio").await;
    assert_patch_invalid(&f, &alice, bio("tab\there".into()), "bio").await;
    let location = |s: String| ProfilePatch {
        location: Some(Some(s)),
        ..none()
    };
    assert_patch_invalid(&f, &alice, location("l".repeat(101)), "location").await;
    assert_patch_invalid(&f, &alice, location("two\nlines".into()), "location").await;
    let job = |s: String| ProfilePatch {
        job: Some(Some(s)),
        ..none()
    };
    assert_patch_invalid(&f, &alice, job("j".repeat(101)), "job").await;
    assert_patch_invalid(&f, &alice, job("two\nlines".into()), "job").await;
    let ok = ProfilePatch {
        bio: Some(Some("b".repeat(500))),
        location: Some(Some("l".repeat(100))),
        job: Some(Some("j".repeat(100))),
        ..none()
    };
    patched(&f, alice.id, ok).await;
}

/// Birth dates after today (by the clock) or before 1900 are refused; the bounds are fine.
pub async fn update_profile_rejects_birth_dates_in_the_future_or_before_1900(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let born = |d| ProfilePatch {
        birth_date: Some(Some(d)),
        ..ProfilePatch::default()
    };
    // The fixture's clock stands at 2026-01-01.
    for bad in [
        date!(2026 - 01 - 02),
        date!(2030 - 06 - 01),
        date!(1899 - 12 - 31),
        date!(1066 - 10 - 14),
    ] {
        assert_patch_invalid(&f, &alice, born(bad), "birth_date").await;
    }
    for ok in [date!(2026 - 01 - 01), date!(1900 - 01 - 01)] {
        let updated = patched(&f, alice.id, born(ok)).await;
        assert_eq!(updated.profile.birth_date, Some(ok));
    }
    // Time moves on: tomorrow's date becomes valid tomorrow.
    f.clock
        .advance(std::time::Duration::from_secs(24 * 60 * 60));
    patched(&f, alice.id, born(date!(2026 - 01 - 02))).await;
}

/// Avatar, cover and website URLs must be http(s) URLs without whitespace.
pub async fn update_profile_rejects_urls_that_are_not_http(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let bad_urls = [
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "example.com/a.png",
        "https://",
        "https://exa mple.com/a.png",
        "data:image/png;base64,AAAA",
    ];
    for bad in bad_urls {
        let bad = Some(Some(bad.to_owned()));
        let avatar = ProfilePatch {
            avatar_url: bad.clone(),
            ..ProfilePatch::default()
        };
        assert_patch_invalid(&f, &alice, avatar, "avatar_url").await;
        let cover = ProfilePatch {
            cover_url: bad.clone(),
            ..ProfilePatch::default()
        };
        assert_patch_invalid(&f, &alice, cover, "cover_url").await;
        let website = ProfilePatch {
            contact: Some(ContactInfo {
                website: bad.flatten(),
                ..alice.profile.contact.clone()
            }),
            ..ProfilePatch::default()
        };
        assert_patch_invalid(&f, &alice, website, "contact.website").await;
    }
}

/// An invalid contact email or phone number is refused naming the field.
pub async fn update_profile_rejects_invalid_contact_email_and_phone(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let contact = |email: &str, phone: &str| ProfilePatch {
        contact: Some(ContactInfo {
            email: Some(email.into()),
            phone: Some(phone.into()),
            website: None,
        }),
        ..ProfilePatch::default()
    };
    for bad in ["not an email", "alice@", "alice@example"] {
        assert_patch_invalid(&f, &alice, contact(bad, "555 0100"), "contact.email").await;
    }
    for bad in ["call me", "12", "555-0100 ext. 4", &"5".repeat(33)] {
        assert_patch_invalid(&f, &alice, contact("a@example.com", bad), "contact.phone").await;
    }
}

/// Over 20 interests, or one over 30 characters or with other characters, are refused.
pub async fn update_profile_rejects_bad_interests(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let too_many: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    for bad in [
        too_many,
        vec!["x".repeat(31)],
        vec!["two words".into()],
        vec!["ok".into(), "#".into()],
        vec![String::new()],
        vec!["semi;colon".into()],
    ] {
        let patch = ProfilePatch {
            interests: Some(bad),
            ..ProfilePatch::default()
        };
        assert_patch_invalid(&f, &alice, patch, "interests").await;
    }
}

/// A patch with one invalid field changes none of its valid fields either.
pub async fn update_profile_with_one_bad_field_changes_nothing(f: Fixture) {
    let alice = profiled_user(&f, "alice").await;
    let mut patch = full_patch(Visibility::Private);
    patch.display_name = Some(Some("New name".into()));
    patch.bio = Some(None);
    patch.contact = Some(ContactInfo {
        phone: Some("not a phone".into()),
        ..ContactInfo::default()
    });
    assert_patch_invalid(&f, &alice, patch, "contact.phone").await;
    let mut patch = full_patch(Visibility::Private);
    patch.job = Some(None);
    patch.avatar_url = Some(Some("ftp://nope".into()));
    assert_patch_invalid(&f, &alice, patch, "avatar_url").await;
}

/// Updating the profile of an unknown account is not found.
pub async fn update_profile_of_unknown_user_is_not_found(f: Fixture) {
    f.user("alice").await;
    f.refuses(
        update(&f, UserId::new(42), full_patch(Visibility::Public)).await,
        NO_USER,
    );
}

/// Asserts that `details` are those of `owner`'s profile, with `counts`.
fn assert_details_of(details: &ProfileDetails, owner: &Account, counts: GraphCounts) {
    let (d, p) = (details, &owner.profile);
    assert_eq!((&d.bio, &d.location, &d.job), (&p.bio, &p.location, &p.job));
    assert_eq!((d.birth_date, &d.cover_url), (p.birth_date, &p.cover_url));
    assert_eq!((&d.interests, &d.contact), (&p.interests, &p.contact));
    assert_eq!(d.created_at, owner.created_at);
    let shown = (d.friends, d.followers, d.following);
    assert_eq!(shown, (counts.friends, counts.followers, counts.following));
}

/// The profile of `user` as `viewer` sees it, by id; checks that looking it
/// up by username (in upper case) gives the same.
async fn view(f: &Fixture, viewer: Option<UserId>, user: &Account) -> Result<ProfileView> {
    let by_id = f.kith.accounts().profile(viewer, user.id).await;
    let by_name = f
        .kith
        .accounts()
        .profile_by_username(viewer, &user.username.to_uppercase())
        .await;
    assert_eq!(format!("{by_id:?}"), format!("{by_name:?}"));
    by_id
}

/// Sets up an owner with a full profile at `visibility`, one friend (who
/// also follows the owner) and a stranger, and checks that the card is shown
/// to everyone and the details exactly to the roles in `shown_to`, which
/// must agree with [`Role::can_see`].
async fn assert_details_shown(f: &Fixture, visibility: Visibility, shown_to: &[Role]) {
    let [owner, friend, stranger] = f.users(["owner", "friend", "stranger"]).await;
    f.befriend(owner.id, friend.id).await;
    f.follow(friend.id, owner.id).await;
    let owner = patched(f, owner.id, full_patch(visibility)).await;
    let counts = GraphCounts {
        friends: 1,
        followers: 1,
        following: 0,
    };
    let viewers = [
        (Role::Owner, Some(owner.id)),
        (Role::Friend, Some(friend.id)),
        (Role::Stranger, Some(stranger.id)),
        (Role::Anonymous, None),
    ];
    for (role, viewer) in viewers {
        let shown = shown_to.contains(&role);
        assert_eq!(shown, role.can_see(visibility), "{role:?} {visibility:?}");
        let view = view(f, viewer, &owner).await.unwrap();
        assert_eq!(view.user, owner.user(), "{role:?} sees the card");
        assert_eq!(view.user.display_name.as_deref(), Some("Alice Liddell"));
        assert!(view.user.avatar_url.is_some());
        assert_eq!(view.visibility, visibility);
        assert_eq!(view.details.is_some(), shown, "{role:?} {visibility:?}");
        if let Some(details) = &view.details {
            assert_details_of(details, &owner, counts);
        }
    }
    f.assert_no_events();
}

/// A public profile shows its details to everyone, signed in or not.
pub async fn public_profile_details_are_shown_to_everyone(f: Fixture) {
    let all = [Role::Owner, Role::Friend, Role::Stranger, Role::Anonymous];
    assert_details_shown(&f, Visibility::Public, &all).await;
}

/// A friends-only profile shows its details to the owner and friends; others see the card.
pub async fn friends_profile_details_are_shown_to_friends_only(f: Fixture) {
    assert_details_shown(&f, Visibility::Friends, &[Role::Owner, Role::Friend]).await;
}

/// A private profile shows its details to the owner only; others see the card.
pub async fn private_profile_details_are_shown_to_the_owner_only(f: Fixture) {
    assert_details_shown(&f, Visibility::Private, &[Role::Owner]).await;
}

/// Neither of two users, one blocking the other, finds the other's profile until unblocked.
pub async fn blocked_users_cannot_see_each_others_profiles(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.kith.graph().block(alice.id, bob.id).await.unwrap();
    for visibility in [Visibility::Public, Visibility::Friends, Visibility::Private] {
        for (user, other) in [(&alice, &bob), (&bob, &alice)] {
            f.set_visibility(user.id, visibility).await;
            assert_eq!(refusal(view(&f, Some(other.id), user).await), NO_USER);
            // Others still see the profile.
            view(&f, Some(carol.id), user).await.unwrap();
            view(&f, Some(user.id), user).await.unwrap();
        }
    }
    f.kith.graph().unblock(alice.id, bob.id).await.unwrap();
    f.set_visibility(alice.id, Visibility::Public).await;
    let seen = view(&f, Some(bob.id), &alice).await.unwrap();
    assert!(seen.details.is_some());
}

/// profile_by_username finds the user whatever the case of the name.
pub async fn profile_by_username_ignores_case(f: Fixture) {
    let alice = f.user("AliceW").await;
    for name in ["AliceW", "alicew", "ALICEW", "aLiCeW"] {
        let view = f
            .kith
            .accounts()
            .profile_by_username(None, name)
            .await
            .unwrap();
        assert_eq!(view.user, alice.user());
        assert_eq!(view.user.username, "AliceW");
    }
}

/// Unknown and deleted users have no profile, by id or by username.
pub async fn profile_of_unknown_or_deleted_user_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let accounts = f.kith.accounts();
    for viewer in [None, Some(alice.id)] {
        assert_eq!(
            refusal(accounts.profile(viewer, UserId::new(42)).await),
            NO_USER
        );
        assert_eq!(
            refusal(accounts.profile_by_username(viewer, "nobody").await),
            NO_USER
        );
        assert_eq!(
            refusal(accounts.profile_by_username(viewer, "").await),
            NO_USER
        );
    }
    f.delete(&bob).await;
    for viewer in [None, Some(alice.id)] {
        assert_eq!(refusal(view(&f, viewer, &bob).await), NO_USER);
    }
}

/// Profile details count friends, followers and followed users and carry `created_at`.
pub async fn profile_details_count_friends_followers_and_following(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let graph = f.kith.graph();
    f.befriend(alice.id, bob.id).await;
    f.befriend(carol.id, alice.id).await;
    f.follow(bob.id, alice.id).await;
    f.follow(carol.id, alice.id).await;
    f.follow(dave.id, alice.id).await;
    f.follow(alice.id, dave.id).await;
    // A pending request and a mute count for nothing.
    graph.send_friend_request(dave.id, alice.id).await.unwrap();
    graph.mute(alice.id, carol.id).await.unwrap();
    let details = view(&f, Some(dave.id), &alice)
        .await
        .unwrap()
        .details
        .unwrap();
    assert_eq!(
        (details.friends, details.followers, details.following),
        (2, 3, 1)
    );
    assert_eq!(details.created_at, alice.created_at);
    let counts = graph.counts(None, alice.id).await.unwrap();
    assert_eq!(
        counts,
        GraphCounts {
            friends: 2,
            followers: 3,
            following: 1
        }
    );
}
