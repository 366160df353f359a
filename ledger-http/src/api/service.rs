//! Liveness and readiness probes and the Prometheus metrics endpoint.

use std::sync::Arc;

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
use crate::state::{AppState, Storage};

/// Probes and metrics.
pub struct ServiceApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A probe's answer.
#[derive(Object)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `memory` or `postgres`.
    pub storage: String,
}

/// Readiness.
#[derive(ApiResponse)]
pub enum Ready {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// A dependency (the database) does not answer.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

/// Metrics.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// The Prometheus text exposition format.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4")]
    Ok(PlainText<String>),
    /// Metrics are turned off (`LEDGER_METRICS=false`).
    #[oai(status = 404)]
    Disabled,
}

#[OpenApi(tag = "Tag::Service")]
impl ServiceApi {
    /// The process is up.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> Json<Health> {
        Json(Health { status: "ok".into(), storage: self.storage().into() })
    }

    /// The service can serve: the database (and Redis, when configured) answers.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> Ready {
        let database = match &self.state.storage {
            Storage::Memory => true,
            Storage::Postgres(pg) => sqlx_ping(pg).await,
        };
        let redis = match &self.state.cache {
            Some(cache) => cache.ping().await,
            None => true,
        };
        let ok = database && redis;
        let health = Health { status: if ok { "ok" } else { "unavailable" }.into(), storage: self.storage().into() };
        if ok { Ready::Ready(Json(health)) } else { Ready::NotReady(Json(health)) }
    }

    /// Prometheus metrics.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> MetricsResponse {
        if self.state.config.metrics {
            let state = &self.state;
            let mut text = state.metrics.render();
            let background = state.background.get();
            let pipeline = background.and_then(|b| b.pipeline.as_ref());
            // The queue and backlog are read from storage, so they are true whoever runs the work.
            let worker = ledger_core::metrics::WorkerMetrics {
                pipeline: pipeline.map(|p| (p.totals(), p.breaker().state())),
                relay: background.and_then(|b| b.relay.as_ref()).map(|r| r.totals()),
                queue: state.store.queue_stats().await.ok().map(|q| (q, state.ledger.now())),
                backlog: state.store.webhook_backlog().await.ok(),
            };
            worker.render(&mut text);
            if let Ok(summary) = state.store.recon_summary().await {
                crate::metrics::render_recon(&mut text, &summary);
            }
            MetricsResponse::Ok(PlainText(text))
        } else {
            MetricsResponse::Disabled
        }
    }
}

impl ServiceApi {
    fn storage(&self) -> &'static str {
        match self.state.storage {
            Storage::Memory => "memory",
            Storage::Postgres(_) => "postgres",
        }
    }
}

async fn sqlx_ping(pg: &ledger_store_pg::PgStore) -> bool {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), pg.ping());
    matches!(ping.await, Ok(Ok(())))
}
