//! The bare broadcaster: the baseline Kith is compared with.
//!
//! A WebSocket server with no authentication and no storage: `resume` is
//! answered with an empty `unread`; a `send` is turned into one
//! `message_created` frame, built once and shared by the queue of every
//! connection in the conversation, and acknowledged. The token in the URL
//! (`?access_token=`) names the conversation: `3.17` is client 17 of
//! conversation 3; [`PUBLISHER`] is in every conversation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::Failure;

/// The publisher's token: a member of every conversation.
pub const PUBLISHER: &str = "all.publisher";

/// Connections by id: their conversation (`None`: all) and queue.
type Registry = Arc<RwLock<HashMap<u64, (Option<u64>, mpsc::Sender<Message>)>>>;

/// Serves on `addr` until the process is killed.
pub async fn serve(addr: SocketAddr) -> Result<(), Failure> {
    let listener = TcpListener::bind(addr).await?;
    let registry: Registry = Arc::new(RwLock::new(HashMap::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        // As kith-server does.
        stream.set_nodelay(true)?;
        next_id += 1;
        let (registry, seq, id) = (registry.clone(), seq.clone(), next_id);
        tokio::spawn(async move {
            let _ = connection(stream, id, registry, seq).await;
        });
    }
}

/// The conversation a token names (`None` for the publisher's).
fn conversation_of(token: &str) -> Option<u64> {
    token.split_once('.')?.0.parse().ok()
}

async fn connection(
    stream: TcpStream,
    id: u64,
    registry: Registry,
    seq: Arc<AtomicU64>,
) -> Result<(), Failure> {
    // The same buffer sizes as kith-ws (`WsConfig` defaults).
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let mut conversation = None;
    // The error type is tungstenite's `Callback` signature, not ours.
    #[allow(clippy::result_large_err)]
    let read_token = |request: &Request, response: Response| {
        conversation = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
            .and_then(conversation_of);
        Ok(response)
    };
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, read_token, Some(config)).await?;
    let (mut sink, mut stream) = ws.split();
    // The same queue length as Kith's hub (`queue_len` = 256).
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("resume") => {
                if let Ok(mut r) = registry.write() {
                    r.insert(id, (conversation, tx.clone()));
                }
                let unread = r#"{"type":"unread","total":0,"conversations":[]}"#;
                if tx.send(Message::text(unread)).await.is_err() {
                    break;
                }
            }
            Some("send") => {
                let s = seq.fetch_add(1, Ordering::Relaxed) + 1;
                let client_id = frame["client_id"].clone();
                let target = frame["conversation_id"]
                    .as_str()
                    .and_then(|c| c.parse().ok());
                let conversation = frame["conversation_id"].clone();
                // Field order as Kith's (`type` first); strings JSON-escaped.
                let created = format!(
                    concat!(
                        r#"{{"type":"message_created","message":{{"id":"{id}","#,
                        r#""conversation_id":{conversation},"seq":{s},"version":{s},"#,
                        r#""sender":"1","client_id":{client_id},"body":{body},"#,
                        r#""reply_to":null,"reactions":[],"#,
                        r#""created_at":"2026-11-21T15:55:23.123Z","#,
                        r#""edited_at":null,"deleted_at":null}}}}"#
                    ),
                    id = 1_000_000 + s,
                    conversation = conversation,
                    s = s,
                    client_id = client_id,
                    body = frame["body"],
                );
                // Serialised once; every queue gets a reference-counted clone.
                let shared = Message::text(created);
                let mut slow = Vec::new();
                if let Ok(r) = registry.read() {
                    for (cid, (member_of, q)) in r.iter() {
                        if member_of.is_some() && *member_of != target {
                            continue;
                        }
                        if q.try_send(shared.clone()).is_err() {
                            slow.push(*cid);
                        }
                    }
                }
                if !slow.is_empty() {
                    // Slow consumers are dropped, as Kith does (4008).
                    if let Ok(mut r) = registry.write() {
                        for cid in slow {
                            r.remove(&cid);
                        }
                    }
                }
                let ack = format!(
                    r#"{{"type":"ack","client_id":{client_id},"conversation_id":{conversation},"message_id":"{id}","seq":{s},"version":{s}}}"#,
                    id = 1_000_000 + s,
                );
                if tx.send(Message::text(ack)).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    if let Ok(mut r) = registry.write() {
        r.remove(&id);
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}
