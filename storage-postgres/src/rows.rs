//! Private row structs and the conversions between SQL values and Kith's
//! domain types.
//!
//! Ids travel as `i64` (`as` casts both ways, which round-trip every `u64`
//! bit for bit; Kith's ids are below 2^63 so they also sort correctly),
//! timestamps as `i64` milliseconds, birth dates as `YYYY-MM-DD` text (cast
//! to and from `DATE` in SQL), interests as `TEXT[]`. Chat's `seq`s,
//! versions and read positions are `i64` counters that start at 0; a
//! message's reactions come as a JSON array of `[user_id, kind]` pairs
//! aggregated by the query that reads the message.

use kith_core::{
    Account, AccountRecord, Comment, CommentId, ContactInfo, Conversation, ConversationId,
    ConversationKind, Error, FriendRequest, FriendRequestEntry, FriendRequestId, Member,
    MemberRole, Message, MessageId, MessageReaction, Peer, Post, PostId, Profile, Reaction,
    ReactionKind, Result, Session, SessionId, Timestamp, User, UserId, Viewed, Visibility,
};
use time::{Date, Month};

/// An id as PostgreSQL stores it.
pub(crate) fn sql_id(raw: u64) -> i64 {
    raw as i64
}

/// An id read back from PostgreSQL.
pub(crate) fn raw_id(sql: i64) -> u64 {
    sql as u64
}

/// A key from a pagination cursor as an exclusive SQL bound. Cursors come
/// from clients, so a forged one may exceed every real id; it then bounds
/// nothing (`i64::MAX` is, in practice, above every id).
pub(crate) fn cursor_id(raw: u64) -> i64 {
    i64::try_from(raw).unwrap_or(i64::MAX)
}

/// A `seq`, version or read position as PostgreSQL stores it. Kith's counters
/// grow by one per change, so they never come near 2^63.
pub(crate) fn sql_count(raw: u64) -> i64 {
    raw as i64
}

/// A `seq`, version or read position read back from PostgreSQL (never negative:
/// the schema checks it).
pub(crate) fn raw_count(sql: i64) -> u64 {
    sql as u64
}

/// A `LIMIT` value.
pub(crate) fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

/// Data in the database that does not decode: reported as a storage error.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::storage(format!(
        "corrupt {what} in the PostgreSQL database: {detail}"
    ))
}

/// A date as bound (and cast to `DATE`): `YYYY-MM-DD`.
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
    pub interests: Vec<String>,
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
            interests: p.interests.clone(),
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
    interests: Vec<String>,
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
        let interests = row.interests;
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

/// A conversation: `id, kind, title, created_by, created_at, last_seq,
/// version, last_activity`.
#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    id: i64,
    kind: String,
    title: Option<String>,
    created_by: i64,
    created_at: i64,
    last_seq: i64,
    version: i64,
    last_activity: i64,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = Error;

    fn try_from(row: ConversationRow) -> Result<Self> {
        Ok(Conversation {
            id: ConversationId::new(raw_id(row.id)),
            kind: ConversationKind::parse(&row.kind)
                .ok_or_else(|| corrupt("conversation kind", &row.kind))?,
            title: row.title,
            created_by: UserId::new(raw_id(row.created_by)),
            created_at: Timestamp::from_millis(row.created_at),
            last_seq: raw_count(row.last_seq),
            version: raw_count(row.version),
            last_activity: Timestamp::from_millis(row.last_activity),
        })
    }
}

/// A member: `user_id, role, joined_at, last_read_seq`.
#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    user_id: i64,
    role: String,
    joined_at: i64,
    last_read_seq: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;

    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Member {
            user_id: UserId::new(raw_id(row.user_id)),
            role: MemberRole::parse(&row.role).ok_or_else(|| corrupt("member role", &row.role))?,
            joined_at: Timestamp::from_millis(row.joined_at),
            last_read_seq: raw_count(row.last_read_seq),
        })
    }
}

/// A membership change: the member's columns, `has_left` and `version`.
#[derive(sqlx::FromRow)]
pub(crate) struct MemberChangeRow {
    #[sqlx(flatten)]
    pub member: MemberRow,
    pub has_left: bool,
    pub version: i64,
}

/// A message as selected by `crate::chat::message_columns!`: its columns and
/// `reactions`, the JSON array of its `[user_id, kind]` pairs.
#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: i64,
    conversation_id: i64,
    seq: i64,
    version: i64,
    sender_id: i64,
    client_id: String,
    body: Option<String>,
    reply_to: Option<i64>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    reactions: String,
}

