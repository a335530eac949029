//! The per-user send rate limit: a token bucket per user, driven by the
//! injected clock so that tests control time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::UserId;

/// How fast one user may send messages: bursts of `burst` messages, refilled
/// at `per_second` messages per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRate {
    /// Messages that may be sent at once after a pause.
    pub burst: u32,
    /// Sustained messages per second.
    pub per_second: u32,
}

impl Default for SendRate {
    /// 20 messages at once, 5 per second sustained.
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 5,
        }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Tokens in thousandths, to avoid floating point.
    milli_tokens: u64,
    at: Timestamp,
}

/// The buckets of every user who sent recently.
#[derive(Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

/// Beyond this many tracked users, full buckets are forgotten (a full bucket
/// is the same as no bucket).
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    /// Takes one token from `user`'s bucket at time `now`.
    ///
    /// # Errors
    /// [`Error::RateLimited`] with the time until a token is available; the
    /// bucket is left as it was.
    pub fn take(&self, rate: SendRate, user: UserId, now: Timestamp) -> Result<()> {
        let capacity = u64::from(rate.burst.max(1)) * 1000;
        let per_ms = u64::from(rate.per_second); // milli-tokens per millisecond
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refill = |b: &Bucket| {
            let elapsed = now.as_millis().saturating_sub(b.at.as_millis()).max(0) as u64;
            b.milli_tokens
                .saturating_add(elapsed.saturating_mul(per_ms))
                .min(capacity)
        };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| refill(b) < capacity);
        }
        let bucket = map.entry(user).or_insert(Bucket {
            milli_tokens: capacity,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1000 {
            let missing = 1000 - tokens;
            let wait_ms = if per_ms == 0 {
                u64::MAX / 2
            } else {
                missing.div_ceil(per_ms)
            };
            return Err(Error::RateLimited {
                retry_after: Duration::from_millis(wait_ms),
            });
        }
        *bucket = Bucket {
            milli_tokens: tokens - 1000,
            at: now,
        };
        Ok(())
    }

    /// Gives back the token a send took when it turned out to cost nothing
    /// (a retry answered with the message already stored).
    pub fn refund(&self, rate: SendRate, user: UserId) {
        let capacity = u64::from(rate.burst.max(1)) * 1000;
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = map.get_mut(&user) {
            bucket.milli_tokens = (bucket.milli_tokens + 1000).min(capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let rl = RateLimiter::default();
        let rate = SendRate {
            burst: 3,
            per_second: 2,
        };
        let u = UserId::new(1);
        let t0 = Timestamp::from_millis(1_000_000);
        for _ in 0..3 {
            rl.take(rate, u, t0).unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = rl.take(rate, u, t0) else {
            panic!("expected a rate limit")
        };
        assert_eq!(retry_after, Duration::from_millis(500));
        // Another user is unaffected.
        rl.take(rate, UserId::new(2), t0).unwrap();
        // Half a second later one token is back, not two.
        let t1 = Timestamp::from_millis(1_000_500);
        rl.take(rate, u, t1).unwrap();
        assert!(rl.take(rate, u, t1).is_err());
    }
}
