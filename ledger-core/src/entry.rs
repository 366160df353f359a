//! Journal entries and postings. An entry is balanced by construction: [`JournalEntry::new`]
//! is the only way to make one, and it refuses any entry whose postings do not sum to zero in
//! every currency. Entries are immutable once made; a correction is a new entry that
//! [reverses](EntryLinks::reverses) the old one.

use std::collections::BTreeMap;

use crate::account::Metadata;
use crate::fx::FxRate;
use crate::ids::{AccountId, EntryId, HoldId, PayoutId, QuoteId, Timestamp};
use crate::money::{Currency, Micros};

/// Which recipe produced an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// Customer to customer, one currency.
    Transfer,
    /// FX, 4 legs through the liquidity accounts.
    Exchange,
    /// Money received from the bank: settlement to customer.
    Deposit,
    /// A two-phase hold captured (fully or partly).
    HoldCapture,
    /// Funds of a new payout moved from the customer to payout clearing.
    PayoutHold,
    /// A payout paid by the bank: clearing to settlement.
    PayoutSettle,
    /// A failed or cancelled payout: clearing back to the customer.
    PayoutRelease,
    /// A completed payout returned by the bank: settlement back to the customer.
    PayoutReturn,
    /// A completed deposit reversed (charged back): customer to settlement.
    DepositReturn,
    /// The mirror image of an earlier entry.
    Reversal,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 10] = [
        EntryKind::Transfer,
        EntryKind::Exchange,
        EntryKind::Deposit,
        EntryKind::HoldCapture,
        EntryKind::PayoutHold,
        EntryKind::PayoutSettle,
        EntryKind::PayoutRelease,
        EntryKind::PayoutReturn,
        EntryKind::DepositReturn,
        EntryKind::Reversal,
    ];

    /// The stable snake-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Transfer => "transfer",
            EntryKind::Exchange => "exchange",
            EntryKind::Deposit => "deposit",
            EntryKind::HoldCapture => "hold_capture",
            EntryKind::PayoutHold => "payout_hold",
            EntryKind::PayoutSettle => "payout_settle",
            EntryKind::PayoutRelease => "payout_release",
            EntryKind::PayoutReturn => "payout_return",
            EntryKind::DepositReturn => "deposit_return",
            EntryKind::Reversal => "reversal",
        }
    }

    /// The inverse of [`EntryKind::as_str`].
    pub fn parse(name: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether an admin may reverse entries of this kind. Payout and deposit-pipeline entries
    /// are corrected through their state machine (cancel, fail, return), never by hand, so the
    /// payout's status and its postings cannot disagree; a reversal is never reversed again.
    pub const fn is_reversible(self) -> bool {
        matches!(self, EntryKind::Transfer | EntryKind::Exchange | EntryKind::Deposit | EntryKind::HoldCapture)
    }
}

/// One leg of an entry: a signed amount on one account. Positive credits the account (its
/// balance grows), negative debits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Posting {
    /// The account.
    pub account: AccountId,
    /// The account's currency.
    pub currency: Currency,
    /// Signed, never zero.
    pub amount: Micros,
    /// The account's posted balance right after this posting: statements and point-in-time
    /// balances read it instead of summing history.
    pub balance_after: Micros,
}

/// The rate and both amounts of an exchange, kept with its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FxApplied {
    /// Units of the target currency per unit of the source, after the spread.
    pub rate: FxRate,
    /// Debited from the source, in its currency.
    pub from_amount: Micros,
    /// Credited to the destination, in its currency.
    pub to_amount: Micros,
    /// The quote that locked the rate, when one did.
    pub quote: Option<QuoteId>,
}

/// What an entry refers to besides its postings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryLinks {
    /// The entry this one reverses.
    pub reverses: Option<EntryId>,
    /// The hold this entry captures.
    pub hold: Option<HoldId>,
    /// The payout or deposit this entry belongs to.
    pub payout: Option<PayoutId>,
    /// FX details for exchanges.
    pub fx: Option<FxApplied>,
}

/// Everything about an entry except its postings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Its id.
    pub id: EntryId,
    /// The recipe that made it.
    pub kind: EntryKind,
    /// When it was posted.
    pub created_at: Timestamp,
    /// Free text from the client.
    pub description: Option<String>,
    /// Client key/value pairs.
    pub metadata: Metadata,
    /// Links to holds, payouts, reversed entries and FX details.
    pub links: EntryLinks,
}

/// A balanced, immutable journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    header: EntryHeader,
    postings: Vec<Posting>,
}

/// Why postings do not form an entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// An entry needs at least two postings.
    #[error("an entry needs at least two postings")]
    TooFewPostings,
    /// Every posting moves money.
    #[error("a posting of zero")]
    ZeroPosting,
    /// The postings of one currency do not sum to zero.
    #[error("postings in {currency} sum to {sum_micros} micros, not zero")]
    Unbalanced {
        /// The currency that does not balance.
        currency: Currency,
        /// What its postings sum to.
        sum_micros: i128,
    },
}

