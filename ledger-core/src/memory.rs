//! The in-memory implementation of every storage port: the service's zero-setup default and
//! the reference the conformance suite holds the PostgreSQL store to.
//!
//! One mutex guards all state, so every [`LedgerStore::execute`] batch is atomic and
//! serialised, exactly like one database transaction. Nothing survives the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::account::{Account, AccountError, AccountKind, AccountStatus, Balance, NewAccount};
use crate::book::Book;
use crate::command::{ChangeSet, Event};
use crate::entry::JournalEntry;
use crate::fx::{FxQuote, PairRate};
use crate::ids::{AccountId, DeliveryId, EndpointId, EntryId, HoldId, PayoutId, QuoteId, Timestamp, UserId};
use crate::money::{Currency, Micros};
use crate::ports::{
    AccountFilter, Attempt, Claim, Fingerprint, FxStore, IdGenerator, IdempotencyBegin, IdempotencyKey,
    IdempotencyStore, LedgerStore, Outcome, Page, PageRequest, PayoutFilter, PayoutProvider, PayoutQueue,
    ProviderError, ProviderReceipt, ProviderRequest, QueueStats, RateSource, Role, StatementLine, StoreError,
    StoredResponse, Submission, TimeRange, User, UserStore,
};
use crate::recon::{AccountRecord, OpenHoldRecord, PayoutRecord, PostingRecord, Snapshot};
use crate::state::{Payout, PayoutStatus};
use crate::webhook::{
    Delivery, DeliveryAttempt, DeliveryJob, DeliveryNext, DeliveryState, WebhookBacklog, WebhookEndpoint, WebhookStore,
    payload,
};

/// Every port's state, in memory, behind one lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    book: Book,
    entries: HashMap<EntryId, JournalEntry>,
    /// Every posting in write order: (entry, index of the posting within it).
    journal: Vec<(EntryId, usize)>,
    /// Per account, positions in `journal`, oldest first.
    by_account: HashMap<AccountId, Vec<usize>>,
    /// Account ids in order, for keyset pagination.
    account_order: BTreeMap<AccountId, ()>,
    system: HashMap<(AccountKind, Currency), AccountId>,
    holds_by_account: HashMap<AccountId, Vec<HoldId>>,
    payout_order: BTreeMap<PayoutId, ()>,
    queue: HashMap<PayoutId, QueueItem>,
    idempotency: HashMap<(UserId, IdempotencyKey), IdempotencyRecord>,
    rates: BTreeMap<(Currency, Currency), PairRate>,
    quotes: HashMap<QuoteId, FxQuote>,
    outbox: Vec<Event>,
    users: HashMap<UserId, User>,
    attempts: HashMap<PayoutId, Vec<Attempt>>,
    /// Outbox events already fanned out to webhook deliveries (a prefix of `outbox`).
    published: usize,
    endpoints: BTreeMap<EndpointId, (WebhookEndpoint, Option<Timestamp>)>,
    /// Each delivery with its lease and how many times it was claimed.
    deliveries: BTreeMap<DeliveryId, (Delivery, Option<Timestamp>, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct QueueItem {
    due_at: Timestamp,
    locked_until: Option<Timestamp>,
    attempts: u32,
}

#[derive(Debug, Clone)]
struct IdempotencyRecord {
    fingerprint: Fingerprint,
    state: IdempotencyState,
}

#[derive(Debug, Clone)]
enum IdempotencyState {
    InFlight { lease_until: Timestamp },
    Done { response: StoredResponse, expires_at: Timestamp },
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a broken invariant (a bug); the
        // state it left is still the last consistent one, because change sets are applied only
        // after they are fully decided.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything recon looks at, for [`reconcile`](crate::recon::reconcile).
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let accounts = inner
            .book
            .accounts()
            .map(|a| AccountRecord {
                id: a.id,
                currency: a.currency,
                posted: a.balance.posted,
                pending: a.balance.pending,
            })
            .collect();
        let postings = inner
            .journal
            .iter()
            .map(|(entry, index)| {
                let p = inner.entries[entry].postings()[*index];
                PostingRecord {
                    entry: *entry,
                    account: p.account,
                    currency: p.currency,
                    amount: p.amount,
                    balance_after: p.balance_after,
                }
            })
            .collect();
        let open_holds = inner
            .book
            .holds()
            .filter(|h| !h.status.is_final())
            .map(|h| OpenHoldRecord { account: h.from, amount: h.amount })
            .collect();
        let payouts = inner
            .book
            .payouts()
            .map(|p| PayoutRecord {
                id: p.id,
                direction: p.direction,
                status: p.status,
                amount: p.amount,
                clearing: p.clearing,
            })
            .collect();
        Snapshot { accounts, postings, open_holds, payouts }
    }

    /// The domain events written so far (the outbox), oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.lock().outbox.clone()
    }
}

