//! The operations of the HTTP contract (`shared/spec/api.md`), grouped by tag. Each group is a
//! poem-openapi API over the shared [`AppState`](crate::state::AppState); the OpenAPI document
//! is generated from them.

pub mod accounts;
pub mod dto;
pub mod fx;
pub mod holds;
pub mod money;
pub mod payouts;
pub mod recon;
pub mod service;
pub mod users;
pub mod webhook_endpoints;
pub mod webhooks;

use ledger_core::ports::PageRequest;
use poem_openapi::Tags;

use crate::error::ApiError;

/// The OpenAPI tags.
#[derive(Tags)]
pub enum Tag {
    /// Liveness, readiness and metrics.
    Service,
    /// Registration, login and roles.
    Users,
    /// Accounts, balances and statements.
    Accounts,
    /// Transfers, exchanges, holds and transactions.
    Money,
    /// Outbound webhook endpoints and their delivery logs.
    Webhooks,
    /// Reconciliation runs and their reports (admin).
    Recon,
}

/// The most items a page may hold.
pub const PAGE_MAX: u32 = 200;

/// Checks `limit` (1 to 200, default 50) and wraps the cursor.
pub fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::field("limit", format!("must be between 1 and {PAGE_MAX}")));
    }
    Ok(PageRequest { limit: limit as usize, cursor })
}
