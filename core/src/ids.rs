//! Time-ordered 64-bit identifiers and the injectable generator behind them.
//!
//! An id is `(milliseconds since 2020-01-01) << 20 | counter << 8 | node`:
//! sorting by id sorts by creation time, which is what keyset pagination
//! relies on, and the low byte holds the number of the writer (node) that
//! made it, so several writers sharing one storage never make the same id. Ids are
//! below 2^63 so every backend can store them as a signed 64-bit integer, and
//! they are serialised as decimal strings so JavaScript clients keep every digit.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::Clock;

macro_rules! id_type {
    ($(#[doc = $doc:expr])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(u64);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                decimal_id_schema(concat!($($doc),*))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Wraps a raw id, for example one read back from storage.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw 64-bit value.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor).map(Self)
            }
        }
    };
}

/// The OpenAPI schema of every id type: a string of decimal digits, as ids
/// are serialised and as paths and bodies must give them.
#[cfg(feature = "openapi")]
fn decimal_id_schema(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9]+$"))
        .description(Some(description.trim()))
        .examples(["123456789012345678"])
        .into()
}

/// Accepts an id as a decimal string (the canonical form) or a JSON number.
struct IdVisitor;

impl de::Visitor<'_> for IdVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id as a decimal string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom("ids are not negative"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.parse()
            .map_err(|_| E::custom("an id is a decimal number"))
    }
}

id_type!(
    /// Identifies a user account.
    UserId
);
id_type!(
    /// Identifies a login session.
    SessionId
);
id_type!(
    /// Identifies a friend request.
    FriendRequestId
);
id_type!(
    /// Identifies a conversation.
    ConversationId
);
id_type!(
    /// Identifies an uploaded media item (an image and its variants).
    MediaId
);
id_type!(
    /// Identifies a chat message.
    MessageId
);
id_type!(
    /// Identifies a post.
    PostId
);
id_type!(
    /// Identifies a comment on a post.
    CommentId
);

/// Hands out unique, time-ordered raw ids. Injectable so tests are deterministic.
pub trait IdGenerator: Send + Sync {
    /// Returns an id greater than every id this generator returned before.
    fn next_id(&self) -> u64;
}

/// Milliseconds from the Unix epoch to 2020-01-01T00:00:00Z.
const ID_EPOCH_MS: i64 = 1_577_836_800_000;
/// Bits below the milliseconds: the counter and the node.
const COUNTER_BITS: u32 = 20;
/// The lowest bits: the node number.
const NODE_BITS: u32 = 8;
/// How many writers can share one storage (node numbers `0..NODES`).
pub const NODES: u16 = 1 << NODE_BITS;

/// The default [`IdGenerator`]: the clock's milliseconds in the high bits, a
/// counter of 12 bits (4,096 ids per millisecond; beyond, it borrows the next
/// millisecond) and the node number in the low 8, strictly increasing even
/// if the clock stalls or steps back.
pub struct TimeOrderedIds {
    clock: Arc<dyn Clock>,
    node: u64,
    /// The last `(ms << 12 | counter)` handed out.
    last: AtomicU64,
}

impl TimeOrderedIds {
    /// A generator reading time from `clock`, as node 0 (a single writer).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::for_node(clock, 0)
    }

    /// A generator for node `node` (below [`NODES`]), for one of several
    /// writers sharing a storage, each with a node number of its own (see
    /// [`NodeLease`](crate::NodeLease)). Numbers above the range wrap.
    pub fn for_node(clock: Arc<dyn Clock>, node: u16) -> Self {
        Self {
            clock,
            node: u64::from(node) % u64::from(NODES),
            last: AtomicU64::new(0),
        }
    }
}

impl IdGenerator for TimeOrderedIds {
    fn next_id(&self) -> u64 {
        let ms = (self.clock.now().as_millis() - ID_EPOCH_MS).max(0) as u64;
        let floor = ms << (COUNTER_BITS - NODE_BITS);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next << NODE_BITS | self.node,
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};

    #[test]
    fn ids_increase_and_follow_time() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let ids = TimeOrderedIds::new(clock.clone());
        let a = ids.next_id();
        let b = ids.next_id();
        assert!(b > a);
        clock.advance(std::time::Duration::from_millis(1));
        let c = ids.next_id();
        assert!(c > b);
        assert_eq!(c >> COUNTER_BITS, (1_700_000_000_001 - ID_EPOCH_MS) as u64);
        assert!(c < i64::MAX as u64);
    }

    #[test]
    fn nodes_never_make_the_same_id() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let a = TimeOrderedIds::for_node(clock.clone(), 1);
        let b = TimeOrderedIds::for_node(clock.clone(), 2);
        let mut seen = std::collections::HashSet::new();
        // More than 4,096 per node in one millisecond: the counter borrows
        // the next millisecond and stays unique.
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
        assert_eq!(a.next_id() & 0xff, 1);
        assert_eq!(b.next_id() & 0xff, 2);
    }

    #[test]
    fn ids_serialise_as_strings_and_parse_back() {
        let id = UserId::new(123_456_789_012_345_678);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"123456789012345678\"");
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert_eq!(
            serde_json::from_str::<UserId>("42").unwrap(),
            UserId::new(42)
        );
        assert!(serde_json::from_str::<UserId>("\"x\"").is_err());
        assert!(serde_json::from_str::<UserId>("-1").is_err());
    }
}
