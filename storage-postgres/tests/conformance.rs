//! Kith's conformance suite against `PgStore`: one `#[tokio::test]` per
//! case, named `<area>::<case>`, each on a fresh database of the test
//! binary's throwaway PostgreSQL server (see `kith_postgres::testing`), plus the
//! model-based test.

use kith_postgres::testing as support;

use std::sync::Arc;

use kith_core::Storage;

async fn fresh() -> Arc<dyn Storage> {
    Arc::new(support::fresh_store().await)
}

kith_core::conformance_tests!(fresh);
