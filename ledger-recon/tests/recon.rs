//! ledger-recon on a real PostgreSQL: a clean ledger passes; each kind of corruption, injected
//! with the database's triggers disabled, is detected and named; a large ledger passes and an
//! incremental run reads only what was written since; processes share a run and take over a
//! dead one's chunk; bank statements are matched; the binary's exit codes.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::ports::{LedgerStore, Submission};
use ledger_core::{
    AccountId, Clock, Currency, EntryId, HoldId, Ledger, Micros, PayoutDirection, PayoutId, PayoutStatus, UserId,
};
use ledger_recon::{Check, Finding, Outcome, Report, Settings, run_ledger};
use ledger_store_pg::PgStore;
use ledger_store_pg::system::{SystemClock, UuidV7};
use ledger_store_pg::testing::{TestDatabase, fresh_database};
use uuid::Uuid;

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).unwrap()
}

/// A small ledger with one of everything recon looks at.
struct Fixture {
    db: TestDatabase,
    ledger: Ledger<PgStore>,
    alice: AccountId,
    bob: AccountId,
    transfer: EntryId,
    refund: EntryId,
    hold: HoldId,
    pending: PayoutId,
    completed: PayoutId,
    failed: PayoutId,
    deposit_request: PayoutId,
}

async fn fixture() -> Fixture {
    let db = fresh_database().await.expect("a test database");
    let ledger = Ledger::new(Arc::new(db.store()), Arc::new(SystemClock), Arc::new(UuidV7));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    ledger.open_system_accounts(Currency::EUR).await.unwrap();
    let alice = ledger.open_customer_account(ledger.new_id::<UserId>(), Currency::USD).await.unwrap().id;
    let bob = ledger.open_customer_account(ledger.new_id::<UserId>(), Currency::USD).await.unwrap().id;
    ledger.deposit(alice, usd("1000.00"), Some("wire".into())).await.unwrap();
    let transfer = ledger.transfer(alice, bob, usd("100.00")).await.unwrap().entry.unwrap().id();
    let refund = ledger.transfer(bob, alice, usd("10.00")).await.unwrap().entry.unwrap().id();
    let expires = SystemClock.now().saturating_add(Duration::from_secs(86_400));
    let hold = ledger.hold(alice, bob, usd("50.00"), Some(expires)).await.unwrap().hold.unwrap().id;
    let payout = |amount: &'static str| {
        let ledger = &ledger;
        async move {
            ledger
                .request_bank_transfer(PayoutDirection::Outbound, alice, usd(amount), None, None)
                .await
                .unwrap()
                .payout
                .unwrap()
                .id
        }
    };
    let pending = payout("20.00").await;
    let completed = payout("30.00").await;
    let failed = payout("40.00").await;
    let deposit_request = ledger
        .request_bank_transfer(PayoutDirection::Inbound, bob, usd("25.00"), None, None)
        .await
        .unwrap()
        .payout
        .unwrap()
        .id;
    for (id, end) in [
        (completed, PayoutStatus::Completed),
        (failed, PayoutStatus::Failed),
        (deposit_request, PayoutStatus::Completed),
    ] {
        ledger.advance_payout(id, PayoutStatus::Processing, None).await.unwrap();
        ledger.advance_payout(id, end, None).await.unwrap();
    }
    Fixture { db, ledger, alice, bob, transfer, refund, hold, pending, completed, failed, deposit_request }
}

fn settings(full: bool) -> Settings {
    Settings { full, chunks: 3, concurrency: 2, ..Settings::default() }
}

/// Runs `sql` with every trigger (append-only, balance checks, foreign keys) switched off.
async fn corrupt(db: &TestDatabase, sql: &str) {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *tx).await.unwrap();
    assert!(done.rows_affected() > 0, "the corruption changed nothing: {sql}");
    tx.commit().await.unwrap();
}

/// What a finding must name.
#[derive(Clone, Copy, Debug, Default)]
struct Named {
    account: Option<AccountId>,
    entry: Option<EntryId>,
    payout: Option<PayoutId>,
    hold: Option<HoldId>,
}

fn names(f: &Finding, n: &Named) -> bool {
    n.account.is_none_or(|a| f.account == Some(a.0))
        && n.entry.is_none_or(|e| f.entry == Some(e.0))
        && n.payout.is_none_or(|p| f.payout == Some(p.0))
        && n.hold.is_none_or(|h| f.hold == Some(h.0))
}

