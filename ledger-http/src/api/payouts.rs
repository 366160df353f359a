//! Payouts and API-initiated deposits: accepted at once (202, a payout's funds held), driven to a
//! terminal state by the payout pipeline; cancelled by the owner while pending; resolved from
//! manual review or returned by an admin.

use std::sync::Arc;

use ledger_core::ports::PayoutFilter;
use ledger_core::{
    AccountId, AccountKind, AdvancePayout, BankAccount, Command, CreatePayout, Payout, PayoutDirection, PayoutId,
    PayoutStatus,
};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::dto::{self, NextCursor, PayoutDto};
use super::{Tag, page};
use crate::auth::{BearerAuth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Idempotent, Render};
use crate::state::AppState;

/// Payouts and deposits.
pub struct PayoutsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Where a payout goes.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct Destination {
    /// The IBAN (or account number), 5 to 34 letters and digits.
    pub iban: String,
    /// The account holder's name (1 to 140 characters).
    pub name: String,
}

/// A payout request.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct PayoutRequest {
    /// The caller's account to pay from.
    pub account_id: Uuid,
    /// How much, in micros (whole minor units: cents for USD).
    pub amount_micros: i64,
    /// ISO 4217 code; must be the account's.
    pub currency: String,
    /// The bank account to pay.
    pub destination: Destination,
    /// The caller's own reference, unique per caller when given (1 to 100 characters).
    pub reference: Option<String>,
}

/// An API-initiated deposit: pull money from the customer's bank.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct DepositRequest {
    /// The caller's account to credit.
    pub account_id: Uuid,
    /// How much, in micros (whole minor units).
    pub amount_micros: i64,
    /// ISO 4217 code; must be the account's.
    pub currency: String,
}

/// A manual-review resolution.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct ResolveRequest {
    /// `complete` (the bank paid) or `fail` (it did not: funds are released).
    pub resolution: String,
    /// Why (kept in the payout's history; 1 to 500 characters).
    pub note: String,
}

/// A page of payouts.
#[derive(Object)]
pub struct PayoutPage {
    /// The payouts.
    pub items: Vec<PayoutDto>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: NextCursor,
}

/// Accepted.
#[derive(ApiResponse)]
pub enum PayoutAccepted {
    /// Accepted as `PENDING` (a payout's funds are held at once); a worker takes it from here.
    #[oai(status = 202)]
    Accepted(Json<PayoutDto>),
}

/// Changed.
#[derive(ApiResponse)]
pub enum PayoutChanged {
    /// The payout in its new status.
    #[oai(status = 200)]
    Ok(Json<PayoutDto>),
}

fn render_payout(status: u16) -> Render {
    Arc::new(move |changes| {
        let payout = changes.payout.as_ref().expect("payout commands change a payout");
        (status, PayoutDto::from(payout).to_json_string().into_bytes())
    })
}

impl PayoutsApi {
    /// The payout, if the caller owns it or is an admin.
    async fn visible_payout(&self, caller: &Caller, id: PayoutId) -> Result<Payout, ApiError> {
        let payout = self.state.store.payout(id).await?.ok_or(ApiError::NotFound("payout"))?;
        if payout.owner == caller.user || self.state.is_admin(caller).await? {
            Ok(payout)
        } else {
            Err(ApiError::NotFound("payout"))
        }
    }

    /// Builds the command that accepts a payout or a deposit request.
    async fn accept(&self, caller: &Caller, request: Accept<'_>) -> Result<Command, ApiError> {
        let Accept { direction, account, amount_micros, currency, bank_account, reference } = request;
        let amount = dto::amount("amount_micros", amount_micros)?;
        let currency = dto::currency("currency", currency)?;
        dto::text("reference", &reference, 100)?;
        if reference.as_deref() == Some("") {
            return Err(ApiError::field("reference", "must not be empty"));
        }
        let account = self.state.own_account(caller, AccountId(account)).await?;
        let house = |kind| self.state.ledger.system_account(kind, currency);
        Ok(Command::CreatePayout(CreatePayout {
            payout_id: self.state.new_id(),
            entry_id: self.state.new_id(),
            direction,
            account: account.id,
            clearing: house(AccountKind::PayoutClearing).await?,
            settlement: house(AccountKind::Settlement).await?,
            amount,
            currency,
            bank_account,
            reference,
        }))
    }

