//! Other users as the viewer may see them: profiles, graph lists, counts and
//! the viewer's relationship with them.

use axum::extract::State;
use kith_core::{GraphCounts, Page, Paged, Peer, ProfileView, Relationship, UserId};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, MaybeUser, PageQuery, Path, Query};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(profile))
        .routes(routes!(profile_by_username))
        .routes(routes!(friends))
        .routes(routes!(followers))
        .routes(routes!(following))
        .routes(routes!(counts))
        .routes(routes!(relationship))
}

/// A user's profile as the viewer may see it: the card always, the details
/// only where the profile's visibility allows. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/users/{user_id}", tag = "users",
    params(("user_id" = UserId, Path, description = "The user")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
    ))]
async fn profile(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<ProfileView>> {
    Ok(Json(
        state.kith.accounts().profile(viewer.id(), user_id).await?,
    ))
}

/// Like `GET /users/{user_id}`, by username (ignoring case).
#[utoipa::path(get, path = "/users/by-username/{username}", tag = "users",
    params(("username" = String, Path, description = "The username, in any case")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
    ))]
async fn profile_by_username(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(username): Path<String>,
) -> ApiResult<Json<ProfileView>> {
    Ok(Json(
        state
            .kith
            .accounts()
            .profile_by_username(viewer.id(), &username)
            .await?,
    ))
}

/// `?name=...&cursor=...&limit=...` of the friends list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FriendsQuery {
    /// Only friends whose username or display name contains this, ignoring case.
    pub name: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The friends of a user, ordered by username (ignoring case), if the user's
/// profile visibility lets the actor see them.
#[utoipa::path(get, path = "/users/{user_id}/friends", tag = "users",
    params(("user_id" = UserId, Path, description = "The user"), FriendsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of friends", body = Paged<Peer>),
        (status = 403, description = "The user's visibility hides the list", body = ErrorBody),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
        (status = 422, description = "Invalid `name`, `limit` or `cursor`", body = ErrorBody),
    ))]
async fn friends(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
    Query(query): Query<FriendsQuery>,
) -> ApiResult<Json<Paged<Peer>>> {
    let page = Page {
        cursor: query.cursor,
        limit: query.limit,
    };
    Ok(Json(
        state
            .kith
            .graph()
            .friends(user.id, user_id, query.name.as_deref(), &page)
            .await?,
    ))
}

/// The followers of a user, newest first, if the user's profile visibility
/// lets the actor see them.
#[utoipa::path(get, path = "/users/{user_id}/followers", tag = "users",
    params(("user_id" = UserId, Path, description = "The user"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of followers", body = Paged<Peer>),
        (status = 403, description = "The user's visibility hides the list", body = ErrorBody),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn followers(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Peer>>> {
    Ok(Json(
        state
            .kith
            .graph()
            .followers(user.id, user_id, &page.into())
            .await?,
    ))
}

/// The users a user follows, newest first, if the user's profile visibility
/// lets the actor see them.
#[utoipa::path(get, path = "/users/{user_id}/following", tag = "users",
    params(("user_id" = UserId, Path, description = "The user"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of followed users", body = Paged<Peer>),
        (status = 403, description = "The user's visibility hides the list", body = ErrorBody),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn following(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Peer>>> {
    Ok(Json(
        state
            .kith
            .graph()
            .following(user.id, user_id, &page.into())
            .await?,
    ))
}

/// Friend, follower and following counts of a user, public to everyone who
/// may see the user. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/users/{user_id}/counts", tag = "users",
    params(("user_id" = UserId, Path, description = "The user")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The counts", body = GraphCounts),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
    ))]
async fn counts(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<GraphCounts>> {
    Ok(Json(state.kith.graph().counts(viewer.id(), user_id).await?))
}

/// Where the signed-in user stands with another user.
#[utoipa::path(get, path = "/users/{user_id}/relationship", tag = "users",
    params(("user_id" = UserId, Path, description = "The other user")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The relationship", body = Relationship),
        (status = 404, description = "No such user, or they block the actor", body = ErrorBody),
        (status = 422, description = "`user_id` is the actor", body = ErrorBody),
    ))]
async fn relationship(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<Relationship>> {
    Ok(Json(
        state.kith.graph().relationship(user.id, user_id).await?,
    ))
}
