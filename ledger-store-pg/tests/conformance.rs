//! The storage-port conformance suite of `ledger-core`, run against PostgreSQL: every check on
//! its own fresh database.

use std::sync::{Arc, Mutex};

use ledger_store_pg::PgStore;
use ledger_store_pg::testing::{TestDatabase, fresh_database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_conforms() {
    let databases: Arc<Mutex<Vec<TestDatabase>>> = Arc::default();
    let made = databases.clone();
    ledger_core::conformance::run_all(move || {
        let made = made.clone();
        async move {
            let database = fresh_database().await.expect("a test database");
            let store: Arc<PgStore> = Arc::new(database.store());
            made.lock().unwrap().push(database);
            store
        }
    })
    .await;
    let databases = std::mem::take(&mut *databases.lock().unwrap());
    for database in databases {
        database.drop_database().await;
    }
}
