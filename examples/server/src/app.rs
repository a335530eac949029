//! Builds the application: storage, Kith, the WebSocket endpoint, the
//! routes, the OpenAPI document and the middleware.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use kith_core::{
    Broker, Clock, Config, DirectMessages, Kith, NodeLease, Rate, Storage, SystemClock,
    TimeOrderedIds,
};
use kith_postgres::{PgBroker, PgStore};
use kith_sqlite::SqliteStore;
use kith_ws::{Hub, KithSessions, WsConfig, WsServer};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{document_refusals, error_response, ApiError};
use crate::limits::AddressLimiter;
use crate::media::{ObjectBytes, UrlSigner};
use crate::metrics::{self as metrics_mod, CountingSink, Metrics};
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database URL names a backend this server does not support.
    #[error("unsupported database URL {0:?}: use a sqlite:// or a postgres:// URL")]
    UnsupportedDatabase(String),
    /// The SQLite database could not be opened.
    #[error(transparent)]
    Sqlite(#[from] kith_sqlite::Error),
    /// The PostgreSQL database could not be reached or migrated.
    #[error(transparent)]
    Postgres(#[from] kith_postgres::Error),
    /// No node number could be leased from the database (every number is
    /// held by another server, or the database failed).
    #[error("cannot lease a node number: {0}")]
    Node(#[source] kith_core::Error),
    /// The media store (`--media-dir`) could not be opened.
    #[error("cannot open the media store: {0}")]
    Media(#[source] object_store::Error),
    /// No `--media-secret` was given and the system has no randomness to
    /// draw one.
    #[error("cannot draw a media URL secret: {0}")]
    Secret(#[source] getrandom::Error),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kith",
        description = "The reference server of Kith: accounts, social graph, posts and chat. \
                       Real-time events: the WebSocket at /api/v1/ws (see docs/PROTOCOL.md).",
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody)),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The assembled application.
pub struct App {
    /// The router, ready to serve (with connect info).
    pub router: Router,
    /// The shared state.
    pub state: AppState,
    /// The OpenAPI document served at `/api/openapi.json`.
    pub openapi: Document,
}

/// Opens the storage and builds the application.
///
/// # Errors
/// [`StartError`] if the database cannot be opened.
pub async fn build(settings: Settings) -> Result<App, StartError> {
    let (store, broker) = open_storage(&settings.database_url).await?;
    // Several servers may share the database: each makes its ids with a
    // node number of its own, leased here and renewed while it serves.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let node = NodeLease::acquire(store.as_ref(), clock.as_ref())
        .await
        .map_err(StartError::Node)?;
    let ws_config = WsConfig::default();
    let hub = Arc::new(Hub::new(ws_config.hub));
    let metrics = Arc::new(Metrics::new(Arc::clone(&hub)));
    let mut config = Config::default();
    config.direct_messages = if settings.open_direct_messages {
        DirectMessages::Anyone
    } else {
        DirectMessages::FriendsOnly
    };
    config.send_rate = (!settings.no_rate_limits).then_some(Rate::per_second(
        settings.send_burst,
        settings.send_per_second,
    ));
    config.write_rates = settings.write_rates();
    config.media_grace = Duration::from_secs(settings.media_grace_secs);
    let bytes = ObjectBytes::open(&settings.media_dir).map_err(StartError::Media)?;
    let signer = UrlSigner::new(settings.media_secret.as_deref()).map_err(StartError::Secret)?;
    let builder = match broker {
        Some(broker) => Kith::builder(store).broker(broker),
        None => Kith::builder(store),
    };
    let kith = builder
        .clock(Arc::clone(&clock))
        .ids(Arc::new(TimeOrderedIds::for_node(clock, node.node())))
        .sink(Arc::new(CountingSink {
            hub: Arc::clone(&hub),
            metrics: Arc::clone(&metrics),
        }))
        .config(config)
        .bytes(Arc::new(bytes))
        .spawner(Arc::new(|task| {
            tokio::spawn(task);
        }))
        .build();
    let ws = WsServer::new(
        kith.clone(),
        hub,
        Arc::new(KithSessions(kith.clone())),
        ws_config,
    );
    let auth_per_minute = if settings.no_rate_limits {
        0
    } else {
        settings.auth_per_minute
    };
    let state = AppState {
        kith,
        ws: ws.clone(),
        metrics,
        auth_limiter: Arc::new(AddressLimiter::new(auth_per_minute)),
        node,
        signer,
        settings: Arc::new(settings),
    };

    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::api())
        .merge(routes::ops::router())
        .with_state(state.clone())
        .split_for_parts();
    let (uploads, upload_doc) = OpenApiRouter::new()
        .nest("/api/v1", routes::media::uploads())
        .with_state(state.clone())
        .split_for_parts();
    openapi.merge(upload_doc);
    document_refusals(&mut openapi);
    let document = openapi.clone();
    let settings = &state.settings;
    // The upload route has a body limit and a timeout of its own; the JSON
    // routes keep theirs.
    let uploads = uploads
        .layer(DefaultBodyLimit::max(settings.media_body_limit))
        .layer(middleware::from_fn_with_state(
            settings.media_body_limit,
            read_body,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(settings.media_timeout_secs),
        ));
    let router = api
        .route(
            "/api/openapi.json",
            get(move || async move { axum::Json(document) }),
        )
        .nest("/api/v1/ws", ws.router())
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn_with_state(settings.body_limit, read_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(settings.request_timeout_secs),
        ))
        .merge(uploads)
        // Outside the timeout, so that its 408 gets the JSON shape too.
        .layer(middleware::from_fn(json_errors))
        .layer(cors(&settings.cors_origins))
        .layer(middleware::from_fn_with_state(state.clone(), metrics_mod::track))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings may carry tokens.
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                // One line per response at the default `info` level (the
                // layer's default is `debug`, which `info` hides).
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    Ok(App {
        router,
        state,
        openapi,
    })
}

/// Whether `url` names a SQLite database: a `sqlite:` URL, or a plain path
/// (`kith.db`, `/var/lib/kith/kith.db`, `:memory:`). Anything that looks like
/// a URL of another scheme (`postgres://...`) is not.
/// Opens the backend the database URL names: PostgreSQL for `postgres://`
/// and `postgresql://`, with the broker that links the servers sharing it;
/// SQLite (one server) for `sqlite:` and plain paths.
async fn open_storage(
    url: &str,
) -> Result<(Arc<dyn Storage>, Option<Arc<dyn Broker>>), StartError> {
    match scheme(url).map(str::to_ascii_lowercase).as_deref() {
        None | Some("sqlite") => Ok((Arc::new(SqliteStore::open(url).await?), None)),
        Some("postgres" | "postgresql") => {
            let store = PgStore::connect(url).await?;
            let broker = PgBroker::start(&store).await?;
            Ok((Arc::new(store), Some(broker)))
        }
        Some(_) => Err(StartError::UnsupportedDatabase(url.to_owned())),
    }
}

/// The URL's scheme, if it has one.
fn scheme(url: &str) -> Option<&str> {
    match url.split_once(':') {
        // A scheme is a letter then letters, digits, `+`, `-` or `.`; one
        // letter is a Windows drive (`C:\kith.db`), not a scheme.
        Some((scheme, _))
            if scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            Some(scheme)
        }
        _ => None,
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        // Not CORS-safelisted: browsers hide them from scripts unless exposed.
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o.trim() == "*") {
        layer.allow_origin(Any)
    } else {
        // Browsers send `Origin` without a trailing slash.
        let list: Vec<HeaderValue> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Reads the whole request body, up to `limit` bytes, before routing. A
/// request refused before its handler reads the body (a bad token, a bad
/// path id, a wrong content type) would otherwise leave unread bytes on the
/// connection, and hyper would close that keep-alive connection without
/// saying so, failing the client's next request on it. A body it cannot read
/// whole (too large, or broken off) is refused with `Connection: close`.
async fn read_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let refusal = match chunk {
            Ok(chunk) if bytes.len() + chunk.len() <= limit => {
                bytes.extend_from_slice(&chunk);
                continue;
            }
            Ok(_) => ApiError::PayloadTooLarge,
            Err(_) => ApiError::BadRequest("the request body could not be read".to_owned()),
        };
        let mut response = refusal.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Gives error responses produced outside the handlers (405 from the router,
/// 408 from the timeout layer, 413 from body limits...) the API's JSON shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Keep a short plain-text explanation (axum's rejections, for example
    // a WebSocket handshake without `Upgrade`); never echo a server error's.
    let text = if status.is_server_error() {
        None
    } else {
        axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = text.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    });
    let mut fixed = error_response(status, code, message, None);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed.into_response()
}

#[cfg(test)]
mod tests {
    use super::scheme;

    #[test]
    fn paths_have_no_scheme_urls_do() {
        for path in [
            ":memory:",
            "kith.db",
            "/var/lib/kith/kith.db",
            "data/kith.sqlite3",
            r"C:\kith\kith.db",
        ] {
            assert_eq!(scheme(path), None, "{path}");
        }
        for (url, expected) in [
            ("sqlite://kith.db", "sqlite"),
            ("sqlite:///var/lib/kith/kith.db?mode=rwc", "sqlite"),
            ("sqlite::memory:", "sqlite"),
            ("postgres://kith@localhost/kith", "postgres"),
            ("postgresql://localhost/kith.db", "postgresql"),
            ("mysql://localhost/kith", "mysql"),
            ("file:kith.db", "file"),
        ] {
            assert_eq!(scheme(url), Some(expected), "{url}");
        }
    }
}
