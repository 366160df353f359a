//! Errors as RFC 7807 `application/problem+json`.
//!
//! [`ApiError`] is the one error type of the service: each variant maps to one status and one
//! problem `type`. Storage and other internal errors are logged with the request id and answered
//! as a plain 500 that never carries their text. Errors raised by the framework itself (unknown
//! route, wrong method, malformed body, oversized body, a path parameter that is not a UUID) are
//! turned into the same shape by the framing middleware, through [`problem_response`].

use ledger_core::{LedgerError, Rejection, StoreError};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::context;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 7807 problem document.
#[derive(Clone, Debug, Object, serde::Serialize, serde::Deserialize)]
#[oai(example)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/insufficient-funds`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path the problem occurred on.
    pub instance: String,
    /// The request id (also in the `X-Request-ID` header): quote it when asking for help.
    pub request_id: String,
    /// For validation errors: the offending fields.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Problem {
        Problem {
            kind: "/problems/insufficient-funds".into(),
            title: "Insufficient funds".into(),
            status: 422,
            detail: "insufficient funds in account 0190f0e4-8d1c-7c5e-9a1b-2f3d4e5f6a7b".into(),
            instance: "/v1/transfers/internal".into(),
            request_id: "0190f0e4-8d1c-7c5e-9a1b-2f3d4e5f6a7c".into(),
            errors: None,
        }
    }
}

/// One invalid field of a request.
#[derive(Clone, Debug, Object, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field, e.g. `amount_micros`.
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

/// Every error the service answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{detail}")]
    Validation {
        /// What is wrong.
        detail: String,
        /// Which fields.
        fields: Vec<FieldError>,
    },
    /// Missing, invalid or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("this operation needs the admin role")]
    Forbidden,
    /// No such resource, or it belongs to someone else.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the resource's state.
    #[error("{detail}")]
    Conflict {
        /// Problem type suffix, e.g. `idempotency-in-flight`.
        kind: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// The Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    /// The ledger refused the command.
    #[error("{0}")]
    Rejected(Rejection),
    /// Too many requests.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a request would be accepted.
        retry_after_secs: u64,
    },
    /// A dependency is down.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// A bug or a failing dependency: logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A validation error about one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            fields: vec![FieldError { field: field.to_owned(), message }],
        }
    }

    /// An internal error, logged here with the request id.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        let request_id = context::request_id();
        tracing::error!(%request_id, error = %error, "internal error");
        ApiError::Internal(error.to_string())
    }

    /// The status and problem type of this error.
    fn status_and_kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation { .. } => (StatusCode::BAD_REQUEST, "validation-error", "Invalid request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict { kind, .. } => (StatusCode::CONFLICT, kind, "Conflict"),
            ApiError::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused")
            }
            ApiError::Rejected(rejection) => rejection_status(rejection),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error"),
        }
    }

    /// The problem document for this error, in the current request's context.
    pub fn problem(&self) -> Problem {
        self.problem_in(&context::request_id(), &context::path())
    }

    /// The problem document for this error, for the request with this id and path.
    pub fn problem_in(&self, request_id: &str, instance: &str) -> Problem {
        let (status, kind, title) = self.status_and_kind();
        let detail = match self {
            // Internal text never leaves the process.
            ApiError::Internal(_) => "an internal error occurred; quote the request id when reporting it".to_owned(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Validation { fields, .. } if !fields.is_empty() => Some(fields.clone()),
            _ => None,
        };
        Problem {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            instance: instance.to_owned(),
            request_id: request_id.to_owned(),
            errors,
        }
    }
}

