//! The wire types of the API (poem-openapi objects), converted by hand from and to the domain
//! types, which carry no HTTP attributes. Requests refuse unknown fields.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger_core::{
    Account, Balance, Currency, JournalEntry, Micros, Payout, StatusChange, Timestamp, ports::StatementLine,
};
use poem_openapi::Object;
use uuid::Uuid;

use crate::error::ApiError;

/// Instants on the wire are RFC 3339 UTC.
pub fn time(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.as_unix_micros()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The inverse of [`time`].
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_unix_micros(at.timestamp_micros())
}

/// Parses a currency field.
pub fn currency(field: &str, code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).map_err(|e| ApiError::field(field, e.to_string()))
}

/// Parses a positive amount field.
pub fn amount(field: &str, micros: i64) -> Result<Micros, ApiError> {
    if micros > 0 {
        Ok(Micros::new(micros))
    } else {
        Err(ApiError::field(field, "must be a positive number of micros"))
    }
}

/// Checks an optional free-text field's length.
pub fn text(field: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::field(field, format!("must be at most {max} characters"))),
        _ => Ok(()),
    }
}

/// Checks metadata: at most 20 keys of at most 40 characters, values of at most 500.
pub fn metadata(value: &Option<BTreeMap<String, String>>) -> Result<BTreeMap<String, String>, ApiError> {
    let metadata = value.clone().unwrap_or_default();
    if metadata.len() > 20 {
        return Err(ApiError::field("metadata", "at most 20 keys"));
    }
    if metadata.iter().any(|(k, v)| k.is_empty() || k.chars().count() > 40 || v.chars().count() > 500) {
        return Err(ApiError::field("metadata", "keys must be 1 to 40 characters and values at most 500"));
    }
    Ok(metadata)
}

/// An account's balances.
#[derive(Clone, Debug, Object)]
pub struct BalanceDto {
    /// ISO 4217 code.
    pub currency: String,
    /// The sum of the account's postings.
    pub posted_micros: i64,
    /// Funds reserved by open holds.
    pub pending_micros: i64,
    /// `posted - pending`: what can be spent now.
    pub available_micros: i64,
    /// `available_micros` formatted in the currency, e.g. `"150.00"`.
    pub available: String,
    /// The instant these figures describe.
    pub as_of: DateTime<Utc>,
}

impl BalanceDto {
    /// The balances of an account in `currency` as of `at`.
    pub fn new(currency: Currency, balance: Balance, at: Timestamp) -> BalanceDto {
        let available = balance.available().unwrap_or(Micros::ZERO);
        BalanceDto {
            currency: currency.code().to_owned(),
            posted_micros: balance.posted.get(),
            pending_micros: balance.pending.get(),
            available_micros: available.get(),
            available: currency.format_amount(available),
            as_of: time(at),
        }
    }
}

/// An account with its balances.
#[derive(Clone, Debug, Object)]
#[oai(example)]
pub struct AccountDto {
    /// Its id.
    pub id: Uuid,
    /// The owning user (absent for the house's accounts).
    #[oai(skip_serializing_if_is_none)]
    pub user_id: Option<Uuid>,
    /// `customer`, `settlement`, `liquidity`, `payout_clearing` or `fees`.
    pub kind: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The owner's label.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Client key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// How far below zero `available` may go (absent: no floor).
    #[oai(skip_serializing_if_is_none)]
    pub overdraft_limit_micros: Option<i64>,
    /// `active`, `frozen` or `closed`.
    pub status: String,
    /// Current balances.
    pub balance: BalanceDto,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
}

impl AccountDto {
    /// The wire form of an account, with balances as of `now`.
    pub fn new(account: &Account, now: Timestamp) -> AccountDto {
        AccountDto {
            id: account.id.0,
            user_id: account.owner.map(|o| o.0),
            kind: account.kind.as_str().to_owned(),
            currency: account.currency.code().to_owned(),
            name: account.name.clone(),
            metadata: account.metadata.clone(),
            overdraft_limit_micros: account.overdraft.limit_micros().map(Micros::get),
            status: account.status.as_str().to_owned(),
            balance: BalanceDto::new(account.currency, account.balance, now),
            created_at: time(account.created_at),
        }
    }
}

/// A page of accounts.
#[derive(Clone, Debug, Object)]
pub struct AccountPage {
    /// The accounts.
    pub items: Vec<AccountDto>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: NextCursor,
}

/// One leg of a transaction.
#[derive(Clone, Debug, Object)]
pub struct PostingDto {
    /// The account.
    pub account_id: Uuid,
    /// ISO 4217 code.
    pub currency: String,
    /// Signed: positive credits the account, negative debits it.
    pub amount_micros: i64,
    /// The amount formatted in the currency.
    pub amount: String,
    /// The account's posted balance right after this leg.
    pub balance_after_micros: i64,
}

/// The FX details of an exchange.
#[derive(Clone, Debug, Object)]
pub struct FxDto {
    /// Units of the target currency per unit of the source, spread included.
    pub rate: String,
    /// Debited from the source account.
    pub from_amount_micros: i64,
    /// Credited to the destination account.
    pub to_amount_micros: i64,
    /// The quote that locked the rate, if one did.
    #[oai(skip_serializing_if_is_none)]
    pub quote_id: Option<Uuid>,
}

