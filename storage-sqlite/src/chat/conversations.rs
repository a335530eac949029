//! Conversations and their members: creation, the direct conversation of a
//! pair, membership changes and renames.

use super::*;

pub(super) const SELECT_CONVERSATION: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE id = ?1";

pub(super) const SELECT_DIRECT: &str = "\
    SELECT id, kind, title, created_by, created_at, last_seq, version, last_activity \
    FROM conversations WHERE direct_low = ?1 AND direct_high = ?2";

/// The current members in user order, straight from the primary key.
pub(super) const SELECT_MEMBERS: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = ?1 AND left_version IS NULL ORDER BY user_id";

pub(super) const SELECT_MEMBER: &str = "\
    SELECT user_id, role, joined_at, last_read_seq FROM conversation_members \
    WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL";

/// Inserts (or, for a former member, reinstates) the members of the JSON
/// array `?2` of `[user_id, role, joined_at, last_read_seq]` under version
/// `?3`. A current member is left alone, so it does not count as a change.
pub(super) const UPSERT_MEMBERS: &str = "\
    INSERT INTO conversation_members \
        (conversation_id, user_id, role, joined_at, last_read_seq, left_version, version) \
    SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, NULL, ?3 \
    FROM json_each(?2) WHERE true \
    ON CONFLICT (conversation_id, user_id) DO UPDATE SET \
        role = excluded.role, joined_at = excluded.joined_at, \
        last_read_seq = excluded.last_read_seq, left_version = NULL, version = excluded.version \
    WHERE conversation_members.left_version IS NOT NULL";

/// Takes the next version if `?2` is a current member.
pub(super) const BUMP_IF_MEMBER: &str = "\
    UPDATE conversations SET version = version + 1 \
    WHERE id = ?1 AND EXISTS (SELECT 1 FROM conversation_members \
        WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL) \
    RETURNING version";

/// Members as the JSON array [`UPSERT_MEMBERS`] reads.
pub(super) fn members_json(members: &[Member]) -> Result<String> {
    let rows: Vec<(i64, &str, i64, i64)> = members
        .iter()
        .map(|m| {
            (
                sql_id(m.user_id.get()),
                m.role.as_str(),
                m.joined_at.as_millis(),
                sql_count(m.last_read_seq),
            )
        })
        .collect();
    serde_json::to_string(&rows).map_err(Error::storage)
}

pub(super) fn members_from(rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    rows.into_iter().map(Member::try_from).collect()
}

/// [`ChatStore::create_conversation`].
pub(super) async fn create_conversation(
    store: &SqliteStore,
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
    let members = members_json(members)?;
    let mut tx = store.write().await?;
    let inserted = sqlx::query(
        "INSERT INTO conversations (id, kind, title, title_version, created_by, created_at, \
             last_seq, version, last_activity, direct_low, direct_high) \
         VALUES (?1, ?2, ?3, 0, ?4, ?5, 0, 0, ?6, ?7, ?8)",
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
            Some(m) if m.contains("conversations.direct_low") => {
                Error::Conflict(Clash::DirectExists)
            }
            _ => db(err),
        });
    }
    sqlx::query(UPSERT_MEMBERS)
        .bind(sql_id(conversation.id.get()))
        .bind(members)
        .bind(0_i64)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// [`ChatStore::direct_conversation`].
