//! `/metrics` in the Prometheus text format (0.0.4), through
//! `prometheus-client`: HTTP requests and latency by matched route, open
//! WebSocket connections, messages sent, frames delivered and slow-consumer
//! disconnects.
//!
//! Each [`Metrics`] has its own registry, so that several servers in one
//! process (as in the tests) never mix their figures.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use kith_core::{Delivery, Event, EventSink};
use kith_ws::Hub;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The `route` label of requests that matched no route (404s from the
/// fallback), so that unknown paths add no series.
const UNMATCHED: &str = "unmatched";

/// Labels of `kith_http_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template (`/api/v1/users/{id}`), never the raw path.
    route: String,
    status: u16,
}

/// Labels of `kith_http_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    method: &'static str,
    route: String,
}

/// The server's metrics and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    messages_sent: Counter,
}

impl Metrics {
    /// A registry with the HTTP and message metrics, and `hub`'s figures
    /// read at each scrape.
    pub fn new(hub: Arc<Hub>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "kith_http_requests",
            "HTTP requests by method, matched route and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "kith_http_request_duration_seconds",
            "HTTP request latency by method and matched route",
            latency.clone(),
        );
        let messages_sent = Counter::default();
        registry.register(
            "kith_messages_sent",
            "Chat messages stored and published",
            messages_sent.clone(),
        );
        registry.register_collector(Box::new(HubCollector(hub)));
        Self {
            registry,
            requests,
            latency,
            messages_sent,
        }
    }

    fn observe(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        self.latency
            .get_or_create(&LatencyLabels {
                method,
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a `String` does not fail; a collector could.
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// The hub's counters, read at each scrape.
#[derive(Debug)]
struct HubCollector(Arc<Hub>);

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let connections = ConstGauge::new(stats.connections.load(Ordering::Relaxed) as i64);
        connections.encode(encoder.encode_descriptor(
            "kith_ws_connections",
            "Open WebSocket connections",
            None,
            connections.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "kith_ws_frames_delivered",
                "Frames queued to WebSocket connections",
                &stats.frames_queued,
            ),
            (
                "kith_ws_slow_consumer_disconnects",
                "Connections closed because they did not read fast enough",
                &stats.slow_consumer_disconnects,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Middleware recording every request's method, matched route, status and
/// latency. Added with `Router::layer`, it runs inside routing, where the
/// route template ([`MatchedPath`]) is known.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Standard methods only: a label per arbitrary method a client invents
    // would add series without bound.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The event sink the server gives Kith: counts messages, then hands every
/// delivery to the WebSocket hub.
pub struct CountingSink {
    /// Where deliveries go.
    pub hub: Arc<Hub>,
    /// Where the count goes.
    pub metrics: Arc<Metrics>,
}

impl CountingSink {
    /// Counts the new messages among `deliveries`.
    fn count<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        let created = deliveries
            .into_iter()
            .filter(|d| matches!(d.event, Event::MessageCreated { .. }))
            .count();
        self.metrics.messages_sent.inc_by(created as u64);
    }
}

impl EventSink for CountingSink {
    fn publish(&self, delivery: Delivery) {
        self.count([&delivery]);
        self.hub.publish(delivery);
    }

    fn publish_all(&self, deliveries: Vec<Delivery>) {
        self.count(&deliveries);
        self.hub.publish_all(deliveries);
    }
}
