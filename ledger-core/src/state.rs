//! The two state machines of the ledger: two-phase [`Hold`]s and bank-facing [`Payout`]s
//! (payouts and API-initiated deposits). Every transition is checked against one table; an
//! illegal one is a typed error, never a silent no-op.

use crate::ids::{AccountId, EntryId, HoldId, PayoutId, Timestamp, UserId};
use crate::money::{Currency, Micros};

/// The life of a two-phase hold: `PENDING -> POSTED | VOIDED | EXPIRED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldStatus {
    /// Funds are reserved: the debit side's `pending` includes them.
    Pending,
    /// Captured (fully or partly) into a posted entry.
    Posted,
    /// Released by the owner.
    Voided,
    /// Released by the expiry sweep.
    Expired,
}

impl HoldStatus {
    /// Every status.
    pub const ALL: [HoldStatus; 4] = [HoldStatus::Pending, HoldStatus::Posted, HoldStatus::Voided, HoldStatus::Expired];

    /// Whether `self -> to` is allowed. Only a pending hold moves; the others absorb.
    pub const fn can_become(self, to: HoldStatus) -> bool {
        matches!((self, to), (HoldStatus::Pending, HoldStatus::Posted | HoldStatus::Voided | HoldStatus::Expired))
    }

    /// True once the hold no longer reserves funds.
    pub const fn is_final(self) -> bool {
        !matches!(self, HoldStatus::Pending)
    }

    /// The stable upper-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Pending => "PENDING",
            HoldStatus::Posted => "POSTED",
            HoldStatus::Voided => "VOIDED",
            HoldStatus::Expired => "EXPIRED",
        }
    }

    /// The inverse of [`HoldStatus::as_str`].
    pub fn parse(name: &str) -> Option<HoldStatus> {
        HoldStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A two-phase transfer: funds reserved on `from` now, moved to `to` on capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: HoldId,
    /// The account whose funds are reserved.
    pub from: AccountId,
    /// The account that receives them on capture.
    pub to: AccountId,
    /// Both accounts' currency.
    pub currency: Currency,
    /// The amount reserved.
    pub amount: Micros,
    /// How much was captured, once posted.
    pub captured: Option<Micros>,
    /// Where it is in its life.
    pub status: HoldStatus,
    /// When the expiry sweep may release it; `None` holds until captured or voided.
    pub expires_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stopped reserving funds.
    pub resolved_at: Option<Timestamp>,
    /// The capture entry, once posted.
    pub entry: Option<EntryId>,
}

impl Hold {
    /// True when the hold can be expired at `now`.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The amount it reserved at instant `at`: what point-in-time `pending` balances add up.
    pub fn reserved_at(&self, at: Timestamp) -> Micros {
        let open = self.created_at <= at && self.resolved_at.is_none_or(|resolved| at < resolved);
        if open { self.amount } else { Micros::ZERO }
    }
}

/// Which way money crosses the bank boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutDirection {
    /// A payout: money leaves to the customer's bank account.
    Outbound,
    /// An API-initiated deposit: money is pulled from the customer's bank account.
    Inbound,
}

impl PayoutDirection {
    /// The stable lower-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            PayoutDirection::Outbound => "payout",
            PayoutDirection::Inbound => "deposit",
        }
    }

    /// The inverse of [`PayoutDirection::as_str`].
    pub fn parse(name: &str) -> Option<PayoutDirection> {
        [PayoutDirection::Outbound, PayoutDirection::Inbound].into_iter().find(|d| d.as_str() == name)
    }
}

/// The life of a payout or deposit:
/// `PENDING -> PROCESSING -> COMPLETED | FAILED | MANUAL_REVIEW`,
/// `MANUAL_REVIEW -> COMPLETED | FAILED` (admin), `PENDING -> CANCELLED` (owner),
/// `COMPLETED -> REVERSED` (returned by the bank or an admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutStatus {
    /// Accepted; funds held; waiting for a worker.
    Pending,
    /// A worker has claimed it and is talking to the bank.
    Processing,
    /// The bank did it.
    Completed,
    /// The bank refused or retries ran out with a definite answer; funds released.
    Failed,
    /// The outcome is unknown (a timeout) or needs a human; funds still held.
    ManualReview,
    /// The owner cancelled it before processing; funds released.
    Cancelled,
    /// A completed payout came back (or a deposit was charged back).
    Reversed,
}

