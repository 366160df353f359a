//! `Idempotency-Key` handling for the POSTs that move money.
//!
//! 1. The key (1-255 printable characters, scoped to the caller) and a fingerprint of the request
//!    (method, path, canonical body) start a record: a new key proceeds; the same key and
//!    fingerprint after completion replays the first status and body with
//!    `Idempotent-Replayed: true`; a different fingerprint is 422; a key still in flight is 409.
//! 2. The money movement runs with the completing record attached, so the store writes the
//!    response in the same transaction as the postings: both commit or neither does.
//! 3. A request that fails before moving money (invalid input, unknown account) abandons its key,
//!    so it can be retried with the same key once corrected.
//!
//! The first response and every replay are the same bytes: both are rendered from the outcome by
//! one function, which captures the request id and path of the first request.

use std::marker::PhantomData;
use std::sync::Arc;

use ledger_core::ports::{
    Fingerprint, IdempotencyBegin, IdempotencyKey, IdempotencyWrite, Outcome, StoredResponse, Submission,
};
use ledger_core::{ChangeSet, Command, UserId};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponses, Registry};
use sha2::{Digest, Sha256};

use crate::context;
use crate::error::{ApiError, PROBLEM_JSON, Problem};
use crate::state::AppState;

/// The response header that marks a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// A stored (or freshly rendered) response, documented in OpenAPI as `T`.
pub struct Idempotent<T> {
    response: StoredResponse,
    replayed: bool,
    documented_as: PhantomData<fn() -> T>,
}

impl<T: ApiResponse> ApiResponse for Idempotent<T> {
    fn meta() -> MetaResponses {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> IntoResponse for Idempotent<T> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if status.is_success() { "application/json; charset=utf-8" } else { PROBLEM_JSON };
        let mut builder = Response::builder().status(status).content_type(content_type);
        if self.replayed {
            builder = builder.header(REPLAYED, "true");
        }
        builder.body(self.response.body)
    }
}

/// How a successful outcome is rendered: the status and the JSON body.
pub type Render = Arc<dyn Fn(&ChangeSet) -> (u16, Vec<u8>) + Send + Sync>;

/// Runs a money-moving request under its Idempotency-Key. `body` is the parsed request (its
/// canonical JSON is fingerprinted); `build` turns it into the command, and may refuse.
pub async fn run<T, B: poem_openapi::types::ToJSON>(
    state: &AppState,
    scope: UserId,
    key: &str,
    body: &B,
    build: impl AsyncFnOnce() -> Result<Command, ApiError>,
    render: Render,
) -> Result<Idempotent<T>, ApiError> {
    let key = IdempotencyKey::parse(key).map_err(|e| ApiError::field("Idempotency-Key", e.to_string()))?;
    let path = context::path();
    let fingerprint = fingerprint("POST", &path, body)?;
    let now = state.ledger.now();
    if let Some(cache) = &state.cache
        && let Some(hit) = cache.get(scope, &key).await
    {
        if hit.fingerprint != fingerprint {
            return Err(ApiError::IdempotencyMismatch);
        }
        state.metrics.add("ledger_idempotent_replays_total", "redis", 1);
        return Ok(Idempotent { response: hit.response, replayed: true, documented_as: PhantomData });
    }
    match begin(state, scope, &key, fingerprint).await? {
        IdempotencyBegin::Started => {}
        IdempotencyBegin::Replay(response) => {
            state.metrics.add("ledger_idempotent_replays_total", "store", 1);
            if let Some(cache) = &state.cache {
                cache.put(scope, &key, fingerprint, &response, state.config.idempotency_ttl()).await;
            }
            return Ok(Idempotent { response, replayed: true, documented_as: PhantomData });
        }
        IdempotencyBegin::InFlight => {
            return Err(ApiError::Conflict {
                kind: "idempotency-in-flight",
                detail: "a request with this Idempotency-Key is still being processed".into(),
            });
        }
        IdempotencyBegin::Mismatch => return Err(ApiError::IdempotencyMismatch),
    }
    let command = match build().await {
        Ok(command) => command,
        Err(error) => {
            state.store.abandon(scope, &key).await?;
            return Err(error);
        }
    };
    let respond = responder(render, context::request_id(), path);
    let write = IdempotencyWrite {
        scope,
        key: key.clone(),
        fingerprint,
        expires_at: now.saturating_add(state.config.idempotency_ttl()),
        render: respond.clone(),
    };
    let submission = Submission { command, idempotency: Some(write) };
    let outcome = match state.store.execute(&[submission], state.ledger.now()).await {
        Ok(mut outcomes) => outcomes.pop().expect("one outcome per submission"),
        Err(error) => {
            state.store.abandon(scope, &key).await?;
            return Err(error.into());
        }
    };
    if let Ok(changes) = &outcome {
        record_money_moved(state, changes);
    }
    let response = respond(&outcome);
    if let Some(cache) = &state.cache {
        // Only now: the record is committed, so the cache can never answer for a request that did
        // not happen.
        cache.put(scope, &key, fingerprint, &response, state.config.idempotency_ttl()).await;
    }
    Ok(Idempotent { response, replayed: false, documented_as: PhantomData })
}

/// How long a duplicate waits for the first request with its key to finish before answering 409.
pub const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the key; while another request holds it, waits (up to [`IN_FLIGHT_WAIT`]) for that
/// one to finish, so concurrent duplicates get the first answer instead of a 409 in the common
/// case of a client retrying quickly.
async fn begin(
    state: &AppState,
    scope: UserId,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
) -> Result<IdempotencyBegin, ApiError> {
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        let now = state.ledger.now();
        let begun = state.store.begin(scope, key, fingerprint, now, state.idempotency_lease()).await?;
        if begun != IdempotencyBegin::InFlight || tokio::time::Instant::now() >= deadline {
            return Ok(begun);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The fingerprint of a request: SHA-256 over its method, path and canonical JSON body.
fn fingerprint<B: poem_openapi::types::ToJSON>(method: &str, path: &str, body: &B) -> Result<Fingerprint, ApiError> {
    let body = body.to_json_string();
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body.as_bytes());
    Ok(Fingerprint(hasher.finalize().into()))
}

/// Renders any outcome: successes with `render`, rejections as problem documents carrying the
/// first request's id and path.
fn responder(
    render: Render,
    request_id: String,
    instance: String,
) -> Arc<dyn Fn(&Outcome) -> StoredResponse + Send + Sync> {
    Arc::new(move |outcome| match outcome {
        Ok(changes) => {
            let (status, body) = render(changes);
            StoredResponse { status, body }
        }
        Err(rejection) => {
            let problem: Problem = ApiError::Rejected(rejection.clone()).problem_in(&request_id, &instance);
            StoredResponse { status: problem.status, body: serde_json::to_vec(&problem).expect("problems serialise") }
        }
    })
}

fn record_money_moved(state: &AppState, changes: &ChangeSet) {
    if let Some(payout) = &changes.payout {
        state.metrics.add("ledger_payouts_total", payout.status.as_str(), 1);
    }
    if let Some(entry) = &changes.entry {
        for posting in entry.postings().iter().filter(|p| p.amount.is_positive()) {
            let moved = u128::try_from(posting.amount.get()).unwrap_or(0);
            state.metrics.add("ledger_money_moved_micros_total", posting.currency.code(), moved);
        }
    }
}
