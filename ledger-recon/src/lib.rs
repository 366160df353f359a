//! `ledger-recon`: an independent check, meant for cron, that the ledger in PostgreSQL is still
//! right, and a matcher of bank statements against it.
//!
//! - [`run::run_ledger`] checks the books: per account, the stored balance against its postings,
//!   the running balances and the hash chain ([`ledger_core::chain`]); per entry, the balance
//!   per currency; per currency, the zero sum; per payout, its postings against its status and
//!   its lease; per hold, its expiry. The work is split into account-range chunks that any
//!   number of processes share, and incremental runs start from per-account checkpoints.
//! - [`statement::match_statement`] matches a bank settlement statement (CSV) against payouts
//!   and deposits.
//!
//! Both store their [`Report`] in `recon_runs`, where the HTTP service serves it.

pub mod report;
pub mod run;
pub mod statement;
pub mod verify;

pub use report::{Check, Finding, Outcome, Report, Stats};
pub use run::{Settings, run_ledger};
pub use statement::match_statement;

/// Why a run could not be done (exit code 2), as opposed to a run that found discrepancies.
#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    /// The database failed or refused.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The bank statement cannot be read.
    #[error("bad statement: {0}")]
    Statement(String),
    /// Something recon itself could not make sense of.
    #[error("{0}")]
    Internal(String),
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `1h` or `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 30s, 15m, 1h or 1d"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)")),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
