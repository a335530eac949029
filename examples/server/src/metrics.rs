//! `/metrics` in the Prometheus text format: HTTP requests and latency, open
//! WebSocket connections, messages sent, frames delivered and slow-consumer
//! disconnects.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use kith_core::{Delivery, Event, EventSink};
use kith_ws::Hub;

use crate::state::AppState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (method, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Cumulative histogram counts, one per bucket plus `+Inf`.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    /// Messages stored and published.
    messages_sent: AtomicU64,
}

impl Metrics {
    fn observe(&self, method: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((method.to_owned(), status)).or_default() += 1;
        }
        let bucket = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, hub: &Hub) -> String {
        let mut out = String::new();
        out.push_str("# HELP kith_http_requests_total HTTP requests by method and status.\n");
        out.push_str("# TYPE kith_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((method, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "kith_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP kith_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE kith_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "kith_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "kith_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "kith_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "kith_http_request_duration_seconds_count {cumulative}");
        let stats = hub.stats();
        let gauges = [
            (
                "kith_ws_connections",
                "gauge",
                "Open WebSocket connections.",
                stats.connections.load(Ordering::Relaxed) as u64,
            ),
            (
                "kith_messages_sent_total",
                "counter",
                "Chat messages stored and published.",
                self.messages_sent.load(Ordering::Relaxed),
            ),
            (
                "kith_ws_frames_delivered_total",
                "counter",
                "Frames queued to WebSocket connections.",
                stats.frames_queued.load(Ordering::Relaxed),
            ),
            (
                "kith_ws_slow_consumer_disconnects_total",
                "counter",
                "Connections closed because they did not read fast enough.",
                stats.slow_consumer_disconnects.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// Middleware recording every request's method, status and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Standard methods only: a label per arbitrary method a client invents
    // would grow the map without bound.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str(),
        _ => "OTHER",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &method,
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
        self.metrics
            .messages_sent
            .fetch_add(created as u64, Ordering::Relaxed);
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
