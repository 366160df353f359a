//! The `ledger-payout-worker` binary: JSON logs, runs until SIGINT or SIGTERM, then finishes the
//! items in hand and exits 0; exits 1 when it cannot start.

use std::process::ExitCode;

use clap::Parser;
use ledger_payout_worker::{Config, run};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).json().flatten_event(true).init();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        ledger_store_pg::system::shutdown_signal().await;
        tracing::info!("stopping: finishing the items in hand");
        let _ = stop.send(true);
    });
    match run(config, stopped).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "cannot run");
            eprintln!("ledger-payout-worker: {error}");
            ExitCode::FAILURE
        }
    }
}
