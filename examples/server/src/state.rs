//! What every handler can reach.

use std::sync::Arc;

use kith_core::{Kith, NodeLease};
use kith_ws::WsServer;

use crate::limits::AddressLimiter;
use crate::media::UrlSigner;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// The application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The library.
    pub kith: Kith,
    /// The WebSocket endpoint (and its hub).
    pub ws: WsServer,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The per-address limiter of login and registration.
    pub auth_limiter: Arc<AddressLimiter>,
    /// The node number this server's ids carry, leased from the database.
    pub node: NodeLease,
    /// Signs and checks the URLs of media that is not public.
    pub signer: UrlSigner,
    /// The settings the server runs with.
    pub settings: Arc<Settings>,
}