/// A journal entry (transaction) with all its postings.
#[derive(Clone, Debug, Object)]
#[oai(example)]
pub struct TransactionDto {
    /// Its id.
    pub id: Uuid,
    /// `transfer`, `exchange`, `deposit`, `hold_capture`, `payout_hold`, `payout_settle`,
    /// `payout_release`, `payout_return`, `deposit_return` or `reversal`.
    pub kind: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// Client key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Its legs; they sum to zero per currency.
    pub postings: Vec<PostingDto>,
    /// For exchanges: the rate and both amounts.
    #[oai(skip_serializing_if_is_none)]
    pub fx: Option<FxDto>,
    /// The transaction this one reverses.
    #[oai(skip_serializing_if_is_none)]
    pub reverses_id: Option<Uuid>,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
}

impl TransactionDto {
    /// The wire form of an entry.
    pub fn new(entry: &JournalEntry) -> TransactionDto {
        let header = entry.header();
        TransactionDto {
            id: entry.id().0,
            kind: entry.kind().as_str().to_owned(),
            description: header.description.clone(),
            metadata: header.metadata.clone(),
            postings: entry
                .postings()
                .iter()
                .map(|p| PostingDto {
                    account_id: p.account.0,
                    currency: p.currency.code().to_owned(),
                    amount_micros: p.amount.get(),
                    amount: p.currency.format_amount(p.amount),
                    balance_after_micros: p.balance_after.get(),
                })
                .collect(),
            fx: header.links.fx.map(|fx| FxDto {
                rate: fx.rate.to_string(),
                from_amount_micros: fx.from_amount.get(),
                to_amount_micros: fx.to_amount.get(),
                quote_id: fx.quote.map(|q| q.0),
            }),
            reverses_id: header.links.reverses.map(|r| r.0),
            created_at: time(entry.created_at()),
        }
    }
}

/// One line of a statement.
#[derive(Clone, Debug, Object)]
pub struct StatementLineDto {
    /// The transaction.
    pub transaction_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Signed amount on this account.
    pub amount_micros: i64,
    /// The account's posted balance right after it.
    pub balance_after_micros: i64,
    /// The account on the other side, when there is one.
    #[oai(skip_serializing_if_is_none)]
    pub counterparty_account_id: Option<Uuid>,
    /// The transaction's description.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
}

impl From<StatementLine> for StatementLineDto {
    fn from(line: StatementLine) -> StatementLineDto {
        StatementLineDto {
            transaction_id: line.entry.0,
            kind: line.kind.as_str().to_owned(),
            amount_micros: line.amount.get(),
            balance_after_micros: line.balance_after.get(),
            counterparty_account_id: line.counterparty.map(|a| a.0),
            description: line.description,
            created_at: time(line.created_at),
        }
    }
}

/// A page of statement lines, newest first.
#[derive(Clone, Debug, Object)]
pub struct StatementPage {
    /// The lines.
    pub items: Vec<StatementLineDto>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: NextCursor,
}

/// One step of a payout's history.
#[derive(Clone, Debug, Object)]
pub struct StatusChangeDto {
    /// The status before (absent for creation).
    #[oai(skip_serializing_if_is_none)]
    pub from: Option<String>,
    /// The status after.
    pub to: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, when someone said.
    #[oai(skip_serializing_if_is_none)]
    pub note: Option<String>,
    /// The transaction the step posted, if it moved money.
    #[oai(skip_serializing_if_is_none)]
    pub transaction_id: Option<Uuid>,
}

impl From<&StatusChange> for StatusChangeDto {
    fn from(change: &StatusChange) -> StatusChangeDto {
        StatusChangeDto {
            from: change.from.map(|s| s.as_str().to_owned()),
            to: change.to.as_str().to_owned(),
            at: time(change.at),
            note: change.note.clone(),
            transaction_id: change.entry.map(|e| e.0),
        }
    }
}

/// One call to the bank.
#[derive(Clone, Debug, Object)]
pub struct AttemptDto {
    /// Which claim made it (1-based).
    pub attempt: u32,
    /// `succeeded`, `timeout`, `unavailable`, `insufficient_funds` or `rejected`.
    pub outcome: String,
    /// The bank's error, if any.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// The bank's reference, on success.
    #[oai(skip_serializing_if_is_none)]
    pub reference: Option<String>,
    /// When the call started.
    pub started_at: DateTime<Utc>,
    /// When the answer came.
    pub finished_at: DateTime<Utc>,
}

impl From<&ledger_core::ports::Attempt> for AttemptDto {
    fn from(attempt: &ledger_core::ports::Attempt) -> AttemptDto {
        AttemptDto {
            attempt: attempt.attempt,
            outcome: attempt.outcome.clone(),
            error: attempt.error.clone(),
            reference: attempt.reference.clone(),
            started_at: time(attempt.started_at),
            finished_at: time(attempt.finished_at),
        }
    }
}

