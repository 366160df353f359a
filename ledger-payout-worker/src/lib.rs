//! `ledger-payout-worker`: drives payouts and API-initiated deposits through the bank.
//!
//! Each of `concurrency` tasks loops [`ledger_core::pipeline::Pipeline::run_once`] over the
//! PostgreSQL payout queue: claim one due item with a lease (`FOR UPDATE SKIP LOCKED`, so any
//! number of worker processes never take the same item), move it to PROCESSING, call the bank with
//! the payout id as its idempotency key, then settle, release, retry later or send to manual
//! review. A worker that dies loses its lease and the item is taken again when the lease ends; the
//! bank pays a repeated payout id only once, so nothing is paid twice.
//!
//! The same process runs the outbound webhook relay ([`ledger_core::webhook`]): it fans outbox
//! events out to the endpoints users registered and sends each delivery, signed, with retries and
//! dead letters. `LEDGER_WORKER_METRICS_ADDR` serves Prometheus metrics of both.
//!
//! On shutdown each task finishes the item in hand and stops claiming.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ledger_core::metrics::WorkerMetrics;
use ledger_core::pipeline::{PassReport, Pipeline, PipelineConfig};
use ledger_core::webhook::{Relay, RelayConfig, WebhookStore};
use ledger_core::{Clock, PayoutProvider, PayoutQueue};
use ledger_store_pg::PgStore;
use ledger_store_pg::system::{
    HttpTransport, SimulatedBank, SimulatedFailure, SimulatorConfig, SystemClock, UuidV7, random_u64, run_passes,
};
use tokio::sync::watch;

/// The worker's settings: environment variables with matching flags.
#[derive(Clone, Debug, Parser)]
#[command(name = "ledger-payout-worker", version, about = "Drives payouts and deposits through the bank")]
pub struct Config {
    /// PostgreSQL URL (the same database as the service).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Items driven at once by this process.
    #[arg(long, env = "LEDGER_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// How long a claimed item is leased before another worker may take it, in seconds.
    #[arg(long, env = "LEDGER_WORKER_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Pause between polls of an empty queue, in milliseconds.
    #[arg(long, env = "LEDGER_WORKER_POLL_MS", default_value_t = 500)]
    pub poll_ms: u64,
    /// Calls to an unavailable bank before manual review.
    #[arg(long, env = "LEDGER_WORKER_ATTEMPTS_MAX", default_value_t = 5)]
    pub attempts_max: u32,
    /// First retry delay ceiling, in milliseconds (doubles per attempt, full jitter).
    #[arg(long, env = "LEDGER_WORKER_BACKOFF_BASE_MS", default_value_t = 1_000)]
    pub backoff_base_ms: u64,
    /// Largest retry delay, in milliseconds.
    #[arg(long, env = "LEDGER_WORKER_BACKOFF_CAP_MS", default_value_t = 60_000)]
    pub backoff_cap_ms: u64,
    /// Consecutive bank failures that open the circuit breaker.
    #[arg(long, env = "LEDGER_WORKER_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe, in seconds.
    #[arg(long, env = "LEDGER_WORKER_BREAKER_COOLDOWN_SECS", default_value_t = 30)]
    pub breaker_cooldown_secs: u64,
    /// Simulated bank: percent of calls that succeed.
    #[arg(long, env = "LEDGER_SIM_SUCCESS_PERCENT", default_value_t = 90)]
    pub sim_success_percent: u8,
    /// Simulated bank: shortest latency, in milliseconds.
    #[arg(long, env = "LEDGER_SIM_LATENCY_MIN_MS", default_value_t = 2_000)]
    pub sim_latency_min_ms: u64,
    /// Simulated bank: longest latency, in milliseconds.
    #[arg(long, env = "LEDGER_SIM_LATENCY_MAX_MS", default_value_t = 10_000)]
    pub sim_latency_max_ms: u64,
    /// Simulated bank: `mixed`, `timeout`, `unavailable`, `insufficient_funds` or `rejected`.
    #[arg(long, env = "LEDGER_SIM_FAILURE", default_value = "mixed")]
    pub sim_failure: String,
    /// Simulated bank: keep what it has paid in the database (schema `bank_simulator`), so every
    /// worker process shares one bank, as they would share a real one.
    #[arg(long, env = "LEDGER_SIM_SHARED", default_value_t = true, action = clap::ArgAction::Set)]
    pub sim_shared: bool,
    /// Webhook relay: deliveries sent at once by this process (0 turns the relay off here).
    #[arg(long, env = "LEDGER_WEBHOOK_CONCURRENCY", default_value_t = 2)]
    pub webhook_concurrency: usize,
    /// Webhook relay: how long one delivery attempt may take, in milliseconds.
    #[arg(long, env = "LEDGER_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Webhook relay: attempts before a delivery is dead-lettered.
    #[arg(long, env = "LEDGER_WEBHOOK_ATTEMPTS_MAX", default_value_t = 8)]
    pub webhook_attempts_max: u32,
    /// Webhook relay: first retry delay ceiling, in milliseconds (doubles per attempt, full jitter).
    #[arg(long, env = "LEDGER_WEBHOOK_BACKOFF_BASE_MS", default_value_t = 5_000)]
    pub webhook_backoff_base_ms: u64,
    /// Webhook relay: largest retry delay, in milliseconds.
    #[arg(long, env = "LEDGER_WEBHOOK_BACKOFF_CAP_MS", default_value_t = 3_600_000)]
    pub webhook_backoff_cap_ms: u64,
    /// Serve Prometheus metrics on this address (e.g. `127.0.0.1:9464`, any path); unset: off.
    #[arg(long, env = "LEDGER_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// Why the worker could not run.
#[derive(Debug)]
pub struct WorkerError(pub String);

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WorkerError {}

impl Config {
    fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            lease: Duration::from_secs(self.lease_secs.max(1)),
            batch: 1,
            attempts_max: self.attempts_max.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms.max(self.backoff_base_ms)),
            breaker_failures: self.breaker_failures.max(1),
            breaker_cooldown: Duration::from_secs(self.breaker_cooldown_secs),
        }
    }

    fn relay(&self) -> RelayConfig {
        RelayConfig::with_retries(
            Duration::from_millis(self.webhook_timeout_ms),
            self.webhook_attempts_max,
            Duration::from_millis(self.webhook_backoff_base_ms),
            Duration::from_millis(self.webhook_backoff_cap_ms),
        )
    }

    fn simulator(&self) -> Result<SimulatorConfig, WorkerError> {
        let failure = match self.sim_failure.as_str() {
            "mixed" => None,
            other => Some(SimulatedFailure::parse(other).ok_or_else(|| {
                WorkerError(format!(
                    "LEDGER_SIM_FAILURE must be mixed, timeout, unavailable, insufficient_funds or rejected, not {other:?}"
                ))
            })?),
        };
        Ok(SimulatorConfig {
            success_percent: self.sim_success_percent.min(100),
            latency_min: Duration::from_millis(self.sim_latency_min_ms),
            latency_max: Duration::from_millis(self.sim_latency_max_ms),
            failure,
        })
    }
}

