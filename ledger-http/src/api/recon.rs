//! Reconciliation runs (admin): the reports `ledger-recon` stores, newest first.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::ports::ReconRun;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::dto::{NextCursor, time};
use super::{Tag, page};
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Reconciliation runs.
pub struct ReconApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A run, without its report.
#[derive(Object)]
pub struct ReconRunSummaryDto {
    /// Its id.
    pub id: Uuid,
    /// `ledger` (the books checked) or `statement` (a bank statement matched).
    pub kind: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// `running`, `clean`, `discrepancies` or `failed`.
    pub status: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many discrepancies it found.
    pub discrepancies: u32,
}

impl From<&ReconRun> for ReconRunSummaryDto {
    fn from(run: &ReconRun) -> ReconRunSummaryDto {
        ReconRunSummaryDto {
            id: run.id,
            kind: run.kind.clone(),
            mode: run.mode.clone(),
            status: run.status.clone(),
            started_at: time(run.started_at),
            finished_at: run.finished_at.map(time),
            discrepancies: run.discrepancies,
        }
    }
}

/// A page of runs.
#[derive(Object)]
pub struct ReconRunPage {
    /// The runs, newest first.
    pub items: Vec<ReconRunSummaryDto>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: NextCursor,
}

/// A run with its report.
#[derive(Object)]
pub struct ReconRunDto {
    /// The run.
    #[oai(flatten)]
    pub run: ReconRunSummaryDto,
    /// The report: `outcome`, `stats` (what was read), `ledger_digest`, and `findings`, each with
    /// its `check` (e.g. `posted_mismatch`, `hash_chain_broken`, `missing_at_bank`), the
    /// accounts, entries, payouts or holds it names, and a `detail`. Empty while running.
    pub report: serde_json::Value,
}

#[OpenApi(tag = "Tag::Recon")]
impl ReconApi {
    /// Reconciliation runs, newest first (admin).
    #[oai(path = "/v1/admin/recon/runs", method = "get", operation_id = "list_recon_runs")]
    async fn list(
        &self,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<ReconRunPage>> {
        self.state.require_admin(&auth.0).await?;
        let found = self.state.store.recon_runs(&page(limit.0, cursor.0)?).await.map_err(ApiError::from)?;
        Ok(Json(ReconRunPage {
            items: found.items.iter().map(ReconRunSummaryDto::from).collect(),
            next_cursor: found.next_cursor.into(),
        }))
    }

    /// One reconciliation run with its report (admin).
    #[oai(path = "/v1/admin/recon/runs/:id", method = "get", operation_id = "get_recon_run")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<ReconRunDto>> {
        self.state.require_admin(&auth.0).await?;
        let run =
            self.state.store.recon_run(id.0).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("recon run"))?;
        let report = serde_json::from_str(&run.report).map_err(ApiError::internal)?;
        Ok(Json(ReconRunDto { run: ReconRunSummaryDto::from(&run), report }))
    }
}
