//! The ports: traits that adapters implement, speaking only domain types.
//!
//! Storage (accounts, entries, holds, payouts and their queue, idempotency records, FX rates
//! and quotes), a payout provider (the bank), a clock and an id generator. No `sqlx`, no HTTP:
//! the PostgreSQL store, the in-memory store and any test double implement the same traits,
//! and one conformance suite runs against each of them.
//!
//! The central method is [`LedgerStore::execute`]: it takes a *batch* of submissions and
//! decides them in order, in one atomic unit, so that an adapter can coalesce concurrent
//! requests into one database transaction (group commit).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

pub use crate::webhook::WebhookStore;
use uuid::Uuid;

use crate::account::{Account, AccountError, AccountKind, AccountStatus, Balance, NewAccount};
use crate::command::{ChangeSet, Command};
use crate::entry::{EntryKind, JournalEntry};
use crate::fx::{FxQuote, PairRate};
use crate::ids::{AccountId, EntryId, HoldId, PayoutId, QuoteId, Timestamp, UserId};
use crate::money::{Currency, Micros};
use crate::rejection::Rejection;
use crate::state::{BankAccount, Hold, Payout, PayoutDirection, PayoutStatus};

/// A storage failure. Rejections are not errors here: they come back inside
/// [`Outcome`]s, and change nothing.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The account could not be opened.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A cursor that this store did not hand out.
    #[error("invalid pagination cursor")]
    BadCursor,
    /// A unique value is taken already (e.g. `"username"`, `"email"`).
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// The backend failed (connection lost, constraint the core does not know, ...). The
    /// message is for logs only, never for clients.
    #[error("storage backend failed: {0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Arc::new(error))
    }
}

/// A command's result: the change set persisted, or why it was refused.
pub type Outcome = Result<ChangeSet, Rejection>;

/// An `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
pub struct BadIdempotencyKey;

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(key: &str) -> Result<IdempotencyKey, BadIdempotencyKey> {
        let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if (1..=255).contains(&key.len()) && printable {
            Ok(IdempotencyKey(key.to_owned()))
        } else {
            Err(BadIdempotencyKey)
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of a request (method, path and body), to tell a replay from a different request
/// sent with the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// The first answer to an idempotent request, replayed verbatim on retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new (or expired, or its first holder's lease ran out): go ahead.
    Started,
    /// The same request completed before: answer with this.
    Replay(StoredResponse),
    /// The same key is being processed right now.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// The idempotency record to complete inside the same atomic unit as a money movement, so
/// that the movement and the record that guards it commit together or not at all.
#[derive(Clone)]
pub struct IdempotencyWrite {
    /// The user the key belongs to.
    pub scope: UserId,
    /// The key.
    pub key: IdempotencyKey,
    /// The request's fingerprint, so the record can be written even if `begin` left none.
    pub fingerprint: Fingerprint,
    /// Until when the record is kept.
    pub expires_at: Timestamp,
    /// Renders the response to store from the outcome.
    /// Called once per attempt: a store that retries its transaction calls it again.
    pub render: Arc<dyn Fn(&Outcome) -> StoredResponse + Send + Sync>,
}

impl fmt::Debug for IdempotencyWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyWrite").field("scope", &self.scope).field("key", &self.key).finish_non_exhaustive()
    }
}

/// One command for [`LedgerStore::execute`], with the idempotency record it completes.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The command.
    pub command: Command,
    /// The idempotency record to complete with its outcome, if the request had a key.
    pub idempotency: Option<IdempotencyWrite>,
}

impl From<Command> for Submission {
    fn from(command: Command) -> Submission {
        Submission { command, idempotency: None }
    }
}

/// A page request: at most `limit` items after `cursor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// The most items to return (the API allows 1 to 200).
    pub limit: usize,
    /// Where the previous page stopped; `None` for the first page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { limit, cursor: None }
    }
}

