//! [`RateSource`] and [`FxStore`] on PostgreSQL: admin-set rates (NUMERIC) and locked quotes.

use async_trait::async_trait;
use ledger_core::{Currency, FxQuote, FxStore, Micros, PairRate, QuoteId, RateSource, StoreError, UserId};
use sqlx::postgres::PgRow;

use crate::rows::{self, get, ts};
use crate::{PgStore, db};

fn pair_rate(row: &PgRow) -> Result<PairRate, StoreError> {
    let spread: i32 = get(row, "spread_bps")?;
    Ok(PairRate {
        base: rows::currency(row, "base_currency")?,
        quote: rows::currency(row, "quote_currency")?,
        mid: rows::rate(get(row, "mid_rate")?, "mid_rate")?,
        spread_bps: u32::try_from(spread).map_err(|_| rows::corrupt("spread_bps", spread))?,
        updated_at: rows::from_ts(get(row, "updated_at")?),
    })
}

#[async_trait]
impl RateSource for PgStore {
    async fn rate(&self, base: Currency, quote: Currency) -> Result<Option<PairRate>, StoreError> {
        let rows = sqlx::query(
            "SELECT base_currency, quote_currency, mid_rate, spread_bps, updated_at FROM fx_rates \
             WHERE (base_currency = $1 AND quote_currency = $2) OR (base_currency = $2 AND quote_currency = $1)",
        )
        .bind(base.code())
        .bind(quote.code())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let rates = rows.iter().map(pair_rate).collect::<Result<Vec<_>, _>>()?;
        if let Some(direct) = rates.iter().find(|r| r.base == base) {
            return Ok(Some(*direct));
        }
        Ok(rates.first().and_then(PairRate::inverse))
    }

    async fn rates(&self) -> Result<Vec<PairRate>, StoreError> {
        let rows = sqlx::query(
            "SELECT base_currency, quote_currency, mid_rate, spread_bps, updated_at FROM fx_rates \
             ORDER BY base_currency, quote_currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(pair_rate).collect()
    }
}

#[async_trait]
impl FxStore for PgStore {
    async fn set_rate(&self, rate: PairRate) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fx_rates (base_currency, quote_currency, mid_rate, spread_bps, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (base_currency, quote_currency) DO UPDATE \
                SET mid_rate = EXCLUDED.mid_rate, spread_bps = EXCLUDED.spread_bps, updated_at = EXCLUDED.updated_at",
        )
        .bind(rate.base.code())
        .bind(rate.quote.code())
        .bind(rate.mid.as_decimal())
        .bind(i32::try_from(rate.spread_bps).unwrap_or(i32::MAX))
        .bind(ts(rate.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn save_quote(&self, quote: FxQuote) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fx_quotes (id, owner_id, from_currency, to_currency, rate, from_amount_micros, \
                                    to_amount_micros, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(quote.id.0)
        .bind(quote.owner.0)
        .bind(quote.from.code())
        .bind(quote.to.code())
        .bind(quote.rate.as_decimal())
        .bind(quote.from_amount.get())
        .bind(quote.to_amount.get())
        .bind(ts(quote.expires_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn quote(&self, id: QuoteId) -> Result<Option<FxQuote>, StoreError> {
        let row = sqlx::query(
            "SELECT id, owner_id, from_currency, to_currency, rate, from_amount_micros, to_amount_micros, expires_at \
             FROM fx_quotes WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(FxQuote {
            id: QuoteId(get(&row, "id")?),
            owner: UserId(get(&row, "owner_id")?),
            from: rows::currency(&row, "from_currency")?,
            to: rows::currency(&row, "to_currency")?,
            rate: rows::rate(get(&row, "rate")?, "rate")?,
            from_amount: Micros::new(get(&row, "from_amount_micros")?),
            to_amount: Micros::new(get(&row, "to_amount_micros")?),
            expires_at: rows::from_ts(get(&row, "expires_at")?),
        }))
    }
}
