//! Conformance cases for several writers sharing one storage (two `Kith`
//! handles, as two server processes would be): node leases, and every
//! number and rule kept by the storage's transactions, not by one handle's
//! lanes or caches.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::{join, join_all};

use crate::testkit::chat::{configured, group, new_message, seqs};
use crate::testkit::Refusal::*;
use crate::testkit::{refusal, Fixture};
use crate::{
    Clash, Entity, Event, FriendRequestOutcome, History, MemberRole, Message, NodeLease, UserId,
    NODES,
};

/// A node number is leased to one writer at a time: released or ended
/// leases free it, and a writer whose lease ended and was taken cannot renew.
pub async fn node_leases_are_exclusive_until_they_end(f: Fixture) {
    let storage = f.kith.storage().as_ref();
    let clock = f.clock.as_ref();
    let a = NodeLease::acquire(storage, clock).await.unwrap();
    let b = NodeLease::acquire(storage, clock).await.unwrap();
    let c = NodeLease::acquire(storage, clock).await.unwrap();
    assert_eq!([a.node(), b.node(), c.node()], [0, 1, 2]);
    a.renew(storage, clock).await.unwrap();
    // Released: the number is free at once, and the old holder cannot renew.
    b.release(storage).await.unwrap();
    let d = NodeLease::acquire(storage, clock).await.unwrap();
    assert_eq!(d.node(), 1);
    assert_eq!(
        refusal(b.renew(storage, clock).await),
        Conflict(Clash::LeaseLost)
    );
    // Every lease ends unless renewed; a renewal in time keeps the number.
    f.clock.advance(NodeLease::TTL + Duration::from_secs(1));
    a.renew(storage, clock).await.unwrap();
    c.renew(storage, clock).await.unwrap();
    let e = NodeLease::acquire(storage, clock).await.unwrap();
    assert_eq!(e.node(), 1, "d's lease ended");
    assert_eq!(
        refusal(d.renew(storage, clock).await),
        Conflict(Clash::LeaseLost)
    );
    // Every number taken: refused.
    let mut held = vec![a, c, e];
    while held.len() < usize::from(NODES) {
        held.push(NodeLease::acquire(storage, clock).await.unwrap());
    }
    assert_eq!(
        refusal(NodeLease::acquire(storage, clock).await),
        Conflict(Clash::NoFreeNode)
    );
    let numbers: HashSet<u16> = held.iter().map(NodeLease::node).collect();
    assert_eq!(numbers.len(), usize::from(NODES));
}

/// 32 tasks across two writers send into one group at once: seqs 1 to 32,
/// each message stored once, every id unique.
pub async fn two_writers_sending_into_one_group_get_gap_free_seqs_and_unique_ids(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let users = f
        .users([
            "alice", "bob", "carol", "dave", "erin", "frank", "gina", "hal",
        ])
        .await;
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let team = group(&f, ids[0], &ids[1..]).await;
    let sends = (0..32).map(|i| {
        let writer = if i % 2 == 0 { &f.kith } else { &other };
        let sender = ids[i % ids.len()];
        writer
            .chat()
            .send(sender, team.id, new_message(&format!("w{i}"), "hi"))
    });
    let sent: Vec<Message> = join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut got = seqs(&sent);
    got.sort_unstable();
    assert_eq!(got, (1..=32).collect::<Vec<u64>>());
    let unique: HashSet<_> = sent.iter().map(|m| m.id).collect();
    assert_eq!(unique.len(), 32, "every id is unique");
    let history = f
        .kith
        .chat()
        .history(ids[0], team.id, History::Latest, Some(100))
        .await
        .unwrap();
    assert_eq!(seqs(&history.messages), (1..=32).collect::<Vec<u64>>());
    let clients: HashSet<_> = history.messages.iter().map(|m| &m.client_id).collect();
    assert_eq!(clients.len(), 32, "each message once");
}

/// A member removed through one writer cannot send through the other, and
/// the other no longer tells them about the group's new messages.
pub async fn a_member_removed_through_one_writer_is_gone_for_the_other(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    // The other writer has the group's members in mind after a send.
    let chat = other.chat();
    chat.send(bob.id, team.id, new_message("b-1", "hello"))
        .await
        .unwrap();
    f.kith
        .chat()
        .remove_member(alice.id, team.id, bob.id)
        .await
        .unwrap();
    f.take_events();
    let refused = chat
        .send(bob.id, team.id, new_message("b-2", "still?"))
        .await;
    assert_eq!(refusal(refused), NotFound(Entity::Conversation));
    f.assert_no_events();
    let sent = chat
        .send(alice.id, team.id, new_message("a-1", "bye bob"))
        .await
        .unwrap();
    assert_eq!(sent.seq, 2);
    let told: Vec<_> = f
        .take_events()
        .into_iter()
        .filter(|d| matches!(d.event, Event::MessageCreated { .. }))
        .map(|d| {
            let mut r = d.recipients;
            r.sort();
            r
        })
        .collect();
    let mut members = vec![alice.id, carol.id];
    members.sort();
    assert_eq!(told, vec![members], "bob is not told any more");
}

