//! External reconciliation: a bank settlement statement matched against the ledger's payouts
//! and deposits.
//!
//! The statement is CSV with a header line and these columns, in any order:
//!
//! | column      | meaning                                                             |
//! |-------------|---------------------------------------------------------------------|
//! | `date`      | the value date, `YYYY-MM-DD`                                        |
//! | `reference` | our payout or deposit id, the bank's reference for it, or the event id of an inbound deposit webhook |
//! | `amount`    | positive decimal in the currency's units (`125.50`)                 |
//! | `currency`  | ISO 4217 code                                                       |
//! | `direction` | `debit` (money left the house: a payout) or `credit` (money came in: a deposit) |
//!
//! Fields may be quoted with `"` (a `""` inside is one quote). Every line is checked before
//! anything is matched; a bad line stops the run (exit 2) and names the line.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::Currency;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::ReconError;
use crate::report::{Check, Finding, Outcome, Report, Stats, amount};
use crate::run::{rfc3339, store_report};

/// Money left (a payout) or came in (a deposit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Money left the house's bank account.
    Debit,
    /// Money came in.
    Credit,
}

/// One statement line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its line number in the file (the header is line 1).
    pub number: usize,
    /// The value date.
    pub date: NaiveDate,
    /// The reference.
    pub reference: String,
    /// The amount in micros (positive).
    pub amount: i64,
    /// The currency code.
    pub currency: String,
    /// Debit or credit.
    pub direction: Direction,
}

const COLUMNS: [&str; 5] = ["date", "reference", "amount", "currency", "direction"];

/// Parses a statement; the error names the first bad line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Line>, ReconError> {
    let bad = |number: usize, why: String| ReconError::Statement(format!("line {number}: {why}"));
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) = lines.next().ok_or_else(|| ReconError::Statement("the statement is empty".into()))?;
    let header: Vec<String> =
        split(header).map_err(|why| bad(1, why))?.iter().map(|c| c.trim().to_lowercase()).collect();
    let mut at = [0usize; 5];
    for (slot, name) in at.iter_mut().zip(COLUMNS) {
        *slot = header
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(1, format!("the header has no `{name}` column (expected {})", COLUMNS.join(","))))?;
    }
    let mut out = Vec::new();
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(line).map_err(|why| bad(number, why))?;
        if fields.len() != header.len() {
            return Err(bad(number, format!("{} fields, the header has {}", fields.len(), header.len())));
        }
        let field = |i: usize| fields[at[i]].trim();
        let date = NaiveDate::parse_from_str(field(0), "%Y-%m-%d")
            .map_err(|_| bad(number, format!("date `{}` is not YYYY-MM-DD", field(0))))?;
        let reference = field(1).to_owned();
        if reference.is_empty() {
            return Err(bad(number, "the reference is empty".into()));
        }
        let currency =
            Currency::parse(field(3)).map_err(|_| bad(number, format!("`{}` is not a currency code", field(3))))?;
        let amount =
            currency.parse_amount(field(2)).map_err(|e| bad(number, format!("amount `{}`: {e}", field(2))))?.get();
        if amount <= 0 {
            return Err(bad(number, format!("amount `{}` must be positive", field(2))));
        }
        let direction = match field(4).to_lowercase().as_str() {
            "debit" => Direction::Debit,
            "credit" => Direction::Credit,
            other => return Err(bad(number, format!("direction `{other}` is neither debit nor credit"))),
        };
        out.push(Line { number, date, reference, amount, currency: currency.code().to_owned(), direction });
    }
    Ok(out)
}

/// Splits one CSV line into fields.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

/// A payout or deposit as the ledger has it.
#[derive(Clone, Debug)]
struct Item {
    id: String,
    payout: Option<Uuid>,
    debit: bool,
    status: String,
    amount: i64,
    currency: String,
    /// When it completed, for "missing at the bank".
    completed_at: Option<DateTime<Utc>>,
}

