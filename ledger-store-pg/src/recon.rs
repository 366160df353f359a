//! The recon runs `ledger-recon` stores in `recon_runs`, read for the API and `/metrics`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ledger_core::StoreError;
use ledger_core::ports::{Page, PageRequest, ReconRun, ReconRuns, ReconSummary};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::read::{page_of, uuid_cursor};
use crate::rows::{from_ts, get};
use crate::{PgStore, db};

const COLUMNS: &str = "id, kind, mode, status, started_at, finished_at, discrepancies, report::text AS report";

fn run(row: &PgRow) -> Result<ReconRun, StoreError> {
    Ok(ReconRun {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        mode: get(row, "mode")?,
        status: get(row, "status")?,
        started_at: from_ts(get(row, "started_at")?),
        finished_at: get::<Option<DateTime<Utc>>>(row, "finished_at")?.map(from_ts),
        discrepancies: u32::try_from(get::<i32>(row, "discrepancies")?).unwrap_or(0),
        report: get(row, "report")?,
    })
}

#[async_trait]
impl ReconRuns for PgStore {
    async fn recon_runs(&self, page: &PageRequest) -> Result<Page<ReconRun>, StoreError> {
        // Ids are UUIDv7, so id order is start order: newest first, keyset-paged.
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM recon_runs WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(uuid_cursor(page)?)
        .bind(i64::try_from(page.limit).unwrap_or(i64::MAX - 1).saturating_add(1))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let runs = rows.iter().map(run).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(runs, page.limit, |r| r.id.to_string()))
    }

    async fn recon_run(&self, id: Uuid) -> Result<Option<ReconRun>, StoreError> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM recon_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(run).transpose()
    }

    async fn recon_summary(&self) -> Result<ReconSummary, StoreError> {
        let (clean, discrepancies): (Option<DateTime<Utc>>, Option<i32>) = sqlx::query_as(
            "SELECT (SELECT max(finished_at) FROM recon_runs WHERE kind = 'ledger' AND status = 'clean'), \
                    (SELECT discrepancies FROM recon_runs WHERE kind = 'ledger' \
                     AND status IN ('clean', 'discrepancies') ORDER BY finished_at DESC LIMIT 1)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(ReconSummary {
            last_clean_at: clean.map(from_ts),
            last_discrepancies: discrepancies.map(|d| u32::try_from(d).unwrap_or(0)),
        })
    }
}
