//! Configuration: every setting is an environment variable with a matching command-line flag
//! (clap). `ledger-http --help` lists them all; the README documents them.

use std::time::Duration;

use clap::Parser;

/// The service's settings.
#[derive(Clone, Parser)]
#[command(name = "ledger-http", version, about = "The ledger's HTTP service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// PostgreSQL URL. Without it the service keeps everything in memory (lost at exit).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis URL for the idempotency fast path (optional; PostgreSQL stays the source of truth).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// HS256 signing secret for access tokens, at least 32 bytes. Required with PostgreSQL; in
    /// memory mode a random one is made at start.
    #[arg(long, env = "LEDGER_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` claim tokens are issued with and checked against.
    #[arg(long, env = "LEDGER_JWT_ISSUER", default_value = "ledger")]
    pub jwt_issuer: String,

    /// The `aud` claim tokens are issued with and checked against.
    #[arg(long, env = "LEDGER_JWT_AUDIENCE", default_value = "ledger-api")]
    pub jwt_audience: String,

    /// Access token lifetime in seconds.
    #[arg(long = "token-ttl", env = "LEDGER_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl_secs: u64,

    /// HMAC-SHA256 secret the bank signs inbound deposit webhooks with. Without it the webhook
    /// endpoint refuses everything.
    #[arg(long, env = "LEDGER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Username of the admin ensured at start-up (with LEDGER_ADMIN_PASSWORD).
    #[arg(long, env = "LEDGER_ADMIN_USERNAME")]
    pub admin_username: Option<String>,

    /// Password of the admin ensured at start-up.
    #[arg(long, env = "LEDGER_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// How long idempotency records are kept, in seconds.
    #[arg(long = "idempotency-ttl", env = "LEDGER_IDEMPOTENCY_TTL", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long = "body-limit", env = "LEDGER_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit_bytes: usize,

    /// Login attempts per minute per client address.
    #[arg(long, env = "LEDGER_RATE_LOGIN_PER_MINUTE", default_value_t = 10)]
    pub rate_login_per_minute: u32,

    /// Read requests per second per user.
    #[arg(long, env = "LEDGER_RATE_READS_PER_SECOND", default_value_t = 50)]
    pub rate_reads_per_second: u32,

    /// Write requests per second per user.
    #[arg(long, env = "LEDGER_RATE_WRITES_PER_SECOND", default_value_t = 20)]
    pub rate_writes_per_second: u32,

    /// Requests per second for the whole service.
    #[arg(long, env = "LEDGER_RATE_GLOBAL_PER_SECOND", default_value_t = 5_000)]
    pub rate_global_per_second: u32,

    /// Currencies whose house accounts (settlement, liquidity, payout clearing, fees) are
    /// opened at start.
    #[arg(long, env = "LEDGER_CURRENCIES", value_delimiter = ',', default_value = "USD,EUR,GBP,ETB,JPY")]
    pub currencies: Vec<String>,

    /// How long an FX quote stays valid, in seconds.
    #[arg(long = "quote-ttl", env = "LEDGER_QUOTE_TTL", default_value_t = 30)]
    pub quote_ttl_secs: u64,

    /// Serve /metrics (Prometheus text format).
    #[arg(long, env = "LEDGER_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Run the payout pipeline inside this process on PostgreSQL too (it always runs in memory
    /// mode, where there is no other process to run it).
    #[arg(long, env = "LEDGER_INPROCESS_WORKERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub inprocess_workers: bool,

    /// In-process pipeline: how many items are driven at once (0 turns the in-process pipeline
    /// off, even in memory mode).
    #[arg(long, env = "LEDGER_WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,

    /// In-process pipeline: how long to wait between polls of an empty queue, in milliseconds.
    #[arg(long, env = "LEDGER_WORKER_POLL_MS", default_value_t = 500)]
    pub worker_poll_ms: u64,

    /// Simulated bank: percent of calls that succeed.
    #[arg(long, env = "LEDGER_SIM_SUCCESS_PERCENT", default_value_t = 90)]
    pub sim_success_percent: u8,

    /// Simulated bank: the failure of a failed call: `mixed` (all four evenly), `timeout`,
    /// `unavailable`, `insufficient_funds` or `rejected`.
    #[arg(long, env = "LEDGER_SIM_FAILURE", default_value = "mixed")]
    pub sim_failure: String,

    /// Simulated bank: shortest latency, in milliseconds.
    #[arg(long, env = "LEDGER_SIM_LATENCY_MIN_MS", default_value_t = 2_000)]
    pub sim_latency_min_ms: u64,

    /// Simulated bank: longest latency, in milliseconds.
    #[arg(long, env = "LEDGER_SIM_LATENCY_MAX_MS", default_value_t = 10_000)]
    pub sim_latency_max_ms: u64,

    /// Outbound webhooks: accept endpoint URLs on loopback, private or link-local addresses
    /// (off by default: the relay must not be aimed at internal services; tests and local demos turn it on).
    #[arg(long, env = "LEDGER_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// In-process webhook relay: deliveries sent at once (0 turns the in-process relay off).
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

    /// Log format: `json` (default) or `text`.
    #[arg(long, env = "LEDGER_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

impl std::fmt::Debug for Config {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &self.database_url.as_ref().map(|_| "<set>"))
            .field("redis", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("currencies", &self.currencies)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults, as if started with no environment and no flags.
    pub fn defaults() -> Config {
        Config::parse_from(["ledger-http"])
    }

    /// Access token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// Idempotency record lifetime.
    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_secs)
    }
}