/// Decodes a message's aggregated reactions, ordered by user id. The order
/// is restored here because SQL does not promise that an aggregate sees its
/// rows in index order.
fn reactions_from_sql(json: &str) -> Result<Vec<MessageReaction>> {
    if json == "[]" {
        return Ok(Vec::new());
    }
    let pairs: Vec<(i64, String)> =
        serde_json::from_str(json).map_err(|e| corrupt("reactions", e))?;
    let mut reactions = pairs
        .into_iter()
        .map(|(user, kind)| {
            Ok(MessageReaction {
                user_id: UserId::new(raw_id(user)),
                kind: ReactionKind::parse(&kind).ok_or_else(|| corrupt("reaction kind", &kind))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    reactions.sort_by_key(|r| r.user_id);
    Ok(reactions)
}

impl TryFrom<MessageRow> for Message {
    type Error = Error;

    fn try_from(row: MessageRow) -> Result<Self> {
        Ok(Message {
            id: MessageId::new(raw_id(row.id)),
            conversation_id: ConversationId::new(raw_id(row.conversation_id)),
            seq: raw_count(row.seq),
            version: raw_count(row.version),
            sender: UserId::new(raw_id(row.sender_id)),
            client_id: row.client_id,
            body: row.body,
            reply_to: row.reply_to.map(|id| MessageId::new(raw_id(id))),
            reactions: reactions_from_sql(&row.reactions)?,
            created_at: Timestamp::from_millis(row.created_at),
            edited_at: row.edited_at.map(Timestamp::from_millis),
            deleted_at: row.deleted_at.map(Timestamp::from_millis),
        })
    }
}

/// The newest message of a conversation in its list entry: the columns of
/// [`MessageRow`] prefixed with `m_`, all NULL when there is no message yet.
#[derive(sqlx::FromRow)]
pub(crate) struct LastMessageRow {
    m_id: Option<i64>,
    m_conversation_id: Option<i64>,
    m_seq: Option<i64>,
    m_version: Option<i64>,
    m_sender_id: Option<i64>,
    m_client_id: Option<String>,
    m_body: Option<String>,
    m_reply_to: Option<i64>,
    m_created_at: Option<i64>,
    m_edited_at: Option<i64>,
    m_deleted_at: Option<i64>,
    m_reactions: Option<String>,
}

impl TryFrom<LastMessageRow> for Option<Message> {
    type Error = Error;

    fn try_from(row: LastMessageRow) -> Result<Self> {
        let Some(id) = row.m_id else {
            return Ok(None);
        };
        let missing = || corrupt("last message", "a NOT NULL column is NULL");
        Message::try_from(MessageRow {
            id,
            conversation_id: row.m_conversation_id.ok_or_else(missing)?,
            seq: row.m_seq.ok_or_else(missing)?,
            version: row.m_version.ok_or_else(missing)?,
            sender_id: row.m_sender_id.ok_or_else(missing)?,
            client_id: row.m_client_id.ok_or_else(missing)?,
            body: row.m_body,
            reply_to: row.m_reply_to,
            created_at: row.m_created_at.ok_or_else(missing)?,
            edited_at: row.m_edited_at,
            deleted_at: row.m_deleted_at,
            reactions: row.m_reactions.ok_or_else(missing)?,
        })
        .map(Some)
    }
}

/// An entry of a user's conversation list: the conversation, the user's
/// read position and the newest message.
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    #[sqlx(flatten)]
    pub conversation: ConversationRow,
    pub last_read_seq: i64,
    #[sqlx(flatten)]
    pub last_message: LastMessageRow,
}

/// A post as selected by `crate::posts::POST_COLUMNS`, with the links
/// between the viewer and its author.
#[derive(sqlx::FromRow)]
pub(crate) struct PostRow {
    id: i64,
    #[sqlx(flatten)]
    author: CardRow,
    text: String,
    visibility: String,
    created_at: i64,
    edited_at: Option<i64>,
    position: Option<i64>,
    hashtags: Vec<String>,
    mentions: Vec<i64>,
    comments: i64,
    shared_id: Option<i64>,
    shares: i64,
    friends: bool,
    blocked: bool,
}

impl PostRow {
    /// The post, at `position` if given (the inserting transaction reads
    /// the post before it takes its position), else at the stored one.
    pub(crate) fn into_viewed(self, position: Option<i64>) -> Result<Viewed<Post>> {
        let mut hashtags = self.hashtags;
        hashtags.sort();
        let mut mentions: Vec<UserId> = self
            .mentions
            .into_iter()
            .map(|id| UserId::new(raw_id(id)))
            .collect();
        mentions.sort();
        let visibility = Visibility::parse(&self.visibility)
            .ok_or_else(|| corrupt("post visibility", &self.visibility))?;
        let position = position
            .or(self.position)
            .ok_or_else(|| corrupt("post position", "NULL after commit"))?;
        Ok(Viewed {
            value: Post {
                id: PostId::new(raw_id(self.id)),
                author: self.author.into(),
                text: self.text,
                visibility,
                hashtags,
                mentions,
                created_at: Timestamp::from_millis(self.created_at),
                edited_at: self.edited_at.map(Timestamp::from_millis),
                position: raw_count(position),
                comments: raw_count(self.comments),
                shares: raw_count(self.shares),
                shared_id: self.shared_id.map(|id| PostId::new(raw_id(id))),
                original: None,
            },
            friends: self.friends,
            blocked: self.blocked,
        })
    }
}

/// A user's card with the links between the viewer and them.
#[derive(sqlx::FromRow)]
pub(crate) struct ViewedCardRow {
    #[sqlx(flatten)]
    card: CardRow,
    friends: bool,
    blocked: bool,
}

impl From<ViewedCardRow> for Viewed<User> {
    fn from(row: ViewedCardRow) -> Self {
        Viewed {
            value: row.card.into(),
            friends: row.friends,
            blocked: row.blocked,
        }
    }
}

/// A reaction with the reacting user's card and the links between the
/// viewer and them.
#[derive(sqlx::FromRow)]
pub(crate) struct ReactionRow {
    #[sqlx(flatten)]
    user: ViewedCardRow,
    kind: String,
}

impl TryFrom<ReactionRow> for Viewed<Reaction> {
    type Error = Error;

    fn try_from(row: ReactionRow) -> Result<Self> {
        let kind =
            ReactionKind::parse(&row.kind).ok_or_else(|| corrupt("reaction kind", &row.kind))?;
        let user = Viewed::from(row.user);
        Ok(Viewed {
            value: Reaction {
                user: user.value,
                kind,
            },
            friends: user.friends,
            blocked: user.blocked,
        })
    }
}

/// A comment as selected by `crate::comments::COMMENT_COLUMNS`: the card
/// columns are NULL when the author's account is deleted.
#[derive(sqlx::FromRow)]
pub(crate) struct CommentRow {
    id: i64,
    post_id: i64,
    parent_id: Option<i64>,
    text: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    user_id: Option<i64>,
    username: Option<String>,
    display_name: Option<String>,
    avatar_url: Option<String>,
    replies: i64,
    friends: bool,
    blocked: bool,
}

impl From<CommentRow> for Viewed<Comment> {
    fn from(row: CommentRow) -> Self {
        let author = row.user_id.zip(row.username).map(|(id, username)| User {
            id: UserId::new(raw_id(id)),
            username,
            display_name: row.display_name,
            avatar_url: row.avatar_url,
        });
        Viewed {
            value: Comment {
                id: CommentId::new(raw_id(row.id)),
                post_id: PostId::new(raw_id(row.post_id)),
                parent_id: row.parent_id.map(|id| CommentId::new(raw_id(id))),
                author,
                text: row.text,
                created_at: Timestamp::from_millis(row.created_at),
                edited_at: row.edited_at.map(Timestamp::from_millis),
                deleted: row.deleted_at.is_some(),
                replies: raw_count(row.replies),
            },
            friends: row.friends,
            blocked: row.blocked,
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
    fn reactions_decode_in_user_order_and_reject_unknown_kinds() {
        assert!(reactions_from_sql("[]").unwrap().is_empty());
        let reactions = reactions_from_sql(r#"[[7,"wow"],[3,"like"]]"#).unwrap();
        let decoded: Vec<(u64, ReactionKind)> = reactions
            .iter()
            .map(|r| (r.user_id.get(), r.kind))
            .collect();
        assert_eq!(decoded, [(3, ReactionKind::Like), (7, ReactionKind::Wow)]);
        assert!(reactions_from_sql(r#"[[3,"meh"]]"#).is_err());
        assert!(reactions_from_sql("not json").is_err());
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
