//! The `ledger-http` binary: parses the configuration, sets up JSON logs, serves until SIGINT or
//! SIGTERM, then finishes in-flight requests and exits. Exit code 0 on a clean stop, 1 when it
//! could not start or serve.

use std::process::ExitCode;

use clap::Parser;
use ledger_http::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_logs(&config.log_format);
    tracing::info!(?config, "starting");
    let running = match ledger_http::start(config).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            eprintln!("ledger-http: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("ledger-http listening on {} (Swagger UI: {}/docs)", running.url(), running.url());
    ledger_store_pg::system::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    match running.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
