//! Conversations and their members: creation, the direct conversation of a
//! pair, membership changes and renames.

use super::*;

pub(super) const SELECT_CONVERSATION: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE id = $1";

pub(super) const SELECT_DIRECT: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE direct_low = $1 AND direct_high = $2";

/// The current members in user order, straight from the primary key.
pub(super) const SELECT_MEMBERS: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = $1 AND left_version IS NULL ORDER BY user_id";

pub(super) const SELECT_MEMBER: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = $1 AND user_id = $2 AND left_version IS NULL";

/// Inserts (or, for a former member, reinstates) the members of the arrays
/// `$2` (user ids), `$3` (roles), `$4` (join times) and `$5` (read
/// positions) under version `$6`. A current member is left alone, so it
/// does not count as a change.
pub(super) const UPSERT_MEMBERS: &str = "\
    INSERT INTO conversation_members \
        (conversation_id, user_id, role, joined_at, last_read_seq, left_version, version) \
    SELECT $1, m.user_id, m.role, m.joined_at, m.last_read_seq, NULL, $6 \
    FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) \
        AS m (user_id, role, joined_at, last_read_seq) \
    ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
        role = excluded.role, joined_at = excluded.joined_at, \
        last_read_seq = excluded.last_read_seq, left_version = NULL, version = excluded.version \
    WHERE conversation_members.left_version IS NOT NULL";

/// Members as the arrays [`UPSERT_MEMBERS`] reads, each user once (the
/// first time it is listed; one statement cannot insert a row twice).
pub(super) struct MemberArrays {
    users: Vec<i64>,
    roles: Vec<&'static str>,
    joined: Vec<i64>,
    read: Vec<i64>,
}

impl MemberArrays {
    pub(super) fn new(members: &[Member]) -> Self {
        let mut arrays = Self {
            users: Vec::with_capacity(members.len()),
            roles: Vec::with_capacity(members.len()),
            joined: Vec::with_capacity(members.len()),
            read: Vec::with_capacity(members.len()),
        };
        for m in members {
            let user = sql_id(m.user_id.get());
            if arrays.users.contains(&user) {
                continue;
            }
            arrays.users.push(user);
            arrays.roles.push(m.role.as_str());
            arrays.joined.push(m.joined_at.as_millis());
            arrays.read.push(sql_count(m.last_read_seq));
        }
        arrays
    }

    /// Runs [`UPSERT_MEMBERS`]; returns how many members were added.
    async fn upsert(
        self,
        conn: &mut PgConnection,
        id: ConversationId,
        version: i64,
    ) -> Result<u64> {
        sqlx::query(UPSERT_MEMBERS)
            .bind(sql_id(id.get()))
            .bind(self.users)
            .bind(self.roles)
            .bind(self.joined)
            .bind(self.read)
            .bind(version)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
            .map_err(db)
    }
}

pub(super) fn members_from(rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    rows.into_iter().map(Member::try_from).collect()
}

/// [`ChatStore::create_conversation`].
pub(super) async fn create_conversation(
    store: &PgStore,
    conversation: &Conversation,
    members: &[Member],
) -> Result<()> {
    let pair = match (conversation.kind, members) {
        (ConversationKind::Direct, [a, b]) if a.user_id != b.user_id => {
            let (a, b) = (sql_id(a.user_id.get()), sql_id(b.user_id.get()));
            Some((a.min(b), a.max(b)))
        }
        (ConversationKind::Direct, _) => {
            return Err(Error::invalid(
                "members",
                "a direct conversation has exactly two members",
            ))
        }
        (ConversationKind::Group, _) => None,
    };
    let members = MemberArrays::new(members);
    let mut tx = store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO conversations (id, kind, title, title_version, created_by, created_at, \
             last_seq, version, last_activity, direct_low, direct_high) \
         VALUES ($1, $2, $3, 0, $4, $5, 0, 0, $6, $7, $8)",
    )
    .bind(sql_id(conversation.id.get()))
    .bind(conversation.kind.as_str())
    .bind(conversation.title.as_deref())
    .bind(sql_id(conversation.created_by.get()))
    .bind(conversation.created_at.as_millis())
    .bind(conversation.last_activity.as_millis())
    .bind(pair.map(|p| p.0))
    .bind(pair.map(|p| p.1))
    .execute(&mut *tx)
    .await;
    if let Err(err) = inserted {
        return Err(match unique_violation(&err) {
            Some("conversations_direct_pair") => Error::Conflict(Clash::DirectExists),
            _ => db(err),
        });
    }
    members.upsert(&mut tx, conversation.id, 0).await?;
    tx.commit().await.map_err(db)
}

