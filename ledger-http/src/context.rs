//! The framing every request goes through: a request id (echoed from `X-Request-ID` when the
//! client sent a sane one, else a fresh UUID v7) on the response and on every log line of the
//! request; errors raised by the framework turned into problem+json; one structured access log
//! line; request metrics.
//!
//! The request id and path live in a task-local for the duration of the request, so any code on
//! the request's path (error rendering above all) can read them without threading them through.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::problem_response;
use crate::metrics::Metrics;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Clone, Debug)]
struct RequestContext {
    request_id: String,
    path: String,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's id, or an empty string outside a request.
pub fn request_id() -> String {
    CONTEXT.try_with(|c| c.request_id.clone()).unwrap_or_default()
}

/// The current request's path, or an empty string outside a request.
pub fn path() -> String {
    CONTEXT.try_with(|c| c.path.clone()).unwrap_or_default()
}

/// A client-supplied request id is echoed only when it is short and printable.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_owned())
}

/// The request body exactly as received, for signature checks (a cheap reference-counted copy).
#[derive(Clone, Debug)]
pub struct RawBody(pub bytes::Bytes);

/// The framing middleware.
#[derive(Clone, Debug)]
pub struct Framing {
    metrics: Arc<Metrics>,
    body_limit: usize,
}

impl Framing {
    /// Framing that records into `metrics` and refuses bodies over `body_limit` bytes.
    pub fn new(metrics: Arc<Metrics>, body_limit: usize) -> Framing {
        Framing { metrics, body_limit }
    }
}

impl<E: Endpoint> Middleware<E> for Framing {
    type Output = FramingEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        FramingEndpoint { inner, metrics: self.metrics.clone(), body_limit: self.body_limit }
    }
}

/// The endpoint [`Framing`] wraps around the service.
#[derive(Debug)]
pub struct FramingEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
    body_limit: usize,
}

impl<E: Endpoint> Endpoint for FramingEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id =
            req.headers().get(REQUEST_ID).and_then(sane_request_id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let context = RequestContext { request_id: request_id.clone(), path: req.uri().path().to_owned() };
        let method = req.method().clone();
        let route = route_label(req.uri().path());
        let mut response = CONTEXT
            .scope(context, async {
                // The body is read here, up to the limit, whether or not a Content-Length was sent,
                // so an oversized body is refused before any handler sees it.
                match req.take_body().into_bytes_limit(self.body_limit).await {
                    Ok(bytes) => {
                        req.extensions_mut().insert(RawBody(bytes.clone()));
                        req.set_body(bytes);
                    }
                    Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                        let detail = format!("the body is larger than {} bytes", self.body_limit);
                        return problem_response(StatusCode::PAYLOAD_TOO_LARGE, detail);
                    }
                    Err(error) => return problem_response(StatusCode::BAD_REQUEST, error.to_string()),
                }
                match self.inner.call(req).await {
                    Ok(output) => output.into_response(),
                    // A handler's own error response (already problem+json) is kept as it is.
                    Err(error) if error.is_from_response() => error.into_response(),
                    Err(error) => {
                        let status = error.status();
                        let detail = error.to_string();
                        if status.is_server_error() {
                            tracing::error!(%request_id, error = %detail, "request failed");
                        }
                        let mut response = problem_response(status, detail);
                        if status == StatusCode::METHOD_NOT_ALLOWED {
                            response.headers_mut().remove(poem::http::header::ALLOW);
                        }
                        response
                    }
                }
            })
            .await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        self.metrics.observe_request(method.as_str(), &route, status, elapsed);
        tracing::info!(
            request_id = %request_id,
            method = %method,
            route = %route,
            status,
            latency_ms = elapsed.as_micros() / 1_000,
            "request"
        );
        Ok(response)
    }
}

/// The path with ids replaced by placeholders, so metrics have one series per route, not per
/// resource.
pub fn route_label(path: &str) -> String {
    path.split('/')
        .map(|segment| if uuid::Uuid::parse_str(segment).is_ok() { "{id}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}
