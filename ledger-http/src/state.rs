//! The service's shared state and how it is built from [`Config`]: which store (in memory by
//! default, PostgreSQL with `DATABASE_URL`), the token secret, the admin ensured at start and the
//! house accounts of the configured currencies.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::{AccountId, Clock, Currency, FullStore, IdGenerator, Ledger, MemoryStore, Role, User, UserId};
use ledger_store_pg::system::{SystemClock, UuidV7};
use ledger_store_pg::{GroupCommitConfig, PgStore};

use crate::auth::{Auth, Caller, SECRET_MIN_BYTES, hash_password};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum Storage {
    /// In memory: lost at exit.
    Memory,
    /// PostgreSQL.
    Postgres(PgStore),
}

/// Everything a request handler needs.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// The store, behind every port.
    pub store: Arc<dyn FullStore>,
    /// The ledger facade over the store.
    pub ledger: Ledger<dyn FullStore>,
    /// Token issuing and checking.
    pub auth: Auth,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Which backend.
    pub storage: Storage,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Rate limiters.
    pub limits: crate::rate_limit::Limits,
    /// The Redis idempotency fast path, when `REDIS_URL` is set.
    pub cache: Option<crate::cache::IdempotencyCache>,
    /// The payout pipeline and webhook relay, when they run in this process (for metrics).
    pub background: std::sync::OnceLock<Background>,
    /// Turned true at shutdown: the background loops stop after the pass in hand.
    pub background_stop: tokio::sync::watch::Sender<bool>,
}

/// The background work running in-process.
pub struct Background {
    /// The payout pipeline, if running.
    pub pipeline: Option<Arc<ledger_core::pipeline::Pipeline<dyn FullStore, dyn ledger_core::PayoutProvider>>>,
    /// The webhook relay, if running.
    pub relay: Option<Arc<ledger_core::webhook::Relay<dyn FullStore, dyn ledger_core::webhook::WebhookTransport>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("storage", &self.storage).finish_non_exhaustive()
    }
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(String),
    /// Something else failed while starting.
    #[error("start-up: {0}")]
    Other(String),
}