/// [`ChatStore::direct_conversation`].
pub(super) async fn direct_conversation(
    store: &PgStore,
    a: UserId,
    b: UserId,
) -> Result<Option<Conversation>> {
    let (a, b) = (sql_id(a.get()), sql_id(b.get()));
    let row: Option<ConversationRow> = sqlx::query_as(SELECT_DIRECT)
        .bind(a.min(b))
        .bind(a.max(b))
        .fetch_optional(store.read())
        .await
        .map_err(db)?;
    row.map(Conversation::try_from).transpose()
}

/// [`ChatStore::conversation`].
pub(super) async fn conversation(
    store: &PgStore,
    id: ConversationId,
) -> Result<Option<Conversation>> {
    let row: Option<ConversationRow> = sqlx::query_as(SELECT_CONVERSATION)
        .bind(sql_id(id.get()))
        .fetch_optional(store.read())
        .await
        .map_err(db)?;
    row.map(Conversation::try_from).transpose()
}

/// [`ChatStore::members`].
pub(super) async fn members(store: &PgStore, id: ConversationId) -> Result<Vec<Member>> {
    let rows: Vec<MemberRow> = sqlx::query_as(SELECT_MEMBERS)
        .bind(sql_id(id.get()))
        .fetch_all(store.read())
        .await
        .map_err(db)?;
    members_from(rows)
}

/// [`ChatStore::member`].
pub(super) async fn member(
    store: &PgStore,
    id: ConversationId,
    user: UserId,
) -> Result<Option<Member>> {
    let row: Option<MemberRow> = sqlx::query_as(SELECT_MEMBER)
        .bind(sql_id(id.get()))
        .bind(sql_id(user.get()))
        .fetch_optional(store.read())
        .await
        .map_err(db)?;
    row.map(Member::try_from).transpose()
}

/// The version of the latest membership change, by the index
/// `conversation_members_version`.
pub(super) const MEMBERSHIP_VERSION: &str = "\
    SELECT COALESCE(MAX(version), 0) FROM conversation_members WHERE conversation_id = $1";

/// [`ChatStore::membership_version`].
pub(super) async fn membership_version(store: &PgStore, id: ConversationId) -> Result<u64> {
    let version: i64 = sqlx::query_scalar(MEMBERSHIP_VERSION)
        .bind(sql_id(id.get()))
        .fetch_one(store.read())
        .await
        .map_err(db)?;
    Ok(raw_count(version))
}

/// The versions of the conversations of the array `$1`.
const VERSIONS: &str = "SELECT id, version FROM conversations WHERE id = ANY($1)";

/// [`ChatStore::versions`].
pub(super) async fn versions(
    store: &PgStore,
    ids: &[ConversationId],
) -> Result<Vec<(ConversationId, u64)>> {
    let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
    let rows: Vec<(i64, i64)> = sqlx::query_as(VERSIONS)
        .bind(ids)
        .fetch_all(store.read())
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(id, version)| (ConversationId::new(raw_id(id)), raw_count(version)))
        .collect())
}

/// [`ChatStore::add_members`].
pub(super) async fn add_members(
    store: &PgStore,
    id: ConversationId,
    members: &[Member],
    by: UserId,
    max_members: usize,
) -> Result<u64> {
    let arrays = MemberArrays::new(members);
    let mut tx = store.begin().await?;
    let version = next_version(&mut tx, id)
        .await?
        .ok_or(Error::NotFound(Entity::Conversation))?;
    // Under the conversation's lock, like every check below.
    require_admin(&mut tx, id, by).await?;
    let added = arrays.upsert(&mut tx, id, version).await?;
    if added != members.len() as u64 {
        // Dropping the transaction rolls it back, version included.
        return Err(Error::invalid("members", "already a current member"));
    }
    if current_members(&mut tx, id).await? > max_members as u64 {
        return Err(Error::invalid(
            "members",
            format!("a group has at most {max_members} members"),
        ));
    }
    log_change(&mut tx, id, version, ChangeKind::MembersAdded, by, None).await?;
    tx.commit().await.map_err(db)?;
    Ok(raw_count(version))
}

