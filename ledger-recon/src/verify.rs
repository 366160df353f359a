//! The per-account checks, as a pure function over rows as stored: an account's postings after
//! a starting point (the beginning, or a verified checkpoint), checked against its stored
//! balance, pending figure and chain head.

use ledger_core::chain::{GENESIS, Link};
use ledger_core::{AccountId, EntryId, Micros};
use uuid::Uuid;

use crate::report::{Check, Finding, amount};

/// Where verification of an account starts: nothing verified yet, or a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// The last posting already verified (0: none).
    pub seq: i64,
    /// The balance after it.
    pub balance: i64,
    /// Its chain link.
    pub hash: [u8; 32],
}

impl Start {
    /// The beginning of every account.
    pub const GENESIS: Start = Start { seq: 0, balance: 0, hash: GENESIS };
}

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// Its id.
    pub id: Uuid,
    /// Its currency code.
    pub currency: String,
    /// Stored posted balance.
    pub posted: i64,
    /// Stored pending figure.
    pub pending: i64,
    /// Stored chain head (None: no postings).
    pub head: Option<Vec<u8>>,
}

/// A posting as stored, with its entry's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostingRow {
    /// Global write order.
    pub seq: i64,
    /// Its entry.
    pub entry: Uuid,
    /// Its place in the entry.
    pub position: i16,
    /// Its currency code.
    pub currency: String,
    /// Signed amount.
    pub amount: i64,
    /// Stored running balance.
    pub balance_after: i64,
    /// Posting time, Unix micros.
    pub posted_at: i64,
    /// Stored chain link (None for rows written before chains).
    pub hash: Option<Vec<u8>>,
    /// The entry's kind (None if the entry row is missing).
    pub entry_kind: Option<String>,
    /// The entry's description.
    pub description: Option<String>,
    /// The entry's time, Unix micros (None if the entry row is missing).
    pub entry_at: Option<i64>,
}

