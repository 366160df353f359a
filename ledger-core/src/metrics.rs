//! The Prometheus text of the background work (payout pipeline and webhook relay), shared by
//! the service's `/metrics` (when it runs them in-process) and the worker's metrics listener.
//! Pure string building: the caller gathers the numbers.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::ids::Timestamp;
use crate::pipeline::{BreakerState, PipelineTotals};
use crate::ports::QueueStats;
use crate::webhook::{RelayTotals, WebhookBacklog};

/// What to render; parts left `None` are not printed.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerMetrics<'a> {
    /// The pipeline's totals and its breaker now.
    pub pipeline: Option<(&'a PipelineTotals, BreakerState)>,
    /// The relay's totals.
    pub relay: Option<&'a RelayTotals>,
    /// The payout queue, and the instant its oldest item's age is measured at.
    pub queue: Option<(QueueStats, Timestamp)>,
    /// Webhook work waiting.
    pub backlog: Option<WebhookBacklog>,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl WorkerMetrics<'_> {
    /// Appends the exposition text to `out`.
    pub fn render(&self, out: &mut String) {
        if let Some((totals, breaker)) = self.pipeline {
            family(out, "ledger_worker_payouts_total", "counter", "Payout pipeline items by what happened to them.");
            for (outcome, counter) in [
                ("claimed", &totals.claimed),
                ("completed", &totals.completed),
                ("failed", &totals.failed),
                ("manual_review", &totals.manual_review),
                ("retried", &totals.retried),
                ("skipped", &totals.skipped),
            ] {
                let _ = writeln!(
                    out,
                    "ledger_worker_payouts_total{{outcome=\"{outcome}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
            family(out, "ledger_worker_breaker_state", "gauge", "Bank circuit breaker: 0 closed, 1 half-open, 2 open.");
            let state = match breaker {
                BreakerState::Closed { .. } => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open { .. } => 2,
            };
            let _ = writeln!(out, "ledger_worker_breaker_state {state}");
        }
        if let Some((queue, now)) = self.queue {
            family(out, "ledger_payout_queue_depth", "gauge", "Payouts and deposits PENDING or PROCESSING.");
            let _ = writeln!(out, "ledger_payout_queue_depth {}", queue.depth);
            family(out, "ledger_payout_queue_oldest_age_seconds", "gauge", "Age of the oldest queued item.");
            let age = queue.oldest_created_at.map_or(0, |at| (now.as_unix_secs() - at.as_unix_secs()).max(0));
            let _ = writeln!(out, "ledger_payout_queue_oldest_age_seconds {age}");
        }
        if let Some(totals) = self.relay {
            family(out, "ledger_webhook_deliveries_total", "counter", "Webhook delivery attempts by result.");
            for (result, counter) in [
                ("delivered", &totals.delivered),
                ("retried", &totals.retried),
                ("dead_lettered", &totals.dead_lettered),
            ] {
                let _ = writeln!(
                    out,
                    "ledger_webhook_deliveries_total{{result=\"{result}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
            family(out, "ledger_webhook_events_fanned_out_total", "counter", "Outbox events fanned out to endpoints.");
            let _ =
                writeln!(out, "ledger_webhook_events_fanned_out_total {}", totals.fanned_out.load(Ordering::Relaxed));
        }
        if let Some(backlog) = self.backlog {
            family(out, "ledger_webhook_pending_deliveries", "gauge", "Webhook deliveries waiting to be sent.");
            let _ = writeln!(out, "ledger_webhook_pending_deliveries {}", backlog.pending_deliveries);
            family(out, "ledger_outbox_unpublished_events", "gauge", "Outbox events not yet fanned out.");
            let _ = writeln!(out, "ledger_outbox_unpublished_events {}", backlog.unpublished_events);
        }
    }
}
