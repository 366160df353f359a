//! [`WebhookStore`] on PostgreSQL: `webhook_endpoints`, `webhook_deliveries` and
//! `webhook_delivery_attempts` (migration 0003).
//!
//! Fan-out takes unpublished outbox rows with `FOR UPDATE SKIP LOCKED` (relays in several
//! processes split them), finds the subscribed endpoints of the accounts' owners in one join,
//! renders each body with [`ledger_core::webhook::payload`], inserts the deliveries and marks the
//! rows published, all in one transaction. Claims lease due deliveries with `SKIP LOCKED` too,
//! ranking each endpoint's due deliveries so that at most `per_endpoint` are in flight per
//! endpoint (a soft cap: two relays claiming at the same instant can each take one).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ledger_core::ports::{IdGenerator, Page, PageRequest};
use ledger_core::webhook::{
    Delivery, DeliveryAttempt, DeliveryJob, DeliveryNext, DeliveryState, WebhookBacklog, WebhookEndpoint, WebhookStore,
    payload,
};
use ledger_core::{
    AccountId, DeliveryId, EndpointId, EntryId, Event, EventKind, HoldId, PayoutId, PayoutStatus, StoreError,
    Timestamp, UserId,
};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::read::{page_of, uuid_cursor};
use crate::rows::{self, from_ts, get, ts};
use crate::{PgStore, db};

const ENDPOINT_COLUMNS: &str = "id, owner_id, url, events, secret, created_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, body, state, next_attempt_at, created_at";

fn event_kind(column: &'static str, name: &str) -> Result<EventKind, StoreError> {
    EventKind::parse(name).ok_or_else(|| rows::corrupt(column, name))
}

fn endpoint(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    let events: Vec<String> = get(row, "events")?;
    Ok(WebhookEndpoint {
        id: EndpointId(get(row, "id")?),
        owner: UserId(get(row, "owner_id")?),
        url: get(row, "url")?,
        events: events.iter().map(|e| event_kind("events", e)).collect::<Result<_, _>>()?,
        secret: get(row, "secret")?,
        created_at: from_ts(get(row, "created_at")?),
    })
}

