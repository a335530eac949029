//! Chat: conversations (direct and groups), members, messages, reactions,
//! read state, catching up after an absence, unread counts.

use axum::extract::State;
use axum::http::StatusCode;
use kith_core::{
    ChangeSet, Conversation, ConversationId, ConversationSummary, History, Member, MemberRole,
    Message, MessageId, NewGroup, NewMessage, Paged, ReactionKind, ReadState, UnreadCounts, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, PageQuery, Path, Query};
use crate::routes::one_page;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations, create_group))
        .routes(routes!(open_direct))
        .routes(routes!(conversation, rename))
        .routes(routes!(members, add_members))
        .routes(routes!(remove_member))
        .routes(routes!(set_role))
        .routes(routes!(leave))
        .routes(routes!(history, send))
        .routes(routes!(edit, delete))
        .routes(routes!(react, unreact))
        .routes(routes!(mark_read))
        .routes(routes!(changes))
        .routes(routes!(unread))
}

/// The signed-in user's conversations, most recently active first, each with
/// its last message and unread count.
#[utoipa::path(get, path = "/conversations", tag = "chat", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversations", body = Paged<ConversationSummary>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn conversations(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<ConversationSummary>>> {
    Ok(Json(
        state
            .kith
            .chat()
            .conversations(user.id, &page.into())
            .await?,
    ))
}

/// Creates a group with the signed-in user as its admin.
#[utoipa::path(post, path = "/conversations", tag = "chat", request_body = NewGroup,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new group", body = Conversation),
        (status = 403, description = "The actor blocks a member", body = ErrorBody),
        (status = 404, description = "A member does not exist or blocks the actor", body = ErrorBody),
        (status = 422, description = "Invalid `title`, or too many `members`", body = ErrorBody),
    ))]
async fn create_group(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<NewGroup>,
) -> ApiResult<(StatusCode, Json<Conversation>)> {
    let conversation = state.kith.chat().create_group(user.id, input).await?;
    Ok((StatusCode::CREATED, Json(conversation)))
}

/// The other party of a direct conversation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectInput {
    /// The user to talk with.
    pub user_id: UserId,
}

/// The direct conversation between the signed-in user and another user,
/// created if it does not exist yet.
#[utoipa::path(post, path = "/conversations/direct", tag = "chat", request_body = DirectInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation, found or created", body = Conversation),
        (status = 403, description = "The actor blocks the user, or they are not friends and \
                                       direct messages are limited to friends", body = ErrorBody),
        (status = 404, description = "No such user, or they block the actor", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn open_direct(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<DirectInput>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(
        state
            .kith
            .chat()
            .open_direct(user.id, input.user_id)
            .await?,
    ))
}

/// A conversation the signed-in user is a member of.
#[utoipa::path(get, path = "/conversations/{conversation_id}", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
    ))]
async fn conversation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(state.kith.chat().conversation(user.id, id).await?))
}

/// A group's new title.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameInput {
    /// 1 to 100 characters, one line.
    pub title: String,
}

/// Renames a group (an admin's action).
#[utoipa::path(patch, path = "/conversations/{conversation_id}", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The group")),
    request_body = RenameInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The group as it now is", body = Conversation),
        (status = 403, description = "Not an admin, or a direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
        (status = 422, description = "Invalid `title`", body = ErrorBody),
    ))]
async fn rename(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(input): Json<RenameInput>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(
        state.kith.chat().rename(user.id, id, &input.title).await?,
    ))
}

/// The current members of a conversation, ordered by user id, in one page.
#[utoipa::path(get, path = "/conversations/{conversation_id}/members", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every member", body = Paged<Member>),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
    ))]
async fn members(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Paged<Member>>> {
    Ok(Json(one_page(
        state.kith.chat().members(user.id, id).await?,
    )))
}

/// Users to add to a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembersInput {
    /// The users; those already members are skipped.
    pub user_ids: Vec<UserId>,
}

/// Adds users to a group (an admin's action) and returns the members added.
#[utoipa::path(post, path = "/conversations/{conversation_id}/members", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The group")),
    request_body = AddMembersInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The members added, in one page", body = Paged<Member>),
        (status = 403, description = "Not an admin, a direct conversation, or the actor blocks a user", body = ErrorBody),
        (status = 404, description = "No such conversation, the actor is not a member, or a user \
                                       does not exist or blocks the actor", body = ErrorBody),
        (status = 422, description = "The group would grow too large (`members`)", body = ErrorBody),
    ))]
