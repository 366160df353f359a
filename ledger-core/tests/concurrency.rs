//! The in-memory store under concurrent use: many threads moving money among the same
//! accounts at once keep the books exact.

use std::sync::Arc;
use std::thread;

use ledger_core::recon::reconcile;
use ledger_core::{
    Currency, Ledger, LedgerError, ManualClock, MemoryStore, Micros, Rejection, SequentialIds, Timestamp, UserId,
};

#[test]
fn concurrent_transfers_keep_the_books_exact() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_800_000_000)));
    let ledger = Arc::new(Ledger::new(Arc::new(MemoryStore::new()), clock, Arc::new(SequentialIds::default())));
    let accounts = pollster::block_on(async {
        ledger.open_system_accounts(Currency::USD).await.unwrap();
        let mut accounts = Vec::new();
        for _ in 0..10 {
            let owner: UserId = ledger.new_id();
            let id = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
            ledger.deposit(id, Micros::from_units(100).unwrap(), None).await.unwrap();
            accounts.push(id);
        }
        accounts
    });
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (ledger, accounts) = (ledger.clone(), accounts.clone());
            thread::spawn(move || {
                let mut accepted = 0;
                // A small deterministic generator per thread: no randomness crate needed.
                let mut state = t.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                for _ in 0..500 {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let from = accounts[(state >> 33) as usize % accounts.len()];
                    let to = accounts[(state >> 17) as usize % accounts.len()];
                    let amount = Micros::new(((state >> 40) % 30_000_000) as i64 + 1);
                    match pollster::block_on(ledger.transfer(from, to, amount)) {
                        Ok(_) => accepted += 1,
                        Err(LedgerError::Rejected(Rejection::InsufficientFunds(_) | Rejection::SameAccount)) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(accepted > 1_000, "only {accepted} transfers went through");
    assert!(reconcile(&ledger.store().snapshot()).is_empty());
    let total: i64 = pollster::block_on(async {
        let mut total = 0;
        for id in &accounts {
            let balance = ledger.balance(*id).await.unwrap();
            assert!(!balance.posted.is_negative());
            total += balance.posted.get();
        }
        total
    });
    assert_eq!(total, 1_000_000_000, "customers' money is conserved");
}
