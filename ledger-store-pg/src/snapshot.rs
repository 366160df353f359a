//! A consistent read of everything `ledger_core::recon` checks, taken in one REPEATABLE READ
//! transaction so that balances, postings and holds are from the same instant. A full scan:
//! meant for tests and small ledgers; `ledger-recon` checks large ones in chunks, incrementally.

use ledger_core::recon::{AccountRecord, OpenHoldRecord, PayoutRecord, PostingRecord, Snapshot};
use ledger_core::{AccountId, EntryId, Micros, PayoutDirection, PayoutId, StoreError};
use uuid::Uuid;

use crate::rows::{self, get};
use crate::{PgStore, db};

impl PgStore {
    /// Everything recon looks at, as of one instant.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await.map_err(db)?;
        let accounts = sqlx::query("SELECT id, currency, posted_micros, pending_micros FROM accounts ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(AccountRecord {
                    id: AccountId(get(r, "id")?),
                    currency: rows::currency(r, "currency")?,
                    posted: Micros::new(get(r, "posted_micros")?),
                    pending: Micros::new(get(r, "pending_micros")?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let postings = sqlx::query(
            "SELECT entry_id, account_id, currency, amount_micros, balance_after_micros FROM postings ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(PostingRecord {
                entry: EntryId(get(r, "entry_id")?),
                account: AccountId(get(r, "account_id")?),
                currency: rows::currency(r, "currency")?,
                amount: Micros::new(get(r, "amount_micros")?),
                balance_after: Micros::new(get(r, "balance_after_micros")?),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let open_holds = sqlx::query("SELECT from_account_id, amount_micros FROM holds WHERE status = 'PENDING'")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(OpenHoldRecord {
                    account: AccountId(get(r, "from_account_id")?),
                    amount: Micros::new(get(r, "amount_micros")?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let payouts = sqlx::query("SELECT id, direction, status, amount_micros, clearing_account_id FROM payouts")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                let direction: String = get(r, "direction")?;
                let status: String = get(r, "status")?;
                Ok(PayoutRecord {
                    id: PayoutId(get(r, "id")?),
                    direction: PayoutDirection::parse(&direction)
                        .ok_or_else(|| rows::corrupt("direction", &direction))?,
                    status: ledger_core::PayoutStatus::parse(&status)
                        .ok_or_else(|| rows::corrupt("status", &status))?,
                    amount: Micros::new(get(r, "amount_micros")?),
                    clearing: get::<Option<Uuid>>(r, "clearing_account_id")?.map(AccountId),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit().await.map_err(db)?;
        Ok(Snapshot { accounts, postings, open_holds, payouts })
    }
}