/// Checks one account's postings (in seq order, all after `start`) against what is stored, and
/// returns where a later run may start if everything held.
pub fn verify_account(
    account: &AccountRow,
    start: Start,
    postings: &[PostingRow],
    open_holds: i128,
    findings: &mut Vec<Finding>,
) -> Option<Start> {
    let before = findings.len();
    let on = |check, detail: String| Finding { account: Some(account.id), ..Finding::new(check, detail) };
    let mut balance = i128::from(start.balance);
    let mut hash = start.hash;
    let (mut balance_broken, mut chain_broken) = (false, false);
    for p in postings {
        if p.currency != account.currency {
            findings.push(Finding {
                entry: Some(p.entry),
                posting_seq: Some(p.seq),
                ..on(
                    Check::PostingMisplaced,
                    format!("posting in {} on an account in {}", p.currency, account.currency),
                )
            });
        }
        balance += i128::from(p.amount);
        if !balance_broken && balance != i128::from(p.balance_after) {
            balance_broken = true;
            findings.push(Finding {
                entry: Some(p.entry),
                posting_seq: Some(p.seq),
                ..on(
                    Check::RunningBalanceBroken,
                    format!(
                        "running balance stored {}, follows as {}",
                        amount(p.balance_after.into()),
                        amount(balance)
                    ),
                )
            });
        }
        if !chain_broken {
            let link = Link {
                entry: EntryId(p.entry),
                entry_kind: p.entry_kind.as_deref().unwrap_or(""),
                description: p.description.as_deref(),
                entry_at_micros: p.entry_at.unwrap_or(i64::MIN),
                position: p.position,
                account: AccountId(account.id),
                currency: &p.currency,
                amount: Micros::new(p.amount),
                balance_after: Micros::new(p.balance_after),
                posted_at_micros: p.posted_at,
            };
            let expected = link.hash(&hash);
            if p.hash.as_deref() == Some(expected.as_slice()) && p.entry_kind.is_some() {
                hash = expected;
            } else {
                chain_broken = true;
                let why = match (&p.hash, &p.entry_kind) {
                    (_, None) => "its entry is missing".to_owned(),
                    (None, _) => "the posting has no chain link".to_owned(),
                    (Some(_), _) => "the posting or its entry differs from what was chained".to_owned(),
                };
                findings.push(Finding {
                    entry: Some(p.entry),
                    posting_seq: Some(p.seq),
                    ..on(Check::HashChainBroken, format!("first broken link: {why}"))
                });
            }
        }
    }
    if balance != i128::from(account.posted) {
        findings.push(on(
            Check::PostedMismatch,
            format!("stored {}, postings sum to {}", amount(account.posted.into()), amount(balance)),
        ));
    }
    if open_holds != i128::from(account.pending) {
        findings.push(on(
            Check::PendingMismatch,
            format!("stored {}, open holds sum to {}", amount(account.pending.into()), amount(open_holds)),
        ));
    }
    if !chain_broken {
        let stored = account.head.as_deref().unwrap_or(GENESIS.as_slice());
        if stored != hash.as_slice() {
            findings.push(on(
                Check::ChainHeadMismatch,
                "the account's chain head is not its last posting's link (a posting was removed or added)".to_owned(),
            ));
        }
    }
    let clean = findings.len() == before;
    let last = postings.last().map_or(start.seq, |p| p.seq);
    clean.then(|| Start { seq: last, balance: i64::try_from(balance).unwrap_or(i64::MAX), hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACCOUNT: u128 = 42;

    /// A correctly chained history of `amounts` on one account.
    fn history(amounts: &[i64]) -> (AccountRow, Vec<PostingRow>) {
        let mut postings = Vec::new();
        let (mut balance, mut hash) = (0i64, GENESIS);
        for (i, amount) in amounts.iter().enumerate() {
            balance += amount;
            let seq = i64::try_from(i).unwrap() + 1;
            let mut p = PostingRow {
                seq,
                entry: Uuid::from_u128(1000 + i as u128),
                position: 0,
                currency: "USD".into(),
                amount: *amount,
                balance_after: balance,
                posted_at: seq * 1000,
                hash: None,
                entry_kind: Some("transfer".into()),
                description: Some(format!("n{i}")),
                entry_at: Some(seq * 1000),
            };
            hash = link_of(&p).hash(&hash);
            p.hash = Some(hash.to_vec());
            postings.push(p);
        }
        let account = AccountRow {
            id: Uuid::from_u128(ACCOUNT),
            currency: "USD".into(),
            posted: balance,
            pending: 0,
            head: (!amounts.is_empty()).then(|| hash.to_vec()),
        };
        (account, postings)
    }

    fn link_of(p: &PostingRow) -> Link<'_> {
        Link {
            entry: EntryId(p.entry),
            entry_kind: p.entry_kind.as_deref().unwrap(),
            description: p.description.as_deref(),
            entry_at_micros: p.entry_at.unwrap(),
            position: p.position,
            account: AccountId(Uuid::from_u128(ACCOUNT)),
            currency: &p.currency,
            amount: Micros::new(p.amount),
            balance_after: Micros::new(p.balance_after),
            posted_at_micros: p.posted_at,
        }
    }

    fn checks(found: &[Finding]) -> Vec<Check> {
        found.iter().map(|f| f.check).collect()
    }

    proptest! {
        #[test]
        fn a_correct_history_verifies_whole_or_from_any_checkpoint(
            amounts in prop::collection::vec(-1_000_000i64..1_000_000, 0..40),
            cut in any::<prop::sample::Index>(),
        ) {
            let (account, postings) = history(&amounts);
            let mut found = Vec::new();
            let end = verify_account(&account, Start::GENESIS, &postings, 0, &mut found);
            prop_assert!(found.is_empty(), "{found:?}");
            prop_assert_eq!(end.map(|s| s.balance), Some(account.posted));
            // Resuming from the checkpoint after any prefix reaches the same end.
            let cut = cut.index(postings.len() + 1);
            let mid = verify_account(&AccountRow { posted: postings[..cut].last().map_or(0, |p| p.balance_after),
                head: postings[..cut].last().and_then(|p| p.hash.clone()), ..account.clone() },
                Start::GENESIS, &postings[..cut], 0, &mut found).expect("prefix verifies");
            prop_assert_eq!(verify_account(&account, mid, &postings[cut..], 0, &mut found), end);
            prop_assert!(found.is_empty());
        }

        #[test]
        fn an_edited_posting_breaks_the_chain_at_that_posting(
            amounts in prop::collection::vec(1i64..1_000_000, 1..40),
            at in any::<prop::sample::Index>(),
            field in 0u8..4,
        ) {
            let (account, mut postings) = history(&amounts);
            let at = at.index(postings.len());
            let p = &mut postings[at];
            match field {
                0 => p.description = Some("edited".into()),
                1 => p.entry_kind = Some("deposit".into()),
                2 => p.posted_at += 1,
                _ => p.position += 1,
            }
            let mut found = Vec::new();
            prop_assert_eq!(verify_account(&account, Start::GENESIS, &postings, 0, &mut found), None);
            prop_assert_eq!(checks(&found), vec![Check::HashChainBroken]);
            prop_assert_eq!(found[0].posting_seq, Some(postings[at].seq));
        }

        #[test]
        fn a_removed_posting_is_named(
            amounts in prop::collection::vec(1i64..1_000_000, 1..40),
            at in any::<prop::sample::Index>(),
        ) {
            let (account, mut postings) = history(&amounts);
            let at = at.index(postings.len());
            postings.remove(at);
            let mut found = Vec::new();
            prop_assert_eq!(verify_account(&account, Start::GENESIS, &postings, 0, &mut found), None);
            prop_assert!(checks(&found).contains(&Check::PostedMismatch));
            if at < postings.len() {
                // The next posting's link no longer follows.
                prop_assert!(found.iter().any(|f| f.check == Check::HashChainBroken && f.posting_seq == Some(postings[at].seq)));
            } else {
                prop_assert!(checks(&found).contains(&Check::ChainHeadMismatch));
            }
        }
    }

    #[test]
    fn stored_balances_and_running_balances_are_checked() {
        let (mut account, mut postings) = history(&[5, 7, -3]);
        postings[1].balance_after += 1;
        account.posted += 2;
        account.pending = 4;
        let mut found = Vec::new();
        assert_eq!(verify_account(&account, Start::GENESIS, &postings, 0, &mut found), None);
        assert_eq!(
            checks(&found),
            [Check::RunningBalanceBroken, Check::HashChainBroken, Check::PostedMismatch, Check::PendingMismatch]
        );
        assert_eq!(found[0].posting_seq, Some(2));
        assert!(found[2].detail.contains("stored 0.000011, postings sum to 0.000009"), "{}", found[2].detail);
    }

    #[test]
    fn a_posting_in_another_currency_is_misplaced() {
        let (account, mut postings) = history(&[5]);
        postings[0].currency = "EUR".into();
        let mut found = Vec::new();
        verify_account(&account, Start::GENESIS, &postings, 0, &mut found);
        assert_eq!(checks(&found), [Check::PostingMisplaced, Check::HashChainBroken]);
    }
}