/// Matches `lines` against the ledger, stores the run and returns its report.
pub async fn match_statement(pool: &PgPool, lines: &[Line]) -> Result<Report, ReconError> {
    let run = Uuid::now_v7();
    let started_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO recon_runs (id, started_at, status, kind, mode) VALUES ($1, now(), 'running', 'statement', 'full') \
         RETURNING started_at",
    )
    .bind(run)
    .fetch_one(pool)
    .await?;
    // The statement's period: its first to its last value date, whole days (UTC).
    let from = lines.iter().map(|l| l.date).min();
    let to = lines.iter().map(|l| l.date).max().and_then(|d| d.succ_opt());
    let window = from
        .zip(to)
        .map(|(f, t)| (f.and_time(chrono::NaiveTime::MIN).and_utc(), t.and_time(chrono::NaiveTime::MIN).and_utc()));
    let references: Vec<String> = lines.iter().map(|l| l.reference.clone()).collect();
    let items = ledger_items(pool, window, &references).await?;

    let mut by_reference: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        by_reference.insert(item.id.as_str(), i);
    }
    let bank_refs = bank_references(pool, &items).await?;
    for (reference, payout) in &bank_refs {
        if let Some(i) = items.iter().position(|it| it.payout == Some(*payout)) {
            by_reference.insert(reference.as_str(), i);
        }
    }

    let mut findings = Vec::new();
    let mut matched = 0u64;
    let mut seen: HashSet<usize> = HashSet::new();
    for line in lines {
        let on = |check, detail: String| Finding {
            line: Some(line.number),
            reference: Some(line.reference.clone()),
            ..Finding::new(check, detail)
        };
        let Some(&i) = by_reference.get(line.reference.as_str()) else {
            findings.push(on(
                Check::MissingInLedger,
                format!(
                    "{} {} {} on {}: no payout or deposit with this reference",
                    direction(line.direction),
                    amount(line.amount.into()),
                    line.currency,
                    line.date
                ),
            ));
            continue;
        };
        let item = &items[i];
        let with_item = |mut f: Finding| {
            f.payout = item.payout;
            f
        };
        if !seen.insert(i) {
            findings.push(with_item(on(Check::DuplicateAtBank, "an earlier line already names this item".into())));
            continue;
        }
        let line_debit = line.direction == Direction::Debit;
        let mut agrees = true;
        if line_debit != item.debit {
            agrees = false;
            let ours = if item.debit { "a payout" } else { "a deposit" };
            findings.push(with_item(on(
                Check::DirectionMismatch,
                format!("the bank shows a {}, the ledger has {ours}", direction(line.direction)),
            )));
        }
        if line.currency != item.currency {
            agrees = false;
            findings.push(with_item(on(
                Check::CurrencyMismatch,
                format!("bank {}, ledger {}", line.currency, item.currency),
            )));
        } else if line.amount != item.amount {
            agrees = false;
            findings.push(with_item(on(
                Check::AmountMismatch,
                format!("bank {}, ledger {} {}", amount(line.amount.into()), amount(item.amount.into()), item.currency),
            )));
        }
        if !matches!(item.status.as_str(), "COMPLETED" | "REVERSED") {
            agrees = false;
            findings.push(with_item(on(
                Check::StatusMismatch,
                format!("the bank moved the money; the ledger has it {}", item.status),
            )));
        }
        if agrees {
            matched += 1;
        }
    }
    if let Some((from, to)) = window {
        for (i, item) in items.iter().enumerate() {
            let in_period = item.completed_at.is_some_and(|at| at >= from && at < to);
            if in_period && !seen.contains(&i) {
                findings.push(Finding {
                    payout: item.payout,
                    reference: Some(item.id.clone()),
                    ..Finding::new(
                        Check::MissingAtBank,
                        format!(
                            "{} {} {} completed {} is not on the statement",
                            if item.debit { "payout" } else { "deposit" },
                            amount(item.amount.into()),
                            item.currency,
                            item.completed_at.map(rfc3339).unwrap_or_default()
                        ),
                    )
                });
            }
        }
    }
    findings.sort_by_key(|f| f.check);
    let mut tx = pool.begin().await?;
    let finished_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *tx).await?;
    let report = Report {
        run_id: run,
        kind: "statement".into(),
        mode: "full".into(),
        outcome: if findings.is_empty() { Outcome::Clean } else { Outcome::Discrepancies },
        started_at: rfc3339(started_at),
        finished_at: rfc3339(finished_at),
        stats: Stats { statement_lines: lines.len() as u64, ..Stats::default() },
        ledger_digest: None,
        matched,
        findings,
    };
    store_report(&mut tx, &report, finished_at).await?;
    tx.commit().await?;
    Ok(report)
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Debit => "debit",
        Direction::Credit => "credit",
    }
}

