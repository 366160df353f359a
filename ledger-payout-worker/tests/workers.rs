//! Real worker processes on a real PostgreSQL: several workers share the queue without ever
//! paying twice, and a worker killed while the bank's answer is in flight loses nothing.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::ports::Submission;
use ledger_core::recon::reconcile;
use ledger_core::{
    AccountKind, Command as LedgerCommand, CreatePayout, Currency, Ledger, PayoutDirection, PayoutId, UserId,
};
use ledger_store_pg::PgStore;
use ledger_store_pg::system::{SystemClock, UuidV7};
use ledger_store_pg::testing::{TestDatabase, fresh_database};

fn worker(database: &TestDatabase, settings: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger-payout-worker"));
    command.env("DATABASE_URL", &database.url).env("RUST_LOG", "warn").env("LEDGER_SIM_SHARED", "true");
    for (key, value) in settings {
        command.env(key, value);
    }
    command.stdout(std::process::Stdio::null()).spawn().expect("the worker starts")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("the worker exits");
    assert!(status.success(), "a clean stop after SIGTERM: {status}");
}

/// A ledger with one customer holding 10,000.00 USD, and `count` payouts of 1.00 from it.
async fn payouts(database: &TestDatabase, count: usize) -> (Ledger<PgStore>, Vec<PayoutId>) {
    let ledger = Ledger::new(Arc::new(database.store()), Arc::new(SystemClock), Arc::new(UuidV7));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let account = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    ledger.deposit(account, Currency::USD.parse_amount("10000").unwrap(), None).await.unwrap();
    let clearing = ledger.system_account(AccountKind::PayoutClearing, Currency::USD).await.unwrap();
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.unwrap();
    let mut ids = Vec::with_capacity(count);
    let batch: Vec<Submission> = (0..count)
        .map(|_| {
            let payout_id: PayoutId = ledger.new_id();
            ids.push(payout_id);
            Submission::from(LedgerCommand::CreatePayout(CreatePayout {
                payout_id,
                entry_id: ledger.new_id(),
                direction: PayoutDirection::Outbound,
                account,
                clearing,
                settlement,
                amount: Currency::USD.parse_amount("1").unwrap(),
                currency: Currency::USD,
                bank_account: None,
                reference: None,
            }))
        })
        .collect();
    let outcomes = ledger_core::LedgerStore::execute(ledger.store().as_ref(), &batch, ledger.now()).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    // The shared bank's tables exist before any worker or query needs them.
    ledger_store_pg::system::SimulatedBank::shared(Default::default(), database.pool.clone()).await.unwrap();
    (ledger, ids)
}

async fn statuses(database: &TestDatabase) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM payouts GROUP BY status").fetch_all(&database.pool).await.unwrap();
    rows.into_iter().collect()
}

