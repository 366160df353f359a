//! Reconciliation checks as pure functions over plain records.
//!
//! The records are deliberately raw (not [`JournalEntry`](crate::JournalEntry)s, which cannot
//! be unbalanced by construction): recon must be able to look at whatever storage holds,
//! corrupted or not, and name what is wrong. Every check sums in `i128`, so it cannot overflow
//! on any data.

use std::collections::{BTreeMap, HashMap};

use crate::ids::{AccountId, EntryId, PayoutId};
use crate::money::{Currency, Micros};
use crate::state::{PayoutDirection, PayoutStatus};

/// An account as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    /// Its id.
    pub id: AccountId,
    /// Its currency.
    pub currency: Currency,
    /// Its stored posted balance.
    pub posted: Micros,
    /// Its stored pending figure.
    pub pending: Micros,
}

/// A posting as stored, in the order it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostingRecord {
    /// Its entry.
    pub entry: EntryId,
    /// Its account.
    pub account: AccountId,
    /// Its currency.
    pub currency: Currency,
    /// Its signed amount.
    pub amount: Micros,
    /// The running balance stored with it.
    pub balance_after: Micros,
}

/// An open hold as stored: a pending debit on `account`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenHoldRecord {
    /// The debited account.
    pub account: AccountId,
    /// The reserved amount.
    pub amount: Micros,
}

/// A payout as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayoutRecord {
    /// Its id.
    pub id: PayoutId,
    /// Out or in.
    pub direction: PayoutDirection,
    /// Its status.
    pub status: PayoutStatus,
    /// Its amount.
    pub amount: Micros,
    /// Its clearing account (outbound payouts).
    pub clearing: Option<AccountId>,
}

/// Everything the checks look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every account.
    pub accounts: Vec<AccountRecord>,
    /// Every posting, in write order.
    pub postings: Vec<PostingRecord>,
    /// Every open hold.
    pub open_holds: Vec<OpenHoldRecord>,
    /// Every payout.
    pub payouts: Vec<PayoutRecord>,
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discrepancy {
    /// The stored posted balance is not the sum of the account's postings.
    PostedMismatch {
        /// The account.
        account: AccountId,
        /// What is stored.
        stored: Micros,
        /// The sum of its postings.
        computed: i128,
    },
    /// The stored pending figure is not the sum of the account's open holds.
    PendingMismatch {
        /// The account.
        account: AccountId,
        /// What is stored.
        stored: Micros,
        /// The sum of its open holds.
        computed: i128,
    },
    /// A posting's running balance does not follow from the one before it.
    RunningBalanceBroken {
        /// The account.
        account: AccountId,
        /// The entry of the first posting that breaks the chain.
        entry: EntryId,
        /// What the running balance should be.
        expected: i128,
        /// What is stored.
        stored: Micros,
    },
    /// An entry's postings in one currency do not sum to zero.
    EntryUnbalanced {
        /// The entry.
        entry: EntryId,
        /// The currency.
        currency: Currency,
        /// What they sum to.
        sum: i128,
    },
    /// A posting is in another currency than its account, or on an unknown account.
    PostingMisplaced {
        /// The entry.
        entry: EntryId,
        /// The account.
        account: AccountId,
    },
    /// The balances of all accounts in one currency do not sum to zero.
    CurrencyNotConserved {
        /// The currency.
        currency: Currency,
        /// What they sum to.
        sum: i128,
    },
    /// A payout clearing account does not hold exactly the funds of its in-flight payouts.
    ClearingMismatch {
        /// The clearing account.
        account: AccountId,
        /// Its stored balance.
        stored: Micros,
        /// The sum of its in-flight payouts.
        expected: i128,
    },
}

/// Runs every check and returns what is wrong, most fundamental first: per-entry balance, then
/// per-account sums and chains, then per-currency conservation, then payout clearing.
pub fn reconcile(snapshot: &Snapshot) -> Vec<Discrepancy> {
    let mut found = check_entries(&snapshot.postings);
    found.extend(check_accounts(&snapshot.accounts, &snapshot.postings, &snapshot.open_holds));
    found.extend(check_conservation(&snapshot.accounts));
    found.extend(check_clearing(&snapshot.accounts, &snapshot.payouts));
    found
}

