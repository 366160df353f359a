//! The webhook relay on the in-memory store with a recording transport: signed deliveries,
//! retries with backoff then a dead letter, and a slow endpoint that does not hold up another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ledger_core::ports::PageRequest;
use ledger_core::signature;
use ledger_core::webhook::{DeliveryState, Relay, RelayConfig, WebhookEndpoint, WebhookStore, WebhookTransport};
use ledger_core::{
    AccountId, Clock, Currency, EventKind, Ledger, ManualClock, MemoryStore, Role, SequentialIds, Timestamp, User,
    UserId, UserStore,
};

/// One request as the receiver saw it: URL, headers, body.
type Seen = (String, Vec<(&'static str, String)>, String);

/// Answers per URL from a script (the last answer repeats); records every request.
#[derive(Default)]
struct Receiver {
    answers: Mutex<HashMap<String, Vec<Result<u16, String>>>>,
    seen: Mutex<Vec<Seen>>,
}

#[async_trait]
impl WebhookTransport for Receiver {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String> {
        self.seen.lock().unwrap().push((url.to_owned(), headers.to_vec(), body.to_owned()));
        let mut answers = self.answers.lock().unwrap();
        let script = answers.entry(url.to_owned()).or_insert_with(|| vec![Ok(200)]);
        if script.len() > 1 { script.remove(0) } else { script[0].clone() }
    }
}

/// -1 modulo 1001, 2001 and 4001 (pairwise coprime): full jitter over ceilings of 1, 2 and 4 s
/// (in ms, `random % (ceiling + 1)`) then picks each ceiling exactly.
const JITTER: u64 = 1_001 * 2_001 * 4_001 - 1;

struct World {
    ledger: Ledger<MemoryStore>,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    receiver: Arc<Receiver>,
    relay: Relay<MemoryStore, Receiver>,
    owner: UserId,
    account: AccountId,
}

async fn world(config: RelayConfig) -> World {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_800_000_000)));
    let ids = Arc::new(SequentialIds::default());
    let store = Arc::new(MemoryStore::new());
    let ledger = Ledger::new(store.clone(), clock.clone(), ids.clone());
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner = store
        .create_user(User {
            id: ledger.new_id(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            password_hash: "x".into(),
            role: Role::User,
            created_at: clock.now(),
        })
        .await
        .unwrap()
        .id;
    let account = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    let receiver = Arc::new(Receiver::default());
    let relay = Relay::new(store.clone(), receiver.clone(), clock.clone(), ids, config);
    World { ledger, clock, store, receiver, relay, owner, account }
}

impl World {
    async fn endpoint(&self, url: &str) -> WebhookEndpoint {
        let endpoint = WebhookEndpoint {
            id: self.ledger.new_id(),
            owner: self.owner,
            url: url.to_owned(),
            events: vec![EventKind::DepositCredited],
            secret: format!("secret-of-{url}"),
            created_at: self.clock.now(),
        };
        self.store.create_endpoint(endpoint).await.unwrap()
    }

    async fn deposit(&self) {
        self.ledger.deposit(self.account, Currency::USD.parse_amount("5").unwrap(), None).await.unwrap();
    }

    /// One relay pass with jitter `JITTER`.
    async fn pass(&self) -> ledger_core::webhook::RelayReport {
        self.relay.run_once(&mut || JITTER).await.unwrap()
    }
}