impl Inner {
    fn record(&mut self, changes: &ChangeSet, now: Timestamp) {
        self.book.apply(changes);
        if let Some(entry) = &changes.entry {
            for (index, posting) in entry.postings().iter().enumerate() {
                self.by_account.entry(posting.account).or_default().push(self.journal.len());
                self.journal.push((entry.id(), index));
            }
            self.entries.insert(entry.id(), entry.clone());
        }
        if let Some(hold) = &changes.hold {
            let holds = self.holds_by_account.entry(hold.from).or_default();
            if !holds.contains(&hold.id) {
                holds.push(hold.id);
            }
        }
        if let Some(payout) = &changes.payout {
            self.payout_order.insert(payout.id, ());
            match payout.status {
                PayoutStatus::Pending | PayoutStatus::Processing => {
                    self.queue.entry(payout.id).or_insert(QueueItem { due_at: now, locked_until: None, attempts: 0 });
                }
                _ => {
                    self.queue.remove(&payout.id);
                }
            }
        }
        self.outbox.extend(changes.events.iter().cloned());
    }
}

/// Takes up to `limit` items from an ordered map after the cursor, and the cursor of the
/// next page.
fn page_after<K: Ord + Copy + ToString + std::str::FromStr, T>(
    order: &BTreeMap<K, ()>,
    page: &PageRequest,
    mut item: impl FnMut(K) -> Option<T>,
) -> Result<Page<T>, StoreError> {
    let start = match &page.cursor {
        Some(cursor) => std::ops::Bound::Excluded(cursor.parse::<K>().map_err(|_| StoreError::BadCursor)?),
        None => std::ops::Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for key in order.range((start, std::ops::Bound::Unbounded)).map(|(k, _)| *k) {
        let Some(found) = item(key) else { continue };
        if items.len() == page.limit {
            // Another matching item exists: only then is there a next page.
            more = true;
            break;
        }
        items.push(found);
        last = Some(key);
    }
    let next_cursor = if more { last.map(|k| k.to_string()) } else { None };
    Ok(Page { items, next_cursor })
}

macro_rules! cursor_key {
    ($name:ident) => {
        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}
cursor_key!(AccountId);
cursor_key!(PayoutId);
cursor_key!(EndpointId);
cursor_key!(DeliveryId);

#[async_trait]
impl LedgerStore for MemoryStore {
    async fn open_account(&self, account: NewAccount, now: Timestamp) -> Result<Account, StoreError> {
        let mut inner = self.lock();
        if inner.book.account(account.id).is_some() {
            return Err(AccountError::Duplicate(account.id).into());
        }
        let system_key = (account.kind != AccountKind::Customer).then_some((account.kind, account.currency));
        if let Some((kind, currency)) = system_key
            && inner.system.contains_key(&(kind, currency))
        {
            return Err(AccountError::DuplicateSystemAccount { kind, currency }.into());
        }
        let opened = account.open(now)?;
        if let Some(key) = system_key {
            inner.system.insert(key, opened.id);
        }
        inner.account_order.insert(opened.id, ());
        inner.book.put_account(opened.clone());
        Ok(opened)
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.lock().book.account(id).cloned())
    }

    async fn accounts(&self, filter: &AccountFilter, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        let inner = self.lock();
        page_after(&inner.account_order, page, |id| {
            let account = inner.book.account(id)?;
            filter.owner.is_none_or(|owner| account.owner == Some(owner)).then(|| account.clone())
        })
    }

    async fn system_account(&self, kind: AccountKind, currency: Currency) -> Result<Option<Account>, StoreError> {
        let inner = self.lock();
        Ok(inner.system.get(&(kind, currency)).and_then(|id| inner.book.account(*id)).cloned())
    }

    async fn set_account_status(&self, id: AccountId, status: AccountStatus) -> Result<Option<Account>, StoreError> {
        let mut inner = self.lock();
        inner.book.set_account_status(id, status);
        Ok(inner.book.account(id).cloned())
    }

    async fn execute(&self, batch: &[Submission], now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        let mut inner = self.lock();
        let mut outcomes = Vec::with_capacity(batch.len());
        for submission in batch {
            let outcome = inner.book.decide(&submission.command, now);
            if let Ok(changes) = &outcome {
                inner.record(changes, now);
            }
            if let Some(write) = &submission.idempotency {
                let response = (write.render)(&outcome);
                let state = IdempotencyState::Done { response, expires_at: write.expires_at };
                let record = IdempotencyRecord { fingerprint: write.fingerprint, state };
                inner.idempotency.insert((write.scope, write.key.clone()), record);
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn entry(&self, id: EntryId) -> Result<Option<JournalEntry>, StoreError> {
        Ok(self.lock().entries.get(&id).cloned())
    }

    async fn statement(
        &self,
        account: AccountId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<StatementLine>, StoreError> {
        let inner = self.lock();
        let positions = inner.by_account.get(&account).map(Vec::as_slice).unwrap_or(&[]);
        // The cursor is the journal position of the last line served; newer lines come first.
        let before = match &page.cursor {
            Some(cursor) => cursor.parse::<usize>().map_err(|_| StoreError::BadCursor)?,
            None => usize::MAX,
        };
        let mut items = Vec::new();
        let mut last_position = None;
        let mut next_cursor = None;
        for &position in positions.iter().rev().filter(|p| **p < before) {
            let (entry_id, index) = inner.journal[position];
            let entry = &inner.entries[&entry_id];
            if !range.contains(entry.created_at()) {
                continue;
            }
            if items.len() == page.limit {
                next_cursor = last_position.map(|p: usize| p.to_string());
                break;
            }
            let posting = entry.postings()[index];
            items.push(StatementLine {
                entry: entry_id,
                kind: entry.kind(),
                amount: posting.amount,
                balance_after: posting.balance_after,
                counterparty: entry.counterparty_of(account),
                description: entry.header().description.clone(),
                created_at: entry.created_at(),
            });
            last_position = Some(position);
        }
        Ok(Page { items, next_cursor })
    }

    async fn balance_at(&self, account: AccountId, at: Timestamp) -> Result<Option<Balance>, StoreError> {
        let inner = self.lock();
        if inner.book.account(account).is_none() {
            return Ok(None);
        }
        let positions = inner.by_account.get(&account).map(Vec::as_slice).unwrap_or(&[]);
        let posted = positions
            .iter()
            .rev()
            .map(|p| inner.journal[*p])
            .find(|(entry, _)| inner.entries[entry].created_at() <= at)
            .map_or(Micros::ZERO, |(entry, index)| inner.entries[&entry].postings()[index].balance_after);
        let holds = inner.holds_by_account.get(&account).map(Vec::as_slice).unwrap_or(&[]);
        let pending = holds
            .iter()
            .filter_map(|id| inner.book.hold(*id))
            .try_fold(Micros::ZERO, |sum, hold| sum.checked_add(hold.reserved_at(at)))
            .ok_or_else(|| StoreError::backend(OverflowInHistory))?;
        Ok(Some(Balance { posted, pending }))
    }

    async fn hold(&self, id: HoldId) -> Result<Option<crate::state::Hold>, StoreError> {
        Ok(self.lock().book.hold(id).cloned())
    }

    async fn expired_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<HoldId>, StoreError> {
        let inner = self.lock();
        let mut due: Vec<HoldId> =
            inner.book.holds().filter(|h| !h.status.is_final() && h.is_expired_at(now)).map(|h| h.id).collect();
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    async fn payout(&self, id: PayoutId) -> Result<Option<Payout>, StoreError> {
        Ok(self.lock().book.payout(id).cloned())
    }

    async fn payouts(&self, filter: &PayoutFilter, page: &PageRequest) -> Result<Page<Payout>, StoreError> {
        let inner = self.lock();
        page_after(&inner.payout_order, page, |id| {
            let p = inner.book.payout(id)?;
            let wanted = filter.owner.is_none_or(|o| p.owner == o)
                && filter.status.is_none_or(|s| p.status == s)
                && filter.account.is_none_or(|a| p.account == a);
            wanted.then(|| p.clone())
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("pending balance history overflows")]
struct OverflowInHistory;

#[async_trait]
impl PayoutQueue for MemoryStore {
    async fn claim(&self, now: Timestamp, lease: Duration, limit: usize) -> Result<Vec<Claim>, StoreError> {
        let mut inner = self.lock();
        let mut due: Vec<(Timestamp, PayoutId)> = inner
            .queue
            .iter()
            .filter(|(_, item)| item.due_at <= now && item.locked_until.is_none_or(|until| until <= now))
            .map(|(id, item)| (item.due_at, *id))
            .collect();
        due.sort();
        due.truncate(limit);
        let locked_until = now.saturating_add(lease);
        let mut claims = Vec::with_capacity(due.len());
        for (_, id) in due {
            let item = inner.queue.get_mut(&id).expect("listed above");
            item.locked_until = Some(locked_until);
            item.attempts += 1;
            let attempt = item.attempts;
            let payout = inner.book.payout(id).expect("queued payouts exist").clone();
            claims.push(Claim { payout, attempt, locked_until });
        }
        Ok(claims)
    }

    async fn retry_at(&self, id: PayoutId, at: Timestamp) -> Result<(), StoreError> {
        if let Some(item) = self.lock().queue.get_mut(&id) {
            item.due_at = at;
            item.locked_until = None;
        }
        Ok(())
    }

    async fn record_attempt(&self, id: PayoutId, attempt: Attempt) -> Result<(), StoreError> {
        self.lock().attempts.entry(id).or_default().push(attempt);
        Ok(())
    }

    async fn attempts(&self, id: PayoutId) -> Result<Vec<Attempt>, StoreError> {
        Ok(self.lock().attempts.get(&id).cloned().unwrap_or_default())
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let inner = self.lock();
        let oldest = inner.queue.keys().filter_map(|id| inner.book.payout(*id)).map(|p| p.created_at).min();
        Ok(QueueStats { depth: inner.queue.len() as u64, oldest_created_at: oldest })
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: Timestamp,
        lease: Duration,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut inner = self.lock();
        let slot = (scope, key.clone());
        let answer = match inner.idempotency.get(&slot) {
            Some(record) => {
                let live = match &record.state {
                    IdempotencyState::InFlight { lease_until } => *lease_until > now,
                    IdempotencyState::Done { expires_at, .. } => *expires_at > now,
                };
                match (&record.state, live) {
                    (_, false) => IdempotencyBegin::Started,
                    (_, true) if record.fingerprint != fingerprint => IdempotencyBegin::Mismatch,
                    (IdempotencyState::InFlight { .. }, true) => IdempotencyBegin::InFlight,
                    (IdempotencyState::Done { response, .. }, true) => IdempotencyBegin::Replay(response.clone()),
                }
            }
            None => IdempotencyBegin::Started,
        };
        if answer == IdempotencyBegin::Started {
            let state = IdempotencyState::InFlight { lease_until: now.saturating_add(lease) };
            inner.idempotency.insert(slot, IdempotencyRecord { fingerprint, state });
        }
        Ok(answer)
    }

    async fn complete(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        response: StoredResponse,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        if let Some(record) = self.lock().idempotency.get_mut(&(scope, key.clone())) {
            record.state = IdempotencyState::Done { response, expires_at };
        }
        Ok(())
    }

    async fn abandon(&self, scope: UserId, key: &IdempotencyKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let slot = (scope, key.clone());
        if matches!(
            inner.idempotency.get(&slot),
            Some(IdempotencyRecord { state: IdempotencyState::InFlight { .. }, .. })
        ) {
            inner.idempotency.remove(&slot);
        }
        Ok(())
    }
}

#[async_trait]
impl RateSource for MemoryStore {
    async fn rate(&self, base: Currency, quote: Currency) -> Result<Option<PairRate>, StoreError> {
        let inner = self.lock();
        if let Some(rate) = inner.rates.get(&(base, quote)) {
            return Ok(Some(*rate));
        }
        Ok(inner.rates.get(&(quote, base)).and_then(PairRate::inverse))
    }

    async fn rates(&self) -> Result<Vec<PairRate>, StoreError> {
        Ok(self.lock().rates.values().copied().collect())
    }
}

#[async_trait]
impl FxStore for MemoryStore {
    async fn set_rate(&self, rate: PairRate) -> Result<(), StoreError> {
        self.lock().rates.insert((rate.base, rate.quote), rate);
        Ok(())
    }

    async fn save_quote(&self, quote: FxQuote) -> Result<(), StoreError> {
        self.lock().quotes.insert(quote.id, quote);
        Ok(())
    }

    async fn quote(&self, id: QuoteId) -> Result<Option<FxQuote>, StoreError> {
        Ok(self.lock().quotes.get(&id).copied())
    }
}

/// Recon runs are made by `ledger-recon`, which checks a PostgreSQL ledger: in memory there are
/// none.
#[async_trait]
impl crate::ports::ReconRuns for MemoryStore {
    async fn recon_runs(&self, _page: &PageRequest) -> Result<Page<crate::ports::ReconRun>, StoreError> {
        Ok(Page { items: Vec::new(), next_cursor: None })
    }

    async fn recon_run(&self, _id: uuid::Uuid) -> Result<Option<crate::ports::ReconRun>, StoreError> {
        Ok(None)
    }

    async fn recon_summary(&self) -> Result<crate::ports::ReconSummary, StoreError> {
        Ok(crate::ports::ReconSummary::default())
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_endpoint(&self, endpoint: WebhookEndpoint) -> Result<WebhookEndpoint, StoreError> {
        let mut inner = self.lock();
        if inner.endpoints.contains_key(&endpoint.id) {
            return Err(StoreError::Duplicate("webhook endpoint id"));
        }
        inner.endpoints.insert(endpoint.id, (endpoint.clone(), None));
        Ok(endpoint)
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self.lock().endpoints.get(&id).filter(|(_, deleted)| deleted.is_none()).map(|(e, _)| e.clone()))
    }

    async fn endpoints(&self, owner: UserId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, StoreError> {
        let inner = self.lock();
        let order: BTreeMap<EndpointId, ()> = inner.endpoints.keys().map(|id| (*id, ())).collect();
        page_after(&order, page, |id| {
            let (endpoint, deleted) = &inner.endpoints[&id];
            (endpoint.owner == owner && deleted.is_none()).then(|| endpoint.clone())
        })
    }

    async fn delete_endpoint(&self, id: EndpointId, now: Timestamp) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.endpoints.get_mut(&id) {
            Some((_, deleted @ None)) => {
                *deleted = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn deliveries(&self, endpoint: EndpointId, page: &PageRequest) -> Result<Page<Delivery>, StoreError> {
        let inner = self.lock();
        let order: BTreeMap<DeliveryId, ()> =
            inner.deliveries.iter().filter(|(_, (d, _, _))| d.endpoint == endpoint).map(|(id, _)| (*id, ())).collect();
        page_after(&order, page, |id| Some(inner.deliveries[&id].0.clone()))
    }

    async fn fan_out(&self, now: Timestamp, limit: usize, ids: &dyn IdGenerator) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let start = inner.published;
        let end = inner.outbox.len().min(start.saturating_add(limit));
        for (index, event) in inner.outbox[start..end].iter().enumerate() {
            let event_id = i64::try_from(start + index + 1).unwrap_or(i64::MAX);
            for (endpoint, _) in inner
                .endpoints
                .values()
                .filter(|(e, deleted)| deleted.is_none() && e.events.contains(&event.kind) && e.created_at <= event.at)
            {
                let accounts: Vec<AccountId> = event
                    .accounts
                    .iter()
                    .copied()
                    .filter(|a| inner.book.account(*a).is_some_and(|a| a.owner == Some(endpoint.owner)))
                    .collect();
                if accounts.is_empty() {
                    continue;
                }
                let delivery = Delivery {
                    id: DeliveryId(ids.next_id()),
                    endpoint: endpoint.id,
                    event_id,
                    event_type: event.kind,
                    body: payload(event_id, event, &accounts),
                    state: DeliveryState::Pending,
                    attempts: Vec::new(),
                    next_attempt_at: Some(now),
                    created_at: now,
                };
                inner.deliveries.insert(delivery.id, (delivery, None, 0));
            }
        }
        inner.published = end;
        Ok(end - start)
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        per_endpoint: usize,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let live = |id: &EndpointId| inner.endpoints.get(id).is_some_and(|(_, deleted)| deleted.is_none());
        let mut in_flight: HashMap<EndpointId, usize> = HashMap::new();
        for (delivery, leased, _) in inner.deliveries.values() {
            if delivery.state == DeliveryState::Pending && leased.is_some_and(|until| until > now) {
                *in_flight.entry(delivery.endpoint).or_default() += 1;
            }
        }
        let mut due: Vec<(Timestamp, DeliveryId)> = inner
            .deliveries
            .values()
            .filter(|(d, leased, _)| {
                d.state == DeliveryState::Pending
                    && d.next_attempt_at.is_some_and(|at| at <= now)
                    && leased.is_none_or(|until| until <= now)
                    && live(&d.endpoint)
            })
            .map(|(d, _, _)| (d.next_attempt_at.unwrap_or(now), d.id))
            .collect();
        due.sort();
        let mut jobs = Vec::new();
        for (_, id) in due {
            if jobs.len() == limit {
                break;
            }
            let (delivery, leased, claims) = inner.deliveries.get_mut(&id).expect("listed above");
            let busy = in_flight.entry(delivery.endpoint).or_default();
            if *busy >= per_endpoint {
                continue;
            }
            *busy += 1;
            *leased = Some(now.saturating_add(lease));
            *claims += 1;
            let endpoint = &inner.endpoints[&delivery.endpoint].0;
            jobs.push(DeliveryJob {
                delivery: id,
                endpoint: endpoint.id,
                url: endpoint.url.clone(),
                secret: endpoint.secret.clone(),
                event_type: delivery.event_type,
                body: delivery.body.clone(),
                attempt: *claims,
            });
        }
        Ok(jobs)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Some((delivery, leased, _)) = inner.deliveries.get_mut(&id) else { return Ok(()) };
        *leased = None;
        delivery.attempts.push(attempt);
        // Only a pending delivery moves (a late answer after a lease ran out changes nothing).
        if delivery.state == DeliveryState::Pending {
            (delivery.state, delivery.next_attempt_at) = next.outcome();
        }
        Ok(())
    }

    async fn webhook_backlog(&self) -> Result<WebhookBacklog, StoreError> {
        let inner = self.lock();
        Ok(WebhookBacklog {
            unpublished_events: (inner.outbox.len() - inner.published) as u64,
            pending_deliveries: inner
                .deliveries
                .values()
                .filter(|(d, _, _)| {
                    d.state == DeliveryState::Pending
                        && inner.endpoints.get(&d.endpoint).is_some_and(|(_, deleted)| deleted.is_none())
                })
                .count() as u64,
        })
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: User) -> Result<User, StoreError> {
        let mut inner = self.lock();
        if inner.users.values().any(|u| u.username == user.username) {
            return Err(StoreError::Duplicate("username"));
        }
        if inner.users.values().any(|u| u.email == user.email) {
            return Err(StoreError::Duplicate("email"));
        }
        inner.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.values().find(|u| u.username == username).cloned())
    }

    async fn set_role(&self, id: UserId, role: Role) -> Result<Option<User>, StoreError> {
        let mut inner = self.lock();
        Ok(inner.users.get_mut(&id).map(|user| {
            user.role = role;
            user.clone()
        }))
    }
}

/// A bank double: answers with scripted outcomes (success when the script is empty), and,
/// like a real bank API with idempotency keys, moves each payout's money at most once however
/// often it is asked.
#[derive(Debug, Default)]
pub struct ScriptedBank {
    inner: Mutex<BankState>,
}

#[derive(Debug, Default)]
struct BankState {
    script: VecDeque<Result<(), ProviderError>>,
    paid: HashMap<PayoutId, ProviderReceipt>,
    calls: u64,
}

impl ScriptedBank {
    /// A bank that says yes to everything.
    pub fn new() -> ScriptedBank {
        ScriptedBank::default()
    }

    /// Queues outcomes for the next calls, in order.
    pub fn script(&self, outcomes: impl IntoIterator<Item = Result<(), ProviderError>>) {
        self.lock().script.extend(outcomes);
    }

    /// How many distinct payouts the bank has moved.
    pub fn paid_count(&self) -> usize {
        self.lock().paid.len()
    }

    /// Whether the bank has moved this payout's money.
    pub fn has_paid(&self, id: PayoutId) -> bool {
        self.lock().paid.contains_key(&id)
    }

    /// How many calls it has answered.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, BankState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl PayoutProvider for ScriptedBank {
    async fn execute(&self, request: &ProviderRequest) -> Result<ProviderReceipt, ProviderError> {
        let mut bank = self.lock();
        bank.calls += 1;
        if let Some(receipt) = bank.paid.get(&request.payout) {
            return Ok(receipt.clone());
        }
        match bank.script.pop_front().unwrap_or(Ok(())) {
            Ok(()) => {
                let receipt = ProviderReceipt { reference: format!("bank-{}", request.payout) };
                bank.paid.insert(request.payout, receipt.clone());
                Ok(receipt)
            }
            // A timeout is ambiguous in real life; this double models the worst case, where the
            // money did move, so callers must not assume a timeout means "not paid".
            Err(ProviderError::Timeout) => {
                let receipt = ProviderReceipt { reference: format!("bank-{}", request.payout) };
                bank.paid.insert(request.payout, receipt);
                Err(ProviderError::Timeout)
            }
            Err(error) => Err(error),
        }
    }
}
