//! Conformance cases for several nodes sharing one storage, linked by a
//! broker (two `Kith` handles and a [`crate::MemoryBroker`], as two server
//! processes with their broker would be): every change of a conversation
//! reaches every node's sink once, in version order, whoever committed it;
//! what the broker loses, the poll recovers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{join, join_all};

use crate::testkit::chat::{group, new_message};
use crate::testkit::Fixture;
use crate::{
    Change, Clock, ConversationId, Delivery, Event, History, Message, MessageId, ReactionKind,
    RecordingSink, UserId,
};

/// Lets the runtime run the other tasks (the nodes' reads) once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Adds what `sink` delivered to `seen` until a delivery of conversation
/// `id` at `version` or later is among them (the nodes read in tasks of
/// their own); fails after 20 seconds.
async fn settle(sink: &RecordingSink, seen: &mut Vec<Delivery>, id: ConversationId, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        seen.extend(sink.take());
        if seen
            .iter()
            .filter_map(|d| d.event.conversation_version())
            .any(|(c, v)| c == id && v >= version)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} never reached the sink; it delivered {seen:?}"
        );
        YieldNow(false).await;
    }
}

/// Yields to the runtime for a while, then returns what `sink` delivered.
async fn quiet(sink: &RecordingSink) -> Vec<Delivery> {
    for _ in 0..200 {
        YieldNow(false).await;
    }
    sink.take()
}

/// The message a delivery carries (an event or a change read from storage).
fn message_of(event: &Event) -> Option<&Message> {
    match event {
        Event::MessageCreated { message }
        | Event::MessageEdited { message }
        | Event::MessageDeleted { message }
        | Event::ReactionChanged { message, .. }
        | Event::Change {
            change: Change::Message { message },
            ..
        } => Some(message),
        _ => None,
    }
}

/// Checks what one node delivered for conversation `id`: versions strictly
/// increasing (each change once, in order), up to `version`; each message
/// last delivered as `expected` has it now, to every member.
fn check_stream(
    node: &str,
    seen: &[Delivery],
    id: ConversationId,
    version: u64,
    expected: &[Message],
    members: &[UserId],
) {
    let versions: Vec<u64> = seen
        .iter()
        .filter_map(|d| d.event.conversation_version())
        .filter(|(c, _)| *c == id)
        .map(|(_, v)| v)
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "node {node} delivered versions out of order or twice: {versions:?}"
    );
    assert_eq!(versions.last(), Some(&version), "node {node}");
    let mut last: HashMap<MessageId, &Message> = HashMap::new();
    for delivery in seen {
        if let Some(message) = message_of(&delivery.event) {
            for member in members {
                assert!(
                    delivery.recipients.contains(member),
                    "node {node}: {member} not told of {delivery:?}"
                );
            }
            last.insert(message.id, message);
        }
    }
    for message in expected {
        assert_eq!(
            last.get(&message.id).copied(),
            Some(message),
            "node {node}: message {} not delivered as it is now",
            message.client_id
        );
    }
    assert_eq!(last.len(), expected.len(), "node {node}: unknown messages");
}

/// Both nodes write into one group at once (sends, a rename, an edit, a
/// reaction): each node's sink gets every change once, in version order,
/// whichever node committed it.
pub async fn two_nodes_deliver_every_change_of_a_group_once_in_version_order(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let members = [alice.id, bob.id, carol.id, dave.id];
    let team = group(&f, alice.id, &members[1..]).await;
    // As the replays of clients on both nodes would.
    n.a.serve(team.id, team.version);
    n.b.serve(team.id, team.version);
    let sends = (0..40).map(|i| {
        let node = if i % 2 == 0 { &n.a } else { &n.b };
        node.chat()
            .send(members[i % 4], team.id, new_message(&format!("m{i}"), "hi"))
    });
    let (sent, renamed) = join(
        join_all(sends),
        n.b.chat().rename(alice.id, team.id, "Renamed"),
    )
    .await;
    renamed.unwrap();
    let sent: Vec<Message> = sent.into_iter().map(Result::unwrap).collect();
    // An edit through b of a message a stored, a reaction through a.
    let first = sent.iter().find(|m| m.client_id == "m0").unwrap();
    n.b.chat()
        .edit(alice.id, team.id, first.id, "edited")
        .await
        .unwrap();
    n.a.chat()
        .react(bob.id, team.id, first.id, Some(ReactionKind::Love))
        .await
        .unwrap();
    let now = f.kith.chat().conversation(alice.id, team.id).await.unwrap();
    assert_eq!(now.version, 43, "40 sends, a rename, an edit, a reaction");
    let history = f
        .kith
        .chat()
        .history(alice.id, team.id, History::Latest, Some(100))
        .await
        .unwrap();
    for (node, sink) in [("a", &n.a_events), ("b", &n.b_events)] {
        let mut seen = Vec::new();
        settle(sink, &mut seen, team.id, now.version).await;
        seen.extend(quiet(sink).await);
        check_stream(
            node,
            &seen,
            team.id,
            now.version,
            &history.messages,
            &members,
        );
        let renamed = seen.iter().any(|d| {
            matches!(&d.event,
                Event::ConversationRenamed { title, .. }
                | Event::Change { change: Change::Renamed { title, .. }, .. }
                if title == "Renamed")
        });
        assert!(renamed, "node {node} never told of the rename");
    }
}

