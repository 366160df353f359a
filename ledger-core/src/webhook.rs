//! Outbound webhooks: endpoints users register, the deliveries the outbox fans out to them, and
//! the relay that sends those deliveries.
//!
//! Every change set writes its [`Event`]s to the outbox in the same transaction as the money
//! movement. The relay then works in two steps, both through the [`WebhookStore`] port:
//!
//! 1. **Fan out**: unpublished outbox events become one [`Delivery`] per endpoint whose owner
//!    owns one of the event's accounts and who subscribed to its kind (endpoints see only events
//!    created after they were registered, and only their own accounts in the payload). The body
//!    is rendered once, here, by [`payload`], and stored, so every retry sends the same bytes.
//! 2. **Deliver**: due deliveries are claimed with a lease (at most `per_endpoint` in flight per
//!    endpoint, so one slow receiver cannot take every slot), POSTed with
//!    `X-Signature: t=<unix>,v1=<hex>` ([`crate::signature`]) and the endpoint's secret, and then
//!    marked delivered (any 2xx), retried after exponential backoff with full jitter, or
//!    dead-lettered after `attempts_max` attempts. A relay that dies mid-send loses its lease and
//!    the delivery is sent again: delivery is at least once, and receivers deduplicate by the
//!    event `id` in the body.
//!
//! Like the payout [`Pipeline`](crate::pipeline::Pipeline), [`Relay::run_once`] never sleeps and
//! reads time only from the [`Clock`] port; loops in the service or the worker drive it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::command::{Event, EventKind};
use crate::ids::{AccountId, DeliveryId, EndpointId, Timestamp, UserId};
use crate::pipeline::backoff_delay;
use crate::ports::{Clock, IdGenerator, Page, PageRequest, StoreError};
use crate::signature;

/// The longest endpoint URL accepted.
pub const URL_MAX: usize = 2_048;

/// An endpoint a user registered to receive events.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: EndpointId,
    /// Who registered it; only events on this user's accounts reach it.
    pub owner: UserId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The kinds it subscribed to (at least one, no repeats).
    pub events: Vec<EventKind>,
    /// The HMAC key deliveries are signed with. Shown to the owner once, at creation.
    pub secret: String,
    /// When it was registered; older events are not sent to it.
    pub created_at: Timestamp,
}

impl fmt::Debug for WebhookEndpoint {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or in flight).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed; no more will be made.
    DeadLettered,
}

impl DeliveryState {
    /// The state's name on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::DeadLettered => "dead_lettered",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<DeliveryState> {
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::DeadLettered]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// One POST of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When it was sent.
    pub at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (connection refused, timeout), if so.
    pub error: Option<String>,
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (sent as `X-Ledger-Delivery`).
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The outbox event's sequence number (the `id` in the body).
    pub event_id: i64,
    /// The event's kind.
    pub event_type: EventKind,
    /// The JSON body, exactly as sent on every attempt.
    pub body: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Timestamp>,
    /// When it was fanned out.
    pub created_at: Timestamp,
}

/// A claimed delivery: everything the relay needs to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its endpoint.
    pub endpoint: EndpointId,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's signing secret.
    pub secret: String,
    /// The event's kind (sent as `X-Ledger-Event`).
    pub event_type: EventKind,
    /// The body to send.
    pub body: String,
    /// Which attempt this is (1-based).
    pub attempt: u32,
}

impl fmt::Debug for DeliveryJob {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryJob")
            .field("delivery", &self.delivery)
            .field("endpoint", &self.endpoint)
            .field("url", &self.url)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What happens to a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Done: the receiver took it.
    Delivered,
    /// Try again at this instant.
    RetryAt(Timestamp),
    /// Give up: the last attempt failed.
    DeadLettered,
}

impl DeliveryNext {
    /// The delivery's state afterwards and, while pending, when its next attempt is due.
    pub const fn outcome(self) -> (DeliveryState, Option<Timestamp>) {
        match self {
            DeliveryNext::Delivered => (DeliveryState::Delivered, None),
            DeliveryNext::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            DeliveryNext::DeadLettered => (DeliveryState::DeadLettered, None),
        }
    }
}

