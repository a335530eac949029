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
pub mod blocks;
pub mod chat;
pub mod chat_groups;
pub mod chat_messages;
pub mod comments;
pub mod feeds;
pub mod follows;
pub mod graph;
pub mod graph_races;
pub mod limits;
pub mod media;
pub mod model;
pub mod nodes;
pub mod posts;
pub mod profiles;
pub mod reactions;
pub mod shares;
pub mod writers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Account, Argon2Hasher, Clash, Config, Delivery, Denied, Entity, Error, Event, Kith,
    KithBuilder, ManualClock, MemoryBroker, MemoryBytes, NewAccount, Page, Paged, ProfilePatch,
    RecordingSink, Result, Spawner, Storage, TimeOrderedIds, Timestamp, UserId, Visibility,
    WriteRates,
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
    /// The handle's store of media bytes.
    pub bytes: Arc<MemoryBytes>,
    /// The id generator, kept so that a reconfigured handle never reuses an id.
    ids: Arc<TimeOrderedIds>,
    /// The test runtime's spawner, for [`Fixture::spawning`].
    runtime: Option<Arc<dyn Spawner>>,
    /// Whether the handle was built with [`Self::runtime`].
    spawning: bool,
}

/// Two nodes sharing the fixture's storage ([`Fixture::two_nodes`]).
pub struct Nodes {
    /// The first node.
    pub a: Kith,
    /// What the first node delivered.
    pub a_events: Arc<RecordingSink>,
    /// The second node.
    pub b: Kith,
    /// What the second node delivered.
    pub b_events: Arc<RecordingSink>,
    /// The broker linking them.
    pub broker: Arc<MemoryBroker>,
}

/// 2026-01-01T00:00:00Z, where every fixture's clock starts.
pub const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// The configuration cases start from: [`Config::default`] without the
/// write limits ([`WriteRates::none`]), which cases making many posts,
/// follows or reactions would hit; the `limits` area sets them itself.
pub fn config() -> Config {
    Config {
        write_rates: WriteRates::none(),
        ..Config::default()
    }
}

