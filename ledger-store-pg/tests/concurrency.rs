//! Concurrency on a real PostgreSQL: many tasks moving money through the same accounts at once
//! keep the books exact, never surface a deadlock, and never hand a queued payout to two
//! workers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use ledger_core::recon::reconcile;
use ledger_core::{
    AccountId, Clock, Currency, Ledger, LedgerError, ManualClock, Micros, PayoutDirection, PayoutQueue, Rejection,
    SequentialIds, Timestamp, UserId,
};
use ledger_store_pg::PgStore;
use ledger_store_pg::testing::{TestDatabase, fresh_database};

const START: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

async fn setup() -> (TestDatabase, Arc<Ledger<PgStore>>, Arc<ManualClock>) {
    let database = fresh_database().await.expect("a test database");
    let clock = Arc::new(ManualClock::new(START));
    let ledger = Ledger::new(Arc::new(database.store()), clock.clone(), Arc::new(SequentialIds::default()));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    (database, Arc::new(ledger), clock)
}

async fn customers(ledger: &Ledger<PgStore>, count: usize, funds: &str) -> Vec<AccountId> {
    let mut accounts = Vec::new();
    for _ in 0..count {
        let owner: UserId = ledger.new_id();
        let id = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
        if funds != "0" {
            ledger.deposit(id, usd(funds), None).await.unwrap();
        }
        accounts.push(id);
    }
    accounts
}

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).unwrap()
}

async fn assert_books_balance(ledger: &Ledger<PgStore>) {
    let snapshot = ledger.store().snapshot().await.unwrap();
    let discrepancies = reconcile(&snapshot);
    assert!(discrepancies.is_empty(), "{discrepancies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_deposits_give_the_exact_balance() {
    let (database, ledger, _) = setup().await;
    let account = customers(&ledger, 1, "0").await[0];
    let deposits = (0..100).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.deposit(account, usd("1.01"), None).await })
    });
    for result in join_all(deposits).await {
        result.unwrap().expect("every deposit is accepted");
    }
    assert_eq!(ledger.balance(account).await.unwrap().posted, usd("101.00"));
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_transfers_keep_every_invariant() {
    let (database, ledger, _) = setup().await;
    let accounts = Arc::new(customers(&ledger, 20, "100").await);
    let tasks = (0..16u64).map(|task| {
        let (ledger, accounts) = (ledger.clone(), accounts.clone());
        tokio::spawn(async move {
            let mut state = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut accepted = 0;
            for _ in 0..125 {
                // xorshift: a small deterministic generator per task.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let from = accounts[(state % 20) as usize];
                let to = accounts[((state >> 8) % 20) as usize];
                let amount = Micros::new(i64::try_from((state >> 16) % 40_000_000).unwrap() + 1);
                match ledger.transfer(from, to, amount).await {
                    Ok(_) => accepted += 1,
                    Err(LedgerError::Rejected(Rejection::InsufficientFunds(_) | Rejection::SameAccount)) => {}
                    Err(other) => panic!("transfer failed: {other}"),
                }
            }
            accepted
        })
    });
    let accepted: usize = join_all(tasks).await.into_iter().map(Result::unwrap).sum();
    assert!(accepted > 1_000, "only {accepted} of 2000 transfers went through");
    let mut total = 0;
    for account in accounts.iter() {
        let balance = ledger.balance(*account).await.unwrap();
        assert!(!balance.posted.is_negative(), "{account:?} went below zero");
        total += balance.posted.get();
    }
    assert_eq!(total, usd("2000").get(), "customers' money is conserved");
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_transfers_racing_never_surface_a_deadlock() {
    let (database, ledger, _) = setup().await;
    let pair = customers(&ledger, 2, "1000").await;
    let tasks = (0..8usize).map(|task| {
        let (ledger, pair) = (ledger.clone(), pair.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                let (from, to) = if (task + i) % 2 == 0 { (pair[0], pair[1]) } else { (pair[1], pair[0]) };
                ledger.transfer(from, to, usd("1")).await.expect("no deadlock reaches the caller");
            }
        })
    });
    for result in join_all(tasks).await {
        result.unwrap();
    }
    let total =
        ledger.balance(pair[0]).await.unwrap().posted.get() + ledger.balance(pair[1]).await.unwrap().posted.get();
    assert_eq!(total, usd("2000").get());
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_take_each_payout_exactly_once() {
    let (database, ledger, clock) = setup().await;
    let account = customers(&ledger, 1, "1000").await[0];
    let mut created = HashSet::new();
    for _ in 0..200 {
        let changes =
            ledger.request_bank_transfer(PayoutDirection::Outbound, account, usd("1"), None, None).await.unwrap();
        created.insert(changes.payout.unwrap().id);
    }
    let claimers = (0..4).map(|_| {
        let (store, now) = (ledger.store().clone(), clock.now());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claims = store.claim(now, Duration::from_secs(60), 7).await.unwrap();
                if claims.is_empty() {
                    return mine;
                }
                mine.extend(claims.into_iter().map(|c| c.payout.id));
            }
        })
    });
    let mut claimed = Vec::new();
    for result in join_all(claimers).await {
        claimed.extend(result.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 200, "no payout was claimed twice");
    assert_eq!(unique, created, "every payout was claimed");
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_claimed_again() {
    let (database, ledger, clock) = setup().await;
    let account = customers(&ledger, 1, "10").await[0];
    let payout = ledger.request_bank_transfer(PayoutDirection::Outbound, account, usd("1"), None, None).await.unwrap();
    let id = payout.payout.unwrap().id;
    let store = ledger.store();
    let lease = Duration::from_secs(30);
    let first = store.claim(clock.now(), lease, 10).await.unwrap();
    assert_eq!(first.iter().map(|c| (c.payout.id, c.attempt)).collect::<Vec<_>>(), [(id, 1)]);
    clock.advance(Duration::from_secs(29));
    assert!(store.claim(clock.now(), lease, 10).await.unwrap().is_empty(), "the lease still holds");
    clock.advance(Duration::from_secs(1));
    let again = store.claim(clock.now(), lease, 10).await.unwrap();
    assert_eq!(again.iter().map(|c| (c.payout.id, c.attempt)).collect::<Vec<_>>(), [(id, 2)]);
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_reversals_and_references_have_one_winner() {
    let (database, ledger, _) = setup().await;
    let pair = customers(&ledger, 2, "100").await;
    let entry = ledger.transfer(pair[0], pair[1], usd("10")).await.unwrap().entry.unwrap().id();
    let reversals = (0..8).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.reverse(entry, "duplicate").await })
    });
    let outcomes: Vec<_> = join_all(reversals).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .all(|e| matches!(e, LedgerError::Rejected(Rejection::AlreadyReversed { .. })))
    );

    let payouts = (0..8).map(|_| {
        let (ledger, account) = (ledger.clone(), pair[0]);
        tokio::spawn(async move {
            ledger.request_bank_transfer(PayoutDirection::Outbound, account, usd("1"), None, Some("inv-7".into())).await
        })
    });
    let outcomes: Vec<_> = join_all(payouts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .all(|e| matches!(e, LedgerError::Rejected(Rejection::DuplicateReference(_))))
    );
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}

