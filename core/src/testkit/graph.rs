//! Conformance cases for the social graph: friend requests, friendships and
//! friends lists. Follows are in [`super::follows`], blocks and mutes in
//! [`super::blocks`].

use crate::testkit::Refusal::*;
use crate::testkit::{all_pages, refusal, Fixture, Refusal, NO_USER};
use crate::{
    Account, Clash, Clock, Entity, Event, FriendRequest, FriendRequestEntry, FriendRequestOutcome,
    Friendship, GraphCounts, Page, Peer, Result, UserId, Visibility,
};

/// The ids of the users in `peers`, in order.
pub(crate) fn ids_of(peers: &[Peer]) -> Vec<UserId> {
    peers.iter().map(|p| p.user.id).collect()
}

/// The ids of `accounts`, in order.
pub(crate) fn ids(accounts: &[&Account]) -> Vec<UserId> {
    accounts.iter().map(|a| a.id).collect()
}

/// `from` sends `to` a friend request that stays pending; discards the events.
pub(crate) async fn request(f: &Fixture, from: UserId, to: UserId) -> FriendRequest {
    let outcome = f.kith.graph().send_friend_request(from, to).await.unwrap();
    f.take_events();
    match outcome {
        FriendRequestOutcome::Pending { request } => request,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

/// Every friend of `user`, as `user` sees them, read `limit` at a time.
pub(crate) async fn friends_of(
    f: &Fixture,
    user: UserId,
    name: Option<&str>,
    limit: u32,
) -> Vec<Peer> {
    all_pages(limit, |page| async move {
        f.kith.graph().friends(user, user, name, &page).await
    })
    .await
}

/// Every follower of `user`, as `user` sees them, read `limit` at a time.
pub(crate) async fn followers_of(f: &Fixture, user: UserId, limit: u32) -> Vec<Peer> {
    all_pages(limit, |page| async move {
        f.kith.graph().followers(user, user, &page).await
    })
    .await
}

/// Every user `user` follows, read `limit` at a time.
pub(crate) async fn following_of(f: &Fixture, user: UserId, limit: u32) -> Vec<Peer> {
    all_pages(limit, |page| async move {
        f.kith.graph().following(user, user, &page).await
    })
    .await
}

/// Every pending request sent to `user` (`incoming`) or by `user`, read
/// `limit` at a time.
async fn requests_of(
    f: &Fixture,
    user: UserId,
    incoming: bool,
    limit: u32,
) -> Vec<FriendRequestEntry> {
    all_pages(limit, |page| async move {
        let g = f.kith.graph();
        if incoming {
            g.incoming_requests(user, &page).await
        } else {
            g.outgoing_requests(user, &page).await
        }
    })
    .await
}

/// The ids of the users who sent `user` a pending request, and of those
/// `user` sent one to, newest first.
async fn pending(f: &Fixture, user: UserId) -> (Vec<UserId>, Vec<UserId>) {
    let incoming = requests_of(f, user, true, 20).await;
    let outgoing = requests_of(f, user, false, 20).await;
    (
        incoming.iter().map(|e| e.request.from).collect(),
        outgoing.iter().map(|e| e.request.to).collect(),
    )
}

/// Asserts that none of `users` has a pending request, sent or received.
pub(crate) async fn assert_no_requests(f: &Fixture, users: &[UserId]) {
    for user in users {
        assert_eq!(
            pending(f, *user).await,
            (vec![], vec![]),
            "requests of {user}"
        );
    }
}

/// Asserts that `a` and `b` are friends (or not), from both sides.
pub(crate) async fn assert_friends(f: &Fixture, a: UserId, b: UserId, expected: bool) {
    for (x, y) in [(a, b), (b, a)] {
        let listed = ids_of(&friends_of(f, x, None, 100).await).contains(&y);
        assert_eq!(listed, expected, "friends list of {x}");
        let rel = f.kith.graph().relationship(x, y).await.unwrap();
        assert_eq!(rel.friends, expected, "relationship of {x} to {y}");
    }
}

/// A sent request waits; accepting it makes both friends, listed both ways, and tells both.
pub async fn friend_request_then_accept_makes_friends(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let graph = f.kith.graph();

    let outcome = graph.send_friend_request(alice.id, bob.id).await.unwrap();
    let FriendRequestOutcome::Pending { request } = outcome else {
        panic!("expected a pending request, got {outcome:?}");
    };
    assert_eq!((request.from, request.to), (alice.id, bob.id));
    assert_eq!(request.created_at, f.clock.now());
    f.assert_event(
        Event::FriendRequestSent {
            request: request.clone(),
        },
        &[alice.id, bob.id],
    );

    let entry = |user: &Account| FriendRequestEntry {
        request: request.clone(),
        user: user.user(),
    };
    assert_eq!(requests_of(&f, bob.id, true, 20).await, vec![entry(&alice)]);
    assert_eq!(
        requests_of(&f, alice.id, false, 20).await,
        vec![entry(&bob)]
    );

    f.tick();
    let friendship = graph.accept_friend_request(bob.id, alice.id).await.unwrap();
    let expected = Friendship {
        user: bob.id,
        friend: alice.id,
        since: f.clock.now(),
    };
    assert_eq!(friendship, expected);
    f.assert_event(Event::FriendAdded { friendship }, &[bob.id, alice.id]);

    let of_alice = friends_of(&f, alice.id, None, 20).await;
    assert_eq!(ids_of(&of_alice), vec![bob.id]);
    assert_eq!(of_alice[0].user, bob.user());
    assert_eq!(of_alice[0].since, expected.since);
    assert_eq!(
        ids_of(&friends_of(&f, bob.id, None, 20).await),
        vec![alice.id]
    );
    assert_no_requests(&f, &[bob.id, alice.id]).await;
    assert_friends(&f, alice.id, bob.id, true).await;
}

/// Every graph action aimed at oneself is refused naming `user_id`.
pub async fn graph_actions_on_oneself_are_invalid(f: Fixture) {
    let alice = f.user("alice").await;
    let (g, me) = (f.kith.graph(), alice.id);
    const ITSELF: Refusal = Invalid("user_id");
    f.refuses(g.send_friend_request(me, me).await, ITSELF);
    f.refuses(g.cancel_friend_request(me, me).await, ITSELF);
    f.refuses(g.accept_friend_request(me, me).await, ITSELF);
    f.refuses(g.decline_friend_request(me, me).await, ITSELF);
    f.refuses(g.unfriend(me, me).await, ITSELF);
    f.refuses(g.follow(me, me).await, ITSELF);
    f.refuses(g.unfollow(me, me).await, ITSELF);
    f.refuses(g.block(me, me).await, ITSELF);
    f.refuses(g.unblock(me, me).await, ITSELF);
    f.refuses(g.mute(me, me).await, ITSELF);
    f.refuses(g.unmute(me, me).await, ITSELF);
    f.refuses(g.relationship(me, me).await, ITSELF);
    f.assert_no_events();
    assert_eq!(
        g.counts(Some(me), me).await.unwrap(),
        GraphCounts::default()
    );
    assert_no_requests(&f, &[me]).await;
}

/// Befriending or following an unknown or deleted user is not found.
pub async fn befriending_or_following_unknown_or_deleted_users_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.delete(&bob).await;
    let g = f.kith.graph();
    for other in [UserId::new(42), bob.id] {
        f.refuses(g.send_friend_request(alice.id, other).await, NO_USER);
        f.refuses(g.follow(alice.id, other).await, NO_USER);
        f.refuses(g.relationship(alice.id, other).await, NO_USER);
    }
    assert_no_requests(&f, &[alice.id]).await;
    let counts = g.counts(Some(alice.id), alice.id).await.unwrap();
    assert_eq!(counts, GraphCounts::default());
}

/// Asking a friend for friendship is a conflict.
pub async fn friend_request_to_a_friend_is_a_conflict(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    f.befriend(alice.id, bob.id).await;
    for (from, to) in [(alice.id, bob.id), (bob.id, alice.id)] {
        f.refuses(
            f.kith.graph().send_friend_request(from, to).await,
            Conflict(Clash::AlreadyFriends),
        );
    }
    assert_no_requests(&f, &[alice.id, bob.id]).await;
}

/// Asking twice is a conflict; the first request stays, unchanged.
pub async fn duplicate_friend_request_is_a_conflict(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let first = request(&f, alice.id, bob.id).await;
    f.tick();
    f.refuses(
        f.kith.graph().send_friend_request(alice.id, bob.id).await,
        Conflict(Clash::RequestPending),
    );
    let incoming = f
        .kith
        .graph()
        .incoming_requests(bob.id, &Page::first())
        .await
        .unwrap();
    assert_eq!(incoming.items.len(), 1);
    assert_eq!(incoming.items[0].request, first);
}

/// Asking someone who asked you first makes you friends at once, telling both.
pub async fn mutual_friend_requests_accept_each_other(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    request(&f, alice.id, bob.id).await;
    f.tick();
    let outcome = f
        .kith
        .graph()
        .send_friend_request(bob.id, alice.id)
        .await
        .unwrap();
    let friendship = Friendship {
        user: bob.id,
        friend: alice.id,
        since: f.clock.now(),
    };
    assert_eq!(
        outcome,
        FriendRequestOutcome::Accepted {
            friendship: friendship.clone()
        }
    );
    f.assert_event(Event::FriendAdded { friendship }, &[bob.id, alice.id]);
    assert_no_requests(&f, &[alice.id, bob.id]).await;
    assert_friends(&f, alice.id, bob.id, true).await;
}

/// What acting on a friend request that is not pending returns.
const NO_REQUEST: Refusal = NotFound(Entity::FriendRequest);

/// Asserts that no request is pending between `from` and `to`, that they
/// are not friends, and that `from` may ask again.
async fn assert_request_gone(f: &Fixture, from: UserId, to: UserId) {
    assert_no_requests(f, &[from, to]).await;
    f.refuses(
        f.kith.graph().accept_friend_request(to, from).await,
        NO_REQUEST,
    );
    assert_friends(f, from, to, false).await;
    request(f, from, to).await;
}

/// Registers Alice and Bob and has Alice ask Bob for friendship.
async fn alice_asks_bob(f: &Fixture) -> (UserId, UserId, FriendRequest) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let sent = request(f, alice.id, bob.id).await;
    (alice.id, bob.id, sent)
}

