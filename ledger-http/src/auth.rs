//! Authentication: argon2id password hashes, HS256 access tokens (JWT with `iss`, `aud`, `exp`,
//! `sub` = user id, `role`), and the bearer security scheme every protected operation declares.
//!
//! Tokens are checked for signature, algorithm (HS256 only), issuer, audience and expiry with no
//! leeway. Admin operations also re-read the caller's role from storage, so a demoted admin's
//! token stops working for them at once.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger_core::{Role, Timestamp, UserId};
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::ApiError;
use crate::state::AppState;

/// The smallest accepted signing secret.
pub const SECRET_MIN_BYTES: usize = 32;

/// Who is calling, from a verified token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: UserId,
    /// The role the token was issued with.
    pub role: Role,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
}

/// Token issuing and checking.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("issuer", &self.issuer).field("audience", &self.audience).finish_non_exhaustive()
    }
}

impl Auth {
    /// Token handling with `secret` (at least [`SECRET_MIN_BYTES`]).
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    /// A token for `user` with `role`, and when it expires.
    pub fn issue(&self, user: UserId, role: Role, now: Timestamp) -> Result<(String, Timestamp), ApiError> {
        let expires_at = now.saturating_add(self.ttl);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.0.to_string(),
            role: role.as_str().to_owned(),
            iat: now.as_unix_secs(),
            exp: expires_at.as_unix_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, expires_at))
    }

    /// The caller a token names, if it is genuine and current.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("invalid or expired token".into()))?;
        let user = data.claims.sub.parse().map_err(|_| ApiError::Unauthorized("invalid token subject".into()))?;
        let role = Role::parse(&data.claims.role).ok_or_else(|| ApiError::Unauthorized("invalid token role".into()))?;
        Ok(Caller { user: UserId(user), role })
    }
}

/// Hashes a password with argon2id and a random salt (CPU-heavy: runs off the async threads).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// Checks a password against a stored hash. With no user (`hash` is `None`) it still spends the
/// same work on a dummy hash, so an unknown username takes as long as a wrong password.
pub async fn verify_password(hash: Option<String>, password: String) -> Result<bool, ApiError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"not a password anyone has", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone();
    let known = hash.is_some();
    let hash = hash.unwrap_or(dummy);
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(known && matches)
}

/// The bearer token security scheme: `Authorization: Bearer <JWT>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Caller);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state =
        req.data::<Arc<AppState>>().ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
    state
        .auth
        .verify(&bearer.token)
        .map_err(|error| poem::Error::from_string(error.to_string(), StatusCode::UNAUTHORIZED))
}
