//! The REST API under `/api/v1`, one module per area. Every route is
//! registered through `utoipa_axum`'s `OpenApiRouter`, so the router and the
//! OpenAPI document cannot drift apart. Handlers document their own answers;
//! the refusals every operation shares (400, 401, 413, 415) are added in one
//! place, [`crate::error::document_refusals`].

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod auth;
pub mod chat;
pub mod comments;
pub mod graph;
pub mod media;
pub mod ops;
pub mod posts;
pub mod reactions;
pub mod users;

/// Every REST route, relative to `/api/v1`, but the upload
/// ([`media::uploads`]), which has limits of its own.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(graph::router())
        .merge(chat::router())
        .merge(posts::router())
        .merge(comments::router())
        .merge(reactions::router())
        .merge(media::router())
}

/// `{"items": [...], "next_cursor": ...}` for lists that are not keyset
/// pages of Kith (they always fit in one page).
pub fn one_page<T>(items: Vec<T>) -> kith_core::Paged<T> {
    kith_core::Paged {
        items,
        next_cursor: None,
    }
}
