//! Commands (what a caller asks the ledger to do) and change sets (what the ledger decided).
//!
//! A command carries every id and instant it needs; the [`Book`](crate::Book) decides it
//! against current balances and returns a [`ChangeSet`]: the balanced entry, the new balances,
//! the new hold or payout state and the events to publish. A storage adapter persists a change
//! set in one transaction (BDK's `apply_update(..) -> ChangeSet`), and may decide many commands
//! in order inside one batch (group commit).

use crate::account::{Balance, Metadata};
use crate::entry::JournalEntry;
use crate::fx::{FxQuote, FxRate};
use crate::ids::{AccountId, EntryId, HoldId, PayoutId, Timestamp};
use crate::money::{Currency, Micros};
use crate::state::{BankAccount, Hold, Payout, PayoutDirection, PayoutStatus};

/// Money from one customer account to another of the same currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The id of the entry it will post.
    pub entry_id: EntryId,
    /// Debited.
    pub from: AccountId,
    /// Credited.
    pub to: AccountId,
    /// How much, in the accounts' currency.
    pub amount: Micros,
    /// Free text.
    pub description: Option<String>,
    /// Client key/value pairs.
    pub metadata: Metadata,
}

/// How an exchange is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pricing {
    /// A locked quote: used only before it expires, for its currencies and amount.
    Quote(FxQuote),
    /// The current effective rate (spread included), looked up by the caller.
    Rate(FxRate),
}

/// Money from a customer account in one currency to a customer account in another, through
/// the two currencies' liquidity accounts (the 4-leg pattern).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The id of the entry it will post.
    pub entry_id: EntryId,
    /// Debited, in the source currency.
    pub from: AccountId,
    /// Credited, in the target currency.
    pub to: AccountId,
    /// Debited from `from`, in its currency.
    pub amount: Micros,
    /// The rate or quote.
    pub pricing: Pricing,
    /// The house's liquidity account in the source currency.
    pub from_liquidity: AccountId,
    /// The house's liquidity account in the target currency.
    pub to_liquidity: AccountId,
    /// Free text.
    pub description: Option<String>,
}

/// Money received from the bank: settlement to customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    /// The id of the entry it will post.
    pub entry_id: EntryId,
    /// The customer account credited.
    pub to: AccountId,
    /// The settlement account of the currency, debited.
    pub settlement: AccountId,
    /// How much (whole minor units).
    pub amount: Micros,
    /// The bank's reference (e.g. the webhook event id).
    pub description: Option<String>,
}

/// Reserve funds now, move them later (two-phase transfer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateHold {
    /// The hold's id.
    pub hold_id: HoldId,
    /// The account whose funds are reserved.
    pub from: AccountId,
    /// The account that receives them on capture.
    pub to: AccountId,
    /// How much.
    pub amount: Micros,
    /// When the expiry sweep may release it.
    pub expires_at: Option<Timestamp>,
}

/// Post a pending hold, fully or partly; the rest is released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureHold {
    /// The hold.
    pub hold_id: HoldId,
    /// The id of the entry it will post.
    pub entry_id: EntryId,
    /// How much to capture; `None` captures all of it.
    pub amount: Option<Micros>,
}

/// Accept a payout (funds move to payout clearing at once) or an API-initiated deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePayout {
    /// The payout's id.
    pub payout_id: PayoutId,
    /// The id of the hold entry (payouts only; deposits post nothing yet).
    pub entry_id: EntryId,
    /// Out or in.
    pub direction: PayoutDirection,
    /// The customer account.
    pub account: AccountId,
    /// The payout clearing account of the currency (deposits hold nothing there, but name it
    /// all the same so every bank-facing command is checked the same way).
    pub clearing: AccountId,
    /// The settlement account of the currency.
    pub settlement: AccountId,
    /// How much (whole minor units).
    pub amount: Micros,
    /// In which currency; must be the account's.
    pub currency: Currency,
    /// The customer's bank account.
    pub bank_account: Option<BankAccount>,
    /// The customer's reference.
    pub reference: Option<String>,
}