/// Storage for endpoints and deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers an endpoint.
    async fn create_endpoint(&self, endpoint: WebhookEndpoint) -> Result<WebhookEndpoint, StoreError>;

    /// An endpoint that has not been deleted.
    async fn endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// A user's endpoints (not deleted), by id.
    async fn endpoints(&self, owner: UserId, page: &PageRequest) -> Result<Page<WebhookEndpoint>, StoreError>;

    /// Deletes an endpoint: nothing more is fanned out or sent to it. `false` if there was none.
    async fn delete_endpoint(&self, id: EndpointId, now: Timestamp) -> Result<bool, StoreError>;

    /// An endpoint's deliveries, by id (oldest first), with their attempts.
    async fn deliveries(&self, endpoint: EndpointId, page: &PageRequest) -> Result<Page<Delivery>, StoreError>;

    /// Turns up to `limit` unpublished outbox events into deliveries (bodies from [`payload`],
    /// ids from `ids`) and marks them published, in one transaction. Returns how many events.
    async fn fan_out(&self, now: Timestamp, limit: usize, ids: &dyn IdGenerator) -> Result<usize, StoreError>;

    /// Claims up to `limit` due deliveries with a lease, oldest due first, never letting an endpoint
    /// have more than `per_endpoint` in flight; each claim counts an attempt.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        per_endpoint: usize,
    ) -> Result<Vec<DeliveryJob>, StoreError>;

    /// Records an attempt's result and what comes next, releasing the lease.
    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<(), StoreError>;

    /// Deliveries waiting (pending, to endpoints not deleted) and events not yet fanned out, for metrics.
    async fn webhook_backlog(&self) -> Result<WebhookBacklog, StoreError>;
}

/// How much webhook work is waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookBacklog {
    /// Outbox events not yet fanned out.
    pub unpublished_events: u64,
    /// Deliveries still pending.
    pub pending_deliveries: u64,
}

/// The JSON body for `event` (outbox sequence `event_id`) as seen by an owner of `accounts`
/// (the event's accounts that this owner holds). Rendered by hand from ids, closed-set names
/// and a timestamp, so it needs no serializer and is byte-for-byte stable.
pub fn payload(event_id: i64, event: &Event, accounts: &[AccountId]) -> String {
    let opt = |id: Option<String>| id.map_or_else(|| "null".to_owned(), |id| format!("\"{id}\""));
    let accounts: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "{{\"id\":{event_id},\"type\":\"{}\",\"created_at\":\"{}\",\"data\":{{\"account_ids\":[{}],\
         \"entry_id\":{},\"hold_id\":{},\"payout_id\":{},\"payout_status\":{}}}}}",
        event.kind.as_str(),
        event.at.to_rfc3339(),
        accounts.join(","),
        opt(event.entry.map(|id| id.to_string())),
        opt(event.hold.map(|id| id.to_string())),
        opt(event.payout.map(|id| id.to_string())),
        opt(event.payout_status.map(|s| s.as_str().to_owned())),
    )
}

/// Why an endpoint URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` or `https://` with a host, or too long, or with spaces.
    #[error("must be an http:// or https:// URL with a host, at most 2048 characters")]
    Malformed,
    /// Has `user:password@`.
    #[error("must not carry credentials")]
    Credentials,
    /// Names a loopback, private or link-local address (or `localhost`).
    #[error("must not point at a loopback, private or link-local address")]
    Private,
}

/// Checks an endpoint URL: http(s), a host, no credentials, and unless `allow_private`, no
/// loopback/private/link-local literal address or `localhost` (a guard against pointing our relay
/// at internal services; names that resolve to private addresses are not caught here).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), UrlError> {
    if url.len() > URL_MAX || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Malformed);
    }
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or(UrlError::Malformed)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    if host.is_empty() {
        return Err(UrlError::Malformed);
    }
    if allow_private {
        return Ok(());
    }
    let private = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast()
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    };
    if private { Err(UrlError::Private) } else { Ok(()) }
}

