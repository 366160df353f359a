//! [`Rejection`]: every reason the ledger refuses a command, as one closed enum.
//!
//! **Order of precedence.** When a command is wrong in several ways, the first of these that
//! applies is reported, so the same bad command always gets the same answer:
//!
//! 1. the amount itself: [`AmountNotPositive`](Rejection::AmountNotPositive);
//! 2. what the command names must exist: `AccountNotFound`, `HoldNotFound`, `PayoutNotFound`,
//!    `EntryNotFound`;
//! 3. its shape: `SameAccount`, `SameCurrency`, `CurrencyMismatch`, `AmountNotWholeMinorUnits`
//!    (which needs the currency), `WrongAccountKind`, `DuplicateReference`;
//! 4. the accounts' status: `AccountNotActive`;
//! 5. state machines: `IllegalHoldTransition`, `IllegalPayoutTransition`, `HoldExpired`,
//!    `HoldNotExpired`, `CaptureExceedsHold`, `NotReversible`, `AlreadyReversed`;
//! 6. pricing: `QuoteExpired`, `QuoteMismatch`, `ExchangeTooSmall`;
//! 7. funds: `InsufficientFunds`, `OverdraftExceeded`;
//! 8. arithmetic: `Overflow`.
//!
//! A rejected command changes nothing. A broken invariant (an unbalanced entry from a recipe)
//! is not a rejection but a bug, and panics.

use crate::account::{AccountKind, AccountStatus};
use crate::ids::{AccountId, EntryId, HoldId, PayoutId};
use crate::money::Currency;
use crate::state::{HoldStatus, PayoutStatus};

/// Why the ledger refused a command. See the module docs for the order of precedence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Amounts that move money must be above zero.
    #[error("amount must be positive")]
    AmountNotPositive,
    /// Money that crosses the bank boundary must be whole minor units (cents, yen).
    #[error("amount must be a whole number of {currency} minor units")]
    AmountNotWholeMinorUnits {
        /// The currency whose minor unit applies.
        currency: Currency,
    },
    /// No such account.
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    /// No such hold.
    #[error("hold {0} not found")]
    HoldNotFound(HoldId),
    /// No such payout or deposit.
    #[error("payout {0} not found")]
    PayoutNotFound(PayoutId),
    /// No such entry.
    #[error("entry {0} not found")]
    EntryNotFound(EntryId),
    /// Source and destination are the same account.
    #[error("source and destination are the same account")]
    SameAccount,
    /// An exchange needs two different currencies; use a transfer instead.
    #[error("both accounts hold {0}: use an internal transfer")]
    SameCurrency(Currency),
    /// An account holds a different currency than the command needs.
    #[error("account {account} holds {found}, expected {expected}")]
    CurrencyMismatch {
        /// The account at fault.
        account: AccountId,
        /// The currency needed.
        expected: Currency,
        /// The account's currency.
        found: Currency,
    },
    /// An account is of the wrong kind for its role in the command.
    #[error("account {account} is a {found:?} account, expected {expected:?}")]
    WrongAccountKind {
        /// The account at fault.
        account: AccountId,
        /// The kind needed.
        expected: AccountKind,
        /// Its kind.
        found: AccountKind,
    },
    /// The customer already has a payout or deposit with this reference.
    #[error("reference {0:?} is already used")]
    DuplicateReference(String),
    /// A frozen or closed account cannot take part in new movements.
    #[error("account {account} is {status:?}")]
    AccountNotActive {
        /// The account at fault.
        account: AccountId,
        /// Its status.
        status: AccountStatus,
    },
    /// The hold cannot make this transition.
    #[error("hold cannot go from {from:?} to {to:?}")]
    IllegalHoldTransition {
        /// Its status.
        from: HoldStatus,
        /// The status asked for.
        to: HoldStatus,
    },
    /// The payout cannot make this transition.
    #[error("payout cannot go from {from:?} to {to:?}")]
    IllegalPayoutTransition {
        /// Its status.
        from: PayoutStatus,
        /// The status asked for.
        to: PayoutStatus,
    },
    /// The hold's expiry has passed; it can only be expired now.
    #[error("hold {0} has expired")]
    HoldExpired(HoldId),
    /// The hold's expiry has not come yet.
    #[error("hold {0} has not expired")]
    HoldNotExpired(HoldId),
    /// A capture asked for more than the hold reserves.
    #[error("capture exceeds the held amount")]
    CaptureExceedsHold,
    /// Entries of this kind are corrected through their own state machine, never reversed.
    #[error("entry {0} cannot be reversed")]
    NotReversible(EntryId),
    /// The entry was reversed already.
    #[error("entry {entry} was already reversed by {by}")]
    AlreadyReversed {
        /// The entry.
        entry: EntryId,
        /// Its reversal.
        by: EntryId,
    },
    /// The quote's time is up.
    #[error("the quote has expired")]
    QuoteExpired,
    /// The quote was made for other currencies or another amount.
    #[error("the quote does not match this exchange")]
    QuoteMismatch,
    /// At this rate the destination would receive nothing.
    #[error("amount too small to exchange")]
    ExchangeTooSmall,
    /// The account has no overdraft and not enough available funds.
    #[error("insufficient funds in account {0}")]
    InsufficientFunds(AccountId),
    /// The account would go past its overdraft limit.
    #[error("overdraft limit exceeded on account {0}")]
    OverdraftExceeded(AccountId),
    /// A balance or amount would overflow.
    #[error("amount overflows")]
    Overflow,
}

impl Rejection {
    /// A stable snake-case code for APIs and metrics, e.g. `"insufficient_funds"`.
    pub const fn code(&self) -> &'static str {
        match self {
            Rejection::AmountNotPositive => "amount_not_positive",
            Rejection::AmountNotWholeMinorUnits { .. } => "amount_not_whole_minor_units",
            Rejection::AccountNotFound(_) => "account_not_found",
            Rejection::HoldNotFound(_) => "hold_not_found",
            Rejection::PayoutNotFound(_) => "payout_not_found",
            Rejection::EntryNotFound(_) => "entry_not_found",
            Rejection::SameAccount => "same_account",
            Rejection::SameCurrency(_) => "same_currency",
            Rejection::CurrencyMismatch { .. } => "currency_mismatch",
            Rejection::WrongAccountKind { .. } => "wrong_account_kind",
            Rejection::DuplicateReference(_) => "duplicate_reference",
            Rejection::AccountNotActive { .. } => "account_not_active",
            Rejection::IllegalHoldTransition { .. } => "illegal_hold_transition",
            Rejection::IllegalPayoutTransition { .. } => "illegal_payout_transition",
            Rejection::HoldExpired(_) => "hold_expired",
            Rejection::HoldNotExpired(_) => "hold_not_expired",
            Rejection::CaptureExceedsHold => "capture_exceeds_hold",
            Rejection::NotReversible(_) => "not_reversible",
            Rejection::AlreadyReversed { .. } => "already_reversed",
            Rejection::QuoteExpired => "quote_expired",
            Rejection::QuoteMismatch => "quote_mismatch",
            Rejection::ExchangeTooSmall => "exchange_too_small",
            Rejection::InsufficientFunds(_) => "insufficient_funds",
            Rejection::OverdraftExceeded(_) => "overdraft_exceeded",
            Rejection::Overflow => "overflow",
        }
    }
}
