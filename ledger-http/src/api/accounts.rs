//! Accounts: opening, listing, balances (now or as they were) and statements.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::ports::{AccountFilter, TimeRange};
use ledger_core::{AccountId, AccountKind, Metadata, Micros, NewAccount, Overdraft, UserId};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::dto::{self, AccountDto, AccountPage, BalanceDto, StatementLineDto, StatementPage, timestamp};
use super::{Tag, page};
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Accounts.
pub struct AccountsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A new account.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct OpenAccountRequest {
    /// ISO 4217 code, upper case, e.g. `USD`.
    pub currency: String,
    /// A label (at most 100 characters).
    pub name: Option<String>,
    /// Key/value pairs (at most 20).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Admin only: the owner (default: the caller).
    pub user_id: Option<Uuid>,
    /// Admin only: how far below zero the account may go (default 0).
    pub overdraft_limit_micros: Option<i64>,
}

/// Account opened.
#[derive(ApiResponse)]
pub enum Opened {
    /// The account, with zero balances.
    #[oai(status = 201)]
    Created(Json<AccountDto>),
}

#[OpenApi(tag = "Tag::Accounts")]
impl AccountsApi {
    /// Open an account.
    #[oai(path = "/v1/accounts", method = "post", operation_id = "open_account")]
    async fn open(&self, auth: BearerAuth, body: Json<OpenAccountRequest>) -> ApiResult<Opened> {
        let currency = dto::currency("currency", &body.currency)?;
        dto::text("name", &body.name, 100)?;
        let metadata: Metadata = dto::metadata(&body.metadata)?;
        let admin = self.state.is_admin(&auth.0).await?;
        if body.overdraft_limit_micros.is_some() && !admin {
            return Err(ApiError::Forbidden.into());
        }
        let overdraft = match body.overdraft_limit_micros {
            Some(limit) if limit < 0 => {
                return Err(ApiError::field("overdraft_limit_micros", "must not be negative").into());
            }
            Some(limit) => Overdraft::Limit(Micros::new(limit)),
            None => Overdraft::NONE,
        };
        let owner = self.state.owner_for(&auth.0, body.user_id.map(UserId), admin)?;
        if body.user_id.is_some() && self.state.store.user(owner).await.map_err(ApiError::from)?.is_none() {
            return Err(ApiError::field("user_id", "no such user").into());
        }
        let account = NewAccount {
            name: body.name.clone(),
            metadata,
            overdraft,
            ..NewAccount::customer(self.state.new_id(), owner, currency)
        };
        let now = self.state.ledger.now();
        let account = self.state.store.open_account(account, now).await.map_err(ApiError::from)?;
        Ok(Opened::Created(Json(AccountDto::new(&account, now))))
    }

    /// The caller's accounts (an admin sees all, or one user's with `user_id`).
    #[oai(path = "/v1/accounts", method = "get", operation_id = "list_accounts")]
    async fn list(
        &self,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        user_id: Query<Option<Uuid>>,
    ) -> ApiResult<Json<AccountPage>> {
        let page = page(limit.0, cursor.0)?;
        let admin = self.state.is_admin(&auth.0).await?;
        let owner = match (admin, user_id.0) {
            (true, requested) => requested.map(UserId),
            (false, _) => Some(auth.0.user),
        };
        let found = self.state.store.accounts(&AccountFilter { owner }, &page).await.map_err(ApiError::from)?;
        let now = self.state.ledger.now();
        let items =
            found.items.iter().filter(|a| a.kind == AccountKind::Customer || admin).map(|a| AccountDto::new(a, now));
        Ok(Json(AccountPage { items: items.collect(), next_cursor: found.next_cursor.into() }))
    }

    /// One account with its balances.
    #[oai(path = "/v1/accounts/:id", method = "get", operation_id = "get_account")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<AccountDto>> {
        let account = self.state.visible_account(&auth.0, AccountId(id.0)).await?;
        Ok(Json(AccountDto::new(&account, self.state.ledger.now())))
    }

    /// An account's balances, now or (with `at`) as they were at that instant.
    #[oai(path = "/v1/accounts/:id/balance", method = "get", operation_id = "get_balance")]
    async fn balance(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        at: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<BalanceDto>> {
        let account = self.state.visible_account(&auth.0, AccountId(id.0)).await?;
        match at.0 {
            None => Ok(Json(BalanceDto::new(account.currency, account.balance, self.state.ledger.now()))),
            Some(at) => {
                let at = timestamp(at);
                let balance = self.state.store.balance_at(account.id, at).await.map_err(ApiError::from)?;
                let balance = balance.ok_or(ApiError::NotFound("account"))?;
                Ok(Json(BalanceDto::new(account.currency, balance, at)))
            }
        }
    }

    /// An account's postings, newest first, each with the running balance after it.
    #[oai(path = "/v1/accounts/:id/statement", method = "get", operation_id = "get_statement")]
    async fn statement(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<StatementPage>> {
        let account = self.state.visible_account(&auth.0, AccountId(id.0)).await?;
        let page = page(limit.0, cursor.0)?;
        let range = TimeRange { from: from.0.map(timestamp), to: to.0.map(timestamp) };
        let lines = self.state.store.statement(account.id, range, &page).await.map_err(ApiError::from)?;
        Ok(Json(StatementPage {
            items: lines.items.into_iter().map(StatementLineDto::from).collect(),
            next_cursor: lines.next_cursor.into(),
        }))
    }
}

impl poem_openapi::types::Example for OpenAccountRequest {
    fn example() -> OpenAccountRequest {
        OpenAccountRequest {
            currency: "USD".into(),
            name: Some("Main wallet".into()),
            metadata: None,
            user_id: None,
            overdraft_limit_micros: None,
        }
    }
}
