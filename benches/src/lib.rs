//! # kith-benches
//!
//! Criterion benches and the end-to-end WebSocket load generator of Kith.
//! This crate is reserved in the workspace and holds no benchmark yet; figures
//! are recorded in `docs/BENCHMARKS.md` as benches land.
