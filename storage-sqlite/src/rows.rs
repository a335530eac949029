//! Private row structs and the conversions between SQL values and Kith's
//! domain types.
//!
//! Ids travel as `i64` (`as` casts both ways, which round-trip every `u64`
//! bit for bit; Kith's ids are below 2^63 so they also sort correctly),
//! timestamps as `i64` milliseconds, dates as `YYYY-MM-DD` text, interests
//! as a JSON array.

use kith_core::{
    Account, AccountRecord, ContactInfo, Error, FriendRequest, FriendRequestEntry, FriendRequestId,
    Peer, Profile, Result, Session, SessionId, Timestamp, User, UserId, Visibility,
};
use time::{Date, Month};

/// An id as SQLite stores it.
pub(crate) fn sql_id(raw: u64) -> i64 {
    raw as i64
}

/// An id read back from SQLite.
pub(crate) fn raw_id(sql: i64) -> u64 {
    sql as u64
}

/// A key from a pagination cursor as an exclusive SQL bound. Cursors come
/// from clients, so a forged one may exceed every real id; it then bounds
/// nothing (`i64::MAX` is, in practice, above every id).
pub(crate) fn cursor_id(raw: u64) -> i64 {
    i64::try_from(raw).unwrap_or(i64::MAX)
}

/// A `LIMIT` value.
pub(crate) fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

/// Data in the database that does not decode: reported as a storage error.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::storage(format!("corrupt {what} in the SQLite database: {detail}"))
}

/// A date as stored: `YYYY-MM-DD`.
pub(crate) fn date_to_sql(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn date_from_sql(text: &str) -> Result<Date> {
    let parse = || -> Option<Date> {
        let mut parts = text.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
        let day = parts.next()?.parse().ok()?;
        Date::from_calendar_date(year, month, day).ok()
    };
    parse().ok_or_else(|| corrupt("birth_date", text))
}

/// The profile columns as bound on insert and update, in the order of the
/// column list in [`crate::accounts`].
pub(crate) struct ProfileColumns<'a> {
    pub display_name: Option<&'a str>,
    pub display_name_lower: Option<String>,
    pub bio: Option<&'a str>,
    pub location: Option<&'a str>,
    pub birth_date: Option<String>,
    pub job: Option<&'a str>,
    pub interests: String,
    pub avatar_url: Option<&'a str>,
    pub cover_url: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    pub contact_phone: Option<&'a str>,
    pub contact_website: Option<&'a str>,
    pub visibility: &'static str,
}

impl<'a> ProfileColumns<'a> {
    pub(crate) fn new(p: &'a Profile) -> Result<Self> {
        Ok(Self {
            display_name: p.display_name.as_deref(),
            display_name_lower: p.display_name.as_deref().map(str::to_lowercase),
            bio: p.bio.as_deref(),
            location: p.location.as_deref(),
            birth_date: p.birth_date.map(date_to_sql),
            job: p.job.as_deref(),
            interests: serde_json::to_string(&p.interests).map_err(Error::storage)?,
            avatar_url: p.avatar_url.as_deref(),
            cover_url: p.cover_url.as_deref(),
            contact_email: p.contact.email.as_deref(),
            contact_phone: p.contact.phone.as_deref(),
            contact_website: p.contact.website.as_deref(),
            visibility: p.visibility.as_str(),
        })
    }
}

/// A live account as selected by `crate::accounts::ACCOUNT_COLUMNS`.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    username: String,
    email: Option<String>,
    password_hash: Option<String>,
    created_at: i64,
    display_name: Option<String>,
    bio: Option<String>,
    location: Option<String>,
    birth_date: Option<String>,
    job: Option<String>,
    interests: String,
    avatar_url: Option<String>,
    cover_url: Option<String>,
    contact_email: Option<String>,
    contact_phone: Option<String>,
    contact_website: Option<String>,
    visibility: String,
}

impl TryFrom<AccountRow> for AccountRecord {
    type Error = Error;

