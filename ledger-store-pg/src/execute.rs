//! The write path: [`execute`] runs a batch of commands in one transaction, following the
//! locking protocol described in the crate docs, and retries it on serialization failures,
//! deadlocks and unique-key races.
//!
//! Writes are set-based: however many commands a batch holds, each table gets one statement
//! (`INSERT ... SELECT FROM UNNEST(...)`), which is what makes large batches (group commit)
//! cheap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use ledger_core::chain;
use ledger_core::ports::{IdempotencyWrite, Outcome, Submission};
use ledger_core::{
    AccountId, Book, ChangeSet, Command, EntryFacts, EntryId, Event, Hold, HoldId, JournalEntry, Leg, Micros, Payout,
    PayoutId, PayoutStatus, StoreError, Timestamp,
};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::rows::{self, ACCOUNT_COLUMNS, HOLD_COLUMNS, PAYOUT_COLUMNS, get, metadata_json, ts};
use crate::{PgStore, RETRIES_MAX, db};

/// An attempt failed either in the database (maybe retryable) or in decoding what it read.
pub(crate) enum Failure {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Failure {
        Failure::Db(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

/// SQLSTATEs after which a fresh attempt can succeed.
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";
const UNIQUE_VIOLATION: &str = "23505";

/// Unique constraints that two concurrent transactions can race on; the retry sees the winner's
/// row and decides accordingly (for example `DuplicateReference`).
const RACY_CONSTRAINTS: [&str; 2] = ["payouts_reference_unique_per_owner", "journal_entries_reverses_entry_id_key"];

fn retryable(error: &sqlx::Error) -> bool {
    let Some(db) = error.as_database_error() else { return false };
    match db.code().as_deref() {
        Some(SERIALIZATION_FAILURE | DEADLOCK_DETECTED) => true,
        Some(UNIQUE_VIOLATION) => db.constraint().is_some_and(|c| RACY_CONSTRAINTS.contains(&c)),
        _ => false,
    }
}

/// Runs the batch, retrying a bounded number of times with backoff.
pub(crate) async fn execute(store: &PgStore, batch: &[Submission], now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
    let mut attempt = 0;
    loop {
        let mut tx = store.pool.begin().await.map_err(db)?;
        let result = match execute_in(&mut tx, batch, now).await {
            Ok(outcomes) => tx.commit().await.map(|()| outcomes).map_err(Failure::Db),
            Err(failure) => Err(failure),
        };
        match result {
            Ok(outcomes) => return Ok(outcomes),
            Err(Failure::Db(error)) if retryable(&error) && attempt < RETRIES_MAX => {
                attempt += 1;
                tracing::debug!(attempt, %error, "retrying ledger batch");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(Failure::Db(error)) => return Err(db(error)),
            Err(Failure::Store(error)) => return Err(error),
        }
    }
}

/// Exponential backoff with jitter, capped at about 50 ms: contention here is between
/// transactions that each last a few milliseconds.
fn backoff(attempt: u32) -> Duration {
    let ceiling_us = 500u64 << attempt.min(7);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_micros(u64::from(nanos) % ceiling_us.max(1))
}

/// What a batch needs loaded, by class.
#[derive(Default)]
struct Keys {
    accounts: BTreeSet<AccountId>,
    holds: BTreeSet<HoldId>,
    payouts: BTreeSet<PayoutId>,
    entries: BTreeSet<EntryId>,
}

impl Keys {
    fn of(batch: &[Submission]) -> Keys {
        let mut keys = Keys::default();
        for submission in batch {
            match &submission.command {
                Command::Transfer(c) => keys.accounts.extend([c.from, c.to]),
                Command::Exchange(c) => keys.accounts.extend([c.from, c.to, c.from_liquidity, c.to_liquidity]),
                Command::Deposit(c) => keys.accounts.extend([c.to, c.settlement]),
                Command::CreateHold(c) => keys.accounts.extend([c.from, c.to]),
                Command::CaptureHold(c) => {
                    keys.holds.insert(c.hold_id);
                }
                Command::VoidHold(id) | Command::ExpireHold(id) => {
                    keys.holds.insert(*id);
                }
                Command::CreatePayout(c) => keys.accounts.extend([c.account, c.clearing, c.settlement]),
                Command::AdvancePayout(c) => {
                    keys.payouts.insert(c.payout_id);
                }
                Command::Reverse(c) => {
                    keys.entries.insert(c.target);
                }
            }
        }
        keys
    }
}

fn uuids<T: Copy>(ids: &BTreeSet<T>, uuid: impl Fn(T) -> Uuid) -> Vec<Uuid> {
    ids.iter().map(|id| uuid(*id)).collect()
}

/// Loads and locks what the batch touches, decides it, and writes the result.
async fn execute_in(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Submission],
    now: Timestamp,
) -> Result<Vec<Outcome>, Failure> {
    let mut keys = Keys::of(batch);
    let mut book = Book::new();
    let conn: &mut PgConnection = tx;

    let hold_rows = if keys.holds.is_empty() {
        Vec::new()
    } else {
        sqlx::query(sql!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = ANY($1) ORDER BY id FOR UPDATE"))
            .bind(uuids(&keys.holds, |h| h.0))
            .fetch_all(&mut *conn)
            .await?
    };
    let mut loaded_holds = HashSet::new();
    for row in &hold_rows {
        let hold = rows::hold(row)?;
        keys.accounts.extend([hold.from, hold.to]);
        loaded_holds.insert(hold.id);
        book.put_hold(hold);
    }

    let payouts = load_payouts(conn, &uuids(&keys.payouts, |p| p.0), true).await?;
    let mut loaded_history: HashMap<PayoutId, usize> = HashMap::new();
    for payout in payouts {
        keys.accounts.extend([payout.account, payout.settlement]);
        keys.accounts.extend(payout.clearing);
        loaded_history.insert(payout.id, payout.history.len());
        book.put_payout(payout);
    }

    for (id, facts) in lock_entries(conn, &keys.entries).await? {
        keys.accounts.extend(facts.legs.iter().map(|leg| leg.account));
        book.put_entry(id, facts);
    }

    let account_rows = sqlx::query(sql!(
        "SELECT {ACCOUNT_COLUMNS}, chain_hash FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(uuids(&keys.accounts, |a| a.0))
    .fetch_all(&mut *conn)
    .await?;
    // Each locked account's hash-chain head, read with the lock so it cannot move underneath us.
    let mut heads = HashMap::with_capacity(account_rows.len());
    for row in &account_rows {
        let account = rows::account(row)?;
        let head: Option<Vec<u8>> = get(row, "chain_hash")?;
        heads.insert(account.id.0, head.and_then(|h| <[u8; 32]>::try_from(h).ok()).unwrap_or(chain::GENESIS));
        book.put_account(account);
    }
    load_references(conn, batch, &mut book, &mut loaded_history).await?;

    let mut writes = Writes::default();
    let mut outcomes = Vec::with_capacity(batch.len());
    for submission in batch {
        let outcome = book.decide(&submission.command, now);
        if let Ok(changes) = &outcome {
            book.apply(changes);
            writes.add(changes);
        }
        if let Some(write) = &submission.idempotency {
            writes.idempotency(write, &outcome);
        }
        outcomes.push(outcome);
    }
    writes.persist(conn, &book, &loaded_holds, &loaded_history, heads, now).await?;
    Ok(outcomes)
}

/// Payouts with their history, optionally locked.
pub(crate) async fn load_payouts(conn: &mut PgConnection, ids: &[Uuid], lock: bool) -> Result<Vec<Payout>, Failure> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let lock = if lock { "FOR UPDATE" } else { "" };
    let rows = sqlx::query(sql!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = ANY($1) ORDER BY id {lock}"))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut payouts = rows.iter().map(rows::payout).collect::<Result<Vec<_>, _>>()?;
    attach_history(conn, &mut payouts).await?;
    Ok(payouts)
}

/// Fills in each payout's history, oldest first.
pub(crate) async fn attach_history(conn: &mut PgConnection, payouts: &mut [Payout]) -> Result<(), Failure> {
    let ids: Vec<Uuid> = payouts.iter().map(|p| p.id.0).collect();
    let rows = sqlx::query(
        "SELECT payout_id, from_status, to_status, at, note, entry_id FROM payout_status_history \
         WHERE payout_id = ANY($1) ORDER BY payout_id, seq",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: HashMap<PayoutId, Vec<_>> = HashMap::new();
    for row in &rows {
        let (id, change) = rows::status_change(row)?;
        by_id.entry(id).or_default().push(change);
    }
    for payout in payouts {
        payout.history = by_id.remove(&payout.id).unwrap_or_default();
    }
    Ok(())
}

/// Entries a batch reverses, locked so that two reversals of one entry queue up, with their
/// legs and the entry that already reversed them, if any.
async fn lock_entries(conn: &mut PgConnection, ids: &BTreeSet<EntryId>) -> Result<Vec<(EntryId, EntryFacts)>, Failure> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = uuids(ids, |e| e.0);
    let rows = sqlx::query(
        "SELECT e.id, e.kind, (SELECT r.id FROM journal_entries r WHERE r.reverses_entry_id = e.id) AS reversed_by \
         FROM journal_entries e WHERE e.id = ANY($1) ORDER BY e.id FOR UPDATE OF e",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let legs = sqlx::query(
        "SELECT entry_id, account_id, currency, amount_micros FROM postings WHERE entry_id = ANY($1) \
         ORDER BY entry_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_entry: HashMap<Uuid, Vec<Leg>> = HashMap::new();
    for row in &legs {
        let leg = Leg {
            account: AccountId(get(row, "account_id")?),
            currency: rows::currency(row, "currency")?,
            amount: Micros::new(get(row, "amount_micros")?),
        };
        by_entry.entry(get(row, "entry_id")?).or_default().push(leg);
    }
    let mut facts = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = get(row, "id")?;
        let kind: String = get(row, "kind")?;
        facts.push((
            EntryId(id),
            EntryFacts {
                kind: ledger_core::EntryKind::parse(&kind).ok_or_else(|| rows::corrupt("kind", &kind))?,
                legs: by_entry.remove(&id).unwrap_or_default(),
                reversed_by: get::<Option<Uuid>>(row, "reversed_by")?.map(EntryId),
            },
        ));
    }
    Ok(facts)
}

/// Payouts that already use a reference a new payout in the batch asks for, so that the
/// decider can answer `DuplicateReference`. Not locked: the unique constraint settles races.
async fn load_references(
    conn: &mut PgConnection,
    batch: &[Submission],
    book: &mut Book,
    loaded_history: &mut HashMap<PayoutId, usize>,
) -> Result<(), Failure> {
    let (mut owners, mut references) = (Vec::new(), Vec::new());
    for submission in batch {
        if let Command::CreatePayout(c) = &submission.command
            && let Some(reference) = &c.reference
            && let Some(owner) = book.account(c.account).and_then(|a| a.owner)
        {
            owners.push(owner.0);
            references.push(reference.clone());
        }
    }
    if owners.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(sql!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE (owner_id, reference) IN \
         (SELECT * FROM UNNEST($1::uuid[], $2::text[]))"
    ))
    .bind(&owners)
    .bind(&references)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let payout = rows::payout(row)?;
        if book.payout(payout.id).is_none() {
            // Only its reference matters here; its history is not rewritten.
            loaded_history.insert(payout.id, usize::MAX);
            book.put_payout(payout);
        }
    }
    Ok(())
}

/// A completed idempotency record: who, which key, the request fingerprint, the response and
/// until when it is kept.
struct IdempotencyRow {
    scope: Uuid,
    key: String,
    fingerprint: Vec<u8>,
    status: i32,
    body: Vec<u8>,
    expires_at: Timestamp,
}

/// Everything a batch writes, gathered while deciding and written set-based at the end.
#[derive(Default)]
struct Writes {
    entries: Vec<JournalEntry>,
    accounts: BTreeSet<AccountId>,
    holds: Vec<HoldId>,
    payouts: Vec<PayoutId>,
    events: Vec<Event>,
    audit: Vec<(&'static str, &'static str, Uuid, String)>,
    idempotency: Vec<IdempotencyRow>,
}

impl Writes {
    fn add(&mut self, changes: &ChangeSet) {
        self.accounts.extend(changes.balances.iter().map(|b| b.account));
        if let Some(entry) = &changes.entry {
            self.audit.push(("entry.posted", "entry", entry.id().0, entry.kind().as_str().to_owned()));
            self.entries.push(entry.clone());
        }
        if let Some(hold) = &changes.hold {
            self.audit.push(("hold.changed", "hold", hold.id.0, hold.status.as_str().to_owned()));
            if !self.holds.contains(&hold.id) {
                self.holds.push(hold.id);
            }
        }
        if let Some(payout) = &changes.payout {
            self.audit.push(("payout.changed", "payout", payout.id.0, payout.status.as_str().to_owned()));
            if !self.payouts.contains(&payout.id) {
                self.payouts.push(payout.id);
            }
        }
        self.events.extend(changes.events.iter().cloned());
    }

    fn idempotency(&mut self, write: &IdempotencyWrite, outcome: &Outcome) {
        let response = (write.render)(outcome);
        // A key used twice in one batch keeps its last answer: one row per key.
        self.idempotency.retain(|row| !(row.scope == write.scope.0 && row.key == write.key.as_str()));
        self.idempotency.push(IdempotencyRow {
            scope: write.scope.0,
            key: write.key.as_str().to_owned(),
            fingerprint: write.fingerprint.0.to_vec(),
            status: i32::from(response.status),
            body: response.body,
            expires_at: write.expires_at,
        });
    }

    async fn persist(
        &self,
        conn: &mut PgConnection,
        book: &Book,
        loaded_holds: &HashSet<HoldId>,
        loaded_history: &HashMap<PayoutId, usize>,
        heads: HashMap<Uuid, [u8; 32]>,
        now: Timestamp,
    ) -> Result<(), Failure> {
        // Rows read at the start are updated; new ones are inserted, and an id that exists
        // already is then an error, never a silent overwrite.
        let (held, new_holds): (Vec<&Hold>, Vec<&Hold>) =
            self.holds.iter().filter_map(|id| book.hold(*id)).partition(|h| loaded_holds.contains(&h.id));
        let (known, new_payouts): (Vec<&Payout>, Vec<&Payout>) =
            self.payouts.iter().filter_map(|id| book.payout(*id)).partition(|p| loaded_history.contains_key(&p.id));
        insert_holds(conn, &new_holds).await?;
        update_holds(conn, &held).await?;
        insert_payouts(conn, &new_payouts, now).await?;
        update_payouts(conn, &known).await?;
        write_history(conn, new_payouts.iter().chain(&known), loaded_history).await?;
        let heads = write_entries(conn, &self.entries, heads).await?;
        write_balances(conn, book, &self.accounts, &heads).await?;
        write_events(conn, &self.events).await?;
        write_audit(conn, &self.audit, now).await?;
        write_idempotency(conn, &self.idempotency).await?;
        Ok(())
    }
}

async fn insert_holds(conn: &mut PgConnection, holds: &[&Hold]) -> Result<(), sqlx::Error> {
    if holds.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO holds (id, from_account_id, to_account_id, currency, amount_micros, captured_micros, status, \
                            expires_at, created_at, resolved_at, entry_id) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::int8[], $7::text[], \
                              $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::uuid[])",
    )
    .bind(holds.iter().map(|h| h.id.0).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.from.0).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.to.0).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.currency.code().to_owned()).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.amount.get()).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.captured.map(Micros::get)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.expires_at.map(ts)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| ts(h.created_at)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.resolved_at.map(ts)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.entry.map(|e| e.0)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn update_holds(conn: &mut PgConnection, holds: &[&Hold]) -> Result<(), sqlx::Error> {
    if holds.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE holds AS h SET captured_micros = u.captured, status = u.status, resolved_at = u.resolved_at, \
                               entry_id = u.entry_id \
         FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[], $5::uuid[]) \
              AS u(id, captured, status, resolved_at, entry_id) \
         WHERE h.id = u.id",
    )
    .bind(holds.iter().map(|h| h.id.0).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.captured.map(Micros::get)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.resolved_at.map(ts)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| h.entry.map(|e| e.0)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_payouts(conn: &mut PgConnection, payouts: &[&Payout], now: Timestamp) -> Result<(), sqlx::Error> {
    if payouts.is_empty() {
        return Ok(());
    }
    // A payout is queued while a worker has something to do with it (PENDING, PROCESSING).
    sqlx::query(
        "INSERT INTO payouts (id, owner_id, direction, account_id, clearing_account_id, settlement_account_id, \
                              amount_micros, currency, bank_iban, bank_name, reference, status, created_at, updated_at, \
                              next_attempt_at) \
         SELECT u.*, CASE WHEN u.status IN ('PENDING', 'PROCESSING') THEN $15 END \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::int8[], $8::text[], \
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[]) \
              AS u(id, owner_id, direction, account_id, clearing, settlement, amount, currency, iban, name, reference, \
                   status, created_at, updated_at)",
    )
    .bind(payouts.iter().map(|p| p.id.0).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.owner.0).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.direction.as_str()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.account.0).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.clearing.map(|c| c.0)).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.settlement.0).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.amount.get()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.currency.code().to_owned()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.bank_account.as_ref().map(|b| b.iban.clone())).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.bank_account.as_ref().map(|b| b.name.clone())).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.reference.clone()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.status.as_str()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| ts(p.created_at)).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| ts(p.updated_at)).collect::<Vec<_>>())
    .bind(ts(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn update_payouts(conn: &mut PgConnection, payouts: &[&Payout]) -> Result<(), sqlx::Error> {
    if payouts.is_empty() {
        return Ok(());
    }
    // It keeps its due time and lease across PENDING -> PROCESSING and leaves the queue in any
    // other status.
    sqlx::query(
        "UPDATE payouts AS p SET status = u.status, updated_at = u.updated_at, \
             next_attempt_at = CASE WHEN u.status IN ('PENDING', 'PROCESSING') \
                                    THEN COALESCE(p.next_attempt_at, u.updated_at) END, \
             locked_until = CASE WHEN u.status IN ('PENDING', 'PROCESSING') THEN p.locked_until END \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, status, updated_at) \
         WHERE p.id = u.id",
    )
    .bind(payouts.iter().map(|p| p.id.0).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| p.status.as_str()).collect::<Vec<_>>())
    .bind(payouts.iter().map(|p| ts(p.updated_at)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The history items each payout gained in this batch.
async fn write_history<'p>(
    conn: &mut PgConnection,
    payouts: impl Iterator<Item = &'p &'p Payout>,
    loaded_history: &HashMap<PayoutId, usize>,
) -> Result<(), sqlx::Error> {
    let (mut ids, mut seqs, mut froms, mut tos, mut ats, mut notes, mut entries) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for payout in payouts {
        let known = loaded_history.get(&payout.id).copied().unwrap_or(0);
        for (seq, change) in payout.history.iter().enumerate().skip(known) {
            ids.push(payout.id.0);
            seqs.push(i32::try_from(seq).unwrap_or(i32::MAX));
            froms.push(change.from.map(PayoutStatus::as_str));
            tos.push(change.to.as_str());
            ats.push(ts(change.at));
            notes.push(change.note.clone());
            entries.push(change.entry.map(|e| e.0));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO payout_status_history (payout_id, seq, from_status, to_status, at, note, entry_id) \
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::uuid[])",
    )
    .bind(ids)
    .bind(seqs)
    .bind(froms)
    .bind(tos)
    .bind(ats)
    .bind(notes)
    .bind(entries)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts the entries and their postings, each posting with its hash-chain link; returns the
/// heads of the accounts whose chains moved.
async fn write_entries(
    conn: &mut PgConnection,
    entries: &[JournalEntry],
    heads: HashMap<Uuid, [u8; 32]>,
) -> Result<HashMap<Uuid, [u8; 32]>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(HashMap::new());
    }
    let header = |f: &dyn Fn(&JournalEntry) -> Option<Uuid>| entries.iter().map(f).collect::<Vec<_>>();
    let fx = |e: &JournalEntry| e.header().links.fx;
    sqlx::query(
        "INSERT INTO journal_entries (id, kind, description, metadata, reverses_entry_id, hold_id, payout_id, fx_rate, \
                                      fx_from_amount_micros, fx_to_amount_micros, fx_quote_id, created_at) \
         SELECT id, kind, description, metadata::jsonb, reverses, hold, payout, rate, from_amount, to_amount, quote, at \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::uuid[], $8::numeric[], \
                     $9::int8[], $10::int8[], $11::uuid[], $12::timestamptz[]) \
              AS u(id, kind, description, metadata, reverses, hold, payout, rate, from_amount, to_amount, quote, at)",
    )
    .bind(entries.iter().map(|e| e.id().0).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.kind().as_str()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.header().description.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| metadata_json(&e.header().metadata)).collect::<Vec<_>>())
    .bind(header(&|e| e.header().links.reverses.map(|r| r.0)))
    .bind(header(&|e| e.header().links.hold.map(|h| h.0)))
    .bind(header(&|e| e.header().links.payout.map(|p| p.0)))
    .bind(entries.iter().map(|e| fx(e).map(|f| f.rate.as_decimal())).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| fx(e).map(|f| f.from_amount.get())).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| fx(e).map(|f| f.to_amount.get())).collect::<Vec<_>>())
    .bind(header(&|e| fx(e).and_then(|f| f.quote.map(|q| q.0))))
    .bind(entries.iter().map(|e| ts(e.created_at())).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;

    let postings: Vec<_> = entries
        .iter()
        .flat_map(|e| e.postings().iter().enumerate().map(move |(i, p)| (e, i16::try_from(i).unwrap_or(i16::MAX), p)))
        .collect();
    let (hashes, heads) = chain_links(&postings, heads);
    sqlx::query(
        "INSERT INTO postings (entry_id, position, account_id, currency, amount_micros, balance_after_micros, created_at, \
                               chain_hash) \
         SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::uuid[], $4::text[], $5::int8[], $6::int8[], $7::timestamptz[], \
                              $8::bytea[])",
    )
    .bind(postings.iter().map(|(e, ..)| e.id().0).collect::<Vec<_>>())
    .bind(postings.iter().map(|(_, i, _)| *i).collect::<Vec<_>>())
    .bind(postings.iter().map(|(_, _, p)| p.account.0).collect::<Vec<_>>())
    .bind(postings.iter().map(|(_, _, p)| p.currency.code().to_owned()).collect::<Vec<_>>())
    .bind(postings.iter().map(|(_, _, p)| p.amount.get()).collect::<Vec<_>>())
    .bind(postings.iter().map(|(_, _, p)| p.balance_after.get()).collect::<Vec<_>>())
    .bind(postings.iter().map(|(e, ..)| ts(e.created_at())).collect::<Vec<_>>())
    .bind(hashes.iter().map(|h| h.to_vec()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(heads)
}

/// Each posting's link in its account's hash chain (see `ledger_core::chain`), in write order,
/// continuing from the locked accounts' `heads`; returns the links and the moved heads.
fn chain_links(
    postings: &[(&JournalEntry, i16, &ledger_core::Posting)],
    mut heads: HashMap<Uuid, [u8; 32]>,
) -> (Vec<[u8; 32]>, HashMap<Uuid, [u8; 32]>) {
    let mut moved = HashMap::new();
    let mut links = Vec::with_capacity(postings.len());
    for (entry, position, posting) in postings {
        let head = heads.entry(posting.account.0).or_insert(chain::GENESIS);
        let at = entry.created_at().as_unix_micros();
        let link = chain::Link {
            entry: entry.id(),
            entry_kind: entry.kind().as_str(),
            description: entry.header().description.as_deref(),
            entry_at_micros: at,
            position: *position,
            account: posting.account,
            currency: posting.currency.code(),
            amount: posting.amount,
            balance_after: posting.balance_after,
            posted_at_micros: at,
        };
        *head = link.hash(head);
        moved.insert(posting.account.0, *head);
        links.push(*head);
    }
    (links, moved)
}

async fn write_balances(
    conn: &mut PgConnection,
    book: &Book,
    accounts: &BTreeSet<AccountId>,
    heads: &HashMap<Uuid, [u8; 32]>,
) -> Result<(), sqlx::Error> {
    // Every account with a new chain link also has a new posted balance; the union is a guard.
    let ids: BTreeSet<AccountId> = accounts.iter().copied().chain(heads.keys().map(|id| AccountId(*id))).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let balances: Vec<_> = ids.iter().filter_map(|id| book.account(*id)).map(|a| (a.id.0, a.balance)).collect();
    sqlx::query(
        "UPDATE accounts AS a SET posted_micros = u.posted, pending_micros = u.pending, \
             chain_hash = COALESCE(u.head, a.chain_hash) \
         FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::bytea[]) AS u(id, posted, pending, head) WHERE a.id = u.id",
    )
    .bind(balances.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(balances.iter().map(|(_, b)| b.posted.get()).collect::<Vec<_>>())
    .bind(balances.iter().map(|(_, b)| b.pending.get()).collect::<Vec<_>>())
    .bind(balances.iter().map(|(id, _)| heads.get(id).map(|h| h.to_vec())).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_events(conn: &mut PgConnection, events: &[Event]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    // Arrays of arrays do not survive UNNEST, so each event's accounts travel as an array literal.
    let accounts = |e: &Event| {
        let ids: Vec<String> = e.accounts.iter().map(|a| a.0.to_string()).collect();
        format!("{{{}}}", ids.join(","))
    };
    sqlx::query(
        "INSERT INTO outbox (event_type, entry_id, hold_id, payout_id, payout_status, account_ids, created_at) \
         SELECT kind, entry, hold, payout, status, accounts::uuid[], at \
         FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[]) \
              AS u(kind, entry, hold, payout, status, accounts, at)",
    )
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.entry.map(|x| x.0)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.hold.map(|x| x.0)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payout.map(|x| x.0)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payout_status.map(|s| s.as_str())).collect::<Vec<_>>())
    .bind(events.iter().map(accounts).collect::<Vec<_>>())
    .bind(events.iter().map(|e| ts(e.at)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_audit(
    conn: &mut PgConnection,
    audit: &[(&'static str, &'static str, Uuid, String)],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    if audit.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (at, action, entity_type, entity_id, details) \
         SELECT $1, action, entity_type, entity_id, jsonb_build_object('state', state) \
         FROM UNNEST($2::text[], $3::text[], $4::uuid[], $5::text[]) AS u(action, entity_type, entity_id, state)",
    )
    .bind(ts(now))
    .bind(audit.iter().map(|a| a.0).collect::<Vec<_>>())
    .bind(audit.iter().map(|a| a.1).collect::<Vec<_>>())
    .bind(audit.iter().map(|a| a.2).collect::<Vec<_>>())
    .bind(audit.iter().map(|a| a.3.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_idempotency(conn: &mut PgConnection, records: &[IdempotencyRow]) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, response_status, response_body, expires_at) \
         SELECT user_id, key, fingerprint, 'done', status, body, expires_at \
         FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::bytea[], $6::timestamptz[]) \
              AS u(user_id, key, fingerprint, status, body, expires_at) \
         ON CONFLICT (user_id, key) DO UPDATE SET state = 'done', lease_until = NULL, \
             fingerprint = EXCLUDED.fingerprint, response_status = EXCLUDED.response_status, \
             response_body = EXCLUDED.response_body, expires_at = EXCLUDED.expires_at",
    )
    .bind(records.iter().map(|r| r.scope).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.key.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.fingerprint.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| ts(r.expires_at)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
