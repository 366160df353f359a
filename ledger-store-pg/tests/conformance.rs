//! The storage-port conformance suite of `ledger-core`, run against PostgreSQL: every check on
//! its own fresh database.

use std::sync::{Arc, Mutex};

use ledger_store_pg::testing::{TestDatabase, fresh_database};
use ledger_store_pg::{GroupCommitConfig, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_conforms() {
    conforms(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_committing_postgres_store_conforms() {
    conforms(true).await;
}

async fn conforms(group_commit: bool) {
    let databases: Arc<Mutex<Vec<TestDatabase>>> = Arc::default();
    let made = databases.clone();
    ledger_core::conformance::run_all(move || {
        let made = made.clone();
        async move {
            let database = fresh_database().await.expect("a test database");
            let store = database.store();
            let store: Arc<PgStore> =
                Arc::new(if group_commit { store.with_group_commit(GroupCommitConfig::default()) } else { store });
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
