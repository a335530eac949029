//! Conformance cases for the social graph.

use crate::testkit::Fixture;
use crate::{Event, FriendRequestOutcome, Page};

/// A sent request waits; accepting it makes both users friends, lists them
/// in each other's friends and tells both.
pub async fn friend_request_then_accept_makes_friends(f: Fixture) {
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let graph = f.kith.graph();

    let outcome = graph.send_friend_request(alice.id, bob.id).await.unwrap();
    let FriendRequestOutcome::Pending { request } = outcome else {
        panic!("expected a pending request, got {outcome:?}");
    };
    let events = f.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].recipients, vec![alice.id, bob.id]);
    assert_eq!(events[0].event, Event::FriendRequestSent { request: request.clone() });

    let incoming = graph.incoming_requests(bob.id, &Page::first()).await.unwrap();
    assert_eq!(incoming.items.len(), 1);
    assert_eq!(incoming.items[0].request, request);
    assert_eq!(incoming.items[0].user.id, alice.id);

    let friendship = graph.accept_friend_request(bob.id, alice.id).await.unwrap();
    assert_eq!((friendship.user, friendship.friend), (bob.id, alice.id));
    let events = f.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].recipients, vec![bob.id, alice.id]);

    let of_alice = graph.friends(alice.id, alice.id, None, &Page::first()).await.unwrap();
    assert_eq!(of_alice.items.len(), 1);
    assert_eq!(of_alice.items[0].user.id, bob.id);
    let of_bob = graph.friends(bob.id, bob.id, None, &Page::first()).await.unwrap();
    assert_eq!(of_bob.items[0].user.id, alice.id);
    assert!(graph.incoming_requests(bob.id, &Page::first()).await.unwrap().items.is_empty());
}
