//! Money movement: internal transfers and reading transactions.

use std::collections::BTreeMap;
use std::sync::Arc;

use ledger_core::{AccountId, Command, EntryId, Transfer};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::{Example, ToJSON};
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::Tag;
use super::dto::{self, TransactionDto};
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Idempotent, Render};
use crate::state::AppState;

/// Money movement.
pub struct MoneyApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A transfer between two accounts of one currency.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct TransferRequest {
    /// The caller's account to debit.
    pub from_account_id: Uuid,
    /// The account to credit (anyone's).
    pub to_account_id: Uuid,
    /// How much, in micros of the accounts' currency (1 unit = 1,000,000).
    pub amount_micros: i64,
    /// Free text (at most 500 characters).
    pub description: Option<String>,
    /// Key/value pairs (at most 20).
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Example for TransferRequest {
    fn example() -> TransferRequest {
        TransferRequest {
            from_account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7b),
            to_account_id: Uuid::from_u128(0x0190_f0e4_8d1c_7c5e_9a1b_2f3d_4e5f_6a7c),
            amount_micros: 150_000_000,
            description: Some("rent".into()),
            metadata: None,
        }
    }
}

/// A transaction was posted.
#[derive(ApiResponse)]
pub enum TransactionCreated {
    /// The transaction with its postings.
    #[oai(status = 201)]
    Created(Json<TransactionDto>),
}

pub(crate) fn transaction_created() -> Render {
    Arc::new(|changes| {
        let entry = changes.entry.as_ref().expect("money movements post an entry");
        (201, TransactionDto::new(entry).to_json_string().into_bytes())
    })
}

#[OpenApi(tag = "Tag::Money")]
impl MoneyApi {
    /// Transfer between two accounts of one currency.
    ///
    /// The caller must own the source account. Different currencies are refused with 422
    /// (`/problems/currency-mismatch`): use `/v1/transfers/exchange`.
    #[oai(path = "/v1/transfers/internal", method = "post", operation_id = "create_internal_transfer")]
    async fn transfer(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<String>,
        body: Json<TransferRequest>,
    ) -> ApiResult<Idempotent<TransactionCreated>> {
        let caller = auth.0;
        let state = &self.state;
        let build = async || {
            let amount = dto::amount("amount_micros", body.amount_micros)?;
            dto::text("description", &body.description, 500)?;
            let metadata = dto::metadata(&body.metadata)?;
            let from = state.own_account(&caller, AccountId(body.from_account_id)).await?;
            Ok(Command::Transfer(Transfer {
                entry_id: state.new_id(),
                from: from.id,
                to: AccountId(body.to_account_id),
                amount,
                description: body.description.clone(),
                metadata,
            }))
        };
        Ok(idempotency::run(state, caller.user, &key.0, &body.0, build, transaction_created()).await?)
    }

    /// A transaction with all its postings (parties and admins only).
    #[oai(path = "/v1/transactions/:id", method = "get", operation_id = "get_transaction")]
    async fn transaction(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<TransactionDto>> {
        let entry = self.state.store.entry(EntryId(id.0)).await.map_err(ApiError::from)?;
        let entry = entry.ok_or(ApiError::NotFound("transaction"))?;
        if !self.state.is_admin(&auth.0).await? {
            let mut party = false;
            for posting in entry.postings() {
                let account = self.state.store.account(posting.account).await.map_err(ApiError::from)?;
                party |= account.is_some_and(|a| a.owner == Some(auth.0.user));
            }
            if !party {
                return Err(ApiError::NotFound("transaction").into());
            }
        }
        Ok(Json(TransactionDto::new(&entry)))
    }
}
