//! What a run found, as data (stored in `recon_runs.report`, printed with `--json`) and as a
//! readable table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The checks, in the order reports list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// An entry's postings in one currency do not sum to zero.
    EntryUnbalanced,
    /// A posting is in another currency than its account.
    PostingMisplaced,
    /// An account's stored posted balance is not the sum of its postings.
    PostedMismatch,
    /// An account's stored pending figure is not the sum of its open holds.
    PendingMismatch,
    /// A posting's running balance does not follow from the one before it.
    RunningBalanceBroken,
    /// A posting's hash-chain link is not the hash of its content and the link before it.
    HashChainBroken,
    /// An account's stored chain head is not its last posting's link (a posting was removed).
    ChainHeadMismatch,
    /// Per currency, all balances do not sum to zero.
    CurrencyNotConserved,
    /// A completed payout (or deposit) has no settle (deposit) postings.
    PayoutNotSettled,
    /// A failed or cancelled payout has no release postings.
    PayoutNotReleased,
    /// Funds are still held in clearing for a finished payout.
    FundsHeldForTerminalPayout,
    /// A live payout's funds are not (all) in clearing.
    FundsMissingForLivePayout,
    /// A payout has been PROCESSING past its lease by more than the margin.
    PayoutStuckProcessing,
    /// A hold is past its expiry by more than the margin and still open.
    HoldPastExpiry,
    /// A statement line matches a ledger item.
    Matched,
    /// A statement line has no payout or deposit in the ledger.
    MissingInLedger,
    /// A completed payout or deposit in the statement's period is not on the statement.
    MissingAtBank,
    /// A statement line and its ledger item differ in amount.
    AmountMismatch,
    /// A statement line and its ledger item differ in currency.
    CurrencyMismatch,
    /// A statement line and its ledger item differ in direction.
    DirectionMismatch,
    /// The bank shows money moved for an item the ledger has not completed.
    StatusMismatch,
    /// Two statement lines name the same ledger item.
    DuplicateAtBank,
}

impl Check {
    /// The ledger checks, for the summary table (every one is listed, with "ok" when clean).
    pub const LEDGER: [Check; 14] = [
        Check::EntryUnbalanced,
        Check::PostingMisplaced,
        Check::PostedMismatch,
        Check::PendingMismatch,
        Check::RunningBalanceBroken,
        Check::HashChainBroken,
        Check::ChainHeadMismatch,
        Check::CurrencyNotConserved,
        Check::PayoutNotSettled,
        Check::PayoutNotReleased,
        Check::FundsHeldForTerminalPayout,
        Check::FundsMissingForLivePayout,
        Check::PayoutStuckProcessing,
        Check::HoldPastExpiry,
    ];

    /// The statement outcomes, for the summary table.
    pub const STATEMENT: [Check; 8] = [
        Check::Matched,
        Check::MissingInLedger,
        Check::MissingAtBank,
        Check::AmountMismatch,
        Check::CurrencyMismatch,
        Check::DirectionMismatch,
        Check::StatusMismatch,
        Check::DuplicateAtBank,
    ];

    /// The stable snake_case name.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    fn title(self) -> &'static str {
        match self {
            Check::EntryUnbalanced => "every entry balances per currency",
            Check::PostingMisplaced => "postings are in their account's currency",
            Check::PostedMismatch => "stored balances equal the sum of postings",
            Check::PendingMismatch => "pending equals the open holds",
            Check::RunningBalanceBroken => "running balances chain without gaps",
            Check::HashChainBroken => "hash chains verify",
            Check::ChainHeadMismatch => "chain heads match the last posting",
            Check::CurrencyNotConserved => "each currency sums to zero",
            Check::PayoutNotSettled => "completed payouts are settled",
            Check::PayoutNotReleased => "failed/cancelled payouts are released",
            Check::FundsHeldForTerminalPayout => "no funds held for finished payouts",
            Check::FundsMissingForLivePayout => "live payouts' funds are in clearing",
            Check::PayoutStuckProcessing => "no payout stuck past its lease",
            Check::HoldPastExpiry => "no open hold past its expiry",
            Check::Matched => "matched",
            Check::MissingInLedger => "missing in the ledger",
            Check::MissingAtBank => "missing at the bank",
            Check::AmountMismatch => "amount mismatch",
            Check::CurrencyMismatch => "currency mismatch",
            Check::DirectionMismatch => "direction mismatch",
            Check::StatusMismatch => "paid at the bank, not completed here",
            Check::DuplicateAtBank => "the same item twice on the statement",
        }
    }
}

/// One thing found, with what it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// The account involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// The entry involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Uuid>,
    /// The posting (its global sequence number) where a chain breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posting_seq: Option<i64>,
    /// The payout or deposit involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<Uuid>,
    /// The hold involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Uuid>,
    /// The currency involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The statement line (1-based, header is line 1) or bank reference involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The reference on the statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// What exactly differs.
    pub detail: String,
}

