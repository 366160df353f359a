//! `ledger-http`: the ledger as an HTTP service, on poem + poem-openapi.
//!
//! The operations live in [`api`], one module per tag; the OpenAPI document is generated from
//! them and served at `/openapi.json` and `/openapi.yaml`, with Swagger UI at `/docs`. Every
//! request goes through [`context::Framing`] (request id, problem+json for framework errors,
//! access log, metrics). [`start`] builds the state from [`Config`] and serves until told to
//! stop, finishing in-flight requests; the binary and the tests both use it.

// The API groups, request/response enums and wire objects are poem-openapi glue whose Debug
// output would add nothing to logs (and the state they hold is already Debug).
#![allow(missing_debug_implementations)]

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod context;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod rate_limit;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::{AddData, CatchPanic};
use poem::{EndpointExt, Route, Server};
use poem_openapi::OpenApiService;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;
pub use state::{AppState, StartError};

use api::accounts::AccountsApi;
use api::fx::FxApi;
use api::holds::HoldsApi;
use api::money::MoneyApi;
use api::payouts::PayoutsApi;
use api::recon::ReconApi;
use api::service::ServiceApi;
use api::users::UsersApi;
use api::webhook_endpoints::WebhookEndpointsApi;
use api::webhooks::WebhooksApi;

/// Every API group, as one OpenAPI service.
pub type Apis = (
    ServiceApi,
    UsersApi,
    AccountsApi,
    MoneyApi,
    FxApi,
    HoldsApi,
    PayoutsApi,
    WebhooksApi,
    WebhookEndpointsApi,
    ReconApi,
);

/// The OpenAPI service over `state`.
pub fn openapi(state: &Arc<AppState>) -> OpenApiService<Apis, ()> {
    let apis = (
        ServiceApi { state: state.clone() },
        UsersApi { state: state.clone() },
        AccountsApi { state: state.clone() },
        MoneyApi { state: state.clone() },
        FxApi { state: state.clone() },
        HoldsApi { state: state.clone() },
        PayoutsApi { state: state.clone() },
        WebhooksApi { state: state.clone() },
        WebhookEndpointsApi { state: state.clone() },
        ReconApi { state: state.clone() },
    );
    OpenApiService::new(apis, "Ledger API", env!("CARGO_PKG_VERSION")).description(
        "A double-entry ledger for money movement. Amounts are integer micros (1 unit = 1,000,000 micros). \
             Errors are RFC 7807 application/problem+json. POSTs that move money require an Idempotency-Key.",
    )
}

/// The whole service: the API, its OpenAPI document, Swagger UI, and the middleware.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = openapi(&state);
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let docs = api.swagger_ui();
    Route::new()
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .nest("/docs", docs)
        .nest("/", api)
        .with(CatchPanic::new().with_handler(panic_response))
        .with(AddData::new(state.clone()))
        .with(rate_limit::RateLimit::new(state.clone()))
        .with(context::Framing::new(state.metrics.clone(), state.config.body_limit_bytes))
}

/// A panic in a handler is a bug: logged with the request id, answered as a plain 500 problem
/// that says nothing of what panicked.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> poem::Response {
    let what =
        panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned());
    tracing::error!(request_id = %context::request_id(), panic = what.as_deref().unwrap_or("?"), "handler panicked");
    error::problem_response(poem::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
}

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (for tests that look inside).
    pub state: Arc<AppState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and the in-process background loops (each finishes the pass in
    /// hand), lets in-flight requests finish (up to 30 s), and waits.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.state.background_stop.send(true);
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Background chores of the process: forgetting idle rate-limit keys, and releasing holds whose
/// expiry has passed (safe with several processes: expiring is a state transition, and a hold
/// another process expired first is simply skipped).
fn spawn_housekeeping(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut rounds: u64 = 0;
        loop {
            tick.tick().await;
            rounds += 1;
            if rounds.is_multiple_of(12) {
                state.limits.forget_idle();
            }
            expire_holds(&state).await;
        }
    });
}

