//! The `kith-server` binary: read the settings, start logging, serve until
//! Ctrl-C or SIGTERM; or, with `migrate-data`, copy a SQLite deployment into
//! PostgreSQL and exit.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use kith_server::settings::{Command, LogFormat, MigrateData};
use kith_server::Settings;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: each connection allocates and
/// frees its buffers, and glibc's malloc spends a measurable share of the
/// connect path consolidating them (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut settings = Settings::parse();
    if let Some(command) = settings.command.take() {
        return match command {
            Command::MigrateData(args) => migrate_data(args).await,
        };
    }
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|e| {
        eprintln!(
            "kith-server: invalid --log filter {:?} ({e}); using `info`",
            settings.log
        );
        EnvFilter::new("info")
    });
    // Colours only for a terminal: not in files, pipes or log collectors.
    let ansi = std::io::stdout().is_terminal();
    match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let listen = settings.listen;
    let database = settings.database_url.clone();
    let app = match kith_server::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("kith-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kith-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or(listen, |a| a);
    // Not `println!`: it panics when stdout is closed (`kith-server | head -1`,
    // a supervisor that does not read it), which would take the server down.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "kith-server listening on http://{addr} (database: {database})"
    );
    let _ = writeln!(
        out,
        "  REST: http://{addr}/api/v1   WebSocket: ws://{addr}/api/v1/ws   OpenAPI: http://{addr}/api/openapi.json"
    );
    let _ = out.flush();
    drop(out);
    match kith_server::serve(app, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kith-server migrate-data`: runs the copy and prints what it copied.
async fn migrate_data(args: MigrateData) -> ExitCode {
    match kith_server::migrate::migrate_data(&args.from, &args.to, args.batch_size).await {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "kith-server: copied the SQLite database into PostgreSQL (rows per table):\n{report}"
            );
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kith-server: migrate-data: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
