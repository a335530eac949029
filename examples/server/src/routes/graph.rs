//! The signed-in user's social graph: friend requests, friendships, follows,
//! blocks and mutes.

use axum::extract::State;
use axum::http::StatusCode;
use kith_core::{FriendRequestEntry, FriendRequestOutcome, Friendship, Paged, Peer, UserId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, PageQuery, Path, Query};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_friend_request))
        .routes(routes!(incoming_requests))
        .routes(routes!(outgoing_requests))
        .routes(routes!(cancel_friend_request))
        .routes(routes!(accept_friend_request))
        .routes(routes!(decline_friend_request))
        .routes(routes!(unfriend))
        .routes(routes!(follow, unfollow))
        .routes(routes!(blocks))
        .routes(routes!(block, unblock))
        .routes(routes!(mutes))
        .routes(routes!(mute, unmute))
}

/// A friend request to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendRequestInput {
    /// The user to ask.
    pub user_id: UserId,
}

/// Sends a friend request. If the other user had already sent the actor a
/// request, both are accepted at once (`"outcome": "accepted"`).
#[utoipa::path(post, path = "/friend-requests", tag = "graph", request_body = FriendRequestInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request is pending, or they are now friends", body = FriendRequestOutcome),
        (status = 403, description = "The actor blocks the user", body = ErrorBody),
        (status = 404, description = "No such user, or they block the actor", body = ErrorBody),
        (status = 409, description = "Already friends, or a request is already pending", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
        (status = 429, description = "Too many friend requests; `Retry-After` says when to retry", body = ErrorBody),
    ))]
async fn send_friend_request(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<FriendRequestInput>,
) -> ApiResult<Json<FriendRequestOutcome>> {
    Ok(Json(
        state
            .kith
            .graph()
            .send_friend_request(user.id, input.user_id)
            .await?,
    ))
}

/// Pending friend requests sent to the signed-in user, newest first.
#[utoipa::path(get, path = "/friend-requests/incoming", tag = "graph", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of requests, with their senders", body = Paged<FriendRequestEntry>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn incoming_requests(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<FriendRequestEntry>>> {
    Ok(Json(
        state
            .kith
            .graph()
            .incoming_requests(user.id, &page.into())
            .await?,
    ))
}

/// Pending friend requests the signed-in user sent, newest first.
#[utoipa::path(get, path = "/friend-requests/outgoing", tag = "graph", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of requests, with their recipients", body = Paged<FriendRequestEntry>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn outgoing_requests(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<FriendRequestEntry>>> {
    Ok(Json(
        state
            .kith
            .graph()
            .outgoing_requests(user.id, &page.into())
            .await?,
    ))
}

/// Withdraws the signed-in user's pending request to a user.
#[utoipa::path(delete, path = "/friend-requests/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user the request was sent to")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No such pending request", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn cancel_friend_request(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .graph()
        .cancel_friend_request(user.id, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts the pending request a user sent to the signed-in user.
#[utoipa::path(post, path = "/friend-requests/{user_id}/accept", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user who sent the request")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "They are now friends", body = Friendship),
        (status = 404, description = "No such pending request", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn accept_friend_request(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<Friendship>> {
    Ok(Json(
        state
            .kith
            .graph()
            .accept_friend_request(user.id, user_id)
            .await?,
    ))
}

/// Declines the pending request a user sent to the signed-in user. The
/// sender is not told.
#[utoipa::path(post, path = "/friend-requests/{user_id}/decline", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user who sent the request")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Declined"),
        (status = 404, description = "No such pending request", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn decline_friend_request(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .graph()
        .decline_friend_request(user.id, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the signed-in user's friendship with a user. Follows are not touched.
#[utoipa::path(delete, path = "/friends/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The friend")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "No longer friends"),
        (status = 404, description = "They are not friends", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn unfriend(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().unfriend(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user follows a user. Following again changes nothing.
#[utoipa::path(put, path = "/follows/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to follow")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Following"),
        (status = 403, description = "The actor blocks the user", body = ErrorBody),
        (status = 404, description = "No such user, or they block the actor", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
        (status = 429, description = "Too many follows; `Retry-After` says when to retry", body = ErrorBody),
    ))]
async fn follow(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().follow(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user stops following a user. Unfollowing someone not
/// followed changes nothing.
#[utoipa::path(delete, path = "/follows/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to unfollow")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not following"),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn unfollow(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().unfollow(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The users the signed-in user blocks, newest first.
#[utoipa::path(get, path = "/blocks", tag = "graph", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of blocked users", body = Paged<Peer>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn blocks(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Peer>>> {
    Ok(Json(
        state.kith.graph().blocked(user.id, &page.into()).await?,
    ))
}

/// The signed-in user blocks a user: their friendship, pending requests and
/// follows end. Blocking again changes nothing; the user is never told.
#[utoipa::path(put, path = "/blocks/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to block")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Blocked"),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn block(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().block(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user lifts a block. What the block ended stays ended.
#[utoipa::path(delete, path = "/blocks/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to unblock")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not blocked"),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn unblock(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().unblock(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The users the signed-in user mutes, newest first.
#[utoipa::path(get, path = "/mutes", tag = "graph", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of muted users", body = Paged<Peer>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn mutes(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Peer>>> {
    Ok(Json(state.kith.graph().muted(user.id, &page.into()).await?))
}

/// The signed-in user mutes a user, with no change to friendship or follows.
/// Muting again changes nothing.
#[utoipa::path(put, path = "/mutes/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to mute")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Muted"),
        (status = 404, description = "No such user, or they block the actor", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn mute(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().mute(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user unmutes a user.
#[utoipa::path(delete, path = "/mutes/{user_id}", tag = "graph",
    params(("user_id" = UserId, Path, description = "The user to unmute")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not muted"),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn unmute(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<StatusCode> {
    state.kith.graph().unmute(user.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