/// The same client id sent through both writers at once stores one message;
/// both are answered with it.
pub async fn one_client_id_sent_through_both_writers_at_once_stores_one_message(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let (a, b) = join(
        f.kith
            .chat()
            .send(alice.id, team.id, new_message("same", "once")),
        other
            .chat()
            .send(alice.id, team.id, new_message("same", "once")),
    )
    .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    let history = f
        .kith
        .chat()
        .history(bob.id, team.id, History::Latest, None)
        .await
        .unwrap();
    assert_eq!(history.messages, vec![a]);
}

/// Two users who send each other a friend request through two writers at
/// the same instant end as friends with nothing pending.
pub async fn crossing_friend_requests_through_two_writers_become_one_friendship(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let (ab, ba) = join(
        f.kith.graph().send_friend_request(alice.id, bob.id),
        other.graph().send_friend_request(bob.id, alice.id),
    )
    .await;
    let accepted = [ab.unwrap(), ba.unwrap()]
        .iter()
        .filter(|o| matches!(o, FriendRequestOutcome::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1);
    let rel = f.kith.graph().relationship(alice.id, bob.id).await.unwrap();
    assert!(rel.friends && !rel.request_sent && !rel.request_received);
}

/// A block through one writer and a follow by the blocked user through the
/// other at the same instant never leave the follow.
pub async fn a_block_and_a_follow_through_two_writers_never_leave_the_follow(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let (blocked, _) = join(
        f.kith.graph().block(alice.id, bob.id),
        other.graph().follow(bob.id, alice.id),
    )
    .await;
    blocked.unwrap();
    let rel = f.kith.graph().relationship(alice.id, bob.id).await.unwrap();
    assert!(rel.blocking && !rel.followed_by);
}

/// The two admins of a group leaving through two writers at the same
/// instant still leave it an admin: the member who joined earliest.
pub async fn the_last_admins_leaving_through_two_writers_leave_an_admin(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let chat = f.kith.chat();
    chat.set_role(alice.id, team.id, bob.id, MemberRole::Admin)
        .await
        .unwrap();
    let (a, b) = join(
        chat.leave(alice.id, team.id),
        other.chat().leave(bob.id, team.id),
    )
    .await;
    a.unwrap();
    b.unwrap();
    let members = chat.members(carol.id, team.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, MemberRole::Admin, "carol was promoted");
}

/// Two admins stepping down through two writers at the same instant: one is
/// refused, so the group keeps an admin.
pub async fn two_admins_stepping_down_through_two_writers_keep_an_admin(f: Fixture) {
    let (f, other) = f.two_writers().await;
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let chat = f.kith.chat();
    chat.set_role(alice.id, team.id, bob.id, MemberRole::Admin)
        .await
        .unwrap();
    let (a, b) = join(
        chat.set_role(alice.id, team.id, alice.id, MemberRole::Member),
        other
            .chat()
            .set_role(bob.id, team.id, bob.id, MemberRole::Member),
    )
    .await;
    let refused: Vec<_> = [a, b].into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let members = chat.members(carol.id, team.id).await.unwrap();
    let admins = members
        .iter()
        .filter(|m| m.role == MemberRole::Admin)
        .count();
    assert_eq!(admins, 1);
}

/// Members added through two writers at the same instant never take a group
/// beyond its size limit.
pub async fn members_added_through_two_writers_never_exceed_the_size_limit(f: Fixture) {
    let f = configured(f, |c| c.max_group_members = 3);
    let (f, other) = f.two_writers().await;
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let (a, b) = join(
        f.kith.chat().add_members(alice.id, team.id, &[carol.id]),
        other.chat().add_members(alice.id, team.id, &[dave.id]),
    )
    .await;
    let refused: Vec<_> = [a, b].into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(matches!(
        refused[0],
        crate::Error::InvalidInput {
            field: "members",
            ..
        }
    ));
    let members = f.kith.chat().members(alice.id, team.id).await.unwrap();
    assert_eq!(members.len(), 3);
}

/// A user's send rate holds across writers: the bucket is in storage, not
/// in each writer.
pub async fn a_users_send_rate_holds_across_two_writers(f: Fixture) {
    let f = configured(f, |c| {
        c.send_rate = Some(crate::Rate::per_second(3, 1));
    });
    let (f, other) = f.two_writers().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let send = |writer: &crate::Kith, client_id: &str| {
        writer
            .chat()
            .send(alice.id, team.id, new_message(client_id, "hi"))
    };
    send(&f.kith, "s1").await.unwrap();
    send(&other, "s2").await.unwrap();
    send(&f.kith, "s3").await.unwrap();
    for (writer, client_id) in [(&other, "s4"), (&f.kith, "s5")] {
        let refused = send(writer, client_id).await;
        assert_eq!(refusal(refused), RateLimited(Duration::from_secs(1)));
    }
    f.clock.advance(Duration::from_secs(1));
    send(&other, "s4").await.unwrap();
}