/// Payouts and deposits completed in the window, or named by a reference on the statement.
async fn ledger_items(
    pool: &PgPool,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    references: &[String],
) -> Result<Vec<Item>, ReconError> {
    let (from, to) = window.map_or((None, None), |(f, t)| (Some(f), Some(t)));
    let payouts = sqlx::query(
        "SELECT p.id, p.direction, p.status, p.amount_micros, p.currency, \
                (SELECT min(h.at) FROM payout_status_history h WHERE h.payout_id = p.id AND h.to_status = 'COMPLETED') \
                    AS completed_at \
         FROM payouts p \
         WHERE p.id::text = ANY($3) \
            OR EXISTS (SELECT 1 FROM payout_attempts a WHERE a.payout_id = p.id AND a.provider_reference = ANY($3)) \
            OR EXISTS (SELECT 1 FROM payout_status_history h WHERE h.payout_id = p.id AND h.to_status = 'COMPLETED' \
                       AND h.at >= $1 AND h.at < $2) \
         ORDER BY p.id",
    )
    .bind(from)
    .bind(to)
    .bind(references)
    .fetch_all(pool)
    .await?;
    let mut items = Vec::new();
    for r in &payouts {
        let id: Uuid = r.try_get("id")?;
        items.push(Item {
            id: id.to_string(),
            payout: Some(id),
            debit: r.try_get::<String, _>("direction")? == "payout",
            status: r.try_get("status")?,
            amount: r.try_get("amount_micros")?,
            currency: r.try_get::<String, _>("currency")?.trim().to_owned(),
            completed_at: r.try_get("completed_at")?,
        });
    }
    // Deposits the bank announced by webhook: credited to a customer account on receipt.
    let deposits = sqlx::query(
        "SELECT w.event_id, w.received_at, po.amount_micros, po.currency \
         FROM inbound_webhook_events w \
         JOIN postings po ON po.entry_id = w.entry_id AND po.amount_micros > 0 \
         JOIN accounts a ON a.id = po.account_id AND a.kind = 'customer' \
         WHERE w.event_id = ANY($3) OR (w.received_at >= $1 AND w.received_at < $2) ORDER BY w.event_id",
    )
    .bind(from)
    .bind(to)
    .bind(references)
    .fetch_all(pool)
    .await?;
    for r in &deposits {
        items.push(Item {
            id: r.try_get("event_id")?,
            payout: None,
            debit: false,
            status: "COMPLETED".into(),
            amount: r.try_get("amount_micros")?,
            currency: r.try_get::<String, _>("currency")?.trim().to_owned(),
            completed_at: r.try_get("received_at")?,
        });
    }
    Ok(items)
}

/// The bank's own references for these payouts (from successful calls).
async fn bank_references(pool: &PgPool, items: &[Item]) -> Result<Vec<(String, Uuid)>, ReconError> {
    let ids: Vec<Uuid> = items.iter().filter_map(|i| i.payout).collect();
    Ok(sqlx::query_as(
        "SELECT DISTINCT provider_reference, payout_id FROM payout_attempts \
         WHERE payout_id = ANY($1) AND provider_reference IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_parses_with_columns_in_any_order_and_quotes() {
        let lines = parse(
            "reference,date,amount,currency,direction\n\
             \"sim-1, \"\"a\"\"\",2026-11-20,125.50,USD,debit\r\n\
             \n\
             evt_9,2026-11-21,3,EUR,CREDIT\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].reference, "sim-1, \"a\"");
        assert_eq!(lines[0].amount, 125_500_000);
        assert_eq!(lines[0].direction, Direction::Debit);
        assert_eq!(lines[1].number, 4);
        assert_eq!(lines[1].currency, "EUR");
        assert_eq!(lines[1].direction, Direction::Credit);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let header = "date,reference,amount,currency,direction\n";
        assert!(err("").contains("empty"));
        assert!(err("date,reference,amount\n").contains("no `currency` column"));
        assert!(err(&format!("{header}2026-13-01,r,1,USD,debit")).contains("line 2: date"));
        assert!(err(&format!("{header}2026-11-01,r,1.5,XXQ,debit")).contains("line 2: `XXQ`"));
        assert!(err(&format!("{header}2026-11-01,r,-1,USD,debit")).contains("line 2: amount"));
        assert!(err(&format!("{header}2026-11-01,r,1.001,USD,debit")).contains("line 2: amount"));
        assert!(err(&format!("{header}2026-11-01,r,1,USD,sideways")).contains("neither debit nor credit"));
        assert!(err(&format!("{header}2026-11-01,r,1,USD")).contains("4 fields"));
        assert!(err(&format!("{header}2026-11-01,\"r,1,USD,debit")).contains("not closed"));
        assert!(err(&format!("{header}2026-11-01,,1,USD,debit")).contains("reference is empty"));
    }
}