/// A payout or deposit request.
#[derive(Clone, Debug, Object)]
#[oai(example)]
pub struct PayoutDto {
    /// Its id.
    pub payout_id: Uuid,
    /// `payout` or `deposit`.
    pub direction: String,
    /// `PENDING`, `PROCESSING`, `COMPLETED`, `FAILED`, `MANUAL_REVIEW`, `CANCELLED` or `REVERSED`.
    pub status: String,
    /// The customer account.
    pub account_id: Uuid,
    /// How much.
    pub amount_micros: i64,
    /// The amount formatted in the currency.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The customer's reference.
    #[oai(skip_serializing_if_is_none)]
    pub reference: Option<String>,
    /// Every status it went through, oldest first.
    pub history: Vec<StatusChangeDto>,
    /// Every call made to the bank for it, oldest first (on `GET /v1/payouts/{id}`; lists leave it
    /// empty).
    pub attempts: Vec<AttemptDto>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Payout> for PayoutDto {
    fn from(payout: &Payout) -> PayoutDto {
        PayoutDto {
            payout_id: payout.id.0,
            direction: payout.direction.as_str().to_owned(),
            status: payout.status.as_str().to_owned(),
            account_id: payout.account.0,
            amount_micros: payout.amount.get(),
            amount: payout.currency.format_amount(payout.amount),
            currency: payout.currency.code().to_owned(),
            reference: payout.reference.clone(),
            history: payout.history.iter().map(StatusChangeDto::from).collect(),
            attempts: Vec::new(),
            created_at: time(payout.created_at),
            updated_at: time(payout.updated_at),
        }
    }
}

/// The cursor of the next page, or JSON `null` on the last one (documented as a nullable
/// string, which `Option<String>` alone does not say in OpenAPI 3.0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextCursor(pub Option<String>);

impl From<Option<String>> for NextCursor {
    fn from(cursor: Option<String>) -> NextCursor {
        NextCursor(cursor)
    }
}

impl poem_openapi::types::Type for NextCursor {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> std::borrow::Cow<'static, str> {
        "nullable_string".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        let schema =
            poem_openapi::registry::MetaSchema { nullable: true, ..poem_openapi::registry::MetaSchema::new("string") };
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        self.0.as_ref()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.0.iter())
    }
}

impl poem_openapi::types::ToJSON for NextCursor {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.clone().map_or(serde_json::Value::Null, serde_json::Value::String))
    }
}

impl poem_openapi::types::ParseFromJSON for NextCursor {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<NextCursor> {
        match value.unwrap_or_default() {
            serde_json::Value::Null => Ok(NextCursor(None)),
            serde_json::Value::String(cursor) => Ok(NextCursor(Some(cursor))),
            other => Err(poem_openapi::types::ParseError::expected_type(other)),
        }
    }
}

fn example_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

const EXAMPLE_ACCOUNT: Uuid = Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b);
const EXAMPLE_OTHER: Uuid = Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7c);

impl poem_openapi::types::Example for AccountDto {
    fn example() -> AccountDto {
        AccountDto {
            id: EXAMPLE_ACCOUNT,
            user_id: Some(EXAMPLE_OTHER),
            kind: "customer".into(),
            currency: "USD".into(),
            name: Some("Main wallet".into()),
            metadata: BTreeMap::new(),
            overdraft_limit_micros: Some(0),
            status: "active".into(),
            balance: BalanceDto {
                currency: "USD".into(),
                posted_micros: 150_000_000,
                pending_micros: 20_000_000,
                available_micros: 130_000_000,
                available: "130.00".into(),
                as_of: example_time(),
            },
            created_at: example_time(),
        }
    }
}

impl poem_openapi::types::Example for TransactionDto {
    fn example() -> TransactionDto {
        let leg = |account_id, amount_micros: i64, balance_after_micros| PostingDto {
            account_id,
            currency: "USD".into(),
            amount_micros,
            amount: Currency::USD.format_amount(Micros::new(amount_micros)),
            balance_after_micros,
        };
        TransactionDto {
            id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a80),
            kind: "transfer".into(),
            description: Some("rent".into()),
            metadata: BTreeMap::new(),
            postings: vec![leg(EXAMPLE_ACCOUNT, -40_250_000, 109_750_000), leg(EXAMPLE_OTHER, 40_250_000, 40_250_000)],
            fx: None,
            reverses_id: None,
            created_at: example_time(),
        }
    }
}

impl poem_openapi::types::Example for PayoutDto {
    fn example() -> PayoutDto {
        PayoutDto {
            payout_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a81),
            direction: "payout".into(),
            status: "PENDING".into(),
            account_id: EXAMPLE_ACCOUNT,
            amount_micros: 20_000_000,
            amount: "20.00".into(),
            currency: "USD".into(),
            reference: Some("invoice-1042".into()),
            history: vec![StatusChangeDto {
                from: None,
                to: "PENDING".into(),
                at: example_time(),
                note: None,
                transaction_id: Some(Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a82)),
            }],
            attempts: Vec::new(),
            created_at: example_time(),
            updated_at: example_time(),
        }
    }
}