/// The sender may withdraw a request: it disappears for both and both are told.
pub async fn cancel_friend_request_withdraws_it_and_tells_both(f: Fixture) {
    let (a, b, sent) = alice_asks_bob(&f).await;
    f.kith.graph().cancel_friend_request(a, b).await.unwrap();
    let cancelled = Event::FriendRequestCancelled {
        request_id: sent.id,
        from: a,
        to: b,
    };
    f.assert_event(cancelled, &[a, b]);
    assert_request_gone(&f, a, b).await;
}

/// Cancelling a request one did not send (or received) is not found.
pub async fn cancel_without_pending_request_is_not_found(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let (a, b, c, g) = (alice.id, bob.id, carol.id, f.kith.graph());
    f.refuses(g.cancel_friend_request(a, b).await, NO_REQUEST);
    request(&f, a, b).await;
    for (actor, other) in [(b, a), (c, b), (c, a)] {
        f.refuses(g.cancel_friend_request(actor, other).await, NO_REQUEST);
    }
    assert_eq!(pending(&f, b).await, (vec![a], vec![]));
}

/// Accepting when no request was received is not found and befriends nobody.
pub async fn accept_without_pending_request_is_not_found(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let (a, b, c, g) = (alice.id, bob.id, carol.id, f.kith.graph());
    f.refuses(g.accept_friend_request(b, a).await, NO_REQUEST);
    request(&f, a, c).await;
    // Carol's request from Alice is no request from Bob.
    for (actor, other) in [(c, b), (b, UserId::new(42))] {
        f.refuses(g.accept_friend_request(actor, other).await, NO_REQUEST);
    }
    assert_friends(&f, a, b, false).await;
    assert_friends(&f, c, b, false).await;
}

