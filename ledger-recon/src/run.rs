//! A ledger recon run over PostgreSQL: split into account-range chunks that any number of recon
//! processes claim (`FOR UPDATE SKIP LOCKED`, under a lease), then finished by whichever process
//! sees the last chunk done, which adds the ledger-wide checks and stores the report.
//!
//! Each chunk reads its accounts, their postings (only those after each account's checkpoint,
//! in an incremental run), their open holds and the balance of the entries it owns in one
//! REPEATABLE READ snapshot, so a chunk is consistent with itself even while the ledger keeps
//! writing. An account's postings are written under its row lock, so in one account sequence
//! order is commit order and a checkpoint at "posting #n" never skips a posting that commits
//! later. An entry is checked by the chunk that reads its first posting (position 0): each new
//! entry exactly once per run.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::ReconError;
use crate::report::{Check, Finding, Outcome, Report, Stats, amount};
use crate::verify::{AccountRow, PostingRow, Start, verify_account};

/// How a run is done.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Check everything from the beginning instead of from the checkpoints.
    pub full: bool,
    /// How many chunks a new run is split into.
    pub chunks: u32,
    /// How many chunks this process checks at once.
    pub concurrency: usize,
    /// How long a claimed chunk stays this process's before another may take it.
    pub lease: Duration,
    /// How far past its lease a PROCESSING payout, or past its expiry an open hold, may be
    /// before it is reported.
    pub margin: Duration,
    /// This process's name in `recon_chunks.owner`.
    pub owner: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            full: false,
            chunks: 16,
            concurrency: 2,
            lease: Duration::from_secs(300),
            margin: Duration::from_secs(300),
            owner: default_owner(),
        }
    }
}

/// `recon-<pid>-<random>`: unique enough to tell processes apart in `recon_chunks`.
pub fn default_owner() -> String {
    format!("recon-{}-{:08x}", std::process::id(), ledger_store_pg::system::random_u64() & 0xffff_ffff)
}

/// Serialises "is a run in progress, else start one" between processes.
const START_LOCK: i64 = 0x6c65_6467_6572_7263; // "ledgerrc"

/// Joins the ledger run in progress, or starts one, and works on it until it is finished (by
/// this process or another); returns its report.
pub async fn run_ledger(pool: &PgPool, settings: &Settings) -> Result<Report, ReconError> {
    let (run, full) = join_or_start(pool, settings).await?;
    tracing::info!(%run, full, owner = %settings.owner, "recon run");
    loop {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..settings.concurrency.max(1) {
            let (pool, settings) = (pool.clone(), settings.clone());
            workers.spawn(async move { work(&pool, run, full, &settings).await });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| ReconError::Internal(e.to_string()))??;
        }
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM recon_chunks WHERE run_id = $1 AND status = 'pending'")
                .bind(run)
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            break;
        }
        // Other processes hold the rest: wait for them, or for their leases to pass.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    finish(pool, run, full, settings).await
}

/// The ledger run in progress (its id, and whether it is full), or a new one split into chunks.
pub async fn join_or_start(pool: &PgPool, settings: &Settings) -> Result<(Uuid, bool), ReconError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(START_LOCK).execute(&mut *tx).await?;
    let running: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, mode FROM recon_runs WHERE kind = 'ledger' AND status = 'running' ORDER BY started_at LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, mode)) = running {
        tx.commit().await?;
        let full = mode == "full";
        if full != settings.full {
            tracing::warn!(%id, %mode, "joining the run in progress; the requested mode applies to the next run");
        }
        return Ok((id, full));
    }
    let id = Uuid::now_v7();
    let mode = if settings.full { "full" } else { "incremental" };
    sqlx::query(
        "INSERT INTO recon_runs (id, started_at, status, kind, mode) VALUES ($1, now(), 'running', 'ledger', $2)",
    )
    .bind(id)
    .bind(mode)
    .execute(&mut *tx)
    .await?;
    // Boundaries that split the accounts into equal counts; the first chunk starts at the
    // smallest id and the last has no end, so accounts opened during the run are covered.
    let mut firsts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT ON (t) id FROM (SELECT id, ntile($1) OVER (ORDER BY id) AS t FROM accounts) x ORDER BY t, id",
    )
    .bind(i32::try_from(settings.chunks.max(1)).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    if firsts.is_empty() {
        firsts.push(Uuid::nil());
    }
    firsts[0] = Uuid::nil();
    let ends: Vec<Option<Uuid>> = firsts.iter().skip(1).map(|f| Some(*f)).chain([None]).collect();
    let numbers: Vec<i32> = (0..).take(firsts.len()).collect();
    sqlx::query(
        "INSERT INTO recon_chunks (run_id, chunk, first_account, end_account, status) \
         SELECT $1, chunk, first_account, end_account, 'pending' FROM UNNEST($2::int4[], $3::uuid[], $4::uuid[]) \
         AS u(chunk, first_account, end_account)",
    )
    .bind(id)
    .bind(&numbers)
    .bind(&firsts)
    .bind(&ends)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, settings.full))
}

