//! [`Ledger`]: the embedding facade. It pairs a store with a clock and an id generator, looks
//! up the house accounts a recipe needs, and turns one call into one [`Command`] executed
//! through [`LedgerStore::execute`]. The HTTP service and the payout worker use it too.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::account::{Account, AccountKind, Balance, Metadata, NewAccount};
use crate::command::{
    AdvancePayout, CaptureHold, ChangeSet, Command, CreateHold, CreatePayout, Deposit, Exchange, Pricing, Reverse,
    Transfer,
};
use crate::fx::{FxError, FxQuote, FxRate, PairRate};
use crate::ids::{AccountId, EntryId, HoldId, PayoutId, QuoteId, Timestamp, UserId};
use crate::money::{Currency, Micros};
use crate::ports::{Clock, FxStore, IdGenerator, LedgerStore, StoreError, Submission};
use crate::rejection::Rejection;
use crate::state::{BankAccount, PayoutDirection, PayoutStatus};

/// Why a [`Ledger`] call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger refused the command; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The house account a recipe needs has not been opened.
    #[error("no {kind:?} account for {currency}")]
    NoSystemAccount {
        /// Its kind.
        kind: AccountKind,
        /// Its currency.
        currency: Currency,
    },
    /// No rate is set for the pair.
    #[error("no rate from {base} to {quote}")]
    NoRate {
        /// Source currency.
        base: Currency,
        /// Target currency.
        quote: Currency,
    },
    /// A rate, spread or conversion was refused.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// No such quote.
    #[error("quote {0} not found")]
    QuoteNotFound(QuoteId),
}

/// A ledger over a store, with the time and ids supplied from outside.
///
/// See the crate documentation for a complete example.
pub struct Ledger<S: ?Sized> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl<S: ?Sized> Clone for Ledger<S> {
    fn clone(&self) -> Ledger<S> {
        Ledger { store: self.store.clone(), clock: self.clock.clone(), ids: self.ids.clone() }
    }
}

impl<S: ?Sized> std::fmt::Debug for Ledger<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// The house accounts opened for every currency.
pub const SYSTEM_KINDS: [AccountKind; 4] =
    [AccountKind::Settlement, AccountKind::Liquidity, AccountKind::PayoutClearing, AccountKind::Fees];