/// The sender cannot accept or decline their own request: not found, it stays pending.
pub async fn accepting_ones_own_request_is_not_found(f: Fixture) {
    let (a, b, _) = alice_asks_bob(&f).await;
    let g = f.kith.graph();
    f.refuses(g.accept_friend_request(a, b).await, NO_REQUEST);
    f.refuses(g.decline_friend_request(a, b).await, NO_REQUEST);
    assert_eq!(pending(&f, a).await, (vec![], vec![b]));
    assert_friends(&f, a, b, false).await;
}

/// Declining removes the request and tells only the decliner; the sender may ask again.
pub async fn decline_tells_only_the_decliner(f: Fixture) {
    let (a, b, sent) = alice_asks_bob(&f).await;
    f.kith.graph().decline_friend_request(b, a).await.unwrap();
    let declined = Event::FriendRequestDeclined {
        request_id: sent.id,
        from: a,
        to: b,
    };
    f.assert_event(declined, &[b]);
    assert_request_gone(&f, a, b).await;
}

/// Declining when no request was received is not found.
pub async fn decline_without_pending_request_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let g = f.kith.graph();
    f.refuses(g.decline_friend_request(bob.id, alice.id).await, NO_REQUEST);
    request(&f, bob.id, alice.id).await;
    f.refuses(g.decline_friend_request(bob.id, alice.id).await, NO_REQUEST);
}

