//! Foreign exchange: rates (admins set them), quotes that lock a rate for a while, and exchanges
//! between a caller's accounts in two currencies (4 postings through the liquidity accounts).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_core::{AccountId, AccountKind, Command, Exchange, FxQuote, FxRate, PairRate, Pricing, QuoteId};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::Tag;
use super::dto::{self, time};
use super::money::{TransactionCreated, transaction_created};
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Idempotent};
use crate::state::AppState;

/// FX.
pub struct FxApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A currency pair's rate.
#[derive(Object)]
pub struct RateDto {
    /// Source currency.
    pub base: String,
    /// Target currency.
    pub quote: String,
    /// Mid-market rate: units of `quote` per unit of `base`.
    pub rate: String,
    /// What the house keeps, in basis points.
    pub spread_bps: u32,
    /// The rate a customer gets, spread included (cut to 12 digits toward the house).
    pub effective_rate: String,
    /// When it was set.
    pub updated_at: DateTime<Utc>,
}

impl From<&PairRate> for RateDto {
    fn from(rate: &PairRate) -> RateDto {
        RateDto {
            base: rate.base.code().to_owned(),
            quote: rate.quote.code().to_owned(),
            rate: rate.mid.to_string(),
            spread_bps: rate.spread_bps,
            effective_rate: rate.effective().to_string(),
            updated_at: time(rate.updated_at),
        }
    }
}

/// A new rate.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct SetRateRequest {
    /// Mid-market rate as a decimal string, e.g. `"0.9215"` (at most 12 fraction digits).
    pub rate: String,
    /// What the house keeps, in basis points (default 0, below 10,000).
    pub spread_bps: Option<u32>,
}

/// A quote request.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct QuoteRequest {
    /// Source currency.
    pub from_currency: String,
    /// Target currency.
    pub to_currency: String,
    /// How much of the source currency, in micros.
    pub amount_micros: i64,
}

/// A locked rate.
#[derive(Object)]
pub struct QuoteDto {
    /// Pass as `quote_id` to `/v1/transfers/exchange` before it expires.
    pub quote_id: Uuid,
    /// The effective rate, spread included.
    pub rate: String,
    /// Source currency.
    pub from_currency: String,
    /// Target currency.
    pub to_currency: String,
    /// What will be debited.
    pub from_amount_micros: i64,
    /// What will be credited (rounded down to the target currency's minor unit).
    pub to_amount_micros: i64,
    /// When the quote stops being honoured.
    pub expires_at: DateTime<Utc>,
}

/// An exchange.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct ExchangeRequest {
    /// The caller's account to debit (source currency).
    pub from_account_id: Uuid,
    /// The account to credit (target currency).
    pub to_account_id: Uuid,
    /// How much to debit, in micros of the source currency.
    pub amount_micros: i64,
    /// A quote from `/v1/fx/quotes` (else the current rate applies).
    pub quote_id: Option<Uuid>,
}

/// Rates.
#[derive(Object)]
pub struct RatesDto {
    /// Every rate set, in pair order.
    pub items: Vec<RateDto>,
}

/// Quote made.
#[derive(ApiResponse)]
pub enum Quoted {
    /// The quote.
    #[oai(status = 201)]
    Created(Json<QuoteDto>),
}

#[OpenApi(tag = "Tag::Money")]
impl FxApi {
    /// Current rates.
    #[oai(path = "/v1/fx/rates", method = "get", operation_id = "list_fx_rates")]
    async fn rates(&self, _auth: BearerAuth) -> ApiResult<Json<RatesDto>> {
        let rates = self.state.store.rates().await.map_err(ApiError::from)?;
        Ok(Json(RatesDto { items: rates.iter().map(RateDto::from).collect() }))
    }

    /// Set a pair's rate (admin).
    #[oai(path = "/v1/admin/fx/rates/:base/:quote", method = "put", operation_id = "set_fx_rate")]
    async fn set_rate(
        &self,
        auth: BearerAuth,
        base: Path<String>,
        quote: Path<String>,
        body: Json<SetRateRequest>,
    ) -> ApiResult<Json<RateDto>> {
        self.state.require_admin(&auth.0).await?;
        let base = dto::currency("base", &base.0)?;
        let quote = dto::currency("quote", &quote.0)?;
        let mid = FxRate::parse(&body.rate).map_err(|e| ApiError::field("rate", e.to_string()))?;
        let rate = PairRate::new(base, quote, mid, body.spread_bps.unwrap_or(0), self.state.ledger.now())
            .map_err(|e| ApiError::field("spread_bps", e.to_string()))?;
        self.state.store.set_rate(rate).await.map_err(ApiError::from)?;
        Ok(Json(RateDto::from(&rate)))
    }

