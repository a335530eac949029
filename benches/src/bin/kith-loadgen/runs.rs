//! One run's figures: the message workload and the connect-only one, and
//! how they are printed.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use kith_benches::{machine_cpu_seconds, process_cpu_seconds, process_rss_bytes};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::clients::{connect_all, open_client, publish, receive};
use crate::probes::Probes;
use crate::servers::{Seeded, Server};
use crate::{Args, Failure};

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// The CPU seconds so far of each of `server`'s processes.
fn cpu_of(server: &Server) -> Vec<Option<f64>> {
    server
        .nodes
        .iter()
        .map(|n| n.pid.and_then(process_cpu_seconds))
        .collect()
}

/// The RSS of each of `server`'s processes.
fn rss_of(server: &Server) -> Vec<Option<u64>> {
    server
        .nodes
        .iter()
        .map(|n| n.pid.and_then(process_rss_bytes))
        .collect()
}

/// Each process's CPU seconds between `before` and `after`.
fn cpu_between(before: &[Option<f64>], after: &[Option<f64>]) -> Vec<Option<f64>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Some((*a)? - (*b)?))
        .collect()
}

/// The sum over the processes, if every one is known.
fn total<T: Copy + std::iter::Sum<T>>(each: &[Option<T>]) -> Option<T> {
    each.iter().copied().sum()
}