/// Registers `names` and has each send a request to `to`, one millisecond
/// apart.
async fn requests_to(f: &Fixture, names: &[&str], to: UserId) -> Vec<Account> {
    let mut senders = Vec::new();
    for name in names {
        let sender = f.user(name).await;
        request(f, sender.id, to).await;
        f.tick();
        senders.push(sender);
    }
    senders
}

/// Incoming requests are listed newest first, in pages, with the sender's card.
pub async fn incoming_requests_are_listed_newest_first_in_pages(f: Fixture) {
    let bob = f.user("bob").await;
    let senders = requests_to(&f, &["user1", "user2", "user3", "user4", "user5"], bob.id).await;
    let listed = requests_of(&f, bob.id, true, 2).await;
    let from: Vec<UserId> = listed.iter().map(|e| e.request.from).collect();
    let expected: Vec<UserId> = senders.iter().rev().map(|a| a.id).collect();
    assert_eq!(from, expected);
    for (entry, sender) in listed.iter().zip(senders.iter().rev()) {
        assert_eq!(entry.user, sender.user());
        assert_eq!(entry.request.to, bob.id);
    }
    // Others' requests are not listed; sent ones are not incoming.
    let outgoing = f
        .kith
        .graph()
        .outgoing_requests(bob.id, &Page::first())
        .await
        .unwrap();
    assert!(outgoing.items.is_empty());
    assert!(pending(&f, senders[0].id).await.0.is_empty());
}

/// Outgoing requests are listed newest first, in pages, with the recipient's card.
pub async fn outgoing_requests_are_listed_newest_first_in_pages(f: Fixture) {
    let alice = f.user("alice").await;
    let mut recipients = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        let to = f.user(name).await;
        request(&f, alice.id, to.id).await;
        recipients.push(to);
    }
    // A request Alice received is not outgoing.
    requests_to(&f, &["zed"], alice.id).await;
    let listed = requests_of(&f, alice.id, false, 3).await;
    let users: Vec<_> = listed.iter().map(|e| e.user.clone()).collect();
    let expected: Vec<_> = recipients.iter().rev().map(Account::user).collect();
    assert_eq!(users, expected);
    assert!(listed.iter().all(|e| e.request.from == alice.id));
}

/// Registers `names` and makes each a friend of `user`.
async fn friends_named(f: &Fixture, user: UserId, names: &[&str]) -> Vec<Account> {
    let mut friends = Vec::new();
    for name in names {
        let friend = f.user(name).await;
        f.befriend(friend.id, user).await;
        friends.push(friend);
    }
    friends
}