/// Runs the payout pipeline in this process against the simulated bank: always in memory mode,
/// and on PostgreSQL when `LEDGER_INPROCESS_WORKERS=true` (otherwise the payout worker processes
/// do it). Each of `worker_concurrency` tasks claims one item at a time.
/// Runs the payout pipeline and the webhook relay in this process: always on the in-memory store,
/// on PostgreSQL only with `LEDGER_INPROCESS_WORKERS=true` (otherwise `ledger-payout-worker` does).
fn spawn_background(state: &Arc<AppState>) -> Result<(), state::StartError> {
    let in_memory = matches!(state.storage, state::Storage::Memory);
    if !in_memory && !state.config.inprocess_workers {
        return Ok(());
    }
    let config = &state.config;
    let poll = Duration::from_millis(config.worker_poll_ms.max(1));
    let pipeline = (config.worker_concurrency > 0).then(|| {
        let bank: Arc<dyn ledger_core::PayoutProvider> =
            Arc::new(ledger_store_pg::system::SimulatedBank::new(ledger_store_pg::system::SimulatorConfig {
                success_percent: config.sim_success_percent.min(100),
                latency_min: Duration::from_millis(config.sim_latency_min_ms),
                latency_max: Duration::from_millis(config.sim_latency_max_ms),
                failure: ledger_store_pg::system::SimulatedFailure::parse(&config.sim_failure),
            }));
        let pipeline_config = ledger_core::pipeline::PipelineConfig { batch: 1, ..Default::default() };
        Arc::new(ledger_core::pipeline::Pipeline::new(
            state.store.clone(),
            bank,
            state.clock.clone(),
            Arc::new(ledger_store_pg::system::UuidV7),
            pipeline_config,
        ))
    });
    let relay = if config.webhook_concurrency > 0 {
        let transport = ledger_store_pg::system::HttpTransport::new(Duration::from_millis(config.webhook_timeout_ms))
            .map_err(|e| state::StartError::Other(format!("webhook HTTP client: {e}")))?;
        let transport: Arc<dyn ledger_core::webhook::WebhookTransport> = Arc::new(transport);
        Some(Arc::new(ledger_core::webhook::Relay::new(
            state.store.clone(),
            transport,
            state.clock.clone(),
            Arc::new(ledger_store_pg::system::UuidV7),
            relay_config(config),
        )))
    } else {
        None
    };
    if let Some(pipeline) = &pipeline {
        tracing::info!(
            workers = config.worker_concurrency,
            "payout pipeline running in-process against the simulated bank"
        );
        for _ in 0..config.worker_concurrency {
            let (pipeline, state, stop) = (pipeline.clone(), state.clone(), state.background_stop.subscribe());
            tokio::spawn(ledger_store_pg::system::run_passes("payout pipeline", poll, stop, move || {
                let (pipeline, state) = (pipeline.clone(), state.clone());
                async move {
                    let report = pipeline.run_once(&mut ledger_store_pg::system::random_u64).await?;
                    for (status, count) in [
                        ("COMPLETED", report.completed),
                        ("FAILED", report.failed),
                        ("MANUAL_REVIEW", report.manual_review),
                    ] {
                        if count > 0 {
                            state.metrics.add("ledger_payouts_total", status, count as u128);
                        }
                    }
                    Ok(report.claimed > 0)
                }
            }));
        }
    }
    if let Some(relay) = &relay {
        tracing::info!(concurrency = config.webhook_concurrency, "webhook relay running in-process");
        for _ in 0..config.webhook_concurrency {
            let (relay, stop) = (relay.clone(), state.background_stop.subscribe());
            tokio::spawn(ledger_store_pg::system::run_passes("webhook relay", poll, stop, move || {
                let relay = relay.clone();
                async move {
                    let report = relay.run_once(&mut ledger_store_pg::system::random_u64).await?;
                    Ok(report.claimed > 0 || report.fanned_out > 0)
                }
            }));
        }
    }
    let _ = state.background.set(state::Background { pipeline, relay });
    Ok(())
}

/// The relay's settings from the service's configuration.
fn relay_config(config: &config::Config) -> ledger_core::webhook::RelayConfig {
    ledger_core::webhook::RelayConfig::with_retries(
        Duration::from_millis(config.webhook_timeout_ms),
        config.webhook_attempts_max,
        Duration::from_millis(config.webhook_backoff_base_ms),
        Duration::from_millis(config.webhook_backoff_cap_ms),
    )
}

async fn expire_holds(state: &AppState) {
    let now = state.ledger.now();
    let due = match state.store.expired_holds(now, 500).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "listing expired holds failed");
            return;
        }
    };
    if due.is_empty() {
        return;
    }
    let batch: Vec<_> =
        due.iter().map(|id| ledger_core::ports::Submission::from(ledger_core::Command::ExpireHold(*id))).collect();
    match state.store.execute(&batch, now).await {
        Ok(outcomes) => {
            let expired = outcomes.iter().filter(|o| o.is_ok()).count();
            tracing::info!(expired, "holds expired");
        }
        Err(error) => tracing::warn!(%error, "expiring holds failed"),
    }
}

/// Builds the state and serves on `config.listen` (port 0 picks a free port).
pub async fn start(config: Config) -> Result<Running, StartError> {
    let listen = config.listen.clone();
    let state = AppState::build(config).await?;
    let acceptor = TcpListener::bind(listen.clone())
        .into_acceptor()
        .await
        .map_err(|e| StartError::Config(format!("cannot listen on {listen}: {e}")))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| StartError::Other("listener has no address".into()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    spawn_housekeeping(state.clone());
    spawn_background(&state)?;
    let endpoint = app(state.clone());
    let task = tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                endpoint,
                async {
                    let _ = stopped.await;
                },
                Some(SHUTDOWN_GRACE),
            )
            .await
    });
    tracing::info!(%addr, "listening");
    Ok(Running { addr, state, stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_a_plain_500_problem() {
        let response = panic_response(Box::new("secret internal detail"));
        assert_eq!(response.status(), poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.content_type(), Some(error::PROBLEM_JSON));
        let body = response.into_body().into_string().await.unwrap();
        assert!(body.contains("\"status\":500"), "{body}");
        assert!(!body.contains("secret"), "{body}");
    }
}