    async fn advance(
        &self,
        caller: Caller,
        key: &str,
        id: Uuid,
        to: PayoutStatus,
        note: Option<String>,
        owner_only: bool,
    ) -> Result<Idempotent<PayoutChanged>, ApiError> {
        let build = async || {
            let payout = self.visible_payout(&caller, PayoutId(id)).await?;
            if owner_only && payout.owner != caller.user {
                return Err(ApiError::NotFound("payout"));
            }
            let entry_id = self.state.new_id();
            Ok(Command::AdvancePayout(AdvancePayout { payout_id: payout.id, to, entry_id, note: note.clone() }))
        };
        let fingerprint = format!("{id}:{}", to.as_str());
        idempotency::run(&self.state, caller.user, key, &fingerprint, build, render_payout(200)).await
    }
}

/// What a payout or deposit request asks for, before validation.
struct Accept<'a> {
    direction: PayoutDirection,
    account: Uuid,
    amount_micros: i64,
    currency: &'a str,
    bank_account: Option<BankAccount>,
    reference: Option<String>,
}

fn valid_destination(destination: &Destination) -> Result<BankAccount, ApiError> {
    let iban = destination.iban.replace(' ', "");
    if !(5..=34).contains(&iban.len()) || !iban.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::field("destination.iban", "5 to 34 letters and digits"));
    }
    let name = destination.name.trim();
    if name.is_empty() || name.chars().count() > 140 {
        return Err(ApiError::field("destination.name", "1 to 140 characters"));
    }
    Ok(BankAccount { iban: iban.to_uppercase(), name: name.to_owned() })
}

#[OpenApi(tag = "Tag::Money")]
impl PayoutsApi {
    /// Pay out to a bank account: the funds are held at once (available drops), then a worker
    /// pays and settles, or fails and releases.
    #[oai(path = "/v1/payouts", method = "post", operation_id = "create_payout")]
    async fn create(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<PayoutRequest>,
    ) -> ApiResult<Idempotent<PayoutAccepted>> {
        let caller = auth.0;
        let build = async || {
            let request = Accept {
                direction: PayoutDirection::Outbound,
                account: body.account_id,
                amount_micros: body.amount_micros,
                currency: &body.currency,
                bank_account: Some(valid_destination(&body.destination)?),
                reference: body.reference.clone(),
            };
            self.accept(&caller, request).await
        };
        Ok(idempotency::run(&self.state, caller.user, &key.0, &body.0, build, render_payout(202)).await?)
    }

    /// Pull money from the customer's bank into an account: credited when the bank confirms.
    #[oai(path = "/v1/deposits", method = "post", operation_id = "create_deposit")]
    async fn deposit(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<DepositRequest>,
    ) -> ApiResult<Idempotent<PayoutAccepted>> {
        let caller = auth.0;
        let build = async || {
            let request = Accept {
                direction: PayoutDirection::Inbound,
                account: body.account_id,
                amount_micros: body.amount_micros,
                currency: &body.currency,
                bank_account: None,
                reference: None,
            };
            self.accept(&caller, request).await
        };
        Ok(idempotency::run(&self.state, caller.user, &key.0, &body.0, build, render_payout(202)).await?)
    }

    /// The manual review queue (admin).
    #[oai(path = "/v1/payouts/manual-review", method = "get", operation_id = "list_manual_review")]
    async fn manual_review(
        &self,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<PayoutPage>> {
        self.state.require_admin(&auth.0).await?;
        let filter = PayoutFilter { status: Some(PayoutStatus::ManualReview), ..PayoutFilter::default() };
        let found = self.state.store.payouts(&filter, &page(limit.0, cursor.0)?).await.map_err(ApiError::from)?;
        Ok(Json(PayoutPage {
            items: found.items.iter().map(PayoutDto::from).collect(),
            next_cursor: found.next_cursor.into(),
        }))
    }

    /// A payout or deposit with its history and its calls to the bank.
    #[oai(path = "/v1/payouts/:id", method = "get", operation_id = "get_payout")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<PayoutDto>> {
        let payout = self.visible_payout(&auth.0, PayoutId(id.0)).await?;
        let mut dto = PayoutDto::from(&payout);
        let attempts = self.state.store.attempts(payout.id).await.map_err(ApiError::from)?;
        dto.attempts = attempts.iter().map(dto::AttemptDto::from).collect();
        Ok(Json(dto))
    }