/// Friends are listed by username ignoring case, in pages without duplicates or gaps.
pub async fn friends_are_listed_by_username_in_pages(f: Fixture) {
    let alice = f.user("alice").await;
    let names = [
        "Zed", "amy", "Bob_", "bobby", "carl", "Dora", "eve", "Finn", "bob",
    ];
    friends_named(&f, alice.id, &names).await;
    // Strangers and other people's friends are not listed.
    let [x, y] = f.users(["xavier", "yolanda"]).await;
    f.befriend(x.id, y.id).await;
    let expected = [
        "amy", "bob", "Bob_", "bobby", "carl", "Dora", "eve", "Finn", "Zed",
    ];
    for limit in [1, 2, 4, 8, 9, 10, 100] {
        let listed = friends_of(&f, alice.id, None, limit).await;
        let names: Vec<&str> = listed.iter().map(|p| p.user.username.as_str()).collect();
        assert_eq!(names, expected, "limit {limit}");
    }
    let first = f
        .kith
        .graph()
        .friends(alice.id, alice.id, None, &Page::with_limit(9))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 9);
    assert_eq!(first.next_cursor, None);
    let default = f
        .kith
        .graph()
        .friends(alice.id, alice.id, None, &Page::first())
        .await
        .unwrap();
    assert_eq!(default.items, friends_of(&f, alice.id, None, 100).await);
}

/// The name filter matches username or display name ignoring case; blank keeps everyone.
pub async fn friends_can_be_filtered_by_name(f: Fixture) {
    let alice = f.user("alice").await;
    let friends = friends_named(&f, alice.id, &["anna", "bert", "carl", "DANNY"]).await;
    let [anna, bert, carl, danny] = [&friends[0], &friends[1], &friends[2], &friends[3]];
    f.set_display_name(anna.id, "Zoe Quill").await;
    f.set_display_name(bert.id, "Annabel Lee").await;
    let cases: [(&str, Vec<UserId>); 7] = [
        ("ann", ids(&[anna, bert, danny])),
        ("ANN", ids(&[anna, bert, danny])),
        ("quill", ids(&[anna])),
        ("bel l", ids(&[bert])),
        ("xyz", vec![]),
        ("  ", ids(&[anna, bert, carl, danny])),
        ("", ids(&[anna, bert, carl, danny])),
    ];
    for (name, expected) in cases {
        for limit in [1, 20] {
            let listed = friends_of(&f, alice.id, Some(name), limit).await;
            assert_eq!(ids_of(&listed), expected, "filter {name:?}, limit {limit}");
        }
    }
    let too_long = "a".repeat(51);
    assert_eq!(
        refusal(
            f.kith
                .graph()
                .friends(alice.id, alice.id, Some(&too_long), &Page::first())
                .await
        ),
        Invalid("name")
    );
}

/// The name filter ignores case beyond ASCII too.
pub async fn friends_filter_folds_non_ascii_case(f: Fixture) {
    let alice = f.user("alice").await;
    let friends = friends_named(&f, alice.id, &["emile", "zoe"]).await;
    f.set_display_name(friends[0].id, "Émile Zola").await;
    for name in ["ÉMILE", "émile", "Émile"] {
        let listed = friends_of(&f, alice.id, Some(name), 20).await;
        assert_eq!(ids_of(&listed), vec![friends[0].id], "filter {name:?}");
    }
}

/// The name filter matches `%`, `_` and `\` literally, not as wildcards.
pub async fn friends_filter_treats_wildcards_literally(f: Fixture) {
    let alice = f.user("alice").await;
    let friends = friends_named(&f, alice.id, &["bob_1", "bobx1", "carl"]).await;
    f.set_display_name(friends[2].id, "100% Carl \\o/").await;
    let cases = [
        ("b_1", vec![friends[0].id]),
        ("_", vec![friends[0].id]),
        ("%", vec![friends[2].id]),
        ("b%1", vec![]),
        ("\\", vec![friends[2].id]),
        ("\\o", vec![friends[2].id]),
    ];
    for (name, expected) in cases {
        let listed = friends_of(&f, alice.id, Some(name), 20).await;
        assert_eq!(ids_of(&listed), expected, "filter {name:?}");
    }
}

