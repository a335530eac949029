//! Media: uploads (`POST /media`, with its own body limit and timeout, see
//! [`uploads`]), the media record with URLs an `<img>` can load, the bytes
//! behind those URLs, and the avatar and cover of the signed-in user.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kith_core::{Account, Attachment, MediaId, MediaItem, ProfilePatch, Timestamp, Variant};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AuthUser, Json, MaybeUser, Path, Query};
use crate::media::{process, ImageLimits, MAX_DECODE_ALLOC};
use crate::state::AppState;

/// The routes of this module but the upload.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(media))
        .routes(routes!(media_bytes))
        .routes(routes!(set_avatar))
        .routes(routes!(set_cover))
}

/// The upload route alone: the application gives it its own body limit and
/// timeout (`--media-body-limit`, `--media-timeout`) instead of the JSON
/// routes' ones.
pub fn uploads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

/// How long public media may be cached: a variant of an id never changes.
const PUBLIC_CACHE: &str = "public, max-age=31536000, immutable";

/// The body of `POST /media`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The image: JPEG, PNG, WebP or GIF (first frame), detected from its
    /// bytes; its name and declared type are ignored.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// A media item with the URLs its variants are served at.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    /// The item.
    pub media: MediaItem,
    /// The URL of the original; signed and expiring unless the item is
    /// public (an avatar or a cover).
    pub original_url: String,
    /// The URL of the thumbnail, likewise, if the item has one.
    pub thumbnail_url: Option<String>,
    /// When the signed URLs stop working; `None` for public media.
    pub urls_expire_at: Option<Timestamp>,
}

/// Which upload to attach.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachInput {
    /// An upload of the signed-in user, not attached yet.
    pub media_id: MediaId,
}

/// `?expires=...&sig=...` of a signed media URL.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// When the URL stops working, in Unix seconds.
    pub expires: Option<i64>,
    /// The URL's signature (hex).
    pub sig: Option<String>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where clients reach this server: `--public-url`, else `http://` and the
/// request's `Host`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| state.settings.listen.to_string(), str::to_owned);
    format!("http://{host}")
}

/// The item with its URLs: plain for public media, signed for
/// `--media-url-ttl` otherwise.
fn view(state: &AppState, headers: &HeaderMap, media: MediaItem) -> MediaView {
    let base = base_url(state, headers);
    let ttl = i64::try_from(state.settings.media_url_ttl_secs).unwrap_or(i64::MAX);
    let expires = (!media.is_public()).then(|| unix_now().saturating_add(ttl));
    let url = |variant: Variant| {
        let plain = format!("{base}/api/v1/media/{}/{}", media.id, variant.as_str());
        match expires {
            Some(at) => {
                let sig = state.signer.sign(media.id, variant, at);
                format!("{plain}?expires={at}&sig={sig}")
            }
            None => plain,
        }
    };
    MediaView {
        original_url: url(Variant::Original),
        thumbnail_url: media
            .variants
            .contains(&Variant::Thumbnail)
            .then(|| url(Variant::Thumbnail)),
        urls_expire_at: expires.map(|at| Timestamp::from_millis(at.saturating_mul(1000))),
        media,
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Uploads an image. Its type is detected from the bytes; it is decoded
/// within limits (`--media-max-dimension`), turned upright by its EXIF
/// orientation, re-encoded without metadata (JPEG as JPEG, others as PNG)
/// and thumbnailed (at most 320 pixels a side). The upload is unattached
/// and seen by its owner only until it is attached; one never attached is
/// removed after `--media-grace`. A refused upload stores nothing.
#[utoipa::path(post, path = "/media", tag = "media",
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "One part named `file`"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The stored upload", body = MediaView),
        (status = 400, description = "Malformed multipart body, or not exactly one part, named `file`", body = ErrorBody),
        (status = 408, description = "The upload took longer than `--media-timeout`", body = ErrorBody),
        (status = 413, description = "Body larger than `--media-body-limit`", body = ErrorBody),
        (status = 415, description = "Not `multipart/form-data`, or not a JPEG, PNG, WebP or GIF image", body = ErrorBody),
        (status = 422, description = "`file`: empty, larger than the limits, truncated or corrupt", body = ErrorBody),
        (status = 429, description = "Too many uploads; `Retry-After` says when to retry", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<MediaView>)> {
    let mut multipart = multipart.map_err(|_| ApiError::NotMultipart)?;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") || file.is_some() {
            return Err(ApiError::BadRequest(
                "expected one part named `file`".to_owned(),
            ));
        }
        file = Some(field.bytes().await.map_err(multipart_error)?);
    }
    let file =
        file.ok_or_else(|| ApiError::BadRequest("expected one part named `file`".to_owned()))?;
    let limits = ImageLimits {
        max_dimension: state.settings.media_max_dimension,
        max_alloc: MAX_DECODE_ALLOC,
    };
    let processed = tokio::task::spawn_blocking(move || process(&file, limits))
        .await
        .map_err(|e| kith_core::Error::Internal(format!("image processing stopped: {e}")))??;
    let media = state.kith.media().upload(user.id, processed).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &headers, media))))
}

