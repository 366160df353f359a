//! Transfers per second through the full ledger on PostgreSQL, in the two workloads of
//! `shared/bench/naive-pg` (the naive one-transaction-per-transfer baseline):
//!
//! - `uniform`: 1 micro between two random accounts out of 10,000;
//! - `hot`: 1 micro from a random account into one account that every transfer touches.
//!
//! Each is run without (`mode=single`) and with group commit (`mode=group`), with N concurrent
//! clients for S seconds each. Every transfer is a complete ledger transfer: locked accounts, a
//! balanced entry with two postings and running balances, the balance updates, an audit row and
//! an outbox event, and the deferred balance check at commit.
//!
//! Usage: `cargo run --release -p ledger-store-pg --example throughput -- [SECONDS] [CLIENTS...]`
//! (defaults: 10 s, 8 and 32 clients). The database is a fresh one on the server the test harness
//! finds (`DATABASE_URL`, else localhost:5432), dropped at the end. Compare with
//! `shared/bench/naive-pg/run` on the same server, as ratios: `bench/compare` runs both.

// Rates, latencies and counters of a benchmark, not money: floats and narrowing casts are fine here.
#![allow(clippy::float_arithmetic, clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger_core::ports::Submission;
use ledger_core::{
    AccountId, AccountKind, Command, Currency, Deposit, Ledger, LedgerStore, Micros, NewAccount, UserId,
};
use ledger_store_pg::system::{SystemClock, UuidV7};
use ledger_store_pg::{GroupCommitConfig, PgStore};

const ACCOUNTS: usize = 10_000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(10, |s| s.parse().expect("SECONDS must be a whole number"));
    let mut clients: Vec<usize> = args.map(|c| c.parse().expect("CLIENTS must be whole numbers")).collect();
    if clients.is_empty() {
        clients = vec![8, 32];
    }
    let database = ledger_store_pg::testing::fresh_database().await.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(2);
    });
    eprintln!("setting up {ACCOUNTS} funded accounts in {}", database.name);
    let accounts = setup(&database.store()).await;
    for workload in ["uniform", "hot"] {
        for &n in &clients {
            for mode in ["single", "group"] {
                let store = match mode {
                    "group" => database.store().with_group_commit(group_config()),
                    _ => database.store(),
                };
                let (tps, latency_ms) = run(store, &accounts, workload, n, Duration::from_secs(seconds)).await;
                println!("ledger workload={workload} mode={mode} clients={n} tps={tps:.0} latency_ms={latency_ms:.3}");
            }
        }
    }
    database.drop_database().await;
}

/// Group commit settings, overridable for experiments with `LEDGER_GROUP_FLUSHERS` and
/// `LEDGER_GROUP_BATCH_MAX`.
fn group_config() -> GroupCommitConfig {
    let default = GroupCommitConfig::default();
    let var = |name: &str, fallback: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(fallback);
    GroupCommitConfig {
        flushers: var("LEDGER_GROUP_FLUSHERS", default.flushers),
        batch_max: var("LEDGER_GROUP_BATCH_MAX", default.batch_max),
        ..default
    }
}

/// Opens the accounts and gives each a large balance, in batches.
async fn setup(store: &PgStore) -> Arc<Vec<AccountId>> {
    let ledger = Ledger::new(Arc::new(store.clone()), Arc::new(SystemClock), Arc::new(UuidV7));
    ledger.open_system_accounts(Currency::USD).await.expect("system accounts");
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.expect("settlement");
    let owner: UserId = ledger.new_id();
    let mut accounts = Vec::with_capacity(ACCOUNTS);
    for _ in 0..ACCOUNTS {
        let account = NewAccount::customer(ledger.new_id(), owner, Currency::USD);
        accounts.push(store.open_account(account, ledger.now()).await.expect("account").id);
    }
    for chunk in accounts.chunks(1_000) {
        let deposits: Vec<Submission> = chunk
            .iter()
            .map(|to| {
                Submission::from(Command::Deposit(Deposit {
                    entry_id: ledger.new_id(),
                    to: *to,
                    settlement,
                    amount: Micros::from_units(1_000_000).expect("in range"),
                    description: None,
                }))
            })
            .collect();
        store.execute(&deposits, ledger.now()).await.expect("deposits");
    }
    Arc::new(accounts)
}

async fn run(
    store: PgStore,
    accounts: &Arc<Vec<AccountId>>,
    workload: &str,
    clients: usize,
    length: Duration,
) -> (f64, f64) {
    let ledger = Arc::new(Ledger::new(Arc::new(store), Arc::new(SystemClock), Arc::new(UuidV7)));
    let done = Arc::new(AtomicU64::new(0));
    let busy_us = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + length;
    let hot = workload == "hot";
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (ledger, accounts, done, busy_us) = (ledger.clone(), accounts.clone(), done.clone(), busy_us.clone());
            tokio::spawn(async move {
                let mut state = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut pick = || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    1 + (state % (ACCOUNTS as u64 - 1)) as usize
                };
                while Instant::now() < deadline {
                    let from = accounts[pick()];
                    let to = if hot { accounts[0] } else { accounts[pick()] };
                    if from == to {
                        continue;
                    }
                    let started = Instant::now();
                    ledger.transfer(from, to, Micros::new(1)).await.expect("transfer");
                    busy_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed);
    let tps = done as f64 / elapsed;
    let latency_ms = busy_us.load(Ordering::Relaxed) as f64 / 1_000.0 / done.max(1) as f64;
    (tps, latency_ms)
}
