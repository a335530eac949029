//! The per-address rate limit of login and registration: a `governor`
//! keyed limiter (GCRA) by client address (see [`crate::client_ip`] for how
//! that address is found behind proxies). The per-user send limit is Kith's
//! own rule.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed<C> =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Attempts allowed per client address: `per_minute` a minute, in bursts of
/// that many.
#[derive(Debug)]
pub struct AddressLimiter<C: Clock = DefaultClock> {
    /// `None`: no limit.
    limiter: Option<Keyed<C>>,
}

/// Beyond this many tracked addresses, those back to a full bucket are
/// forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl AddressLimiter {
    /// A limiter allowing `per_minute` attempts per address per minute
    /// (bursts of that many); 0 switches it off.
    pub fn new(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> AddressLimiter<C> {
    /// [`AddressLimiter::new`] with another clock (a fake one in tests).
    pub fn with_clock(per_minute: u32, clock: C) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            RateLimiter::new(
                Quota::per_minute(n),
                DefaultKeyedStateStore::default(),
                clock,
            )
        });
        Self { limiter }
    }

    /// Takes one attempt for `ip`, or says how long to wait. IPv6 clients
    /// are limited per /64 (one subscriber's usual allocation, all of which a
    /// client can use); IPv4-mapped IPv6 addresses count as their IPv4
    /// address.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter
            .check_key(&bucket_key(ip))
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// The address a client is limited by.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_v4_is_v4() {
        let limiter = AddressLimiter::with_clock(1, FakeRelativeClock::default());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(b).is_err());
        assert!(limiter.check(other).is_ok());
        let v4: IpAddr = [192, 0, 2, 1].into();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(limiter.check(v4).is_ok());
        assert!(limiter.check(mapped).is_err());
    }

    #[test]
    fn bursts_then_waits_and_zero_is_off() {
        let clock = FakeRelativeClock::default();
        let limiter = AddressLimiter::with_clock(2, clock.clone());
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        let wait = limiter.check(ip).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(limiter.check([127, 0, 0, 2].into()).is_ok());
        clock.advance(Duration::from_secs(30));
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_err());
        let off = AddressLimiter::new(0);
        for _ in 0..100 {
            assert!(off.check(ip).is_ok());
        }
    }
}
