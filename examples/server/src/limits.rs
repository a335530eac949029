//! The per-address rate limit of login and registration: a token bucket per
//! client IP. (The per-user send limit is Kith's own rule.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets by client address.
#[derive(Debug)]
pub struct AddressLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Beyond this many tracked addresses, full buckets are forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl AddressLimiter {
    /// A limiter allowing `per_minute` attempts per address per minute
    /// (bursts of that many); 0 switches it off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `ip` at `now`, or says how long to wait.
    /// IPv6 clients are limited per /64 (one subscriber's usual allocation,
    /// all of which a client can use); IPv4-mapped IPv6 addresses count as
    /// their IPv4 address.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let ip = bucket_key(ip);
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refill = |(tokens, at): (f64, Instant)| {
            (tokens + now.saturating_duration_since(at).as_secs_f64() * per_sec).min(capacity)
        };
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| refill(*b) < capacity);
        }
        let bucket = buckets.entry(ip).or_insert((capacity, now));
        let tokens = refill(*bucket);
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) / per_sec));
        }
        *bucket = (tokens - 1.0, now);
        Ok(())
    }
}

/// The address a client is limited by.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_v4_is_v4() {
        let limiter = AddressLimiter::new(1);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(limiter.check(a, t0).is_ok());
        assert!(limiter.check(b, t0).is_err());
        assert!(limiter.check(other, t0).is_ok());
        let v4: IpAddr = [192, 0, 2, 1].into();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(limiter.check(v4, t0).is_ok());
        assert!(limiter.check(mapped, t0).is_err());
    }

    #[test]
    fn bursts_then_waits_and_zero_is_off() {
        let limiter = AddressLimiter::new(2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t0 = Instant::now();
        assert!(limiter.check(ip, t0).is_ok());
        assert!(limiter.check(ip, t0).is_ok());
        let wait = limiter.check(ip, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 30);
        assert!(limiter.check([127, 0, 0, 2].into(), t0).is_ok());
        assert!(limiter.check(ip, t0 + Duration::from_secs(30)).is_ok());
        let off = AddressLimiter::new(0);
        for _ in 0..100 {
            assert!(off.check(ip, t0).is_ok());
        }
    }
}