/// Runs the worker until `stop` turns true, then lets every task finish its item.
pub async fn run(config: Config, stop: watch::Receiver<bool>) -> Result<PassReport, WorkerError> {
    let connections = config.concurrency + config.webhook_concurrency + 3;
    let store = PgStore::connect_with(&config.database_url, u32::try_from(connections).unwrap_or(16))
        .await
        .map_err(|e| WorkerError(format!("database: {e}")))?;
    let bank: Arc<dyn PayoutProvider> = if config.sim_shared {
        Arc::new(
            SimulatedBank::shared(config.simulator()?, store.pool().clone())
                .await
                .map_err(|e| WorkerError(format!("simulated bank: {e}")))?,
        )
    } else {
        Arc::new(SimulatedBank::new(config.simulator()?))
    };
    let store = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pipeline = Arc::new(Pipeline::new(store.clone(), bank, clock.clone(), Arc::new(UuidV7), config.pipeline()));
    let transport = HttpTransport::new(Duration::from_millis(config.webhook_timeout_ms))
        .map_err(|e| WorkerError(format!("webhook HTTP client: {e}")))?;
    let relay =
        Arc::new(Relay::new(store.clone(), Arc::new(transport), clock.clone(), Arc::new(UuidV7), config.relay()));
    if let Some(addr) = &config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| WorkerError(format!("cannot listen on {addr} for metrics: {e}")))?;
        let (store, pipeline, relay, clock) = (store.clone(), pipeline.clone(), relay.clone(), clock.clone());
        let render = move || {
            let (store, pipeline, relay, clock) = (store.clone(), pipeline.clone(), relay.clone(), clock.clone());
            async move {
                let mut text = String::new();
                WorkerMetrics {
                    pipeline: Some((pipeline.totals(), pipeline.breaker().state())),
                    relay: Some(relay.totals()),
                    queue: store.queue_stats().await.ok().map(|q| (q, clock.now())),
                    backlog: store.webhook_backlog().await.ok(),
                }
                .render(&mut text);
                text
            }
        };
        tracing::info!(%addr, "serving metrics");
        tokio::spawn(serve_metrics(listener, render));
    }
    tracing::info!(
        concurrency = config.concurrency,
        webhook_concurrency = config.webhook_concurrency,
        "payout worker running"
    );
    let poll = Duration::from_millis(config.poll_ms.max(1));
    let mut tasks = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let pipeline = pipeline.clone();
        tasks.push(tokio::spawn(run_passes("payout pipeline", poll, stop.clone(), move || {
            let pipeline = pipeline.clone();
            async move {
                let report = pipeline.run_once(&mut random_u64).await?;
                if report.claimed > 0 {
                    tracing::info!(?report, "pass");
                }
                Ok(report.claimed > 0)
            }
        })));
    }
    for _ in 0..config.webhook_concurrency {
        let relay = relay.clone();
        tasks.push(tokio::spawn(run_passes("webhook relay", poll, stop.clone(), move || {
            let relay = relay.clone();
            async move {
                let report = relay.run_once(&mut random_u64).await?;
                if report.claimed > 0 {
                    tracing::info!(?report, "webhook pass");
                }
                Ok(report.claimed > 0 || report.fanned_out > 0)
            }
        })));
    }
    for task in tasks {
        task.await.map_err(|e| WorkerError(format!("worker task: {e}")))?;
    }
    let total = pipeline.totals().report();
    tracing::info!(?total, "payout worker stopped");
    Ok(total)
}

/// Answers every connection with the metrics text: a minimal HTTP/1.1 responder (one request per
/// connection, any path), enough for a Prometheus scrape without pulling a web framework in.
async fn serve_metrics<F, Fut>(listener: tokio::net::TcpListener, render: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let body = render().await;
        tokio::spawn(async move {
            // Read (and ignore) the request head, bounded in size and time.
            let mut head = [0_u8; 4_096];
            let _ = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut head)).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