/// Move a payout along its state machine, posting what the transition needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvancePayout {
    /// The payout.
    pub payout_id: PayoutId,
    /// The status to move to.
    pub to: PayoutStatus,
    /// The id of the entry the transition posts, if it posts one.
    pub entry_id: EntryId,
    /// Why.
    pub note: Option<String>,
}

/// Post the mirror image of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    /// The id of the reversing entry.
    pub entry_id: EntryId,
    /// The entry to reverse.
    pub target: EntryId,
    /// Why (kept as the reversal's description).
    pub reason: String,
}

/// Everything the ledger can be asked to do to balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// See [`Transfer`].
    Transfer(Transfer),
    /// See [`Exchange`].
    Exchange(Exchange),
    /// See [`Deposit`].
    Deposit(Deposit),
    /// See [`CreateHold`].
    CreateHold(CreateHold),
    /// See [`CaptureHold`].
    CaptureHold(CaptureHold),
    /// Release a pending hold at the owner's request.
    VoidHold(HoldId),
    /// Release a pending hold whose expiry has passed.
    ExpireHold(HoldId),
    /// See [`CreatePayout`].
    CreatePayout(CreatePayout),
    /// See [`AdvancePayout`].
    AdvancePayout(AdvancePayout),
    /// See [`Reverse`].
    Reverse(Reverse),
}

/// How one account's balances changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceChange {
    /// The account.
    pub account: AccountId,
    /// Before the command.
    pub before: Balance,
    /// After it.
    pub after: Balance,
}

/// What happened, for the outbox and outbound webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `transfer.created`
    TransferCreated,
    /// `exchange.created`
    ExchangeCreated,
    /// `deposit.credited`
    DepositCredited,
    /// `hold.created`
    HoldCreated,
    /// `hold.resolved` (posted, voided or expired)
    HoldResolved,
    /// `payout.status_changed` (creation included)
    PayoutStatusChanged,
    /// `transaction.reversed`
    TransactionReversed,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 7] = [
        EventKind::TransferCreated,
        EventKind::ExchangeCreated,
        EventKind::DepositCredited,
        EventKind::HoldCreated,
        EventKind::HoldResolved,
        EventKind::PayoutStatusChanged,
        EventKind::TransactionReversed,
    ];

    /// The kind named `name` on the wire, if any.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The event's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::TransferCreated => "transfer.created",
            EventKind::ExchangeCreated => "exchange.created",
            EventKind::DepositCredited => "deposit.credited",
            EventKind::HoldCreated => "hold.created",
            EventKind::HoldResolved => "hold.resolved",
            EventKind::PayoutStatusChanged => "payout.status_changed",
            EventKind::TransactionReversed => "transaction.reversed",
        }
    }
}

/// A domain event: what happened and to what, so a relay can find who to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The entry posted, if any.
    pub entry: Option<EntryId>,
    /// The hold concerned, if any.
    pub hold: Option<HoldId>,
    /// The payout concerned, if any.
    pub payout: Option<PayoutId>,
    /// The payout's status after the change, when a payout is concerned.
    pub payout_status: Option<PayoutStatus>,
    /// Every account touched; their owners are the audience.
    pub accounts: Vec<AccountId>,
    /// When.
    pub at: Timestamp,
}

/// What the ledger decided for one command: persist all of it in one transaction, or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSet {
    /// The entry posted, if the command moved posted money.
    pub entry: Option<JournalEntry>,
    /// Every account whose balances changed, with before and after.
    pub balances: Vec<BalanceChange>,
    /// The hold's new state, if the command made or moved one.
    pub hold: Option<Hold>,
    /// The payout's new state, if the command made or moved one.
    pub payout: Option<Payout>,
    /// Events to publish.
    pub events: Vec<Event>,
}

impl ChangeSet {
    /// A change set with nothing in it yet.
    pub(crate) fn empty() -> ChangeSet {
        ChangeSet { entry: None, balances: Vec::new(), hold: None, payout: None, events: Vec::new() }
    }
}
