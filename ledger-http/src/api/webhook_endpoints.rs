//! Outbound webhook endpoints: users register URLs for events on their accounts, read the
//! delivery log, and delete them. Deliveries are made by the relay
//! ([`ledger_core::webhook`]), in-process or in `ledger-payout-worker`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::webhook::{Delivery, WebhookEndpoint, check_url};
use ledger_core::{EndpointId, EventKind};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::dto::{NextCursor, time};
use super::{Tag, page};
use crate::auth::{BearerAuth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The most endpoints one user may have.
pub const ENDPOINTS_MAX: usize = 20;

/// Webhook endpoints.
pub struct WebhookEndpointsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A new endpoint.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct EndpointRequest {
    /// Where to POST events: `http://` or `https://`, at most 2048 characters, no credentials.
    pub url: String,
    /// Event kinds to receive, at least one: `transfer.created`, `exchange.created`,
    /// `deposit.credited`, `hold.created`, `hold.resolved`, `payout.status_changed`,
    /// `transaction.reversed`.
    pub events: Vec<String>,
}

/// An endpoint (its secret is only ever shown at creation).
#[derive(Object)]
pub struct EndpointDto {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds it receives.
    pub events: Vec<String>,
    /// When it was registered; only later events are sent.
    pub created_at: DateTime<Utc>,
}

impl From<&WebhookEndpoint> for EndpointDto {
    fn from(endpoint: &WebhookEndpoint) -> EndpointDto {
        EndpointDto {
            id: endpoint.id.0,
            url: endpoint.url.clone(),
            events: endpoint.events.iter().map(|e| e.as_str().to_owned()).collect(),
            created_at: time(endpoint.created_at),
        }
    }
}

/// A registered endpoint with its signing secret.
#[derive(Object)]
pub struct EndpointCreatedDto {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds it receives.
    pub events: Vec<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// The HMAC-SHA256 key of `X-Signature: t=<unix>,v1=<hex>` over `t + "." + body`. Shown only
    /// now: store it.
    pub secret: String,
}

/// A page of endpoints.
#[derive(Object)]
pub struct EndpointPage {
    /// The endpoints.
    pub items: Vec<EndpointDto>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: NextCursor,
}

/// One attempt at a delivery.
#[derive(Object)]
pub struct DeliveryAttemptDto {
    /// 1 for the first.
    pub attempt: u32,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    #[oai(skip_serializing_if_is_none)]
    pub status_code: Option<u16>,
    /// Why there was no answer, if none.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// One event's delivery to the endpoint.
#[derive(Object)]
pub struct DeliveryDto {
    /// Its id (the `X-Ledger-Delivery` header).
    pub id: Uuid,
    /// The event's id (the `id` in the body; deduplicate by it).
    pub event_id: i64,
    /// The event's kind.
    pub event_type: String,
    /// `pending`, `delivered` or `dead_lettered`.
    pub state: String,
    /// True once every attempt failed and no more will be made.
    pub dead_lettered: bool,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<DeliveryAttemptDto>,
    /// When the next attempt is due, while pending.
    #[oai(skip_serializing_if_is_none)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was fanned out to this endpoint.
    pub created_at: DateTime<Utc>,
    /// The JSON body sent on every attempt.
    pub body: String,
}

impl From<&Delivery> for DeliveryDto {
    fn from(d: &Delivery) -> DeliveryDto {
        DeliveryDto {
            id: d.id.0,
            event_id: d.event_id,
            event_type: d.event_type.as_str().to_owned(),
            state: d.state.as_str().to_owned(),
            dead_lettered: d.state == ledger_core::webhook::DeliveryState::DeadLettered,
            attempts: d
                .attempts
                .iter()
                .map(|a| DeliveryAttemptDto {
                    attempt: a.attempt,
                    at: time(a.at),
                    status_code: a.status_code,
                    error: a.error.clone(),
                })
                .collect(),
            next_attempt_at: d.next_attempt_at.map(time),
            created_at: time(d.created_at),
            body: d.body.clone(),
        }
    }
}

/// A page of deliveries.
#[derive(Object)]
pub struct DeliveryPage {
    /// The deliveries, oldest first.
    pub items: Vec<DeliveryDto>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: NextCursor,
}

/// Endpoint registered.
#[derive(ApiResponse)]
pub enum EndpointCreated {
    /// The endpoint and its signing secret (shown only now).
    #[oai(status = 201)]
    Created(Json<EndpointCreatedDto>),
}

/// Endpoint deleted.
#[derive(ApiResponse)]
pub enum EndpointDeleted {
    /// Deleted: nothing more is sent to it.
    #[oai(status = 204)]
    NoContent,
}

impl WebhookEndpointsApi {
    /// The caller's endpoint, or 404 (also when it is someone else's).
    async fn owned(&self, caller: &Caller, id: Uuid) -> Result<WebhookEndpoint, ApiError> {
        match self.state.store.endpoint(EndpointId(id)).await? {
            Some(endpoint) if endpoint.owner == caller.user => Ok(endpoint),
            _ => Err(ApiError::NotFound("webhook endpoint")),
        }
    }
}

fn new_secret() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    format!("whsec_{}", hex::encode(bytes))
}

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhookEndpointsApi {
    /// Register an endpoint for events on your accounts; the answer holds its signing secret,
    /// shown this once.
    #[oai(path = "/v1/webhook-endpoints", method = "post", operation_id = "create_webhook_endpoint")]
    async fn create(&self, auth: BearerAuth, body: Json<EndpointRequest>) -> ApiResult<EndpointCreated> {
        let caller = auth.0;
        check_url(&body.url, self.state.config.webhook_allow_private)
            .map_err(|why| ApiError::field("url", why.to_string()))?;
        if body.events.is_empty() {
            return Err(ApiError::field("events", "name at least one event").into());
        }
        let mut events = Vec::new();
        for name in &body.events {
            let kind =
                EventKind::parse(name).ok_or_else(|| ApiError::field("events", format!("unknown event {name:?}")))?;
            if !events.contains(&kind) {
                events.push(kind);
            }
        }
        let existing = self
            .state
            .store
            .endpoints(caller.user, &ledger_core::ports::PageRequest::first(ENDPOINTS_MAX))
            .await
            .map_err(ApiError::from)?;
        if existing.items.len() >= ENDPOINTS_MAX {
            return Err(ApiError::Conflict {
                kind: "too-many-endpoints",
                detail: format!("at most {ENDPOINTS_MAX} webhook endpoints per user; delete one first"),
            }
            .into());
        }
        let endpoint = WebhookEndpoint {
            id: self.state.new_id(),
            owner: caller.user,
            url: body.0.url,
            events,
            secret: new_secret(),
            created_at: self.state.ledger.now(),
        };
        let endpoint = self.state.store.create_endpoint(endpoint).await.map_err(ApiError::from)?;
        tracing::info!(endpoint = %endpoint.id, user = %caller.user, "webhook endpoint registered");
        let dto = EndpointDto::from(&endpoint);
        Ok(EndpointCreated::Created(Json(EndpointCreatedDto {
            id: dto.id,
            url: dto.url,
            events: dto.events,
            created_at: dto.created_at,
            secret: endpoint.secret,
        })))
    }

    /// Your endpoints (secrets are not shown).
    #[oai(path = "/v1/webhook-endpoints", method = "get", operation_id = "list_webhook_endpoints")]
    async fn list(
        &self,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<EndpointPage>> {
        let found = self.state.store.endpoints(auth.0.user, &page(limit.0, cursor.0)?).await.map_err(ApiError::from)?;
        Ok(Json(EndpointPage {
            items: found.items.iter().map(EndpointDto::from).collect(),
            next_cursor: found.next_cursor.into(),
        }))
    }

    /// One of your endpoints.
    #[oai(path = "/v1/webhook-endpoints/:id", method = "get", operation_id = "get_webhook_endpoint")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<Json<EndpointDto>> {
        Ok(Json(EndpointDto::from(&self.owned(&auth.0, id.0).await?)))
    }

    /// Delete one of your endpoints: nothing more is sent to it.
    #[oai(path = "/v1/webhook-endpoints/:id", method = "delete", operation_id = "delete_webhook_endpoint")]
    async fn delete(&self, auth: BearerAuth, id: Path<Uuid>) -> ApiResult<EndpointDeleted> {
        let endpoint = self.owned(&auth.0, id.0).await?;
        if !self.state.store.delete_endpoint(endpoint.id, self.state.ledger.now()).await.map_err(ApiError::from)? {
            return Err(ApiError::NotFound("webhook endpoint").into());
        }
        tracing::info!(endpoint = %endpoint.id, user = %auth.0.user, "webhook endpoint deleted");
        Ok(EndpointDeleted::NoContent)
    }

    /// The delivery log of one of your endpoints: attempts, status codes, next retry, dead letters.
    #[oai(path = "/v1/webhook-endpoints/:id/deliveries", method = "get", operation_id = "list_webhook_deliveries")]
    async fn deliveries(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DeliveryPage>> {
        let endpoint = self.owned(&auth.0, id.0).await?;
        let found =
            self.state.store.deliveries(endpoint.id, &page(limit.0, cursor.0)?).await.map_err(ApiError::from)?;
        Ok(Json(DeliveryPage {
            items: found.items.iter().map(DeliveryDto::from).collect(),
            next_cursor: found.next_cursor.into(),
        }))
    }
}

impl poem_openapi::types::Example for EndpointRequest {
    fn example() -> EndpointRequest {
        EndpointRequest {
            url: "https://hooks.example.com/ledger".into(),
            events: vec!["payout.status_changed".into(), "deposit.credited".into()],
        }
    }
}