fn delivery(row: &PgRow) -> Result<Delivery, StoreError> {
    let event_type: String = get(row, "event_type")?;
    let state: String = get(row, "state")?;
    let next: Option<DateTime<Utc>> = get(row, "next_attempt_at")?;
    Ok(Delivery {
        id: DeliveryId(get(row, "id")?),
        endpoint: EndpointId(get(row, "endpoint_id")?),
        event_id: get(row, "event_id")?,
        event_type: event_kind("event_type", &event_type)?,
        body: get(row, "body")?,
        state: DeliveryState::parse(&state).ok_or_else(|| rows::corrupt("state", &state))?,
        attempts: Vec::new(),
        next_attempt_at: next.map(from_ts),
        created_at: from_ts(get(row, "created_at")?),
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_endpoint(&self, new: WebhookEndpoint) -> Result<WebhookEndpoint, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_endpoints (id, owner_id, url, events, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id.0)
        .bind(new.owner.0)
        .bind(&new.url)
        .bind(new.events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
        .bind(&new.secret)
        .bind(ts(new.created_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(new),
            Err(error) => {
                let constraint = error.as_database_error().and_then(|d| d.constraint().map(str::to_owned));
                Err(match constraint.as_deref() {
                    Some("webhook_endpoints_pkey") => StoreError::Duplicate("webhook endpoint id"),
                    _ => db(error),
                })
            }
        }
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row =
            sqlx::query(sql!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.as_ref().map(endpoint).transpose()
    }

    async fn endpoints(&self, owner: UserId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, StoreError> {
        let after = uuid_cursor(page)?;
        let rows = sqlx::query(sql!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE owner_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(owner.0)
        .bind(after)
        .bind(limit(page.limit + 1))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let items = rows.iter().map(endpoint).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, page.limit, |e| e.id.to_string()))
    }

    async fn delete_endpoint(&self, id: EndpointId, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.0)
            .bind(ts(now))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn deliveries(&self, endpoint: EndpointId, page: &PageRequest) -> Result<Page<Delivery>, StoreError> {
        let after = uuid_cursor(page)?;
        let rows = sqlx::query(sql!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE endpoint_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(endpoint.0)
        .bind(after)
        .bind(limit(page.limit + 1))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut items = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = items.iter().map(|d| d.id.0).collect();
        let attempts = sqlx::query(
            "SELECT delivery_id, attempt, at, status_code, error FROM webhook_delivery_attempts \
             WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut by_delivery: HashMap<Uuid, Vec<DeliveryAttempt>> = HashMap::new();
        for row in &attempts {
            let attempt: i32 = get(row, "attempt")?;
            let status: Option<i32> = get(row, "status_code")?;
            by_delivery.entry(get(row, "delivery_id")?).or_default().push(DeliveryAttempt {
                attempt: u32::try_from(attempt).map_err(|_| rows::corrupt("attempt", attempt))?,
                at: from_ts(get(row, "at")?),
                status_code: status
                    .map(|s| u16::try_from(s).map_err(|_| rows::corrupt("status_code", s)))
                    .transpose()?,
                error: get(row, "error")?,
            });
        }
        for item in &mut items {
            item.attempts = by_delivery.remove(&item.id.0).unwrap_or_default();
        }
        Ok(page_of(items, page.limit, |d| d.id.to_string()))
    }

    async fn fan_out(&self, now: Timestamp, batch: usize, ids: &dyn IdGenerator) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let events = sqlx::query(
            "SELECT id, event_type, entry_id, hold_id, payout_id, payout_status, account_ids, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit(batch))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut by_id = HashMap::with_capacity(events.len());
        for row in &events {
            let kind: String = get(row, "event_type")?;
            let status: Option<String> = get(row, "payout_status")?;
            let accounts: Vec<Uuid> = get(row, "account_ids")?;
            let event = Event {
                kind: event_kind("event_type", &kind)?,
                entry: get::<Option<Uuid>>(row, "entry_id")?.map(EntryId),
                hold: get::<Option<Uuid>>(row, "hold_id")?.map(HoldId),
                payout: get::<Option<Uuid>>(row, "payout_id")?.map(PayoutId),
                payout_status: status
                    .map(|s| PayoutStatus::parse(&s).ok_or_else(|| rows::corrupt("payout_status", &s)))
                    .transpose()?,
                accounts: accounts.into_iter().map(AccountId).collect(),
                at: from_ts(get(row, "created_at")?),
            };
            by_id.insert(get::<i64>(row, "id")?, event);
        }
        let event_ids: Vec<i64> = by_id.keys().copied().collect();
        // Per (event, subscribed endpoint of an owner of one of its accounts): the owner's accounts.
        let targets = sqlx::query(
            "SELECT o.id AS event_id, e.id AS endpoint_id, \
                    array_agg(a.id ORDER BY array_position(o.account_ids, a.id)) AS accounts \
             FROM outbox o \
             JOIN accounts a ON a.id = ANY (o.account_ids) \
             JOIN webhook_endpoints e ON e.owner_id = a.owner_id AND e.deleted_at IS NULL \
                  AND o.event_type = ANY (e.events) AND e.created_at <= o.created_at \
             WHERE o.id = ANY ($1) GROUP BY o.id, e.id ORDER BY o.id, e.id",
        )
        .bind(&event_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut rows_out: (Vec<Uuid>, Vec<Uuid>, Vec<i64>, Vec<&str>, Vec<String>) = Default::default();
        for row in &targets {
            let event_id: i64 = get(row, "event_id")?;
            let accounts: Vec<Uuid> = get(row, "accounts")?;
            let accounts: Vec<AccountId> = accounts.into_iter().map(AccountId).collect();
            let event = &by_id[&event_id];
            rows_out.0.push(ids.next_id());
            rows_out.1.push(get(row, "endpoint_id")?);
            rows_out.2.push(event_id);
            rows_out.3.push(event.kind.as_str());
            rows_out.4.push(payload(event_id, event, &accounts));
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, state, next_attempt_at, created_at) \
             SELECT id, endpoint, event, kind, body, 'pending', $6, $6 \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[]) AS u(id, endpoint, event, kind, body) \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        )
        .bind(&rows_out.0)
        .bind(&rows_out.1)
        .bind(&rows_out.2)
        .bind(&rows_out.3)
        .bind(&rows_out.4)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE outbox SET published_at = $2 WHERE id = ANY ($1)")
            .bind(&event_ids)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(event_ids.len())
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        batch: usize,
        per_endpoint: usize,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let rows = sqlx::query(
            "WITH busy AS ( \
                 SELECT endpoint_id, count(*) AS n FROM webhook_deliveries \
                 WHERE state = 'pending' AND leased_until > $1 GROUP BY endpoint_id), \
             ranked AS ( \
                 SELECT d.id, d.next_attempt_at, COALESCE(b.n, 0) \
                        + row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS slot \
                 FROM webhook_deliveries d \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL \
                 LEFT JOIN busy b ON b.endpoint_id = d.endpoint_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
                   AND (d.leased_until IS NULL OR d.leased_until <= $1)), \
             picked AS ( \
                 SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id \
                 WHERE r.slot <= $3 AND d.state = 'pending' \
                 ORDER BY r.next_attempt_at, d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
             UPDATE webhook_deliveries d SET leased_until = $4, claims = d.claims + 1 \
             FROM picked, webhook_endpoints e \
             WHERE d.id = picked.id AND e.id = d.endpoint_id \
             RETURNING d.id, d.endpoint_id, d.event_type, d.body, d.claims, e.url, e.secret",
        )
        .bind(ts(now))
        .bind(limit(batch))
        .bind(limit(per_endpoint))
        .bind(ts(now.saturating_add(lease)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let kind: String = get(row, "event_type")?;
                let claims: i32 = get(row, "claims")?;
                Ok(DeliveryJob {
                    delivery: DeliveryId(get(row, "id")?),
                    endpoint: EndpointId(get(row, "endpoint_id")?),
                    url: get(row, "url")?,
                    secret: get(row, "secret")?,
                    event_type: event_kind("event_type", &kind)?,
                    body: get(row, "body")?,
                    attempt: u32::try_from(claims).map_err(|_| rows::corrupt("claims", claims))?,
                })
            })
            .collect()
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<(), StoreError> {
        let (state, next_at) = next.outcome();
        // Only a pending delivery moves: a late answer from a relay whose lease ran out cannot
        // undo what the relay that took over recorded. Its attempt is logged either way.
        sqlx::query(
            "WITH moved AS ( \
                 UPDATE webhook_deliveries SET leased_until = NULL, \
                     state = CASE WHEN state = 'pending' THEN $2 ELSE state END, \
                     next_attempt_at = CASE WHEN state = 'pending' THEN $3 ELSE next_attempt_at END \
                 WHERE id = $1 RETURNING id) \
             INSERT INTO webhook_delivery_attempts (delivery_id, attempt, at, status_code, error) \
             SELECT id, $4, $5, $6, $7 FROM moved ON CONFLICT DO NOTHING",
        )
        .bind(id.0)
        .bind(state.as_str())
        .bind(next_at.map(ts))
        .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
        .bind(ts(attempt.at))
        .bind(attempt.status_code.map(i32::from))
        .bind(&attempt.error)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn webhook_backlog(&self) -> Result<WebhookBacklog, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished, \
                    (SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND e.deleted_at IS NULL) AS pending",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let count = |column| get::<i64>(&row, column).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(WebhookBacklog { unpublished_events: count("unpublished")?, pending_deliveries: count("pending")? })
    }
}
