//! Keyset pagination: [`Page`] in, [`Paged`] out, opaque cursors between.
//!
//! Every list is ordered by a unique key; a cursor encodes the key of the last
//! item returned and the next page starts strictly after it, so items inserted
//! while a client pages never cause duplicates or gaps in what it already saw.
//! A cursor also names its list: another list refuses it, even one with the
//! same kind of key (followers, following, blocks and mutes).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};

/// Default number of items in a page.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest number of items a page may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page of a list to return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// The `next_cursor` of the previous page, or `None` for the first page.
    pub cursor: Option<String>,
    /// How many items to return: 1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
    pub limit: Option<u32>,
}

impl Page {
    /// The first page with the default size.
    pub fn first() -> Self {
        Self::default()
    }

    /// The first page with `limit` items.
    pub fn with_limit(limit: u32) -> Self {
        Self {
            cursor: None,
            limit: Some(limit),
        }
    }

    /// The page after the one that returned `cursor`.
    pub fn after(cursor: impl Into<String>, limit: Option<u32>) -> Self {
        Self {
            cursor: Some(cursor.into()),
            limit,
        }
    }

    /// The validated limit.
    pub(crate) fn limit(&self) -> Result<u32> {
        match self.limit.unwrap_or(DEFAULT_PAGE_SIZE) {
            n @ 1..=MAX_PAGE_SIZE => Ok(n),
            n => Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_SIZE}, got {n}"),
            )),
        }
    }

    /// Decodes the cursor of `list` into a key of type `K`.
    pub(crate) fn key<K: CursorKey>(&self, list: &str) -> Result<Option<K>> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        decode_hex(cursor)
            .and_then(|text| {
                let key = text.strip_prefix(list)?.strip_prefix('/')?;
                K::decode(key)
            })
            .map(Some)
            .ok_or_else(|| Error::invalid("cursor", "not a cursor of this list"))
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paged<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass this back in [`Page::cursor`] for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Builds a page from `rows` fetched with the window of
    /// [`Page::window`]: the extra row, if present, only signals that another
    /// page exists.
    pub(crate) fn from_rows<K: CursorKey>(
        mut rows: Vec<T>,
        limit: Limit,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let size = limit.size as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_cursor = if more {
            let cursor = |last| format!("{}/{}", limit.list, key(last).encode());
            rows.last().map(|last| encode_hex(&cursor(last)))
        } else {
            None
        };
        Paged {
            items: rows,
            next_cursor,
        }
    }

    /// Applies `f` to every item.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// A sort key that can live in a cursor.
pub trait CursorKey: Sized {
    /// The key as text.
    fn encode(&self) -> String;
    /// Parses [`Self::encode`]'s output.
    fn decode(s: &str) -> Option<Self>;
}

/// The key of lists ordered newest first by the time a link was made, ties
/// broken by the other user's id: followers, following, blocks, mutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinceKey {
    /// When the link was made.
    pub since: Timestamp,
    /// The other user.
    pub user: UserId,
}

impl CursorKey for SinceKey {
    fn encode(&self) -> String {
        format!("s{}.{}", self.since.as_millis(), self.user)
    }
    fn decode(s: &str) -> Option<Self> {
        let (ms, id) = s.strip_prefix('s')?.split_once('.')?;
        Some(SinceKey {
            since: Timestamp::from_millis(ms.parse().ok()?),
            user: id.parse().ok()?,
        })
    }
}

/// The key of lists ordered by an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdKey(pub u64);

impl CursorKey for IdKey {
    fn encode(&self) -> String {
        format!("i{}", self.0)
    }
    fn decode(s: &str) -> Option<Self> {
        s.strip_prefix('i')?.parse().ok().map(IdKey)
    }
}

/// The key of lists ordered by lowercase username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameKey(pub String);

impl CursorKey for NameKey {
    fn encode(&self) -> String {
        format!("n{}", self.0)
    }
    fn decode(s: &str) -> Option<Self> {
        s.strip_prefix('n').map(|n| NameKey(n.to_owned()))
    }
}

