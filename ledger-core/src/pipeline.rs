//! The payout pipeline: drives claimed payouts and deposit requests through the bank to a
//! terminal state or to manual review.
//!
//! The decisions are pure functions ([`next_step`], [`backoff`], [`Breaker`]); [`Pipeline::run_once`]
//! is one runtime-agnostic pass (claim, call the bank, record the outcome) that any loop can
//! drive: the service in-process, or the payout worker binary. It never sleeps and reads time
//! only from the [`Clock`] port; jitter comes in as a number from the caller.
//!
//! Per claimed item:
//! 1. `PENDING -> PROCESSING` (if the owner cancelled first, the cancel wins and the item is left);
//! 2. the bank is called with the payout id as its idempotency key, so a retry after a crash never
//!    pays twice;
//! 3. success settles (`COMPLETED`); a definite refusal releases the funds (`FAILED`); a timeout is
//!    ambiguous, so the payout goes to `MANUAL_REVIEW` with its funds still held; an unavailable bank
//!    is retried later with exponential backoff and full jitter, and after the last retry goes to
//!    manual review too.
//!
//! A circuit breaker counts consecutive failures of the bank; once open, no item is claimed (they
//! wait, without burning retries) until a probe after the cool-down succeeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::command::{AdvancePayout, Command};
use crate::ids::Timestamp;
use crate::ports::{
    Attempt, Claim, Clock, IdGenerator, LedgerStore, PayoutProvider, PayoutQueue, ProviderError, ProviderReceipt,
    ProviderRequest, StoreError, Submission,
};
use crate::rejection::Rejection;
use crate::state::{Payout, PayoutStatus};

/// How the pipeline behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// How long a claimed item is leased to this worker.
    pub lease: Duration,
    /// The most items claimed per pass.
    pub batch: usize,
    /// Calls to an unavailable bank before giving up (to manual review).
    pub attempts_max: u32,
    /// The first retry delay's ceiling; it doubles per attempt.
    pub backoff_base: Duration,
    /// The largest retry delay.
    pub backoff_cap: Duration,
    /// Consecutive bank failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            lease: Duration::from_secs(60),
            batch: 16,
            attempts_max: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// What to do with an item after the bank answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The bank did it: settle.
    Complete(ProviderReceipt),
    /// The bank refused for good: release the funds.
    Fail(String),
    /// Nobody knows what happened, or retries ran out: a human decides, funds stay held.
    ManualReview(String),
    /// Try again at this instant.
    RetryAt(Timestamp),
}

/// The retry delay before attempt `attempt + 1`: full jitter over an exponentially growing
/// ceiling, `random % min(cap, base * 2^(attempt - 1))`. `random` is any uniformly drawn number.
pub fn backoff(config: &PipelineConfig, attempt: u32, random: u64) -> Duration {
    backoff_delay(config.backoff_base, config.backoff_cap, attempt, random)
}

/// Full jitter under `min(cap, base * 2^(attempt - 1))`, in whole milliseconds: the one backoff
/// rule of the payout pipeline and the webhook relay.
pub fn backoff_delay(base: Duration, cap: Duration, attempt: u32, random: u64) -> Duration {
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    let cap = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
    let ceiling = base.saturating_mul(1_u64 << attempt.saturating_sub(1).min(32)).min(cap);
    Duration::from_millis(random % (ceiling + 1))
}

/// Decides the next step for an item on its `attempt`-th call (1-based).
pub fn next_step(
    config: &PipelineConfig,
    attempt: u32,
    answer: Result<ProviderReceipt, ProviderError>,
    now: Timestamp,
    random: u64,
) -> Step {
    match answer {
        Ok(receipt) => Step::Complete(receipt),
        Err(error @ (ProviderError::InsufficientFunds | ProviderError::Rejected(_))) => Step::Fail(error.to_string()),
        Err(ProviderError::Timeout) => Step::ManualReview("the bank did not answer in time: outcome unknown".into()),
        Err(ProviderError::Unavailable) if attempt >= config.attempts_max => {
            Step::ManualReview(format!("the bank was unavailable for {attempt} attempts"))
        }
        Err(ProviderError::Unavailable) => Step::RetryAt(now.saturating_add(backoff(config, attempt, random))),
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// No calls until `until`.
    Open {
        /// When a probe may go.
        until: Timestamp,
    },
    /// One probe is allowed; its result closes or reopens the breaker.
    HalfOpen,
}

/// A circuit breaker over the bank, driven by the caller's clock.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<BreakerState>,
    failures_max: u32,
    cooldown: Duration,
}

