//! # kith-server
//!
//! The reference server of Kith: it will compose `kith-core`, `kith-sqlite`
//! and `kith-ws` into a REST and WebSocket server. The HTTP API is not part of
//! this build yet, so the binary explains that and exits with an error status
//! instead of pretending to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "kith-server {}: the HTTP and WebSocket API is not available in this build yet.\n\
         Embed Kith as a library meanwhile: see the README's embedding example.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
