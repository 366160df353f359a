//! The payout pipeline on the in-memory store with a scripted bank: every outcome, retries, the
//! breaker, and a cancel racing a claim. The books balance after each scenario.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::pipeline::{BreakerState, PassReport, Pipeline, PipelineConfig};
use ledger_core::ports::ProviderError;
use ledger_core::recon::reconcile;
use ledger_core::{
    AccountId, Clock, Currency, Ledger, LedgerStore, ManualClock, MemoryStore, Micros, PayoutDirection, PayoutId,
    PayoutQueue, PayoutStatus, ScriptedBank, SequentialIds, Timestamp, UserId,
};

struct World {
    ledger: Ledger<MemoryStore>,
    clock: Arc<ManualClock>,
    bank: Arc<ScriptedBank>,
    pipeline: Pipeline<MemoryStore, ScriptedBank>,
    account: AccountId,
}

fn usd(text: &str) -> Micros {
    Currency::USD.parse_amount(text).unwrap()
}

async fn world(config: PipelineConfig) -> World {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_800_000_000)));
    let ids = Arc::new(SequentialIds::default());
    let store = Arc::new(MemoryStore::new());
    let ledger = Ledger::new(store.clone(), clock.clone(), ids.clone());
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let account = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    ledger.deposit(account, usd("100"), None).await.unwrap();
    let bank = Arc::new(ScriptedBank::new());
    let pipeline = Pipeline::new(store, bank.clone(), clock.clone(), ids, config);
    World { ledger, clock, bank, pipeline, account }
}

impl World {
    async fn payout(&self, amount: &str) -> PayoutId {
        let changes =
            self.ledger.request_bank_transfer(PayoutDirection::Outbound, self.account, usd(amount), None, None);
        changes.await.unwrap().payout.unwrap().id
    }

    async fn pass(&self) -> PassReport {
        let mut n = 0_u64;
        self.pipeline
            .run_once(&mut || {
                n += 7_919;
                n
            })
            .await
            .unwrap()
    }

    async fn status(&self, id: PayoutId) -> PayoutStatus {
        self.ledger.store().payout(id).await.unwrap().unwrap().status
    }

    async fn available(&self) -> Micros {
        self.ledger.balance(self.account).await.unwrap().available().unwrap()
    }

    fn balanced(&self) {
        assert!(reconcile(&self.ledger.store().snapshot()).is_empty());
    }
}

#[test]
fn a_successful_payout_settles() {
    pollster::block_on(async {
        let w = world(PipelineConfig::default()).await;
        let id = w.payout("30").await;
        assert_eq!(w.available().await, usd("70"), "held at once");
        let report = w.pass().await;
        assert_eq!((report.claimed, report.completed), (1, 1));
        assert_eq!(w.status(id).await, PayoutStatus::Completed);
        assert_eq!(w.available().await, usd("70"));
        assert!(w.bank.has_paid(id));
        assert_eq!(w.pass().await.claimed, 0, "a completed payout leaves the queue");
        w.balanced();
    });
}

#[test]
fn a_definite_refusal_releases_the_funds() {
    pollster::block_on(async {
        let w = world(PipelineConfig::default()).await;
        w.bank.script([Err(ProviderError::Rejected("closed account".into()))]);
        let id = w.payout("30").await;
        assert_eq!(w.pass().await.failed, 1);
        assert_eq!(w.status(id).await, PayoutStatus::Failed);
        assert_eq!(w.available().await, usd("100"));
        w.balanced();
    });
}

#[test]
fn a_timeout_goes_to_manual_review_with_funds_held() {
    pollster::block_on(async {
        let w = world(PipelineConfig::default()).await;
        w.bank.script([Err(ProviderError::Timeout)]);
        let id = w.payout("30").await;
        assert_eq!(w.pass().await.manual_review, 1);
        assert_eq!(w.status(id).await, PayoutStatus::ManualReview);
        assert_eq!(w.available().await, usd("70"), "still held");
        assert_eq!(w.pass().await.claimed, 0, "manual review is for humans, not workers");
        // The admin checks with the bank: it did pay.
        w.ledger.advance_payout(id, PayoutStatus::Completed, Some("bank confirmed".into())).await.unwrap();
        assert_eq!(w.status(id).await, PayoutStatus::Completed);
        w.balanced();
    });
}

#[test]
fn an_unavailable_bank_is_retried_with_backoff_then_manual_review() {
    pollster::block_on(async {
        let config = PipelineConfig { attempts_max: 3, breaker_failures: 10, ..PipelineConfig::default() };
        let w = world(config).await;
        w.bank.script([
            Err(ProviderError::Unavailable),
            Err(ProviderError::Unavailable),
            Err(ProviderError::Unavailable),
        ]);
        let id = w.payout("30").await;
        assert_eq!(w.pass().await.retried, 1);
        assert_eq!(w.status(id).await, PayoutStatus::Processing);
        assert_eq!(w.pass().await.claimed, 0, "not due before its backoff");
        w.clock.advance(config.backoff_cap);
        assert_eq!(w.pass().await.retried, 1);
        w.clock.advance(config.backoff_cap);
        assert_eq!(w.pass().await.manual_review, 1, "the third attempt was the last");
        assert_eq!(w.status(id).await, PayoutStatus::ManualReview);
        assert!(!w.bank.has_paid(id));
        w.balanced();
    });
}

#[test]
fn the_breaker_opens_on_a_failing_bank_and_recovers_when_it_heals() {
    pollster::block_on(async {
        let config = PipelineConfig {
            batch: 1,
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(300),
            attempts_max: 10,
            ..PipelineConfig::default()
        };
        let w = world(config).await;
        w.bank.script([Err(ProviderError::Unavailable), Err(ProviderError::Unavailable)]);
        let first = w.payout("10").await;
        let second = w.payout("10").await;
        w.pass().await;
        w.clock.advance(config.backoff_cap);
        w.pass().await;
        assert!(matches!(w.pipeline.breaker().state(), BreakerState::Open { .. }));
        let calls = w.bank.calls();
        w.clock.advance(config.backoff_cap);
        assert_eq!(w.pass().await.claimed, 0, "while open, items wait");
        assert_eq!(w.bank.calls(), calls, "and the bank is left alone");
        // The bank heals; after the cool-down a probe goes through and closes the breaker.
        w.clock.advance(config.breaker_cooldown);
        for _ in 0..4 {
            w.pass().await;
            w.clock.advance(config.backoff_cap);
        }
        assert_eq!(w.pipeline.breaker().state(), BreakerState::Closed { failures: 0 });
        assert_eq!((w.status(first).await, w.status(second).await), (PayoutStatus::Completed, PayoutStatus::Completed));
        w.balanced();
    });
}

#[test]
fn a_cancel_racing_a_claim_has_one_winner() {
    pollster::block_on(async {
        let w = world(PipelineConfig::default()).await;
        let id = w.payout("30").await;
        // The worker has claimed it, but the owner cancels before the worker moves it on.
        let mut claims = w.ledger.store().claim(w.clock.now(), Duration::from_secs(60), 10).await.unwrap();
        w.ledger.advance_payout(id, PayoutStatus::Cancelled, None).await.unwrap();
        let mut report = PassReport::default();
        w.pipeline.process(claims.pop().unwrap(), 0, &mut report).await.unwrap();
        assert_eq!((report.skipped, report.completed), (1, 0));
        assert_eq!(w.status(id).await, PayoutStatus::Cancelled);
        assert!(!w.bank.has_paid(id), "the bank is never called for a cancelled payout");
        assert_eq!(w.available().await, usd("100"));
        w.balanced();
    });
}
