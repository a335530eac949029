//! Registration, login and sessions, and the signed-in user's own account.

use axum::extract::State;
use axum::http::StatusCode;
use kith_core::{Account, LoginSession, NewAccount, Paged, ProfilePatch, Session, SessionId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, Path};
use crate::routes::one_page;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(me, delete_me))
        .routes(routes!(update_profile))
}

/// Charges one login/registration attempt to the client's address.
fn throttle(state: &AppState, ClientIp(ip): ClientIp) -> ApiResult<()> {
    state
        .auth_limiter
        .check(ip)
        .map_err(ApiError::TooManyRequests)
}

/// Creates an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = NewAccount,
    responses(
        (status = 201, description = "The new account", body = Account),
        (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    Json(input): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    throttle(&state, client)?;
    let account = state.kith.accounts().register(input).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// Credentials for logging in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// Username or email.
    pub login: String,
    /// The password.
    pub password: String,
}

/// Logs in and returns a bearer token for the `Authorization` header and
/// the WebSocket.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginInput,
    responses(
        (status = 200, description = "A new session and its token", body = LoginSession),
        (status = 401, description = "Wrong login or password", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    Json(input): Json<LoginInput>,
) -> ApiResult<Json<LoginSession>> {
    throttle(&state, client)?;
    Ok(Json(
        state
            .kith
            .accounts()
            .login(&input.login, &input.password)
            .await?,
    ))
}

/// Revokes the session of the token used.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
    ))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    state.kith.accounts().logout(&user.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    /// The current password (omit only if the account has none).
    pub current_password: Option<String>,
    /// The new password.
    pub new_password: String,
}

/// Changes the password; every other session is revoked.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordInput,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "No valid token, or wrong current password", body = ErrorBody),
        (status = 422, description = "Invalid new password", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<PasswordInput>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .accounts()
        .change_password(
            user.id,
            kith_core::ChangePassword {
                current_password: input.current_password,
                new_password: input.new_password,
                keep_session: Some(user.session),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's sessions, oldest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = Paged<Session>),
    ))]
async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Paged<Session>>> {
    Ok(Json(one_page(
        state.kith.accounts().sessions(user.id).await?,
    )))
}

/// Revokes one of the signed-in user's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{session_id}", tag = "auth",
    params(("session_id" = SessionId, Path, description = "The session")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn revoke_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(session_id): Path<SessionId>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .accounts()
        .revoke_session(user.id, session_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's account, with email and full profile.
#[utoipa::path(get, path = "/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = Account),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Account>> {
    Ok(Json(state.kith.accounts().me(user.id).await?))
}

/// Confirms an account deletion.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteInput {
    /// The password (required if the account has one).
    pub password: Option<String>,
}

/// Deletes the signed-in user's account.
#[utoipa::path(delete, path = "/me", tag = "me", request_body = DeleteInput,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token, or wrong password", body = ErrorBody),
        (status = 422, description = "Password missing", body = ErrorBody),
    ))]
async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<DeleteInput>,
) -> ApiResult<StatusCode> {
    state
        .kith
        .accounts()
        .delete_account(user.id, input.password.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edits the signed-in user's profile; absent fields are unchanged, `null`
/// clears a field.
#[utoipa::path(patch, path = "/me/profile", tag = "me", request_body = ProfilePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account as it now is", body = Account),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ))]
async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    Json(patch): Json<ProfilePatch>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        state.kith.accounts().update_profile(user.id, patch).await?,
    ))
}