/// Every entry balances per currency.
pub fn check_entries(postings: &[PostingRecord]) -> Vec<Discrepancy> {
    let mut sums: BTreeMap<(EntryId, Currency), i128> = BTreeMap::new();
    for p in postings {
        *sums.entry((p.entry, p.currency)).or_default() += i128::from(p.amount.get());
    }
    sums.into_iter()
        .filter(|(_, sum)| *sum != 0)
        .map(|((entry, currency), sum)| Discrepancy::EntryUnbalanced { entry, currency, sum })
        .collect()
}

/// Every account's stored balances equal its postings and open holds, and its running
/// balances chain without gaps.
pub fn check_accounts(
    accounts: &[AccountRecord],
    postings: &[PostingRecord],
    open_holds: &[OpenHoldRecord],
) -> Vec<Discrepancy> {
    let by_id: HashMap<AccountId, &AccountRecord> = accounts.iter().map(|a| (a.id, a)).collect();
    let mut found = Vec::new();
    let mut running: HashMap<AccountId, i128> = HashMap::new();
    let mut chain_broken: HashMap<AccountId, bool> = HashMap::new();
    for p in postings {
        match by_id.get(&p.account) {
            Some(account) if account.currency == p.currency => {}
            _ => found.push(Discrepancy::PostingMisplaced { entry: p.entry, account: p.account }),
        }
        let sum = running.entry(p.account).or_default();
        *sum += i128::from(p.amount.get());
        let broken = chain_broken.entry(p.account).or_default();
        if !*broken && *sum != i128::from(p.balance_after.get()) {
            // Report only the first broken link of each account: the rest follow from it.
            *broken = true;
            found.push(Discrepancy::RunningBalanceBroken {
                account: p.account,
                entry: p.entry,
                expected: *sum,
                stored: p.balance_after,
            });
        }
    }
    let mut pending: HashMap<AccountId, i128> = HashMap::new();
    for h in open_holds {
        *pending.entry(h.account).or_default() += i128::from(h.amount.get());
    }
    for account in accounts {
        let computed = running.get(&account.id).copied().unwrap_or(0);
        if computed != i128::from(account.posted.get()) {
            found.push(Discrepancy::PostedMismatch { account: account.id, stored: account.posted, computed });
        }
        let computed = pending.get(&account.id).copied().unwrap_or(0);
        if computed != i128::from(account.pending.get()) {
            found.push(Discrepancy::PendingMismatch { account: account.id, stored: account.pending, computed });
        }
    }
    found
}

/// Per currency, all posted balances sum to zero.
pub fn check_conservation(accounts: &[AccountRecord]) -> Vec<Discrepancy> {
    let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
    for a in accounts {
        *sums.entry(a.currency).or_default() += i128::from(a.posted.get());
    }
    sums.into_iter()
        .filter(|(_, sum)| *sum != 0)
        .map(|(currency, sum)| Discrepancy::CurrencyNotConserved { currency, sum })
        .collect()
}