/// Sends one delivery. Implemented over HTTP by the binaries; by doubles in tests.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` to `url` with `headers`; the receiver's status code, or why there was none.
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String>;
}

/// How the relay behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// How long a claimed delivery is leased (longer than the transport's timeout).
    pub lease: Duration,
    /// The most deliveries claimed per pass.
    pub batch: usize,
    /// The most deliveries in flight to one endpoint.
    pub per_endpoint: usize,
    /// The most outbox events fanned out per pass.
    pub fan_out_batch: usize,
    /// Attempts before a delivery is dead-lettered.
    pub attempts_max: u32,
    /// The first retry delay's ceiling; it doubles per attempt.
    pub backoff_base: Duration,
    /// The largest retry delay.
    pub backoff_cap: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            lease: Duration::from_secs(60),
            batch: 1,
            per_endpoint: 1,
            fan_out_batch: 500,
            attempts_max: 8,
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(3_600),
        }
    }
}

impl RelayConfig {
    /// The defaults with these retry settings and a lease of twice the transport's `timeout`
    /// (at least a second), so a live relay never loses a delivery it is still sending.
    pub fn with_retries(
        timeout: Duration,
        attempts_max: u32,
        backoff_base: Duration,
        backoff_cap: Duration,
    ) -> RelayConfig {
        RelayConfig {
            lease: timeout.saturating_mul(2).max(Duration::from_secs(1)),
            attempts_max: attempts_max.max(1),
            backoff_base,
            backoff_cap: backoff_cap.max(backoff_base),
            ..RelayConfig::default()
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Outbox events fanned out.
    pub fanned_out: usize,
    /// Deliveries claimed.
    pub claimed: usize,
    /// Delivered (2xx).
    pub delivered: usize,
    /// Failed and put back for a retry.
    pub retried: usize,
    /// Failed for the last time.
    pub dead_lettered: usize,
}

/// Running totals of every pass, for metrics.
#[derive(Debug, Default)]
pub struct RelayTotals {
    /// Outbox events fanned out.
    pub fanned_out: AtomicU64,
    /// Delivered.
    pub delivered: AtomicU64,
    /// Retried.
    pub retried: AtomicU64,
    /// Dead-lettered.
    pub dead_lettered: AtomicU64,
}

/// The relay over a store and a transport.
pub struct Relay<S: ?Sized, T: ?Sized> {
    store: Arc<S>,
    transport: Arc<T>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: RelayConfig,
    totals: RelayTotals,
}

impl<S: ?Sized, T: ?Sized> fmt::Debug for Relay<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay").field("config", &self.config).field("totals", &self.totals).finish_non_exhaustive()
    }
}

