//! A minimal WebSocket client of kith-server: connects with a session
//! token, resumes, sends one message to a conversation and prints every
//! frame it receives until Ctrl-C.
//!
//! ```text
//! cargo run -p kith-server --example ws_client -- <token> <conversation_id> [message]
//! ```
//!
//! The server is `ws://127.0.0.1:8080/api/v1/ws` unless `KITH_WS_URL` says
//! otherwise. The protocol is specified in `docs/PROTOCOL.md`.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(token), Some(conversation)) = (args.first(), args.get(1)) else {
        eprintln!("usage: ws_client <token> <conversation_id> [message]");
        return ExitCode::from(2);
    };
    let text = args
        .get(2)
        .map_or("Hello over the WebSocket!", String::as_str);
    match run(token, conversation, text).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws_client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(token: &str, conversation: &str, text: &str) -> Result<(), Error> {
    let base =
        std::env::var("KITH_WS_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/api/v1/ws".to_owned());
    let url = format!("{base}?access_token={token}");
    let (mut socket, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(format!(
                "the server refused the handshake: {} {body}",
                response.status()
            )
            .into());
        }
        Err(e) => return Err(format!("cannot connect to {base}: {e}").into()),
    };
    eprintln!("connected to {base}; Ctrl-C to stop");

    // The first frame: resume (no conversations known yet).
    socket
        .send(Message::text(
            json!({"type": "resume", "conversations": {}}).to_string(),
        ))
        .await?;
    // A message; the client_id makes a retry safe (it is never stored twice).
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let send = json!({
        "type": "send",
        "conversation_id": conversation,
        "client_id": format!("ws-client-{millis}"),
        "body": text,
    });
    socket.send(Message::text(send.to_string())).await?;

    loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(frame))) => println!("{frame}"),
                Some(Ok(Message::Close(close))) => {
                    match close {
                        Some(close) => eprintln!("closed by the server: {} {}", u16::from(close.code), close.reason),
                        None => eprintln!("closed by the server"),
                    }
                    return Ok(());
                }
                // Pings are answered by the library as it reads.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                socket.close(None).await?;
                return Ok(());
            }
        }
    }
}
