//! # kith-ws
//!
//! Kith's real-time transport: a WebSocket endpoint (axum) that turns core
//! events into frames and client frames into core calls, and the fan-out
//! [`Hub`] that delivers each event to every open connection of its
//! recipients. The protocol, `kith.v1`, is specified in `docs/PROTOCOL.md`.
//!
//! ## Layout
//! - [`hub`]: the registry of connections and the fan-out path (serialise
//!   once, share the frame, bounded per-connection queues, slow consumers
//!   closed instead of waited for). [`Hub`] is the [`kith_core::EventSink`].
//! - [`protocol`]: client and server frames and close codes.
//! - [`auth`]: the [`Authenticator`] seam and where tokens are read from.
//! - `connection`: one connection's reader and writer, handshake and resume.
//!
//! ## Example
//! ```no_run
//! # async fn demo(storage: std::sync::Arc<dyn kith_core::Storage>) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use kith_core::Kith;
//! use kith_ws::{Hub, KithSessions, WsConfig, WsServer};
//!
//! let config = WsConfig::default();
//! let hub = Arc::new(Hub::new(config.hub));
//! let kith = Kith::builder(storage).sink(hub.clone()).build();
//! let ws = WsServer::new(kith.clone(), hub, Arc::new(KithSessions(kith)), config);
//! let app = axum::Router::new().nest("/api/v1/ws", ws.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

pub mod auth;
mod connection;
pub mod hub;
pub mod protocol;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{Sink, Stream};
use kith_core::Kith;

pub use auth::{Authenticator, Identity, KithSessions};
pub use hub::{Frame, Hub, HubConfig, HubStats};
pub use protocol::{close, ClientFrame, ServerFrame, PROTOCOL};

/// Re-exported so that callers can drive a connection over their own
/// transport with [`WsServer::serve_socket`].
pub use axum::extract::ws::Message;

/// The transport's tunables. Start from [`WsConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsConfig {
    /// The hub's settings (per-connection queue length).
    pub hub: HubConfig,
    /// How often the server pings an idle client.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is
    /// closed with [`close::IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Text frames above this many bytes are refused with a `too_large`
    /// error; the connection survives.
    pub max_frame_bytes: usize,
    /// Frames above this many bytes end the connection with
    /// [`close::TOO_BIG`] (tungstenite's limit; it does not read them).
    pub hard_max_frame_bytes: usize,
    /// tungstenite's read buffer per connection.
    pub read_buffer_bytes: usize,
    /// tungstenite's write buffer per connection: frames are fed until it
    /// fills or the writer flushes after a batch.
    pub write_buffer_bytes: usize,
    /// More frames that break the protocol (invalid or binary frames,
    /// `too_large`, `resume_not_first`) than this within
    /// [`Self::abuse_window`] close the connection with [`close::POLICY`].
    /// Refusals by Kith's rules (`rate_limited`, `forbidden`, ...) are
    /// answers, not abuse, and do not count.
    pub abuse_limit: usize,
    /// See [`Self::abuse_limit`].
    pub abuse_window: Duration,
    /// Announce friends' presence (online / last seen).
    pub presence: bool,
    /// Relay typing indicators.
    pub typing: bool,
    /// How long a typing indicator lasts on clients.
    pub typing_ttl: Duration,
    /// A connection's typing indicator for one conversation is relayed at
    /// most once per this interval.
    pub typing_interval: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            hub: HubConfig::default(),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 16 * 1024,
            hard_max_frame_bytes: 64 * 1024,
            read_buffer_bytes: 4 * 1024,
            write_buffer_bytes: 8 * 1024,
            abuse_limit: 30,
            abuse_window: Duration::from_secs(10),
            presence: true,
            typing: true,
            typing_ttl: Duration::from_secs(5),
            typing_interval: Duration::from_secs(2),
        }
    }
}

/// The WebSocket endpoint. Cheap to clone.
#[derive(Clone)]
pub struct WsServer {
    shared: Arc<connection::Shared>,
    auth: Arc<dyn Authenticator>,
}

impl WsServer {
    /// An endpoint serving `kith`'s events from `hub` (which must be the sink
    /// `kith` was built with), authenticating with `auth`.
    pub fn new(kith: Kith, hub: Arc<Hub>, auth: Arc<dyn Authenticator>, config: WsConfig) -> Self {
        Self {
            shared: Arc::new(connection::Shared { kith, hub, config }),
            auth,
        }
    }

    /// The hub connections are registered with.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// A router with the endpoint at `/`, to be nested where the app wants it.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/", get(upgrade))
            .with_state(self.clone())
    }

    /// Serves one already authenticated connection over any sink and stream
    /// of WebSocket messages, until it closes.
    pub async fn serve_socket<S, E>(&self, socket: S, identity: Identity)
    where
        S: Sink<Message, Error = E> + Stream<Item = Result<Message, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        connection::serve(socket, Arc::clone(&self.shared), identity).await;
    }

    /// Closes every connection with [`close::GOING_AWAY`] and waits for them
    /// to finish, at most `deadline`. Returns how many were still open.
    /// (axum's graceful shutdown does not wait for upgraded sockets.)
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.shared.hub.shutdown(deadline).await
    }
}

/// The handshake: authenticate (401 before any upgrade), then upgrade with
/// deliberate buffer and size limits.
async fn upgrade(
    State(server): State<WsServer>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let token = auth::token_from_request(&headers, query.as_deref());
    let identity = match token {
        Some(token) => server.auth.authenticate(token).await,
        None => None,
    };
    let Some(identity) = identity else {
        let body =
            r#"{"error":{"code":"unauthenticated","message":"a valid bearer token is required"}}"#;
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let config = &server.shared.config;
    upgrade
        .protocols([PROTOCOL])
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(config.write_buffer_bytes.max(config.hard_max_frame_bytes) * 4)
        .max_message_size(config.hard_max_frame_bytes)
        .max_frame_size(config.hard_max_frame_bytes)
        .on_upgrade(move |socket| async move {
            connection::serve(socket, Arc::clone(&server.shared), identity).await;
        })
}