/// Claims and checks chunks until none is claimable.
async fn work(pool: &PgPool, run: Uuid, full: bool, settings: &Settings) -> Result<(), ReconError> {
    loop {
        let claimed: Option<(i32, Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE recon_chunks c SET owner = $2, locked_until = now() + $3 * interval '1 millisecond', \
                 attempts = c.attempts + 1 \
             WHERE (c.run_id, c.chunk) = (SELECT run_id, chunk FROM recon_chunks \
                 WHERE run_id = $1 AND status = 'pending' AND (locked_until IS NULL OR locked_until < clock_timestamp()) \
                 ORDER BY chunk LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING c.chunk, c.first_account, c.end_account",
        )
        .bind(run)
        .bind(&settings.owner)
        .bind(i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_optional(pool)
        .await?;
        let Some((chunk, first, end)) = claimed else { return Ok(()) };
        let (findings, stats, checkpoints) = check_chunk(pool, first, end, full).await?;
        let mut tx = pool.begin().await?;
        let done = sqlx::query(
            "UPDATE recon_chunks SET status = 'done', findings = $4, stats = $5, finished_at = now(), locked_until = NULL \
             WHERE run_id = $1 AND chunk = $2 AND owner = $3 AND status = 'pending'",
        )
        .bind(run)
        .bind(chunk)
        .bind(&settings.owner)
        .bind(sqlx::types::Json(&findings))
        .bind(sqlx::types::Json(&stats))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            save_checkpoints(&mut tx, run, &checkpoints).await?;
            tx.commit().await?;
            tracing::info!(%run, chunk, postings = stats.postings_read, found = findings.len(), "chunk checked");
        } else {
            // Our lease ran out and another process took the chunk: its result counts, not ours.
            tx.rollback().await?;
            tracing::warn!(%run, chunk, "chunk was taken over after the lease ran out; result discarded");
        }
    }
}

type Checked = (Vec<Finding>, Stats, Vec<(Uuid, Start)>);

/// Checks the accounts `first <= id < end` in one consistent snapshot.
async fn check_chunk(pool: &PgPool, first: Uuid, end: Option<Uuid>, full: bool) -> Result<Checked, ReconError> {
    let incremental = !full;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let accounts = sqlx::query(
        "SELECT a.id, a.currency, a.posted_micros, a.pending_micros, a.chain_hash, \
                c.posting_seq, c.balance_micros, c.chain_hash AS checkpoint_hash \
         FROM accounts a LEFT JOIN recon_checkpoints c ON $3 AND c.account_id = a.id \
         WHERE a.id >= $1 AND ($2::uuid IS NULL OR a.id < $2) ORDER BY a.id",
    )
    .bind(first)
    .bind(end)
    .bind(incremental)
    .fetch_all(&mut *tx)
    .await?;
    let postings = sqlx::query(
        "SELECT a.id AS account_id, p.seq, p.entry_id, p.position, p.currency, p.amount_micros, \
                p.balance_after_micros, p.created_at, p.chain_hash, e.kind, e.description, e.created_at AS entry_at \
         FROM accounts a \
         LEFT JOIN recon_checkpoints c ON $3 AND c.account_id = a.id \
         JOIN LATERAL (SELECT * FROM postings p WHERE p.account_id = a.id AND p.seq > COALESCE(c.posting_seq, 0) \
                       ORDER BY p.seq) p ON true \
         LEFT JOIN journal_entries e ON e.id = p.entry_id \
         WHERE a.id >= $1 AND ($2::uuid IS NULL OR a.id < $2) ORDER BY a.id, p.seq",
    )
    .bind(first)
    .bind(end)
    .bind(incremental)
    .fetch_all(&mut *tx)
    .await?;
    let holds = sqlx::query(
        "SELECT from_account_id, amount_micros FROM holds WHERE status = 'PENDING' \
         AND from_account_id >= $1 AND ($2::uuid IS NULL OR from_account_id < $2)",
    )
    .bind(first)
    .bind(end)
    .fetch_all(&mut *tx)
    .await?;

    let mut by_account: HashMap<Uuid, Vec<PostingRow>> = HashMap::new();
    let mut owned_entries = Vec::new();
    for r in &postings {
        let p = PostingRow {
            seq: r.try_get("seq")?,
            entry: r.try_get("entry_id")?,
            position: r.try_get("position")?,
            currency: r.try_get::<String, _>("currency")?,
            amount: r.try_get("amount_micros")?,
            balance_after: r.try_get("balance_after_micros")?,
            posted_at: r.try_get::<DateTime<Utc>, _>("created_at")?.timestamp_micros(),
            hash: r.try_get("chain_hash")?,
            entry_kind: r.try_get("kind")?,
            description: r.try_get("description")?,
            entry_at: r.try_get::<Option<DateTime<Utc>>, _>("entry_at")?.map(|t| t.timestamp_micros()),
        };
        if p.position == 0 {
            owned_entries.push(p.entry);
        }
        by_account.entry(r.try_get("account_id")?).or_default().push(p);
    }
    let mut open_holds: HashMap<Uuid, i128> = HashMap::new();
    for r in &holds {
        *open_holds.entry(r.try_get("from_account_id")?).or_default() +=
            i128::from(r.try_get::<i64, _>("amount_micros")?);
    }
    let mut findings = Vec::new();
    let unbalanced = sqlx::query(
        "SELECT entry_id, currency, sum(amount_micros)::text AS total FROM postings WHERE entry_id = ANY($1) \
         GROUP BY entry_id, currency HAVING sum(amount_micros) <> 0 ORDER BY entry_id, currency",
    )
    .bind(&owned_entries)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for r in &unbalanced {
        let total: String = r.try_get("total")?;
        let total: i128 = total.parse().map_err(|_| ReconError::Internal(format!("sum {total} is not an integer")))?;
        findings.push(Finding {
            entry: Some(r.try_get("entry_id")?),
            currency: Some(r.try_get("currency")?),
            ..Finding::new(Check::EntryUnbalanced, format!("postings sum to {}", amount(total)))
        });
    }

    let mut checkpoints = Vec::new();
    for r in &accounts {
        let account = AccountRow {
            id: r.try_get("id")?,
            currency: r.try_get::<String, _>("currency")?.trim().to_owned(),
            posted: r.try_get("posted_micros")?,
            pending: r.try_get("pending_micros")?,
            head: r.try_get("chain_hash")?,
        };
        let start = match r.try_get::<Option<i64>, _>("posting_seq")? {
            Some(seq) => {
                let hash: Vec<u8> = r.try_get("checkpoint_hash")?;
                Start {
                    seq,
                    balance: r.try_get("balance_micros")?,
                    hash: hash
                        .try_into()
                        .map_err(|_| ReconError::Internal("checkpoint hash is not 32 bytes".into()))?,
                }
            }
            None => Start::GENESIS,
        };
        let rows = by_account.remove(&account.id).unwrap_or_default();
        let holds = open_holds.get(&account.id).copied().unwrap_or(0);
        if let Some(verified) = verify_account(&account, start, &rows, holds, &mut findings)
            && verified != start
        {
            checkpoints.push((account.id, verified));
        }
    }
    let stats = Stats {
        chunks: 1,
        accounts: accounts.len() as u64,
        postings_read: postings.len() as u64,
        entries_checked: owned_entries.len() as u64,
        ..Stats::default()
    };
    Ok((findings, stats, checkpoints))
}

async fn save_checkpoints(
    tx: &mut sqlx::PgConnection,
    run: Uuid,
    checkpoints: &[(Uuid, Start)],
) -> Result<(), ReconError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO recon_checkpoints (account_id, posting_seq, balance_micros, chain_hash, run_id, verified_at) \
         SELECT account_id, seq, balance, hash, $5, now() FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::bytea[]) \
             AS u(account_id, seq, balance, hash) \
         ON CONFLICT (account_id) DO UPDATE SET posting_seq = EXCLUDED.posting_seq, \
             balance_micros = EXCLUDED.balance_micros, chain_hash = EXCLUDED.chain_hash, run_id = EXCLUDED.run_id, \
             verified_at = EXCLUDED.verified_at \
         WHERE recon_checkpoints.posting_seq <= EXCLUDED.posting_seq",
    )
    .bind(checkpoints.iter().map(|(a, _)| *a).collect::<Vec<_>>())
    .bind(checkpoints.iter().map(|(_, s)| s.seq).collect::<Vec<_>>())
    .bind(checkpoints.iter().map(|(_, s)| s.balance).collect::<Vec<_>>())
    .bind(checkpoints.iter().map(|(_, s)| s.hash.to_vec()).collect::<Vec<_>>())
    .bind(run)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds the ledger-wide checks and stores the report, once; a process arriving after another