/// The number of items every list of `user` returns for `page`, by list.
pub(crate) async fn every_list(
    f: &Fixture,
    user: UserId,
    page: &Page,
) -> Vec<(&'static str, Result<usize>)> {
    let g = f.kith.graph();
    vec![
        (
            "incoming",
            g.incoming_requests(user, page).await.map(|p| p.items.len()),
        ),
        (
            "outgoing",
            g.outgoing_requests(user, page).await.map(|p| p.items.len()),
        ),
        (
            "friends",
            g.friends(user, user, None, page)
                .await
                .map(|p| p.items.len()),
        ),
        (
            "followers",
            g.followers(user, user, page).await.map(|p| p.items.len()),
        ),
        (
            "following",
            g.following(user, user, page).await.map(|p| p.items.len()),
        ),
        (
            "blocked",
            g.blocked(user, page).await.map(|p| p.items.len()),
        ),
        ("muted", g.muted(user, page).await.map(|p| p.items.len())),
    ]
}

/// Asserts that every list in `lists` refused its page naming `field`.
fn assert_lists_invalid(lists: Vec<(&str, Result<usize>)>, field: &'static str, why: &str) {
    for (list, result) in lists {
        assert_eq!(refusal(result), Invalid(field), "{list} with {why}");
    }
}

/// Every list refuses a limit of 0 or over 100 and a cursor it did not issue.
pub async fn lists_reject_bad_limits_and_cursors(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.befriend(alice.id, carol.id).await;
    for limit in [0, 101, u32::MAX] {
        let lists = every_list(&f, alice.id, &Page::with_limit(limit)).await;
        assert_lists_invalid(lists, "limit", &format!("limit {limit}"));
    }
    let friends_cursor = f
        .kith
        .graph()
        .friends(alice.id, alice.id, None, &Page::with_limit(1))
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    let garbage = [
        "",
        "zz",
        "abc",
        "not a cursor",
        "00",
        "7a7a",
        &"f".repeat(600),
    ];
    for cursor in garbage {
        let lists = every_list(&f, alice.id, &Page::after(cursor, None)).await;
        assert_lists_invalid(lists, "cursor", &format!("cursor {cursor:?}"));
    }
    // A cursor of one list is no cursor of a list with another order.
    let mut lists = every_list(&f, alice.id, &Page::after(friends_cursor, None)).await;
    lists.retain(|(list, _)| *list != "friends");
    assert_lists_invalid(lists, "cursor", "a cursor of the friends list");
    for (list, result) in every_list(&f, alice.id, &Page::with_limit(100)).await {
        assert!(result.is_ok(), "{list}: {result:?}");
    }
    f.assert_no_events();
}

/// The friends, followers and following lists of `owner` as `viewer` sees them.
pub(crate) async fn social_lists(f: &Fixture, viewer: UserId, owner: UserId) -> [Result<usize>; 3] {
    let (g, page) = (f.kith.graph(), Page::first());
    [
        g.friends(viewer, owner, None, &page)
            .await
            .map(|p| p.items.len()),
        g.followers(viewer, owner, &page)
            .await
            .map(|p| p.items.len()),
        g.following(viewer, owner, &page)
            .await
            .map(|p| p.items.len()),
    ]
}

/// Another user's friends and follow lists are shown only as their profile visibility allows.
pub async fn lists_of_another_user_follow_profile_visibility(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.follow(carol.id, bob.id).await;
    f.follow(bob.id, carol.id).await;
    let table = [
        (Visibility::Public, true, true),
        (Visibility::Friends, true, false),
        (Visibility::Private, false, false),
    ];
    for (visibility, friend_sees, stranger_sees) in table {
        f.set_visibility(bob.id, visibility).await;
        for (viewer, sees) in [
            (bob.id, true),
            (alice.id, friend_sees),
            (carol.id, stranger_sees),
        ] {
            for result in social_lists(&f, viewer, bob.id).await {
                if sees {
                    assert_eq!(result.unwrap(), 1, "{visibility:?} seen by {viewer}");
                } else {
                    assert_eq!(refusal(result), Forbidden(crate::Denied::Private));
                }
            }
        }
    }
    for result in social_lists(&f, alice.id, UserId::new(42)).await {
        assert_eq!(refusal(result), NO_USER);
    }
}