impl AppState {
    /// Builds the state: connects (and migrates) the store, checks the secret, ensures the admin
    /// and the house accounts.
    pub async fn build(config: Config) -> Result<Arc<AppState>, StartError> {
        let secret = token_secret(&config)?;
        let failure = config.sim_failure.as_str();
        if failure != "mixed" && ledger_store_pg::system::SimulatedFailure::parse(failure).is_none() {
            return Err(StartError::Config(format!(
                "LEDGER_SIM_FAILURE must be mixed, timeout, unavailable, insufficient_funds or rejected, not {failure:?}"
            )));
        }
        let (store, storage): (Arc<dyn FullStore>, Storage) = match &config.database_url {
            Some(url) => {
                let pg = PgStore::connect_with(url, 32).await.map_err(|e| StartError::Database(e.to_string()))?;
                let grouped = pg.clone().with_group_commit(GroupCommitConfig::default());
                (Arc::new(grouped), Storage::Postgres(pg))
            }
            None => {
                tracing::warn!("no DATABASE_URL: data is kept in memory only and is lost when the process exits");
                (Arc::new(MemoryStore::new()), Storage::Memory)
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7);
        let ledger = Ledger::new(store.clone(), clock.clone(), ids);
        let auth = Auth::new(&secret, &config.jwt_issuer, &config.jwt_audience, config.token_ttl());
        let limits = crate::rate_limit::Limits::new(&config);
        let cache = match &config.redis_url {
            Some(url) => Some(crate::cache::IdempotencyCache::start(url).await.map_err(StartError::Config)?),
            None => None,
        };
        let state = AppState {
            config,
            store,
            ledger,
            auth,
            metrics: Arc::default(),
            storage,
            clock,
            limits,
            cache,
            background: std::sync::OnceLock::new(),
            background_stop: tokio::sync::watch::Sender::new(false),
        };
        state.open_house_accounts().await?;
        state.ensure_admin().await?;
        Ok(Arc::new(state))
    }

    async fn open_house_accounts(&self) -> Result<(), StartError> {
        for code in &self.config.currencies {
            let currency = Currency::parse(code.trim()).map_err(|e| StartError::Config(e.to_string()))?;
            self.ledger.open_system_accounts(currency).await.map_err(|e| StartError::Other(e.to_string()))?;
        }
        Ok(())
    }

    /// Creates the configured admin if missing, or gives an existing user of that name the admin
    /// role. The password is only set when the user is created.
    async fn ensure_admin(&self) -> Result<(), StartError> {
        let (Some(username), Some(password)) = (&self.config.admin_username, &self.config.admin_password) else {
            return Ok(());
        };
        let existing = self.store.user_by_username(username).await.map_err(|e| StartError::Other(e.to_string()))?;
        match existing {
            Some(user) if user.role == Role::Admin => {}
            Some(user) => {
                self.store.set_role(user.id, Role::Admin).await.map_err(|e| StartError::Other(e.to_string()))?;
            }
            None => {
                let hash = hash_password(password.clone()).await.map_err(|e| StartError::Other(e.to_string()))?;
                let user = User {
                    id: self.ledger.new_id(),
                    username: username.clone(),
                    email: format!("{username}@admin.invalid"),
                    password_hash: hash,
                    role: Role::Admin,
                    created_at: self.clock.now(),
                };
                self.store.create_user(user).await.map_err(|e| StartError::Other(e.to_string()))?;
            }
        }
        tracing::info!(admin = %username, "admin ensured");
        Ok(())
    }

    /// Fails unless the caller is an admin now (the role is re-read from storage).
    pub async fn require_admin(&self, caller: &Caller) -> Result<(), ApiError> {
        let user = self.store.user(caller.user).await?;
        match user {
            Some(user) if user.role == Role::Admin => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// The account, if the caller may see it (its owner, or an admin); someone else's answers
    /// "not found", exactly like a missing one.
    pub async fn visible_account(&self, caller: &Caller, id: AccountId) -> Result<ledger_core::Account, ApiError> {
        let account = self.store.account(id).await?.ok_or(ApiError::NotFound("account"))?;
        if account.owner == Some(caller.user) || self.is_admin(caller).await? {
            Ok(account)
        } else {
            Err(ApiError::NotFound("account"))
        }
    }

    /// The account, if the caller owns it: moving money out of an account needs ownership, even
    /// for an admin. Anything else answers "not found".
    pub async fn own_account(&self, caller: &Caller, id: AccountId) -> Result<ledger_core::Account, ApiError> {
        let account = self.store.account(id).await?.ok_or(ApiError::NotFound("account"))?;
        if account.owner == Some(caller.user) { Ok(account) } else { Err(ApiError::NotFound("account")) }
    }

    /// True when the caller is an admin now.
    pub async fn is_admin(&self, caller: &Caller) -> Result<bool, ApiError> {
        if caller.role != Role::Admin {
            return Ok(false);
        }
        Ok(self.store.user(caller.user).await?.is_some_and(|u| u.role == Role::Admin))
    }

    /// A fresh id.
    pub fn new_id<T: From<uuid::Uuid>>(&self) -> T {
        self.ledger.new_id()
    }

    /// The idempotency lease: how long a started request holds its key before another attempt
    /// may take it over (a crashed holder releases it this way).
    pub fn idempotency_lease(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// The owner a new account gets: the caller, or for an admin the `user_id` they name.
    pub fn owner_for(&self, caller: &Caller, requested: Option<UserId>, admin: bool) -> Result<UserId, ApiError> {
        match requested {
            Some(user) if admin => Ok(user),
            Some(user) if user == caller.user => Ok(user),
            Some(_) => Err(ApiError::Forbidden),
            None => Ok(caller.user),
        }
    }
}

/// The token secret: configured (at least 32 bytes), or, in memory mode only, random.
fn token_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    match (&config.jwt_secret, &config.database_url) {
        (Some(secret), _) if secret.len() >= SECRET_MIN_BYTES => Ok(secret.as_bytes().to_vec()),
        (Some(_), _) => Err(StartError::Config(format!("LEDGER_JWT_SECRET must be at least {SECRET_MIN_BYTES} bytes"))),
        (None, Some(_)) => Err(StartError::Config(
            "LEDGER_JWT_SECRET is required with DATABASE_URL (tokens must survive restarts and be shared by replicas)"
                .into(),
        )),
        (None, None) => {
            tracing::warn!("no LEDGER_JWT_SECRET: using a random one; tokens will not survive a restart");
            let mut secret = Vec::with_capacity(64);
            while secret.len() < 64 {
                secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            }
            Ok(secret)
        }
    }
}