/// [`ChatStore::remove_member`].
pub(super) async fn remove_member(
    store: &PgStore,
    id: ConversationId,
    user: UserId,
    by: Option<UserId>,
) -> Result<Option<Removed>> {
    let mut tx = store.begin().await?;
    let Some(version) = next_version(&mut tx, id).await? else {
        return Ok(None);
    };
    if let Some(by) = by {
        require_admin(&mut tx, id, by).await?;
    }
    // Under the conversation's lock: whether `user` is a current member is
    // decided here, after every earlier change to the conversation.
    let left = sqlx::query(
        "UPDATE conversation_members SET left_version = $3, version = $3 \
         WHERE conversation_id = $1 AND user_id = $2 AND left_version IS NULL",
    )
    .bind(sql_id(id.get()))
    .bind(sql_id(user.get()))
    .bind(version)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if left == 0 {
        // Not a member: dropping the transaction rolls the version back.
        return Ok(None);
    }
    let promoted = promote_if_no_admin(&mut tx, id, version).await?;
    let actor = by.unwrap_or(user);
    let subject = Some(sql_id(user.get()));
    log_change(
        &mut tx,
        id,
        version,
        ChangeKind::MemberRemoved,
        actor,
        subject,
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(Some(Removed {
        version: raw_count(version),
        promoted,
    }))
}

/// [`ChatStore::set_role`].
pub(super) async fn set_role(
    store: &PgStore,
    id: ConversationId,
    user: UserId,
    role: MemberRole,
    by: UserId,
) -> Result<Option<u64>> {
    let mut tx = store.begin().await?;
    let Some(version) = next_version(&mut tx, id).await? else {
        return Ok(None);
    };
    require_admin(&mut tx, id, by).await?;
    let changed = sqlx::query(
        "UPDATE conversation_members SET role = $3, version = $4 \
         WHERE conversation_id = $1 AND user_id = $2 AND left_version IS NULL",
    )
    .bind(sql_id(id.get()))
    .bind(sql_id(user.get()))
    .bind(role.as_str())
    .bind(version)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if changed == 0 {
        // Not a member: dropping the transaction rolls the version back.
        return Ok(None);
    }
    if !admin_remains(&mut tx, id).await? {
        // Dropping the transaction rolls it back, version included.
        return Err(Error::invalid("role", "a group needs at least one admin"));
    }
    let subject = Some(sql_id(user.get()));
    log_change(
        &mut tx,
        id,
        version,
        ChangeKind::MemberRoleChanged,
        by,
        subject,
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(Some(raw_count(version)))
}

/// [`ChatStore::rename`].
pub(super) async fn rename(
    store: &PgStore,
    id: ConversationId,
    title: &str,
    by: UserId,
) -> Result<u64> {
    let mut tx = store.begin().await?;
    // It locks the row, and the right-hand sides see the row before the
    // update, so title_version becomes the new version.
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE conversations SET version = version + 1, title = $2, \
             title_version = version + 1 \
         WHERE id = $1 RETURNING version",
    )
    .bind(sql_id(id.get()))
    .bind(title)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let version = version.ok_or(Error::NotFound(Entity::Conversation))?;
    require_admin(&mut tx, id, by).await?;
    log_change(
        &mut tx,
        id,
        version,
        ChangeKind::ConversationRenamed,
        by,
        None,
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(raw_count(version))
}

/// Inside a write transaction, after the conversation's lock: `by` must be
/// a current admin of the conversation.
async fn require_admin(conn: &mut PgConnection, id: ConversationId, by: UserId) -> Result<()> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM conversation_members \
         WHERE conversation_id = $1 AND user_id = $2 AND left_version IS NULL",
    )
    .bind(sql_id(id.get()))
    .bind(sql_id(by.get()))
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    match role.as_deref() {
        None => Err(Error::NotFound(Entity::Conversation)),
        Some("admin") => Ok(()),
        Some(_) => Err(Error::Forbidden(Denied::NotAdmin)),
    }
}

/// Inside a write transaction: how many current members the conversation has.
async fn current_members(conn: &mut PgConnection, id: ConversationId) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversation_members \
         WHERE conversation_id = $1 AND left_version IS NULL",
    )
    .bind(sql_id(id.get()))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(raw_count(count))
}

/// Inside a write transaction: whether a current member is an admin, or
/// nobody is left.
async fn admin_remains(conn: &mut PgConnection, id: ConversationId) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversation_members \
             WHERE conversation_id = $1 AND left_version IS NULL AND role = 'admin') \
         OR NOT EXISTS (SELECT 1 FROM conversation_members \
             WHERE conversation_id = $1 AND left_version IS NULL)",
    )
    .bind(sql_id(id.get()))
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Inside a write transaction: if no current member is an admin, makes the
/// one who joined earliest (then the lowest id) an admin under `version`.
async fn promote_if_no_admin(
    conn: &mut PgConnection,
    id: ConversationId,
    version: i64,
) -> Result<Option<UserId>> {
    let promoted: Option<i64> = sqlx::query_scalar(
        "UPDATE conversation_members SET role = 'admin', version = $2 \
         WHERE conversation_id = $1 AND left_version IS NULL \
           AND NOT EXISTS (SELECT 1 FROM conversation_members \
               WHERE conversation_id = $1 AND left_version IS NULL AND role = 'admin') \
           AND user_id = (SELECT user_id FROM conversation_members \
               WHERE conversation_id = $1 AND left_version IS NULL \
               ORDER BY joined_at, user_id LIMIT 1) \
         RETURNING user_id",
    )
    .bind(sql_id(id.get()))
    .bind(version)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    Ok(promoted.map(|u| UserId::new(raw_id(u))))
}
