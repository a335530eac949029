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
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
