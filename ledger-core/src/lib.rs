//! `ledger-core`: the pure domain of a double-entry ledger for money movement.
//!
//! Money is [`Micros`] (integer millionths of a unit, checked arithmetic) of a [`Currency`].
//! Every movement is a [`JournalEntry`] whose postings sum to zero per currency: an unbalanced
//! entry cannot be constructed. The [`Book`] decides [`Command`]s (transfer, FX exchange,
//! deposit, two-phase holds, payouts, reversals) against current balances and returns a
//! [`ChangeSet`] or a [`Rejection`]. Storage, the bank, the clock and ids are [ports]
//! that adapters implement; [`MemoryStore`] implements the storage ports in memory.
//!
//! This crate does no IO: no tokio, sqlx, poem or redis, no clock, no randomness.
//!
//! # Embedding the ledger
//!
//! The ports are `async` (the PostgreSQL adapter needs it), but nothing here depends on a
//! runtime; any executor works. This example uses `pollster`.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use ledger_core::{
//!     Currency, FxRate, Ledger, ManualClock, MemoryStore, Micros, SequentialIds, Timestamp, UserId,
//! };
//!
//! # fn main() -> Result<(), ledger_core::LedgerError> { pollster::block_on(async {
//! let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_767_225_600)));
//! let ledger = Ledger::new(Arc::new(MemoryStore::new()), clock.clone(), Arc::new(SequentialIds::default()));
//!
//! // The house accounts (settlement, liquidity, payout clearing, fees) of each currency.
//! ledger.open_system_accounts(Currency::USD).await?;
//! ledger.open_system_accounts(Currency::EUR).await?;
//!
//! // Two customers' wallets.
//! let (alice, bob): (UserId, UserId) = (ledger.new_id(), ledger.new_id());
//! let alice_usd = ledger.open_customer_account(alice, Currency::USD).await?.id;
//! let bob_usd = ledger.open_customer_account(bob, Currency::USD).await?.id;
//! let bob_eur = ledger.open_customer_account(bob, Currency::EUR).await?.id;
//!
//! // Money arrives from the bank, then moves between customers.
//! let usd = |text| Currency::USD.parse_amount(text).expect("valid amount");
//! ledger.deposit(alice_usd, usd("150.00"), Some("wire 42".into())).await?;
//! ledger.transfer(alice_usd, bob_usd, usd("40.25")).await?;
//!
//! // Bob exchanges 10.00 USD into EUR at a locked quote (0.92 less a 25 bp spread).
//! ledger.set_rate(Currency::USD, Currency::EUR, FxRate::parse("0.92").unwrap(), 25).await?;
//! let quote = ledger.quote(bob, Currency::USD, Currency::EUR, usd("10.00"), Duration::from_secs(30)).await?;
//! assert_eq!(Currency::EUR.format_amount(quote.to_amount), "9.17"); // 9.177 rounded toward the house
//! let exchange = ledger.exchange(bob_usd, bob_eur, usd("10.00"), Some(quote.id)).await?;
//! assert_eq!(exchange.entry.unwrap().postings().len(), 4);
//!
//! // Balances: posted, pending (open holds) and available.
//! let alice_balance = ledger.balance(alice_usd).await?;
//! assert_eq!(Currency::USD.format_amount(alice_balance.posted), "109.75");
//! let bob_usd_balance = ledger.balance(bob_usd).await?;
//! assert_eq!(bob_usd_balance.available(), Some(usd("30.25")));
//! assert_eq!(ledger.balance(bob_eur).await?.posted, Micros::new(9_170_000));
//!
//! // The books balance: recon finds nothing wrong.
//! assert!(ledger_core::recon::reconcile(&ledger.store().snapshot()).is_empty());
//! # Ok(()) }) }
//! ```

#![warn(missing_docs)]

mod account;
mod book;
pub mod chain;
mod command;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod entry;
mod fx;
mod ids;
mod ledger;
mod memory;
pub mod metrics;
mod money;
pub mod pipeline;
pub mod ports;
pub mod recon;
mod rejection;
pub mod signature;
mod state;
pub mod webhook;

pub use account::{Account, AccountError, AccountKind, AccountStatus, Balance, Metadata, NewAccount, Overdraft};
pub use book::{Book, EntryFacts, Leg};
pub use command::{
    AdvancePayout, BalanceChange, CaptureHold, ChangeSet, Command, CreateHold, CreatePayout, Deposit, Event, EventKind,
    Exchange, Pricing, Reverse, Transfer,
};
pub use entry::{EntryError, EntryHeader, EntryKind, EntryLinks, FxApplied, JournalEntry, Posting, sums_by_currency};
pub use fx::{BPS_PER_WHOLE, FxError, FxQuote, FxRate, PairRate, RATE_MAX, RATE_SCALE_MAX};
pub use ids::{AccountId, DeliveryId, EndpointId, EntryId, HoldId, PayoutId, QuoteId, Timestamp, UserId};
pub use ledger::{Ledger, LedgerError, SYSTEM_KINDS};
pub use memory::{MemoryStore, ScriptedBank};
pub use money::{Currency, MICROS_DIGITS, MICROS_PER_UNIT, Micros, ParseAmountError, UnknownCurrency};
pub use ports::{
    Clock, FullStore, FxStore, IdGenerator, IdempotencyStore, LedgerStore, ManualClock, PayoutProvider, PayoutQueue,
    RateSource, Role, SequentialIds, StoreError, User, UserStore,
};
pub use rejection::Rejection;
pub use rust_decimal::Decimal;

/// The README's code blocks, compiled as doctests so that they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use state::{BankAccount, Hold, HoldStatus, Payout, PayoutDirection, PayoutStatus, StatusChange};
pub use uuid::Uuid;
