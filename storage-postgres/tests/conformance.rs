//! Kith's conformance suite against `PgStore`: one `#[tokio::test]` per
//! case, named `<area>::<case>`, each on a fresh database of the test
//! binary's throwaway PostgreSQL server (see `support/mod.rs`), plus the
//! model-based test.

mod support;

use std::sync::Arc;

use kith_core::Storage;

async fn fresh() -> Arc<dyn Storage> {
    Arc::new(support::fresh_store().await)
}

kith_core::conformance_tests!(fresh);
