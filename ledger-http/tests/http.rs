//! The real server, started on port 0, spoken to over HTTP: every scenario runs on the in-memory
//! store and on PostgreSQL.

use std::time::Duration;

use futures_util::future::join_all;
use ledger_http::api::webhooks::sign;
use ledger_http::{Config, Running};
use ledger_store_pg::testing::{TestDatabase, fresh_database};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
const WEBHOOK_SECRET: &str = "whsec-test";

struct Server {
    running: Running,
    client: Client,
    database: Option<TestDatabase>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Postgres,
}

async fn server(backend: Backend) -> Server {
    server_with(backend, |_| {}).await
}

async fn server_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Server {
    let database = match backend {
        Backend::Memory => None,
        Backend::Postgres => Some(fresh_database().await.expect("a test database")),
    };
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".into();
    config.database_url = database.as_ref().map(|d| d.url.clone());
    config.redis_url = None;
    config.jwt_secret = Some(JWT_SECRET.into());
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.admin_username = Some("root".into());
    config.admin_password = Some("root-password-long-enough".into());
    config.body_limit_bytes = 16 * 1024;
    config.rate_login_per_minute = 1_000;
    config.rate_reads_per_second = 1_000;
    config.rate_writes_per_second = 1_000;
    // Scenarios that expect payouts to stay PENDING run without the in-process pipeline.
    config.worker_concurrency = 0;
    adjust(&mut config);
    let running = ledger_http::start(config).await.expect("the service starts");
    Server { running, client: Client::new(), database }
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.running.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            // Every error is problem+json with the request id.
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert_eq!(content_type, "application/problem+json", "{path}: {status} {body}");
            assert_eq!(body["status"], json!(status.as_u16()), "{body}");
            assert!(body["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{body}");
            // A replay carries the first request's id in its body, by design.
            if !headers.contains_key("idempotent-replayed") {
                assert_eq!(body["request_id"].as_str(), headers.get("x-request-id").and_then(|v| v.to_str().ok()));
            }
        }
        assert!(headers.contains_key("x-request-id"));
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), None, Some(body)).await
    }

    async fn register(&self, username: &str) -> String {
        let body = json!({"username": username, "email": format!("{username}@example.com"), "password": "a long enough password"});
        let reply = self.call(Method::POST, "/v1/users", None, None, Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        self.login(username, "a long enough password").await
    }

    async fn login_attempt(&self, username: &str, password: &str) -> Reply {
        let body = json!({"username": username, "password": password});
        self.call(Method::POST, "/v1/auth/login", None, None, Some(body)).await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let reply = self.login_attempt(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    async fn open_account(&self, token: &str, currency: &str) -> String {
        let reply = self.post("/v1/accounts", token, json!({"currency": currency})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn webhook(&self, body: &Value, signature: Option<String>) -> Reply {
        let raw = serde_json::to_vec(body).unwrap();
        let now = chrono::Utc::now().timestamp();
        let signature = signature.unwrap_or_else(|| sign(WEBHOOK_SECRET.as_bytes(), now, &raw));
        let response = self
            .client
            .post(format!("{}/v1/webhooks/deposit", self.running.url()))
            .header("X-Signature", signature)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    async fn fund(&self, account: &str, amount_micros: i64) {
        let event = json!({
            "event_id": uuid::Uuid::now_v7().to_string(), "account_id": account,
            "amount_micros": amount_micros, "currency": "USD", "occurred_at": "2026-11-22T10:00:00Z"
        });
        let reply = self.webhook(&event, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    async fn posted(&self, token: &str, account: &str) -> i64 {
        let reply = self.get(&format!("/v1/accounts/{account}/balance"), token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["posted_micros"].as_i64().unwrap()
    }

    async fn transfer(&self, token: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, "/v1/transfers/internal", Some(token), Some(key), Some(body)).await
    }

    async fn stop(self) {
        self.running.stop().await.expect("a clean stop");
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let server = super::server(super::Backend::Memory).await;
                    super::$scenario(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let server = super::server(super::Backend::Postgres).await;
                    super::$scenario(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

on_both_backends!(
    users_register_and_log_in,
    bad_tokens_are_refused,
    accounts_belong_to_their_owner,
    deposit_webhook_credits_each_event_once,
    transfers_move_money_once_per_key,
    concurrent_requests_with_one_key_move_money_once,
    errors_are_problem_documents,
    service_endpoints_answer,
    exchanges_use_quotes_and_round_toward_the_house,
    holds_reserve_then_capture_or_void,
    admins_reverse_a_transaction_once,
    payouts_hold_funds_at_once_and_cancel_releases_them,
);

async fn users_register_and_log_in(s: &Server) {
    let token = s.register("alice").await;
    let me = s.get("/v1/users/me", &token).await;
    assert_eq!(
        (me.status, me.body["username"].as_str(), me.body["role"].as_str()),
        (StatusCode::OK, Some("alice"), Some("user"))
    );
    assert!(me.body.get("password_hash").is_none());
    let again = json!({"username": "alice", "email": "other@example.com", "password": "a long enough password"});
    assert_eq!(s.call(Method::POST, "/v1/users", None, None, Some(again)).await.status, StatusCode::CONFLICT);
    let short = json!({"username": "bob", "email": "bob@example.com", "password": "short"});
    let reply = s.call(Method::POST, "/v1/users", None, None, Some(short)).await;
    assert_eq!((reply.status, reply.body["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("password")));
    // A wrong password and an unknown user get the same answer.
    let wrong = s.login_attempt("alice", "not the password").await;
    let unknown = s.login_attempt("nobody", "not the password").await;
    assert_eq!((wrong.status, unknown.status), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    // Only an admin changes roles, and the configured admin exists.
    let me_id = me.body["id"].as_str().unwrap();
    let promote = s.post(&format!("/v1/admin/users/{me_id}/role"), &token, json!({"role": "admin"})).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let root = s.login("root", "root-password-long-enough").await;
    let promote = s.post(&format!("/v1/admin/users/{me_id}/role"), &root, json!({"role": "admin"})).await;
    assert_eq!((promote.status, promote.body["role"].as_str()), (StatusCode::OK, Some("admin")));
}

fn forged(claims: Value, secret: &[u8], algorithm: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn bad_tokens_are_refused(s: &Server) {
    let token = s.register("carol").await;
    let me = s.get("/v1/users/me", &token).await;
    let sub = me.body["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| json!({"iss": iss, "aud": aud, "sub": sub, "role": "admin", "iat": now, "exp": exp});
    let secret = JWT_SECRET.as_bytes();
    let unsigned = {
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let payload = serde_json::to_vec(&claims("ledger", "ledger-api", now + 600)).unwrap();
        use base64_url_free as b64;
        format!("{header}.{}.", b64::encode(&payload))
    };
    let bad = [
        (
            "wrong signature",
            forged(
                claims("ledger", "ledger-api", now + 600),
                b"another-secret-of-at-least-32-bytes!!",
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        ("wrong algorithm", forged(claims("ledger", "ledger-api", now + 600), secret, jsonwebtoken::Algorithm::HS512)),
        ("alg none", unsigned),
        (
            "wrong issuer",
            forged(claims("someone-else", "ledger-api", now + 600), secret, jsonwebtoken::Algorithm::HS256),
        ),
        ("wrong audience", forged(claims("ledger", "another-api", now + 600), secret, jsonwebtoken::Algorithm::HS256)),
        ("expired", forged(claims("ledger", "ledger-api", now - 1), secret, jsonwebtoken::Algorithm::HS256)),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (why, token) in bad {
        let reply = s.get("/v1/users/me", &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{why}: {}", reply.body);
    }
    let none = s.call(Method::GET, "/v1/users/me", None, None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    // A correctly signed token still works.
    let good = forged(claims("ledger", "ledger-api", now + 600), secret, jsonwebtoken::Algorithm::HS256);
    assert_eq!(s.get("/v1/users/me", &good).await.status, StatusCode::OK);
}

/// A tiny URL-safe base64 encoder for the unsigned-token case (no padding).
mod base64_url_free {
    pub(super) fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

async fn accounts_belong_to_their_owner(s: &Server) {
    let alice = s.register("alice").await;
    let mallory = s.register("mallory").await;
    let account = s.open_account(&alice, "USD").await;
    let theirs = s.open_account(&mallory, "USD").await;
    s.fund(&account, 10_000_000).await;
    let listed = s.get("/v1/accounts", &alice).await;
    let ids: Vec<_> =
        listed.body["items"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, std::slice::from_ref(&account));
    for path in [
        format!("/v1/accounts/{account}"),
        format!("/v1/accounts/{account}/balance"),
        format!("/v1/accounts/{account}/statement"),
    ] {
        assert_eq!(s.get(&path, &mallory).await.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(s.get(&path, &alice).await.status, StatusCode::OK, "{path}");
    }
    // Mallory cannot move Alice's money, and learns nothing about it.
    let steal = json!({"from_account_id": account, "to_account_id": theirs, "amount_micros": 1});
    assert_eq!(s.transfer(&mallory, "steal-1", steal).await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.posted(&alice, &account).await, 10_000_000);
    // Statement and point-in-time balance.
    let before = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let pay = json!({"from_account_id": account, "to_account_id": theirs, "amount_micros": 2_500_000});
    assert_eq!(s.transfer(&alice, "pay-1", pay).await.status, StatusCode::CREATED);
    let statement = s.get(&format!("/v1/accounts/{account}/statement"), &alice).await;
    let lines = statement.body["items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["amount_micros"].as_i64(), lines[0]["balance_after_micros"].as_i64()),
        (Some(-2_500_000), Some(7_500_000))
    );
    assert_eq!(lines[0]["counterparty_account_id"].as_str(), Some(theirs.as_str()));
    let at = before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let then = s.get(&format!("/v1/accounts/{account}/balance?at={}", at.replace('+', "%2B")), &alice).await;
    assert_eq!((then.status, then.body["posted_micros"].as_i64()), (StatusCode::OK, Some(10_000_000)), "{}", then.body);
    // Pagination: limit out of range, then pages of one.
    assert_eq!(
        s.get(&format!("/v1/accounts/{account}/statement?limit=0"), &alice).await.status,
        StatusCode::BAD_REQUEST
    );
    let first = s.get(&format!("/v1/accounts/{account}/statement?limit=1"), &alice).await;
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_owned();
    let second = s.get(&format!("/v1/accounts/{account}/statement?limit=1&cursor={cursor}"), &alice).await;
    assert_eq!(second.body["items"][0]["amount_micros"].as_i64(), Some(10_000_000));
    assert!(second.body["next_cursor"].is_null());
}

async fn deposit_webhook_credits_each_event_once(s: &Server) {
    let token = s.register("dave").await;
    let account = s.open_account(&token, "USD").await;
    let event = json!({"event_id": "evt-1", "account_id": account, "amount_micros": 5_000_000, "currency": "USD", "occurred_at": "2026-11-22T10:00:00Z"});
    let first = s.webhook(&event, None).await;
    assert_eq!((first.status, first.body["status"].as_str()), (StatusCode::OK, Some("credited")), "{}", first.body);
    let again = s.webhook(&event, None).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &first.body));
    assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(s.posted(&token, &account).await, 5_000_000, "credited once");
    // Bad and stale signatures are refused and change nothing.
    let raw = serde_json::to_vec(&event).unwrap();
    let now = chrono::Utc::now().timestamp();
    let other = json!({"event_id": "evt-2", "account_id": account, "amount_micros": 1_000_000, "currency": "USD", "occurred_at": "2026-11-22T10:00:00Z"});
    for signature in [
        sign(b"not the secret", now, &serde_json::to_vec(&other).unwrap()),
        sign(WEBHOOK_SECRET.as_bytes(), now - 301, &serde_json::to_vec(&other).unwrap()),
        sign(WEBHOOK_SECRET.as_bytes(), now, &raw),
        "t=1,v1=zz".to_owned(),
    ] {
        let reply = s.webhook(&other, Some(signature)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let wrong_currency = json!({"event_id": "evt-3", "account_id": account, "amount_micros": 1_000_000, "currency": "EUR", "occurred_at": "2026-11-22T10:00:00Z"});
    assert_eq!(s.webhook(&wrong_currency, None).await.status, StatusCode::BAD_REQUEST);
    let sub_cent = json!({"event_id": "evt-4", "account_id": account, "amount_micros": 1_000_001, "currency": "USD", "occurred_at": "2026-11-22T10:00:00Z"});
    assert_eq!(s.webhook(&sub_cent, None).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.posted(&token, &account).await, 5_000_000);
}

async fn transfers_move_money_once_per_key(s: &Server) {
    let token = s.register("erin").await;
    let from = s.open_account(&token, "USD").await;
    let to = s.open_account(&token, "USD").await;
    let euros = s.open_account(&token, "EUR").await;
    s.fund(&from, 100_000_000).await;
    let body =
        json!({"from_account_id": from, "to_account_id": to, "amount_micros": 40_000_000, "description": "rent"});
    let first = s.transfer(&token, "t-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let postings = first.body["postings"].as_array().unwrap();
    assert_eq!(postings.iter().map(|p| p["amount_micros"].as_i64().unwrap()).sum::<i64>(), 0);
    let replay = s.transfer(&token, "t-1", body.clone()).await;
    assert_eq!((replay.status, &replay.body), (StatusCode::CREATED, &first.body));
    assert_eq!(replay.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let different = json!({"from_account_id": from, "to_account_id": to, "amount_micros": 1});
    assert_eq!(s.transfer(&token, "t-1", different).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((s.posted(&token, &from).await, s.posted(&token, &to).await), (60_000_000, 40_000_000));
    // Insufficient funds: 422 with its problem type, replayed as such.
    let too_much = json!({"from_account_id": from, "to_account_id": to, "amount_micros": 60_000_001});
    let refused = s.transfer(&token, "t-2", too_much.clone()).await;
    assert_eq!(
        (refused.status, refused.body["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/insufficient-funds"))
    );
    assert_eq!(s.transfer(&token, "t-2", too_much).await.body, refused.body);
    let cross = json!({"from_account_id": from, "to_account_id": euros, "amount_micros": 1});
    let reply = s.transfer(&token, "t-3", cross).await;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/currency-mismatch"))
    );
    // The key is required, and must be printable.
    let plain = json!({"from_account_id": from, "to_account_id": to, "amount_micros": 1});
    assert_eq!(
        s.call(Method::POST, "/v1/transfers/internal", Some(&token), None, Some(plain.clone())).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(s.transfer(&token, &"k".repeat(256), plain).await.status, StatusCode::BAD_REQUEST);
    // The transaction can be read back by its party, not by others.
    let id = first.body["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/v1/transactions/{id}"), &token).await.body, first.body);
    let stranger = s.register("frank").await;
    assert_eq!(s.get(&format!("/v1/transactions/{id}"), &stranger).await.status, StatusCode::NOT_FOUND);
}

async fn concurrent_requests_with_one_key_move_money_once(s: &Server) {
    let token = s.register("gina").await;
    let from = s.open_account(&token, "USD").await;
    let to = s.open_account(&token, "USD").await;
    s.fund(&from, 100_000_000).await;
    let body = json!({"from_account_id": from, "to_account_id": to, "amount_micros": 1_000_000});
    let calls = (0..50).map(|_| s.transfer(&token, "same-key", body.clone()));
    let replies = join_all(calls).await;
    let first = &replies[0];
    for reply in &replies {
        assert_eq!((reply.status, &reply.body), (StatusCode::CREATED, &first.body));
    }
    assert_eq!(s.posted(&token, &to).await, 1_000_000, "money moved exactly once");
}

async fn errors_are_problem_documents(s: &Server) {
    let token = s.register("hank").await;
    assert_eq!(s.get("/v1/nowhere", &token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.call(Method::DELETE, "/v1/accounts", Some(&token), None, None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(s.get("/v1/accounts/not-a-uuid", &token).await.status, StatusCode::BAD_REQUEST);
    let unknown_field = s.post("/v1/accounts", &token, json!({"currency": "USD", "colour": "blue"})).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    let bad_currency = s.post("/v1/accounts", &token, json!({"currency": "usd"})).await;
    assert_eq!(
        (bad_currency.status, bad_currency.body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("currency"))
    );
    let huge = json!({"currency": "USD", "name": "x".repeat(20 * 1024)});
    assert_eq!(s.post("/v1/accounts", &token, huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let malformed = s
        .client
        .post(format!("{}/v1/accounts", s.running.url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    // A request id sent by the client is echoed.
    let echoed = s
        .client
        .get(format!("{}/health/live", s.running.url()))
        .header("X-Request-ID", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
}

async fn service_endpoints_answer(s: &Server) {
    let get = |path: &'static str| s.client.get(format!("{}{path}", s.running.url())).send();
    assert_eq!(get("/health/live").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/health/ready").await.unwrap().status(), StatusCode::OK);
    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(spec["info"]["title"], "Ledger API");
    assert!(spec["paths"]["/v1/transfers/internal"]["post"]["operationId"].is_string());
    assert_eq!(get("/openapi.yaml").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/docs/").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ledger_http_requests_total"), "{metrics}");
}

async fn exchanges_use_quotes_and_round_toward_the_house(s: &Server) {
    let token = s.register("ivy").await;
    let usd = s.open_account(&token, "USD").await;
    let eur = s.open_account(&token, "EUR").await;
    s.fund(&usd, 100_000_000).await;
    let root = s.login("root", "root-password-long-enough").await;
    let set = s
        .call(
            Method::PUT,
            "/v1/admin/fx/rates/USD/EUR",
            Some(&root),
            None,
            Some(json!({"rate": "0.92", "spread_bps": 25})),
        )
        .await;
    assert_eq!((set.status, set.body["effective_rate"].as_str()), (StatusCode::OK, Some("0.9177")), "{}", set.body);
    let forbidden =
        s.call(Method::PUT, "/v1/admin/fx/rates/USD/EUR", Some(&token), None, Some(json!({"rate": "9"}))).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/v1/fx/rates", &token).await.body["items"][0]["rate"].as_str(), Some("0.92"));
    let quote = s
        .post(
            "/v1/fx/quotes",
            &token,
            json!({"from_currency": "USD", "to_currency": "EUR", "amount_micros": 10_000_000}),
        )
        .await;
    assert_eq!(quote.status, StatusCode::CREATED, "{}", quote.body);
    // 10.00 USD at 0.9177 is 9.177 EUR: the customer gets 9.17, the house keeps the rest.
    assert_eq!(quote.body["to_amount_micros"].as_i64(), Some(9_170_000));
    let quote_id = quote.body["quote_id"].as_str().unwrap();
    let body = json!({"from_account_id": usd, "to_account_id": eur, "amount_micros": 10_000_000, "quote_id": quote_id});
    let exchange = s.call(Method::POST, "/v1/transfers/exchange", Some(&token), Some("fx-1"), Some(body)).await;
    assert_eq!(exchange.status, StatusCode::CREATED, "{}", exchange.body);
    assert_eq!(exchange.body["postings"].as_array().unwrap().len(), 4);
    assert_eq!(
        (exchange.body["fx"]["rate"].as_str(), exchange.body["fx"]["to_amount_micros"].as_i64()),
        (Some("0.9177"), Some(9_170_000))
    );
    assert_eq!((s.posted(&token, &usd).await, s.posted(&token, &eur).await), (90_000_000, 9_170_000));
    // A quote for another amount does not match: 409, and nothing moves.
    let mismatched =
        json!({"from_account_id": usd, "to_account_id": eur, "amount_micros": 5_000_000, "quote_id": quote_id});
    let reply = s.call(Method::POST, "/v1/transfers/exchange", Some(&token), Some("fx-2"), Some(mismatched)).await;
    assert_eq!((reply.status, reply.body["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/quote-mismatch")));
    // Without a quote, the current rate applies.
    let spot = json!({"from_account_id": usd, "to_account_id": eur, "amount_micros": 1_000_000});
    let reply = s.call(Method::POST, "/v1/transfers/exchange", Some(&token), Some("fx-3"), Some(spot)).await;
    assert_eq!((reply.status, reply.body["fx"]["to_amount_micros"].as_i64()), (StatusCode::CREATED, Some(910_000)));
    assert_eq!(s.posted(&token, &usd).await, 89_000_000);
}

async fn holds_reserve_then_capture_or_void(s: &Server) {
    let token = s.register("jack").await;
    let from = s.open_account(&token, "USD").await;
    let to = s.open_account(&token, "USD").await;
    s.fund(&from, 50_000_000).await;
    let hold = s
        .call(
            Method::POST,
            "/v1/holds",
            Some(&token),
            Some("h-1"),
            Some(json!({"account_id": from, "to_account_id": to, "amount_micros": 20_000_000})),
        )
        .await;
    assert_eq!((hold.status, hold.body["status"].as_str()), (StatusCode::CREATED, Some("PENDING")), "{}", hold.body);
    let balance = s.get(&format!("/v1/accounts/{from}/balance"), &token).await;
    assert_eq!(
        (balance.body["posted_micros"].as_i64(), balance.body["available_micros"].as_i64()),
        (Some(50_000_000), Some(30_000_000))
    );
    let id = hold.body["id"].as_str().unwrap();
    let capture = s
        .call(
            Method::POST,
            &format!("/v1/holds/{id}/capture"),
            Some(&token),
            Some("c-1"),
            Some(json!({"amount_micros": 15_000_000})),
        )
        .await;
    assert_eq!(capture.status, StatusCode::CREATED, "{}", capture.body);
    let balance = s.get(&format!("/v1/accounts/{from}/balance"), &token).await;
    assert_eq!(
        (balance.body["posted_micros"].as_i64(), balance.body["available_micros"].as_i64()),
        (Some(35_000_000), Some(35_000_000))
    );
    let again = s.call(Method::POST, &format!("/v1/holds/{id}/void"), Some(&token), Some("v-1"), None).await;
    assert_eq!(
        (again.status, again.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/illegal-hold-transition"))
    );
    let second = s
        .call(
            Method::POST,
            "/v1/holds",
            Some(&token),
            Some("h-2"),
            Some(
                json!({"account_id": from, "to_account_id": to, "amount_micros": 5_000_000, "expires_in_seconds": 600}),
            ),
        )
        .await;
    let id = second.body["id"].as_str().unwrap();
    let void = s.call(Method::POST, &format!("/v1/holds/{id}/void"), Some(&token), Some("v-2"), None).await;
    assert_eq!((void.status, void.body["status"].as_str()), (StatusCode::OK, Some("VOIDED")), "{}", void.body);
    assert_eq!(
        s.get(&format!("/v1/accounts/{from}/balance"), &token).await.body["available_micros"].as_i64(),
        Some(35_000_000)
    );
    let stranger = s.register("kate").await;
    assert_eq!(s.get(&format!("/v1/holds/{id}"), &stranger).await.status, StatusCode::NOT_FOUND);
    let too_much = json!({"account_id": from, "to_account_id": to, "amount_micros": 35_000_001});
    assert_eq!(
        s.call(Method::POST, "/v1/holds", Some(&token), Some("h-3"), Some(too_much)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn admins_reverse_a_transaction_once(s: &Server) {
    let token = s.register("liam").await;
    let from = s.open_account(&token, "USD").await;
    let to = s.open_account(&token, "USD").await;
    s.fund(&from, 10_000_000).await;
    let transfer = s
        .transfer(&token, "r-1", json!({"from_account_id": from, "to_account_id": to, "amount_micros": 4_000_000}))
        .await;
    let id = transfer.body["id"].as_str().unwrap();
    let path = format!("/v1/admin/transactions/{id}/reverse");
    assert_eq!(
        s.call(Method::POST, &path, Some(&token), Some("rev-0"), Some(json!({"reason": "oops"}))).await.status,
        StatusCode::FORBIDDEN
    );
    let root = s.login("root", "root-password-long-enough").await;
    let reversal = s.call(Method::POST, &path, Some(&root), Some("rev-1"), Some(json!({"reason": "sent twice"}))).await;
    assert_eq!(
        (reversal.status, reversal.body["reverses_id"].as_str()),
        (StatusCode::CREATED, Some(id)),
        "{}",
        reversal.body
    );
    assert_eq!((s.posted(&token, &from).await, s.posted(&token, &to).await), (10_000_000, 0));
    let twice = s.call(Method::POST, &path, Some(&root), Some("rev-2"), Some(json!({"reason": "again"}))).await;
    assert_eq!((twice.status, twice.body["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/already-reversed")));
}

async fn payouts_hold_funds_at_once_and_cancel_releases_them(s: &Server) {
    let token = s.register("mia").await;
    let account = s.open_account(&token, "USD").await;
    s.fund(&account, 100_000_000).await;
    let request = json!({"account_id": account, "amount_micros": 30_000_000, "currency": "USD",
                         "destination": {"iban": "DE89 3704 0044 0532 0130 00", "name": "Mia"}, "reference": "inv-1"});
    let payout = s.call(Method::POST, "/v1/payouts", Some(&token), Some("p-1"), Some(request.clone())).await;
    assert_eq!(
        (payout.status, payout.body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("PENDING")),
        "{}",
        payout.body
    );
    let balance = s.get(&format!("/v1/accounts/{account}/balance"), &token).await;
    assert_eq!(balance.body["available_micros"].as_i64(), Some(70_000_000), "held at once");
    let duplicate = s.call(Method::POST, "/v1/payouts", Some(&token), Some("p-2"), Some(request)).await;
    assert_eq!(
        (duplicate.status, duplicate.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/duplicate-reference"))
    );
    let id = payout.body["payout_id"].as_str().unwrap();
    let listed = s.get("/v1/payouts?status=PENDING", &token).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let stranger = s.register("noah").await;
    assert_eq!(s.get(&format!("/v1/payouts/{id}"), &stranger).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.call(Method::POST, &format!("/v1/payouts/{id}/cancel"), Some(&stranger), Some("x-1"), None).await.status,
        StatusCode::NOT_FOUND
    );
    // Only an admin resolves, and only from manual review.
    let root = s.login("root", "root-password-long-enough").await;
    let resolve = s
        .call(
            Method::POST,
            &format!("/v1/payouts/{id}/resolve"),
            Some(&root),
            Some("res-1"),
            Some(json!({"resolution": "complete", "note": "bank confirmed"})),
        )
        .await;
    assert_eq!(
        (resolve.status, resolve.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/illegal-payout-transition"))
    );
    assert_eq!(s.get("/v1/payouts/manual-review", &root).await.status, StatusCode::OK);
    assert_eq!(s.get("/v1/payouts/manual-review", &token).await.status, StatusCode::FORBIDDEN);
    let cancel = s.call(Method::POST, &format!("/v1/payouts/{id}/cancel"), Some(&token), Some("c-1"), None).await;
    assert_eq!((cancel.status, cancel.body["status"].as_str()), (StatusCode::OK, Some("CANCELLED")), "{}", cancel.body);
    assert_eq!(
        s.get(&format!("/v1/accounts/{account}/balance"), &token).await.body["available_micros"].as_i64(),
        Some(100_000_000)
    );
    let again = s.call(Method::POST, &format!("/v1/payouts/{id}/cancel"), Some(&token), Some("c-2"), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let bad = json!({"account_id": account, "amount_micros": 1_000_001, "currency": "USD", "destination": {"iban": "DE89370400440532013000", "name": "Mia"}});
    assert_eq!(
        s.call(Method::POST, "/v1/payouts", Some(&token), Some("p-3"), Some(bad)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let deposit = s
        .call(
            Method::POST,
            "/v1/deposits",
            Some(&token),
            Some("d-1"),
            Some(json!({"account_id": account, "amount_micros": 5_000_000, "currency": "USD"})),
        )
        .await;
    assert_eq!(
        (deposit.status, deposit.body["direction"].as_str()),
        (StatusCode::ACCEPTED, Some("deposit")),
        "{}",
        deposit.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let s = server_with(Backend::Memory, |config| {
        config.rate_login_per_minute = 3;
        config.rate_reads_per_second = 5;
    })
    .await;
    let token = s.register("olga").await; // one login used
    for _ in 0..2 {
        let ok = s.login_attempt("olga", "a long enough password").await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.headers.get("x-ratelimit-limit").and_then(|v| v.to_str().ok()), Some("3"));
    }
    let limited = s.login_attempt("olga", "a long enough password").await;
    assert_eq!(
        (limited.status, limited.body["type"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("/problems/rate-limited"))
    );
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()), Some("0"));
    // Reads are limited per user: the sixth quick read in a second is refused.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(s.get("/v1/users/me", &token).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 5, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Another user has their own budget.
    let body = json!({"username": "pete", "email": "pete@example.com", "password": "a long enough password"});
    assert_eq!(s.call(Method::POST, "/v1/users", None, None, Some(body)).await.status, StatusCode::CREATED);
    // The login budget of this address is spent; mint Pete's token the way the service does.
    let pete = s.running.state.store.user_by_username("pete").await.unwrap().unwrap();
    let now = ledger_core::Timestamp::from_unix_secs(chrono::Utc::now().timestamp());
    let other = s.running.state.auth.issue(pete.id, pete.role, now).unwrap().0;
    assert_eq!(s.get("/v1/users/me", &other).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_quote_is_refused_with_409() {
    let s = server_with(Backend::Memory, |config| config.quote_ttl_secs = 0).await;
    let token = s.register("quinn").await;
    let usd = s.open_account(&token, "USD").await;
    let eur = s.open_account(&token, "EUR").await;
    s.fund(&usd, 10_000_000).await;
    let root = s.login("root", "root-password-long-enough").await;
    let set = s.call(Method::PUT, "/v1/admin/fx/rates/USD/EUR", Some(&root), None, Some(json!({"rate": "0.9"}))).await;
    assert_eq!(set.status, StatusCode::OK);
    let quote = s
        .post(
            "/v1/fx/quotes",
            &token,
            json!({"from_currency": "USD", "to_currency": "EUR", "amount_micros": 1_000_000}),
        )
        .await;
    let body = json!({"from_account_id": usd, "to_account_id": eur, "amount_micros": 1_000_000, "quote_id": quote.body["quote_id"]});
    let reply = s.call(Method::POST, "/v1/transfers/exchange", Some(&token), Some("fx-expired"), Some(body)).await;
    assert_eq!((reply.status, reply.body["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/quote-expired")));
    assert_eq!(s.posted(&token, &usd).await, 10_000_000, "nothing moved");
    s.stop().await;
}

/// A user with 50.00 USD who has asked for a 20.00 payout: (token, account, payout id).
async fn start_payout(s: &Server, name: &str) -> (String, String, String) {
    let token = s.register(name).await;
    let account = s.open_account(&token, "USD").await;
    s.fund(&account, 50_000_000).await;
    let request = json!({"account_id": account, "amount_micros": 20_000_000, "currency": "USD",
                         "destination": {"iban": "GB33BUKB20201555555555", "name": name}});
    let key = format!("payout-{name}");
    let payout = s.call(Method::POST, "/v1/payouts", Some(&token), Some(&key), Some(request)).await;
    assert_eq!(payout.status, StatusCode::ACCEPTED, "{}", payout.body);
    let id = payout.body["payout_id"].as_str().unwrap().to_owned();
    (token, account, id)
}

async fn paid_out_end_to_end(backend: Backend) {
    let s = server_with(backend, |config| {
        config.inprocess_workers = true;
        config.worker_concurrency = 2;
        config.worker_poll_ms = 10;
        config.sim_success_percent = 100;
        config.sim_latency_min_ms = 0;
        config.sim_latency_max_ms = 0;
    })
    .await;
    let (token, account, id) = start_payout(&s, "rita").await;
    wait_for_status(&s, &token, &id, "COMPLETED").await;
    let reply = s.get(&format!("/v1/payouts/{id}"), &token).await;
    let path: Vec<_> =
        reply.body["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap().to_owned()).collect();
    assert_eq!(path, ["PENDING", "PROCESSING", "COMPLETED"]);
    let attempts = reply.body["attempts"].as_array().unwrap();
    assert_eq!((attempts.len(), attempts[0]["outcome"].as_str()), (1, Some("succeeded")), "{}", reply.body);
    let balance = s.get(&format!("/v1/accounts/{account}/balance"), &token).await;
    assert_eq!(
        (balance.body["posted_micros"].as_i64(), balance.body["available_micros"].as_i64()),
        (Some(30_000_000), Some(30_000_000))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_payouts_are_paid_by_the_in_process_pipeline() {
    paid_out_end_to_end(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_payouts_are_paid_by_the_in_process_pipeline() {
    paid_out_end_to_end(Backend::Postgres).await;
}

async fn replay_once(s: &Server) -> (Reply, Reply, String, String) {
    let token = s.register("sam").await;
    let from = s.open_account(&token, "USD").await;
    let to = s.open_account(&token, "USD").await;
    s.fund(&from, 10_000_000).await;
    let body = json!({"from_account_id": from, "to_account_id": to, "amount_micros": 1_000_000});
    let first = s.transfer(&token, "cached-1", body.clone()).await;
    let again = s.transfer(&token, "cached-1", body).await;
    (first, again, token, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serves_replays_when_it_is_up() {
    let s = server_with(Backend::Memory, |config| config.redis_url = Some("redis://127.0.0.1:6379".into())).await;
    let (first, again, token, to) = replay_once(&s).await;
    assert_eq!((first.status, again.status, &again.body), (StatusCode::CREATED, StatusCode::CREATED, &first.body));
    assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(s.posted(&token, &to).await, 1_000_000, "moved once");
    let metrics = s.client.get(format!("{}/metrics", s.running.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ledger_idempotent_replays_total{kind=\"redis\"} 1"), "{metrics}");
    assert_eq!(
        s.client.get(format!("{}/health/ready", s.running.url())).send().await.unwrap().status(),
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_working_when_redis_is_down() {
    // Nothing listens on port 1: every Redis call fails fast and falls through to the store.
    let s = server_with(Backend::Memory, |config| config.redis_url = Some("redis://127.0.0.1:1".into())).await;
    let (first, again, token, to) = replay_once(&s).await;
    assert_eq!((first.status, again.status, &again.body), (StatusCode::CREATED, StatusCode::CREATED, &first.body));
    assert_eq!(s.posted(&token, &to).await, 1_000_000, "moved once");
    let metrics = s.client.get(format!("{}/metrics", s.running.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ledger_idempotent_replays_total{kind=\"store\"} 1"), "{metrics}");
    assert_eq!(
        s.client.get(format!("{}/health/ready", s.running.url())).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.stop().await;
}

async fn wait_for_status(s: &Server, token: &str, id: &str, wanted: &str) {
    let mut status = String::new();
    for _ in 0..500 {
        status = s.get(&format!("/v1/payouts/{id}"), token).await.body["status"].as_str().unwrap().to_owned();
        if status == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("payout {id} stayed {status}, never {wanted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_resolve_manual_review_and_return_completed_payouts() {
    let s = server_with(Backend::Memory, |config| {
        config.worker_concurrency = 1;
        config.worker_poll_ms = 10;
        config.sim_success_percent = 0;
        config.sim_failure = "timeout".into();
        config.sim_latency_min_ms = 0;
        config.sim_latency_max_ms = 0;
    })
    .await;
    let (token, account, id) = start_payout(&s, "tess").await;
    // A timeout: nobody knows whether the bank paid, so a human decides; the funds stay held.
    wait_for_status(&s, &token, &id, "MANUAL_REVIEW").await;
    assert_eq!(
        s.get(&format!("/v1/accounts/{account}/balance"), &token).await.body["available_micros"].as_i64(),
        Some(30_000_000)
    );
    let root = s.login("root", "root-password-long-enough").await;
    let queue = s.get("/v1/payouts/manual-review", &root).await;
    assert_eq!(queue.body["items"][0]["payout_id"].as_str(), Some(id.as_str()));
    let resolve = json!({"resolution": "complete", "note": "the bank statement shows it paid"});
    let resolved =
        s.call(Method::POST, &format!("/v1/payouts/{id}/resolve"), Some(&root), Some("res-1"), Some(resolve)).await;
    assert_eq!(
        (resolved.status, resolved.body["status"].as_str()),
        (StatusCode::OK, Some("COMPLETED")),
        "{}",
        resolved.body
    );
    assert_eq!(s.posted(&token, &account).await, 30_000_000);
    // Then the bank sends it back.
    let returned =
        s.call(Method::POST, &format!("/v1/admin/payouts/{id}/return"), Some(&root), Some("ret-1"), None).await;
    assert_eq!(
        (returned.status, returned.body["status"].as_str()),
        (StatusCode::OK, Some("REVERSED")),
        "{}",
        returned.body
    );
    assert_eq!(s.posted(&token, &account).await, 50_000_000);
    assert_eq!(
        s.call(Method::POST, &format!("/v1/admin/payouts/{id}/return"), Some(&token), Some("ret-2"), None).await.status,
        StatusCode::FORBIDDEN
    );
    s.stop().await;
}

/// The requests a receiver got: headers and body of each.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(poem::http::HeaderMap, Vec<u8>)>>>;

/// A local webhook receiver: records every request and answers `status`.
struct Receiver {
    url: String,
    seen: Seen,
}

async fn receiver(status: u16) -> Receiver {
    use poem::listener::{Acceptor, Listener};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = poem::endpoint::make(move |request: poem::Request| {
        let record = record.clone();
        async move {
            let headers = request.headers().clone();
            let body = request.into_body().into_vec().await.unwrap_or_default();
            record.lock().unwrap().push((headers, body));
            poem::Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap()).finish()
        }
    });
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Receiver { url: format!("http://{addr}/hook"), seen }
}

async fn webhook_server(backend: Backend, attempts_max: u32) -> Server {
    server_with(backend, |config| {
        config.inprocess_workers = true;
        config.webhook_concurrency = 2;
        config.worker_poll_ms = 10;
        config.webhook_allow_private = true;
        config.webhook_timeout_ms = 2_000;
        config.webhook_attempts_max = attempts_max;
        config.webhook_backoff_base_ms = 10;
        config.webhook_backoff_cap_ms = 40;
    })
    .await
}

async fn create_endpoint(s: &Server, token: &str, url: &str, events: Value) -> Reply {
    s.post("/v1/webhook-endpoints", token, json!({"url": url, "events": events})).await
}

/// Polls the delivery log until `done` holds for it (or fails after 20 s).
async fn wait_for_deliveries(s: &Server, token: &str, endpoint: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..400 {
        let reply = s.get(&format!("/v1/webhook-endpoints/{endpoint}/deliveries"), token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let items = reply.body["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the deliveries of {endpoint} never got there");
}

async fn outbound_webhooks_are_signed_owned_and_logged(backend: Backend) {
    let s = webhook_server(backend, 5).await;
    let hook = receiver(204).await;
    let alice = s.register("alice").await;
    let bob = s.register("bob").await;
    for (url, events, field) in [
        ("ftp://example.com/", json!(["deposit.credited"]), "url"),
        ("https://user:pw@example.com/", json!(["deposit.credited"]), "url"),
        (hook.url.as_str(), json!([]), "events"),
        (hook.url.as_str(), json!(["money.printed"]), "events"),
    ] {
        let reply = create_endpoint(&s, &alice, url, events).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.body["errors"][0]["field"], json!(field), "{}", reply.body);
    }
    let created = create_endpoint(&s, &alice, &hook.url, json!(["deposit.credited", "transfer.created"])).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64, "{secret}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let listed = s.get("/v1/webhook-endpoints", &alice).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(listed.body["items"][0].get("secret").is_none(), "the secret is shown only at creation");
    assert!(s.get(&format!("/v1/webhook-endpoints/{id}"), &alice).await.body.get("secret").is_none());
    for path in [format!("/v1/webhook-endpoints/{id}"), format!("/v1/webhook-endpoints/{id}/deliveries")] {
        assert_eq!(s.get(&path, &bob).await.status, StatusCode::NOT_FOUND, "bob cannot see alice's endpoint");
    }
    let bobs_delete = s.call(Method::DELETE, &format!("/v1/webhook-endpoints/{id}"), Some(&bob), None, None).await;
    assert_eq!(bobs_delete.status, StatusCode::NOT_FOUND);
    assert!(s.get("/v1/webhook-endpoints", &bob).await.body["items"].as_array().unwrap().is_empty());

    let from = s.open_account(&alice, "USD").await;
    let to = s.open_account(&bob, "USD").await;
    s.fund(&from, 10_000_000).await;
    let moved = s
        .transfer(&alice, "t-1", json!({"from_account_id": from, "to_account_id": to, "amount_micros": 1_000_000}))
        .await;
    assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.body);
    let log = wait_for_deliveries(&s, &alice, &id, |items| {
        items.len() == 2 && items.iter().all(|d| d["state"] == json!("delivered"))
    })
    .await;
    assert!(log.iter().all(|d| d["attempts"][0]["status_code"] == json!(204) && d["dead_lettered"] == json!(false)));
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one POST per delivery");
    let mut kinds = Vec::new();
    for (headers, body) in &seen {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let now = chrono::Utc::now().timestamp();
        ledger_core::signature::verify(secret.as_bytes(), &header("x-signature"), body, now)
            .expect("the receiver verifies our signature with the endpoint's secret");
        assert!(ledger_core::signature::verify(b"another secret", &header("x-signature"), body, now).is_err());
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["type"], json!(header("x-ledger-event")));
        assert_eq!(event["data"]["account_ids"], json!([from]), "only alice's own account: {event}");
        assert!(log.iter().any(|d| d["id"] == json!(header("x-ledger-delivery")) && d["event_id"] == event["id"]));
        kinds.push(header("x-ledger-event"));
    }
    kinds.sort();
    assert_eq!(kinds, ["deposit.credited", "transfer.created"]);

    let deleted = s.call(Method::DELETE, &format!("/v1/webhook-endpoints/{id}"), Some(&alice), None, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&format!("/v1/webhook-endpoints/{id}"), &alice).await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_outbound_webhooks_are_signed_owned_and_logged() {
    outbound_webhooks_are_signed_owned_and_logged(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbound_webhooks_are_signed_owned_and_logged() {
    outbound_webhooks_are_signed_owned_and_logged(Backend::Postgres).await;
}

async fn a_receiver_that_is_down_gets_retries_then_a_dead_letter(backend: Backend) {
    let s = webhook_server(backend, 3).await;
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = s.register("dora").await;
    let created =
        create_endpoint(&s, &token, &format!("http://127.0.0.1:{port}/down"), json!(["deposit.credited"])).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let account = s.open_account(&token, "USD").await;
    s.fund(&account, 1_000_000).await;
    let log =
        wait_for_deliveries(&s, &token, &id, |items| items.len() == 1 && items[0]["dead_lettered"] == json!(true))
            .await;
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{}", log[0]);
    assert!(attempts.iter().all(|a| a["error"] == json!("could not connect") && a.get("status_code").is_none()));
    assert_eq!(log[0]["state"], json!("dead_lettered"));
    assert!(log[0].get("next_attempt_at").is_none());
    let metrics = s.client.get(format!("{}/metrics", s.running.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ledger_webhook_deliveries_total{result=\"dead_lettered\"} 1"), "{metrics}");
    assert!(metrics.contains("ledger_webhook_deliveries_total{result=\"retried\"} 2"), "{metrics}");
    assert!(metrics.contains("ledger_webhook_pending_deliveries 0"), "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_receiver_that_is_down_gets_retries_then_a_dead_letter() {
    a_receiver_that_is_down_gets_retries_then_a_dead_letter(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_receiver_that_is_down_gets_retries_then_a_dead_letter() {
    a_receiver_that_is_down_gets_retries_then_a_dead_letter(Backend::Postgres).await;
}

/// The reports ledger-recon stores are served to admins, and `/metrics` shows the last clean run
/// and the last run's discrepancy count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recon_runs_are_served_to_admins_and_in_metrics() {
    let s = server(Backend::Postgres).await;
    let token = s.register("rhea").await;
    let account = s.open_account(&token, "USD").await;
    s.fund(&account, 5_000_000).await;
    let root = s.login("root", "root-password-long-enough").await;
    let metrics = |s: &Server| {
        let url = format!("{}/metrics", s.running.url());
        let client = s.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(metrics(&s).await.contains("ledger_recon_last_clean_run_timestamp_seconds 0\n"));
    let empty = s.get("/v1/admin/recon/runs", &root).await;
    assert_eq!((empty.status, empty.body["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    let pool = &s.database.as_ref().unwrap().pool;
    let settings = ledger_recon::Settings { full: true, ..ledger_recon::Settings::default() };
    let clean = ledger_recon::run_ledger(pool, &settings).await.unwrap();
    assert_eq!(clean.outcome, ledger_recon::Outcome::Clean, "{:?}", clean.findings);
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE accounts SET posted_micros = posted_micros + 7 WHERE id = $1::uuid")
        .bind(&account)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let broken = ledger_recon::run_ledger(pool, &settings).await.unwrap();
    assert_eq!(broken.findings.len(), 2, "{:?}", broken.findings);

    let list = s.get("/v1/admin/recon/runs?limit=1", &root).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"][0]["id"].as_str(), Some(broken.run_id.to_string().as_str()), "newest first");
    assert_eq!(list.body["items"][0]["status"], "discrepancies");
    assert_eq!(list.body["items"][0]["discrepancies"], 2);
    let cursor = list.body["next_cursor"].as_str().unwrap().to_owned();
    let next = s.get(&format!("/v1/admin/recon/runs?limit=1&cursor={cursor}"), &root).await;
    assert_eq!(next.body["items"][0]["id"].as_str(), Some(clean.run_id.to_string().as_str()));
    assert_eq!(next.body["items"][0]["status"], "clean");

    let one = s.get(&format!("/v1/admin/recon/runs/{}", broken.run_id), &root).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["kind"], "ledger");
    assert_eq!(one.body["report"]["findings"][0]["check"], "posted_mismatch");
    assert_eq!(one.body["report"]["findings"][0]["account"].as_str(), Some(account.as_str()));

    // Admins only; unknown runs are 404.
    assert_eq!(s.get("/v1/admin/recon/runs", &token).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get(&format!("/v1/admin/recon/runs/{}", broken.run_id), &token).await.status, StatusCode::FORBIDDEN);
    let unknown = s.get(&format!("/v1/admin/recon/runs/{}", uuid::Uuid::now_v7()), &root).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let text = metrics(&s).await;
    assert!(text.contains("ledger_recon_last_run_discrepancies 2\n"), "{text}");
    let clean_at = text
        .lines()
        .find_map(|l| l.strip_prefix("ledger_recon_last_clean_run_timestamp_seconds "))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap();
    assert!((clean_at - chrono::Utc::now().timestamp()).abs() < 3600, "{clean_at}");
    s.stop().await;
}
