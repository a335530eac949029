//! The per-user send rate limit: a token bucket per sender, kept by storage
//! (so it holds across every writer of a storage) and taken in the
//! transaction that stores the message; the arithmetic is here, in one
//! place, driven by the message's time so that tests control it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// How fast one user may send messages: bursts of `burst` messages, refilled
/// at `per_second` messages per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// A sender's bucket as storage keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBucket {
    /// Tokens in thousandths (one message costs 1,000), to avoid floating
    /// point.
    pub milli_tokens: u64,
    /// When it was last taken from.
    pub at: Timestamp,
}

impl SendRate {
    /// Takes one token at `now` from `bucket` (`None`: a sender with no
    /// bucket yet, whose bucket is full) and returns the bucket to store.
    ///
    /// # Errors
    /// The time until a token is available; the bucket is to be left as it
    /// was.
    pub fn take(&self, bucket: Option<SendBucket>, now: Timestamp) -> Result<SendBucket, Duration> {
        let capacity = u64::from(self.burst.max(1)) * 1000;
        let per_ms = u64::from(self.per_second); // milli-tokens per millisecond
        let tokens = match bucket {
            None => capacity,
            Some(b) => {
                let elapsed = now.as_millis().saturating_sub(b.at.as_millis()).max(0) as u64;
                b.milli_tokens
                    .saturating_add(elapsed.saturating_mul(per_ms))
                    .min(capacity)
            }
        };
        if tokens < 1000 {
            let missing = 1000 - tokens;
            let wait_ms = if per_ms == 0 {
                u64::MAX / 2
            } else {
                missing.div_ceil(per_ms)
            };
            return Err(Duration::from_millis(wait_ms));
        }
        Ok(SendBucket {
            milli_tokens: tokens - 1000,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let rate = SendRate {
            burst: 3,
            per_second: 2,
        };
        let t0 = Timestamp::from_millis(1_000_000);
        let mut bucket = None;
        for _ in 0..3 {
            bucket = Some(rate.take(bucket, t0).unwrap());
        }
        assert_eq!(rate.take(bucket, t0), Err(Duration::from_millis(500)));
        // Half a second later one token is back, not two.
        let t1 = Timestamp::from_millis(1_000_500);
        bucket = Some(rate.take(bucket, t1).unwrap());
        assert!(rate.take(bucket, t1).is_err());
    }
}
