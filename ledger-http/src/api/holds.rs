//! Two-phase transfers (holds: reserve now, capture or void later) and admin reversals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_core::{AccountId, CaptureHold, Command, CreateHold, EntryId, Hold, HoldId, Reverse};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::Tag;
use super::dto::{self, time};
use super::money::{TransactionCreated, transaction_created};
use crate::auth::{BearerAuth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Idempotent, Render};
use crate::state::AppState;

/// Holds and reversals.
pub struct HoldsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A hold.
#[derive(Object)]
pub struct HoldDto {
    /// Its id.
    pub id: Uuid,
    /// The account whose funds are reserved.
    pub account_id: Uuid,
    /// The account that receives them on capture.
    pub to_account_id: Uuid,
    /// ISO 4217 code.
    pub currency: String,
    /// The reserved amount.
    pub amount_micros: i64,
    /// What was captured, once posted.
    #[oai(skip_serializing_if_is_none)]
    pub captured_micros: Option<i64>,
    /// `PENDING`, `POSTED`, `VOIDED` or `EXPIRED`.
    pub status: String,
    /// When it expires if still pending.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<&Hold> for HoldDto {
    fn from(hold: &Hold) -> HoldDto {
        HoldDto {
            id: hold.id.0,
            account_id: hold.from.0,
            to_account_id: hold.to.0,
            currency: hold.currency.code().to_owned(),
            amount_micros: hold.amount.get(),
            captured_micros: hold.captured.map(|c| c.get()),
            status: hold.status.as_str().to_owned(),
            expires_at: hold.expires_at.map(time),
            created_at: time(hold.created_at),
        }
    }
}

/// A new hold.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct HoldRequest {
    /// The caller's account whose funds are reserved.
    pub account_id: Uuid,
    /// The account that receives them on capture.
    pub to_account_id: Uuid,
    /// How much to reserve, in micros.
    pub amount_micros: i64,
    /// Released automatically after this many seconds (1 to 30 days); none: until voided.
    pub expires_in_seconds: Option<u64>,
}

/// A capture.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct CaptureRequest {
    /// How much to capture (at most the held amount; the rest is released). Default: all.
    pub amount_micros: Option<i64>,
}

/// A reversal.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct ReverseRequest {
    /// Why (kept as the reversing transaction's description; 1 to 500 characters).
    pub reason: String,
}

/// Hold made.
#[derive(ApiResponse)]
pub enum HoldCreated {
    /// The hold: available drops at once, posted does not.
    #[oai(status = 201)]
    Created(Json<HoldDto>),
}

/// Hold voided.
#[derive(ApiResponse)]
pub enum HoldVoided {
    /// The hold, now `VOIDED`; its funds are available again.
    #[oai(status = 200)]
    Ok(Json<HoldDto>),
}

fn render_hold(status: u16) -> Render {
    Arc::new(move |changes| {
        let hold = changes.hold.as_ref().expect("hold commands change a hold");
        (status, HoldDto::from(hold).to_json_string().into_bytes())
    })
}

const EXPIRY_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

impl HoldsApi {
    /// The hold, if the caller owns its source account.
    async fn own_hold(&self, caller: &Caller, id: HoldId) -> Result<Hold, ApiError> {
        let hold = self.state.store.hold(id).await?.ok_or(ApiError::NotFound("hold"))?;
        let account = self.state.store.account(hold.from).await?;
        if account.and_then(|a| a.owner) == Some(caller.user) { Ok(hold) } else { Err(ApiError::NotFound("hold")) }
    }
}

