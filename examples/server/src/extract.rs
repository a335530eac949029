//! Extractors whose rejections answer in the API's JSON error shape, and
//! the authenticated user.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kith_core::{Page, SessionId, UserId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::state::AppState;

/// `axum::Json`, rejecting in the API's error shape.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path`, rejecting in the API's error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query`, rejecting in the API's error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The user a valid bearer token identifies.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user.
    pub id: UserId,
    /// The session the token opens.
    pub session: SessionId,
    /// The token itself (to log out with).
    pub token: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let session = state
            .kith
            .accounts()
            .authenticate(token)
            .await
            .map_err(|e| match e {
                kith_core::Error::Unauthenticated => ApiError::Unauthenticated,
                other => ApiError::Kith(other),
            })?;
        Ok(AuthUser {
            id: session.user_id,
            session: session.id,
            token: token.to_owned(),
        })
    }
}

/// The signed-in user, if the request carries a token (an invalid token is
/// still refused with 401, so clients notice expired sessions).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(parts).is_none() {
            return Ok(MaybeUser(None));
        }
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|u| MaybeUser(Some(u)))
    }
}

impl MaybeUser {
    /// The viewer's id, if signed in.
    pub fn id(&self) -> Option<UserId> {
        self.0.as_ref().map(|u| u.id)
    }
}

/// `?cursor=...&limit=...` of list endpoints.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

impl From<PageQuery> for Page {
    fn from(q: PageQuery) -> Self {
        Page {
            cursor: q.cursor,
            limit: q.limit,
        }
    }
}