/// Where each rejection lands: missing things are 404, state conflicts 409, the rest 422.
fn rejection_status(rejection: &Rejection) -> (StatusCode, &'static str, &'static str) {
    use Rejection::*;
    let status = match rejection {
        AccountNotFound(_) | HoldNotFound(_) | PayoutNotFound(_) | EntryNotFound(_) => StatusCode::NOT_FOUND,
        IllegalHoldTransition { .. }
        | IllegalPayoutTransition { .. }
        | AlreadyReversed { .. }
        | QuoteExpired
        | QuoteMismatch
        | HoldExpired(_)
        | DuplicateReference(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let kind = match rejection {
        AmountNotPositive => "amount-not-positive",
        AmountNotWholeMinorUnits { .. } => "amount-not-whole-minor-units",
        AccountNotFound(_) | HoldNotFound(_) | PayoutNotFound(_) | EntryNotFound(_) => "not-found",
        SameAccount => "same-account",
        SameCurrency(_) => "same-currency",
        CurrencyMismatch { .. } => "currency-mismatch",
        WrongAccountKind { .. } => "wrong-account-kind",
        DuplicateReference(_) => "duplicate-reference",
        AccountNotActive { .. } => "account-not-active",
        IllegalHoldTransition { .. } => "illegal-hold-transition",
        IllegalPayoutTransition { .. } => "illegal-payout-transition",
        HoldExpired(_) => "hold-expired",
        HoldNotExpired(_) => "hold-not-expired",
        CaptureExceedsHold => "capture-exceeds-hold",
        NotReversible(_) => "not-reversible",
        AlreadyReversed { .. } => "already-reversed",
        QuoteExpired => "quote-expired",
        QuoteMismatch => "quote-mismatch",
        ExchangeTooSmall => "exchange-too-small",
        InsufficientFunds(_) => "insufficient-funds",
        OverdraftExceeded(_) => "overdraft-exceeded",
        Overflow => "overflow",
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        _ if matches!(rejection, InsufficientFunds(_)) => "Insufficient funds",
        _ => "Refused by the ledger",
    };
    (status, kind, title)
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        ApiError::Rejected(rejection)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::BadCursor => ApiError::field("cursor", "not a cursor this service handed out"),
            StoreError::Duplicate(what) => {
                ApiError::Conflict { kind: "duplicate", detail: format!("{what} is already taken") }
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            LedgerError::Rejected(rejection) => ApiError::Rejected(rejection),
            LedgerError::Store(store) => store.into(),
            LedgerError::NoRate { base, quote } => ApiError::Rejected(Rejection::QuoteMismatch)
                .with_detail("no-rate", format!("no exchange rate from {base} to {quote}")),
            LedgerError::QuoteNotFound(_) => ApiError::NotFound("quote"),
            other => ApiError::internal(other),
        }
    }
}

impl ApiError {
    fn with_detail(self, kind: &'static str, detail: String) -> ApiError {
        match self {
            ApiError::Rejected(_) => ApiError::Conflict { kind, detail },
            other => other,
        }
    }
}

/// The documented error responses of every operation.
#[derive(ApiResponse, Debug)]
pub enum ErrorResponse {
    /// The request is malformed or a field is invalid.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, invalid or expired token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The operation needs the admin role.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource (or it is someone else's).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the resource's state, or the same Idempotency-Key is in flight.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The body is larger than the service accepts.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The ledger refused the request (e.g. insufficient funds), or the Idempotency-Key was
    /// used with a different request.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Too many requests; see `Retry-After`.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// Something failed on our side; quote the request id.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A dependency (the database) is unavailable.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

impl From<ApiError> for ErrorResponse {
    fn from(error: ApiError) -> ErrorResponse {
        let retry_after = match &error {
            ApiError::RateLimited { retry_after_secs } => *retry_after_secs,
            _ => 0,
        };
        let problem = Json(error.problem());
        match problem.0.status {
            400 => ErrorResponse::BadRequest(problem),
            401 => ErrorResponse::Unauthorized(problem),
            403 => ErrorResponse::Forbidden(problem),
            404 => ErrorResponse::NotFound(problem),
            409 => ErrorResponse::Conflict(problem),
            413 => ErrorResponse::PayloadTooLarge(problem),
            422 => ErrorResponse::Unprocessable(problem),
            429 => ErrorResponse::TooManyRequests(problem, retry_after),
            503 => ErrorResponse::Unavailable(problem),
            _ => ErrorResponse::Internal(problem),
        }
    }
}

/// What operations return on failure.
pub type ApiResult<T> = Result<T, ErrorResponse>;

/// A problem+json response for an error the framework raised (routing, parsing, body limits).
pub fn problem_response(status: StatusCode, detail: String) -> poem::Response {
    let (kind, title) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Payload too large"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Unauthorized"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("validation-error", "Invalid request"),
    };
    let detail = if status.is_server_error() {
        "an internal error occurred; quote the request id when reporting it".to_owned()
    } else {
        detail
    };
    let problem = Problem {
        kind: format!("/problems/{kind}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        instance: context::path(),
        request_id: context::request_id(),
        errors: None,
    };
    problem_body(status, &problem)
}

/// Renders a problem document as a response.
pub fn problem_body(status: StatusCode, problem: &Problem) -> poem::Response {
    let body = serde_json::to_vec(problem).expect("problems serialise");
    poem::Response::builder().status(status).content_type(PROBLEM_JSON).body(body)
}