/// A notice the broker lost delays the change on the other node until its
/// poll, which delivers it once; the writing node delivered it at once.
pub async fn a_notice_the_broker_lost_is_recovered_by_the_poll(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    n.a.serve(team.id, team.version);
    n.b.serve(team.id, team.version);
    n.broker.drop_next(1);
    let sent =
        n.a.chat()
            .send(alice.id, team.id, new_message("lost", "hello"))
            .await
            .unwrap();
    assert_eq!(n.broker.dropped(), 1);
    let on_a = n.a_events.take();
    assert!(
        matches!(&on_a[..], [d] if d.event == Event::MessageCreated { message: sent.clone() }),
        "the writing node delivers its own change: {on_a:?}"
    );
    assert!(quiet(&n.b_events).await.is_empty(), "b heard nothing");
    n.b.poll().await.unwrap();
    let on_b = n.b_events.take();
    match &on_b[..] {
        [d] => {
            assert_eq!(
                d.event,
                Event::Change {
                    conversation_id: team.id,
                    change: Change::Message {
                        message: sent.clone()
                    },
                }
            );
            assert!(d.recipients.contains(&alice.id) && d.recipients.contains(&bob.id));
        }
        other => panic!("the poll delivers the lost change once: {other:?}"),
    }
    // A second poll finds nothing new; the next change flows as usual.
    n.b.poll().await.unwrap();
    assert!(n.b_events.take().is_empty(), "delivered once");
    let next =
        n.a.chat()
            .send(bob.id, team.id, new_message("next", "again"))
            .await
            .unwrap();
    let mut seen = Vec::new();
    settle(&n.b_events, &mut seen, team.id, next.version).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
}

/// A node told that a client's replay covered version `v` delivers every
/// change after `v` as it learns of them, including those committed before
/// it heard of the conversation.
pub async fn a_node_serves_a_conversation_from_the_version_a_replay_covered(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    // Versions 1 to 3, written where no node hears of them.
    for i in 0..3 {
        f.kith
            .chat()
            .send(alice.id, team.id, new_message(&format!("old{i}"), "x"))
            .await
            .unwrap();
    }
    n.b.serve(team.id, 1);
    let sent =
        n.a.chat()
            .send(bob.id, team.id, new_message("new", "y"))
            .await
            .unwrap();
    assert_eq!(sent.version, 4);
    let mut seen = Vec::new();
    settle(&n.b_events, &mut seen, team.id, 4).await;
    seen.extend(quiet(&n.b_events).await);
    let versions: Vec<u64> = seen
        .iter()
        .filter_map(|d| d.event.conversation_version())
        .map(|(_, v)| v)
        .collect();
    assert_eq!(versions, [2, 3, 4], "{seen:?}");
}

/// Events that are not stored in a conversation (friend requests, typing,
/// a logout) reach the other node's sink once, as the writing node's sink
/// got them.
pub async fn events_that_are_not_stored_reach_the_other_node(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    n.a.graph()
        .send_friend_request(alice.id, bob.id)
        .await
        .unwrap();
    let session = n.a.accounts().create_session(bob.id).await.unwrap();
    n.a.accounts().logout(&session.token).await.unwrap();
    let typing = Delivery::new(
        Event::Typing {
            conversation_id: ConversationId::new(1),
            user_id: alice.id,
            expires_in_ms: 5_000,
        },
        [bob.id],
    );
    n.a.relay(typing.clone());
    let on_a = n.a_events.take();
    assert_eq!(on_a.len(), 3, "{on_a:?}");
    assert!(matches!(on_a[0].event, Event::FriendRequestSent { .. }));
    assert!(matches!(on_a[1].event, Event::SessionsRevoked { user_id, .. } if user_id == bob.id));
    assert_eq!(on_a[2], typing);
    let on_b = quiet(&n.b_events).await;
    assert_eq!(on_b, on_a, "the other node delivers the same, once");
}

