//! [`PayoutQueue`] on PostgreSQL: the queue is the `payouts` table itself. A claim takes due
//! rows with `FOR UPDATE SKIP LOCKED` (so concurrent claimers skip each other's rows instead of
//! waiting) and leases them by setting `locked_until`; a row whose lease ran out is due again.

use std::time::Duration;

use async_trait::async_trait;
use ledger_core::ports::{Attempt, Claim, QueueStats};
use ledger_core::{PayoutId, PayoutQueue, StoreError, Timestamp};

use crate::execute::attach_history;
use crate::rows::{self, PAYOUT_COLUMNS, get, ts};
use crate::{PgStore, db};

#[async_trait]
impl PayoutQueue for PgStore {
    async fn claim(&self, now: Timestamp, lease: Duration, limit: usize) -> Result<Vec<Claim>, StoreError> {
        let locked_until = now.saturating_add(lease);
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query(sql!(
            "WITH due AS ( \
                 SELECT id FROM payouts \
                 WHERE next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE payouts p SET locked_until = $3, attempts = p.attempts + 1 FROM due WHERE p.id = due.id \
             RETURNING p.attempts, {}",
            PAYOUT_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(ts(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(ts(locked_until))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut payouts = rows.iter().map(rows::payout).collect::<Result<Vec<_>, _>>()?;
        let attempts: Vec<i32> = rows.iter().map(|r| get(r, "attempts")).collect::<Result<_, _>>()?;
        attach_history(&mut conn, &mut payouts).await.map_err(|e| match e {
            crate::execute::Failure::Db(e) => db(e),
            crate::execute::Failure::Store(e) => e,
        })?;
        let mut claims: Vec<Claim> = payouts
            .into_iter()
            .zip(attempts)
            .map(|(payout, attempt)| Claim { payout, attempt: u32::try_from(attempt).unwrap_or(0), locked_until })
            .collect();
        claims.sort_by_key(|c| c.payout.id);
        Ok(claims)
    }

    async fn retry_at(&self, id: PayoutId, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payouts SET next_attempt_at = $2, locked_until = NULL \
             WHERE id = $1 AND next_attempt_at IS NOT NULL",
        )
        .bind(id.0)
        .bind(ts(at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn record_attempt(&self, id: PayoutId, attempt: Attempt) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payout_attempts (payout_id, attempt, started_at, finished_at, outcome, error, provider_reference) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.0)
        .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
        .bind(ts(attempt.started_at))
        .bind(ts(attempt.finished_at))
        .bind(&attempt.outcome)
        .bind(&attempt.error)
        .bind(&attempt.reference)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn attempts(&self, id: PayoutId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, started_at, finished_at, outcome, error, provider_reference FROM payout_attempts \
             WHERE payout_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let attempt: i32 = get(r, "attempt")?;
                let finished: Option<chrono::DateTime<chrono::Utc>> = get(r, "finished_at")?;
                let outcome: Option<String> = get(r, "outcome")?;
                Ok(Attempt {
                    attempt: u32::try_from(attempt).map_err(|_| rows::corrupt("attempt", attempt))?,
                    started_at: rows::from_ts(get(r, "started_at")?),
                    finished_at: finished.map(rows::from_ts).unwrap_or(rows::from_ts(get(r, "started_at")?)),
                    outcome: outcome.unwrap_or_default(),
                    error: get(r, "error")?,
                    reference: get(r, "provider_reference")?,
                })
            })
            .collect()
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS depth, min(created_at) AS oldest FROM payouts WHERE next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let depth: i64 = get(&row, "depth")?;
        let oldest: Option<chrono::DateTime<chrono::Utc>> = get(&row, "oldest")?;
        Ok(QueueStats { depth: u64::try_from(depth).unwrap_or(0), oldest_created_at: oldest.map(rows::from_ts) })
    }
}