/// Waits (bounded) until no payout is PENDING or PROCESSING.
async fn drained(database: &TestDatabase) -> HashMap<String, i64> {
    for _ in 0..1_200 {
        let now = statuses(database).await;
        if !now.contains_key("PENDING") && !now.contains_key("PROCESSING") {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payouts still in flight: {:?}", statuses(database).await);
}

async fn count(database: &TestDatabase, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&database.pool).await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_drive_500_payouts_and_pay_each_at_most_once() {
    let database = fresh_database().await.expect("a test database");
    let (ledger, _) = payouts(&database, 500).await;
    let settings = [
        ("LEDGER_WORKER_CONCURRENCY", "4"),
        ("LEDGER_WORKER_POLL_MS", "20"),
        ("LEDGER_WORKER_ATTEMPTS_MAX", "3"),
        ("LEDGER_WORKER_BACKOFF_BASE_MS", "10"),
        ("LEDGER_WORKER_BACKOFF_CAP_MS", "50"),
        ("LEDGER_WORKER_BREAKER_FAILURES", "1000"),
        ("LEDGER_SIM_SUCCESS_PERCENT", "80"),
        ("LEDGER_SIM_LATENCY_MIN_MS", "0"),
        ("LEDGER_SIM_LATENCY_MAX_MS", "5"),
    ];
    let workers: Vec<Child> = (0..3).map(|_| worker(&database, &settings)).collect();
    let outcome = drained(&database).await;
    for child in workers {
        stop(child);
    }
    let terminal: i64 =
        ["COMPLETED", "FAILED", "MANUAL_REVIEW"].iter().map(|s| outcome.get(*s).copied().unwrap_or(0)).sum();
    assert_eq!(terminal, 500, "{outcome:?}");
    assert!(outcome.get("COMPLETED").copied().unwrap_or(0) > 300, "{outcome:?}");
    // Every completed payout was paid, exactly once; no failed payout was paid.
    let completed_paid = count(
        &database,
        "SELECT count(*) FROM payouts p JOIN bank_simulator.payments b ON b.payout_id = p.id WHERE p.status = 'COMPLETED'",
    )
    .await;
    assert_eq!(completed_paid, outcome["COMPLETED"]);
    let failed_paid = count(
        &database,
        "SELECT count(*) FROM payouts p JOIN bank_simulator.payments b ON b.payout_id = p.id WHERE p.status = 'FAILED'",
    )
    .await;
    assert_eq!(failed_paid, 0);
    let payments = count(&database, "SELECT count(*) FROM bank_simulator.payments").await;
    let distinct = count(&database, "SELECT count(DISTINCT payout_id) FROM bank_simulator.payments").await;
    assert_eq!(payments, distinct);
    // The books balance, and clearing holds exactly what manual review still holds.
    let discrepancies = reconcile(&ledger.store().snapshot().await.unwrap());
    assert!(discrepancies.is_empty(), "{discrepancies:?}");
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_the_bank_answers_loses_nothing_and_pays_once() {
    let database = fresh_database().await.expect("a test database");
    let (ledger, ids) = payouts(&database, 1).await;
    let id = ids[0];
    // The bank pays at once but its answer takes 30 s to come back; the lease is 2 s.
    let slow = worker(
        &database,
        &[
            ("LEDGER_WORKER_CONCURRENCY", "1"),
            ("LEDGER_WORKER_POLL_MS", "20"),
            ("LEDGER_WORKER_LEASE_SECS", "2"),
            ("LEDGER_SIM_SUCCESS_PERCENT", "100"),
            ("LEDGER_SIM_LATENCY_MIN_MS", "30000"),
            ("LEDGER_SIM_LATENCY_MAX_MS", "30000"),
        ],
    );
    for _ in 0..300 {
        if count(&database, "SELECT count(*) FROM bank_simulator.payments").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&database, "SELECT count(*) FROM bank_simulator.payments").await, 1, "the bank has paid");
    let mut slow = slow;
    slow.kill().expect("SIGKILL");
    let _ = slow.wait();
    assert_eq!(statuses(&database).await.get("PROCESSING"), Some(&1), "the dead worker left it in flight");
    // A healthy worker takes it again once the lease ends, and the bank answers with the first receipt.
    let healthy = worker(
        &database,
        &[
            ("LEDGER_WORKER_CONCURRENCY", "1"),
            ("LEDGER_WORKER_POLL_MS", "20"),
            ("LEDGER_SIM_SUCCESS_PERCENT", "100"),
            ("LEDGER_SIM_LATENCY_MIN_MS", "0"),
            ("LEDGER_SIM_LATENCY_MAX_MS", "0"),
        ],
    );
    let outcome = drained(&database).await;
    stop(healthy);
    assert_eq!(outcome.get("COMPLETED"), Some(&1), "{outcome:?}");
    assert_eq!(count(&database, "SELECT count(*) FROM bank_simulator.payments").await, 1, "paid once");
    assert!(count(&database, "SELECT count(*) FROM bank_simulator.calls").await >= 2, "the bank was asked again");
    let attempts: (i32,) = sqlx::query_as("SELECT attempts FROM payouts WHERE id = $1")
        .bind(id.0)
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(attempts.0, 2);
    assert!(reconcile(&ledger.store().snapshot().await.unwrap()).is_empty());
    database.drop_database().await;
}