pub(super) async fn direct_conversation(
    store: &SqliteStore,
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
    store: &SqliteStore,
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
pub(super) async fn members(store: &SqliteStore, id: ConversationId) -> Result<Vec<Member>> {
    let rows: Vec<MemberRow> = sqlx::query_as(SELECT_MEMBERS)
        .bind(sql_id(id.get()))
        .fetch_all(store.read())
        .await
        .map_err(db)?;
    members_from(rows)
}

/// [`ChatStore::member`].
pub(super) async fn member(
    store: &SqliteStore,
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
    SELECT COALESCE(MAX(version), 0) FROM conversation_members WHERE conversation_id = ?1";

/// [`ChatStore::membership_version`].
pub(super) async fn membership_version(store: &SqliteStore, id: ConversationId) -> Result<u64> {
    let version: i64 = sqlx::query_scalar(MEMBERSHIP_VERSION)
        .bind(sql_id(id.get()))
        .fetch_one(store.read())
        .await
        .map_err(db)?;
    Ok(raw_count(version))
}

/// The versions of the conversations of the JSON array `?1`.
const VERSIONS: &str = "SELECT id, version FROM conversations \
    WHERE id IN (SELECT value FROM json_each(?1))";

/// [`ChatStore::versions`].
pub(super) async fn versions(
    store: &SqliteStore,
    ids: &[ConversationId],
) -> Result<Vec<(ConversationId, u64)>> {
    let ids: Vec<i64> = ids.iter().map(|id| sql_id(id.get())).collect();
    let rows: Vec<(i64, i64)> = sqlx::query_as(VERSIONS)
        .bind(serde_json::json!(ids).to_string())
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
    store: &SqliteStore,
    id: ConversationId,
    members: &[Member],
    by: UserId,
    max_members: usize,
) -> Result<u64> {
    let json = members_json(members)?;
    let mut tx = store.write().await?;
    let version = next_version(&mut tx, id)
        .await?
        .ok_or(Error::NotFound(Entity::Conversation))?;
    require_admin(&mut tx, id, by).await?;
    let added = sqlx::query(UPSERT_MEMBERS)
        .bind(sql_id(id.get()))
        .bind(json)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
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
    store: &SqliteStore,
    id: ConversationId,
    user: UserId,
    by: Option<UserId>,
) -> Result<Option<Removed>> {
    let mut tx = store.write().await?;
    let Some(version) = next_version_if(&mut tx, BUMP_IF_MEMBER, id, sql_id(user.get())).await?
    else {
        return Ok(None);
    };
    if let Some(by) = by {
        require_admin(&mut tx, id, by).await?;
    }
    sqlx::query(
        "UPDATE conversation_members SET left_version = ?3, version = ?3 \
         WHERE conversation_id = ?1 AND user_id = ?2",
    )
    .bind(sql_id(id.get()))
    .bind(sql_id(user.get()))
    .bind(version)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
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
    store: &SqliteStore,
    id: ConversationId,
    user: UserId,
    role: MemberRole,
    by: UserId,
) -> Result<Option<u64>> {
    let mut tx = store.write().await?;
    let Some(version) = next_version_if(&mut tx, BUMP_IF_MEMBER, id, sql_id(user.get())).await?
    else {
        return Ok(None);
    };
    require_admin(&mut tx, id, by).await?;
    sqlx::query(
        "UPDATE conversation_members SET role = ?3, version = ?4 \
         WHERE conversation_id = ?1 AND user_id = ?2",
    )
    .bind(sql_id(id.get()))
    .bind(sql_id(user.get()))
    .bind(role.as_str())
    .bind(version)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
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
    store: &SqliteStore,
    id: ConversationId,
    title: &str,
    by: UserId,
) -> Result<u64> {
    let mut tx = store.write().await?;
    // The right-hand sides see the row before the update: title_version
    // becomes the new version.
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE conversations SET version = version + 1, title = ?2, \
             title_version = version + 1 \
         WHERE id = ?1 RETURNING version",
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
async fn require_admin(conn: &mut SqliteConnection, id: ConversationId, by: UserId) -> Result<()> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM conversation_members \
         WHERE conversation_id = ?1 AND user_id = ?2 AND left_version IS NULL",
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
async fn current_members(conn: &mut SqliteConnection, id: ConversationId) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversation_members \
         WHERE conversation_id = ?1 AND left_version IS NULL",
    )
    .bind(sql_id(id.get()))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(raw_count(count))
}

/// Inside a write transaction: whether a current member is an admin, or
/// nobody is left.
async fn admin_remains(conn: &mut SqliteConnection, id: ConversationId) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversation_members \
             WHERE conversation_id = ?1 AND left_version IS NULL AND role = 'admin') \
         OR NOT EXISTS (SELECT 1 FROM conversation_members \
             WHERE conversation_id = ?1 AND left_version IS NULL)",
    )
    .bind(sql_id(id.get()))
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Inside a write transaction: if no current member is an admin, makes the
/// one who joined earliest (then the lowest id) an admin under `version`.
async fn promote_if_no_admin(
    conn: &mut SqliteConnection,
    id: ConversationId,
    version: i64,
) -> Result<Option<UserId>> {
    let promoted: Option<i64> = sqlx::query_scalar(
        "UPDATE conversation_members SET role = 'admin', version = ?2 \
         WHERE conversation_id = ?1 AND left_version IS NULL \
           AND NOT EXISTS (SELECT 1 FROM conversation_members \
               WHERE conversation_id = ?1 AND left_version IS NULL AND role = 'admin') \
           AND user_id = (SELECT user_id FROM conversation_members \
               WHERE conversation_id = ?1 AND left_version IS NULL \
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
