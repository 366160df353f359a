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
}

impl SimulatedBank {
    /// A bank behaving as `config` says.
    pub fn new(config: SimulatorConfig) -> SimulatedBank {
        SimulatedBank { config, paid: std::sync::Mutex::default() }
    }

    /// How many distinct payouts it has moved.
    pub fn paid_count(&self) -> usize {
        self.paid.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait::async_trait]
impl ledger_core::PayoutProvider for SimulatedBank {
    async fn execute(
        &self,
        request: &ledger_core::ports::ProviderRequest,
    ) -> Result<ledger_core::ports::ProviderReceipt, ledger_core::ports::ProviderError> {
        use ledger_core::ports::{ProviderError, ProviderReceipt};
        let (min, max) = (self.config.latency_min, self.config.latency_max.max(self.config.latency_min));
        let spread = u64::try_from((max - min).as_millis()).unwrap_or(u64::MAX);
        let latency = min + std::time::Duration::from_millis(random_u64() % spread.saturating_add(1));
        tokio::time::sleep(latency).await;
        if let Some(receipt) = self.paid.lock().unwrap_or_else(|p| p.into_inner()).get(&request.payout) {
            return Ok(receipt.clone());
        }
        let roll = random_u64();
        if roll % 100 < u64::from(self.config.success_percent) {
            let receipt = ProviderReceipt { reference: format!("sim-{}", Uuid::now_v7().simple()) };
            self.paid.lock().unwrap_or_else(|p| p.into_inner()).insert(request.payout, receipt.clone());
            return Ok(receipt);
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
                    let receipt = ProviderReceipt { reference: format!("sim-{}", Uuid::now_v7().simple()) };
                    self.paid.lock().unwrap_or_else(|p| p.into_inner()).insert(request.payout, receipt);
                }
                ProviderError::Timeout
            }
            1 => ProviderError::Unavailable,
            2 => ProviderError::InsufficientFunds,
            _ => ProviderError::Rejected("the simulated bank declined the transfer".into()),
        })
    }
}