/// Unfriending, from either side, ends the friendship and tells both; follows stay.
pub async fn unfriend_ends_the_friendship_and_tells_both(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.befriend(alice.id, carol.id).await;
    f.follow(alice.id, bob.id).await;
    // Bob accepted, Alice asked: either may end it.
    for (by, other) in [(bob.id, alice.id), (alice.id, carol.id)] {
        f.kith.graph().unfriend(by, other).await.unwrap();
        f.assert_event(Event::FriendRemoved { by, other }, &[by, other]);
        assert_friends(&f, by, other, false).await;
    }
    let counts = f.kith.graph().counts(None, alice.id).await.unwrap();
    assert_eq!(
        counts,
        GraphCounts {
            friends: 0,
            followers: 0,
            following: 1
        }
    );
    assert!(
        f.kith
            .graph()
            .relationship(alice.id, bob.id)
            .await
            .unwrap()
            .following
    );
}

/// Unfriending someone who is not a friend is not found.
pub async fn unfriend_of_a_non_friend_is_not_found(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(bob.id, carol.id).await;
    request(&f, alice.id, bob.id).await;
    let g = f.kith.graph();
    for other in [bob.id, carol.id, UserId::new(42)] {
        f.refuses(
            g.unfriend(alice.id, other).await,
            NotFound(Entity::Friendship),
        );
    }
    assert_friends(&f, bob.id, carol.id, true).await;
    assert_eq!(pending(&f, bob.id).await, (vec![alice.id], vec![]));
}

/// The ids of a user's friends, sorted.
async fn friend_ids(f: &Fixture, user: UserId) -> Vec<UserId> {
    let mut ids = f.kith.graph().friend_ids(user).await.unwrap();
    ids.sort();
    ids
}

/// `friend_ids` holds exactly the friends: not pending requests, follows, former friends or blocked users.
pub async fn friend_ids_are_exactly_the_friends(f: Fixture) {
    let [alice, bob, carol, dave, erin] = f.users(["alice", "bob", "carol", "dave", "erin"]).await;
    assert_eq!(friend_ids(&f, alice.id).await, []);
    f.befriend(alice.id, bob.id).await;
    f.befriend(carol.id, alice.id).await;
    request(&f, alice.id, dave.id).await;
    f.follow(erin.id, alice.id).await;
    let mut both = vec![bob.id, carol.id];
    both.sort();
    assert_eq!(friend_ids(&f, alice.id).await, both);
    assert_eq!(friend_ids(&f, bob.id).await, [alice.id]);
    assert_eq!(friend_ids(&f, dave.id).await, []);
    f.kith.graph().unfriend(carol.id, alice.id).await.unwrap();
    assert_eq!(friend_ids(&f, alice.id).await, [bob.id]);
    f.kith.graph().block(bob.id, alice.id).await.unwrap();
    f.take_events();
    assert_eq!(friend_ids(&f, alice.id).await, []);
    assert_eq!(friend_ids(&f, bob.id).await, []);
}

/// Presence is told to friends only: not to followers, people with a pending request, former friends or anyone a block separates.
pub async fn presence_is_told_to_friends_only(f: Fixture) {
    let [alice, bob, carol, dave, erin] = f.users(["alice", "bob", "carol", "dave", "erin"]).await;
    let audience = |user: UserId| {
        let f = &f;
        async move {
            let mut users = f.kith.graph().presence_audience(user).await.unwrap();
            users.sort();
            users
        }
    };
    assert_eq!(audience(alice.id).await, []);
    f.befriend(alice.id, bob.id).await;
    f.befriend(alice.id, carol.id).await;
    request(&f, dave.id, alice.id).await;
    f.follow(erin.id, alice.id).await;
    let mut friends = vec![bob.id, carol.id];
    friends.sort();
    assert_eq!(audience(alice.id).await, friends);
    f.kith.graph().unfriend(carol.id, alice.id).await.unwrap();
    f.kith.graph().block(alice.id, bob.id).await.unwrap();
    f.take_events();
    assert_eq!(audience(alice.id).await, []);
    assert_eq!(audience(bob.id).await, []);
}
