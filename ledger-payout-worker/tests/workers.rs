//! Real worker processes on a real PostgreSQL: several workers share the queue without ever
//! paying twice, a worker killed while the bank's answer is in flight loses nothing, the breaker
//! holds items while the bank is down, and the whole stack (service plus two workers, one killed)
//! completes payouts made through the API and delivers their webhooks.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::ports::Submission;
use ledger_core::recon::reconcile;
use ledger_core::{
    AccountKind, Command as LedgerCommand, CreatePayout, Currency, Ledger, PayoutDirection, PayoutId, UserId,
};
use ledger_store_pg::PgStore;
use ledger_store_pg::system::{SystemClock, UuidV7};
use ledger_store_pg::testing::{TestDatabase, fresh_database};

fn worker(database: &TestDatabase, settings: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger-payout-worker"));
    command.env("DATABASE_URL", &database.url).env("RUST_LOG", "warn").env("LEDGER_SIM_SHARED", "true");
    for (key, value) in settings {
        command.env(key, value);
    }
    command.stdout(std::process::Stdio::null()).spawn().expect("the worker starts")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("the worker exits");
    assert!(status.success(), "a clean stop after SIGTERM: {status}");
}

/// A ledger with one customer holding 10,000.00 USD, and `count` payouts of 1.00 from it.
async fn payouts(database: &TestDatabase, count: usize) -> (Ledger<PgStore>, Vec<PayoutId>) {
    let ledger = Ledger::new(Arc::new(database.store()), Arc::new(SystemClock), Arc::new(UuidV7));
    ledger.open_system_accounts(Currency::USD).await.unwrap();
    let owner: UserId = ledger.new_id();
    let account = ledger.open_customer_account(owner, Currency::USD).await.unwrap().id;
    ledger.deposit(account, Currency::USD.parse_amount("10000").unwrap(), None).await.unwrap();
    let clearing = ledger.system_account(AccountKind::PayoutClearing, Currency::USD).await.unwrap();
    let settlement = ledger.system_account(AccountKind::Settlement, Currency::USD).await.unwrap();
    let mut ids = Vec::with_capacity(count);
    let batch: Vec<Submission> = (0..count)
        .map(|_| {
            let payout_id: PayoutId = ledger.new_id();
            ids.push(payout_id);
            Submission::from(LedgerCommand::CreatePayout(CreatePayout {
                payout_id,
                entry_id: ledger.new_id(),
                direction: PayoutDirection::Outbound,
                account,
                clearing,
                settlement,
                amount: Currency::USD.parse_amount("1").unwrap(),
                currency: Currency::USD,
                bank_account: None,
                reference: None,
            }))
        })
        .collect();
    let outcomes = ledger_core::LedgerStore::execute(ledger.store().as_ref(), &batch, ledger.now()).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    // The shared bank's tables exist before any worker or query needs them.
    ledger_store_pg::system::SimulatedBank::shared(Default::default(), database.pool.clone()).await.unwrap();
    (ledger, ids)
}

async fn statuses(database: &TestDatabase) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM payouts GROUP BY status").fetch_all(&database.pool).await.unwrap();
    rows.into_iter().collect()
}

