//! Tiered rate limits (governor, GCRA): a global ceiling for the whole service, login attempts
//! per client address, and reads (GET) and writes (everything else) per user, keyed by the
//! verified token's subject (or by client address when there is no valid token).
//!
//! Every response of a limited route carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until the bucket is full again); a refused request gets 429 as
//! problem+json with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::config::Config;
use crate::error::{ApiError, problem_body};
use crate::state::AppState;

type Keyed = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;
type Direct = DefaultDirectRateLimiter<StateInformationMiddleware>;

/// The limiters.
#[derive(Debug)]
pub struct Limits {
    global: Direct,
    login: Keyed,
    reads: Keyed,
    writes: Keyed,
    quotas: [u32; 3],
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least one")
}

impl Limits {
    /// Limits from the configuration.
    pub fn new(config: &Config) -> Limits {
        let login = at_least_one(config.rate_login_per_minute);
        let reads = at_least_one(config.rate_reads_per_second);
        let writes = at_least_one(config.rate_writes_per_second);
        Limits {
            global: RateLimiter::direct(Quota::per_second(at_least_one(config.rate_global_per_second)))
                .with_middleware::<StateInformationMiddleware>(),
            login: RateLimiter::keyed(Quota::per_minute(login)).with_middleware::<StateInformationMiddleware>(),
            reads: RateLimiter::keyed(Quota::per_second(reads)).with_middleware::<StateInformationMiddleware>(),
            writes: RateLimiter::keyed(Quota::per_second(writes)).with_middleware::<StateInformationMiddleware>(),
            quotas: [login.get(), reads.get(), writes.get()],
        }
    }

    /// Forgets keys whose buckets are full again, so memory does not grow with every client seen.
    pub fn forget_idle(&self) {
        self.login.retain_recent();
        self.reads.retain_recent();
        self.writes.retain_recent();
    }
}

/// What a check said.
struct Verdict {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
    retry_after_secs: Option<u64>,
}

fn check_keyed(limiter: &Keyed, key: &str, limit: u32, period: Duration) -> Verdict {
    match limiter.check_key(&key.to_owned()) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            // Each used slot refills in period / limit.
            let used = u64::from(limit.saturating_sub(remaining));
            let reset_secs = (period.as_secs() * used).div_ceil(u64::from(limit));
            Verdict { limit, remaining, reset_secs, retry_after_secs: None }
        }
        Err(not_until) => {
            let secs = whole_seconds(not_until.wait_time_from(DefaultClock::default().now()));
            Verdict { limit, remaining: 0, reset_secs: secs, retry_after_secs: Some(secs) }
        }
    }
}

/// The rate-limit middleware.
#[derive(Clone, Debug)]
pub struct RateLimit {
    state: Arc<AppState>,
}

impl RateLimit {
    /// Rate limits with the state's limiters.
    pub fn new(state: Arc<AppState>) -> RateLimit {
        RateLimit { state }
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RateLimitEndpoint { inner, state: self.state.clone() }
    }
}

/// The endpoint [`RateLimit`] wraps.
#[derive(Debug)]
pub struct RateLimitEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
}

impl<E: Endpoint> RateLimitEndpoint<E> {
    fn verdict(&self, req: &Request) -> Option<Verdict> {
        let limits = &self.state.limits;
        let path = req.uri().path();
        let address = req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        if path == "/v1/auth/login" {
            return Some(check_keyed(&limits.login, &address, limits.quotas[0], Duration::from_secs(60)));
        }
        if !path.starts_with("/v1/") {
            return None;
        }
        let bearer =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let key = match bearer.and_then(|token| self.state.auth.verify(token).ok()) {
            Some(caller) => format!("user:{}", caller.user),
            None => format!("ip:{address}"),
        };
        let (limiter, limit) = if req.method() == poem::http::Method::GET {
            (&limits.reads, limits.quotas[1])
        } else {
            (&limits.writes, limits.quotas[2])
        };
        Some(check_keyed(limiter, &key, limit, Duration::from_secs(1)))
    }
}

/// A wait rounded up to whole seconds, at least one (what `Retry-After` can say).
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn refused(retry_after_secs: u64) -> Response {
    let error = ApiError::RateLimited { retry_after_secs };
    let mut response = problem_body(poem::http::StatusCode::TOO_MANY_REQUESTS, &error.problem());
    response.headers_mut().insert("retry-after", HeaderValue::from(retry_after_secs));
    response
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if let Err(not_until) = self.state.limits.global.check() {
            self.state.metrics.add("ledger_rate_limited_total", "global", 1);
            return Ok(refused(whole_seconds(not_until.wait_time_from(DefaultClock::default().now()))));
        }
        let Some(verdict) = self.verdict(&req) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let mut response = match verdict.retry_after_secs {
            Some(secs) => {
                self.state.metrics.add("ledger_rate_limited_total", "client", 1);
                refused(secs)
            }
            None => match self.inner.call(req).await {
                Ok(output) => output.into_response(),
                // A handler's error response gets the headers too; framework errors (no route,
                // unparsable request) are left for the framing to render.
                Err(error) if error.is_from_response() => error.into_response(),
                Err(error) => return Err(error),
            },
        };
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(verdict.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_secs));
        Ok(response)
    }
}