async fn add_members(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(input): Json<AddMembersInput>,
) -> ApiResult<Json<Paged<Member>>> {
    Ok(Json(one_page(
        state
            .kith
            .chat()
            .add_members(user.id, id, &input.user_ids)
            .await?,
    )))
}

/// Removes a member from a group (an admin's action; removing oneself is
/// leaving).
#[utoipa::path(delete, path = "/conversations/{conversation_id}/members/{user_id}", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The group"),
        ("user_id" = UserId, Path, description = "The member to remove"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin, or a direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation, the actor is not a member, or the \
                                       user is not a member", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, member)): Path<(ConversationId, UserId)>,
) -> ApiResult<StatusCode> {
    state.kith.chat().remove_member(user.id, id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member's new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// `admin` or `member`.
    pub role: MemberRole,
}

/// Makes a member an admin or a plain member (an admin's action).
#[utoipa::path(put, path = "/conversations/{conversation_id}/members/{user_id}/role", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The group"),
        ("user_id" = UserId, Path, description = "The member"),
    ),
    request_body = RoleInput,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The member has the role"),
        (status = 403, description = "Not an admin, or a direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation, the actor is not a member, or the \
                                       user is not a member", body = ErrorBody),
        (status = 422, description = "The group would be left without an admin (`role`)", body = ErrorBody),
    ))]
async fn set_role(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, member)): Path<(ConversationId, UserId)>,
    Json(input): Json<RoleInput>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .chat()
        .set_role(user.id, id, member, input.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user leaves a group; if they were its last admin, the
/// member who joined earliest becomes admin.
#[utoipa::path(post, path = "/conversations/{conversation_id}/leave", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The group")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 403, description = "A direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
    ))]
