//! The clients: connecting and authenticating, the receivers that time
//! every message they receive (a `message_created` frame, or a `change`
//! frame of a message committed on another node), and the publisher.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, SelectAll, SplitSink};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::Message;

use crate::servers::{Node, Seeded, Server};
use crate::{Args, Failure, Mode, Ws};

/// The source address of connection `i`.
fn source_ip(i: usize, spread: u8) -> Ipv4Addr {
    let n = spread.max(1) as usize;
    Ipv4Addr::new(127, 0, 0, 1 + (i % n) as u8)
}

/// Opens one authenticated connection to `node`, sends `resume` (the frame
/// given) and waits for `unread`.
pub async fn open_client(
    node: &Node,
    token: &str,
    source: Ipv4Addr,
    resume: String,
) -> Result<Ws, Failure> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(node.addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("{}?access_token={token}", node.url);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    ws.send(Message::text(resume)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"type\":\"unread\"") => return Ok(ws),
            // A conversation that could not be resumed would be served only
            // from the first version the node hears of.
            Some(Ok(Message::Text(t)))
                if t.starts_with("{\"type\":\"resume_complete\"")
                    && !t.contains("\"failed\":{}") =>
            {
                return Err(format!("resume failed: {t}").into())
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended before unread: {other:?}").into()),
        }
    }
}

