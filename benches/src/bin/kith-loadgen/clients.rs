//! The clients: connecting and authenticating, the receivers that time
//! every `message_created`, and the publisher.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::Message;

use crate::servers::{Seeded, Server};
use crate::{Args, Failure, Mode, Ws};

const RESUME: &str = r#"{"type":"resume","conversations":{}}"#;

/// The source address of connection `i`.
fn source_ip(i: usize, spread: u8) -> Ipv4Addr {
    let n = spread.max(1) as usize;
    Ipv4Addr::new(127, 0, 0, 1 + (i % n) as u8)
}

/// Opens one authenticated connection, sends `resume` and waits for `unread`.
pub async fn open_client(server: &Server, token: &str, source: Ipv4Addr) -> Result<Ws, Failure> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(server.addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("{}?access_token={token}", server.url);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    ws.send(Message::text(RESUME)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"type\":\"unread\"") => return Ok(ws),
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended before unread: {other:?}").into()),
        }
    }
}

/// Opens one connection per token, `concurrency` at a time; returns them in
/// the tokens' order.
pub async fn connect_all(
    server: &Server,
    tokens: &[String],
    concurrency: usize,
    spread: u8,
) -> Result<(Vec<Ws>, Duration), Failure> {
    let started = Instant::now();
    let mut results: Vec<(usize, Result<Ws, Failure>)> =
        futures::stream::iter(tokens.iter().enumerate())
            .map(|(i, t)| async move { (i, open_client(server, t, source_ip(i, spread)).await) })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let elapsed = started.elapsed();
    // In token order: socket `i` is client `i` (whose group says which
    // messages it should receive).
    results.sort_unstable_by_key(|(i, _)| *i);
    let mut sockets = Vec::with_capacity(results.len());
    let mut failures = 0usize;
    let mut first_error = None;
    for (_, r) in results {
        match r {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(format!(
            "{failures} of {} connections failed; first: {e}",
            tokens.len()
        )
        .into());
    }
    Ok((sockets, elapsed))
}

/// One receipt: our sequence number, the server's `seq`, the receive time.
pub type Receipt = (u32, u64, Instant);

/// Reads `"message_created"` frames: returns (our sequence number from the
/// client_id, the server's message `seq`).
fn parse_created(text: &str, prefix: &str) -> Option<(u32, u64)> {
    let head = text.get(..40).unwrap_or(text);
    if !head.contains("\"message_created\"") {
        return None;
    }
    let after = |key: &str| text.find(key).map(|i| &text[i + key.len()..]);
    let seq_text = after("\"seq\":")?;
    let seq: u64 = seq_text
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((our_number(text, prefix)?, seq))
}

/// Our sequence number in a frame's `client_id` (`"client_id":"{prefix}N"`).
fn our_number(text: &str, prefix: &str) -> Option<u32> {
    let key = format!("\"client_id\":\"{prefix}");
    let at = text.find(&key)? + key.len();
    text[at..].split('"').next()?.parse().ok()
}

/// Records the `message_created` frames of our `m` messages until `expect`
/// distinct ones have arrived or `stop` changes.
pub async fn receive(
    mut ws: Ws,
    m: usize,
    expect: usize,
    prefix: Arc<str>,
    mut stop: watch::Receiver<bool>,
) -> (Ws, Vec<Receipt>) {
    let mut receipts = Vec::with_capacity(expect);
    let mut seen = vec![false; m];
    let mut distinct = 0;
    while distinct < expect {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    if let Some((ours, seq)) = parse_created(&t, &prefix) {
                        receipts.push((ours, seq, now));
                        if let Some(s) = seen.get_mut(ours as usize) {
                            if !*s {
                                *s = true;
                                distinct += 1;
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    (ws, receipts)
}

/// A `send` frame; `body` is plain ASCII, `prefix` visible ASCII.
fn send_frame(conversation: &str, prefix: &str, seq: usize, body: &str) -> String {
    format!(
        r#"{{"type":"send","conversation_id":"{conversation}","client_id":"{prefix}{seq}","body":"{body}"}}"#
    )
}

/// What the publisher did.
pub struct Published {
    /// When each message was sent.
    pub send_times: Vec<Option<Instant>>,
    /// When the first was.
    pub first_send: Instant,
    /// Messages sent.
    pub sent: usize,
    /// Messages acknowledged.
    pub acked: usize,
    /// Messages answered with an error.
    pub errors: usize,
    /// When each message's `ack` reached the publisher.
    pub ack_times: Vec<Option<Instant>>,
    /// When each message's own `message_created` reached the publisher (a
    /// member of every group): the frame the server writes right after the
    /// `ack` on the same connection.
    pub echo_times: Vec<Option<Instant>>,
}

/// Sends `args.messages` messages, round robin over the conversations, paced
/// as `args.mode` says.
pub async fn publish(
    ws: Ws,
    args: &Args,
    seeded: &Seeded,
    prefix: &str,
) -> Result<(Ws, Published), Failure> {
    let conversation = |n: usize| {
        seeded
            .conversations
            .get(seeded.conversation_of_message(n))
            .map_or("0", String::as_str)
    };
    let (mut sink, mut stream) = ws.split();
    let m = args.messages;
    let body: String = "x".repeat(args.body_bytes.max(1));
    let mut send_times = vec![None; m];
    let mut ack_times = vec![None; m];
    let mut echo_times = vec![None; m];
    let first_send = Instant::now();
    let stop_sending = TokioInstant::now() + Duration::from_secs(args.max_seconds);
    let (mut sent, mut acked, mut errors) = (0usize, 0usize, 0usize);
    let period = Duration::from_secs_f64(1.0 / args.rate().max(0.001));
    let paced = matches!(args.mode, Mode::Rate | Mode::Light);
    let mut ticks = tokio::time::interval(period);
    let window = args.window.max(1);
    let mut errors_shown = 0;
    loop {
        let answered = acked + errors;
        let may_send = sent < m && TokioInstant::now() < stop_sending;
        if !may_send && answered >= sent {
            break;
        }
        if TokioInstant::now() > stop_sending + Duration::from_secs(args.drain_seconds) {
            break;
        }
        let want_send = match args.mode {
            Mode::Throughput => may_send && sent - answered < window,
            Mode::Rate | Mode::Light => false,
        };
        if want_send {
            let frame = send_frame(conversation(sent), prefix, sent, &body);
            send_times[sent] = Some(Instant::now());
            sink.send(Message::text(frame)).await?;
            sent += 1;
            continue;
        }
        tokio::select! {
            _ = ticks.tick(), if paced && may_send => {
                let frame = send_frame(conversation(sent), prefix, sent, &body);
                send_times[sent] = Some(Instant::now());
                sink.send(Message::text(frame)).await?;
                sent += 1;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    if t.starts_with("{\"type\":\"ack\"") {
                        acked += 1;
                        if let Some(at) = our_number(&t, prefix).and_then(|n| ack_times.get_mut(n as usize)) {
                            at.get_or_insert(now);
                        }
                    } else if let Some((n, _)) = parse_created(&t, prefix) {
                        if let Some(at) = echo_times.get_mut(n as usize) {
                            at.get_or_insert(now);
                        }
                    } else if t.starts_with("{\"type\":\"error\"") {
                        errors += 1;
                        if errors_shown < 5 {
                            errors_shown += 1;
                            eprintln!("publisher got an error: {t}");
                        }
                    }
                }
                Some(Ok(_)) => {}
                other => return Err(format!("publisher connection ended: {other:?}").into()),
            },
            _ = tokio::time::sleep_until(stop_sending), if may_send => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let ws = sink.reunite(stream).map_err(|_| "reunite failed")?;
    Ok((
        ws,
        Published {
            send_times,
            first_send,
            sent,
            acked,
            errors,
            ack_times,
            echo_times,
        },
    ))
}
