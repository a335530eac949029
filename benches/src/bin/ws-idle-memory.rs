//! Measures the server-side memory of idle authenticated WebSocket
//! connections.
//!
//! The process starts a Kith WebSocket server (kith-ws over an in-memory
//! kith-sqlite) on 127.0.0.1, creates N users with sessions, then re-runs
//! itself as a child process that opens one connection per user, resumes,
//! reads the `unread` frame and stays idle. Client memory is therefore not
//! in the server's figures. The server reports the heap bytes live (counted
//! by its global allocator) and its RSS before and after, divided by N.
//!
//! Usage: `cargo run --release -p kith-benches --bin ws-idle-memory -- [N]`

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use kith_benches::{live_bytes, rss_bytes, CountingAlloc};
use kith_core::{Argon2Hasher, Config, Kith, NewUser};
use kith_sqlite::SqliteStore;
use kith_ws::{Hub, KithSessions, WsConfig, WsServer};
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("--clients") {
        let addr = args.get(2).ok_or("missing address")?.clone();
        return runtime.block_on(clients(addr));
    }
    let n: usize = match args.get(1) {
        Some(n) => n.parse()?,
        None => 2000,
    };
    runtime.block_on(server(n))
}

/// The server side: start, create users, measure, spawn the clients, measure.
async fn server(n: usize) -> Result<(), Failure> {
    let config = WsConfig::default();
    let hub = Arc::new(Hub::new(config.hub));
    let mut kith_config = Config::default();
    kith_config.send_rate = None;
    let kith = Kith::builder(Arc::new(SqliteStore::memory().await?))
        .sink(hub.clone())
        .hasher(Arc::new(Argon2Hasher::insecure_for_tests()))
        .config(kith_config)
        .build();
    let ws = WsServer::new(
        kith.clone(),
        hub.clone(),
        Arc::new(KithSessions(kith.clone())),
        config,
    );
    let app = axum::Router::new().nest("/ws", ws.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let user = kith
            .accounts()
            .create_user(NewUser {
                username: format!("idle{i}"),
                email: None,
            })
            .await?;
        tokens.push(kith.accounts().create_session(user.id).await?.token);
    }
    // Settle, then take the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (heap0, rss0) = (live_bytes(), rss_bytes().unwrap_or(0));

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--clients", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        for t in &tokens {
            writeln!(stdin, "{t}")?;
        }
    }
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let elapsed = started.elapsed();
    if !line.starts_with("ready") {
        return Err(format!("clients failed: {line}").into());
    }
    let open = hub.stats().connections.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (heap1, rss1) = (live_bytes(), rss_bytes().unwrap_or(0));
    child.kill()?;
    let _ = child.wait();

    let heap_per = (heap1 - heap0) as f64 / open.max(1) as f64;
    let rss_per = (rss1 as f64 - rss0 as f64) / open.max(1) as f64;
    let rate = open as f64 / elapsed.as_secs_f64();
    println!("idle connections        {open}");
    println!(
        "heap per connection     {:.0} bytes ({:.1} KiB)",
        heap_per,
        heap_per / 1024.0
    );
    println!(
        "RSS per connection      {:.0} bytes ({:.1} KiB)",
        rss_per,
        rss_per / 1024.0
    );
    println!(
        "connect+auth+resume     {rate:.0} connections/s (client and server sharing the machine)"
    );
    println!(
        "{{\"connections\":{open},\"heap_bytes_per_connection\":{heap_per:.0},\"rss_bytes_per_connection\":{rss_per:.0},\"connects_per_second\":{rate:.0}}}"
    );
    Ok(())
}

/// The client side: one connection per token read from stdin.
async fn clients(addr: String) -> Result<(), Failure> {
    let tokens: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
    let mut sockets = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let url = format!("ws://{addr}/ws?access_token={token}");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        socket
            .send(Message::text(r#"{"type":"resume","conversations":{}}"#))
            .await?;
        // Wait for the unread counts: the connection is fully set up.
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"unread\"") => break,
                Some(Ok(_)) => continue,
                other => return Err(format!("connection ended: {other:?}").into()),
            }
        }
        sockets.push(socket);
    }
    println!("ready {}", sockets.len());
    // Stay idle (answering pings) until killed.
    let keep = futures::future::join_all(
        sockets
            .iter_mut()
            .map(|s| async move { while let Some(Ok(_)) = s.next().await {} }),
    );
    keep.await;
    Ok(())
}
