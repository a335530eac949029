//! Comments on posts and replies to comments. Reads allow anonymous
//! viewers; every answer is what the viewer may see.

use axum::extract::State;
use axum::http::StatusCode;
use kith_core::{Comment, CommentId, Paged, PostId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, MaybeUser, PageQuery, Path, Query};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(thread, create))
        .routes(routes!(comment, edit, delete))
        .routes(routes!(replies))
}

/// A new comment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// Not blank, at most 4,000 characters.
    pub text: String,
    /// The comment of the same post this one replies to.
    #[serde(default)]
    pub parent_id: Option<CommentId>,
}

/// A comment's new text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentEdit {
    /// Not blank, at most 4,000 characters.
    pub text: String,
}

/// The comments on a post (not replies), oldest first. Anonymous viewers
/// are allowed.
#[utoipa::path(get, path = "/posts/{post_id}/comments", tag = "comments",
    params(("post_id" = PostId, Path, description = "The post"), PageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of comments", body = Paged<Comment>),
        (status = 404, description = "No such post, or the viewer may not see it", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn thread(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(post_id): Path<PostId>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Comment>>> {
    let comments = state.kith.comments();
    Ok(Json(
        comments
            .thread(viewer.id(), post_id, None, &page.into())
            .await?,
    ))
}

/// Comments on a post as the signed-in user, or replies to one of its
/// comments (`parent_id`).
#[utoipa::path(post, path = "/posts/{post_id}/comments", tag = "comments",
    params(("post_id" = PostId, Path, description = "The post")),
    request_body = CommentInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new comment", body = Comment),
        (status = 404, description = "No such post or parent comment, or the actor may not see \
                                       it", body = ErrorBody),
        (status = 422, description = "Invalid `text`", body = ErrorBody),
        (status = 429, description = "Too many comments; `Retry-After` says when to retry", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(post_id): Path<PostId>,
    Json(input): Json<CommentInput>,
) -> ApiResult<(StatusCode, Json<Comment>)> {
    let comments = state.kith.comments();
    let comment = comments
        .create(user.id, post_id, input.parent_id, &input.text)
        .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// A comment as the viewer may see it. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/comments/{comment_id}", tag = "comments",
    params(("comment_id" = CommentId, Path, description = "The comment")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The comment (a tombstone if deleted with replies)", body = Comment),
        (status = 404, description = "No such comment, or the viewer may not see it", body = ErrorBody),
    ))]
async fn comment(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(id): Path<CommentId>,
) -> ApiResult<Json<Comment>> {
    Ok(Json(state.kith.comments().get(viewer.id(), id).await?))
}

/// Replaces the text of a comment of the signed-in user's.
#[utoipa::path(patch, path = "/comments/{comment_id}", tag = "comments",
    params(("comment_id" = CommentId, Path, description = "The comment")),
    request_body = CommentEdit,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The comment as it now is", body = Comment),
        (status = 403, description = "Someone else's comment", body = ErrorBody),
        (status = 404, description = "No such comment, or the actor may not see it", body = ErrorBody),
        (status = 422, description = "Invalid `text`", body = ErrorBody),
    ))]
async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<CommentId>,
    Json(input): Json<CommentEdit>,
) -> ApiResult<Json<Comment>> {
    let comments = state.kith.comments();
    Ok(Json(comments.edit(user.id, id, &input.text).await?))
}

/// Deletes a comment (its author's or its post's author's action); one
/// with replies stays as a tombstone.
#[utoipa::path(delete, path = "/comments/{comment_id}", tag = "comments",
    params(("comment_id" = CommentId, Path, description = "The comment")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the comment's nor the post's author", body = ErrorBody),
        (status = 404, description = "No such comment, or the actor may not see it", body = ErrorBody),
    ))]
async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<CommentId>,
) -> ApiResult<StatusCode> {
    state.kith.comments().delete(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The replies to a comment, oldest first. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/comments/{comment_id}/replies", tag = "comments",
    params(("comment_id" = CommentId, Path, description = "The comment"), PageQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of replies", body = Paged<Comment>),
        (status = 404, description = "No such comment, or the viewer may not see it", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn replies(
    State(state): State<AppState>,
    viewer: MaybeUser,
    Path(id): Path<CommentId>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Paged<Comment>>> {
    let comments = state.kith.comments();
    let parent = comments.get(viewer.id(), id).await?;
    Ok(Json(
        comments
            .thread(viewer.id(), parent.post_id, Some(id), &page.into())
            .await?,
    ))
}
