//! Kith's conformance suite against `PgStore`: one `#[tokio::test]` per
//! case, named `<mode>::<area>::<case>`, each on a fresh database of the
//! test binary's throwaway PostgreSQL server (see `kith_postgres::testing`),
//! plus the model-based test; once with each append call in a transaction
//! of its own (the default), once with group commit across calls on.

// Test code: a failed expectation panics with its message.
#![allow(clippy::unwrap_used)]

/// The default: each append call in a transaction of its own.
mod plain {
    use std::sync::Arc;

    use kith_core::Storage;
    use kith_postgres::testing;

    async fn fresh() -> Arc<dyn Storage> {
        Arc::new(testing::fresh_store().await)
    }

    kith_core::conformance_tests!(fresh);
}

/// `PgStore::set_group_commit_limit(256)`: concurrent append calls share
/// transactions.
mod grouped {
    use std::sync::Arc;

    use kith_core::Storage;
    use kith_postgres::testing;

    async fn fresh() -> Arc<dyn Storage> {
        let store = testing::fresh_store().await;
        store.set_group_commit_limit(256);
        Arc::new(store)
    }

    kith_core::conformance_tests!(fresh);
}