/// Opens one connection per client of `seeded`, `concurrency` at a time,
/// client `i` to node `i % nodes` with the `resume` of its conversation;
/// returns them in the clients' order.
pub async fn connect_all(
    server: &Server,
    seeded: &Seeded,
    concurrency: usize,
    spread: u8,
) -> Result<(Vec<Ws>, Duration), Failure> {
    let started = Instant::now();
    let tokens = &seeded.tokens;
    let mut results: Vec<(usize, Result<Ws, Failure>)> =
        futures::stream::iter(tokens.iter().enumerate())
            .map(|(i, t)| async move {
                let resume = seeded.resume_frame(Some(seeded.conversation_of_client(i)));
                let ws = open_client(server.node_of(i), t, source_ip(i, spread), resume).await;
                (i, ws)
            })
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

/// One receipt: our sequence number, the server's `seq`, the receive time,
/// and whether it came as a `change` frame (committed on another node).
pub type Receipt = (u32, u64, Instant, bool);

/// Reads a frame carrying one of our messages: `message_created`, or a
/// `change` whose `change.change` is `message` (how a message committed on
/// another node reaches this node's clients). Returns our sequence number
/// from the client_id, the server's message `seq`, and whether it was a
/// `change`.
pub fn parse_message(text: &str, prefix: &str) -> Option<(u32, u64, bool)> {
    let change = if text.starts_with(r#"{"type":"message_created""#) {
        false
    } else if text.starts_with(r#"{"type":"change""#) {
        // `{"type":"change","conversation_id":"…","change":{"change":"message",…`
        let head = text.get(..160).unwrap_or(text);
        if !head.contains(r#""change":{"change":"message""#) {
            return None;
        }
        true
    } else {
        return None;
    };
    // The message's own `seq` is the frame's first (a member change's
    // `last_read_seq` does not match the quoted key).
    let after = |key: &str| text.find(key).map(|i| &text[i + key.len()..]);
    let seq_text = after("\"seq\":")?;
    let seq: u64 = seq_text
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((our_number(text, prefix)?, seq, change))
}

/// Our sequence number in a frame's `client_id` (`"client_id":"{prefix}N"`).
fn our_number(text: &str, prefix: &str) -> Option<u32> {
    let key = format!("\"client_id\":\"{prefix}");
    let at = text.find(&key)? + key.len();
    text[at..].split('"').next()?.parse().ok()
}

/// Records the frames of our `m` messages (either kind, see
/// [`parse_message`]) until `expect` distinct ones have arrived or `stop`
/// changes.
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
                    if let Some((ours, seq, change)) = parse_message(&t, &prefix) {
                        receipts.push((ours, seq, now, change));
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
    /// When each message's own `message_created` reached the publisher's
    /// connection that sent it (the publisher is a member of every group):
    /// the frame the server writes right before the `ack` on that
    /// connection.
    pub echo_times: Vec<Option<Instant>>,
}

/// The publisher's connections, one per node, kept open until the run's
/// figures are taken.
pub struct Publisher {
    _sinks: Vec<SplitSink<Ws, Message>>,
    _streams: Tagged,
}

/// The publisher's connections' frames, tagged with the connection's index;
/// `None` when the connection ended.
type Tagged = SelectAll<BoxStream<'static, (usize, Option<WsResult>)>>;
type WsResult = Result<Message, tokio_tungstenite::tungstenite::Error>;

/// Which of `connections` sends message `n`: the conversations' rounds
/// rotate over the connections, so that each conversation gets messages
/// through every node (message `n` is round `n / groups` of conversation
/// `n % groups`).
pub fn sender_of(n: usize, groups: usize, connections: usize) -> usize {
    let groups = groups.max(1);
    (n % groups + n / groups) % connections.max(1)
}

/// Sends `args.messages` messages, round robin over the conversations and
/// spread over the publisher's connections (one per node, see
/// [`sender_of`]), paced as `args.mode` says.
pub async fn publish(
    connections: Vec<Ws>,
    args: &Args,
    seeded: &Seeded,
    prefix: &str,
) -> Result<(Publisher, Published), Failure> {
    let conversation = |n: usize| {
        seeded
            .conversations
            .get(seeded.conversation_of_message(n))
            .map_or("0", String::as_str)
    };
    let count = connections.len().max(1);
    let groups = seeded.conversations.len();
    let mut sinks = Vec::with_capacity(count);
    let mut streams: Tagged = SelectAll::new();
    for (k, ws) in connections.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        sinks.push(sink);
        let end = futures::stream::once(async move { (k, None) });
        streams.push(stream.map(move |m| (k, Some(m))).chain(end).boxed());
    }
    if sinks.is_empty() {
        return Err("no publisher connection".into());
    }
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
            sinks[sender_of(sent, groups, count)]
                .send(Message::text(frame))
                .await?;
            sent += 1;
            continue;
        }
        tokio::select! {
            _ = ticks.tick(), if paced && may_send => {
                let frame = send_frame(conversation(sent), prefix, sent, &body);
                send_times[sent] = Some(Instant::now());
                sinks[sender_of(sent, groups, count)].send(Message::text(frame)).await?;
                sent += 1;
            }
            msg = streams.next() => match msg {
                Some((k, Some(Ok(Message::Text(t))))) => {
                    let now = Instant::now();
                    if t.starts_with("{\"type\":\"ack\"") {
                        acked += 1;
                        if let Some(at) = our_number(&t, prefix).and_then(|n| ack_times.get_mut(n as usize)) {
                            at.get_or_insert(now);
                        }
                    } else if let Some((n, _, _)) = parse_message(&t, prefix) {
                        // Only the sending connection's copy: the others
                        // are on other nodes.
                        if sender_of(n as usize, groups, count) == k {
                            if let Some(at) = echo_times.get_mut(n as usize) {
                                at.get_or_insert(now);
                            }
                        }
                    } else if t.starts_with("{\"type\":\"error\"") {
                        errors += 1;
                        if errors_shown < 5 {
                            errors_shown += 1;
                            eprintln!("publisher got an error: {t}");
                        }
                    }
                }
                Some((_, Some(Ok(_)))) => {}
                Some((k, other)) => {
                    return Err(format!("publisher connection {k} ended: {other:?}").into())
                }
                None => return Err("publisher connections ended".into()),
            },
            _ = tokio::time::sleep_until(stop_sending), if may_send => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    Ok((
        Publisher {
            _sinks: sinks,
            _streams: streams,
        },
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

#[cfg(test)]
mod tests {
    use super::{parse_message, sender_of};

    #[test]
    fn a_message_counts_as_message_created_or_as_a_message_change() {
        let created = r#"{"type":"message_created","message":{"id":"555","conversation_id":"12","seq":42,"version":57,"sender":"1001","client_id":"lg1-17","body":"x","reply_to":null,"reactions":[],"created_at":"2026-11-21T15:55:23.123Z","edited_at":null,"deleted_at":null}}"#;
        assert_eq!(parse_message(created, "lg1-"), Some((17, 42, false)));
        let change = r#"{"type":"change","conversation_id":"12","change":{"change":"message","message":{"id":"555","conversation_id":"12","seq":43,"version":58,"sender":"1001","client_id":"lg1-18","body":"x","reply_to":null,"reactions":[],"created_at":"2026-11-21T15:55:23.123Z","edited_at":null,"deleted_at":null}}}"#;
        assert_eq!(parse_message(change, "lg1-"), Some((18, 43, true)));
        let member = r#"{"type":"change","conversation_id":"12","change":{"change":"member","member":{"user_id":"1003","role":"member","joined_at":"2026-11-21T15:56:00Z","last_read_seq":40},"left":true,"version":58}}"#;
        assert_eq!(parse_message(member, "lg1-"), None);
        // Another run's messages do not count.
        assert_eq!(parse_message(created, "lg2-"), None);
    }

    #[test]
    fn every_group_gets_messages_through_every_node() {
        // One group: the nodes in turn.
        let one: Vec<usize> = (0..4).map(|n| sender_of(n, 1, 2)).collect();
        assert_eq!(one, [0, 1, 0, 1]);
        // 40 groups on 2 nodes: group 0's rounds (messages 0, 40, 80...)
        // alternate nodes, though 40 is even.
        let group0: Vec<usize> = (0..4).map(|r| sender_of(r * 40, 40, 2)).collect();
        assert_eq!(group0, [0, 1, 0, 1]);
        assert_eq!(sender_of(7, 40, 1), 0);
    }
}
