//! # kith-postgres
//!
//! The server-grade storage backend of Kith (PostgreSQL through sqlx). This
//! crate is reserved in the workspace so that the dependency graph is fixed
//! from the start; it implements no storage yet and exports nothing. Use
//! `kith-sqlite` meanwhile.
