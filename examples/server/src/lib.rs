//! # kith-server
//!
//! The reference server of Kith: REST under `/api/v1` and the WebSocket at
//! `/api/v1/ws`, over kith-core, kith-sqlite and kith-ws. Run it with
//! `cargo run -p kith-server`; `--help` lists the settings.
//!
//! ## Layout
//! - `main.rs`: the thin binary: settings, logging, [`serve`].
//! - [`app`]: builds storage, Kith, the WebSocket endpoint, routes, the
//!   OpenAPI document and middleware.
//! - [`state`]: what handlers reach. [`error`]: the one mapping of errors to
//!   HTTP. [`extract`]: JSON-shaped extractor rejections and the bearer-token user.
//! - [`routes`]: one module per area (`auth`, `users`, `graph`, `chat`,
//!   `media`, `ops`).
//! - [`media`]: the byte store over `object_store`, the image pipeline and
//!   signed media URLs.
//! - [`limits`]: the per-address limiter of login and registration;
//!   [`client_ip`]: the client's address, behind trusted proxies too.
//! - [`metrics`]: `/metrics` and the request-tracking middleware.
//! - [`migrate`]: `kith-server migrate-data`, which copies a SQLite
//!   deployment into an empty PostgreSQL database.

pub mod app;
pub mod client_ip;
pub mod error;
pub mod extract;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod migrate;
pub mod routes;
pub mod settings;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;

pub use app::{build, App, StartError};
pub use settings::Settings;

/// Serves `app` on `listener` until `shutdown` completes; then stops
/// accepting, closes WebSockets with 1001 and lets in-flight requests finish.
/// Accepted connections get TCP_NODELAY (unless `--tcp-nodelay false`).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ws = app.state.ws.clone();
    let closer = ws.clone();
    let (kith, node) = (app.state.kith.clone(), app.state.node);
    let renewer = tokio::spawn(renew_node(kith.clone(), node));
    let poller = tokio::spawn(poll(kith.clone()));
    let grace = Duration::from_secs(app.state.settings.shutdown_grace_secs);
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let ws_closer = tokio::spawn(async move {
        let _ = signal_rx.await;
        // axum's graceful shutdown does not wait for upgraded sockets.
        let left = closer.shutdown(grace).await;
        if left > 0 {
            tracing::warn!(left, "WebSockets still open at the end of the grace period");
        }
    });
    // Small frames (a WebSocket event, a short JSON answer) are sent at
    // once instead of waiting for the previous segment's ACK (Nagle).
    let nodelay = app.state.settings.tcp_nodelay;
    let listener = listener.tap_io(move |stream| {
        if let Err(e) = stream.set_nodelay(nodelay) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
    });
    axum::serve(
        listener,
        app.router
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signal_tx.send(());
    })
    .await?;
    let _ = ws_closer.await;
    // A handshake that was in flight when the first pass ran upgraded after
    // it; axum has now finished every HTTP connection, so close those too.
    let late = ws.shutdown(grace).await;
    if late > 0 {
        tracing::warn!(
            left = late,
            "WebSockets still open at the end of the grace period"
        );
    }
    renewer.abort();
    poller.abort();
    // The number is free at once for the next server.
    if let Err(e) = node.release(kith.storage().as_ref()).await {
        tracing::warn!(error = %e, "could not release the node lease");
    }
    Ok(())
}

/// How often a server compares the versions of the conversations it serves
/// with the database's ([`kith_core::Kith::poll`]): the most a lost broker
/// notification delays a change.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The node's periodic work, every [`POLL_EVERY`]: [`kith_core::Kith::poll`]
/// (presence, and the safety net under the broker), then the removal of
/// uploads never attached in time ([`kith_core::Media::collect_garbage`],
/// one indexed query when there are none).
async fn poll(kith: kith_core::Kith) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = kith.poll().await {
            tracing::warn!(error = %e, "could not poll the served conversations");
        }
        match kith.media().collect_garbage().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed expired uploads"),
            Err(e) => tracing::warn!(error = %e, "could not remove expired uploads"),
        }
    }
}

/// Renews the server's node lease while it serves. A lease that could not
/// be renewed for its whole length may be taken by another server, and two
/// servers with one number could make the same id: that is logged as an
/// error, for the operator to restart this server.
async fn renew_node(kith: kith_core::Kith, node: kith_core::NodeLease) {
    let mut every = tokio::time::interval(kith_core::NodeLease::RENEW_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let clock = kith_core::SystemClock;
        match node.renew(kith.storage().as_ref(), &clock).await {
            Ok(()) => {}
            Err(kith_core::Error::Conflict(_)) => {
                tracing::error!(
                    node = node.node(),
                    "the node lease was lost to another server: restart this one"
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not renew the node lease"),
        }
    }
}
