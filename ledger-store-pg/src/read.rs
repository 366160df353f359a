//! [`LedgerStore`] on PostgreSQL: opening accounts and every read. Lists use keyset pagination
//! (`WHERE key > cursor ORDER BY key LIMIT n + 1`), so a page costs the same however deep it is;
//! point-in-time balances read one posting's running balance instead of summing history.

use async_trait::async_trait;
use ledger_core::ports::{
    AccountFilter, Outcome, Page, PageRequest, PayoutFilter, StatementLine, Submission, TimeRange,
};
use ledger_core::{
    Account, AccountError, AccountId, AccountKind, AccountStatus, Balance, Currency, EntryHeader, EntryId, EntryKind,
    EntryLinks, FxApplied, Hold, HoldId, JournalEntry, LedgerStore, Metadata, Micros, NewAccount, Payout, PayoutId,
    Posting, QuoteId, StoreError, Timestamp,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use crate::execute::{attach_history, execute, load_payouts};
use crate::rows::{self, ACCOUNT_COLUMNS, HOLD_COLUMNS, PAYOUT_COLUMNS, get, metadata_json, ts};
use crate::{PgStore, db};

/// Keeps the first `limit` of `limit + 1` fetched items and makes the next cursor from the last
/// kept one when there were more.
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(cursor) } else { None };
    Page { items, next_cursor }
}

pub(crate) fn uuid_cursor(page: &PageRequest) -> Result<Option<Uuid>, StoreError> {
    page.cursor.as_deref().map(|c| c.parse::<Uuid>().map_err(|_| StoreError::BadCursor)).transpose()
}

fn limit_plus_one(page: &PageRequest) -> i64 {
    i64::try_from(page.limit).unwrap_or(i64::MAX - 1).saturating_add(1)
}

fn unique_violation_on(error: &sqlx::Error) -> Option<String> {
    let db = error.as_database_error()?;
    (db.code().as_deref() == Some("23505")).then(|| db.constraint().unwrap_or_default().to_owned())
}

fn failure(error: crate::execute::Failure) -> StoreError {
    match error {
        crate::execute::Failure::Db(e) => db(e),
        crate::execute::Failure::Store(e) => e,
    }
}

