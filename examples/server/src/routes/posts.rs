//! Posts and shares: creating, editing, deleting and reading them, a user's
//! posts (profile timeline) and a hashtag's posts. Reads allow anonymous
//! viewers; every answer is what the viewer may see.

use axum::extract::State;
use axum::http::StatusCode;
use kith_core::{NewPost, Paged, Post, PostId, PostPatch, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, MaybeUser, PageQuery, Path, Query};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(post, edit, delete))
        .routes(routes!(timeline))
        .routes(routes!(hashtag))
        .routes(routes!(home))
}

/// Creates a post by the signed-in user; with `shared_id`, a share of that
/// post (a share of a share shares its original).
#[utoipa::path(post, path = "/posts", tag = "posts", request_body = NewPost,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new post", body = Post),
        (status = 404, description = "The post to share does not exist or the actor may not \
                                       see it", body = ErrorBody),
        (status = 422, description = "Invalid `text` (blank unless a share, too long, too many \
                                       hashtags or mentions), or a share wider than the shared \
                                       post (`visibility`)", body = ErrorBody),
        (status = 429, description = "Too many posts; `Retry-After` says when to retry", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<NewPost>,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let post = state.kith.posts().create(user.id, input).await?;
    Ok((StatusCode::CREATED, Json(post)))
}

/// A post as the viewer may see it (a share with its original, if the
/// viewer may see that too). Anonymous viewers are allowed.
#[utoipa::path(get, path = "/posts/{post_id}", tag = "posts",
    params(("post_id" = PostId, Path, description = "The post")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The post", body = Post),
        (status = 404, description = "No such post, or the viewer may not see it", body = ErrorBody),
    ))]
async fn post(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(id): Path<PostId>,
) -> ApiResult<Json<Post>> {
    Ok(Json(state.kith.posts().get(viewer.id(), id).await?))
}

/// Edits a post of the signed-in user's (text, visibility).
#[utoipa::path(patch, path = "/posts/{post_id}", tag = "posts",
    params(("post_id" = PostId, Path, description = "The post")),
    request_body = PostPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The post as it now is", body = Post),
        (status = 403, description = "Someone else's post", body = ErrorBody),
        (status = 404, description = "No such post, or the actor may not see it", body = ErrorBody),
        (status = 422, description = "Invalid `text`, or a share made wider than the shared \
                                       post (`visibility`)", body = ErrorBody),
    ))]
async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<PostId>,
    Json(patch): Json<PostPatch>,
) -> ApiResult<Json<Post>> {
    Ok(Json(state.kith.posts().edit(user.id, id, patch).await?))
}

/// Deletes a post of the signed-in user's.
#[utoipa::path(delete, path = "/posts/{post_id}", tag = "posts",
    params(("post_id" = PostId, Path, description = "The post")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Someone else's post", body = ErrorBody),
        (status = 404, description = "No such post, or the actor may not see it", body = ErrorBody),
    ))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<PostId>,
) -> ApiResult<StatusCode> {
    state.kith.posts().delete(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's posts that the viewer may see (the profile timeline), newest
/// first. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/users/{user_id}/posts", tag = "posts",
    params(("user_id" = UserId, Path, description = "The author"), PageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of posts", body = Paged<Post>),
        (status = 404, description = "No such user, or one blocks the other", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn timeline(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(user_id): Path<UserId>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Post>>> {
    let posts = state.kith.posts();
    Ok(Json(
        posts.timeline(viewer.id(), user_id, &page.into()).await?,
    ))
}

/// The signed-in user's home feed: the posts the user may see by the user,
/// the user's friends and the users they follow, except users they mute,
/// newest first. Pages never repeat or skip a post while posts arrive, at
/// any depth; a new post is announced by a `post_created` frame on the
/// WebSocket.
#[utoipa::path(get, path = "/feed", tag = "posts",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the home feed", body = Paged<Post>),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn home(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Post>>> {
    Ok(Json(state.kith.posts().home(user.id, &page.into()).await?))
}

/// The posts with a hashtag that the viewer may see, newest first.
/// Anonymous viewers are allowed.
#[utoipa::path(get, path = "/hashtags/{tag}/posts", tag = "posts",
    params(("tag" = String, Path, description = "The hashtag, without `#`, in any case"), PageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of posts", body = Paged<Post>),
        (status = 422, description = "Invalid `tag`, `limit` or `cursor`", body = ErrorBody),
    ))]
async fn hashtag(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(tag): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Post>>> {
    let posts = state.kith.posts();
    Ok(Json(posts.hashtag(viewer.id(), &tag, &page.into()).await?))
}
