//! The `ledger-recon` binary. One run checks and exits: 0 when everything holds, 1 when it found
//! discrepancies, 2 when it could not run. `--every` keeps it running on a schedule instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ledger_recon::{Report, Settings, parse_duration, run::default_owner};
use tracing_subscriber::EnvFilter;

/// Reconciliation for the ledger: proves the books balance, and matches bank statements.
#[derive(Debug, Parser)]
#[command(name = "ledger-recon", version)]
struct Cli {
    /// The ledger's PostgreSQL database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long, env = "LEDGER_RECON_JSON", global = true)]
    json: bool,
    #[command(flatten)]
    check: CheckArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Check everything from the beginning, not just what was written since the checkpoints.
    #[arg(long, env = "LEDGER_RECON_FULL")]
    full: bool,
    /// Keep running, one check every DURATION (30s, 15m, 1h, 1d), until SIGINT or SIGTERM.
    #[arg(long, env = "LEDGER_RECON_EVERY", value_parser = parse_duration)]
    every: Option<Duration>,
    /// Chunks a new run is split into (processes share them).
    #[arg(long, env = "LEDGER_RECON_CHUNKS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    chunks: u32,
    /// Chunks this process checks at once.
    #[arg(long, env = "LEDGER_RECON_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// How long a claimed chunk is this process's before another may take it.
    #[arg(long, env = "LEDGER_RECON_LEASE", default_value = "5m", value_parser = parse_duration)]
    lease: Duration,
    /// How far past its lease a PROCESSING payout, or past its expiry an open hold, may be
    /// before it is reported.
    #[arg(long, env = "LEDGER_RECON_MARGIN", default_value = "5m", value_parser = parse_duration)]
    margin: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Match a bank settlement statement (CSV: date,reference,amount,currency,direction)
    /// against the ledger's payouts and deposits.
    Match {
        /// The statement file.
        #[arg(long)]
        statement: PathBuf,
    },
}

/// Exit code for "could not run".
const CANNOT_RUN: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("ledger-recon: could not run: {message}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, String> {
    let url = cli.database_url.clone().ok_or("set DATABASE_URL or --database-url to the ledger's database")?;
    // Read the statement before touching the database: a bad file changes nothing.
    let statement = match &cli.command {
        Some(Command::Match { statement }) => {
            let text = std::fs::read_to_string(statement)
                .map_err(|e| format!("cannot read the statement {}: {e}", statement.display()))?;
            Some(ledger_recon::statement::parse(&text).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let connections = cli.check.concurrency + 2;
    let store = ledger_store_pg::PgStore::connect_with(&url, connections)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let pool = store.pool().clone();
    if let Some(lines) = statement {
        let report = ledger_recon::match_statement(&pool, &lines).await.map_err(|e| e.to_string())?;
        print(&report, cli.json);
        return Ok(report.exit_code());
    }
    let settings = Settings {
        full: cli.check.full,
        chunks: cli.check.chunks,
        concurrency: cli.check.concurrency as usize,
        lease: cli.check.lease,
        margin: cli.check.margin,
        owner: default_owner(),
    };
    let Some(every) = cli.check.every else {
        let report = ledger_recon::run_ledger(&pool, &settings).await.map_err(|e| e.to_string())?;
        print(&report, cli.json);
        return Ok(report.exit_code());
    };
    // Listen for SIGINT/SIGTERM from the start; a signal during a run lets the run finish.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        ledger_store_pg::system::shutdown_signal().await;
        let _ = stop.send(true);
    });
    loop {
        match ledger_recon::run_ledger(&pool, &settings).await {
            Ok(report) => print(&report, cli.json),
            Err(error) => {
                tracing::error!(%error, "recon run failed; trying again at the next interval");
                eprintln!("ledger-recon: run failed: {error}");
            }
        }
        if *stopped.borrow() {
            return Ok(0);
        }
        tokio::select! {
            _ = stopped.changed() => return Ok(0),
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn print(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
    } else {
        print!("{}", report.to_table());
    }
}