/// Per-currency sums of signed amounts, in `i128` so that summing any number of `i64` amounts
/// cannot overflow in practice.
pub fn sums_by_currency(amounts: impl IntoIterator<Item = (Currency, Micros)>) -> BTreeMap<Currency, i128> {
    let mut sums = BTreeMap::new();
    for (currency, amount) in amounts {
        *sums.entry(currency).or_insert(0_i128) += i128::from(amount.get());
    }
    sums
}

impl JournalEntry {
    /// Makes an entry, refusing postings that do not balance per currency.
    pub fn new(header: EntryHeader, postings: Vec<Posting>) -> Result<JournalEntry, EntryError> {
        if postings.len() < 2 {
            return Err(EntryError::TooFewPostings);
        }
        if postings.iter().any(|p| p.amount == Micros::ZERO) {
            return Err(EntryError::ZeroPosting);
        }
        let sums = sums_by_currency(postings.iter().map(|p| (p.currency, p.amount)));
        if let Some((currency, sum)) = sums.into_iter().find(|(_, sum)| *sum != 0) {
            return Err(EntryError::Unbalanced { currency, sum_micros: sum });
        }
        Ok(JournalEntry { header, postings })
    }

    /// The header.
    pub fn header(&self) -> &EntryHeader {
        &self.header
    }

    /// The postings, in the order the recipe produced them.
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Its id.
    pub fn id(&self) -> EntryId {
        self.header.id
    }

    /// Its kind.
    pub fn kind(&self) -> EntryKind {
        self.header.kind
    }

    /// When it was posted.
    pub fn created_at(&self) -> Timestamp {
        self.header.created_at
    }

    /// The posting on `account`, if the entry touches it.
    pub fn posting_for(&self, account: AccountId) -> Option<&Posting> {
        self.postings.iter().find(|p| p.account == account)
    }

    /// The account on the other side of `account`'s posting: the first posting of the same
    /// currency with the opposite sign (for a 4-leg exchange, the liquidity account).
    pub fn counterparty_of(&self, account: AccountId) -> Option<AccountId> {
        let own = self.posting_for(account)?;
        self.postings
            .iter()
            .find(|p| {
                p.account != account && p.currency == own.currency && p.amount.is_negative() != own.amount.is_negative()
            })
            .map(|p| p.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn header() -> EntryHeader {
        EntryHeader {
            id: EntryId(Uuid::from_u128(1)),
            kind: EntryKind::Transfer,
            created_at: Timestamp::EPOCH,
            description: None,
            metadata: Metadata::new(),
            links: EntryLinks::default(),
        }
    }

    fn posting(account: u128, currency: Currency, amount: i64) -> Posting {
        Posting {
            account: AccountId(Uuid::from_u128(account)),
            currency,
            amount: Micros::new(amount),
            balance_after: Micros::new(amount),
        }
    }

    #[test]
    fn balanced_entries_are_accepted_per_currency() {
        let postings = vec![
            posting(1, Currency::USD, -100),
            posting(2, Currency::USD, 100),
            posting(3, Currency::EUR, -90),
            posting(4, Currency::EUR, 90),
        ];
        let entry = JournalEntry::new(header(), postings).expect("balanced");
        assert_eq!(entry.counterparty_of(AccountId(Uuid::from_u128(1))), Some(AccountId(Uuid::from_u128(2))));
    }

    #[test]
    fn unbalanced_entries_cannot_be_constructed() {
        let check = |postings: Vec<Posting>, expected: EntryError| {
            assert_eq!(JournalEntry::new(header(), postings), Err(expected));
        };
        check(vec![posting(1, Currency::USD, 5)], EntryError::TooFewPostings);
        check(vec![posting(1, Currency::USD, 0), posting(2, Currency::USD, 0)], EntryError::ZeroPosting);
        check(
            vec![posting(1, Currency::USD, -100), posting(2, Currency::USD, 99)],
            EntryError::Unbalanced { currency: Currency::USD, sum_micros: -1 },
        );
        // Balanced in total but not per currency.
        check(
            vec![posting(1, Currency::USD, -100), posting(2, Currency::EUR, 100)],
            EntryError::Unbalanced { currency: Currency::EUR, sum_micros: 100 },
        );
        // Sums that would overflow i64 are still judged exactly.
        check(
            vec![posting(1, Currency::USD, i64::MAX), posting(2, Currency::USD, i64::MAX)],
            EntryError::Unbalanced { currency: Currency::USD, sum_micros: 2 * i128::from(i64::MAX) },
        );
    }
}