    fn try_from(row: AccountRow) -> Result<Self> {
        let interests: Vec<String> =
            serde_json::from_str(&row.interests).map_err(|e| corrupt("interests", e))?;
        let visibility = Visibility::parse(&row.visibility)
            .ok_or_else(|| corrupt("visibility", &row.visibility))?;
        let birth_date = row.birth_date.as_deref().map(date_from_sql).transpose()?;
        Ok(AccountRecord {
            account: Account {
                id: UserId::new(raw_id(row.id)),
                username: row.username,
                email: row.email,
                has_password: row.password_hash.is_some(),
                created_at: Timestamp::from_millis(row.created_at),
                profile: Profile {
                    display_name: row.display_name,
                    bio: row.bio,
                    location: row.location,
                    birth_date,
                    job: row.job,
                    interests,
                    avatar_url: row.avatar_url,
                    cover_url: row.cover_url,
                    contact: ContactInfo {
                        email: row.contact_email,
                        phone: row.contact_phone,
                        website: row.contact_website,
                    },
                    visibility,
                },
            },
            password_hash: row.password_hash,
        })
    }
}

/// A session row.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: i64,
    user_id: i64,
    created_at: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId::new(raw_id(row.id)),
            user_id: UserId::new(raw_id(row.user_id)),
            created_at: Timestamp::from_millis(row.created_at),
        }
    }
}

/// The public card of the other party of a link: `a.id AS user_id,
/// a.username, a.display_name, a.avatar_url`.
#[derive(sqlx::FromRow)]
pub(crate) struct CardRow {
    user_id: i64,
    username: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
}

impl From<CardRow> for User {
    fn from(row: CardRow) -> Self {
        User {
            id: UserId::new(raw_id(row.user_id)),
            username: row.username,
            display_name: row.display_name,
            avatar_url: row.avatar_url,
        }
    }
}

/// A card and the time its link was made.
#[derive(sqlx::FromRow)]
pub(crate) struct PeerRow {
    #[sqlx(flatten)]
    card: CardRow,
    since: i64,
}

impl From<PeerRow> for Peer {
    fn from(row: PeerRow) -> Self {
        Peer {
            user: row.card.into(),
            since: Timestamp::from_millis(row.since),
        }
    }
}

/// A friend request: `id, from_user, to_user, created_at`.
#[derive(sqlx::FromRow)]
pub(crate) struct RequestRow {
    id: i64,
    from_user: i64,
    to_user: i64,
    created_at: i64,
}

impl From<RequestRow> for FriendRequest {
    fn from(row: RequestRow) -> Self {
        FriendRequest {
            id: FriendRequestId::new(raw_id(row.id)),
            from: UserId::new(raw_id(row.from_user)),
            to: UserId::new(raw_id(row.to_user)),
            created_at: Timestamp::from_millis(row.created_at),
        }
    }
}

/// A friend request with the other party's card.
#[derive(sqlx::FromRow)]
pub(crate) struct RequestEntryRow {
    #[sqlx(flatten)]
    request: RequestRow,
    #[sqlx(flatten)]
    card: CardRow,
}

impl From<RequestEntryRow> for FriendRequestEntry {
    fn from(row: RequestEntryRow) -> Self {
        FriendRequestEntry {
            request: row.request.into(),
            user: row.card.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for (y, m, d) in [
            (1900, Month::January, 1),
            (2026, Month::December, 31),
            (987, Month::May, 9),
        ] {
            let date = Date::from_calendar_date(y, m, d).unwrap();
            let text = date_to_sql(date);
            assert_eq!(text.len(), 10);
            assert_eq!(date_from_sql(&text).unwrap(), date);
        }
        assert_eq!(
            date_to_sql(Date::from_calendar_date(2001, Month::February, 3).unwrap()),
            "2001-02-03"
        );
        assert!(date_from_sql("2001-02-30").is_err());
        assert!(date_from_sql("yesterday").is_err());
    }

    #[test]
    fn ids_round_trip_and_cursors_clamp() {
        for raw in [0, 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(raw_id(sql_id(raw)), raw);
        }
        assert_eq!(cursor_id(5), 5);
        assert_eq!(cursor_id(u64::MAX), i64::MAX);
    }
}
