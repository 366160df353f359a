//! The Redis fast path for idempotency replays. PostgreSQL (or the in-memory store) stays the
//! source of truth: a response is cached only after the transaction that wrote its record
//! committed, and a cache miss, error or timeout simply falls through to the store. So Redis never
//! decides anything alone, and when it is down the service keeps working, a little slower.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::UserId;
use ledger_core::ports::{Fingerprint, IdempotencyKey, StoredResponse};
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

/// How long a cache call may take before it is abandoned for the store.
const CALL_TIMEOUT: Duration = Duration::from_millis(50);

/// A cached completed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    /// The first request's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its response.
    pub response: StoredResponse,
}

/// The cache, connected lazily: a Redis that is down at start is retried in the background.
#[derive(Clone)]
pub struct IdempotencyCache {
    client: redis::Client,
    connection: Arc<RwLock<Option<ConnectionManager>>>,
}

impl std::fmt::Debug for IdempotencyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyCache").finish_non_exhaustive()
    }
}

fn cache_key(scope: UserId, key: &IdempotencyKey) -> String {
    // Keys may hold any printable character: hash them, so they cannot collide across scopes.
    format!("ledger:idem:{}:{}", scope.0, hex::encode(Sha256::digest(key.as_str().as_bytes())))
}

impl IdempotencyCache {
    /// A cache over `url`; connects now if it can, and keeps trying in the background if not.
    pub async fn start(url: &str) -> Result<IdempotencyCache, String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        let cache = IdempotencyCache { client, connection: Arc::default() };
        if !cache.connect().await {
            tracing::warn!("Redis is unreachable; idempotency replays use the store until it answers");
            let retry = cache.clone();
            tokio::spawn(async move {
                while !retry.connect().await {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                tracing::info!("Redis connected: idempotency fast path on");
            });
        }
        Ok(cache)
    }

    async fn connect(&self) -> bool {
        let manager = tokio::time::timeout(Duration::from_secs(2), ConnectionManager::new(self.client.clone())).await;
        match manager {
            Ok(Ok(manager)) => {
                *self.connection.write().await = Some(manager);
                true
            }
            _ => false,
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        self.connection.read().await.clone()
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else { return false };
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(_)))
    }

    /// The cached response for a key, if Redis has it and answers in time.
    pub async fn get(&self, scope: UserId, key: &IdempotencyKey) -> Option<Cached> {
        let mut conn = self.connection().await?;
        let mut command = redis::cmd("GET");
        command.arg(cache_key(scope, key));
        let get = command.query_async::<Option<Vec<u8>>>(&mut conn);
        let value = tokio::time::timeout(CALL_TIMEOUT, get).await.ok()?.ok()??;
        // Layout: 32 bytes of fingerprint, 2 bytes of status, then the body.
        if value.len() < 34 {
            return None;
        }
        let fingerprint = Fingerprint(value[..32].try_into().ok()?);
        let status = u16::from_be_bytes([value[32], value[33]]);
        Some(Cached { fingerprint, response: StoredResponse { status, body: value[34..].to_vec() } })
    }

    /// Caches a completed response for `ttl` (best effort).
    pub async fn put(
        &self,
        scope: UserId,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        response: &StoredResponse,
        ttl: Duration,
    ) {
        let Some(mut conn) = self.connection().await else { return };
        let mut value = Vec::with_capacity(34 + response.body.len());
        value.extend_from_slice(&fingerprint.0);
        value.extend_from_slice(&response.status.to_be_bytes());
        value.extend_from_slice(&response.body);
        let mut command = redis::cmd("SET");
        command.arg(cache_key(scope, key)).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        let set = command.query_async::<()>(&mut conn);
        if !matches!(tokio::time::timeout(CALL_TIMEOUT, set).await, Ok(Ok(()))) {
            tracing::debug!("caching an idempotent response in Redis failed; the store still has it");
        }
    }
}