impl<S, T> Relay<S, T>
where
    S: WebhookStore + ?Sized,
    T: WebhookTransport + ?Sized,
{
    /// A relay.
    pub fn new(
        store: Arc<S>,
        transport: Arc<T>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: RelayConfig,
    ) -> Relay<S, T> {
        Relay { store, transport, clock, ids, config, totals: RelayTotals::default() }
    }

    /// Totals over every pass so far.
    pub fn totals(&self) -> &RelayTotals {
        &self.totals
    }

    /// The retry delay before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        backoff_delay(self.config.backoff_base, self.config.backoff_cap, attempt, random)
    }

    /// What follows a failed or successful attempt.
    pub fn next(&self, attempt: u32, delivered: bool, now: Timestamp, random: u64) -> DeliveryNext {
        if delivered {
            DeliveryNext::Delivered
        } else if attempt >= self.config.attempts_max {
            DeliveryNext::DeadLettered
        } else {
            DeliveryNext::RetryAt(now.saturating_add(self.backoff(attempt, random)))
        }
    }

    /// One pass: fans out new events, then claims due deliveries and sends each once.
    pub async fn run_once(&self, random: &mut (dyn FnMut() -> u64 + Send)) -> Result<RelayReport, StoreError> {
        let mut report = RelayReport {
            fanned_out: self.store.fan_out(self.clock.now(), self.config.fan_out_batch, self.ids.as_ref()).await?,
            ..RelayReport::default()
        };
        let jobs = self
            .store
            .claim_deliveries(self.clock.now(), self.config.lease, self.config.batch, self.config.per_endpoint)
            .await?;
        report.claimed = jobs.len();
        for job in jobs {
            let at = self.clock.now();
            let headers = [
                ("content-type", "application/json".to_owned()),
                ("x-signature", signature::sign(job.secret.as_bytes(), at.as_unix_secs(), job.body.as_bytes())),
                ("x-ledger-event", job.event_type.as_str().to_owned()),
                ("x-ledger-delivery", job.delivery.to_string()),
            ];
            let answer = self.transport.post(&job.url, &headers, &job.body).await;
            let delivered = matches!(answer, Ok(200..=299));
            let next = self.next(job.attempt, delivered, self.clock.now(), random());
            let attempt = DeliveryAttempt {
                attempt: job.attempt,
                at,
                status_code: answer.as_ref().ok().copied(),
                error: answer.err(),
            };
            self.store.finish_delivery(job.delivery, attempt, next).await?;
            let counter = match next {
                DeliveryNext::Delivered => {
                    report.delivered += 1;
                    &self.totals.delivered
                }
                DeliveryNext::RetryAt(_) => {
                    report.retried += 1;
                    &self.totals.retried
                }
                DeliveryNext::DeadLettered => {
                    report.dead_lettered += 1;
                    &self.totals.dead_lettered
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.totals.fanned_out.fetch_add(report.fanned_out as u64, Ordering::Relaxed);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntryId, PayoutId};
    use crate::state::PayoutStatus;
    use uuid::Uuid;

    #[test]
    fn urls_are_checked() {
        for ok in ["https://example.com/hook", "http://example.com:8080", "https://[2001:db8::1]/x", "https://8.8.8.8"]
        {
            assert_eq!(check_url(ok, false), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("ftp://example.com", UrlError::Malformed),
            ("https://", UrlError::Malformed),
            ("https://exa mple.com", UrlError::Malformed),
            ("example.com", UrlError::Malformed),
            ("https://user:pw@example.com/", UrlError::Credentials),
            ("http://127.0.0.1:9000/", UrlError::Private),
            ("http://localhost/", UrlError::Private),
            ("http://10.1.2.3/", UrlError::Private),
            ("http://192.168.0.10/", UrlError::Private),
            ("http://169.254.169.254/latest/meta-data", UrlError::Private),
            ("http://[::1]:80/", UrlError::Private),
            ("http://[fd00::1]/", UrlError::Private),
        ] {
            assert_eq!(check_url(bad, false), Err(why), "{bad}");
        }
        assert_eq!(check_url("http://127.0.0.1:9000/", true), Ok(()));
        assert_eq!(check_url(&format!("https://e.com/{}", "a".repeat(URL_MAX)), true), Err(UrlError::Malformed));
    }

    #[test]
    fn the_payload_is_stable_json() {
        let event = Event {
            kind: EventKind::PayoutStatusChanged,
            entry: Some(EntryId(Uuid::from_u128(1))),
            hold: None,
            payout: Some(PayoutId(Uuid::from_u128(2))),
            payout_status: Some(PayoutStatus::Completed),
            accounts: vec![AccountId(Uuid::from_u128(3)), AccountId(Uuid::from_u128(4))],
            at: Timestamp::from_unix_secs(0),
        };
        let body = payload(7, &event, &[AccountId(Uuid::from_u128(3))]);
        assert_eq!(
            body,
            "{\"id\":7,\"type\":\"payout.status_changed\",\"created_at\":\"1970-01-01T00:00:00.000000Z\",\
             \"data\":{\"account_ids\":[\"00000000-0000-0000-0000-000000000003\"],\
             \"entry_id\":\"00000000-0000-0000-0000-000000000001\",\"hold_id\":null,\
             \"payout_id\":\"00000000-0000-0000-0000-000000000002\",\"payout_status\":\"COMPLETED\"}}"
        );
    }
}