#[OpenApi(tag = "Tag::Money")]
impl HoldsApi {
    /// Reserve funds on the caller's account for another account (two-phase transfer).
    #[oai(path = "/v1/holds", method = "post", operation_id = "create_hold")]
    async fn create(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<HoldRequest>,
    ) -> ApiResult<Idempotent<HoldCreated>> {
        let caller = auth.0;
        let state = &self.state;
        let build = async || {
            let amount = dto::amount("amount_micros", body.amount_micros)?;
            let expires_at = match body.expires_in_seconds.map(Duration::from_secs) {
                Some(d) if d.is_zero() || d > EXPIRY_MAX => {
                    return Err(ApiError::field("expires_in_seconds", "between 1 second and 30 days"));
                }
                Some(d) => Some(state.ledger.now().saturating_add(d)),
                None => None,
            };
            let from = state.own_account(&caller, AccountId(body.account_id)).await?;
            let to = AccountId(body.to_account_id);
            Ok(Command::CreateHold(CreateHold { hold_id: state.new_id(), from: from.id, to, amount, expires_at }))
        };
        Ok(idempotency::run(state, caller.user, &key.0, &body.0, build, render_hold(201)).await?)
    }

    /// A hold.
    #[oai(path = "/v1/holds/:id", method = "get", operation_id = "get_hold")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<HoldDto>> {
        Ok(Json(HoldDto::from(&self.own_hold(&auth.0, HoldId(id.0)).await?)))
    }

    /// Capture a pending hold, in whole or in part; the rest is released.
    #[oai(path = "/v1/holds/:id/capture", method = "post", operation_id = "capture_hold")]
    async fn capture(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
        body: Json<CaptureRequest>,
    ) -> ApiResult<Idempotent<TransactionCreated>> {
        let caller = auth.0;
        let build = async || {
            let amount = body.amount_micros.map(|a| dto::amount("amount_micros", a)).transpose()?;
            let hold = self.own_hold(&caller, HoldId(id.0)).await?;
            Ok(Command::CaptureHold(CaptureHold { hold_id: hold.id, entry_id: self.state.new_id(), amount }))
        };
        Ok(idempotency::run(&self.state, caller.user, &key.0, &body.0, build, transaction_created()).await?)
    }

    /// Void a pending hold: its funds are available again.
    #[oai(path = "/v1/holds/:id/void", method = "post", operation_id = "void_hold")]
    async fn void(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
    ) -> ApiResult<Idempotent<HoldVoided>> {
        let caller = auth.0;
        let build = async || Ok(Command::VoidHold(self.own_hold(&caller, HoldId(id.0)).await?.id));
        let target = id.0.to_string();
        Ok(idempotency::run(&self.state, caller.user, &key.0, &target, build, render_hold(200)).await?)
    }

    /// Reverse a transaction (admin): posts its mirror image; a transaction is reversed once.
    #[oai(path = "/v1/admin/transactions/:id/reverse", method = "post", operation_id = "reverse_transaction")]
    async fn reverse(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        id: Path<Uuid>,
        body: Json<ReverseRequest>,
    ) -> ApiResult<Idempotent<TransactionCreated>> {
        let caller = auth.0;
        self.state.require_admin(&caller).await?;
        let build = async || {
            if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
                return Err(ApiError::field("reason", "1 to 500 characters"));
            }
            let target = EntryId(id.0);
            Ok(Command::Reverse(Reverse { entry_id: self.state.new_id(), target, reason: body.reason.clone() }))
        };
        Ok(idempotency::run(&self.state, caller.user, &key.0, &body.0, build, transaction_created()).await?)
    }
}

impl poem_openapi::types::Example for HoldRequest {
    fn example() -> HoldRequest {
        HoldRequest {
            account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            to_account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7c),
            amount_micros: 20_000_000,
            expires_in_seconds: Some(3_600),
        }
    }
}

impl poem_openapi::types::Example for CaptureRequest {
    fn example() -> CaptureRequest {
        CaptureRequest { amount_micros: Some(15_000_000) }
    }
}

impl poem_openapi::types::Example for ReverseRequest {
    fn example() -> ReverseRequest {
        ReverseRequest { reason: "sent twice by mistake".into() }
    }
}
