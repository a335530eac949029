//! Kith's conformance suite against both modes of `SqliteStore`: one
//! `#[tokio::test]` per case and mode, named `memory::<area>::<case>` and
//! `file::<area>::<case>`, each on a fresh database.

// Test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

/// The single-connection in-memory database.
mod memory {
    use std::sync::Arc;

    use kith_core::Storage;
    use kith_sqlite::SqliteStore;

    async fn fresh() -> Arc<dyn Storage> {
        Arc::new(SqliteStore::memory().await.unwrap())
    }

    kith_core::conformance_tests!(fresh);
}

/// A WAL database file (one writer, a pool of readers) in a temporary
/// directory of its own.
mod file {
    use std::sync::Arc;

    use kith_core::Storage;
    use kith_sqlite::SqliteStore;

    async fn fresh() -> Arc<dyn Storage> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("kith.db").to_str().unwrap())
            .await
            .unwrap();
        // Keep the directory exactly as long as the case's runtime: this task
        // never finishes, so it is dropped (removing the directory) when the
        // runtime shuts down at the end of the test.
        tokio::spawn(async move {
            let _dir = dir;
            std::future::pending::<()>().await;
        });
        Arc::new(store)
    }

    kith_core::conformance_tests!(fresh);
}