impl Finding {
    /// A finding of `check` with only its detail filled in.
    pub fn new(check: Check, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            account: None,
            entry: None,
            posting_seq: None,
            payout: None,
            hold: None,
            currency: None,
            line: None,
            reference: None,
            detail: detail.into(),
        }
    }

    fn subject(&self) -> String {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(reference) = &self.reference {
            parts.push(format!("ref {reference}"));
        }
        if let Some(account) = self.account {
            parts.push(format!("account {account}"));
        }
        if let Some(entry) = self.entry {
            parts.push(format!("entry {entry}"));
        }
        if let Some(seq) = self.posting_seq {
            parts.push(format!("posting #{seq}"));
        }
        if let Some(payout) = self.payout {
            parts.push(format!("payout {payout}"));
        }
        if let Some(hold) = self.hold {
            parts.push(format!("hold {hold}"));
        }
        if let Some(currency) = &self.currency {
            parts.push(currency.clone());
        }
        parts.join(", ")
    }
}

/// How much a run read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Chunks the run was split into.
    pub chunks: u64,
    /// Accounts checked.
    pub accounts: u64,
    /// Postings read (in an incremental run, only those after the checkpoints).
    pub postings_read: u64,
    /// Entries whose balance was checked.
    pub entries_checked: u64,
    /// Payouts checked.
    pub payouts_checked: u64,
    /// Statement lines read (statement matches).
    pub statement_lines: u64,
}

impl Stats {
    /// Adds another chunk's counts.
    pub fn add(&mut self, other: &Stats) {
        self.chunks += other.chunks;
        self.accounts += other.accounts;
        self.postings_read += other.postings_read;
        self.entries_checked += other.entries_checked;
        self.payouts_checked += other.payouts_checked;
        self.statement_lines += other.statement_lines;
    }
}

/// Whether a run found anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything holds.
    Clean,
    /// Something does not.
    Discrepancies,
}

/// A finished run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The run's id (in `recon_runs`).
    pub run_id: Uuid,
    /// `ledger` or `statement`.
    pub kind: String,
    /// `full` or `incremental` (ledger runs).
    pub mode: String,
    /// Clean or not.
    pub outcome: Outcome,
    /// When it started and finished (RFC 3339, database clock).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// What it read.
    pub stats: Stats,
    /// A SHA-256 over every account's chain head, in account order: copy it somewhere outside the
    /// database, and a later rewrite of the chains shows as a different digest for the same
    /// history (ledger runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_digest: Option<String>,
    /// Statement matches that agreed (statement runs).
    #[serde(default)]
    pub matched: u64,
    /// Everything found, most fundamental first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The exit code of a run with this report: 0 clean, 1 discrepancies.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Clean => 0,
            Outcome::Discrepancies => 1,
        }
    }

    /// The report as a readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let outcome = match self.outcome {
            Outcome::Clean => "CLEAN".to_owned(),
            Outcome::Discrepancies => format!("{} DISCREPANCIES", self.findings.len()),
        };
        let _ = writeln!(out, "ledger-recon {} run {} ({}): {outcome}", self.kind, self.run_id, self.mode);
        let _ = writeln!(out, "started {}  finished {}", self.started_at, self.finished_at);
        let s = &self.stats;
        if self.kind == "statement" {
            let _ = writeln!(out, "read {} statement lines", s.statement_lines);
        } else {
            let _ = writeln!(
                out,
                "read {} accounts, {} postings, {} entries, {} payouts in {} chunks",
                s.accounts, s.postings_read, s.entries_checked, s.payouts_checked, s.chunks
            );
        }
        if let Some(digest) = &self.ledger_digest {
            let _ = writeln!(out, "ledger digest {digest}");
        }
        out.push('\n');
        let checks: &[Check] = if self.kind == "statement" { &Check::STATEMENT } else { &Check::LEDGER };
        let _ = writeln!(out, "{:<44} RESULT", "CHECK");
        for check in checks {
            let count = if *check == Check::Matched {
                let _ = writeln!(out, "{:<44} {}", check.title(), self.matched);
                continue;
            } else {
                self.findings.iter().filter(|f| f.check == *check).count()
            };
            let result = if count == 0 { "ok".to_owned() } else { format!("{count} FOUND") };
            let _ = writeln!(out, "{:<44} {result}", check.title());
        }
        if !self.findings.is_empty() {
            let _ = writeln!(out, "\n{:<30} {:<60} DETAIL", "DISCREPANCY", "WHERE");
            for f in &self.findings {
                let _ = writeln!(out, "{:<30} {:<60} {}", f.check.name(), f.subject(), f.detail);
            }
        }
        out
    }
}

/// Micros as a decimal amount (`-12.340000`), for details.
pub fn amount(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_decimals() {
        assert_eq!(amount(0), "0.000000");
        assert_eq!(amount(-12_340_000), "-12.340000");
        assert_eq!(amount(1), "0.000001");
    }

    #[test]
    fn check_names_are_snake_case() {
        assert_eq!(Check::HashChainBroken.name(), "hash_chain_broken");
        assert_eq!(Check::MissingAtBank.name(), "missing_at_bank");
    }
}