/// finished the run reads the stored report.
async fn finish(pool: &PgPool, run: Uuid, full: bool, settings: &Settings) -> Result<Report, ReconError> {
    let mut tx = pool.begin().await?;
    let (status, report): (String, serde_json::Value) =
        sqlx::query_as("SELECT status, report FROM recon_runs WHERE id = $1 FOR UPDATE")
            .bind(run)
            .fetch_one(&mut *tx)
            .await?;
    if status != "running" {
        tx.commit().await?;
        return serde_json::from_value(report).map_err(|e| ReconError::Internal(format!("stored report: {e}")));
    }
    let mut findings = Vec::new();
    let mut stats = Stats::default();
    for (found, chunk_stats) in sqlx::query_as::<_, (sqlx::types::Json<Vec<Finding>>, sqlx::types::Json<Stats>)>(
        "SELECT findings, stats FROM recon_chunks WHERE run_id = $1 ORDER BY chunk",
    )
    .bind(run)
    .fetch_all(&mut *tx)
    .await?
    {
        findings.extend(found.0);
        stats.add(&chunk_stats.0);
    }
    findings.extend(check_conservation(&mut tx).await?);
    let (payout_findings, payouts) = check_payouts(&mut tx, run, full, settings.margin).await?;
    findings.extend(payout_findings);
    stats.payouts_checked = payouts;
    findings.extend(check_expired_holds(&mut tx, settings.margin).await?);
    findings.sort_by_key(|f| f.check);
    let digest = ledger_digest(&mut tx).await?;

    let outcome = if findings.is_empty() { Outcome::Clean } else { Outcome::Discrepancies };
    let (started_at, finished_at): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT started_at, now() FROM recon_runs WHERE id = $1").bind(run).fetch_one(&mut *tx).await?;
    let report = Report {
        run_id: run,
        kind: "ledger".into(),
        mode: if full { "full" } else { "incremental" }.into(),
        outcome,
        started_at: rfc3339(started_at),
        finished_at: rfc3339(finished_at),
        stats,
        ledger_digest: Some(digest),
        matched: 0,
        findings,
    };
    store_report(&mut tx, &report, finished_at).await?;
    tx.commit().await?;
    Ok(report)
}