/// The key of conversation lists: most recently active first, ties broken by
/// id (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityKey {
    /// When the conversation was last active.
    pub last_activity: Timestamp,
    /// The conversation.
    pub id: ConversationId,
}

impl CursorKey for ActivityKey {
    fn encode(&self) -> String {
        format!("a{}.{}", self.last_activity.as_millis(), self.id)
    }
    fn decode(s: &str) -> Option<Self> {
        let (ms, id) = s.strip_prefix('a')?.split_once('.')?;
        Some(ActivityKey {
            last_activity: Timestamp::from_millis(ms.parse().ok()?),
            id: id.parse().ok()?,
        })
    }
}

/// What storage is asked for: at most `limit` rows strictly after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<K> {
    /// Start strictly after this key, or at the start of the list.
    pub after: Option<K>,
    /// The maximum number of rows to return.
    pub limit: u32,
}

/// The validated size of a page, and the list (`"followers"`, `"mutes"`...)
/// its cursors belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    /// Items in the page.
    pub size: u32,
    /// The list's name, in its cursors.
    pub list: &'static str,
}

impl Page {
    /// The storage window for this page of `list`: one row more than the
    /// limit, so that [`Paged::from_rows`] can tell whether another page
    /// follows.
    pub(crate) fn window<K: CursorKey>(&self, list: &'static str) -> Result<(Window<K>, Limit)> {
        let size = self.limit()?;
        let after = self.key(list)?;
        Ok((
            Window {
                after,
                limit: size + 1,
            },
            Limit { size, list },
        ))
    }
}

/// Reads a list window after window from `fetch` (rows ordered by `key`,
/// `window.limit` at most per call) and keeps the rows that pass `keep`,
/// until `window.limit` rows are kept or the list ends: rules applied at
/// read time drop rows without making a page short before the end.
pub(crate) async fn fill<T, Fut>(
    mut window: Window<IdKey>,
    key: impl Fn(&T) -> IdKey,
    keep: impl Fn(&T) -> bool,
    mut fetch: impl FnMut(Window<IdKey>) -> Fut,
) -> Result<Vec<T>>
where
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let wanted = window.limit as usize;
    let mut kept = Vec::with_capacity(wanted);
    loop {
        let rows = fetch(window.clone()).await?;
        let end = rows.len() < wanted;
        let last = rows.last().map(&key);
        kept.extend(rows.into_iter().filter(&keep));
        kept.truncate(wanted);
        if end || kept.len() == wanted {
            return Ok(kept);
        }
        window.after = last;
    }
}

fn encode_hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> Option<String> {
    if hex.len() % 2 != 0 || hex.len() > 512 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = SinceKey {
            since: Timestamp::from_millis(1234),
            user: UserId::new(99),
        };
        let page = Page::after(encode_hex(&format!("mutes/{}", key.encode())), None);
        assert_eq!(page.key::<SinceKey>("mutes").unwrap(), Some(key));
        assert!(page.key::<SinceKey>("blocks").is_err());
        assert!(page.key::<IdKey>("mutes").is_err());
        assert!(Page::after("zz", None).key::<IdKey>("mutes").is_err());
        assert!(Page::after("é", None).key::<IdKey>("mutes").is_err());
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(Page::first().limit().unwrap(), DEFAULT_PAGE_SIZE);
        assert!(Page::with_limit(0).limit().is_err());
        assert!(Page::with_limit(MAX_PAGE_SIZE + 1).limit().is_err());
    }

    #[test]
    fn from_rows_sets_cursor_only_when_more_follow() {
        let limit = Limit {
            size: 2,
            list: "incoming",
        };
        let p = Paged::from_rows(vec![1u64, 2, 3], limit, |n| IdKey(*n));
        assert_eq!(p.items, vec![1, 2]);
        let next = Page::after(p.next_cursor.unwrap(), None);
        assert_eq!(next.key::<IdKey>("incoming").unwrap(), Some(IdKey(2)));
        assert!(next.key::<IdKey>("outgoing").is_err());
        let last = Paged::from_rows(vec![1u64, 2], limit, |n| IdKey(*n));
        assert_eq!(last.next_cursor, None);
    }
}