/// A page of results and the cursor of the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this to get the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// Which accounts to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Only this user's accounts.
    pub owner: Option<UserId>,
}

/// Which payouts to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutFilter {
    /// Only this user's.
    pub owner: Option<UserId>,
    /// Only in this status.
    pub status: Option<PayoutStatus>,
    /// Only on this account.
    pub account: Option<AccountId>,
}

/// One line of an account statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// The entry.
    pub entry: EntryId,
    /// Its kind.
    pub kind: EntryKind,
    /// Signed amount on this account.
    pub amount: Micros,
    /// The account's posted balance right after it.
    pub balance_after: Micros,
    /// The account on the other side, where there is one.
    pub counterparty: Option<AccountId>,
    /// The entry's description.
    pub description: Option<String>,
    /// When it was posted.
    pub created_at: Timestamp,
}

/// A time window for statements: `from <= created_at < to`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: Option<Timestamp>,
    /// Exclusive end.
    pub to: Option<Timestamp>,
}

impl TimeRange {
    /// True when `at` falls inside.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|from| from <= at) && self.to.is_none_or(|to| at < to)
    }
}

/// Storage of accounts, entries, holds and payouts: the ledger's source of truth.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Opens an account with zero balances.
    async fn open_account(&self, account: NewAccount, now: Timestamp) -> Result<Account, StoreError>;

    /// An account with its balances.
    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// Accounts in id order.
    async fn accounts(&self, filter: &AccountFilter, page: &PageRequest) -> Result<Page<Account>, StoreError>;

    /// The house account of `kind` for `currency`.
    async fn system_account(&self, kind: AccountKind, currency: Currency) -> Result<Option<Account>, StoreError>;

    /// Freezes, closes or reactivates an account; `None` if there is no such account.
    async fn set_account_status(&self, id: AccountId, status: AccountStatus) -> Result<Option<Account>, StoreError>;

    /// Decides and persists a batch of commands in order, as one atomic unit; each
    /// submission's idempotency record is completed in the same unit. Returns one outcome per
    /// submission, in order. A rejected command changes nothing; the others still apply.
    async fn execute(&self, batch: &[Submission], now: Timestamp) -> Result<Vec<Outcome>, StoreError>;

    /// A journal entry with its postings.
    async fn entry(&self, id: EntryId) -> Result<Option<JournalEntry>, StoreError>;

    /// An account's postings, newest first.
    async fn statement(
        &self,
        account: AccountId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<StatementLine>, StoreError>;

    /// An account's balances as they were at `at`; `None` if there is no such account.
    async fn balance_at(&self, account: AccountId, at: Timestamp) -> Result<Option<Balance>, StoreError>;

    /// A hold.
    async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError>;

    /// Pending holds whose expiry has passed at `now`, for the expiry sweep.
    async fn expired_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<HoldId>, StoreError>;

    /// A payout or deposit with its history.
    async fn payout(&self, id: PayoutId) -> Result<Option<Payout>, StoreError>;

    /// Payouts and deposits in id order.
    async fn payouts(&self, filter: &PayoutFilter, page: &PageRequest) -> Result<Page<Payout>, StoreError>;
}

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Moves their own money.
    User,
    /// Operates the ledger.
    Admin,
}

impl Role {
    /// The stable lower-case name used in storage, tokens and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(name: &str) -> Option<Role> {
        [Role::User, Role::Admin].into_iter().find(|r| r.as_str() == name)
    }
}

/// A user of the service. The password is only ever kept as a hash made by the adapter.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Login name, unique.
    pub username: String,
    /// Contact address, unique.
    pub email: String,
    /// The password hash (argon2 PHC string in the service).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// When the user registered.
    pub created_at: Timestamp,
}

impl fmt::Debug for User {
    // The hash stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Storage of users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; a taken username or email is [`StoreError::Duplicate`].
    async fn create_user(&self, user: User) -> Result<User, StoreError>;

    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// A user by username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Changes a user's role; `None` if there is no such user.
    async fn set_role(&self, id: UserId, role: Role) -> Result<Option<User>, StoreError>;
}

