//! `ledger-store-pg`: PostgreSQL as the ledger's source of truth.
//!
//! [`PgStore`] implements every storage port of `ledger-core` ([`LedgerStore`], [`PayoutQueue`],
//! [`IdempotencyStore`], [`FxStore`]) on sqlx, against the schema in `migrations/` (embedded
//! here as [`MIGRATOR`]).
//!
//! **Locking protocol.** [`LedgerStore::execute`] runs a whole batch in one transaction. It locks
//! what the batch touches with `SELECT ... FOR UPDATE`, always in the same order (holds, then
//! payouts, then reversed entries, then accounts), each class in ascending id order, so two
//! transactions can never wait on each other in a cycle. It then decides the batch in order with
//! `ledger-core`'s [`Book`](ledger_core::Book) against the locked rows, writes the entries,
//! postings, balances, hold and payout states, audit and outbox rows and the idempotency records,
//! and commits. Serialization failures, deadlocks and unique-key races are retried a bounded
//! number of times with a fresh transaction, invisibly to the caller.
//!
//! **The payout queue** lives on the payout rows: a claim takes due rows with
//! `FOR UPDATE SKIP LOCKED` and sets a lease (`locked_until`), so any number of workers never
//! take the same item, and an item whose worker died is taken again when its lease ends.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ledger_core::StoreError> {
//! let store = ledger_store_pg::PgStore::connect("postgres://postgres@127.0.0.1:5432/ledger").await?;
//! # Ok(()) }
//! ```

/// A statement assembled at run time. Only ever used with constant column lists and identifiers
/// the code itself makes (test database names); every value goes through a bind parameter.
macro_rules! sql {
    ($($format:tt)*) => {
        sqlx::AssertSqlSafe(format!($($format)*))
    };
}

mod execute;
mod fx;
mod group;
mod idempotency;
mod queue;
mod read;
mod recon;
mod rows;
mod snapshot;
pub mod system;
pub mod testing;
mod users;
mod webhooks;

use std::time::Duration;

use std::sync::Arc;

pub use group::GroupCommitConfig;
use ledger_core::StoreError;
#[cfg(doc)]
use ledger_core::{FxStore, IdempotencyStore, LedgerStore, PayoutQueue};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// The schema, embedded from `migrations/`: every binary applies it at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How often a batch is retried after a serialization failure, deadlock or unique-key race.
pub const RETRIES_MAX: u32 = 8;

/// The PostgreSQL store. Cheap to clone: it is a connection pool (and, with group commit, a
/// handle on the flushers).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    group: Option<Arc<group::Group>>,
}

impl PgStore {
    /// Connects with a pool of `connections_max` connections and applies the migrations.
    pub async fn connect_with(url: &str, connections_max: u32) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(connections_max)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StoreError::backend)?;
        let store = PgStore::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Connects with a pool of 16 connections and applies the migrations.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, 16).await
    }

    /// A store over an existing pool (migrations not applied: see [`PgStore::migrate`]).
    pub fn new(pool: PgPool) -> PgStore {
        PgStore { pool, group: None }
    }

    /// The same store with group commit: concurrent `execute` calls are coalesced into shared
    /// batches (see the `group` module docs). Must be called inside a tokio runtime, which runs
    /// the flusher tasks.
    pub fn with_group_commit(self, config: GroupCommitConfig) -> PgStore {
        let single = PgStore { pool: self.pool.clone(), group: None };
        PgStore { pool: self.pool, group: Some(Arc::new(group::Group::start(single, config))) }
    }

    /// Applies any migration not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::backend)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(db)
    }

    /// The pool, for health checks and for adapters that share it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Wraps a database error for the port: the text is for logs, never for clients.
pub(crate) fn db(error: sqlx::Error) -> StoreError {
    StoreError::backend(error)
}