impl Fixture {
    /// A fixture over `storage`, which must be empty, with [`config`].
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        let ids = Arc::new(TimeOrderedIds::new(clock.clone()));
        let events = Arc::<RecordingSink>::default();
        let bytes = Arc::<MemoryBytes>::default();
        let kith = Self::handle(storage, config(), &clock, &events, &ids, None)
            .bytes(bytes.clone())
            .build();
        Self {
            kith,
            clock,
            events,
            bytes,
            ids,
            runtime: None,
            spawning: false,
        }
    }

    /// Keeps the test runtime's spawner for the cases that call
    /// [`Self::spawning`]; the handle does not use it until then.
    pub fn with_runtime(mut self, runtime: Arc<dyn Spawner>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The same fixture with its handle rebuilt to run send batches on the
    /// test runtime ([`KithBuilder::spawner`](crate::KithBuilder::spawner)),
    /// as servers do.
    pub fn spawning(mut self) -> Self {
        assert!(self.runtime.is_some(), "the fixture has no runtime");
        self.spawning = true;
        let config = self.kith.config().clone();
        self.reconfigure(config)
    }

    /// Two writers over the fixture's storage, as two server processes
    /// would be: the fixture's handle and a second one, each with a node
    /// number leased from the storage for its ids, and lanes, rosters and
    /// rate limits of its own. Both record into the fixture's sink.
    pub async fn two_writers(mut self) -> (Self, Kith) {
        let storage = Arc::clone(self.kith.storage());
        let mut leased = Vec::with_capacity(2);
        for _ in 0..2 {
            let lease = crate::NodeLease::acquire(storage.as_ref(), self.clock.as_ref())
                .await
                .unwrap();
            leased.push(Arc::new(TimeOrderedIds::for_node(
                self.clock.clone(),
                lease.node(),
            )));
        }
        let other_ids = leased.pop().unwrap();
        self.ids = leased.pop().unwrap();
        let config = self.kith.config().clone();
        let spawner = self.runtime.clone().filter(|_| self.spawning);
        let other = Self::handle(
            Arc::clone(&storage),
            config.clone(),
            &self.clock,
            &self.events,
            &other_ids,
            spawner,
        )
        .bytes(self.bytes.clone())
        .build();
        (self.reconfigure(config), other)
    }

    /// Two nodes over the fixture's storage, as two server processes
    /// would be, linked by a [`MemoryBroker`]: each with a node number
    /// leased from the storage for its ids, a sink of its own, and the test
    /// runtime's spawner. The fixture's own handle is left as it is (the
    /// cases set up users and groups through it).
    pub async fn two_nodes(&self) -> Nodes {
        let runtime = self.runtime.clone();
        assert!(runtime.is_some(), "the fixture has no runtime");
        let storage = Arc::clone(self.kith.storage());
        let broker = Arc::new(MemoryBroker::new());
        let mut nodes = Vec::with_capacity(2);
        for _ in 0..2 {
            let lease = crate::NodeLease::acquire(storage.as_ref(), self.clock.as_ref())
                .await
                .unwrap();
            let ids = Arc::new(TimeOrderedIds::for_node(self.clock.clone(), lease.node()));
            let events = Arc::<RecordingSink>::default();
            let mut builder = Kith::builder(Arc::clone(&storage))
                .clock(self.clock.clone())
                .sink(events.clone())
                .ids(ids)
                .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
                .config(self.kith.config().clone())
                .broker(broker.clone());
            if let Some(runtime) = &runtime {
                builder = builder.spawner(Arc::clone(runtime));
            }
            nodes.push((builder.build(), events));
        }
        let (b, b_events) = nodes.pop().unwrap();
        let (a, a_events) = nodes.pop().unwrap();
        Nodes {
            a,
            a_events,
            b,
            b_events,
            broker,
        }
    }

    /// The same fixture (storage, clock, recorded events, ids, spawner) with
    /// its handle rebuilt over `config`.
    pub fn reconfigure(mut self, config: Config) -> Self {
        let spawner = self.runtime.clone().filter(|_| self.spawning);
        let storage = Arc::clone(self.kith.storage());
        self.kith = Self::handle(
            storage,
            config,
            &self.clock,
            &self.events,
            &self.ids,
            spawner,
        )
        .bytes(self.bytes.clone())
        .build();
        self
    }

    fn handle(
        storage: Arc<dyn Storage>,
        config: Config,
        clock: &Arc<ManualClock>,
        events: &Arc<RecordingSink>,
        ids: &Arc<TimeOrderedIds>,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> KithBuilder {
        let builder = Kith::builder(storage)
            .clock(clock.clone())
            .sink(events.clone())
            .ids(ids.clone())
            .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
            .config(config);
        match spawner {
            Some(spawner) => builder.spawner(spawner),
            None => builder,
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

    /// Registers every name in `names` with [`Fixture::user`], in order.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [Account; N] {
        let mut accounts = Vec::with_capacity(N);
        for name in names {
            accounts.push(self.user(name).await);
        }
        accounts.try_into().unwrap()
    }

    /// Deletes `account`, registered by [`Fixture::user`], and discards the
    /// events.
    pub async fn delete(&self, account: &Account) {
        let password = Self::password_of(&account.username);
        self.kith
            .accounts()
            .delete_account(account.id, Some(&password))
            .await
            .unwrap_or_else(|e| panic!("deleting {}: {e}", account.username));
        self.events.take();
    }

    /// `follower` follows `followee`; discards the events.
    pub async fn follow(&self, follower: UserId, followee: UserId) {
        let result = self.kith.graph().follow(follower, followee).await;
        result.unwrap_or_else(|e| panic!("following: {e}"));
        self.events.take();
    }

    /// Sets the profile visibility of `user` and discards the events.
    pub async fn set_visibility(&self, user: UserId, visibility: Visibility) {
        self.set_profile(
            user,
            ProfilePatch {
                visibility: Some(visibility),
                ..ProfilePatch::default()
            },
        )
        .await;
    }

    /// Sets the display name of `user` and discards the events.
    pub async fn set_display_name(&self, user: UserId, name: &str) {
        self.set_profile(
            user,
            ProfilePatch {
                display_name: Some(Some(name.into())),
                ..ProfilePatch::default()
            },
        )
        .await;
    }

    async fn set_profile(&self, user: UserId, patch: ProfilePatch) {
        self.kith
            .accounts()
            .update_profile(user, patch)
            .await
            .unwrap_or_else(|e| panic!("updating the profile of {user}: {e}"));
        self.events.take();
    }

    /// Asserts that `result` is the refusal `expected` and that nothing was
    /// emitted: a refused call tells nobody.
    #[track_caller]
    pub fn refuses<T: std::fmt::Debug>(&self, result: Result<T>, expected: Refusal) {
        assert_eq!(refusal(result), expected);
        self.assert_no_events();
    }

    /// Asserts that nothing was emitted since the last take.
    #[track_caller]
    pub fn assert_no_events(&self) {
        let events = self.take_events();
        assert!(events.is_empty(), "expected no events, got {events:?}");
    }

    /// Asserts that exactly one delivery was emitted since the last take:
    /// `event` to exactly `recipients`, in that order.
    #[track_caller]
    pub fn assert_event(&self, event: Event, recipients: &[UserId]) {
        assert_eq!(
            self.take_events(),
            vec![Delivery {
                recipients: recipients.to_vec(),
                event
            }]
        );
    }
}

/// How a call was refused, in a form that cases compare with `assert_eq!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// [`Error::NotFound`].
    NotFound(Entity),
    /// [`Error::Forbidden`].
    Forbidden(Denied),
    /// [`Error::Conflict`].
    Conflict(Clash),
    /// [`Error::InvalidInput`] naming this field.
    Invalid(&'static str),
    /// [`Error::InvalidCredentials`].
    InvalidCredentials,
    /// [`Error::Unauthenticated`].
    Unauthenticated,
    /// [`Error::RateLimited`] with this `retry_after`.
    RateLimited(Duration),
    /// Any other error, as its debug text.
    Other(String),
}

/// What looking up a user who does not exist, or hides behind a block, returns.
pub const NO_USER: Refusal = Refusal::NotFound(Entity::User);

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => Refusal::NotFound(what),
            Error::Forbidden(why) => Refusal::Forbidden(why),
            Error::Conflict(with) => Refusal::Conflict(with),
            Error::InvalidInput { field, .. } => Refusal::Invalid(field),
            Error::InvalidCredentials => Refusal::InvalidCredentials,
            Error::Unauthenticated => Refusal::Unauthenticated,
            Error::RateLimited { retry_after } => Refusal::RateLimited(retry_after),
            other => Refusal::Other(format!("{other:?}")),
        }
    }
}