/// The machine's load average over the last minute (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One workload run against `server`; returns the figures as JSON.
pub async fn messages(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    let load_before = load_average();
    let rss_before = rss_of(server);
    let (sockets, connect_time) =
        connect_all(server, seeded, args.concurrency, args.source_addrs).await?;
    // The publisher: one connection per node (one device each), so that the
    // sends are spread over the nodes too.
    let mut publishers = Vec::with_capacity(server.nodes.len());
    for node in &server.nodes {
        let resume = seeded.resume_frame(None);
        publishers.push(open_client(node, &seeded.publisher, Ipv4Addr::LOCALHOST, resume).await?);
    }
    eprintln!(
        "[{}] {} clients connected to {} node(s) in {:.2} s",
        server.name,
        sockets.len(),
        server.nodes.len(),
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

    let probes = Probes::start(server).await?;
    let cpu_before = cpu_of(server);
    let me = std::process::id();
    let my_cpu_before = process_cpu_seconds(me);
    let machine_before = machine_cpu_seconds();
    let (publisher, published) = publish(publishers, args, seeded, &prefix).await?;
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
    let cpu_after = cpu_of(server);
    let my_cpu_after = process_cpu_seconds(me);
    let machine_after = machine_cpu_seconds();
    let rss_after = rss_of(server);

    let mut latencies: Vec<u64> = Vec::with_capacity(seeded.tokens.len() * m);
    // Deliveries that came as `change` frames (committed on another node).
    let mut latencies_change: Vec<u64> = Vec::new();
    let (mut total_frames, mut distinct, mut duplicated, mut out_of_order) =
        (0u64, 0u64, 0u64, 0u64);
    let mut changes = 0u64;
    let mut last = published.first_send;
    let mut sockets = Vec::with_capacity(results.len());
    for r in results {
        let (ws, receipts) = r?;
        sockets.push(ws);
        // Per client, across both frame kinds.
        let mut seen = vec![false; m];
        let mut max_seq = 0u64;
        for (ours, seq, at, change) in receipts {
            total_frames += 1;
            changes += u64::from(change);
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
                let micros = at.saturating_duration_since(*sent).as_micros() as u64;
                latencies.push(micros);
                if change {
                    latencies_change.push(micros);
                }
            }
        }
    }
    let elapsed = last
        .saturating_duration_since(published.first_send)
        .as_secs_f64();
    let pg = match probes {
        Some(probes) => Some(probes.finish(elapsed).await?),
        None => None,
    };
    drop(sockets);
    drop(publisher);
    latencies.sort_unstable();
    latencies_change.sort_unstable();
    // The publisher's own frames: its copy of the message, then its `ack`.
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
    // Acks come in sending order: the first `acked` messages.
    let expected: u64 = (0..published.acked)
        .map(|n| seeded.members(seeded.conversation_of_message(n)) as u64)
        .sum();
    let node_cpu = cpu_between(&cpu_before, &cpu_after);
    let cpu = total(&node_cpu);
    let my_cpu = match (my_cpu_before, my_cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_s = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let mut figures = json!({
        "server": server.name,
        "nodes": server.nodes.len(),
        "clients": seeded.tokens.len(),
        "sent": published.sent,
        "acked": published.acked,
        "errors": published.errors,
        "deliveries": total_frames,
        "deliveries_as_change": changes,
        "elapsed_s": elapsed,
        "deliveries_per_s": per_s(total_frames as f64),
        "messages_per_s": per_s(published.acked as f64),
        "latency_p50_ms": percentile(&latencies, 50.0),
        "latency_p99_ms": percentile(&latencies, 99.0),
        "latency_max_ms": percentile(&latencies, 100.0),
        "change_latency_p50_ms": percentile(&latencies_change, 50.0),
        "change_latency_p99_ms": percentile(&latencies_change, 99.0),
        "ack_latency_p50_ms": percentile(&acks, 50.0),
        "ack_latency_p99_ms": percentile(&acks, 99.0),
        "echo_latency_p50_ms": percentile(&echoes, 50.0),
        "echo_latency_p99_ms": percentile(&echoes, 99.0),
        "lost": expected.saturating_sub(distinct),
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "server_cpu_s": cpu,
        "server_cpu_pct_of_core": cpu.map(|c| 100.0 * per_s(c)),
        "server_cpu_us_per_delivery": cpu.map(|c| if total_frames > 0 { 1e6 * c / total_frames as f64 } else { 0.0 }),
        "node_cpu_s": node_cpu,
        "server_rss_bytes": total(&rss_after),
        "node_rss_bytes": rss_after,
        "server_rss_before_connect_bytes": total(&rss_before),
        "loadgen_cpu_s": my_cpu,
        "loadavg_1m_before": load_before,
        "machine_busy_cpu_s": match (machine_before, machine_after) {
            (Some(a), Some(b)) => Some(b.0 - a.0),
            _ => None,
        },
        "machine_softirq_cpu_s": match (machine_before, machine_after) {
            (Some(a), Some(b)) => Some(b.1 - a.1),
            _ => None,
        },
        "connects_per_s": seeded.tokens.len() as f64 / connect_time.as_secs_f64(),
    });
    if let (Some(Value::Object(pg)), Some(f)) = (pg, figures.as_object_mut()) {
        f.extend(pg);
    }
    if let Some(f) = figures.as_object_mut() {
        // What else kept the cores busy meanwhile: the machine's busy time
        // minus the servers', the loadgen's and (when known) PostgreSQL's
        // (about 0 on a quiet machine: the softirq time of our loopback
        // traffic is charged to our processes too).
        let get = |k: &str| f.get(k).and_then(Value::as_f64);
        let ours = [
            get("server_cpu_s"),
            get("loadgen_cpu_s"),
            get("postgres_cpu_s").or(Some(0.0)),
        ];
        if let (Some(machine), Some(ours)) = (
            get("machine_busy_cpu_s"),
            ours.into_iter().sum::<Option<f64>>(),
        ) {
            f.insert("other_cpu_s".into(), json!(machine - ours));
        }
    }
    Ok(figures)
}

/// Connect-only run: connects+auths per second and RSS per idle connection
/// (summed over the nodes).
pub async fn connect_only(args: &Args, server: &Server, seeded: &Seeded) -> Result<Value, Failure> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_of(server);
    let cpu_before = cpu_of(server);
    let (sockets, elapsed) =
        connect_all(server, seeded, args.concurrency, args.source_addrs).await?;
    let cpu_after = cpu_of(server);
    let n = sockets.len();
    // Keep answering pings while the server settles.
    let (stop_tx, stop_rx) = watch::channel(false);
    let idle: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, 0, 0, "".into(), stop_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = rss_of(server);
    let _ = stop_tx.send(true);
    drop(futures::future::join_all(idle).await);
    let (rss_before, rss_after_total) = (total(&rss_before), total(&rss_after));
    let per = match (rss_before, rss_after_total) {
        (Some(a), Some(b)) => Some((b as f64 - a as f64) / n.max(1) as f64),
        _ => None,
    };
    let cpu = total(&cpu_between(&cpu_before, &cpu_after));
    Ok(json!({
        "server": server.name,
        "nodes": server.nodes.len(),
        "connections": n,
        "concurrency": args.concurrency,
        "connect_s": elapsed.as_secs_f64(),
        "connects_per_s": n as f64 / elapsed.as_secs_f64(),
        "server_cpu_s": cpu,
        "server_cpu_us_per_connection": cpu.map(|c| 1e6 * c / n.max(1) as f64),
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after_total,
        "node_rss_after_bytes": rss_after,
        "server_rss_per_connection_bytes": per,
    }))
}