fn checks(report: &Report) -> BTreeSet<Check> {
    report.findings.iter().map(|f| f.check).collect()
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ledger-recon"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_ledger_passes_and_the_binary_exits_0_with_a_readable_report() {
    let f = fixture().await;
    let out = binary().env("DATABASE_URL", &f.db.url).arg("--full").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(full): CLEAN"), "{stdout}");
    assert!(stdout.contains("hash chains verify                           ok"), "{stdout}");
    assert!(stdout.contains("read 10 accounts, 18 postings, 9 entries, 4 payouts"), "{stdout}");

    // The run is stored, with the same report, and JSON is available.
    let out = binary().env("DATABASE_URL", &f.db.url).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Report = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    assert_eq!((report.outcome, report.mode.as_str(), report.stats.postings_read), (Outcome::Clean, "incremental", 0));
    let (status, stored): (String, sqlx::types::Json<Report>) =
        sqlx::query_as("SELECT status, report FROM recon_runs WHERE id = $1")
            .bind(report.run_id)
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), &stored.0), ("clean", &report));
    f.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_corruption_is_detected_and_named() {
    type Case = (&'static str, fn(&Fixture) -> (String, Vec<(Check, Named)>));
    let cases: Vec<Case> = vec![
        ("stored balance edited", |f| {
            (
                format!("UPDATE accounts SET posted_micros = posted_micros + 1 WHERE id = '{}'", f.alice.0),
                vec![
                    (Check::PostedMismatch, Named { account: Some(f.alice), ..Named::default() }),
                    (Check::CurrencyNotConserved, Named::default()),
                ],
            )
        }),
        ("pending figure edited", |f| {
            (
                format!("UPDATE accounts SET pending_micros = 0 WHERE id = '{}'", f.alice.0),
                vec![(Check::PendingMismatch, Named { account: Some(f.alice), ..Named::default() })],
            )
        }),
        ("running balance edited", |f| {
            let at = Named { account: Some(f.bob), entry: Some(f.transfer), ..Named::default() };
            (
                format!(
                    "UPDATE postings SET balance_after_micros = balance_after_micros + 1 \
                     WHERE entry_id = '{}' AND account_id = '{}'",
                    f.transfer.0, f.bob.0
                ),
                vec![(Check::RunningBalanceBroken, at), (Check::HashChainBroken, at)],
            )
        }),
        ("posting amount edited", |f| {
            let at = Named { account: Some(f.bob), entry: Some(f.transfer), ..Named::default() };
            (
                format!(
                    "UPDATE postings SET amount_micros = amount_micros + 1 WHERE entry_id = '{}' AND account_id = '{}'",
                    f.transfer.0, f.bob.0
                ),
                vec![
                    (Check::EntryUnbalanced, Named { entry: Some(f.transfer), ..Named::default() }),
                    (Check::PostedMismatch, Named { account: Some(f.bob), ..Named::default() }),
                    (Check::RunningBalanceBroken, at),
                    (Check::HashChainBroken, at),
                ],
            )
        }),
        ("entry description edited", |f| {
            (
                format!("UPDATE journal_entries SET description = 'edited' WHERE id = '{}'", f.transfer.0),
                vec![
                    (
                        Check::HashChainBroken,
                        Named { account: Some(f.alice), entry: Some(f.transfer), ..Named::default() },
                    ),
                    (
                        Check::HashChainBroken,
                        Named { account: Some(f.bob), entry: Some(f.transfer), ..Named::default() },
                    ),
                ],
            )
        }),
        ("posting moved to another currency", |f| {
            (
                format!(
                    "UPDATE postings SET currency = 'EUR' WHERE entry_id = '{}' AND account_id = '{}'",
                    f.transfer.0, f.bob.0
                ),
                vec![
                    (Check::EntryUnbalanced, Named { entry: Some(f.transfer), ..Named::default() }),
                    (
                        Check::PostingMisplaced,
                        Named { account: Some(f.bob), entry: Some(f.transfer), ..Named::default() },
                    ),
                    (
                        Check::HashChainBroken,
                        Named { account: Some(f.bob), entry: Some(f.transfer), ..Named::default() },
                    ),
                ],
            )
        }),
        ("posting deleted", |f| {
            // The first link that no longer follows is bob's next posting, the refund.
            let next = Named { account: Some(f.bob), entry: Some(f.refund), ..Named::default() };
            (
                format!("DELETE FROM postings WHERE entry_id = '{}' AND account_id = '{}'", f.transfer.0, f.bob.0),
                vec![
                    (Check::EntryUnbalanced, Named { entry: Some(f.transfer), ..Named::default() }),
                    (Check::PostedMismatch, Named { account: Some(f.bob), ..Named::default() }),
                    (Check::RunningBalanceBroken, next),
                    (Check::HashChainBroken, next),
                ],
            )
        }),
        ("failed payout marked completed", |f| {
            (
                format!("UPDATE payouts SET status = 'COMPLETED' WHERE id = '{}'", f.failed.0),
                vec![(Check::PayoutNotSettled, Named { payout: Some(f.failed), ..Named::default() })],
            )
        }),
        ("deposit marked completed without its entry", |f| {
            (
                format!("DELETE FROM journal_entries WHERE payout_id = '{}' AND kind = 'deposit'", f.deposit_request.0),
                vec![
                    (Check::PayoutNotSettled, Named { payout: Some(f.deposit_request), ..Named::default() }),
                    // Its postings remain, now without an entry: the chains name it.
                    (Check::HashChainBroken, Named { account: Some(f.bob), ..Named::default() }),
                ],
            )
        }),
        ("pending payout cancelled without release", |f| {
            (
                format!("UPDATE payouts SET status = 'CANCELLED', next_attempt_at = NULL WHERE id = '{}'", f.pending.0),
                vec![
                    (Check::PayoutNotReleased, Named { payout: Some(f.pending), ..Named::default() }),
                    (Check::FundsHeldForTerminalPayout, Named { payout: Some(f.pending), ..Named::default() }),
                ],
            )
        }),
        ("completed payout back in review", |f| {
            (
                format!("UPDATE payouts SET status = 'MANUAL_REVIEW' WHERE id = '{}'", f.completed.0),
                vec![(Check::FundsMissingForLivePayout, Named { payout: Some(f.completed), ..Named::default() })],
            )
        }),
        ("payout stuck in processing", |f| {
            (
                format!(
                    "UPDATE payouts SET status = 'PROCESSING', locked_until = now() - interval '1 hour' WHERE id = '{}'",
                    f.pending.0
                ),
                vec![(Check::PayoutStuckProcessing, Named { payout: Some(f.pending), ..Named::default() })],
            )
        }),
        ("hold past expiry", |f| {
            (
                format!("UPDATE holds SET expires_at = now() - interval '1 hour' WHERE id = '{}'", f.hold.0),
                vec![(Check::HoldPastExpiry, Named { hold: Some(f.hold), account: Some(f.alice), ..Named::default() })],
            )
        }),
    ];
    for (name, case) in cases {
        let f = fixture().await;
        let (sql, expected) = case(&f);
        let before = run_ledger(&f.db.pool, &settings(true)).await.unwrap();
        assert_eq!(before.outcome, Outcome::Clean, "{name}: clean before: {:?}", before.findings);
        corrupt(&f.db, &sql).await;
        let report = run_ledger(&f.db.pool, &settings(true)).await.unwrap();
        assert_eq!(report.outcome, Outcome::Discrepancies, "{name}");
        for (check, named) in &expected {
            assert!(
                report.findings.iter().any(|found| found.check == *check && names(found, named)),
                "{name}: expected {check:?} naming {named:?}, found {:#?}",
                report.findings
            );
        }
        let expected_checks: BTreeSet<Check> = expected.iter().map(|(c, _)| *c).collect();
        assert_eq!(checks(&report), expected_checks, "{name}: {:#?}", report.findings);
        f.db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_names_the_problem_and_exits_1_on_a_corrupted_ledger() {
    let f = fixture().await;
    corrupt(&f.db, &format!("UPDATE accounts SET posted_micros = posted_micros + 1 WHERE id = '{}'", f.alice.0)).await;
    let out = binary().env("DATABASE_URL", &f.db.url).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 DISCREPANCIES"), "{stdout}");
    assert!(stdout.contains("stored balances equal the sum of postings    1 FOUND"), "{stdout}");
    assert!(stdout.contains(&format!("posted_mismatch                account {}", f.alice.0)), "{stdout}");
    assert!(stdout.contains("stored 860.000001, postings sum to 860.000000"), "{stdout}");
    // The account is not checkpointed while it is wrong: the next incremental run reports it again.
    let again = run_ledger(&f.db.pool, &settings(false)).await.unwrap();
    assert!(again.findings.iter().any(|x| x.check == Check::PostedMismatch && x.account == Some(f.alice.0)));
    f.db.drop_database().await;
}

#[tokio::test]
async fn the_binary_exits_2_when_it_cannot_run() {
    let out = binary().env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not run: cannot connect to the database"));

    let out = binary().env_remove("DATABASE_URL").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set DATABASE_URL"));

    let dir = std::env::temp_dir().join(format!("recon-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "date,reference,amount,currency,direction\n2026-11-01,r1,12.5,USD,debit\n2026-11-02,r2,abc,USD,debit\n",
    )
    .unwrap();
    let out = binary()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .args(["match", "--statement"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad statement: line 3: amount `abc`"), "{stderr}");

    let out = binary().args(["--every", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
    let _ = std::fs::remove_dir_all(dir);
}

/// Transfers among `accounts` in batches straight through the store (the write path the
/// service uses), deterministic pseudo-random pairs.
async fn transfers(ledger: &Ledger<PgStore>, accounts: &[AccountId], count: usize, seed: u64) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap()
    };
    let batches: Vec<Vec<Submission>> = (0..count)
        .map(|_| {
            let from = accounts[next() % accounts.len()];
            let mut to = accounts[next() % accounts.len()];
            if to == from {
                to = accounts[(next() % (accounts.len() - 1) + 1 + accounts.iter().position(|a| *a == from).unwrap())
                    % accounts.len()];
            }
            Submission::from(ledger_core::Command::Transfer(ledger_core::Transfer {
                entry_id: ledger.new_id(),
                from,
                to,
                amount: usd("0.01"),
                description: None,
                metadata: Default::default(),
            }))
        })
        .collect::<Vec<_>>()
        .chunks(500)
        .map(<[Submission]>::to_vec)
        .collect();
    let store = ledger.store();
    for batch in batches {
        for outcome in store.execute(&batch, ledger.now()).await.unwrap() {
            outcome.expect("every transfer is accepted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_ledger_of_100k_entries_passes_and_an_incremental_run_reads_only_what_is_new() {
    let f = fixture().await;
    let mut accounts = Vec::new();
    for _ in 0..200 {
        let id = f.ledger.open_customer_account(f.ledger.new_id::<UserId>(), Currency::USD).await.unwrap().id;
        f.ledger.deposit(id, usd("100.00"), None).await.unwrap();
        accounts.push(id);
    }
    transfers(&f.ledger, &accounts, 100_000, 7).await;
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries").fetch_one(&f.db.pool).await.unwrap();
    assert!(entries >= 100_000, "{entries}");

    let full = run_ledger(&f.db.pool, &Settings { full: true, chunks: 8, ..Settings::default() }).await.unwrap();
    assert_eq!(full.outcome, Outcome::Clean, "{:?}", full.findings);
    assert_eq!(full.stats.entries_checked, u64::try_from(entries).unwrap());
    assert_eq!(full.stats.chunks, 8);

    transfers(&f.ledger, &accounts, 1_000, 8).await;
    let incremental = run_ledger(&f.db.pool, &Settings { chunks: 8, ..Settings::default() }).await.unwrap();
    assert_eq!(incremental.outcome, Outcome::Clean, "{:?}", incremental.findings);
    assert_eq!(incremental.mode, "incremental");
    // Exactly the 1,000 new entries and their 2,000 postings were read, nothing older.
    assert_eq!(incremental.stats.entries_checked, 1_000);
    assert_eq!(incremental.stats.postings_read, 2_000);

    // And a change to an account's stored balance since is still caught incrementally.
    corrupt(&f.db, &format!("UPDATE accounts SET posted_micros = posted_micros - 1 WHERE id = '{}'", accounts[5].0))
        .await;
    let after = run_ledger(&f.db.pool, &settings(false)).await.unwrap();
    assert_eq!(after.stats.postings_read, 0);
    assert!(after.findings.iter().any(|x| x.check == Check::PostedMismatch && x.account == Some(accounts[5].0)));
    f.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_share_a_run_and_a_dead_process_chunk_is_taken_again() {
    let f = fixture().await;
    for _ in 0..30 {
        f.ledger.open_customer_account(f.ledger.new_id::<UserId>(), Currency::USD).await.unwrap();
    }
    let split = Settings { full: true, chunks: 6, concurrency: 1, ..Settings::default() };
    let (run, _) = ledger_recon::run::join_or_start(&f.db.pool, &split).await.unwrap();
    // A process claimed chunk 2 and died: its lease has run out.
    sqlx::query(
        "UPDATE recon_chunks SET owner = 'dead', attempts = 1, locked_until = now() - interval '1 second' \
         WHERE run_id = $1 AND chunk = 2",
    )
    .bind(run)
    .execute(&f.db.pool)
    .await
    .unwrap();
    let a = Settings { owner: "a".into(), ..split.clone() };
    let b = Settings { owner: "b".into(), ..split.clone() };
    let (ra, rb) = tokio::join!(run_ledger(&f.db.pool, &a), run_ledger(&f.db.pool, &b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra, rb, "both processes report the one run");
    assert_eq!((ra.run_id, ra.outcome), (run, Outcome::Clean));
    assert_eq!(ra.stats.chunks, 6);
    assert_eq!(ra.stats.accounts, 40, "every account checked once");
    let chunks: Vec<(i32, String, i32, String)> =
        sqlx::query_as("SELECT chunk, status, attempts, owner FROM recon_chunks WHERE run_id = $1 ORDER BY chunk")
            .bind(run)
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
    assert!(chunks.iter().all(|(_, status, ..)| status == "done"), "{chunks:?}");
    let dead = &chunks[2];
    assert_eq!(dead.2, 2, "the dead process's chunk was claimed a second time");
    assert_ne!(dead.3, "dead");
    f.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_statement_is_matched_against_payouts_and_deposits() {
    let f = fixture().await;
    let more = f
        .ledger
        .request_bank_transfer(PayoutDirection::Outbound, f.alice, usd("5.00"), None, None)
        .await
        .unwrap()
        .payout
        .unwrap()
        .id;
    f.ledger.advance_payout(more, PayoutStatus::Processing, None).await.unwrap();
    f.ledger.advance_payout(more, PayoutStatus::Completed, None).await.unwrap();
    // The bank's reference for one payout, as the worker records it.
    sqlx::query(
        "INSERT INTO payout_attempts (payout_id, attempt, started_at, finished_at, outcome, provider_reference) \
         VALUES ($1, 1, now(), now(), 'succeeded', 'BANK-777')",
    )
    .bind(f.completed.0)
    .execute(&f.db.pool)
    .await
    .unwrap();
    let today = chrono::Utc::now().date_naive();
    let dir = std::env::temp_dir().join(format!("recon-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, lines: &[String]| {
        let path = dir.join(name);
        std::fs::write(&path, format!("date,reference,amount,currency,direction\n{}\n", lines.join("\n"))).unwrap();
        path
    };
    let all_good = write(
        "good.csv",
        &[
            format!("{today},BANK-777,30.00,USD,debit"),
            format!("{today},{},25.00,USD,credit", f.deposit_request.0),
            format!("{today},{},5.00,USD,debit", more.0),
        ],
    );
    let out = binary().env("DATABASE_URL", &f.db.url).args(["match", "--statement"]).arg(&all_good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("matched                                      3"), "{stdout}");

    let bad = write(
        "bad.csv",
        &[
            format!("{today},BANK-777,30.01,USD,debit"),
            format!("{today},{},25.00,USD,debit", f.deposit_request.0),
            format!("{today},{},40.00,USD,debit", f.failed.0),
            format!("{today},NOT-OURS,9.99,USD,credit"),
            format!("{today},BANK-777,30.00,USD,debit"),
        ],
    );
    let lines = ledger_recon::statement::parse(&std::fs::read_to_string(&bad).unwrap()).unwrap();
    let report = ledger_recon::match_statement(&f.db.pool, &lines).await.unwrap();
    let found = |check: Check| report.findings.iter().filter(move |x| x.check == check).collect::<Vec<_>>();
    assert_eq!(report.matched, 0);
    assert_eq!(found(Check::AmountMismatch)[0].payout, Some(f.completed.0));
    assert_eq!(found(Check::DirectionMismatch)[0].payout, Some(f.deposit_request.0));
    assert_eq!(found(Check::StatusMismatch)[0].payout, Some(f.failed.0));
    assert_eq!(found(Check::MissingInLedger)[0].reference.as_deref(), Some("NOT-OURS"));
    assert_eq!(found(Check::DuplicateAtBank)[0].line, Some(6));
    assert_eq!(found(Check::MissingAtBank).iter().map(|x| x.payout).collect::<Vec<_>>(), [Some(more.0)]);
    assert_eq!(report.findings.len(), 6, "{:#?}", report.findings);
    let status: String = sqlx::query_scalar("SELECT status FROM recon_runs WHERE id = $1")
        .bind(report.run_id)
        .fetch_one(&f.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "discrepancies");
    let _ = std::fs::remove_dir_all(dir);
    f.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keeps_checking_until_sigterm_then_exits_0() {
    let f = fixture().await;
    let mut child = binary()
        .env("DATABASE_URL", &f.db.url)
        .args(["--every", "200ms"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for two finished runs, then ask it to stop.
    let mut finished = 0i64;
    for _ in 0..600 {
        finished = sqlx::query_scalar("SELECT count(*) FROM recon_runs WHERE status = 'clean'")
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
        if finished >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished >= 2, "the schedule ran {finished} times");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a stop on SIGTERM is a clean exit");
    f.db.drop_database().await;
}