#[async_trait]
impl LedgerStore for PgStore {
    async fn open_account(&self, account: NewAccount, now: Timestamp) -> Result<Account, StoreError> {
        let opened = account.open(now)?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, owner_id, kind, currency, name, metadata, overdraft_limit_micros, status, \
                                   created_at) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)",
        )
        .bind(opened.id.0)
        .bind(opened.owner.map(|o| o.0))
        .bind(opened.kind.as_str())
        .bind(opened.currency.code())
        .bind(&opened.name)
        .bind(metadata_json(&opened.metadata))
        .bind(opened.overdraft.limit_micros().map(Micros::get))
        .bind(opened.status.as_str())
        .bind(ts(now))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(opened),
            Err(error) => Err(match unique_violation_on(&error).as_deref() {
                Some("accounts_pkey") => AccountError::Duplicate(opened.id).into(),
                Some("accounts_one_system_account") => {
                    AccountError::DuplicateSystemAccount { kind: opened.kind, currency: opened.currency }.into()
                }
                _ => db(error),
            }),
        }
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(sql!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn accounts(&self, filter: &AccountFilter, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        let rows = sqlx::query(sql!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(filter.owner.map(|o| o.0))
        .bind(uuid_cursor(page)?)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let accounts = rows.iter().map(rows::account).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(accounts, page.limit, |a| a.id.0.to_string()))
    }

    async fn system_account(&self, kind: AccountKind, currency: Currency) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(sql!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE kind = $1 AND currency = $2"))
            .bind(kind.as_str())
            .bind(currency.code())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn set_account_status(&self, id: AccountId, status: AccountStatus) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(sql!("UPDATE accounts SET status = $2 WHERE id = $1 RETURNING {ACCOUNT_COLUMNS}"))
            .bind(id.0)
            .bind(status.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn execute(&self, batch: &[Submission], now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        match &self.group {
            Some(group) => group.execute(batch, now).await,
            None => execute(self, batch, now).await,
        }
    }

    async fn entry(&self, id: EntryId) -> Result<Option<JournalEntry>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, kind, description, metadata, reverses_entry_id, hold_id, payout_id, fx_rate, \
                    fx_from_amount_micros, fx_to_amount_micros, fx_quote_id, created_at \
             FROM journal_entries WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let postings = sqlx::query(
            "SELECT account_id, currency, amount_micros, balance_after_micros FROM postings \
             WHERE entry_id = $1 ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let postings = postings
            .iter()
            .map(|p| {
                Ok(Posting {
                    account: AccountId(get(p, "account_id")?),
                    currency: rows::currency(p, "currency")?,
                    amount: Micros::new(get(p, "amount_micros")?),
                    balance_after: Micros::new(get(p, "balance_after_micros")?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let header = entry_header(&row)?;
        JournalEntry::new(header, postings).map(Some).map_err(|e| rows::corrupt("postings", e))
    }

    async fn statement(
        &self,
        account: AccountId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<StatementLine>, StoreError> {
        let before = page.cursor.as_deref().map(|c| c.parse::<i64>().map_err(|_| StoreError::BadCursor)).transpose()?;
        // The counterparty is the first leg of the same entry and currency with the opposite sign.
        let rows = sqlx::query(
            "SELECT p.seq, p.entry_id, e.kind, p.amount_micros, p.balance_after_micros, e.description, p.created_at, \
                    (SELECT o.account_id FROM postings o \
                      WHERE o.entry_id = p.entry_id AND o.account_id <> p.account_id \
                        AND o.currency = p.currency AND sign(o.amount_micros) <> sign(p.amount_micros) \
                      ORDER BY o.position LIMIT 1) AS counterparty \
             FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
             WHERE p.account_id = $1 AND ($2::int8 IS NULL OR p.seq < $2) \
               AND ($3::timestamptz IS NULL OR p.created_at >= $3) AND ($4::timestamptz IS NULL OR p.created_at < $4) \
             ORDER BY p.seq DESC LIMIT $5",
        )
        .bind(account.0)
        .bind(before)
        .bind(range.from.map(ts))
        .bind(range.to.map(ts))
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let lines = rows
            .iter()
            .map(|row| Ok((get::<i64>(row, "seq")?, statement_line(row)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let page = page_of(lines, page.limit, |(seq, _)| seq.to_string());
        Ok(Page { items: page.items.into_iter().map(|(_, line)| line).collect(), next_cursor: page.next_cursor })
    }

    async fn balance_at(&self, account: AccountId, at: Timestamp) -> Result<Option<Balance>, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT p.balance_after_micros FROM postings p WHERE p.account_id = a.id AND p.created_at <= $2 \
                 ORDER BY p.created_at DESC, p.seq DESC LIMIT 1) AS posted, \
               (SELECT sum(h.amount_micros)::int8 FROM holds h WHERE h.from_account_id = a.id AND h.created_at <= $2 \
                   AND (h.resolved_at IS NULL OR h.resolved_at > $2)) AS pending \
             FROM accounts a WHERE a.id = $1",
        )
        .bind(account.0)
        .bind(ts(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let posted: Option<i64> = get(&row, "posted")?;
        let pending: Option<i64> = get(&row, "pending")?;
        Ok(Some(Balance { posted: Micros::new(posted.unwrap_or(0)), pending: Micros::new(pending.unwrap_or(0)) }))
    }

    async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(sql!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::hold).transpose()
    }

    async fn expired_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<HoldId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM holds WHERE status = 'PENDING' AND expires_at IS NOT NULL AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
        )
        .bind(ts(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut ids = rows.iter().map(|r| get::<Uuid>(r, "id").map(HoldId)).collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    async fn payout(&self, id: PayoutId) -> Result<Option<Payout>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let mut payouts = load_payouts(&mut conn, &[id.0], false).await.map_err(failure)?;
        Ok(payouts.pop())
    }

    async fn payouts(&self, filter: &PayoutFilter, page: &PageRequest) -> Result<Page<Payout>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query(sql!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts \
             WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::text IS NULL OR status = $2) \
               AND ($3::uuid IS NULL OR account_id = $3) AND ($4::uuid IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        ))
        .bind(filter.owner.map(|o| o.0))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.account.map(|a| a.0))
        .bind(uuid_cursor(page)?)
        .bind(limit_plus_one(page))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let payouts = rows.iter().map(rows::payout).collect::<Result<Vec<_>, _>>()?;
        let mut page = page_of(payouts, page.limit, |p| p.id.0.to_string());
        attach_history(&mut conn, &mut page.items).await.map_err(failure)?;
        Ok(page)
    }
}

fn entry_header(row: &PgRow) -> Result<EntryHeader, StoreError> {
    let kind: String = get(row, "kind")?;
    let metadata: Json<Metadata> = get(row, "metadata")?;
    let fx = match get::<Option<ledger_core::Decimal>>(row, "fx_rate")? {
        Some(rate) => Some(FxApplied {
            rate: rows::rate(rate, "fx_rate")?,
            from_amount: Micros::new(get::<Option<i64>>(row, "fx_from_amount_micros")?.unwrap_or(0)),
            to_amount: Micros::new(get::<Option<i64>>(row, "fx_to_amount_micros")?.unwrap_or(0)),
            quote: get::<Option<Uuid>>(row, "fx_quote_id")?.map(QuoteId),
        }),
        None => None,
    };
    Ok(EntryHeader {
        id: EntryId(get(row, "id")?),
        kind: EntryKind::parse(&kind).ok_or_else(|| rows::corrupt("kind", &kind))?,
        created_at: rows::from_ts(get(row, "created_at")?),
        description: get(row, "description")?,
        metadata: metadata.0,
        links: EntryLinks {
            reverses: get::<Option<Uuid>>(row, "reverses_entry_id")?.map(EntryId),
            hold: get::<Option<Uuid>>(row, "hold_id")?.map(HoldId),
            payout: get::<Option<Uuid>>(row, "payout_id")?.map(PayoutId),
            fx,
        },
    })
}

fn statement_line(row: &PgRow) -> Result<StatementLine, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(StatementLine {
        entry: EntryId(get(row, "entry_id")?),
        kind: EntryKind::parse(&kind).ok_or_else(|| rows::corrupt("kind", &kind))?,
        amount: Micros::new(get(row, "amount_micros")?),
        balance_after: Micros::new(get(row, "balance_after_micros")?),
        counterparty: get::<Option<Uuid>>(row, "counterparty")?.map(AccountId),
        description: get(row, "description")?,
        created_at: rows::from_ts(get(row, "created_at")?),
    })
}