/// Each figure of `kith` divided by the baseline's (identity counts aside).
pub fn ratio(kith: &Value, baseline: Option<&Value>) -> serde_json::Map<String, Value> {
    let mut ratio = serde_json::Map::new();
    if let (Some(k), Some(b)) = (kith.as_object(), baseline.and_then(Value::as_object)) {
        for (key, kv) in k {
            if let (Some(x), Some(y)) = (kv.as_f64(), b.get(key).and_then(Value::as_f64)) {
                if y != 0.0 && key != "clients" && key != "connections" && key != "nodes" {
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

/// The median of every numeric figure of `runs` (those of one node count).
fn medians<'a>(runs: impl Iterator<Item = &'a Value>) -> serde_json::Map<String, Value> {
    let runs: Vec<&serde_json::Map<String, Value>> = runs.filter_map(Value::as_object).collect();
    let mut medians = serde_json::Map::new();
    let Some(first) = runs.first() else {
        return medians;
    };
    for (key, value) in first.iter() {
        if !value.is_number() {
            continue;
        }
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.get(key).and_then(Value::as_f64))
            .filter(|v| !v.is_nan())
            .collect();
        values.sort_by(f64::total_cmp);
        // The mean of the middle two for an even count.
        let n = values.len();
        if n == 0 {
            continue;
        }
        let median = if n % 2 == 0 {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        } else {
            values[n / 2]
        };
        medians.insert(key.clone(), json!(median));
    }
    medians
}

/// With several node counts: each figure's median per count, and its ratio to the first count's, as a table and one JSON
/// line.
pub fn print_nodes_comparison(counts: &[usize], results: &[(usize, Value)]) {
    let by_count: Vec<(usize, serde_json::Map<String, Value>)> = counts
        .iter()
        .map(|&n| {
            let runs = results.iter().filter(|(c, _)| *c == n).map(|(_, v)| v);
            (n, medians(runs))
        })
        .collect();
    let Some((first_count, first)) = by_count.first() else {
        return;
    };
    let runs_of = |n: usize| results.iter().filter(|(c, _)| *c == n).count();
    print!("{:<34}", "median over runs");
    for (n, _) in &by_count {
        print!(" {:>16}", format!("{n} node(s) ×{}", runs_of(*n)));
    }
    for (n, _) in by_count.iter().skip(1) {
        print!(" {:>10}", format!("{n}/{first_count}"));
    }
    println!();
    let mut ratios = serde_json::Map::new();
    let keys: std::collections::BTreeSet<&String> =
        by_count.iter().flat_map(|(_, m)| m.keys()).collect();
    for key in keys {
        print!("{key:<34}");
        for (_, m) in &by_count {
            match m.get(key).and_then(Value::as_f64) {
                Some(v) => print!(" {v:>16.3}"),
                None => print!(" {:>16}", "-"),
            }
        }
        for (n, m) in by_count.iter().skip(1) {
            let ratio = match (
                m.get(key).and_then(Value::as_f64),
                first.get(key).and_then(Value::as_f64),
            ) {
                // Not of figures about 0 (`other_cpu_s` on a quiet machine).
                (Some(x), Some(y)) if y.abs() > 1e-6 => Some(x / y),
                _ => None,
            };
            match ratio {
                Some(r) => {
                    print!(" {r:>10.3}");
                    let entry = ratios
                        .entry(n.to_string())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Some(o) = entry.as_object_mut() {
                        o.insert(key.clone(), json!(r));
                    }
                }
                None => print!(" {:>10}", "-"),
            }
        }
        println!();
    }
    let medians: serde_json::Map<String, Value> = by_count
        .iter()
        .map(|(n, m)| (n.to_string(), Value::Object(m.clone())))
        .collect();
    println!(
        "{}",
        json!({ "median_by_nodes": medians, "ratio_to_first_count": { "first": first_count, "ratios": ratios } })
    );
}