/// A stored reconciliation run: `ledger-recon` writes them, the service serves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconRun {
    /// Its id (time-ordered).
    pub id: Uuid,
    /// `ledger` (the books checked) or `statement` (a bank statement matched).
    pub kind: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// `running`, `clean`, `discrepancies` or `failed`.
    pub status: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// How many discrepancies its report holds.
    pub discrepancies: u32,
    /// The report, as JSON text (its shape is ledger-recon's `Report`).
    pub report: String,
}

/// What monitoring needs to know about recon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconSummary {
    /// When the last clean ledger run finished.
    pub last_clean_at: Option<Timestamp>,
    /// The discrepancy count of the last finished ledger run.
    pub last_discrepancies: Option<u32>,
}

/// Reading reconciliation runs.
#[async_trait]
pub trait ReconRuns: Send + Sync {
    /// Runs, newest first.
    async fn recon_runs(&self, page: &PageRequest) -> Result<Page<ReconRun>, StoreError>;

    /// One run.
    async fn recon_run(&self, id: Uuid) -> Result<Option<ReconRun>, StoreError>;

    /// The last clean run and the last run's discrepancies.
    async fn recon_summary(&self) -> Result<ReconSummary, StoreError>;
}

/// Every storage port at once: what the service needs from a store.
pub trait FullStore:
    LedgerStore + FxStore + PayoutQueue + IdempotencyStore + UserStore + WebhookStore + ReconRuns + 'static
{
}

impl<T: LedgerStore + FxStore + PayoutQueue + IdempotencyStore + UserStore + WebhookStore + ReconRuns + 'static>
    FullStore for T
{
}

/// A payout claimed from the queue, leased to one worker until `locked_until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The payout as it was when claimed.
    pub payout: Payout,
    /// How many times it has been claimed, this time included.
    pub attempt: u32,
    /// The lease: nobody else can claim it before this.
    pub locked_until: Timestamp,
}

/// One call to the bank for a payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Which claim of the payout made it (1-based).
    pub attempt: u32,
    /// When the call started.
    pub started_at: Timestamp,
    /// When the answer came.
    pub finished_at: Timestamp,
    /// `succeeded`, `timeout`, `unavailable`, `insufficient_funds` or `rejected`.
    pub outcome: String,
    /// The bank's error text, if any.
    pub error: Option<String>,
    /// The bank's reference, on success.
    pub reference: Option<String>,
}

/// The work queue of payouts and deposits that are PENDING or PROCESSING.
#[async_trait]
pub trait PayoutQueue: Send + Sync {
    /// Claims up to `limit` due items, each leased for `lease`. An item is due when it is
    /// PENDING or PROCESSING, its next attempt time has come and no lease on it is live; so two
    /// claimers never take the same item, and an item whose worker died is taken again once its
    /// lease ends.
    async fn claim(&self, now: Timestamp, lease: Duration, limit: usize) -> Result<Vec<Claim>, StoreError>;

    /// Gives a claimed item back, to be retried at `at`.
    async fn retry_at(&self, id: PayoutId, at: Timestamp) -> Result<(), StoreError>;

    /// Records one call to the bank.
    async fn record_attempt(&self, id: PayoutId, attempt: Attempt) -> Result<(), StoreError>;

    /// Every call made to the bank for a payout, oldest first.
    async fn attempts(&self, id: PayoutId) -> Result<Vec<Attempt>, StoreError>;

    /// How many items are queued (PENDING or PROCESSING) and when the oldest was created.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;
}

/// The payout queue's size, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items not yet terminal or in manual review.
    pub depth: u64,
    /// When the oldest of them was created.
    pub oldest_created_at: Option<Timestamp>,
}