impl Breaker {
    /// A closed breaker that opens after `failures_max` consecutive failures for `cooldown`.
    pub fn new(failures_max: u32, cooldown: Duration) -> Breaker {
        Breaker { state: Mutex::new(BreakerState::Closed { failures: 0 }), failures_max: failures_max.max(1), cooldown }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Its state now.
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// Whether calls may go at `now` (an open breaker past its cool-down lets one probe through).
    pub fn allows(&self, now: Timestamp) -> bool {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } | BreakerState::HalfOpen => true,
            BreakerState::Open { until } if now >= until => {
                *state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } => false,
        }
    }

    /// Records a call's outcome. Refusals the bank gives for the payout itself (insufficient funds,
    /// rejected) show the bank works, so they count as successes here.
    pub fn record(&self, healthy: bool, now: Timestamp) {
        let mut state = self.lock();
        *state = match (*state, healthy) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::HalfOpen, false) => BreakerState::Open { until: now.saturating_add(self.cooldown) },
            (BreakerState::Closed { failures }, false) if failures + 1 >= self.failures_max => {
                BreakerState::Open { until: now.saturating_add(self.cooldown) }
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed { failures: failures + 1 },
            (open @ BreakerState::Open { .. }, false) => open,
        };
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Items claimed.
    pub claimed: usize,
    /// Settled or credited.
    pub completed: usize,
    /// Refused by the bank; funds released.
    pub failed: usize,
    /// Sent to manual review.
    pub manual_review: usize,
    /// Put back for a later retry.
    pub retried: usize,
    /// Left alone (cancelled by the owner meanwhile, or already moved on).
    pub skipped: usize,
}

/// Running totals of every pass, for metrics.
#[derive(Debug, Default)]
pub struct PipelineTotals {
    /// Items claimed.
    pub claimed: AtomicU64,
    /// Settled or credited.
    pub completed: AtomicU64,
    /// Refused by the bank.
    pub failed: AtomicU64,
    /// Sent to manual review.
    pub manual_review: AtomicU64,
    /// Put back for a retry.
    pub retried: AtomicU64,
    /// Left alone.
    pub skipped: AtomicU64,
}