/// A group created through one node is announced by the other to its
/// members (read from storage), and each node then delivers the other's
/// changes to it.
pub async fn a_group_created_on_one_node_is_announced_by_the_other(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team =
        n.a.chat()
            .create_group(
                alice.id,
                crate::NewGroup {
                    title: "Team".into(),
                    members: vec![bob.id],
                },
            )
            .await
            .unwrap();
    let created = n.a_events.take();
    let on_b = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = n.b_events.take();
            if !got.is_empty() {
                break got;
            }
            assert!(Instant::now() < deadline, "b never announced the group");
            YieldNow(false).await;
        }
    };
    assert_eq!(on_b, created, "b announces what a did");
    let sent =
        n.b.chat()
            .send(bob.id, team.id, new_message("b1", "hi"))
            .await
            .unwrap();
    let mut seen = Vec::new();
    settle(&n.a_events, &mut seen, team.id, sent.version).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(message_of(&seen[0].event), Some(&sent));
}

/// Presence is counted per user across nodes: a user is online while they
/// have a connection on any node, and their friends are told once when
/// they come online and once when they go offline, on every node.
pub async fn presence_is_counted_per_user_across_nodes(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    let online = Event::Presence {
        user_id: alice.id,
        online: true,
        last_seen: None,
    };
    assert!(
        n.a.graph().connected(alice.id).await.unwrap(),
        "came online"
    );
    let told = n.a_events.take();
    assert_eq!(
        told,
        [Delivery::new(online.clone(), [bob.id])],
        "friends only"
    );
    assert_eq!(quiet(&n.b_events).await, told, "told on the other node too");
    // More connections, on either node: nothing new.
    assert!(!n.b.graph().connected(alice.id).await.unwrap());
    assert!(!n.a.graph().connected(alice.id).await.unwrap());
    assert!(!n.a.graph().disconnected(alice.id).await.unwrap());
    assert!(!n.a.graph().disconnected(alice.id).await.unwrap());
    assert!(n.a_events.take().is_empty());
    assert!(quiet(&n.b_events).await.is_empty());
    // A node that has none of her connections cannot take one away.
    assert!(!n.a.graph().disconnected(alice.id).await.unwrap());
    f.tick();
    assert!(
        n.b.graph().disconnected(alice.id).await.unwrap(),
        "went offline"
    );
    let offline = Event::Presence {
        user_id: alice.id,
        online: false,
        last_seen: Some(f.clock.now()),
    };
    let told = n.b_events.take();
    assert_eq!(told, [Delivery::new(offline, [bob.id])]);
    assert_eq!(quiet(&n.a_events).await, told);
    // Carol has no friends: she comes and goes unannounced.
    assert!(n.a.graph().connected(carol.id).await.unwrap());
    assert!(n.a.graph().disconnected(carol.id).await.unwrap());
    assert!(n.a_events.take().is_empty());
}

/// The users of a node that stopped renewing its presence lease (killed)
/// go offline when the lease ends: the next poll of another node forgets
/// its connections and tells their friends; users still connected
/// elsewhere stay online.
pub async fn the_users_of_a_node_whose_presence_lease_ended_go_offline(f: Fixture) {
    let n = f.two_nodes().await;
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    f.befriend(alice.id, bob.id).await;
    f.befriend(carol.id, bob.id).await;
    assert!(n.a.graph().connected(alice.id).await.unwrap());
    assert!(n.a.graph().connected(carol.id).await.unwrap());
    assert!(!n.b.graph().connected(carol.id).await.unwrap());
    n.b.poll().await.unwrap();
    n.a_events.take();
    quiet(&n.b_events).await;
    // Node a stops (no poll renews its lease) while b keeps polling.
    f.clock.advance(crate::PRESENCE_TTL / 2);
    n.b.poll().await.unwrap();
    assert!(n.b_events.take().is_empty(), "a's lease has not ended yet");
    f.clock.advance(crate::PRESENCE_TTL);
    n.b.poll().await.unwrap();
    let told = n.b_events.take();
    assert_eq!(
        told,
        [Delivery::new(
            Event::Presence {
                user_id: alice.id,
                online: false,
                last_seen: Some(f.clock.now()),
            },
            [bob.id]
        )],
        "alice went offline with a's lease; carol is still on b"
    );
    // Node a's late disconnection changes nothing more.
    assert!(!n.a.graph().disconnected(alice.id).await.unwrap());
    // Carol's last connection, on b, takes her offline.
    assert!(n.b.graph().disconnected(carol.id).await.unwrap());
}