/// Idempotency records, scoped per user.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Starts a request under `key`, or says why not. A started record is leased for `lease`:
    /// if its holder dies, the key can be started again after that.
    async fn begin(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: Timestamp,
        lease: Duration,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Completes a request that moved no money (money movements complete theirs inside
    /// [`LedgerStore::execute`]).
    async fn complete(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        response: StoredResponse,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Forgets a started request that failed before it changed anything, so a retry can run.
    async fn abandon(&self, scope: UserId, key: &IdempotencyKey) -> Result<(), StoreError>;
}

/// Where exchange rates come from.
#[async_trait]
pub trait RateSource: Send + Sync {
    /// The rate from `base` to `quote`, if known (directly or as the inverse of the reverse
    /// pair).
    async fn rate(&self, base: Currency, quote: Currency) -> Result<Option<PairRate>, StoreError>;

    /// Every rate set directly.
    async fn rates(&self) -> Result<Vec<PairRate>, StoreError>;
}

/// Rates set by admins, and quotes handed to customers.
#[async_trait]
pub trait FxStore: RateSource {
    /// Sets (or replaces) a pair's rate.
    async fn set_rate(&self, rate: PairRate) -> Result<(), StoreError>;

    /// Keeps a quote until it is used or expires.
    async fn save_quote(&self, quote: FxQuote) -> Result<(), StoreError>;

    /// A quote.
    async fn quote(&self, id: QuoteId) -> Result<Option<FxQuote>, StoreError>;
}

/// What the bank is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRequest {
    /// The payout; also the idempotency key the bank deduplicates on, so a retried call after a
    /// crash never pays twice.
    pub payout: PayoutId,
    /// Pay out or pull in.
    pub direction: PayoutDirection,
    /// How much.
    pub amount: Micros,
    /// In which currency.
    pub currency: Currency,
    /// The customer's bank account.
    pub bank_account: Option<BankAccount>,
}

/// The bank's acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderReceipt {
    /// The bank's own reference for the transfer.
    pub reference: String,
}

/// Why the bank did not confirm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time: the transfer may or may not have happened.
    #[error("the provider timed out")]
    Timeout,
    /// The provider is down; nothing happened.
    #[error("the provider is unavailable")]
    Unavailable,
    /// The bank account cannot cover it.
    #[error("insufficient funds at the bank")]
    InsufficientFunds,
    /// The bank refused for good.
    #[error("rejected by the provider: {0}")]
    Rejected(String),
}

impl ProviderError {
    /// Worth retrying: the provider was down and nothing happened.
    pub const fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Unavailable)
    }

    /// The outcome is unknown: a human (or a status query) must decide.
    pub const fn is_ambiguous(&self) -> bool {
        matches!(self, ProviderError::Timeout)
    }
}

/// The bank (or payment provider) that moves money across the ledger's boundary.
#[async_trait]
pub trait PayoutProvider: Send + Sync {
    /// Asks the bank to move the money. Must be idempotent on `request.payout`.
    async fn execute(&self, request: &ProviderRequest) -> Result<ProviderReceipt, ProviderError>;
}

/// The time, supplied from outside the core.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Fresh ids, supplied from outside the core (adapters use UUID v7: time-ordered).
pub trait IdGenerator: Send + Sync {
    /// A new, never before returned id.
    fn next_id(&self) -> Uuid;
}

/// A clock that moves only when told: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(AtomicI64::new(start.as_unix_micros()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.as_unix_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0.load(Ordering::SeqCst))
    }
}

/// Ids 1, 2, 3, ... as UUIDs: deterministic, for tests and simulations.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl SequentialIds {
    /// Ids `start + 1`, `start + 2`, ...: separate ranges keep runs that share storage apart.
    pub fn starting_at(start: u64) -> SequentialIds {
        SequentialIds(AtomicU64::new(start))
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.0.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<T: IdGenerator + ?Sized> IdGenerator for Arc<T> {
    fn next_id(&self) -> Uuid {
        (**self).next_id()
    }
}
