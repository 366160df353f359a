//! Prometheus metrics, kept in process and rendered in the text exposition format at
//! `/metrics`: HTTP requests and latency by route and status, money moved by currency, payouts by
//! status, idempotent replays and rate-limited requests.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds (as text, to keep floats out of the service).
const BUCKETS_MS: [u64; 10] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000];

#[derive(Default, Debug)]
struct Series {
    count: u64,
    sum_us: u128,
    buckets: [u64; BUCKETS_MS.len()],
}

/// Every metric of the service.
#[derive(Default, Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
    counters: Mutex<BTreeMap<(&'static str, String), u128>>,
}

impl Metrics {
    /// Records one HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let series = requests.entry((method.to_owned(), route.to_owned(), status)).or_default();
        series.count += 1;
        series.sum_us += latency.as_micros();
        let ms = latency.as_millis();
        for (bound, bucket) in BUCKETS_MS.iter().zip(series.buckets.iter_mut()) {
            if ms <= u128::from(*bound) {
                *bucket += 1;
            }
        }
    }

    /// Adds to a labelled counter, e.g. `("ledger_money_moved_micros_total", "USD")`.
    pub fn add(&self, name: &'static str, label: &str, by: u128) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry((name, label.to_owned())).or_default() += by;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP ledger_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE ledger_http_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), series) in requests.iter() {
            let _ = writeln!(
                out,
                "ledger_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                series.count
            );
        }
        out.push_str("# HELP ledger_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE ledger_http_request_duration_seconds histogram\n");
        for ((method, route, status), series) in requests.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (bound, count) in BUCKETS_MS.iter().zip(series.buckets.iter()) {
                let le = format!("{}.{:03}", bound / 1_000, bound % 1_000);
                let _ = writeln!(out, "ledger_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}");
            }
            let _ =
                writeln!(out, "ledger_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", series.count);
            let sum = format!("{}.{:06}", series.sum_us / 1_000_000, series.sum_us % 1_000_000);
            let _ = writeln!(out, "ledger_http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "ledger_http_request_duration_seconds_count{{{labels}}} {}", series.count);
        }
        drop(requests);
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, label), value) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let key = match *name {
                "ledger_money_moved_micros_total" => "currency",
                "ledger_payouts_total" => "status",
                _ => "kind",
            };
            let _ = writeln!(out, "{name}{{{key}=\"{label}\"}} {value}");
        }
        out
    }
}

/// The recon gauges: when the last clean ledger run finished (Unix seconds, 0 if never: alert
/// on `time() - ledger_recon_last_clean_run_timestamp_seconds`) and how many discrepancies the
/// last finished run found.
pub fn render_recon(out: &mut String, summary: &ledger_core::ports::ReconSummary) {
    out.push_str("# HELP ledger_recon_last_clean_run_timestamp_seconds When the last clean recon run finished.\n");
    out.push_str("# TYPE ledger_recon_last_clean_run_timestamp_seconds gauge\n");
    let clean = summary.last_clean_at.map_or(0, |at| at.as_unix_micros() / 1_000_000);
    let _ = writeln!(out, "ledger_recon_last_clean_run_timestamp_seconds {clean}");
    if let Some(found) = summary.last_discrepancies {
        out.push_str(
            "# HELP ledger_recon_last_run_discrepancies Discrepancies found by the last finished recon run.\n",
        );
        out.push_str("# TYPE ledger_recon_last_run_discrepancies gauge\n");
        let _ = writeln!(out, "ledger_recon_last_run_discrepancies {found}");
    }
}