#[test]
fn a_delivery_is_signed_with_the_endpoints_secret() {
    pollster::block_on(async {
        let w = world(RelayConfig::default()).await;
        let endpoint = w.endpoint("https://a.example/hook").await;
        w.deposit().await;
        let report = w.pass().await;
        assert_eq!((report.fanned_out, report.claimed, report.delivered), (1, 1, 1), "{report:?}");
        let seen = w.receiver.seen.lock().unwrap().clone();
        let (url, headers, body) = &seen[0];
        assert_eq!(url, &endpoint.url);
        let header = |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap();
        signature::verify(
            endpoint.secret.as_bytes(),
            &header("x-signature"),
            body.as_bytes(),
            w.clock.now().as_unix_secs(),
        )
        .expect("the receiver can verify it");
        assert!(
            signature::verify(b"wrong", &header("x-signature"), body.as_bytes(), w.clock.now().as_unix_secs()).is_err()
        );
        assert_eq!(header("x-ledger-event"), "deposit.credited");
        assert!(body.contains("\"type\":\"deposit.credited\"") && body.contains(&w.account.to_string()), "{body}");
        let log = w.store.deliveries(endpoint.id, &PageRequest::first(10)).await.unwrap().items;
        assert_eq!(log[0].state, DeliveryState::Delivered);
        assert_eq!(log[0].attempts[0].status_code, Some(200));
        assert_eq!(header("x-ledger-delivery"), log[0].id.to_string());
    });
}

#[test]
fn failures_retry_with_growing_delays_then_dead_letter() {
    pollster::block_on(async {
        let config = RelayConfig {
            attempts_max: 4,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            ..RelayConfig::default()
        };
        let w = world(config).await;
        let endpoint = w.endpoint("http://down.example/").await;
        w.receiver.answers.lock().unwrap().insert(endpoint.url.clone(), vec![Err("connection refused".into())]);
        w.deposit().await;
        let mut delays = Vec::new();
        for attempt in 1..=4 {
            let report = w.pass().await;
            assert_eq!(report.claimed, 1, "attempt {attempt}: {report:?}");
            let log = w.store.deliveries(endpoint.id, &PageRequest::first(10)).await.unwrap().items;
            assert_eq!(log[0].attempts.len(), attempt);
            if attempt < 4 {
                assert_eq!(report.retried, 1);
                let due = log[0].next_attempt_at.expect("pending");
                delays.push(due.as_unix_micros() - w.clock.now().as_unix_micros());
                assert_eq!(w.pass().await.claimed, 0, "not before it is due");
                w.clock.set(due);
            } else {
                assert_eq!(report.dead_lettered, 1);
                assert_eq!(log[0].state, DeliveryState::DeadLettered);
                assert_eq!(log[0].attempts[3].error.as_deref(), Some("connection refused"));
            }
        }
        // Each delay is its ceiling: 1 s, 2 s, 4 s, doubling.
        assert_eq!(delays, vec![1_000_000, 2_000_000, 4_000_000]);
        w.clock.advance(Duration::from_secs(3_600));
        assert_eq!(w.pass().await.claimed, 0, "a dead letter is never sent again");
    });
}

#[test]
fn a_failing_endpoint_does_not_hold_up_another() {
    pollster::block_on(async {
        let config = RelayConfig { batch: 4, per_endpoint: 1, ..RelayConfig::default() };
        let w = world(config).await;
        let slow = w.endpoint("http://slow.example/").await;
        let fine = w.endpoint("http://fine.example/").await;
        w.receiver.answers.lock().unwrap().insert(slow.url.clone(), vec![Err("timed out".into())]);
        for _ in 0..3 {
            w.deposit().await;
        }
        // Each pass takes at most one of the slow endpoint's deliveries and one of the other's.
        for _ in 0..3 {
            let report = w.pass().await;
            assert_eq!(report.delivered, 1, "{report:?}");
        }
        let fine_log = w.store.deliveries(fine.id, &PageRequest::first(10)).await.unwrap().items;
        assert!(fine_log.iter().all(|d| d.state == DeliveryState::Delivered), "{fine_log:?}");
        let slow_log = w.store.deliveries(slow.id, &PageRequest::first(10)).await.unwrap().items;
        assert!(slow_log.iter().all(|d| d.state == DeliveryState::Pending), "{slow_log:?}");
        assert_eq!(w.relay.totals().delivered.load(std::sync::atomic::Ordering::Relaxed), 3);
    });
}
