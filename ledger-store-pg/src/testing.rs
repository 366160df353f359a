//! Test support: a fresh database per test, with the migrations applied (the pattern of sqlx's
//! `#[sqlx::test]`, usable from any crate's tests).
//!
//! A PostgreSQL server is found in this order:
//! 1. `DATABASE_URL` (any database on the server; the tests create their own next to it);
//! 2. a server on `localhost:5432` as user `postgres` (trust auth), as on our machines and CI;
//! 3. a container started through testcontainers, when the `testcontainers` feature is on and
//!    a Docker engine is available;
//!
//! otherwise the call fails with a message that says how to provide one.
//!
//! Each test database is a copy of a template database that has the migrations applied, made
//! once per migration set (`CREATE DATABASE ... TEMPLATE`, a file copy: much faster than
//! migrating every time). Call [`TestDatabase::drop_database`] at the end of a test to remove it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::{MIGRATOR, PgStore};

/// The server tried when `DATABASE_URL` is not set.
pub const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
    /// A pool connected to it.
    pub pool: PgPool,
    server: PgConnectOptions,
}

impl TestDatabase {
    /// A [`PgStore`] over this database.
    pub fn store(&self) -> PgStore {
        PgStore::new(self.pool.clone())
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(self) {
        self.pool.close().await;
        if let Ok(mut admin) = self.server.connect().await {
            let _ =
                sqlx::query(sql!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut admin).await;
        }
    }
}

/// Why no test database could be made.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No server was reachable by any of the ways tried.
    #[error(
        "no PostgreSQL server for the tests: tried {tried}. Set DATABASE_URL=postgres://user@host:port/db, \
         start PostgreSQL on localhost:5432 with user `postgres` (trust auth), or build with the `testcontainers` \
         feature and a running Docker engine"
    )]
    NoServer {
        /// What was tried and how it failed.
        tried: String,
    },
    /// The server answered but refused to make the database.
    #[error("could not prepare a test database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations failed.
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Makes a fresh, migrated database on the first server found.
pub async fn fresh_database() -> Result<TestDatabase, HarnessError> {
    let server = find_server().await?;
    let template = ensure_template(&server).await?;
    let name = format!("ledger_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = server.connect().await?;
    // Copying a template fails while anyone is connected to it; that is only ever a concurrent
    // copy finishing, so a short retry settles it.
    let mut attempts = 0;
    loop {
        match sqlx::query(sql!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).execute(&mut admin).await {
            Ok(_) => break,
            Err(_) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    admin.close().await?;
    let options = server.clone().database(&name);
    let pool = PgPoolOptions::new().max_connections(24).connect_with(options.clone()).await?;
    Ok(TestDatabase { url: options.to_url_lossy().to_string(), name, pool, server })
}

async fn find_server() -> Result<PgConnectOptions, HarnessError> {
    let mut tried = Vec::new();
    let candidates = match std::env::var("DATABASE_URL") {
        Ok(url) => vec![("DATABASE_URL", url)],
        Err(_) => vec![("localhost:5432", LOCAL_SERVER.to_owned())],
    };
    for (label, url) in candidates {
        let options: PgConnectOptions = match url.parse() {
            Ok(options) => options,
            Err(error) => {
                tried.push(format!("{label} ({error})"));
                continue;
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
            Ok(Ok(conn)) => {
                conn.close().await?;
                return Ok(options);
            }
            Ok(Err(error)) => tried.push(format!("{label} ({error})")),
            Err(_) => tried.push(format!("{label} (timed out)")),
        }
    }
    container_server(&mut tried).await
}

#[cfg(feature = "testcontainers")]
async fn container_server(tried: &mut Vec<String>) -> Result<PgConnectOptions, HarnessError> {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use tokio::sync::OnceCell;

    // One container per test process, kept for its lifetime (testcontainers' reaper removes it).
    static CONTAINER: OnceCell<Result<String, String>> = OnceCell::const_new();
    let url = CONTAINER
        .get_or_init(|| async {
            let container = Postgres::default().start().await.map_err(|e| e.to_string())?;
            let port = container.get_host_port_ipv4(5432).await.map_err(|e| e.to_string())?;
            std::mem::forget(container);
            Ok(format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"))
        })
        .await;
    match url {
        Ok(url) => Ok(url.parse()?),
        Err(error) => {
            tried.push(format!("testcontainers ({error})"));
            Err(HarnessError::NoServer { tried: tried.join(", ") })
        }
    }
}

#[cfg(not(feature = "testcontainers"))]
async fn container_server(tried: &mut Vec<String>) -> Result<PgConnectOptions, HarnessError> {
    tried.push("testcontainers (feature `testcontainers` not enabled)".to_owned());
    Err(HarnessError::NoServer { tried: tried.join(", ") })
}

/// The name of a template database with the current migrations applied, made if missing.
async fn ensure_template(server: &PgConnectOptions) -> Result<String, HarnessError> {
    // Name the template after the migrations' checksums, so a changed migration gets a new one.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            digest = (digest ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let template = format!("ledger_template_{digest:016x}");
    let mut admin = server.connect().await?;
    // Serialise template creation across test processes on this server.
    sqlx::query("SELECT pg_advisory_lock(742001)").execute(&mut admin).await?;
    let result = create_template(&mut admin, server, &template).await;
    sqlx::query("SELECT pg_advisory_unlock(742001)").execute(&mut admin).await?;
    admin.close().await?;
    result.map(|()| template)
}

async fn create_template(
    admin: &mut PgConnection,
    server: &PgConnectOptions,
    template: &str,
) -> Result<(), HarnessError> {
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(template)
        .fetch_optional(&mut *admin)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    let building = format!("{template}_building");
    sqlx::query(sql!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).execute(&mut *admin).await?;
    sqlx::query(sql!("CREATE DATABASE \"{building}\"")).execute(&mut *admin).await?;
    let mut conn = server.clone().database(&building).connect().await?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    // Renaming last means a half-built template is never used.
    sqlx::query(sql!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\"")).execute(&mut *admin).await?;
    Ok(())
}