/// How `result` was refused; panics if it succeeded.
#[track_caller]
pub fn refusal<T: std::fmt::Debug>(result: Result<T>) -> Refusal {
    match result {
        Ok(value) => panic!("expected a refusal, got Ok({value:?})"),
        Err(e) => e.into(),
    }
}

/// Reads a whole list `limit` items at a time, following `next_cursor` until
/// it is `None`, and returns every item in order. Fails if a page is larger
/// than `limit` or if a page that is not the last one is short.
pub async fn all_pages<T, Fut>(limit: u32, mut fetch: impl FnMut(Page) -> Fut) -> Vec<T>
where
    Fut: Future<Output = Result<Paged<T>>>,
{
    let mut items = Vec::new();
    let mut page = Page::with_limit(limit);
    for _ in 0..1000 {
        let paged = fetch(page).await.unwrap();
        assert!(
            paged.items.len() <= limit as usize,
            "page larger than its limit"
        );
        let Some(cursor) = paged.next_cursor else {
            items.extend(paged.items);
            return items;
        };
        assert_eq!(
            paged.items.len(),
            limit as usize,
            "short page before the end"
        );
        items.extend(paged.items);
        page = Page::after(cursor, Some(limit));
    }
    panic!("the list did not end after 1000 pages");
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
                        let runtime: ::std::sync::Arc<dyn $crate::Spawner> =
                            ::std::sync::Arc::new(|task| {
                                tokio::spawn(task);
                            });
                        let fixture = $crate::testkit::Fixture::new(storage).with_runtime(runtime);
                        $crate::testkit::$area::$case(fixture).await;
                    }
                )*
            }
        )*

        /// The model-based test: random operation sequences against Kith
        /// and a reference model (`kith_core::testkit::model`).
        #[test]
        fn model_based() {
            $crate::testkit::model::run(file!(), |ops| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(async { $crate::testkit::model::check($factory().await, ops).await })
            });
        }
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
                register_rejects_usernames_of_bad_length,
                register_rejects_usernames_with_other_characters,
                register_rejects_usernames_of_only_underscores,
                register_refuses_a_username_taken_in_any_case,
                register_rejects_invalid_emails,
                register_refuses_an_email_taken_in_any_case,
                register_rejects_passwords_of_bad_length,
                create_user_has_no_password_and_cannot_log_in,
                create_session_opens_a_session_without_password,
                change_password_sets_a_first_password_without_current,
                create_user_validates_like_register,
                create_user_allows_many_accounts_without_email,
                login_by_username_ignores_case,
                login_by_email_ignores_case,
                login_with_wrong_password_is_refused,
                login_of_unknown_user_is_refused,
                authenticate_rejects_malformed_and_unknown_tokens,
                logout_revokes_the_token_and_tells_the_user,
                revoke_session_ends_that_session_only,
                revoke_session_of_another_user_is_not_found,
                sessions_lists_own_sessions_oldest_first,
                change_password_with_wrong_current_changes_nothing,
                change_password_without_current_is_invalid,
                change_password_rejects_new_password_of_bad_length,
                change_password_revokes_other_sessions_and_keeps_one,
                change_password_without_keep_revokes_every_session,
                delete_account_with_wrong_or_missing_password_changes_nothing,
                delete_account_ends_login_sessions_and_profile,
                delete_account_frees_username_and_email,
                delete_account_tells_the_user_and_former_friends,
                delete_account_removes_friendships_requests_and_follows,
                delete_account_without_password_when_there_is_none,
            }
            profiles {
                me_returns_own_account_with_email_and_profile,
                update_profile_sets_every_field_and_tells_only_the_user,
                update_profile_clears_fields_set_to_null,
                update_profile_leaves_absent_fields_alone,
                update_profile_trims_text_and_blank_clears,
                update_profile_normalises_interests,
                update_profile_rejects_bad_display_names,
                update_profile_rejects_bad_bio_location_and_job,
                update_profile_rejects_birth_dates_in_the_future_or_before_1900,
                update_profile_rejects_urls_that_are_not_http,
                update_profile_rejects_invalid_contact_email_and_phone,
                update_profile_rejects_bad_interests,
                update_profile_with_one_bad_field_changes_nothing,
                update_profile_of_unknown_user_is_not_found,
                public_profile_details_are_shown_to_everyone,
                friends_profile_details_are_shown_to_friends_only,
                private_profile_details_are_shown_to_the_owner_only,
                blocked_users_cannot_see_each_others_profiles,
                profile_by_username_ignores_case,
                profile_of_unknown_or_deleted_user_is_not_found,
                profile_details_count_friends_followers_and_following,
            }
            graph {
                friend_request_then_accept_makes_friends,
                graph_actions_on_oneself_are_invalid,
                befriending_or_following_unknown_or_deleted_users_is_not_found,
                friend_request_to_a_friend_is_a_conflict,
                duplicate_friend_request_is_a_conflict,
                mutual_friend_requests_accept_each_other,
                cancel_friend_request_withdraws_it_and_tells_both,
                cancel_without_pending_request_is_not_found,
                accept_without_pending_request_is_not_found,
                accepting_ones_own_request_is_not_found,
                decline_tells_only_the_decliner,
                decline_without_pending_request_is_not_found,
                incoming_requests_are_listed_newest_first_in_pages,
                outgoing_requests_are_listed_newest_first_in_pages,
                friends_are_listed_by_username_in_pages,
                friends_can_be_filtered_by_name,
                friends_filter_folds_non_ascii_case,
                friends_filter_treats_wildcards_literally,
                lists_reject_bad_limits_and_cursors,
                lists_of_another_user_follow_profile_visibility,
                unfriend_ends_the_friendship_and_tells_both,
                unfriend_of_a_non_friend_is_not_found,
                friend_ids_are_exactly_the_friends,
                presence_is_told_to_friends_only,
            }
            writers {
                node_leases_are_exclusive_until_they_end,
                two_writers_sending_into_one_group_get_gap_free_seqs_and_unique_ids,
                a_member_removed_through_one_writer_is_gone_for_the_other,
                one_client_id_sent_through_both_writers_at_once_stores_one_message,
                crossing_friend_requests_through_two_writers_become_one_friendship,
                a_block_and_a_follow_through_two_writers_never_leave_the_follow,
                the_last_admins_leaving_through_two_writers_leave_an_admin,
                two_admins_stepping_down_through_two_writers_keep_an_admin,
                members_added_through_two_writers_never_exceed_the_size_limit,
                a_users_send_rate_holds_across_two_writers,
            }
            feeds {
                home_feed_has_own_friends_and_followed_posts_newest_first,
                home_feed_shows_each_author_what_the_viewer_may_see,
                home_feed_leaves_out_muted_users,
                home_feed_ends_with_the_link_to_the_author,
                home_feed_pages_through_authors_of_every_rate,
                home_feed_pages_neither_repeat_nor_skip_while_posts_arrive,
                a_new_post_is_announced_to_its_audience,
            }
            limits {
                friend_requests_are_limited_per_user,
                follows_are_limited_and_a_repeat_follow_takes_nothing,
                refused_writes_take_no_token,
                write_limits_hold_across_two_writers,
                write_rates_none_limit_nobody,
                posts_comments_reactions_and_uploads_are_limited,
            }
            nodes {
                two_nodes_deliver_every_change_of_a_group_once_in_version_order,
                a_notice_the_broker_lost_is_recovered_by_the_poll,
                a_node_serves_a_conversation_from_the_version_a_replay_covered,
                events_that_are_not_stored_reach_the_other_node,
                a_group_created_on_one_node_is_announced_by_the_other,
                presence_is_counted_per_user_across_nodes,
                the_users_of_a_node_whose_presence_lease_ended_go_offline,
            }
            graph_races {
                crossing_friend_requests_become_one_friendship,
                a_friend_request_racing_a_block_never_survives_it,
                a_follow_racing_a_block_never_survives_it,
                the_blockers_own_follow_racing_its_block_never_survives_it,
            }
            follows {
                follow_lists_counts_and_tells_both,
                follow_twice_changes_nothing,
                unfollow_tells_only_the_follower,
                followers_and_following_are_listed_newest_first_in_pages,
                follows_at_the_same_time_are_ordered_by_id,
            }
            blocks {
                block_ends_friendship_requests_and_follows,
                block_twice_tells_only_the_blocker_once,
                blocked_user_cannot_befriend_follow_or_see_the_blocker,
                blocker_cannot_befriend_follow_or_see_the_blocked_user,
                blocked_users_cannot_see_each_others_lists,
                blocked_users_are_listed_newest_first_in_pages,
                unblock_allows_befriending_again_but_restores_nothing,
                unblock_of_a_user_not_blocked_changes_nothing,
                mutual_blocks_hold_until_both_are_lifted,
                block_unknown_or_deleted_user_is_not_found,
                mute_and_unmute_tell_only_the_muter,
                mute_keeps_friendship_and_follows,
                muted_users_are_listed_newest_first_in_pages,
                mute_of_a_blocker_or_unknown_user_is_not_found,
                relationship_reports_each_link,
                relationship_with_a_blocker_or_unknown_user_is_not_found,
                counts_are_shown_to_all_who_may_see_the_user,
            }
            chat {
                open_direct_creates_one_conversation_per_pair,
                open_direct_with_oneself_is_invalid,
                open_direct_with_unknown_or_deleted_user_is_not_found,
                open_direct_across_a_block_is_refused,
                open_direct_under_friends_only_needs_friendship,
                send_in_direct_across_a_block_is_forbidden,
                send_in_direct_after_unfriending_under_friends_only_is_forbidden,
                send_in_direct_after_unblocking_works_again,
                a_blocked_direct_conversation_is_read_only_for_both,
                typing_tells_the_other_members_only,
                direct_conversations_cannot_be_renamed_left_or_added_to,
                chat_actions_by_a_non_member_are_not_found,
                mark_read_moves_forward_only_and_tells_members,
                mark_read_beyond_the_newest_message_is_invalid,
                send_advances_only_the_senders_read_position,
                unread_counts_per_conversation_and_in_total,
                conversations_are_listed_by_last_activity_in_pages,
                a_tombstone_still_counts_as_a_message,
                sends_beyond_the_rate_are_limited_until_time_passes,
                a_retry_of_a_stored_message_costs_nothing_even_at_the_limit,
                send_rate_none_limits_nobody,
                concurrent_sends_get_gap_free_seqs_and_ordered_events,
                concurrent_retries_of_one_client_id_store_one_message,
                concurrent_send_and_membership_changes_tell_the_members_at_each_version,
                sends_queued_together_keep_call_order_and_their_own_outcomes,
                a_send_dropped_before_it_runs_is_withdrawn,
                a_batch_runs_to_the_end_when_the_future_that_took_it_is_dropped,
                append_messages_gives_each_message_its_own_outcome,
                append_takes_the_senders_rate_from_the_stored_bucket,
            }
            chat_groups {
                create_group_makes_the_creator_admin_and_tells_every_member,
                create_group_rejects_bad_titles,
                create_group_with_blocked_or_unknown_users_is_refused,
                create_group_beyond_the_maximum_size_is_invalid,
                add_members_tells_old_and_new_members,
                add_members_skips_existing_members,
                new_members_see_history_with_nothing_unread,
                former_members_can_be_added_again,
                add_members_refuses_blocked_or_unknown_users,
                add_members_beyond_the_maximum_size_is_invalid,
                group_admin_actions_by_a_plain_member_are_forbidden,
                remove_member_tells_the_members_before_the_change,
                removed_members_lose_the_conversation_and_its_events,
                remove_of_a_non_member_is_not_found,
                leave_tells_the_members_and_ends_membership,
                last_admin_leaving_promotes_the_earliest_member,
                set_role_promotes_and_demotes_and_tells_members,
                demoting_the_only_admin_is_invalid,
                rename_tells_members_and_bumps_the_version,
                rename_rejects_bad_titles,
            }
            posts {
                create_returns_the_post_with_hashtags_and_mentions,
                create_rejects_bad_texts_and_stores_nothing,
                edit_replaces_text_and_reparses_tags,
                only_the_author_edits_or_deletes,
                delete_removes_the_post_from_every_read,
                every_read_follows_visibility_for_every_role,
                a_deleted_accounts_posts_disappear,
                lists_page_newest_first_while_posts_arrive,
                concurrent_posts_get_distinct_positions,
                lists_reject_bad_input,
            }
            comments {
                comments_and_replies_form_counted_threads,
                comments_refuse_bad_text_and_parents,
                comments_are_edited_by_their_author_and_deleted_by_either_author,
                a_deleted_comment_with_replies_stays_as_a_tombstone,
                comments_follow_visibility_and_blocks_for_every_role,
                a_deleted_accounts_comments_disappear,
                threads_page_and_refuse_bad_input,
            }
            shares {
                a_share_points_to_the_original_and_counts,
                a_share_is_never_wider_than_the_original,
                only_what_one_may_see_can_be_shared,
                the_original_is_shown_only_to_those_who_may_see_it,
                shares_are_reacted_to_and_commented_on,
            }
            reactions {
                post_reactions_are_set_replaced_and_removed,
                message_reactions_go_through_chat,
                post_reactions_follow_visibility_for_every_role,
                blocked_and_deleted_reactors_are_hidden,
                reactions_to_missing_posts_and_bad_pages_are_refused,
            }
            chat_messages {
                every_version_has_one_change_log_entry,
                send_assigns_gap_free_seqs_and_tells_every_member,
                send_with_a_used_client_id_returns_the_first_message,
                client_id_reused_in_another_conversation_is_a_conflict,
                send_rejects_invalid_client_ids,
                send_rejects_blank_long_or_control_bodies,
                reply_to_must_be_a_message_of_the_same_conversation,
                edit_replaces_the_body_and_tells_members,
                edit_of_someone_elses_message_is_forbidden,
                edit_of_a_deleted_or_unknown_message_is_not_found,
                delete_leaves_a_tombstone_with_its_seq,
                delete_of_someone_elses_or_unknown_message_is_refused,
                reactions_are_set_replaced_and_removed,
                reacting_to_a_deleted_or_unknown_message_is_not_found,
                history_pages_latest_before_and_after,
                history_pages_through_many_messages_without_gaps,
                history_rejects_limits_outside_1_to_100,
                changes_since_returns_each_change_once_in_its_current_state,
                changes_since_pages_with_until_and_more,
                changes_since_rejects_bad_since_and_limit,
            }
            media {
                upload_stores_the_record_and_every_variant,
                upload_with_bad_input_stores_nothing,
                a_failed_byte_store_leaves_nothing_behind,
                unattached_media_is_seen_by_its_owner_only,
                avatars_and_covers_are_seen_by_whoever_sees_the_card,
                only_the_owner_may_attach,
                an_upload_is_attached_only_once,
                a_new_avatar_releases_the_previous_one,
                unattached_uploads_expire_after_the_grace_period,
                concurrent_attaches_leave_one_attachment,
                deleting_an_account_releases_its_media,
            }
        }
    };
}
