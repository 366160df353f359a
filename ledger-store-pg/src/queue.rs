//! [`PayoutQueue`] on PostgreSQL: the queue is the `payouts` table itself. A claim takes due
//! rows with `FOR UPDATE SKIP LOCKED` (so concurrent claimers skip each other's rows instead of
//! waiting) and leases them by setting `locked_until`; a row whose lease ran out is due again.

use std::time::Duration;

use async_trait::async_trait;
use ledger_core::ports::Claim;
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
}
