//! Conversions between database rows and `ledger-core` domain types. Every value read back is
//! parsed into its domain type; a value that does not parse (a corrupted row) is a storage
//! error naming the column, never a panic.

use chrono::{DateTime, Utc};
use ledger_core::{
    Account, AccountId, AccountKind, AccountStatus, Balance, BankAccount, Currency, EntryId, FxRate, Hold, HoldId,
    HoldStatus, Metadata, Micros, Overdraft, Payout, PayoutDirection, PayoutId, PayoutStatus, StatusChange, StoreError,
    Timestamp, UserId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

/// A row holding a value the domain does not accept.
#[derive(Debug, thiserror::Error)]
#[error("corrupt value in column {column}: {value}")]
pub(crate) struct Corrupt {
    column: &'static str,
    value: String,
}

pub(crate) fn corrupt(column: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::backend(Corrupt { column, value: value.to_string() })
}

pub(crate) fn ts(at: Timestamp) -> DateTime<Utc> {
    // Every i64 of micros is a valid chrono instant except far outside +/-262,000 years.
    DateTime::from_timestamp_micros(at.as_unix_micros()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(crate) fn from_ts(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_unix_micros(at.timestamp_micros())
}

pub(crate) fn metadata_json(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).expect("string maps always serialise")
}

/// Reads a column, turning a decode failure into a storage error.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(crate::db)
}

pub(crate) fn currency(row: &PgRow, column: &'static str) -> Result<Currency, StoreError> {
    let code: String = get(row, column)?;
    Currency::parse(&code).map_err(|_| corrupt(column, code))
}

fn micros(row: &PgRow, column: &'static str) -> Result<Micros, StoreError> {
    Ok(Micros::new(get(row, column)?))
}

fn time(row: &PgRow, column: &'static str) -> Result<Timestamp, StoreError> {
    Ok(from_ts(get(row, column)?))
}

fn opt_time(row: &PgRow, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<DateTime<Utc>>>(row, column)?.map(from_ts))
}

pub(crate) fn rate(value: ledger_core::Decimal, column: &'static str) -> Result<FxRate, StoreError> {
    FxRate::new(value).map_err(|_| corrupt(column, value))
}

/// The columns [`account`] reads.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, owner_id, kind, currency, name, metadata, overdraft_limit_micros, \
     status, posted_micros, pending_micros, created_at";

pub(crate) fn account(row: &PgRow) -> Result<Account, StoreError> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    let metadata: Json<Metadata> = get(row, "metadata")?;
    let overdraft = match get::<Option<i64>>(row, "overdraft_limit_micros")? {
        Some(limit) => Overdraft::Limit(Micros::new(limit)),
        None => Overdraft::Unlimited,
    };
    Ok(Account {
        id: AccountId(get(row, "id")?),
        owner: get::<Option<Uuid>>(row, "owner_id")?.map(UserId),
        kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        currency: currency(row, "currency")?,
        name: get(row, "name")?,
        metadata: metadata.0,
        overdraft,
        status: AccountStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        balance: Balance { posted: micros(row, "posted_micros")?, pending: micros(row, "pending_micros")? },
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`hold`] reads.
pub(crate) const HOLD_COLUMNS: &str = "id, from_account_id, to_account_id, currency, amount_micros, captured_micros, \
     status, expires_at, created_at, resolved_at, entry_id";

pub(crate) fn hold(row: &PgRow) -> Result<Hold, StoreError> {
    let status: String = get(row, "status")?;
    Ok(Hold {
        id: HoldId(get(row, "id")?),
        from: AccountId(get(row, "from_account_id")?),
        to: AccountId(get(row, "to_account_id")?),
        currency: currency(row, "currency")?,
        amount: micros(row, "amount_micros")?,
        captured: get::<Option<i64>>(row, "captured_micros")?.map(Micros::new),
        status: HoldStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        expires_at: opt_time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
        resolved_at: opt_time(row, "resolved_at")?,
        entry: get::<Option<Uuid>>(row, "entry_id")?.map(EntryId),
    })
}

/// The columns [`payout`] reads.
pub(crate) const PAYOUT_COLUMNS: &str = "id, owner_id, direction, account_id, clearing_account_id, \
     settlement_account_id, amount_micros, currency, bank_iban, bank_name, reference, status, created_at, updated_at";

/// A payout without its history (see [`status_change`]).
pub(crate) fn payout(row: &PgRow) -> Result<Payout, StoreError> {
    let direction: String = get(row, "direction")?;
    let iban: Option<String> = get(row, "bank_iban")?;
    let name: Option<String> = get(row, "bank_name")?;
    Ok(Payout {
        id: PayoutId(get(row, "id")?),
        owner: UserId(get(row, "owner_id")?),
        direction: PayoutDirection::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        account: AccountId(get(row, "account_id")?),
        clearing: get::<Option<Uuid>>(row, "clearing_account_id")?.map(AccountId),
        settlement: AccountId(get(row, "settlement_account_id")?),
        amount: micros(row, "amount_micros")?,
        currency: currency(row, "currency")?,
        bank_account: iban.zip(name).map(|(iban, name)| BankAccount { iban, name }),
        reference: get(row, "reference")?,
        status: payout_status(row, "status")?,
        history: Vec::new(),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn payout_status(row: &PgRow, column: &'static str) -> Result<PayoutStatus, StoreError> {
    let status: String = get(row, column)?;
    PayoutStatus::parse(&status).ok_or_else(|| corrupt(column, &status))
}

/// One history row: `(payout_id, StatusChange)`.
pub(crate) fn status_change(row: &PgRow) -> Result<(PayoutId, StatusChange), StoreError> {
    let from: Option<String> = get(row, "from_status")?;
    let from = match from {
        Some(name) => Some(PayoutStatus::parse(&name).ok_or_else(|| corrupt("from_status", &name))?),
        None => None,
    };
    let change = StatusChange {
        from,
        to: payout_status(row, "to_status")?,
        at: time(row, "at")?,
        note: get(row, "note")?,
        entry: get::<Option<Uuid>>(row, "entry_id")?.map(EntryId),
    };
    Ok((PayoutId(get(row, "payout_id")?), change))
}
