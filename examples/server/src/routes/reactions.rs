//! Reactions in one shape for posts, comments and chat messages: `PUT` and
//! `DELETE .../reaction` set and remove the signed-in user's, `GET
//! .../reactions` lists who reacted (by user id, optionally of one kind),
//! `GET .../reactions/summary` gives the counts per kind and the viewer's
//! own. A chat message's reaction is set and removed by the chat routes
//! (`/conversations/{conversation_id}/messages/{message_id}/reaction`),
//! which answer with the message and tell its members live.

use axum::extract::State;
use kith_core::{
    CommentId, ConversationId, MessageId, Page, Paged, PostId, Reaction, ReactionKind,
    ReactionSummary, ReactionTarget,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, MaybeUser, Path, Query};
use crate::routes::chat::ReactionInput;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post::set, post::remove))
        .routes(routes!(post::who))
        .routes(routes!(post::summary))
        .routes(routes!(comment::set, comment::remove))
        .routes(routes!(comment::who))
        .routes(routes!(comment::summary))
        .routes(routes!(message_who))
        .routes(routes!(message_summary))
}

/// `?kind=...&cursor=...&limit=...` of the lists of who reacted.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReactionsQuery {
    /// Only reactions of this kind.
    pub kind: Option<ReactionKind>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Sets the actor's reaction to `target`.
async fn set_on(
    state: &AppState,
    user: &AuthUser,
    target: ReactionTarget,
    kind: Option<ReactionKind>,
) -> ApiResult<Json<ReactionSummary>> {
    let reactions = state.kith.reactions();
    Ok(Json(reactions.set(user.id, target, kind).await?))
}

/// Who reacted to `target`.
async fn who_of(
    state: &AppState,
    viewer: &MaybeUser,
    target: ReactionTarget,
    query: ReactionsQuery,
) -> ApiResult<Json<Paged<Reaction>>> {
    let page = Page {
        cursor: query.cursor,
        limit: query.limit,
    };
    let reactions = state.kith.reactions();
    Ok(Json(
        reactions
            .who(viewer.id(), target, query.kind, &page)
            .await?,
    ))
}

/// The counts of `target`'s reactions.
async fn summary_of(
    state: &AppState,
    viewer: &MaybeUser,
    target: ReactionTarget,
) -> ApiResult<Json<ReactionSummary>> {
    let reactions = state.kith.reactions();
    Ok(Json(reactions.summary(viewer.id(), target).await?))
}

/// The four routes of reactions to one kind of target (posts, comments).
macro_rules! reaction_routes {
    ($module:ident, $tag:literal, $base:literal, $param:literal, $id:ty, $what:literal,
     $target:expr) => {
        pub(super) mod $module {
            use super::*;

            /// Sets the signed-in user's reaction, replacing any previous one.
            #[utoipa::path(put, path = concat!($base, "/reaction"), tag = $tag,
                params(($param = $id, Path, description = $what)),
                request_body = ReactionInput,
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The reactions as they now are", body = ReactionSummary),
                    (status = 404, description = "No such target, or the actor may not see it", body = ErrorBody),
                    (status = 429, description = "Too many reactions; `Retry-After` says when to retry", body = ErrorBody),
                ))]
            pub(super) async fn set(
                State(state): State<AppState>,
                user: AuthUser,
                Path(id): Path<$id>,
                Json(input): Json<ReactionInput>,
            ) -> ApiResult<Json<ReactionSummary>> {
                set_on(&state, &user, ($target)(id), Some(input.kind)).await
            }

            /// Removes the signed-in user's reaction.
            #[utoipa::path(delete, path = concat!($base, "/reaction"), tag = $tag,
                params(($param = $id, Path, description = $what)),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The reactions as they now are", body = ReactionSummary),
                    (status = 404, description = "No such target, or the actor may not see it", body = ErrorBody),
                ))]
            pub(super) async fn remove(
                State(state): State<AppState>,
                user: AuthUser,
                Path(id): Path<$id>,
            ) -> ApiResult<Json<ReactionSummary>> {
                set_on(&state, &user, ($target)(id), None).await
            }

            /// Who reacted, by user id, as the viewer may see them.
            /// Anonymous viewers are allowed.
            #[utoipa::path(get, path = concat!($base, "/reactions"), tag = $tag,
                params(($param = $id, Path, description = $what), ReactionsQuery),
                security((), ("bearer" = [])),
                responses(
                    (status = 200, description = "A page of reactions", body = Paged<Reaction>),
                    (status = 404, description = "No such target, or the viewer may not see it", body = ErrorBody),
                    (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
                ))]
            pub(super) async fn who(
                State(state): State<AppState>,
                viewer: MaybeUser,
                Path(id): Path<$id>,
                Query(query): Query<ReactionsQuery>,
            ) -> ApiResult<Json<Paged<Reaction>>> {
                who_of(&state, &viewer, ($target)(id), query).await
            }

            /// The counts per kind and the viewer's own reaction.
            /// Anonymous viewers are allowed.
            #[utoipa::path(get, path = concat!($base, "/reactions/summary"), tag = $tag,
                params(($param = $id, Path, description = $what)),
                security((), ("bearer" = [])),
                responses(
                    (status = 200, description = "The reactions", body = ReactionSummary),
                    (status = 404, description = "No such target, or the viewer may not see it", body = ErrorBody),
                ))]
            pub(super) async fn summary(
                State(state): State<AppState>,
                viewer: MaybeUser,
                Path(id): Path<$id>,
            ) -> ApiResult<Json<ReactionSummary>> {
                summary_of(&state, &viewer, ($target)(id)).await
            }
        }
    };
}

reaction_routes!(
    post,
    "posts",
    "/posts/{post_id}",
    "post_id",
    PostId,
    "The post",
    |post_id| ReactionTarget::Post { post_id }
);
reaction_routes!(
    comment,
    "comments",
    "/comments/{comment_id}",
    "comment_id",
    CommentId,
    "The comment",
    |comment_id| ReactionTarget::Comment { comment_id }
);

/// A chat message as a reaction target.
fn message(conversation_id: ConversationId, message_id: MessageId) -> ReactionTarget {
    ReactionTarget::Message {
        conversation_id,
        message_id,
    }
}

/// Who reacted to a message, by user id.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages/{message_id}/reactions",
    tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
        ReactionsQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of reactions", body = Paged<Reaction>),
        (status = 404, description = "No such conversation or message, the actor is not a \
                                       member, or the message is deleted", body = ErrorBody),
        (status = 422, description = "Invalid `limit` or `cursor`", body = ErrorBody),
    ))]
async fn message_who(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    Query(query): Query<ReactionsQuery>,
) -> ApiResult<Json<Paged<Reaction>>> {
    let viewer = MaybeUser(Some(user));
    who_of(&state, &viewer, message(id, message_id), query).await
}

/// The counts per kind of a message's reactions and the actor's own.
#[utoipa::path(get, path = "/conversations/{conversation_id}/messages/{message_id}/reactions/summary",
    tag = "chat",
    params(
        ("conversation_id" = ConversationId, Path, description = "The conversation"),
        ("message_id" = MessageId, Path, description = "The message"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reactions", body = ReactionSummary),
        (status = 404, description = "No such conversation or message, the actor is not a \
                                       member, or the message is deleted", body = ErrorBody),
    ))]
async fn message_summary(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<ReactionSummary>> {
    let viewer = MaybeUser(Some(user));
    summary_of(&state, &viewer, message(id, message_id)).await
}
