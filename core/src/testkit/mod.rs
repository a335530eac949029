//! The conformance suite: one `pub async fn` per behaviour of Kith, run by
//! every storage backend against a fresh database per case.
//!
//! A backend expands the whole suite into one `#[tokio::test]` per case with
//! [`conformance_tests!`](crate::conformance_tests), giving it an async
//! factory that returns a fresh, empty `Arc<dyn Storage>`:
//!
//! ```ignore
//! async fn fresh() -> std::sync::Arc<dyn kith_core::Storage> {
//!     std::sync::Arc::new(my_backend::Store::memory().await.unwrap())
//! }
//! kith_core::conformance_tests!(fresh);
//! ```
//!
//! Test names are `<area>::<case>`, so a failure names the behaviour and the
//! backend's test binary names the backend. A backend may not skip or weaken
//! a case: the cases are the storage traits' contract.
//!
//! Every case that expects an error also checks that nothing changed.

// The suite is test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

pub mod accounts;
pub mod graph;

use std::sync::Arc;
use std::time::Duration;

use crate::{
    Account, Argon2Hasher, Delivery, Kith, ManualClock, NewAccount, RecordingSink, Storage,
    Timestamp, UserId,
};

/// What each case runs against: a [`Kith`] over a fresh backend with a
/// manual clock, a recording event sink and cheap (but real) argon2id.
pub struct Fixture {
    /// The handle under test.
    pub kith: Kith,
    /// The clock the handle reads; advance it to move time.
    pub clock: Arc<ManualClock>,
    /// Every delivery the handle emitted.
    pub events: Arc<RecordingSink>,
}

/// 2026-01-01T00:00:00Z, where every fixture's clock starts.
pub const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

impl Fixture {
    /// A fixture over `storage`, which must be empty.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        let events = Arc::new(RecordingSink::new());
        let kith = Kith::builder(storage)
            .clock(clock.clone())
            .sink(events.clone())
            .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
            .build();
        Self {
            kith,
            clock,
            events,
        }
    }

    /// The password [`Fixture::user`] registers `username` with.
    pub fn password_of(username: &str) -> String {
        format!("pw-{username}-secret")
    }

    /// Registers `username` (email `<username>@example.com`), advances the
    /// clock by a millisecond so later records sort after it, and discards the
    /// events emitted so far.
    pub async fn user(&self, username: &str) -> Account {
        let account = self
            .kith
            .accounts()
            .register(NewAccount {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: Self::password_of(username),
            })
            .await
            .unwrap_or_else(|e| panic!("registering {username}: {e}"));
        self.tick();
        self.events.take();
        account
    }

    /// Makes `a` and `b` friends (a asks, b accepts) and discards the events.
    pub async fn befriend(&self, a: UserId, b: UserId) {
        self.kith
            .graph()
            .send_friend_request(a, b)
            .await
            .unwrap_or_else(|e| panic!("friend request: {e}"));
        self.kith
            .graph()
            .accept_friend_request(b, a)
            .await
            .unwrap_or_else(|e| panic!("accept: {e}"));
        self.tick();
        self.events.take();
    }

    /// Moves the clock forward by one millisecond.
    pub fn tick(&self) {
        self.clock.advance(Duration::from_millis(1));
    }

    /// Removes and returns the deliveries emitted since the last call.
    pub fn take_events(&self) -> Vec<Delivery> {
        self.events.take()
    }
}

/// Expands the whole conformance suite into one `#[tokio::test]` per case.
///
/// `$factory` is the path of an `async fn() -> Arc<dyn kith_core::Storage>`
/// in the invoking module that returns a fresh, empty backend. The invoking
/// crate needs `tokio` (with the `macros` and `rt` features) as a
/// dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:ident) => {
        $crate::__conformance_cases!($crate::__conformance_emit, $factory);
    };
}

/// Emits the test functions for [`conformance_tests!`]. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_emit {
    ($factory:ident; $($area:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $area {
                $(
                    #[tokio::test]
                    async fn $case() {
                        let storage = super::$factory().await;
                        $crate::testkit::$area::$case($crate::testkit::Fixture::new(storage)).await;
                    }
                )*
            }
        )*
    };
}

/// The list of every case, by area. Adding a case to the suite means adding a
/// `pub async fn name(f: Fixture)` to its area's module and its name here.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($emit:path, $factory:ident) => {
        $emit! { $factory;
            accounts {
                register_returns_account_and_login_works,
            }
            graph {
                friend_request_then_accept_makes_friends,
            }
        }
    };
}
