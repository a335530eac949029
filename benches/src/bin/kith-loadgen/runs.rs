//! One run's figures: the message workload and the connect-only one, and
//! how they are printed.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use kith_benches::{process_cpu_seconds, process_rss_bytes};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::clients::{connect_all, open_client, publish, receive};
use crate::servers::{Seeded, Server};
use crate::{Args, Failure};

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// One workload run against `server`; returns the figures as JSON.
pub async fn messages(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    let rss_before = server.pid.and_then(process_rss_bytes);
    let (sockets, connect_time) =
        connect_all(server, &seeded.tokens, args.concurrency, args.source_addrs).await?;
    let publisher = open_client(server, &seeded.publisher, Ipv4Addr::LOCALHOST).await?;
    eprintln!(
        "[{}] {} clients connected in {:.2} s",
        server.name,
        sockets.len(),
        connect_time.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let prefix: Arc<str> = format!("lg{stamp}-").into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let m = args.messages;
    let receivers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let expect = seeded.expected_by(i, m);
            tokio::spawn(receive(ws, m, expect, prefix.clone(), stop_rx.clone()))
        })
        .collect();

    let cpu_before = server.pid.and_then(process_cpu_seconds);
    let me = std::process::id();
    let my_cpu_before = process_cpu_seconds(me);
    let (publisher, published) = publish(publisher, args, seeded, &prefix).await?;
    let all = futures::future::join_all(receivers);
    tokio::pin!(all);
    let drain = tokio::time::sleep(Duration::from_secs(args.drain_seconds));
    let results = tokio::select! {
        r = &mut all => r,
        _ = drain => {
            let _ = stop_tx.send(true);
            all.await
        }
    };
    let cpu_after = server.pid.and_then(process_cpu_seconds);
    let my_cpu_after = process_cpu_seconds(me);
    let rss_after = server.pid.and_then(process_rss_bytes);

    let mut latencies: Vec<u64> = Vec::with_capacity(seeded.tokens.len() * m);
    let (mut total, mut distinct, mut duplicated, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut last = published.first_send;
    let mut sockets = Vec::with_capacity(results.len());
    for r in results {
        let (ws, receipts) = r?;
        sockets.push(ws);
        let mut seen = vec![false; m];
        let mut max_seq = 0u64;
        for (ours, seq, at) in receipts {
            total += 1;
            last = last.max(at);
            let Some(s) = seen.get_mut(ours as usize) else {
                continue;
            };
            if *s {
                duplicated += 1;
                continue;
            }
            *s = true;
            distinct += 1;
            if seq < max_seq {
                out_of_order += 1;
            }
            max_seq = max_seq.max(seq);
            if let Some(Some(sent)) = published.send_times.get(ours as usize) {
                latencies.push(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    drop(sockets);
    drop(publisher);
    latencies.sort_unstable();
    // The publisher's own frames: its `ack`, then its copy of the message.
    let since_send = |times: &[Option<std::time::Instant>]| {
        let mut micros: Vec<u64> = times
            .iter()
            .zip(&published.send_times)
            .filter_map(|(at, sent)| Some(at.as_ref()?.saturating_duration_since(*sent.as_ref()?)))
            .map(|d| d.as_micros() as u64)
            .collect();
        micros.sort_unstable();
        micros
    };
    let acks = since_send(&published.ack_times);
    let echoes = since_send(&published.echo_times);
    let elapsed = last
        .saturating_duration_since(published.first_send)
        .as_secs_f64();
    // Acks come in sending order: the first `acked` messages.
    let expected: u64 = (0..published.acked)
        .map(|n| seeded.members(seeded.conversation_of_message(n)) as u64)
        .sum();
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let my_cpu = match (my_cpu_before, my_cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(json!({
        "server": server.name,
        "clients": seeded.tokens.len(),
        "sent": published.sent,
        "acked": published.acked,
        "errors": published.errors,
        "deliveries": total,
        "elapsed_s": elapsed,
        "deliveries_per_s": if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 },
        "messages_per_s": if elapsed > 0.0 { published.acked as f64 / elapsed } else { 0.0 },
        "latency_p50_ms": percentile(&latencies, 50.0),
        "latency_p99_ms": percentile(&latencies, 99.0),
        "latency_max_ms": percentile(&latencies, 100.0),
        "ack_latency_p50_ms": percentile(&acks, 50.0),
        "ack_latency_p99_ms": percentile(&acks, 99.0),
        "echo_latency_p50_ms": percentile(&echoes, 50.0),
        "echo_latency_p99_ms": percentile(&echoes, 99.0),
        "lost": expected.saturating_sub(distinct),
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "server_cpu_s": cpu,
        "server_cpu_pct_of_core": cpu.map(|c| if elapsed > 0.0 { 100.0 * c / elapsed } else { 0.0 }),
        "server_rss_bytes": rss_after,
        "server_rss_before_connect_bytes": rss_before,
        "loadgen_cpu_s": my_cpu,
        "connects_per_s": seeded.tokens.len() as f64 / connect_time.as_secs_f64(),
    }))
}

/// Connect-only run: connects+auths per second and RSS per idle connection.
pub async fn connect_only(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.pid.and_then(process_rss_bytes);
    let cpu_before = server.pid.and_then(process_cpu_seconds);
    let (sockets, elapsed) =
        connect_all(server, &seeded.tokens, args.concurrency, args.source_addrs).await?;
    let cpu_after = server.pid.and_then(process_cpu_seconds);
    let n = sockets.len();
    // Keep answering pings while the server settles.
    let (stop_tx, stop_rx) = watch::channel(false);
    let idle: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, 0, 0, "".into(), stop_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = server.pid.and_then(process_rss_bytes);
    let _ = stop_tx.send(true);
    drop(futures::future::join_all(idle).await);
    let per = match (rss_before, rss_after) {
        (Some(a), Some(b)) => Some((b as f64 - a as f64) / n.max(1) as f64),
        _ => None,
    };
    Ok(json!({
        "server": server.name,
        "connections": n,
        "concurrency": args.concurrency,
        "connect_s": elapsed.as_secs_f64(),
        "connects_per_s": n as f64 / elapsed.as_secs_f64(),
        "server_cpu_s": match (cpu_before, cpu_after) { (Some(a), Some(b)) => Some(b - a), _ => None },
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after,
        "server_rss_per_connection_bytes": per,
    }))
}

/// Each figure of `kith` divided by the baseline's (identity counts aside).
pub fn ratio(kith: &Value, baseline: Option<&Value>) -> serde_json::Map<String, Value> {
    let mut ratio = serde_json::Map::new();
    if let (Some(k), Some(b)) = (kith.as_object(), baseline.and_then(Value::as_object)) {
        for (key, kv) in k {
            if let (Some(x), Some(y)) = (kv.as_f64(), b.get(key).and_then(Value::as_f64)) {
                if y != 0.0 && key != "clients" && key != "connections" {
                    ratio.insert(key.clone(), json!(x / y));
                }
            }
        }
    }
    ratio
}

/// The median of each ratio over the repeats.
pub fn print_medians(ratios: &[serde_json::Map<String, Value>]) {
    let Some(first) = ratios.first() else {
        return;
    };
    let mut medians = serde_json::Map::new();
    for key in first.keys() {
        let mut values: Vec<f64> = ratios
            .iter()
            .filter_map(|r| r.get(key).and_then(Value::as_f64))
            .collect();
        values.sort_by(f64::total_cmp);
        if let Some(m) = values.get(values.len() / 2) {
            medians.insert(key.clone(), json!(m));
        }
    }
    println!("{}", json!({ "median_ratio_to_baseline": medians }));
}

/// Prints one run's figures, the baseline's and their ratios as a table.
pub fn print_table(kith: &Value, baseline: Option<&Value>, ratio: &serde_json::Map<String, Value>) {
    let show = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    println!(
        "{:<34} {:>16} {:>16} {:>10}",
        "figure", "kith", "baseline", "ratio"
    );
    if let Some(k) = kith.as_object() {
        for (key, kv) in k {
            if key == "server" {
                continue;
            }
            println!(
                "{:<34} {:>16} {:>16} {:>10}",
                key,
                show(Some(kv)),
                show(baseline.and_then(|b| b.get(key))),
                show(ratio.get(key)),
            );
        }
    }
}