impl PayoutStatus {
    /// Every status.
    pub const ALL: [PayoutStatus; 7] = [
        PayoutStatus::Pending,
        PayoutStatus::Processing,
        PayoutStatus::Completed,
        PayoutStatus::Failed,
        PayoutStatus::ManualReview,
        PayoutStatus::Cancelled,
        PayoutStatus::Reversed,
    ];

    /// Whether `self -> to` is allowed: the one transition table of product.md.
    pub const fn can_become(self, to: PayoutStatus) -> bool {
        use PayoutStatus::*;
        matches!(
            (self, to),
            (Pending, Processing | Cancelled)
                | (Processing, Completed | Failed | ManualReview)
                | (ManualReview, Completed | Failed)
                | (Completed, Reversed)
        )
    }

    /// True when no worker has anything left to do: COMPLETED (which only an admin or the
    /// bank can still reverse), FAILED, CANCELLED and REVERSED.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            PayoutStatus::Completed | PayoutStatus::Failed | PayoutStatus::Cancelled | PayoutStatus::Reversed
        )
    }

    /// True while the payout's funds sit in payout clearing (outbound payouts).
    pub const fn holds_funds(self) -> bool {
        matches!(self, PayoutStatus::Pending | PayoutStatus::Processing | PayoutStatus::ManualReview)
    }

    /// The stable upper-case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "PENDING",
            PayoutStatus::Processing => "PROCESSING",
            PayoutStatus::Completed => "COMPLETED",
            PayoutStatus::Failed => "FAILED",
            PayoutStatus::ManualReview => "MANUAL_REVIEW",
            PayoutStatus::Cancelled => "CANCELLED",
            PayoutStatus::Reversed => "REVERSED",
        }
    }

    /// The inverse of [`PayoutStatus::as_str`].
    pub fn parse(name: &str) -> Option<PayoutStatus> {
        PayoutStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The customer's bank account on the other side of a payout or deposit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BankAccount {
    /// The IBAN (or other bank account number).
    pub iban: String,
    /// The account holder's name.
    pub name: String,
}

/// One step of a payout's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status before; `None` for creation.
    pub from: Option<PayoutStatus>,
    /// The status after.
    pub to: PayoutStatus,
    /// When.
    pub at: Timestamp,
    /// Why, when someone said.
    pub note: Option<String>,
    /// The entry the transition posted, if it moved money.
    pub entry: Option<EntryId>,
}

/// A payout or API-initiated deposit and its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    /// Its id; also the idempotency key sent to the bank, so the bank pays it at most once.
    pub id: PayoutId,
    /// The customer who asked for it.
    pub owner: UserId,
    /// Out (payout) or in (deposit).
    pub direction: PayoutDirection,
    /// The customer's ledger account.
    pub account: AccountId,
    /// Where outbound funds wait while in flight; `None` for deposits, which hold nothing.
    pub clearing: Option<AccountId>,
    /// The settlement account of the currency: the bank's side.
    pub settlement: AccountId,
    /// How much.
    pub amount: Micros,
    /// In which currency.
    pub currency: Currency,
    /// The customer's bank account, when given.
    pub bank_account: Option<BankAccount>,
    /// The customer's reference, unique per customer when given.
    pub reference: Option<String>,
    /// Where it is in its life.
    pub status: PayoutStatus,
    /// Every transition so far, oldest first.
    pub history: Vec<StatusChange>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full transition table, spelled out so a change to it shows in review.
    #[test]
    fn payout_transitions_follow_the_table() {
        use PayoutStatus::*;
        let allowed = [
            (Pending, Processing),
            (Pending, Cancelled),
            (Processing, Completed),
            (Processing, Failed),
            (Processing, ManualReview),
            (ManualReview, Completed),
            (ManualReview, Failed),
            (Completed, Reversed),
        ];
        for from in PayoutStatus::ALL {
            for to in PayoutStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
        for absorbing in [Failed, Cancelled, Reversed] {
            assert!(PayoutStatus::ALL.iter().all(|to| !absorbing.can_become(*to)));
        }
    }

    #[test]
    fn hold_transitions_follow_the_table() {
        for from in HoldStatus::ALL {
            for to in HoldStatus::ALL {
                let expected = from == HoldStatus::Pending && to != HoldStatus::Pending;
                assert_eq!(from.can_become(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        assert!(PayoutStatus::ALL.iter().all(|s| PayoutStatus::parse(s.as_str()) == Some(*s)));
        assert!(HoldStatus::ALL.iter().all(|s| HoldStatus::parse(s.as_str()) == Some(*s)));
        assert_eq!(PayoutStatus::parse("MANUAL_REVIEW"), Some(PayoutStatus::ManualReview));
    }
}