    /// The caller's payouts and deposits (an admin sees all), by `status` and `account_id`.
    #[oai(path = "/v1/payouts", method = "get", operation_id = "list_payouts")]
    async fn list(
        &self,
        auth: BearerAuth,
        status: Query<Option<String>>,
        account_id: Query<Option<Uuid>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<PayoutPage>> {
        let status = match status.0 {
            Some(s) => Some(PayoutStatus::parse(&s).ok_or_else(|| ApiError::field("status", "not a payout status"))?),
            None => None,
        };
        let admin = self.state.is_admin(&auth.0).await?;
        let owner = if admin { None } else { Some(auth.0.user) };
        let filter = PayoutFilter { owner, status, account: account_id.0.map(AccountId) };
        let found = self.state.store.payouts(&filter, &page(limit.0, cursor.0)?).await.map_err(ApiError::from)?;
        Ok(Json(PayoutPage {
            items: found.items.iter().map(PayoutDto::from).collect(),
            next_cursor: found.next_cursor.into(),
        }))
    }

    /// Cancel a payout while it is still `PENDING`: its funds are released.
    #[oai(path = "/v1/payouts/:id/cancel", method = "post", operation_id = "cancel_payout")]
    async fn cancel(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
    ) -> ApiResult<Idempotent<PayoutChanged>> {
        Ok(self.advance(auth.0, &key.0, id.0, PayoutStatus::Cancelled, None, true).await?)
    }

    /// Resolve a payout in manual review (admin): `complete` settles it, `fail` releases its funds.
    #[oai(path = "/v1/payouts/:id/resolve", method = "post", operation_id = "resolve_payout")]
    async fn resolve(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
        body: Json<ResolveRequest>,
    ) -> ApiResult<Idempotent<PayoutChanged>> {
        self.state.require_admin(&auth.0).await?;
        let to = match body.resolution.as_str() {
            "complete" => PayoutStatus::Completed,
            "fail" => PayoutStatus::Failed,
            _ => return Err(ApiError::field("resolution", "must be `complete` or `fail`").into()),
        };
        if body.note.trim().is_empty() || body.note.chars().count() > 500 {
            return Err(ApiError::field("note", "1 to 500 characters").into());
        }
        Ok(self.advance(auth.0, &key.0, id.0, to, Some(body.note.clone()), false).await?)
    }

    /// The bank returned a completed payout (admin): `REVERSED`, funds back to the customer.
    #[oai(path = "/v1/admin/payouts/:id/return", method = "post", operation_id = "return_payout")]
    async fn returned(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
    ) -> ApiResult<Idempotent<PayoutChanged>> {
        self.state.require_admin(&auth.0).await?;
        let note = Some("returned by the bank".to_owned());
        Ok(self.advance(auth.0, &key.0, id.0, PayoutStatus::Reversed, note, false).await?)
    }
}

impl poem_openapi::types::Example for Destination {
    fn example() -> Destination {
        Destination { iban: "GB33BUKB20201555555555".into(), name: "Alice Smith".into() }
    }
}

impl poem_openapi::types::Example for PayoutRequest {
    fn example() -> PayoutRequest {
        PayoutRequest {
            account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            amount_micros: 20_000_000,
            currency: "USD".into(),
            destination: Destination::example(),
            reference: Some("invoice-1042".into()),
        }
    }
}

impl poem_openapi::types::Example for DepositRequest {
    fn example() -> DepositRequest {
        DepositRequest {
            account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            amount_micros: 50_000_000,
            currency: "USD".into(),
        }
    }
}

impl poem_openapi::types::Example for ResolveRequest {
    fn example() -> ResolveRequest {
        ResolveRequest { resolution: "complete".into(), note: "the bank confirmed the transfer".into() }
    }
}