async fn grouped_setup() -> (TestDatabase, Arc<Ledger<PgStore>>) {
    let database = fresh_database().await.expect("a test database");
    let store = database.store().with_group_commit(ledger_store_pg::GroupCommitConfig::default());
    let clock = Arc::new(ManualClock::new(START));
    let ledger = Ledger::new(Arc::new(store), clock, Arc::new(SequentialIds::default()));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    (database, Arc::new(ledger))
}

/// Every transfer goes into one hot account while sources run dry: each request is still decided
/// on its own, in order, inside shared batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_on_a_hot_account_keeps_every_invariant() {
    let (database, ledger) = grouped_setup().await;
    let hot = customers(&ledger, 1, "0").await[0];
    let sources = Arc::new(customers(&ledger, 16, "10").await);
    let tasks = (0..16usize).map(|task| {
        let (ledger, sources) = (ledger.clone(), sources.clone());
        tokio::spawn(async move {
            let mut moved = 0;
            // 0.75 at a time from 10.00: 13 succeed, the rest find the source dry.
            for _ in 0..20 {
                match ledger.transfer(sources[task], hot, usd("0.75")).await {
                    Ok(_) => moved += usd("0.75").get(),
                    Err(LedgerError::Rejected(Rejection::InsufficientFunds(_))) => {}
                    Err(other) => panic!("transfer failed: {other}"),
                }
            }
            moved
        })
    });
    let moved: i64 = join_all(tasks).await.into_iter().map(Result::unwrap).sum();
    assert_eq!(moved, 16 * 13 * usd("0.75").get());
    assert_eq!(ledger.balance(hot).await.unwrap().posted.get(), moved);
    for source in sources.iter() {
        assert_eq!(ledger.balance(*source).await.unwrap().posted, usd("0.25"));
    }
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}

/// A request that fails in storage (here: a payout id that exists already) is answered with its
/// error; the requests batched with it still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_request_does_not_fail_its_batch() {
    use ledger_core::ports::Submission;
    use ledger_core::{AccountKind, Command, CreatePayout, LedgerStore, PayoutId};
    let (database, ledger) = grouped_setup().await;
    let account = customers(&ledger, 1, "100").await[0];
    let existing =
        ledger.request_bank_transfer(PayoutDirection::Outbound, account, usd("1"), None, None).await.unwrap();
    let duplicate_id: PayoutId = existing.payout.unwrap().id;
    let clearing = ledger.system_account(AccountKind::PayoutClearing, Currency::USD).await.unwrap();
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.unwrap();
    let request = |id: PayoutId| {
        vec![Submission::from(Command::CreatePayout(CreatePayout {
            payout_id: id,
            entry_id: ledger.new_id(),
            direction: PayoutDirection::Outbound,
            account,
            clearing,
            settlement,
            amount: usd("1"),
            currency: Currency::USD,
            bank_account: None,
            reference: None,
        }))]
    };
    let mut batches = vec![request(duplicate_id)];
    for _ in 0..15 {
        batches.push(request(ledger.new_id()));
    }
    let calls = batches.into_iter().map(|batch| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.store().execute(&batch, START).await })
    });
    let results: Vec<_> = join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert!(results[0].is_err(), "the duplicate id is refused by the database: {:?}", results[0]);
    for result in &results[1..] {
        let outcomes = result.as_ref().expect("neighbours commit");
        assert!(outcomes[0].is_ok());
    }
    assert_eq!(ledger.balance(account).await.unwrap().posted, usd("84"));
    assert_books_balance(&ledger).await;
    database.drop_database().await;
}
