//! # kith-ws
//!
//! The WebSocket transport and fan-out hub of Kith. This crate is reserved in
//! the workspace so that the dependency graph is fixed from the start; it
//! exports nothing yet. Kith already emits every live change through
//! `kith_core::EventSink`, the seam this crate will implement.
