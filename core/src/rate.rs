//! Per-user rate limits: a token bucket per user and kind of write, kept by
//! storage (so a limit holds across every writer of a storage, however many
//! server nodes share it). The arithmetic is here, in one place, driven by
//! the write's time so that tests control it.
//!
//! Message sends take their bucket in the transaction that stores the
//! message ([`ChatStore::append_messages`](crate::ChatStore::append_messages));
//! every other limited write ([`WriteKind`]) takes one token with
//! [`LimitStore::take_token`](crate::LimitStore::take_token) before it is
//! made, so a write refused for another reason still counts as an attempt.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// How fast one user may do something: bursts of `burst`, refilled at
/// `per_hour` per hour (spread evenly: one every `3600 / per_hour` seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// How many may be done at once after a pause.
    pub burst: u32,
    /// Sustained rate, per hour.
    pub per_hour: u32,
}

impl Default for Rate {
    /// The default message send rate: 20 at once, 5 per second sustained.
    fn default() -> Self {
        Self::per_second(20, 5)
    }
}

/// A user's bucket as storage keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tokens in thousandths (one write costs 1,000), to avoid floating
    /// point.
    pub milli_tokens: u64,
    /// When it was last taken from.
    pub at: Timestamp,
}

impl Rate {
    /// Bursts of `burst`, `per_second` per second sustained.
    pub const fn per_second(burst: u32, per_second: u32) -> Self {
        Self {
            burst,
            per_hour: per_second.saturating_mul(3600),
        }
    }

    /// Bursts of `burst`, `per_hour` per hour sustained.
    pub const fn per_hour(burst: u32, per_hour: u32) -> Self {
        Self { burst, per_hour }
    }

    /// Takes one token at `now` from `bucket` (`None`: a user with no
    /// bucket yet, whose bucket is full) and returns the bucket to store.
    ///
    /// # Errors
    /// The time until a token is available; the bucket is to be left as it
    /// was.
    pub fn take(&self, bucket: Option<Bucket>, now: Timestamp) -> Result<Bucket, Duration> {
        let capacity = u64::from(self.burst.max(1)) * 1000;
        // Milli-tokens come back at per_hour / 3,600 per millisecond.
        let per_hour = u64::from(self.per_hour);
        let tokens = match bucket {
            None => capacity,
            Some(b) => {
                let elapsed = now.as_millis().saturating_sub(b.at.as_millis()).max(0) as u64;
                b.milli_tokens
                    .saturating_add(elapsed.saturating_mul(per_hour) / 3600)
                    .min(capacity)
            }
        };
        if tokens < 1000 {
            let missing = 1000 - tokens;
            let wait_ms = if per_hour == 0 {
                u64::MAX / 2
            } else {
                (missing * 3600).div_ceil(per_hour)
            };
            return Err(Duration::from_millis(wait_ms));
        }
        Ok(Bucket {
            milli_tokens: tokens - 1000,
            at: now,
        })
    }
}

/// The kinds of write limited per user besides message sends, each with its
/// own bucket and its own [`Rate`] in [`WriteRates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// Sending a friend request.
    FriendRequest,
    /// Following someone.
    Follow,
    /// Creating a post (a share included).
    Post,
    /// Writing a comment or a reply.
    Comment,
    /// Setting a reaction.
    Reaction,
    /// Uploading media.
    Upload,
}

impl WriteKind {
    /// Every kind.
    pub const ALL: [WriteKind; 6] = [
        WriteKind::FriendRequest,
        WriteKind::Follow,
        WriteKind::Post,
        WriteKind::Comment,
        WriteKind::Reaction,
        WriteKind::Upload,
    ];

    /// The stable snake_case name, as stored and as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::FriendRequest => "friend_request",
            WriteKind::Follow => "follow",
            WriteKind::Post => "post",
            WriteKind::Comment => "comment",
            WriteKind::Reaction => "reaction",
            WriteKind::Upload => "upload",
        }
    }

    /// The kind named `name` (see [`WriteKind::as_str`]).
    pub fn parse(name: &str) -> Option<WriteKind> {
        WriteKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The per-user limit of every [`WriteKind`]; `None` leaves a kind
/// unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRates {
    rates: [Option<Rate>; WriteKind::ALL.len()],
}

impl WriteRates {
    /// No kind limited.
    pub const fn none() -> Self {
        Self {
            rates: [None; WriteKind::ALL.len()],
        }
    }

    /// The limit of `kind`.
    pub fn get(&self, kind: WriteKind) -> Option<Rate> {
        self.rates[kind as usize]
    }

    /// Sets (or with `None` lifts) the limit of `kind`.
    pub fn set(&mut self, kind: WriteKind, rate: Option<Rate>) {
        self.rates[kind as usize] = rate;
    }

    /// The same with `kind` limited to `rate`.
    pub fn with(mut self, kind: WriteKind, rate: Option<Rate>) -> Self {
        self.set(kind, rate);
        self
    }
}

impl Default for WriteRates {
    /// Generous limits that stop scripts, not people: friend requests 20 at
    /// once and 100 an hour; follows 50 and 200; posts 10 and 60; comments
    /// 20 and 300; reactions 60 and 1,200; uploads 20 and 200.
    fn default() -> Self {
        Self::none()
            .with(WriteKind::FriendRequest, Some(Rate::per_hour(20, 100)))
            .with(WriteKind::Follow, Some(Rate::per_hour(50, 200)))
            .with(WriteKind::Post, Some(Rate::per_hour(10, 60)))
            .with(WriteKind::Comment, Some(Rate::per_hour(20, 300)))
            .with(WriteKind::Reaction, Some(Rate::per_hour(60, 1200)))
            .with(WriteKind::Upload, Some(Rate::per_hour(20, 200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let rate = Rate::per_second(3, 2);
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

    #[test]
    fn slow_rates_refill_by_the_hour() {
        let rate = Rate::per_hour(1, 60);
        let t0 = Timestamp::from_millis(1_000_000);
        let bucket = Some(rate.take(None, t0).unwrap());
        assert_eq!(rate.take(bucket, t0), Err(Duration::from_secs(60)));
        // One milli-token (a thousandth of a post) comes back every 60 ms.
        let t1 = Timestamp::from_millis(1_000_000 + 59_940);
        assert_eq!(rate.take(bucket, t1), Err(Duration::from_millis(60)));
        let t2 = Timestamp::from_millis(1_000_000 + 60_000);
        assert!(rate.take(bucket, t2).is_ok());
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in WriteKind::ALL {
            assert_eq!(WriteKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WriteKind::parse("message"), None);
    }
}