async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
) -> ApiResult<StatusCode> {
    state.kith.chat().leave(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?before=...` or `?after=...`, and `?limit=...`, of the history.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages before this `seq`, going back in time. Not with `after`.
    pub before: Option<u64>,
    /// Messages after this `seq`, going forward. Not with `before`.
    pub after: Option<u64>,
    /// Messages per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A page of a conversation's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// Messages in ascending `seq` order.
    pub items: Vec<Message>,
    /// The `seq`, as a decimal string, to pass for the next page in the same
    /// direction: as `before` when this page was asked for with `before` or
    /// with no bound (the latest messages), as `after` when it was asked for
    /// with `after`. `null` when no more messages lie that way.
    pub next_cursor: Option<String>,
}

/// A page of the conversation's history, in ascending `seq` order: the
/// latest messages without a bound, older ones with `before`, newer ones
/// with `after`.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Malformed id or query, or both `before` and `after`", body = ErrorBody),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
        (status = 422, description = "Invalid `limit`", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<MessagePage>> {
    let from = match (query.before, query.after) {
        (None, None) => History::Latest,
        (Some(seq), None) => History::Before(seq),
        (None, Some(seq)) => History::After(seq),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give at most one of `before` and `after`".to_owned(),
            ))
        }
    };
    let page = state
        .kith
        .chat()
        .history(user.id, id, from, query.limit)
        .await?;
    let next_cursor = if page.more {
        let edge = match from {
            History::After(_) => page.messages.last(),
            History::Latest | History::Before(_) => page.messages.first(),
        };
        edge.map(|m| m.seq.to_string())
    } else {
        None
    };
    Ok(Json(MessagePage {
        items: page.messages,
        next_cursor,
    }))
}

/// Sends a message. Sending again with the same `client_id` returns the
/// first message and changes nothing, so clients may retry safely.
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation")),
    request_body = NewMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The message (the first one, for a retry)", body = Message),
        (status = 403, description = "A direct conversation the actor may not message", body = ErrorBody),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
        (status = 409, description = "`client_id` already used in another conversation", body = ErrorBody),
        (status = 422, description = "Invalid `client_id`, `body` or `reply_to`", body = ErrorBody),
        (status = 429, description = "Sending too fast", body = ErrorBody),
    ))]
async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(input): Json<NewMessage>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    // Run to completion even if the client goes away or the request times
    // out: the send may be storing other members' waiting sends too.
    let sending = tokio::spawn(state.kith.chat().send(user.id, id, input));
    let message = sending
        .await
        .map_err(|e| kith_core::Error::Internal(format!("the send task failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(message)))
}

/// A message's new text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditInput {
    /// The text: not blank.
    pub body: String,
}

/// Edits a message the signed-in user sent.
#[utoipa::path(patch, path = "/conversations/{conversation_id}/messages/{message_id}", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
    ),
    request_body = EditInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message as it now is", body = Message),
        (status = 403, description = "Someone else's message, or a block stands between the \
                                       two members of this direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation or message, the actor is not a \
                                       member, or the message is deleted", body = ErrorBody),
        (status = 422, description = "Invalid `body`", body = ErrorBody),
    ))]
async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message)): Path<(ConversationId, MessageId)>,
    Json(input): Json<EditInput>,
) -> ApiResult<Json<Message>> {
    Ok(Json(
        state
            .kith
            .chat()
            .edit(user.id, id, message, &input.body)
            .await?,
    ))
}

/// Deletes a message the signed-in user sent, for everyone; it stays as a
/// tombstone with its `seq`. Deleting again changes nothing.
#[utoipa::path(delete, path = "/conversations/{conversation_id}/messages/{message_id}", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tombstone", body = Message),
        (status = 403, description = "Someone else's message, or a block stands between the \
                                       two members of this direct conversation", body = ErrorBody),
        (status = 404, description = "No such conversation or message, or the actor is not a member", body = ErrorBody),
    ))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<Message>> {
    let deleted = state.kith.chat().delete(user.id, id, message).await?;
    Ok(Json(deleted.message))
}

/// A reaction to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionInput {
    /// The kind of reaction; it replaces the user's previous one.
    pub kind: ReactionKind,
}

/// Sets the signed-in user's reaction to a message, replacing any previous one.
#[utoipa::path(put, path = "/conversations/{conversation_id}/messages/{message_id}/reaction", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
    ),
    request_body = ReactionInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message with its reactions", body = Message),
        (status = 403, description = "A block stands between the two members of this direct \
                                       conversation", body = ErrorBody),
        (status = 404, description = "No such conversation or message, the actor is not a \
                                       member, or the message is deleted", body = ErrorBody),
    ))]
async fn react(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message)): Path<(ConversationId, MessageId)>,
    Json(input): Json<ReactionInput>,
) -> ApiResult<Json<Message>> {
    let chat = state.kith.chat();
    let reacted = chat.react(user.id, id, message, Some(input.kind)).await?;
    Ok(Json(reacted.message))
}

/// Removes the signed-in user's reaction to a message.
#[utoipa::path(delete, path = "/conversations/{conversation_id}/messages/{message_id}/reaction", tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message with its reactions", body = Message),
        (status = 403, description = "A block stands between the two members of this direct \
                                       conversation", body = ErrorBody),
        (status = 404, description = "No such conversation or message, the actor is not a \
                                       member, or the message is deleted", body = ErrorBody),
    ))]
async fn unreact(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<Message>> {
    let unreacted = state.kith.chat().react(user.id, id, message, None).await?;
    Ok(Json(unreacted.message))
}

/// How far the user has read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadInput {
    /// The `seq` of the newest message read.
    pub seq: u64,
}

/// Marks the conversation read up to `seq` for the signed-in user. Read
/// positions only move forward; an older `seq` changes nothing.
#[utoipa::path(post, path = "/conversations/{conversation_id}/read", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation")),
    request_body = ReadInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The read position now", body = ReadState),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
        (status = 422, description = "`seq` beyond the newest message", body = ErrorBody),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Json(input): Json<ReadInput>,
) -> ApiResult<Json<ReadState>> {
    Ok(Json(
        state.kith.chat().mark_read(user.id, id, input.seq).await?,
    ))
}

/// `?since=...&limit=...` of the changes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The version the client has (the `until` of its previous call); 0,
    /// the default, for everything.
    pub since: Option<u64>,
    /// How many versions to cover, 1 to 500 (default 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The changes to a conversation after version `since`, in version order
/// and in their current state. Call again with `since` = `until` while
/// `more` is true.
#[utoipa::path(get, path = "/conversations/{conversation_id}/changes", tag = "chat",
    params(("conversation_id" = ConversationId, Path, description = "The conversation"), ChangesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changes", body = ChangeSet),
        (status = 404, description = "No such conversation, or the actor is not a member", body = ErrorBody),
        (status = 422, description = "`since` beyond the conversation's version, or invalid `limit`", body = ErrorBody),
    ))]
async fn changes(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConversationId>,
    Query(query): Query<ChangesQuery>,
) -> ApiResult<Json<ChangeSet>> {
    Ok(Json(
        state
            .kith
            .chat()
            .changes_since(user.id, id, query.since.unwrap_or(0), query.limit)
            .await?,
    ))
}

/// The signed-in user's unread counts, per conversation and in total.
#[utoipa::path(get, path = "/unread", tag = "chat",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unread counts", body = UnreadCounts),
    ))]
async fn unread(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<UnreadCounts>> {
    Ok(Json(state.kith.chat().unread(user.id).await?))
}
