//! The production implementations of the core's `Clock` and `IdGenerator` ports: the system
//! clock and UUID v7 (time-ordered, so ids sort by creation and index well).

use ledger_core::{Clock, IdGenerator, Timestamp};
use uuid::Uuid;

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_unix_micros(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// UUID v7 ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn next_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM: how the binaries learn to stop gracefully.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A uniformly random `u64` from the operating system (through UUID v4's generator).
pub fn random_u64() -> u64 {
    let bytes = Uuid::new_v4().into_bytes();
    u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[8]])
}

/// How the simulated bank behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// Percent of calls that succeed (0 to 100).
    pub success_percent: u8,
    /// Shortest simulated latency.
    pub latency_min: std::time::Duration,
    /// Longest simulated latency.
    pub latency_max: std::time::Duration,
    /// Which failure a failed call gives: `None` mixes all four kinds evenly.
    pub failure: Option<SimulatedFailure>,
}

/// A failure the simulated bank can be told to give every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedFailure {
    /// No answer in time (the money may or may not have moved).
    Timeout,
    /// The bank is down (nothing happened).
    Unavailable,
    /// The customer's bank account cannot cover it.
    InsufficientFunds,
    /// The bank refuses.
    Rejected,
}

impl SimulatedFailure {
    /// Parses `timeout`, `unavailable`, `insufficient_funds` or `rejected`.
    pub fn parse(name: &str) -> Option<SimulatedFailure> {
        match name {
            "timeout" => Some(SimulatedFailure::Timeout),
            "unavailable" => Some(SimulatedFailure::Unavailable),
            "insufficient_funds" => Some(SimulatedFailure::InsufficientFunds),
            "rejected" => Some(SimulatedFailure::Rejected),
            _ => None,
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> SimulatorConfig {
        SimulatorConfig {
            success_percent: 90,
            latency_min: std::time::Duration::from_secs(2),
            latency_max: std::time::Duration::from_secs(10),
            failure: None,
        }
    }
}

/// A simulated bank for development and tests: succeeds `success_percent` of the time after a
/// random latency; failures are, in equal shares, a timeout and an outage (transient) or
/// insufficient funds and a rejection (permanent). Half of the timeouts did move the money, as
/// with a real bank whose answer was lost: only manual review can tell. Like a real bank API with idempotency keys, it
/// moves each payout's money at most once: a repeated payout id gets the first receipt.
#[derive(Debug, Default)]
pub struct SimulatedBank {
    config: SimulatorConfig,
    paid: std::sync::Mutex<std::collections::HashMap<ledger_core::PayoutId, ledger_core::ports::ProviderReceipt>>,
    /// When set, what the bank has paid (and every call) lives in PostgreSQL, in the schema
    /// `bank_simulator`, so that several worker processes share one bank.
    shared: Option<sqlx::PgPool>,
}

impl SimulatedBank {
    /// A bank behaving as `config` says, remembering payments in this process.
    pub fn new(config: SimulatorConfig) -> SimulatedBank {
        SimulatedBank { config, paid: std::sync::Mutex::default(), shared: None }
    }

    /// A bank whose memory of payments is shared, in PostgreSQL, by every process using `pool`'s
    /// database (its own `bank_simulator` schema, made if missing).
    pub async fn shared(config: SimulatorConfig, pool: sqlx::PgPool) -> Result<SimulatedBank, ledger_core::StoreError> {
        for statement in [
            "CREATE SCHEMA IF NOT EXISTS bank_simulator",
            "CREATE TABLE IF NOT EXISTS bank_simulator.payments \
             (payout_id UUID PRIMARY KEY, reference TEXT NOT NULL, paid_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "CREATE TABLE IF NOT EXISTS bank_simulator.calls \
             (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payout_id UUID NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())",
        ] {
            // Two processes creating the schema at once may race; the loser finds it made.
            let _ = sqlx::query(statement).execute(&pool).await;
        }
        Ok(SimulatedBank { config, paid: std::sync::Mutex::default(), shared: Some(pool) })
    }

    /// How many distinct payouts it has moved (this process's memory; see `bank_simulator` for a
    /// shared bank).
    pub fn paid_count(&self) -> usize {
        self.paid.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    async fn already_paid(&self, payout: ledger_core::PayoutId) -> Option<ledger_core::ports::ProviderReceipt> {
        match &self.shared {
            None => self.paid.lock().unwrap_or_else(|p| p.into_inner()).get(&payout).cloned(),
            Some(pool) => {
                let _ = sqlx::query("INSERT INTO bank_simulator.calls (payout_id) VALUES ($1)")
                    .bind(payout.0)
                    .execute(pool)
                    .await;
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT reference FROM bank_simulator.payments WHERE payout_id = $1")
                        .bind(payout.0)
                        .fetch_optional(pool)
                        .await
                        .ok()?;
                row.map(|(reference,)| ledger_core::ports::ProviderReceipt { reference })
            }
        }
    }

    /// Records a payment; if another process paid this payout meanwhile, its receipt wins.
    async fn pay(&self, payout: ledger_core::PayoutId) -> ledger_core::ports::ProviderReceipt {
        let receipt = ledger_core::ports::ProviderReceipt { reference: format!("sim-{}", Uuid::now_v7().simple()) };
        match &self.shared {
            None => self.paid.lock().unwrap_or_else(|p| p.into_inner()).entry(payout).or_insert(receipt).clone(),
            Some(pool) => {
                let stored: Result<(String,), _> = sqlx::query_as(
                    "INSERT INTO bank_simulator.payments (payout_id, reference) VALUES ($1, $2) \
                     ON CONFLICT (payout_id) DO UPDATE SET reference = bank_simulator.payments.reference \
                     RETURNING reference",
                )
                .bind(payout.0)
                .bind(&receipt.reference)
                .fetch_one(pool)
                .await;
                stored.map(|(reference,)| ledger_core::ports::ProviderReceipt { reference }).unwrap_or(receipt)
            }
        }
    }
}

#[async_trait::async_trait]
impl ledger_core::PayoutProvider for SimulatedBank {
    async fn execute(
        &self,
        request: &ledger_core::ports::ProviderRequest,
    ) -> Result<ledger_core::ports::ProviderReceipt, ledger_core::ports::ProviderError> {
        // The bank acts first; its answer then takes `latency` to come back. A worker that dies in
        // that window leaves a payout the bank has already paid: the next worker's call with the
        // same payout id must get the first receipt, never a second payment.
        let (min, max) = (self.config.latency_min, self.config.latency_max.max(self.config.latency_min));
        let spread = u64::try_from((max - min).as_millis()).unwrap_or(u64::MAX);
        let latency = min + std::time::Duration::from_millis(random_u64() % spread.saturating_add(1));
        let answer = self.decide(request.payout).await;
        tokio::time::sleep(latency).await;
        answer
    }
}

impl SimulatedBank {
    async fn decide(
        &self,
        payout: ledger_core::PayoutId,
    ) -> Result<ledger_core::ports::ProviderReceipt, ledger_core::ports::ProviderError> {
        use ledger_core::ports::ProviderError;
        if let Some(receipt) = self.already_paid(payout).await {
            return Ok(receipt);
        }
        let roll = random_u64();
        if roll % 100 < u64::from(self.config.success_percent) {
            return Ok(self.pay(payout).await);
        }
        let kind = match self.config.failure {
            Some(SimulatedFailure::Timeout) => 0,
            Some(SimulatedFailure::Unavailable) => 1,
            Some(SimulatedFailure::InsufficientFunds) => 2,
            Some(SimulatedFailure::Rejected) => 3,
            None => (roll / 100) % 4,
        };
        Err(match kind {
            0 => {
                if (roll / 400).is_multiple_of(2) {
                    self.pay(payout).await;
                }
                ProviderError::Timeout
            }
            1 => ProviderError::Unavailable,
            2 => ProviderError::InsufficientFunds,
            _ => ProviderError::Rejected("the simulated bank declined the transfer".into()),
        })
    }
}

/// Sends webhook deliveries over HTTP: one POST per attempt, no redirects followed (a receiver
/// cannot bounce our signed request elsewhere), bounded by a timeout. Plain `http://` only in this
/// build (reqwest without a TLS backend); put an egress proxy in front for `https://` receivers.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport whose every request gives up after `timeout`.
    pub fn new(timeout: std::time::Duration) -> Result<HttpTransport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ledger-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpTransport { client })
    }
}

#[async_trait::async_trait]
impl ledger_core::webhook::WebhookTransport for HttpTransport {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String> {
        let mut request = self.client.post(url).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            // The owner reads this in the delivery log: say what happened, not our internals.
            Err(error) if error.is_timeout() => Err("timed out".to_owned()),
            Err(error) if error.is_connect() => Err("could not connect".to_owned()),
            Err(error) if error.is_builder() => Err("invalid URL".to_owned()),
            Err(_) => Err("request failed".to_owned()),
        }
    }
}

/// Drives a background pass (a payout pipeline or webhook relay pass) until `stop` turns true:
/// again at once after a pass that found work, after `poll` when idle or after an error (logged).
/// A pass in progress always finishes; `stop` is looked at between passes.
pub async fn run_passes<F, Fut>(
    what: &'static str,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ledger_core::StoreError>>,
{
    while !*stop.borrow() {
        match pass().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "{what} pass failed; retrying after the poll interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            // A dropped sender means no stop will come: keep to the poll interval.
            Ok(()) = stop.changed() => {}
        }
    }
}
