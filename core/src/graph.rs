//! The social graph: [`Graph`], reached through [`Kith::graph`](crate::Kith::graph).
//!
//! Friend requests, friendships, follows, blocks and mutes. Blocking is the
//! strongest link: it ends the friendship, the pending requests and the
//! follows between the two users, and until it is lifted neither can send the
//! other a friend request, follow the other or see the other's profile.

use crate::clock::Timestamp;
use crate::error::{Clash, Denied, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{FriendRequestId, UserId};
use crate::kith::Inner;
use crate::model::{
    FriendRequest, FriendRequestEntry, FriendRequestOutcome, Friendship, GraphCounts, Links, Peer,
    Relationship,
};
use crate::page::{IdKey, NameKey, Page, Paged, SinceKey};
use crate::rate::WriteKind;
use crate::storage::{Followed, RequestDirection, Requested};
use crate::validate;

/// Friends, follows, blocks and mutes.
pub struct Graph<'k> {
    pub(crate) kith: &'k Inner,
}

/// The key of a [`Peer`] in lists ordered by link time.
fn since_key(p: &Peer) -> SinceKey {
    SinceKey {
        since: p.since,
        user: p.user.id,
    }
}

impl Graph<'_> {
    /// Checks that `other` is a live user whom `actor` (also live) may see,
    /// and returns the links between them.
    async fn reach(&self, actor: UserId, other: UserId) -> Result<Links> {
        Self::not_self(actor, other)?;
        self.live(actor).await?;
        self.live(other).await?;
        let links = self.kith.storage.links(actor, other).await?;
        if links.blocked_by {
            return Err(Error::NotFound(Entity::User));
        }
        Ok(links)
    }

    async fn live(&self, user: UserId) -> Result<()> {
        self.kith.account(user).await.map(drop)
    }

    fn not_self(actor: UserId, other: UserId) -> Result<()> {
        if actor == other {
            Err(Error::invalid("user_id", "cannot be yourself"))
        } else {
            Ok(())
        }
    }

    /// Checks that `viewer` may see the lists (friends, followers, following)
    /// of `owner`: the owner's profile visibility decides.
    async fn may_list(&self, viewer: UserId, owner: UserId) -> Result<()> {
        let account = self.kith.account(owner).await?.account;
        let role = self.kith.role(Some(viewer), owner).await?;
        if !role.can_see_user() {
            return Err(Error::NotFound(Entity::User));
        }
        if !role.can_see(account.profile.visibility) {
            return Err(Error::Forbidden(Denied::Private));
        }
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.kith.clock.now()
    }

    /// Sends a friend request from `actor` to `to`. If `to` had already sent
    /// `actor` a request, both are accepted at once and they become friends.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`user_id`) for oneself; [`Error::NotFound`] if
    /// `to` does not exist or blocks the actor; [`Error::Forbidden`] if the
    /// actor blocks `to`; [`Error::Conflict`] if they are already friends
    /// ([`Clash::AlreadyFriends`]) or a request is pending ([`Clash::RequestPending`]);
    /// [`Error::RateLimited`] beyond the actor's friend request rate
    /// ([`Config::write_rates`](crate::Config::write_rates)).
    pub async fn send_friend_request(
        &self,
        actor: UserId,
        to: UserId,
    ) -> Result<FriendRequestOutcome> {
        let links = self.reach(actor, to).await?;
        let rel = links.visible;
        if rel.blocking {
            return Err(Error::Forbidden(Denied::BlockedByActor));
        }
        if rel.friends {
            return Err(Error::Conflict(Clash::AlreadyFriends));
        }
        if rel.request_sent {
            return Err(Error::Conflict(Clash::RequestPending));
        }
        self.kith
            .take_write(actor, WriteKind::FriendRequest)
            .await?;
        let request = FriendRequest {
            id: FriendRequestId::new(self.kith.ids.next_id()),
            from: actor,
            to,
            created_at: self.now(),
        };
        // The checks above answer the common cases with the right error;
        // the store checks again in its transaction, against blocks and
        // requests committed meanwhile.
        match self.kith.storage.insert_friend_request(&request).await? {
            Requested::Pending => {
                self.kith.emit(Delivery::new(
                    Event::FriendRequestSent {
                        request: request.clone(),
                    },
                    [actor, to],
                ));
                Ok(FriendRequestOutcome::Pending { request })
            }
            Requested::Accepted(_) => Ok(FriendRequestOutcome::Accepted {
                friendship: self.befriended(actor, to, request.created_at),
            }),
            Requested::Blocked => Err(self.refused_by_block(actor, to).await),
        }
    }

    /// The error for an action refused by a block between `actor` and
    /// `other`: not found if `other` blocks the actor (which Kith never
    /// reveals), forbidden if the actor blocks `other`.
    async fn refused_by_block(&self, actor: UserId, other: UserId) -> Error {
        match self.kith.storage.links(actor, other).await {
            Ok(links) if links.visible.blocking => Error::Forbidden(Denied::BlockedByActor),
            Ok(_) => Error::NotFound(Entity::User),
            Err(e) => e,
        }
    }

    /// Withdraws the actor's pending request to `to`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`]
    /// ([`Entity::FriendRequest`]) if no such request is pending.
    pub async fn cancel_friend_request(&self, actor: UserId, to: UserId) -> Result<()> {
        Self::not_self(actor, to)?;
        let request = self
            .kith
            .storage
            .delete_friend_request(actor, to)
            .await?
            .ok_or(Error::NotFound(Entity::FriendRequest))?;
        self.kith.emit(Delivery::new(
            Event::FriendRequestCancelled {
                request_id: request.id,
                from: actor,
                to,
            },
            [actor, to],
        ));
        Ok(())
    }

    /// Accepts the pending request `from` sent to the actor; they become friends.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`]
    /// ([`Entity::FriendRequest`]) if no such request is pending.
    pub async fn accept_friend_request(&self, actor: UserId, from: UserId) -> Result<Friendship> {
        Self::not_self(actor, from)?;
        self.accept(from, actor).await
    }

    async fn accept(&self, from: UserId, to: UserId) -> Result<Friendship> {
        let since = self.now();
        self.kith
            .storage
            .accept_friend_request(from, to, since)
            .await?
            .ok_or(Error::NotFound(Entity::FriendRequest))?;
        Ok(self.befriended(to, from, since))
    }

    /// Tells both that `user` (who accepted) and `friend` became friends.
    fn befriended(&self, user: UserId, friend: UserId, since: Timestamp) -> Friendship {
        let friendship = Friendship {
            user,
            friend,
            since,
        };
        self.kith.emit(Delivery::new(
            Event::FriendAdded {
                friendship: friendship.clone(),
            },
            [user, friend],
        ));
        friendship
    }

    /// Declines the pending request `from` sent to the actor. The sender is
    /// not told; to them the request simply disappears.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`]
    /// ([`Entity::FriendRequest`]) if no such request is pending.
    pub async fn decline_friend_request(&self, actor: UserId, from: UserId) -> Result<()> {
        Self::not_self(actor, from)?;
        let request = self
            .kith
            .storage
            .delete_friend_request(from, actor)
            .await?
            .ok_or(Error::NotFound(Entity::FriendRequest))?;
        self.kith.emit(Delivery::new(
            Event::FriendRequestDeclined {
                request_id: request.id,
                from,
                to: actor,
            },
            [actor],
        ));
        Ok(())
    }

    /// Pending requests sent to the actor, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `limit` or `cursor`.
    pub async fn incoming_requests(
        &self,
        actor: UserId,
        page: &Page,
    ) -> Result<Paged<FriendRequestEntry>> {
        self.requests(actor, RequestDirection::Incoming, page).await
    }

    /// Pending requests the actor sent, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `limit` or `cursor`.
    pub async fn outgoing_requests(
        &self,
        actor: UserId,
        page: &Page,
    ) -> Result<Paged<FriendRequestEntry>> {
        self.requests(actor, RequestDirection::Outgoing, page).await
    }

    async fn requests(
        &self,
        actor: UserId,
        direction: RequestDirection,
        page: &Page,
    ) -> Result<Paged<FriendRequestEntry>> {
        let list = match direction {
            RequestDirection::Incoming => "incoming",
            RequestDirection::Outgoing => "outgoing",
        };
        let (window, limit) = page.window::<IdKey>(list)?;
        let rows = self
            .kith
            .storage
            .friend_requests(actor, direction, window)
            .await?;
        Ok(Paged::from_rows(rows, limit, |e| IdKey(e.request.id.get())))
    }

    /// The friends of `user` as `viewer` may see them, ordered by username
    /// (ignoring case). With `name`, only friends whose username or display
    /// name contains it, ignoring case.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `user` does not exist or one blocks the other;
    /// [`Error::Forbidden`] if `user`'s profile visibility hides the list from
    /// `viewer`; [`Error::InvalidInput`] for `name`, `limit` or `cursor`.
    pub async fn friends(
        &self,
        viewer: UserId,
        user: UserId,
        name: Option<&str>,
        page: &Page,
    ) -> Result<Paged<Peer>> {
        let name = validate::name_filter("name", name)?;
        let (window, limit) = page.window::<NameKey>("friends")?;
        self.may_list(viewer, user).await?;
        let rows = self
            .kith
            .storage
            .friends(user, name.as_deref(), window)
            .await?;
        Ok(Paged::from_rows(rows, limit, |p| {
            NameKey(p.user.username.to_ascii_lowercase())
        }))
    }

    /// The ids of every friend of the actor, in no particular order: whom a
    /// transport tells about the actor (presence). It answers for the actor
    /// alone; listing someone's friends to others is [`Self::friends`],
    /// with its privacy rules.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn friend_ids(&self, actor: UserId) -> Result<Vec<UserId>> {
        self.kith.storage.friend_ids(actor).await
    }

    /// Who is told when `user` comes online or goes offline: the presence
    /// rule. Presence is shared with friends only (a block ends the
    /// friendship, so a blocked user is never told).
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn presence_audience(&self, user: UserId) -> Result<Vec<UserId>> {
        self.kith.storage.friend_ids(user).await
    }

    /// A connection of `user` opened on this node. Storage counts the
    /// user's connections per node, under each node's presence lease
    /// ([`PRESENCE_TTL`], renewed by [`Kith::poll`](crate::Kith::poll)); if
    /// they had none on any live node, [`Self::presence_audience`] is told
    /// that they came online ([`Event::Presence`], on every node). Returns
    /// whether they came online. Transports call it for every connection
    /// they open, and [`Self::disconnected`] when it closes.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn connected(&self, user: UserId) -> Result<bool> {
        let now = self.kith.clock.now();
        let until = now.plus(PRESENCE_TTL);
        let came = self
            .kith
            .storage
            .presence_up(user, self.kith.origin, now, until)
            .await?;
        if came {
            self.announce(user, true, now).await?;
        }
        Ok(came)
    }

    /// A connection of `user` opened with [`Self::connected`] closed; if it
    /// was their last on every live node, [`Self::presence_audience`] is
    /// told that they went offline, with when. Returns whether they went
    /// offline.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn disconnected(&self, user: UserId) -> Result<bool> {
        let now = self.kith.clock.now();
        let gone = self
            .kith
            .storage
            .presence_down(user, self.kith.origin, now)
            .await?;
        if gone {
            self.announce(user, false, now).await?;
        }
        Ok(gone)
    }

    /// Tells the user's presence audience that they came online or went
    /// offline at `at`.
    async fn announce(&self, user: UserId, online: bool, at: crate::Timestamp) -> Result<()> {
        let audience = self.presence_audience(user).await?;
        self.kith.emit(Delivery::new(
            Event::Presence {
                user_id: user,
                online,
                last_seen: (!online).then_some(at),
            },
            audience,
        ));
        Ok(())
    }

    /// [`Kith::poll`](crate::Kith::poll)'s part for presence: renews this
    /// node's lease when a third of it has passed, and announces the users
    /// of ended leases who have no connection left as offline.
    pub(crate) async fn keep_presence(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let now = self.kith.clock.now();
        let renewed = self.kith.presence_renewed.load(Ordering::Relaxed);
        let third = (PRESENCE_TTL.as_millis() / 3) as i64;
        if renewed == i64::MIN || now.as_millis() - renewed >= third {
            self.kith
                .storage
                .renew_presence(self.kith.origin, now.plus(PRESENCE_TTL))
                .await?;
            self.kith
                .presence_renewed
                .store(now.as_millis(), Ordering::Relaxed);
        }
        for user in self.kith.storage.expire_presence(now).await? {
            self.announce(user, false, now).await?;
        }
        Ok(())
    }

    /// Ends the actor's friendship with `other`. Follows are not touched.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`]
    /// ([`Entity::Friendship`]) if they are not friends.
    pub async fn unfriend(&self, actor: UserId, other: UserId) -> Result<()> {
        Self::not_self(actor, other)?;
        if !self.kith.storage.delete_friendship(actor, other).await? {
            return Err(Error::NotFound(Entity::Friendship));
        }
        self.kith.emit(Delivery::new(
            Event::FriendRemoved { by: actor, other },
            [actor, other],
        ));
        Ok(())
    }

    /// The actor follows `other`. Following again changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`] if `other`
    /// does not exist or blocks the actor; [`Error::Forbidden`] if the actor
    /// blocks `other`; [`Error::RateLimited`] beyond the actor's follow rate
    /// ([`Config::write_rates`](crate::Config::write_rates)).
    pub async fn follow(&self, actor: UserId, other: UserId) -> Result<()> {
        let links = self.reach(actor, other).await?;
        if links.visible.blocking {
            return Err(Error::Forbidden(Denied::BlockedByActor));
        }
        if links.visible.following {
            return Ok(());
        }
        self.kith.take_write(actor, WriteKind::Follow).await?;
        let since = self.now();
        match self.kith.storage.insert_follow(actor, other, since).await? {
            Followed::Inserted => self.kith.emit(Delivery::new(
                Event::Followed {
                    follower: actor,
                    followee: other,
                    since,
                },
                [actor, other],
            )),
            Followed::Already => {}
            Followed::Blocked => return Err(self.refused_by_block(actor, other).await),
        }
        Ok(())
    }

    /// The actor stops following `other`. Unfollowing someone not followed
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself.
    pub async fn unfollow(&self, actor: UserId, other: UserId) -> Result<()> {
        Self::not_self(actor, other)?;
        if self.kith.storage.delete_follow(actor, other).await? {
            self.kith.emit(Delivery::new(
                Event::Unfollowed {
                    follower: actor,
                    followee: other,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// The followers of `user`, newest first, as `viewer` may see them.
    ///
    /// # Errors
    /// As [`Self::friends`].
    pub async fn followers(
        &self,
        viewer: UserId,
        user: UserId,
        page: &Page,
    ) -> Result<Paged<Peer>> {
        let (window, limit) = page.window::<SinceKey>("followers")?;
        self.may_list(viewer, user).await?;
        let rows = self.kith.storage.followers(user, window).await?;
        Ok(Paged::from_rows(rows, limit, since_key))
    }

    /// The users `user` follows, newest first, as `viewer` may see them.
    ///
    /// # Errors
    /// As [`Self::friends`].
    pub async fn following(
        &self,
        viewer: UserId,
        user: UserId,
        page: &Page,
    ) -> Result<Paged<Peer>> {
        let (window, limit) = page.window::<SinceKey>("following")?;
        self.may_list(viewer, user).await?;
        let rows = self.kith.storage.following(user, window).await?;
        Ok(Paged::from_rows(rows, limit, since_key))
    }

    /// Friend, follower and following counts of `user`. Counts are public to
    /// everyone who may see the user at all.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `user` does not exist or one blocks the other.
    pub async fn counts(&self, viewer: Option<UserId>, user: UserId) -> Result<GraphCounts> {
        self.live(user).await?;
        if !self.kith.role(viewer, user).await?.can_see_user() {
            return Err(Error::NotFound(Entity::User));
        }
        self.kith.storage.counts(user).await
    }

    /// Where the actor stands with `other`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`] if `other`
    /// does not exist or blocks the actor.
    pub async fn relationship(&self, actor: UserId, other: UserId) -> Result<Relationship> {
        Ok(self.reach(actor, other).await?.visible)
    }

    /// The actor blocks `other`: their friendship, pending requests and
    /// follows in both directions end, and neither can see the other's
    /// profile or befriend or follow the other until the block is lifted.
    /// Blocking again changes nothing. `other` is never told.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`] if `other`
    /// does not exist.
    pub async fn block(&self, actor: UserId, other: UserId) -> Result<()> {
        Self::not_self(actor, other)?;
        self.live(actor).await?;
        self.live(other).await?;
        if self
            .kith
            .storage
            .insert_block(actor, other, self.now())
            .await?
        {
            self.kith.emit(Delivery::new(
                Event::Blocked {
                    blocker: actor,
                    blocked: other,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// The actor lifts a block. Friendships and follows it ended stay ended.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself.
    pub async fn unblock(&self, actor: UserId, other: UserId) -> Result<()> {
        Self::not_self(actor, other)?;
        if self.kith.storage.delete_block(actor, other).await? {
            self.kith.emit(Delivery::new(
                Event::Unblocked {
                    blocker: actor,
                    blocked: other,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// The users the actor blocks, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `limit` or `cursor`.
    pub async fn blocked(&self, actor: UserId, page: &Page) -> Result<Paged<Peer>> {
        let (window, limit) = page.window::<SinceKey>("blocks")?;
        let rows = self.kith.storage.blocks(actor, window).await?;
        Ok(Paged::from_rows(rows, limit, since_key))
    }

    /// The actor mutes `other`: `other`'s posts leave the actor's feeds, with
    /// no change to friendship or follows. Muting again changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself; [`Error::NotFound`] if `other`
    /// does not exist or blocks the actor.
    pub async fn mute(&self, actor: UserId, other: UserId) -> Result<()> {
        self.reach(actor, other).await?;
        if self
            .kith
            .storage
            .insert_mute(actor, other, self.now())
            .await?
        {
            self.kith.emit(Delivery::new(
                Event::Muted {
                    muter: actor,
                    muted: other,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// The actor unmutes `other`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for oneself.
    pub async fn unmute(&self, actor: UserId, other: UserId) -> Result<()> {
        Self::not_self(actor, other)?;
        if self.kith.storage.delete_mute(actor, other).await? {
            self.kith.emit(Delivery::new(
                Event::Unmuted {
                    muter: actor,
                    muted: other,
                },
                [actor],
            ));
        }
        Ok(())
    }

    /// The users the actor mutes, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `limit` or `cursor`.
    pub async fn muted(&self, actor: UserId, page: &Page) -> Result<Paged<Peer>> {
        let (window, limit) = page.window::<SinceKey>("mutes")?;
        let rows = self.kith.storage.mutes(actor, window).await?;
        Ok(Paged::from_rows(rows, limit, since_key))
    }
}

/// How long a node's presence lease lasts unless renewed: the users of a
/// node killed without closing its connections are shown offline at most
/// this long after (plus the other nodes' poll interval).
pub const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