/// Writes a finished report into its `recon_runs` row.
pub(crate) async fn store_report(
    tx: &mut sqlx::PgConnection,
    report: &Report,
    finished_at: DateTime<Utc>,
) -> Result<(), ReconError> {
    let status = match report.outcome {
        Outcome::Clean => "clean",
        Outcome::Discrepancies => "discrepancies",
    };
    sqlx::query("UPDATE recon_runs SET status = $2, finished_at = $3, report = $4, discrepancies = $5 WHERE id = $1")
        .bind(report.run_id)
        .bind(status)
        .bind(finished_at)
        .bind(sqlx::types::Json(report))
        .bind(i32::try_from(report.findings.len()).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn check_conservation(tx: &mut sqlx::PgConnection) -> Result<Vec<Finding>, ReconError> {
    let sums: Vec<(String, String)> = sqlx::query_as(
        "SELECT currency, sum(posted_micros)::text FROM accounts GROUP BY currency \
         HAVING sum(posted_micros) <> 0 ORDER BY currency",
    )
    .fetch_all(&mut *tx)
    .await?;
    sums.into_iter()
        .map(|(currency, sum)| {
            let sum: i128 = sum.parse().map_err(|_| ReconError::Internal(format!("sum {sum} is not an integer")))?;
            Ok(Finding {
                currency: Some(currency.clone()),
                ..Finding::new(Check::CurrencyNotConserved, format!("balances in {currency} sum to {}", amount(sum)))
            })
        })
        .collect()
}

/// Every payout's postings agree with its status. A full run checks every payout; an
/// incremental one the live ones and those changed since the last finished run started.
async fn check_payouts(
    tx: &mut sqlx::PgConnection,
    run: Uuid,
    full: bool,
    margin: Duration,
) -> Result<(Vec<Finding>, u64), ReconError> {
    let since: Option<DateTime<Utc>> = if full {
        None
    } else {
        sqlx::query_scalar(
            "SELECT max(started_at) FROM recon_runs WHERE kind = 'ledger' AND status IN ('clean', 'discrepancies') \
             AND id <> $1",
        )
        .bind(run)
        .fetch_one(&mut *tx)
        .await?
    };
    let rows = sqlx::query(
        "SELECT p.id, p.direction, p.status, p.amount_micros, p.currency, \
                (p.status = 'PROCESSING' AND (p.locked_until IS NULL \
                    OR p.locked_until < now() - $2 * interval '1 millisecond')) AS stuck, p.locked_until, \
                COALESCE((SELECT sum(po.amount_micros) FROM journal_entries e JOIN postings po ON po.entry_id = e.id \
                          WHERE e.payout_id = p.id AND po.account_id = p.clearing_account_id), 0)::text AS held, \
                EXISTS (SELECT 1 FROM journal_entries e JOIN postings po ON po.entry_id = e.id \
                        WHERE e.payout_id = p.id AND e.kind = CASE p.direction WHEN 'payout' THEN 'payout_settle' \
                        ELSE 'deposit' END) AS settled, \
                EXISTS (SELECT 1 FROM journal_entries e JOIN postings po ON po.entry_id = e.id \
                        WHERE e.payout_id = p.id AND e.kind = 'payout_release') AS released \
         FROM payouts p \
         WHERE $1::timestamptz IS NULL OR p.status IN ('PENDING', 'PROCESSING', 'MANUAL_REVIEW') OR p.updated_at >= $1 \
         ORDER BY p.id",
    )
    .bind(since)
    .bind(i64::try_from(margin.as_millis()).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let mut findings = Vec::new();
    for r in &rows {
        let id: Uuid = r.try_get("id")?;
        let status: String = r.try_get("status")?;
        let outbound = r.try_get::<String, _>("direction")? == "payout";
        let amount_micros = i128::from(r.try_get::<i64, _>("amount_micros")?);
        let held: String = r.try_get("held")?;
        let held: i128 = held.parse().map_err(|_| ReconError::Internal(format!("sum {held} is not an integer")))?;
        let (settled, released): (bool, bool) = (r.try_get("settled")?, r.try_get("released")?);
        let on = |check, detail: String| Finding { payout: Some(id), ..Finding::new(check, detail) };
        let live = matches!(status.as_str(), "PENDING" | "PROCESSING" | "MANUAL_REVIEW");
        if matches!(status.as_str(), "COMPLETED" | "REVERSED") && !settled {
            let what = if outbound { "settle" } else { "deposit" };
            findings.push(on(Check::PayoutNotSettled, format!("{status} but no {what} postings")));
        }
        if outbound && matches!(status.as_str(), "FAILED" | "CANCELLED") && !released {
            findings.push(on(Check::PayoutNotReleased, format!("{status} but no release postings")));
        }
        if outbound && !live && held != 0 {
            findings.push(on(
                Check::FundsHeldForTerminalPayout,
                format!("{status} but {} still held in clearing", amount(held)),
            ));
        }
        if outbound && live && held != amount_micros {
            findings.push(on(
                Check::FundsMissingForLivePayout,
                format!("{status}: clearing holds {} of {}", amount(held), amount(amount_micros)),
            ));
        }
        if r.try_get::<bool, _>("stuck")? {
            let lease = match r.try_get::<Option<DateTime<Utc>>, _>("locked_until")? {
                Some(at) => format!("its lease ended at {}", rfc3339(at)),
                None => "it has no lease".to_owned(),
            };
            findings.push(on(Check::PayoutStuckProcessing, format!("PROCESSING, and {lease}")));
        }
    }
    Ok((findings, rows.len() as u64))
}

async fn check_expired_holds(tx: &mut sqlx::PgConnection, margin: Duration) -> Result<Vec<Finding>, ReconError> {
    let rows: Vec<(Uuid, Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, from_account_id, amount_micros, expires_at FROM holds \
         WHERE status = 'PENDING' AND expires_at < now() - $1 * interval '1 millisecond' ORDER BY expires_at",
    )
    .bind(i64::try_from(margin.as_millis()).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(hold, account, held, expires)| Finding {
            hold: Some(hold),
            account: Some(account),
            ..Finding::new(
                Check::HoldPastExpiry,
                format!(
                    "{} still held; expired at {} (is the expiry sweep running?)",
                    amount(held.into()),
                    rfc3339(expires)
                ),
            )
        })
        .collect())
}

/// SHA-256 over every account id and chain head, in id order.
async fn ledger_digest(tx: &mut sqlx::PgConnection) -> Result<String, ReconError> {
    let heads: Vec<(Uuid, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, chain_hash FROM accounts ORDER BY id").fetch_all(&mut *tx).await?;
    let mut h = Sha256::new();
    for (id, head) in &heads {
        h.update(id.as_bytes());
        h.update(head.as_deref().unwrap_or(&[0; 32]));
    }
    Ok(hex::encode(h.finalize()))
}