impl PipelineTotals {
    /// The totals as one report.
    pub fn report(&self) -> PassReport {
        let load = |c: &AtomicU64| usize::try_from(c.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        PassReport {
            claimed: load(&self.claimed),
            completed: load(&self.completed),
            failed: load(&self.failed),
            manual_review: load(&self.manual_review),
            retried: load(&self.retried),
            skipped: load(&self.skipped),
        }
    }

    /// Adds one pass.
    pub fn add(&self, report: &PassReport) {
        for (counter, n) in [
            (&self.claimed, report.claimed),
            (&self.completed, report.completed),
            (&self.failed, report.failed),
            (&self.manual_review, report.manual_review),
            (&self.retried, report.retried),
            (&self.skipped, report.skipped),
        ] {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// The pipeline over a store and a bank.
pub struct Pipeline<S: ?Sized, P: ?Sized> {
    store: Arc<S>,
    bank: Arc<P>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: PipelineConfig,
    breaker: Breaker,
    totals: PipelineTotals,
}

impl<S: ?Sized, P: ?Sized> std::fmt::Debug for Pipeline<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("config", &self.config).field("breaker", &self.breaker).finish_non_exhaustive()
    }
}

impl<S, P> Pipeline<S, P>
where
    S: LedgerStore + PayoutQueue + ?Sized,
    P: PayoutProvider + ?Sized,
{
    /// A pipeline with a closed breaker.
    pub fn new(
        store: Arc<S>,
        bank: Arc<P>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: PipelineConfig,
    ) -> Pipeline<S, P> {
        let breaker = Breaker::new(config.breaker_failures, config.breaker_cooldown);
        Pipeline { store, bank, clock, ids, config, breaker, totals: PipelineTotals::default() }
    }

    /// The breaker (for metrics).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Totals over every pass so far (for metrics).
    pub fn totals(&self) -> &PipelineTotals {
        &self.totals
    }

    /// One pass: claims due items (unless the breaker is open) and drives each one step.
    /// `random` supplies jitter: any uniformly drawn numbers.
    pub async fn run_once(&self, random: &mut (dyn FnMut() -> u64 + Send)) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        if !self.breaker.allows(self.clock.now()) {
            return Ok(report);
        }
        let claims = self.store.claim(self.clock.now(), self.config.lease, self.config.batch).await?;
        report.claimed = claims.len();
        let mut result = Ok(());
        for claim in claims {
            result = self.process(claim, random(), &mut report).await;
            if result.is_err() {
                break;
            }
        }
        self.totals.add(&report);
        result.map(|()| report)
    }

    async fn advance(&self, payout: &Payout, to: PayoutStatus, note: Option<String>) -> Result<bool, StoreError> {
        let command = Command::AdvancePayout(AdvancePayout {
            payout_id: payout.id,
            to,
            entry_id: self.ids.next_id().into(),
            note,
        });
        let mut outcomes = self.store.execute(&[Submission::from(command)], self.clock.now()).await?;
        match outcomes.pop().expect("one outcome") {
            Ok(_) => Ok(true),
            // Someone else moved it first (the owner cancelled, an admin resolved): theirs stands.
            Err(Rejection::IllegalPayoutTransition { .. }) => Ok(false),
            Err(other) => Err(StoreError::backend(Unexpected(other))),
        }
    }

    /// Drives one claimed item one step (what [`Pipeline::run_once`] does for each claim).
    pub async fn process(&self, claim: Claim, random: u64, report: &mut PassReport) -> Result<(), StoreError> {
        let payout = claim.payout;
        if payout.status == PayoutStatus::Pending && !self.advance(&payout, PayoutStatus::Processing, None).await? {
            report.skipped += 1;
            return Ok(());
        }
        if !self.breaker.allows(self.clock.now()) {
            // The breaker opened during this pass: give the item back without spending an attempt.
            self.store.retry_at(payout.id, self.clock.now().saturating_add(self.config.breaker_cooldown)).await?;
            report.retried += 1;
            return Ok(());
        }
        let request = ProviderRequest {
            payout: payout.id,
            direction: payout.direction,
            amount: payout.amount,
            currency: payout.currency,
            bank_account: payout.bank_account.clone(),
        };
        let started_at = self.clock.now();
        let answer = self.bank.execute(&request).await;
        let healthy = !matches!(answer, Err(ProviderError::Timeout | ProviderError::Unavailable));
        self.breaker.record(healthy, self.clock.now());
        let now = self.clock.now();
        let outcome = match &answer {
            Ok(_) => "succeeded",
            Err(ProviderError::Timeout) => "timeout",
            Err(ProviderError::Unavailable) => "unavailable",
            Err(ProviderError::InsufficientFunds) => "insufficient_funds",
            Err(ProviderError::Rejected(_)) => "rejected",
        };
        let attempt = Attempt {
            attempt: claim.attempt,
            started_at,
            finished_at: now,
            outcome: outcome.to_owned(),
            error: answer.as_ref().err().map(ToString::to_string),
            reference: answer.as_ref().ok().map(|r| r.reference.clone()),
        };
        self.store.record_attempt(payout.id, attempt).await?;
        match next_step(&self.config, claim.attempt, answer, now, random) {
            Step::Complete(receipt) => {
                let note = Some(format!("bank reference {}", receipt.reference));
                if self.advance(&payout, PayoutStatus::Completed, note).await? {
                    report.completed += 1;
                } else {
                    report.skipped += 1;
                }
            }
            Step::Fail(reason) => {
                if self.advance(&payout, PayoutStatus::Failed, Some(reason)).await? {
                    report.failed += 1;
                } else {
                    report.skipped += 1;
                }
            }
            Step::ManualReview(reason) => {
                if self.advance(&payout, PayoutStatus::ManualReview, Some(reason)).await? {
                    report.manual_review += 1;
                } else {
                    report.skipped += 1;
                }
            }
            Step::RetryAt(at) => {
                self.store.retry_at(payout.id, at).await?;
                report.retried += 1;
            }
        }
        Ok(())
    }
}

/// A rejection the pipeline's own transitions should never meet.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline's transition was refused: {0}")]
struct Unexpected(Rejection);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PipelineConfig {
        PipelineConfig {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1_000),
            attempts_max: 3,
            ..PipelineConfig::default()
        }
    }

    #[test]
    fn each_answer_has_one_next_step() {
        let now = Timestamp::from_unix_secs(100);
        let ok = ProviderReceipt { reference: "r".into() };
        assert_eq!(next_step(&config(), 1, Ok(ok.clone()), now, 0), Step::Complete(ok));
        assert!(matches!(next_step(&config(), 1, Err(ProviderError::InsufficientFunds), now, 0), Step::Fail(_)));
        assert!(matches!(next_step(&config(), 1, Err(ProviderError::Rejected("x".into())), now, 0), Step::Fail(_)));
        assert!(matches!(next_step(&config(), 1, Err(ProviderError::Timeout), now, 0), Step::ManualReview(_)));
        assert_eq!(
            next_step(&config(), 1, Err(ProviderError::Unavailable), now, 50),
            Step::RetryAt(now.saturating_add(Duration::from_millis(50)))
        );
        assert!(matches!(next_step(&config(), 3, Err(ProviderError::Unavailable), now, 0), Step::ManualReview(_)));
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
        let c = config();
        assert_eq!(backoff(&c, 1, u64::MAX), Duration::from_millis(u64::MAX % 101));
        for attempt in 1..10 {
            let ceiling = (100_u64 << (attempt - 1)).min(1_000);
            for random in [0, 1, 99, 12_345, u64::MAX] {
                assert!(backoff(&c, attempt, random) <= Duration::from_millis(ceiling), "{attempt} {random}");
            }
        }
        assert_eq!(backoff(&c, 1, 100), Duration::from_millis(100));
    }

    #[test]
    fn the_breaker_opens_probes_and_closes() {
        let breaker = Breaker::new(2, Duration::from_secs(10));
        let t = Timestamp::from_unix_secs;
        assert!(breaker.allows(t(0)));
        breaker.record(false, t(0));
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 1 });
        breaker.record(false, t(1));
        assert_eq!(breaker.state(), BreakerState::Open { until: t(11) });
        assert!(!breaker.allows(t(5)));
        assert!(breaker.allows(t(11)), "one probe after the cool-down");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.record(false, t(11));
        assert_eq!(breaker.state(), BreakerState::Open { until: t(21) }, "a failed probe reopens it");
        assert!(breaker.allows(t(21)));
        breaker.record(true, t(21));
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    }
}