/// Each payout clearing account holds exactly the funds of its outbound payouts that are still
/// in flight (PENDING, PROCESSING, MANUAL_REVIEW): no funds held for a finished payout, none
/// missing for a live one.
pub fn check_clearing(accounts: &[AccountRecord], payouts: &[PayoutRecord]) -> Vec<Discrepancy> {
    let mut expected: BTreeMap<AccountId, i128> = BTreeMap::new();
    for p in payouts {
        if let Some(clearing) = p.clearing {
            let held = expected.entry(clearing).or_default();
            if p.direction == PayoutDirection::Outbound && p.status.holds_funds() {
                *held += i128::from(p.amount.get());
            }
        }
    }
    accounts
        .iter()
        .filter_map(|a| {
            let expected = *expected.get(&a.id)?;
            (expected != i128::from(a.posted.get())).then_some(Discrepancy::ClearingMismatch {
                account: a.id,
                stored: a.posted,
                expected,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn account(n: u128, posted: i64, pending: i64) -> AccountRecord {
        AccountRecord {
            id: AccountId(Uuid::from_u128(n)),
            currency: Currency::USD,
            posted: Micros::new(posted),
            pending: Micros::new(pending),
        }
    }

    fn posting(entry: u128, account: u128, amount: i64, after: i64) -> PostingRecord {
        PostingRecord {
            entry: EntryId(Uuid::from_u128(entry)),
            account: AccountId(Uuid::from_u128(account)),
            currency: Currency::USD,
            amount: Micros::new(amount),
            balance_after: Micros::new(after),
        }
    }

    fn clean() -> Snapshot {
        Snapshot {
            accounts: vec![account(1, -100, 0), account(2, 70, 10), account(3, 30, 0)],
            postings: vec![
                posting(10, 1, -100, -100),
                posting(10, 2, 100, 100),
                posting(11, 2, -30, 70),
                posting(11, 3, 30, 30),
            ],
            open_holds: vec![OpenHoldRecord { account: AccountId(Uuid::from_u128(2)), amount: Micros::new(10) }],
            payouts: vec![],
        }
    }

    fn check(corrupt: impl FnOnce(&mut Snapshot), expected: &[Discrepancy]) {
        let mut snapshot = clean();
        corrupt(&mut snapshot);
        assert_eq!(reconcile(&snapshot), expected);
    }

    #[test]
    fn a_clean_ledger_has_no_discrepancies() {
        check(|_| {}, &[]);
    }

    #[test]
    fn each_corruption_is_named() {
        let a = |n| AccountId(Uuid::from_u128(n));
        let e = |n| EntryId(Uuid::from_u128(n));
        check(
            |s| s.accounts[2].posted = Micros::new(31),
            &[
                Discrepancy::PostedMismatch { account: a(3), stored: Micros::new(31), computed: 30 },
                Discrepancy::CurrencyNotConserved { currency: Currency::USD, sum: 1 },
            ],
        );
        check(
            |s| s.accounts[1].pending = Micros::ZERO,
            &[Discrepancy::PendingMismatch { account: a(2), stored: Micros::ZERO, computed: 10 }],
        );
        check(
            |s| s.postings[2].balance_after = Micros::new(71),
            &[Discrepancy::RunningBalanceBroken { account: a(2), entry: e(11), expected: 70, stored: Micros::new(71) }],
        );
        check(
            |s| {
                s.postings[3].amount = Micros::new(31);
                s.postings[3].balance_after = Micros::new(31);
                s.accounts[2].posted = Micros::new(31);
            },
            &[
                Discrepancy::EntryUnbalanced { entry: e(11), currency: Currency::USD, sum: 1 },
                Discrepancy::CurrencyNotConserved { currency: Currency::USD, sum: 1 },
            ],
        );
        check(
            |s| s.postings[3].currency = Currency::EUR,
            &[
                Discrepancy::EntryUnbalanced { entry: e(11), currency: Currency::EUR, sum: 30 },
                Discrepancy::EntryUnbalanced { entry: e(11), currency: Currency::USD, sum: -30 },
                Discrepancy::PostingMisplaced { entry: e(11), account: a(3) },
            ],
        );
    }

    #[test]
    fn clearing_must_hold_exactly_the_in_flight_payouts() {
        let payout = |status| PayoutRecord {
            id: PayoutId(Uuid::from_u128(50)),
            direction: PayoutDirection::Outbound,
            status,
            amount: Micros::new(30),
            clearing: Some(AccountId(Uuid::from_u128(3))),
        };
        check(|s| s.payouts.push(payout(PayoutStatus::Processing)), &[]);
        check(
            |s| s.payouts.push(payout(PayoutStatus::Failed)),
            &[Discrepancy::ClearingMismatch {
                account: AccountId(Uuid::from_u128(3)),
                stored: Micros::new(30),
                expected: 0,
            }],
        );
    }
}
