//! The inbound deposit webhook: the bank tells us money arrived for an account.
//!
//! Requests are signed with HMAC-SHA256 over `timestamp + "." + raw body`, sent as
//! `X-Signature: t=<unix seconds>,v1=<hex>`, with the secret in `LEDGER_WEBHOOK_SECRET`. A bad
//! signature or one more than 5 minutes from our clock is 401 (compared in constant time). Each
//! `event_id` credits once: the credit and the record of the event commit in one transaction
//! (the event id is the idempotency key, in a scope no user can have), so a repeat answers 200
//! with the first response.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::signature;
pub use ledger_core::signature::sign;
use ledger_core::{AccountId, AccountKind, Command, Deposit, UserId};
use poem::Request;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::Tag;
use super::dto;
use crate::context::RawBody;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Idempotent, Render};
use crate::state::AppState;

/// The idempotency scope of bank events: the nil UUID, which no user can have.
pub const BANK_SCOPE: UserId = UserId(Uuid::nil());

/// Webhooks.
pub struct WebhooksApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Money received for an account.
#[derive(Object)]
#[oai(example)]
pub struct DepositEvent {
    /// The bank's unique id for this event.
    pub event_id: String,
    /// The account credited.
    pub account_id: Uuid,
    /// How much, in micros (whole minor units of the currency).
    pub amount_micros: i64,
    /// ISO 4217 code; must be the account's.
    pub currency: String,
    /// When the bank received the money.
    pub occurred_at: DateTime<Utc>,
}

/// The credit.
#[derive(Object)]
pub struct DepositCredited {
    /// The bank's event id.
    pub event_id: String,
    /// The deposit transaction.
    pub transaction_id: Uuid,
    /// Always `credited`.
    pub status: String,
}

/// Webhook answer.
#[derive(ApiResponse)]
pub enum Credited {
    /// Credited now, or already credited by an earlier delivery of the same event.
    #[oai(status = 200)]
    Ok(Json<DepositCredited>),
}

/// Checks `X-Signature: t=<unix>,v1=<hex>` over `t + "." + body` with `secret`
/// ([`ledger_core::signature`], the scheme outbound deliveries are signed with too).
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now_secs: i64) -> Result<(), ApiError> {
    signature::verify(secret, header, body, now_secs)
        .map_err(|why| ApiError::Unauthorized(format!("webhook signature rejected: {why}")))
}

#[OpenApi(tag = "Tag::Money")]
impl WebhooksApi {
    /// The bank's deposit notification (signed; credits each event once).
    #[oai(path = "/v1/webhooks/deposit", method = "post", operation_id = "deposit_webhook")]
    async fn deposit(
        &self,
        req: &Request,
        #[oai(name = "X-Signature")] signature: Header<String>,
        body: Json<DepositEvent>,
    ) -> ApiResult<Idempotent<Credited>> {
        let state = &self.state;
        let secret = state.config.webhook_secret.as_deref().ok_or_else(|| {
            ApiError::Unauthorized("webhook signature rejected: no webhook secret is configured".into())
        })?;
        let raw = req.extensions().get::<RawBody>().map(|b| b.0.clone()).unwrap_or_default();
        verify_signature(secret.as_bytes(), &signature.0, &raw, state.ledger.now().as_unix_secs())?;
        if body.event_id.is_empty() || body.event_id.len() > 200 {
            return Err(ApiError::field("event_id", "1 to 200 characters").into());
        }
        let key = format!("deposit-webhook:{}", body.event_id);
        let event_id = body.event_id.clone();
        let build = async || {
            let amount = dto::amount("amount_micros", body.amount_micros)?;
            let currency = dto::currency("currency", &body.currency)?;
            let account = state.store.account(AccountId(body.account_id)).await?;
            let account = account.ok_or_else(|| ApiError::field("account_id", "no such account"))?;
            if account.currency != currency {
                return Err(ApiError::field("currency", format!("the account holds {}", account.currency)));
            }
            let settlement = state.ledger.system_account(AccountKind::Settlement, currency).await?;
            Ok(Command::Deposit(Deposit {
                entry_id: state.new_id(),
                to: account.id,
                settlement,
                amount,
                description: Some(format!("bank event {}", body.event_id)),
            }))
        };
        let render: Render = Arc::new(move |changes| {
            let entry = changes.entry.as_ref().expect("deposits post an entry");
            let credited =
                DepositCredited { event_id: event_id.clone(), transaction_id: entry.id().0, status: "credited".into() };
            (200, credited.to_json_string().into_bytes())
        });
        Ok(idempotency::run(state, BANK_SCOPE, &key, &body.0, build, render).await?)
    }
}

impl poem_openapi::types::Example for DepositEvent {
    fn example() -> DepositEvent {
        DepositEvent {
            event_id: "evt_01J9Z4".into(),
            account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            amount_micros: 150_000_000,
            currency: "USD".into(),
            occurred_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let secret = b"whsec_test_secret";
        let body = br#"{"event_id":"e1"}"#;
        let header = sign(secret, 1_000, body);
        assert!(verify_signature(secret, &header, body, 1_000).is_ok());
        assert!(verify_signature(secret, &header, body, 1_300).is_ok());
        assert!(verify_signature(secret, &header, body, 1_301).is_err(), "stale");
        assert!(verify_signature(secret, &header, b"{}", 1_000).is_err(), "other body");
        assert!(verify_signature(b"other secret", &header, body, 1_000).is_err(), "other secret");
        assert!(verify_signature(secret, "v1=00", body, 1_000).is_err(), "no timestamp");
        assert!(verify_signature(secret, "t=1000,v1=zz", body, 1_000).is_err(), "not hex");
    }
}