/// A media item as the viewer may see it, with URLs for `<img>`: plain for
/// public media (avatars, covers), signed and expiring otherwise. An
/// unattached upload is seen by its owner only; an avatar or a cover by
/// whoever may see the owner. Anonymous viewers are allowed.
#[utoipa::path(get, path = "/media/{media_id}", tag = "media",
    params(("media_id" = MediaId, Path, description = "The media item")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The item and its URLs", body = MediaView),
        (status = 404, description = "No such item, it expired, or the viewer may not see it", body = ErrorBody),
    ))]
async fn media(
    State(state): State<AppState>,
    viewer: MaybeUser,
    headers: HeaderMap,
    Path(media_id): Path<MediaId>,
) -> ApiResult<Json<MediaView>> {
    let media = state.kith.media().get(viewer.id(), media_id).await?;
    Ok(Json(view(&state, &headers, media)))
}

/// The bytes of a variant, for `<img src>`: public media (avatars, covers)
/// by its plain URL, other media by a URL signed by `GET /media/{media_id}`
/// or the upload, until it expires. With `Content-Type`, `Content-Length`,
/// an `ETag` (answered with 304 when `If-None-Match` holds it) and
/// `Cache-Control` (a year for public media, the URL's remaining life for
/// signed ones).
#[utoipa::path(get, path = "/media/{media_id}/{variant}", tag = "media",
    params(
        ("media_id" = MediaId, Path, description = "The media item"),
        ("variant" = Variant, Path, description = "Which rendition"),
        SignedQuery,
    ),
    security(()),
    responses(
        (status = 200, description = "The bytes, of the item's `content_type`", content(
            (String = "image/jpeg"),
            (String = "image/png"),
        )),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 403, description = "Not public, and the signature is missing, wrong or expired", body = ErrorBody),
        (status = 404, description = "No such item or variant, or it expired", body = ErrorBody),
    ))]
async fn media_bytes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((media_id, variant)): Path<(MediaId, Variant)>,
    Query(signed): Query<SignedQuery>,
) -> ApiResult<Response> {
    let now = unix_now();
    let valid_until = match (signed.expires, signed.sig.as_deref()) {
        (Some(expires), Some(sig))
            if expires > now && state.signer.verify(media_id, variant, expires, sig) =>
        {
            Some(expires)
        }
        _ => None,
    };
    let media = state.kith.media().find(media_id).await?;
    let cache = if media.is_public() {
        PUBLIC_CACHE.to_owned()
    } else {
        let until = valid_until.ok_or(ApiError::BadSignature)?;
        format!("private, max-age={}", until - now)
    };
    let content_type = media
        .content_type_of(variant)
        .ok_or(kith_core::Error::NotFound(kith_core::Entity::Media))?
        .to_owned();
    let etag = format!("\"{media_id}-{}\"", variant.as_str());
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = state.kith.media().bytes(&media, variant).await?;
        let length = bytes.len();
        let mut response = Body::from(bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).map_err(|_| {
                kith_core::Error::Internal("a stored content type is not a header".to_owned())
            })?,
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    };
    let headers = response.headers_mut();
    for (name, value) in [(header::ETAG, etag), (header::CACHE_CONTROL, cache)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// Attaches `media_id` as the actor's `attachment` and points the profile's
/// URL at it.
async fn attach_to_profile(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    media_id: MediaId,
    attachment: Attachment,
) -> ApiResult<Account> {
    let media = state
        .kith
        .media()
        .attach(user.id, media_id, attachment)
        .await?;
    let url = Some(Some(view(state, headers, media).original_url));
    let patch = match attachment {
        Attachment::Cover => ProfilePatch {
            cover_url: url,
            ..ProfilePatch::default()
        },
        _ => ProfilePatch {
            avatar_url: url,
            ..ProfilePatch::default()
        },
    };
    Ok(state.kith.accounts().update_profile(user.id, patch).await?)
}

/// Makes an upload of the signed-in user their avatar: the profile's
/// `avatar_url` becomes its public URL. The previous avatar upload is
/// released and removed.
#[utoipa::path(put, path = "/me/avatar", tag = "me", request_body = AttachInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, with the new avatar URL", body = Account),
        (status = 403, description = "The upload is someone else's", body = ErrorBody),
        (status = 404, description = "No such upload, it expired, or the actor may not see it", body = ErrorBody),
        (status = 409, description = "The upload is already attached", body = ErrorBody),
    ))]
async fn set_avatar(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(input): Json<AttachInput>,
) -> ApiResult<Json<Account>> {
    let account =
        attach_to_profile(&state, &user, &headers, input.media_id, Attachment::Avatar).await?;
    Ok(Json(account))
}

/// Makes an upload of the signed-in user their cover image: the profile's
/// `cover_url` becomes its public URL. The previous cover upload is
/// released and removed.
#[utoipa::path(put, path = "/me/cover", tag = "me", request_body = AttachInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, with the new cover URL", body = Account),
        (status = 403, description = "The upload is someone else's", body = ErrorBody),
        (status = 404, description = "No such upload, it expired, or the actor may not see it", body = ErrorBody),
        (status = 409, description = "The upload is already attached", body = ErrorBody),
    ))]
async fn set_cover(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(input): Json<AttachInput>,
) -> ApiResult<Json<Account>> {
    let account =
        attach_to_profile(&state, &user, &headers, input.media_id, Attachment::Cover).await?;
    Ok(Json(account))
}