impl<S: LedgerStore + FxStore + ?Sized> Ledger<S> {
    /// A ledger over `store`, reading time from `clock` and ids from `ids`.
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Ledger<S> {
        Ledger { store, clock, ids }
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The clock's now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A fresh typed id.
    pub fn new_id<T: From<Uuid>>(&self) -> T {
        T::from(self.ids.next_id())
    }

    /// Opens the house accounts of `currency` that do not exist yet (settlement, liquidity,
    /// payout clearing, fees). Safe to call at every start.
    pub async fn open_system_accounts(&self, currency: Currency) -> Result<(), LedgerError> {
        for kind in SYSTEM_KINDS {
            if self.store.system_account(kind, currency).await?.is_none() {
                let account = NewAccount::system(self.new_id(), kind, currency);
                self.store.open_account(account, self.now()).await?;
            }
        }
        Ok(())
    }

    /// Opens a customer account with no overdraft.
    pub async fn open_customer_account(&self, owner: UserId, currency: Currency) -> Result<Account, LedgerError> {
        let account = NewAccount::customer(self.new_id(), owner, currency);
        Ok(self.store.open_account(account, self.now()).await?)
    }

    /// The id of the house account of `kind` for `currency`.
    pub async fn system_account(&self, kind: AccountKind, currency: Currency) -> Result<AccountId, LedgerError> {
        match self.store.system_account(kind, currency).await? {
            Some(account) => Ok(account.id),
            None => Err(LedgerError::NoSystemAccount { kind, currency }),
        }
    }

    /// Executes one command on its own.
    pub async fn submit(&self, command: Command) -> Result<ChangeSet, LedgerError> {
        let mut outcomes = self.store.execute(&[Submission::from(command)], self.now()).await?;
        let outcome = outcomes.pop().expect("one outcome per submission");
        Ok(outcome?)
    }

    /// Current balances of an account.
    pub async fn balance(&self, account: AccountId) -> Result<Balance, LedgerError> {
        let account = self.account(account).await?;
        Ok(account.balance)
    }

    async fn account(&self, id: AccountId) -> Result<Account, LedgerError> {
        self.store.account(id).await?.ok_or(LedgerError::Rejected(Rejection::AccountNotFound(id)))
    }

    /// Credits money received from the bank to a customer account.
    pub async fn deposit(
        &self,
        to: AccountId,
        amount: Micros,
        description: Option<String>,
    ) -> Result<ChangeSet, LedgerError> {
        let currency = self.account(to).await?.currency;
        let settlement = self.system_account(AccountKind::Settlement, currency).await?;
        self.submit(Command::Deposit(Deposit { entry_id: self.new_id(), to, settlement, amount, description })).await
    }

    /// Moves money between two customer accounts of one currency.
    pub async fn transfer(&self, from: AccountId, to: AccountId, amount: Micros) -> Result<ChangeSet, LedgerError> {
        let transfer =
            Transfer { entry_id: self.new_id(), from, to, amount, description: None, metadata: Metadata::new() };
        self.submit(Command::Transfer(transfer)).await
    }

    /// Sets the house rate of a pair.
    pub async fn set_rate(
        &self,
        base: Currency,
        quote: Currency,
        mid: FxRate,
        spread_bps: u32,
    ) -> Result<PairRate, LedgerError> {
        let rate = PairRate::new(base, quote, mid, spread_bps, self.now())?;
        self.store.set_rate(rate).await?;
        Ok(rate)
    }

    async fn pair(&self, base: Currency, quote: Currency) -> Result<PairRate, LedgerError> {
        self.store.rate(base, quote).await?.ok_or(LedgerError::NoRate { base, quote })
    }

    /// Locks the current rate for `owner` to exchange `amount` of `from` into `to`, for `ttl`.
    pub async fn quote(
        &self,
        owner: UserId,
        from: Currency,
        to: Currency,
        amount: Micros,
        ttl: Duration,
    ) -> Result<FxQuote, LedgerError> {
        if !amount.is_positive() {
            return Err(Rejection::AmountNotPositive.into());
        }
        let pair = self.pair(from, to).await?;
        let quote = FxQuote::new(self.new_id(), owner, &pair, amount, self.now(), ttl)?;
        self.store.save_quote(quote).await?;
        Ok(quote)
    }

    /// Exchanges `amount` from one customer account into another of a different currency, at
    /// the quote's locked rate when a quote is given, else at the current rate.
    pub async fn exchange(
        &self,
        from: AccountId,
        to: AccountId,
        amount: Micros,
        quote: Option<QuoteId>,
    ) -> Result<ChangeSet, LedgerError> {
        let source = self.account(from).await?;
        let target = self.account(to).await?;
        let pricing = match quote {
            Some(id) => Pricing::Quote(self.store.quote(id).await?.ok_or(LedgerError::QuoteNotFound(id))?),
            None if source.currency == target.currency => Pricing::Rate(FxRate::new(1.into())?),
            None => Pricing::Rate(self.pair(source.currency, target.currency).await?.effective()),
        };
        let exchange = Exchange {
            entry_id: self.new_id(),
            from,
            to,
            amount,
            pricing,
            from_liquidity: self.system_account(AccountKind::Liquidity, source.currency).await?,
            to_liquidity: self.system_account(AccountKind::Liquidity, target.currency).await?,
            description: None,
        };
        self.submit(Command::Exchange(exchange)).await
    }

    /// Reserves `amount` on `from` for `to` (two-phase transfer).
    pub async fn hold(
        &self,
        from: AccountId,
        to: AccountId,
        amount: Micros,
        expires_at: Option<Timestamp>,
    ) -> Result<ChangeSet, LedgerError> {
        self.submit(Command::CreateHold(CreateHold { hold_id: self.new_id(), from, to, amount, expires_at })).await
    }

    /// Captures a hold, fully (`None`) or partly.
    pub async fn capture(&self, hold: HoldId, amount: Option<Micros>) -> Result<ChangeSet, LedgerError> {
        self.submit(Command::CaptureHold(CaptureHold { hold_id: hold, entry_id: self.new_id(), amount })).await
    }

    /// Voids a hold.
    pub async fn void(&self, hold: HoldId) -> Result<ChangeSet, LedgerError> {
        self.submit(Command::VoidHold(hold)).await
    }

    /// Accepts a payout (funds held at once) or a deposit request, to be driven by a worker.
    pub async fn request_bank_transfer(
        &self,
        direction: PayoutDirection,
        account: AccountId,
        amount: Micros,
        bank_account: Option<BankAccount>,
        reference: Option<String>,
    ) -> Result<ChangeSet, LedgerError> {
        let currency = self.account(account).await?.currency;
        let payout = CreatePayout {
            payout_id: self.new_id(),
            entry_id: self.new_id(),
            direction,
            account,
            clearing: self.system_account(AccountKind::PayoutClearing, currency).await?,
            settlement: self.system_account(AccountKind::Settlement, currency).await?,
            amount,
            currency,
            bank_account,
            reference,
        };
        self.submit(Command::CreatePayout(payout)).await
    }

    /// Moves a payout along its state machine.
    pub async fn advance_payout(
        &self,
        payout: PayoutId,
        to: PayoutStatus,
        note: Option<String>,
    ) -> Result<ChangeSet, LedgerError> {
        self.submit(Command::AdvancePayout(AdvancePayout { payout_id: payout, to, entry_id: self.new_id(), note }))
            .await
    }

    /// Reverses an entry.
    pub async fn reverse(&self, entry: EntryId, reason: &str) -> Result<ChangeSet, LedgerError> {
        self.submit(Command::Reverse(Reverse { entry_id: self.new_id(), target: entry, reason: reason.to_owned() }))
            .await
    }
}