    /// Lock the current rate for an amount, for `LEDGER_QUOTE_TTL` seconds.
    #[oai(path = "/v1/fx/quotes", method = "post", operation_id = "create_fx_quote")]
    async fn quote(&self, auth: BearerAuth, body: Json<QuoteRequest>) -> ApiResult<Quoted> {
        let from = dto::currency("from_currency", &body.from_currency)?;
        let to = dto::currency("to_currency", &body.to_currency)?;
        let amount = dto::amount("amount_micros", body.amount_micros)?;
        if from == to {
            return Err(ApiError::field("to_currency", "must differ from from_currency").into());
        }
        let ttl = Duration::from_secs(self.state.config.quote_ttl_secs);
        let quote = self.state.ledger.quote(auth.0.user, from, to, amount, ttl).await.map_err(ApiError::from)?;
        Ok(Quoted::Created(Json(quote_dto(&quote))))
    }

    /// Exchange between two currencies: source −X, liquidity A +X, liquidity B −Y, destination +Y.
    ///
    /// With `quote_id`, the quote's rate applies if it has not expired and matches the accounts'
    /// currencies and the amount (else 409); without, the current rate.
    #[oai(path = "/v1/transfers/exchange", method = "post", operation_id = "create_exchange")]
    async fn exchange(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<ExchangeRequest>,
    ) -> ApiResult<Idempotent<TransactionCreated>> {
        let caller = auth.0;
        let state = &self.state;
        let build = async || {
            let amount = dto::amount("amount_micros", body.amount_micros)?;
            let from = state.own_account(&caller, AccountId(body.from_account_id)).await?;
            let to = state.store.account(AccountId(body.to_account_id)).await?.ok_or(ApiError::NotFound("account"))?;
            let pricing = match body.quote_id {
                Some(id) => {
                    let quote = state.store.quote(QuoteId(id)).await?;
                    let quote = quote.filter(|q| q.owner == caller.user).ok_or(ApiError::NotFound("quote"))?;
                    Pricing::Quote(quote)
                }
                None if from.currency == to.currency => {
                    Pricing::Rate(FxRate::new(1.into()).map_err(ApiError::internal)?)
                }
                None => {
                    let pair = state.store.rate(from.currency, to.currency).await?;
                    let pair = pair.ok_or_else(|| ApiError::Conflict {
                        kind: "no-rate",
                        detail: format!("no exchange rate from {} to {}", from.currency, to.currency),
                    })?;
                    Pricing::Rate(pair.effective())
                }
            };
            let liquidity = |currency| state.ledger.system_account(AccountKind::Liquidity, currency);
            Ok(Command::Exchange(Exchange {
                entry_id: state.new_id(),
                from: from.id,
                to: to.id,
                amount,
                pricing,
                from_liquidity: liquidity(from.currency).await?,
                to_liquidity: liquidity(to.currency).await?,
                description: None,
            }))
        };
        Ok(idempotency::run(state, caller.user, &key.0, &body.0, build, transaction_created()).await?)
    }
}

fn quote_dto(quote: &FxQuote) -> QuoteDto {
    QuoteDto {
        quote_id: quote.id.0,
        rate: quote.rate.to_string(),
        from_currency: quote.from.code().to_owned(),
        to_currency: quote.to.code().to_owned(),
        from_amount_micros: quote.from_amount.get(),
        to_amount_micros: quote.to_amount.get(),
        expires_at: time(quote.expires_at),
    }
}

impl poem_openapi::types::Example for SetRateRequest {
    fn example() -> SetRateRequest {
        SetRateRequest { rate: "0.92".into(), spread_bps: Some(25) }
    }
}

impl poem_openapi::types::Example for QuoteRequest {
    fn example() -> QuoteRequest {
        QuoteRequest { from_currency: "USD".into(), to_currency: "EUR".into(), amount_micros: 10_000_000 }
    }
}

impl poem_openapi::types::Example for ExchangeRequest {
    fn example() -> ExchangeRequest {
        ExchangeRequest {
            from_account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            to_account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7c),
            amount_micros: 10_000_000,
            quote_id: Some(Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7d)),
        }
    }
}
