//! `ledger-payout-worker`: drives payouts and API-initiated deposits through the bank.
//!
//! Each of `concurrency` tasks loops [`ledger_core::pipeline::Pipeline::run_once`] over the
//! PostgreSQL payout queue: claim one due item with a lease (`FOR UPDATE SKIP LOCKED`, so any
//! number of worker processes never take the same item), move it to PROCESSING, call the bank with
//! the payout id as its idempotency key, then settle, release, retry later or send to manual
//! review. A worker that dies loses its lease and the item is taken again when the lease ends; the
//! bank pays a repeated payout id only once, so nothing is paid twice.
//!
//! On shutdown each task finishes the item in hand and stops claiming.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ledger_core::pipeline::{PassReport, Pipeline, PipelineConfig};
use ledger_core::{Clock, PayoutProvider};
use ledger_store_pg::PgStore;
use ledger_store_pg::system::{SimulatedBank, SimulatedFailure, SimulatorConfig, SystemClock, UuidV7, random_u64};
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
    let store = PgStore::connect_with(&config.database_url, u32::try_from(config.concurrency + 2).unwrap_or(16))
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pipeline = Arc::new(Pipeline::new(Arc::new(store), bank, clock, Arc::new(UuidV7), config.pipeline()));
    tracing::info!(concurrency = config.concurrency, "payout worker running");
    let poll = Duration::from_millis(config.poll_ms.max(1));
    let tasks: Vec<_> = (0..config.concurrency.max(1))
        .map(|_| {
            let (pipeline, mut stop) = (pipeline.clone(), stop.clone());
            tokio::spawn(async move {
                let mut total = PassReport::default();
                while !*stop.borrow() {
                    match pipeline.run_once(&mut random_u64).await {
                        Ok(report) => {
                            add(&mut total, &report);
                            if report.claimed > 0 {
                                tracing::info!(?report, "pass");
                                continue;
                            }
                        }
                        Err(error) => tracing::warn!(%error, "pass failed; retrying after the poll interval"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                total
            })
        })
        .collect();
    let mut total = PassReport::default();
    for task in tasks {
        let report = task.await.map_err(|e| WorkerError(format!("worker task: {e}")))?;
        add(&mut total, &report);
    }
    tracing::info!(?total, "payout worker stopped");
    Ok(total)
}

fn add(total: &mut PassReport, report: &PassReport) {
    total.claimed += report.claimed;
    total.completed += report.completed;
    total.failed += report.failed;
    total.manual_review += report.manual_review;
    total.retried += report.retried;
    total.skipped += report.skipped;
}
