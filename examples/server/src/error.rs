//! The one place where errors become HTTP responses:
//! `{"error": {"code": "...", "message": "..."}}` with the right status, and
//! where the OpenAPI document learns the refusals every operation shares.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, ResponseBuilder};
use utoipa::ToSchema;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal or failure from Kith.
    #[error(transparent)]
    Kith(#[from] kith_core::Error),
    /// The request is malformed (bad JSON, bad path or query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// No valid bearer token.
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// The body is larger than the limit.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The body is not `application/json`.
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// Too many attempts from this address.
    #[error("too many requests, retry after {} s", ceil_secs(*.0))]
    TooManyRequests(Duration),
    /// An unknown route.
    #[error("no such route")]
    NoRoute,
    /// An upload whose body is not `multipart/form-data`.
    #[error("expected a `multipart/form-data` body")]
    NotMultipart,
    /// An uploaded file that is not an image of a supported type.
    #[error("unsupported file type: expected a JPEG, PNG, WebP or GIF image")]
    UnsupportedFile,
    /// A media URL of media that is not public, without a valid signature.
    #[error("this media needs a signed URL, and the signature is missing, wrong or expired")]
    BadSignature,
}

/// Whole seconds, rounded up (at least 1): what `Retry-After` says.
fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`not_found`, `invalid_input`...).
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// For `invalid_input`: the offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        use kith_core::Error as E;
        match self {
            ApiError::Kith(e) => match e {
                E::NotFound(_) => StatusCode::NOT_FOUND,
                E::Forbidden(_) => StatusCode::FORBIDDEN,
                E::Conflict(_) => StatusCode::CONFLICT,
                E::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                E::InvalidCredentials | E::Unauthenticated => StatusCode::UNAUTHORIZED,
                E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::NotMultipart | ApiError::UnsupportedFile => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::BadSignature => StatusCode::FORBIDDEN,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Kith(e) => e.code(),
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::NoRoute => "not_found",
            ApiError::NotMultipart | ApiError::UnsupportedFile => "unsupported_media_type",
            ApiError::BadSignature => "forbidden",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Kith(kith_core::Error::RateLimited { retry_after }) => Some(*retry_after),
            ApiError::TooManyRequests(d) => Some(*d),
            _ => None,
        }
    }
}

/// The JSON error response for `status` with `code` and `message`.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<String>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
            field,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            ApiError::Kith(kith_core::Error::InvalidInput { field, .. }) => {
                Some((*field).to_owned())
            }
            _ => None,
        };
        // Internal details stay in the log; Kith's errors read as on the
        // WebSocket.
        let message = match &self {
            ApiError::Kith(e) => e.public_message(),
            other => other.to_string(),
        };
        let mut response = error_response(status, self.code(), message, field);
        if let Some(after) = self.retry_after() {
            if let Ok(value) = HeaderValue::from_str(&ceil_secs(after).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(ref e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// Documents on every operation of `doc` the refusals of the shared
/// extractors and middleware, where the operation does not document them
/// itself: 400 for a malformed path, query or JSON body (not an object,
/// unknown or missing fields); 413 and 415 for a JSON body; 401 where a
/// bearer token is accepted.
pub fn document_refusals(doc: &mut OpenApi) {
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    let anonymous = SecurityRequirement::default();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let takes = |place: ParameterIn| {
                operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == place)
            };
            let body = operation.request_body.is_some();
            let malformed: Vec<&str> = [
                (takes(ParameterIn::Path), "path"),
                (takes(ParameterIn::Query), "query"),
                (body, "JSON body"),
            ]
            .into_iter()
            .filter_map(|(has, what)| has.then_some(what))
            .collect();
            let mut refusals = Vec::new();
            match malformed.split_last() {
                Some((only, [])) => refusals.push(("400", format!("Malformed {only}"))),
                Some((last, rest)) => {
                    refusals.push(("400", format!("Malformed {} or {last}", rest.join(", "))));
                }
                None => {}
            }
            if body {
                refusals.push(("413", "Body too large".to_owned()));
                refusals.push(("415", "Not `Content-Type: application/json`".to_owned()));
            }
            let security = operation.security.as_deref().unwrap_or_default();
            if security.contains(&bearer) {
                let what = if security.contains(&anonymous) {
                    "Invalid token"
                } else {
                    "No valid token"
                };
                refusals.push(("401", what.to_owned()));
            }
            for (status, description) in refusals {
                let error = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build();
                let response = ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error)
                    .build();
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| response.into());
            }
        }
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
