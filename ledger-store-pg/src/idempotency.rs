//! [`IdempotencyStore`] on PostgreSQL. `begin` is one atomic statement: it inserts an in-flight
//! record, or takes over one whose lease or retention ran out, and otherwise reports what is
//! there. The completing write of a money movement happens inside its own transaction (see
//! `execute`), so the movement and its record commit together.

use std::time::Duration;

use async_trait::async_trait;
use ledger_core::ports::{Fingerprint, IdempotencyBegin, IdempotencyKey, StoredResponse};
use ledger_core::{IdempotencyStore, StoreError, Timestamp, UserId};

use crate::rows::{get, ts};
use crate::{PgStore, db};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn begin(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: Timestamp,
        lease: Duration,
    ) -> Result<IdempotencyBegin, StoreError> {
        // Claim the key when it is free or stale; `started` tells whether this call took it.
        let started = sqlx::query(
            "INSERT INTO idempotency_keys AS k (user_id, key, fingerprint, state, lease_until) \
             VALUES ($1, $2, $3, 'in_flight', $5) \
             ON CONFLICT (user_id, key) DO UPDATE \
                SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight', lease_until = EXCLUDED.lease_until, \
                    response_status = NULL, response_body = NULL, expires_at = NULL \
              WHERE (k.state = 'in_flight' AND k.lease_until <= $4) OR (k.state = 'done' AND k.expires_at <= $4) \
             RETURNING 1",
        )
        .bind(scope.0)
        .bind(key.as_str())
        .bind(fingerprint.0.to_vec())
        .bind(ts(now))
        .bind(ts(now.saturating_add(lease)))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        if started.is_some() {
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT fingerprint, state, response_status, response_body FROM idempotency_keys \
             WHERE user_id = $1 AND key = $2",
        )
        .bind(scope.0)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        // The record vanished between the two statements (abandoned): try again from the top.
        let Some(row) = row else { return Box::pin(self.begin(scope, key, fingerprint, now, lease)).await };
        let stored: Vec<u8> = get(&row, "fingerprint")?;
        if stored != fingerprint.0 {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let state: String = get(&row, "state")?;
        if state == "in_flight" {
            return Ok(IdempotencyBegin::InFlight);
        }
        let status: i32 = get(&row, "response_status")?;
        let body: Vec<u8> = get(&row, "response_body")?;
        let status = u16::try_from(status).map_err(|_| crate::rows::corrupt("response_status", status))?;
        Ok(IdempotencyBegin::Replay(StoredResponse { status, body }))
    }

    async fn complete(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        response: StoredResponse,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', lease_until = NULL, response_status = $3, \
                    response_body = $4, expires_at = $5 \
             WHERE user_id = $1 AND key = $2",
        )
        .bind(scope.0)
        .bind(key.as_str())
        .bind(i32::from(response.status))
        .bind(response.body)
        .bind(ts(expires_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn abandon(&self, scope: UserId, key: &IdempotencyKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_flight'")
            .bind(scope.0)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