/// Waits (bounded) until no payout is PENDING or PROCESSING.
async fn drained(database: &TestDatabase) -> HashMap<String, i64> {
    for _ in 0..1_200 {
        let now = statuses(database).await;
        if !now.contains_key("PENDING") && !now.contains_key("PROCESSING") {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payouts still in flight: {:?}", statuses(database).await);
}

async fn count(database: &TestDatabase, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&database.pool).await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_drive_500_payouts_and_pay_each_at_most_once() {
    let database = fresh_database().await.expect("a test database");
    let (ledger, _) = payouts(&database, 500).await;
    let settings = [
        ("LEDGER_WORKER_CONCURRENCY", "4"),
        ("LEDGER_WORKER_POLL_MS", "20"),
        ("LEDGER_WORKER_ATTEMPTS_MAX", "3"),
        ("LEDGER_WORKER_BACKOFF_BASE_MS", "10"),
        ("LEDGER_WORKER_BACKOFF_CAP_MS", "50"),
        ("LEDGER_WORKER_BREAKER_FAILURES", "1000"),
        ("LEDGER_SIM_SUCCESS_PERCENT", "80"),
        ("LEDGER_SIM_LATENCY_MIN_MS", "0"),
        ("LEDGER_SIM_LATENCY_MAX_MS", "5"),
    ];
    let workers: Vec<Child> = (0..3).map(|_| worker(&database, &settings)).collect();
    let outcome = drained(&database).await;
    for child in workers {
        stop(child);
    }
    let terminal: i64 =
        ["COMPLETED", "FAILED", "MANUAL_REVIEW"].iter().map(|s| outcome.get(*s).copied().unwrap_or(0)).sum();
    assert_eq!(terminal, 500, "{outcome:?}");
    assert!(outcome.get("COMPLETED").copied().unwrap_or(0) > 300, "{outcome:?}");
    // Every completed payout was paid, exactly once; no failed payout was paid.
    let completed_paid = count(
        &database,
        "SELECT count(*) FROM payouts p JOIN bank_simulator.payments b ON b.payout_id = p.id WHERE p.status = 'COMPLETED'",
    )
    .await;
    assert_eq!(completed_paid, outcome["COMPLETED"]);
    let failed_paid = count(
        &database,
        "SELECT count(*) FROM payouts p JOIN bank_simulator.payments b ON b.payout_id = p.id WHERE p.status = 'FAILED'",
    )
    .await;
    assert_eq!(failed_paid, 0);
    let payments = count(&database, "SELECT count(*) FROM bank_simulator.payments").await;
    let distinct = count(&database, "SELECT count(DISTINCT payout_id) FROM bank_simulator.payments").await;
    assert_eq!(payments, distinct);
    // The books balance, and clearing holds exactly what manual review still holds.
    let discrepancies = reconcile(&ledger.store().snapshot().await.unwrap());
    assert!(discrepancies.is_empty(), "{discrepancies:?}");
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_the_bank_answers_loses_nothing_and_pays_once() {
    let database = fresh_database().await.expect("a test database");
    let (ledger, ids) = payouts(&database, 1).await;
    let id = ids[0];
    // The bank pays at once but its answer takes 30 s to come back; the lease is 2 s.
    let slow = worker(
        &database,
        &[
            ("LEDGER_WORKER_CONCURRENCY", "1"),
            ("LEDGER_WORKER_POLL_MS", "20"),
            ("LEDGER_WORKER_LEASE_SECS", "2"),
            ("LEDGER_SIM_SUCCESS_PERCENT", "100"),
            ("LEDGER_SIM_LATENCY_MIN_MS", "30000"),
            ("LEDGER_SIM_LATENCY_MAX_MS", "30000"),
        ],
    );
    for _ in 0..300 {
        if count(&database, "SELECT count(*) FROM bank_simulator.payments").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&database, "SELECT count(*) FROM bank_simulator.payments").await, 1, "the bank has paid");
    let mut slow = slow;
    slow.kill().expect("SIGKILL");
    let _ = slow.wait();
    assert_eq!(statuses(&database).await.get("PROCESSING"), Some(&1), "the dead worker left it in flight");
    // A healthy worker takes it again once the lease ends, and the bank answers with the first receipt.
    let healthy = worker(
        &database,
        &[
            ("LEDGER_WORKER_CONCURRENCY", "1"),
            ("LEDGER_WORKER_POLL_MS", "20"),
            ("LEDGER_SIM_SUCCESS_PERCENT", "100"),
            ("LEDGER_SIM_LATENCY_MIN_MS", "0"),
            ("LEDGER_SIM_LATENCY_MAX_MS", "0"),
        ],
    );
    let outcome = drained(&database).await;
    stop(healthy);
    assert_eq!(outcome.get("COMPLETED"), Some(&1), "{outcome:?}");
    assert_eq!(count(&database, "SELECT count(*) FROM bank_simulator.payments").await, 1, "paid once");
    assert!(count(&database, "SELECT count(*) FROM bank_simulator.calls").await >= 2, "the bank was asked again");
    let attempts: (i32,) = sqlx::query_as("SELECT attempts FROM payouts WHERE id = $1")
        .bind(id.0)
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert_eq!(attempts.0, 2);
    assert!(reconcile(&ledger.store().snapshot().await.unwrap()).is_empty());
    database.drop_database().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn metrics(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            return response.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker never served metrics on {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_holds_items_while_the_bank_is_down_and_they_complete_when_it_heals() {
    let database = fresh_database().await.expect("a test database");
    let (ledger, ids) = payouts(&database, 20).await;
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let fast = [
        ("LEDGER_WORKER_CONCURRENCY", "1"),
        ("LEDGER_WORKER_POLL_MS", "10"),
        ("LEDGER_WORKER_BACKOFF_BASE_MS", "1"),
        ("LEDGER_WORKER_BACKOFF_CAP_MS", "2"),
        ("LEDGER_SIM_LATENCY_MIN_MS", "0"),
        ("LEDGER_SIM_LATENCY_MAX_MS", "0"),
        ("LEDGER_WEBHOOK_CONCURRENCY", "0"),
    ];
    let mut down_settings = fast.to_vec();
    down_settings.extend([
        ("LEDGER_SIM_SUCCESS_PERCENT", "0"),
        ("LEDGER_SIM_FAILURE", "unavailable"),
        ("LEDGER_WORKER_BREAKER_FAILURES", "3"),
        ("LEDGER_WORKER_BREAKER_COOLDOWN_SECS", "3600"),
        ("LEDGER_WORKER_METRICS_ADDR", &metrics_addr),
    ]);
    let down = worker(&database, &down_settings);
    let mut text = String::new();
    for _ in 0..200 {
        text = metrics(port).await;
        if text.contains("ledger_worker_breaker_state 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains("ledger_worker_breaker_state 2"), "the breaker opened: {text}");
    // Open, it lets nothing through: items wait rather than burn their retries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = metrics(port).await;
    assert_eq!(count(&database, "SELECT count(*) FROM payout_attempts").await, 3, "three calls opened it");
    assert!(text.contains("ledger_payout_queue_depth 20"), "{text}");
    assert!(text.contains("ledger_worker_payouts_total{outcome=\"retried\"}"), "{text}");
    let now = statuses(&database).await;
    assert!(!now.contains_key("MANUAL_REVIEW") && !now.contains_key("FAILED"), "nothing gave up: {now:?}");
    stop(down);
    // The bank heals (a worker that reaches a working bank): everything completes, each paid once.
    let mut healed_settings = fast.to_vec();
    healed_settings.push(("LEDGER_SIM_SUCCESS_PERCENT", "100"));
    let healed = worker(&database, &healed_settings);
    let outcome = drained(&database).await;
    stop(healed);
    assert_eq!(outcome.get("COMPLETED"), Some(&20), "{outcome:?}");
    assert_eq!(count(&database, "SELECT count(*) FROM bank_simulator.payments").await, 20);
    assert_eq!(ids.len(), 20);
    assert!(reconcile(&ledger.store().snapshot().await.unwrap()).is_empty());
    database.drop_database().await;
}

/// The whole stack as an operator runs it: the service on PostgreSQL without in-process work, two
/// worker processes, payouts created through the API. One worker is SIGKILLed mid-way; half the
/// bank's calls time out, so those payouts wait in manual review until an admin resolves them
/// through the API. Every payout ends terminal with the right balance, none is paid twice, and
/// the user's webhook endpoint receives each status change, signed, from the workers' relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_through_the_api_with_two_workers_and_a_kill() {
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    let database = fresh_database().await.expect("a test database");
    ledger_store_pg::system::SimulatedBank::shared(Default::default(), database.pool.clone()).await.unwrap();
    let mut config = ledger_http::Config::defaults();
    config.listen = "127.0.0.1:0".into();
    config.database_url = Some(database.url.clone());
    config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes-long".into());
    config.webhook_secret = Some("bank-secret".into());
    config.admin_username = Some("root".into());
    config.admin_password = Some("root-password-long-enough".into());
    config.webhook_allow_private = true;
    config.rate_writes_per_second = 1_000;
    config.rate_reads_per_second = 1_000;
    let service = ledger_http::start(config).await.expect("the service starts");
    let base = service.url();
    let client = reqwest::Client::new();
    let call =
        async |method: reqwest::Method, path: &str, token: Option<&str>, key: Option<&str>, body: Option<Value>| {
            let mut request = client.request(method, format!("{base}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let user = json!({"username": "uma", "email": "uma@example.com", "password": "a long enough password"});
    assert_eq!(call(post.clone(), "/v1/users", None, None, Some(user)).await.0, StatusCode::CREATED);
    let login = |name: &str, password: &str| json!({"username": name, "password": password});
    let (_, body) =
        call(post.clone(), "/v1/auth/login", None, None, Some(login("uma", "a long enough password"))).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, body) =
        call(post.clone(), "/v1/auth/login", None, None, Some(login("root", "root-password-long-enough"))).await;
    let root = body["token"].as_str().unwrap().to_owned();
    let (status, account) =
        call(post.clone(), "/v1/accounts", Some(&token), None, Some(json!({"currency": "USD"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account = account["id"].as_str().unwrap().to_owned();
    // Funded by the bank's signed deposit webhook.
    let event =
        serde_json::to_vec(&json!({"event_id": "funding-1", "account_id": account, "amount_micros": 100_000_000,
                                           "currency": "USD", "occurred_at": "2026-11-22T10:00:00Z"}))
        .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let funded = client
        .post(format!("{base}/v1/webhooks/deposit"))
        .header("X-Signature", ledger_core::signature::sign(b"bank-secret", now, &event))
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), StatusCode::OK);
    // A webhook receiver for the payouts' status changes.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let record = seen.clone();
    let receiver = poem::endpoint::make(move |request: poem::Request| {
        let record = record.clone();
        async move {
            let signature = request.header("x-signature").unwrap_or_default().to_owned();
            let body = request.into_body().into_vec().await.unwrap_or_default();
            record.lock().unwrap().push((signature, body));
            poem::http::StatusCode::OK
        }
    });
    let hook_port = free_port();
    tokio::spawn(poem::Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{hook_port}"))).run(receiver));
    let hook = json!({"url": format!("http://127.0.0.1:{hook_port}/hook"), "events": ["payout.status_changed"]});
    let (status, endpoint) = call(post.clone(), "/v1/webhook-endpoints", Some(&token), None, Some(hook)).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    let settings = [
        ("LEDGER_WORKER_CONCURRENCY", "2"),
        ("LEDGER_WORKER_POLL_MS", "20"),
        ("LEDGER_WORKER_LEASE_SECS", "2"),
        ("LEDGER_SIM_SUCCESS_PERCENT", "50"),
        ("LEDGER_SIM_FAILURE", "timeout"),
        ("LEDGER_SIM_LATENCY_MIN_MS", "50"),
        ("LEDGER_SIM_LATENCY_MAX_MS", "300"),
        ("LEDGER_WEBHOOK_BACKOFF_BASE_MS", "10"),
        ("LEDGER_WEBHOOK_BACKOFF_CAP_MS", "50"),
    ];
    let doomed = worker(&database, &settings);
    let steady = worker(&database, &settings);
    let mut ids = Vec::new();
    for n in 0..20 {
        let request = json!({"account_id": account, "amount_micros": 1_000_000, "currency": "USD",
                             "destination": {"iban": "GB33BUKB20201555555555", "name": "Uma"}});
        let key = format!("payout-{n}");
        let (status, body) = call(post.clone(), "/v1/payouts", Some(&token), Some(&key), Some(request)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["payout_id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut doomed = doomed;
    doomed.kill().expect("SIGKILL");
    let _ = doomed.wait();
    let outcome = drained(&database).await;
    assert_eq!(outcome.values().sum::<i64>(), 20, "{outcome:?}");
    // Timeouts wait for a human; the admin resolves them through the API (say the bank paid).
    let (_, queue) = call(get.clone(), "/v1/payouts/manual-review?limit=200", Some(&root), None, None).await;
    let reviews: Vec<String> =
        queue["items"].as_array().unwrap().iter().map(|p| p["payout_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reviews.len() as i64, outcome.get("MANUAL_REVIEW").copied().unwrap_or(0), "{queue}");
    for id in &reviews {
        let resolve = json!({"resolution": "complete", "note": "the bank statement shows it paid"});
        let path = format!("/v1/payouts/{id}/resolve");
        let (status, body) = call(post.clone(), &path, Some(&root), Some(&format!("res-{id}")), Some(resolve)).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("COMPLETED")), "{body}");
    }
    let completed = statuses(&database).await;
    assert_eq!(completed.get("COMPLETED"), Some(&20), "{completed:?}");
    let (_, balance) = call(get.clone(), &format!("/v1/accounts/{account}/balance"), Some(&token), None, None).await;
    assert_eq!(
        (balance["posted_micros"].as_i64(), balance["available_micros"].as_i64()),
        (Some(80_000_000), Some(80_000_000))
    );
    let paid = count(&database, "SELECT count(*) FROM bank_simulator.payments").await;
    assert!(paid <= 20, "the bank paid at most once per payout: {paid}");
    // Every status change (PENDING, PROCESSING, then COMPLETED or MANUAL_REVIEW -> COMPLETED) reaches the receiver.
    let changes = count(&database, "SELECT count(*) FROM payout_status_history").await;
    let distinct = |seen: &[(String, Vec<u8>)]| {
        let ids: std::collections::HashSet<i64> =
            seen.iter().filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok()?["id"].as_i64()).collect();
        ids.len() as i64
    };
    // Delivery is at least once (the killed worker's sends may repeat), so count distinct events.
    for _ in 0..400 {
        if distinct(&seen.lock().unwrap()) >= changes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(steady);
    let seen = seen.lock().unwrap().clone();
    let mut event_ids = std::collections::HashSet::new();
    for (signature, body) in &seen {
        ledger_core::signature::verify(secret.as_bytes(), signature, body, now)
            .expect("signed with the endpoint's secret");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["type"], json!("payout.status_changed"));
        assert!(ids.iter().any(|id| event["data"]["payout_id"] == json!(id)), "{event}");
        event_ids.insert(event["id"].as_i64().unwrap());
    }
    assert_eq!(event_ids.len() as i64, changes, "one event per status change, each delivered at least once");
    let store = database.store();
    assert!(reconcile(&store.snapshot().await.unwrap()).is_empty());
    service.stop().await.unwrap();
    database.drop_database().await;
}
