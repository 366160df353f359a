//! Foreign exchange: rates, spreads, quotes and the conversion rule.
//!
//! **Rounding rule.** A rate is a [`rust_decimal::Decimal`] with at most 12 fraction digits.
//! The spread is taken off the mid rate (`mid * (10_000 - spread_bps) / 10_000`) and the result
//! is cut to 12 digits toward zero. An amount converts as
//! `to_micros = floor(from_micros * rate)`, computed exactly in 128-bit integers, and is then
//! cut down to whole minor units of the target currency (cents, yen), because that is what a
//! bank can pay out. Every step rounds toward the house, so the customer never receives more
//! than the exact product: an exchange can never create money.

use std::fmt;
use std::time::Duration;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::ids::{QuoteId, Timestamp, UserId};
use crate::money::{Currency, Micros};

/// The most fraction digits a rate keeps.
pub const RATE_SCALE_MAX: u32 = 12;

/// The largest rate accepted (units of the target per unit of the source). Together with
/// [`RATE_SCALE_MAX`] it keeps `amount * rate` exact in 128 bits.
pub const RATE_MAX: i64 = 1_000_000;

/// Basis points in one whole (100%).
pub const BPS_PER_WHOLE: u32 = 10_000;

/// A positive exchange rate: units of the target currency per unit of the source.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FxRate(Decimal);

/// Why a rate, spread or conversion was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    /// Rates must be above zero.
    #[error("rate must be positive")]
    NotPositive,
    /// Rates above [`RATE_MAX`] are refused.
    #[error("rate must not exceed {RATE_MAX}")]
    TooLarge,
    /// Rates keep at most [`RATE_SCALE_MAX`] fraction digits.
    #[error("rate must have at most {RATE_SCALE_MAX} fraction digits")]
    TooPrecise,
    /// A spread of 100% or more would give nothing.
    #[error("spread must be below {BPS_PER_WHOLE} basis points")]
    SpreadTooLarge,
    /// A rate needs two different currencies.
    #[error("cannot exchange a currency for itself")]
    SameCurrency,
    /// The converted amount does not fit in an `i64` of micros.
    #[error("converted amount overflows")]
    Overflow,
}

impl FxRate {
    /// Validates a rate.
    pub fn new(rate: Decimal) -> Result<FxRate, FxError> {
        let rate = rate.normalize();
        if rate <= Decimal::ZERO {
            return Err(FxError::NotPositive);
        }
        if rate > Decimal::from(RATE_MAX) {
            return Err(FxError::TooLarge);
        }
        if rate.scale() > RATE_SCALE_MAX {
            return Err(FxError::TooPrecise);
        }
        Ok(FxRate(rate))
    }

    /// Parses a decimal string such as `"0.9215"`.
    pub fn parse(text: &str) -> Result<FxRate, FxError> {
        let rate: Decimal = text.parse().map_err(|_| FxError::NotPositive)?;
        FxRate::new(rate)
    }

    /// The rate as a decimal.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// The rate the customer gets: `self` less `spread_bps`, cut to 12 digits toward zero.
    pub fn with_spread(self, spread_bps: u32) -> Result<FxRate, FxError> {
        if spread_bps >= BPS_PER_WHOLE {
            return Err(FxError::SpreadTooLarge);
        }
        let kept = Decimal::from(BPS_PER_WHOLE - spread_bps) / Decimal::from(BPS_PER_WHOLE);
        let effective = (self.0 * kept).round_dp_with_strategy(RATE_SCALE_MAX, RoundingStrategy::ToZero);
        FxRate::new(effective)
    }

    /// The rate the other way round (`1 / self`), cut toward zero; `None` when that is too
    /// small to keep in 12 digits.
    pub fn inverse(self) -> Option<FxRate> {
        let inverse = Decimal::ONE.checked_div(self.0)?;
        FxRate::new(inverse.round_dp_with_strategy(RATE_SCALE_MAX, RoundingStrategy::ToZero)).ok()
    }

    /// Converts a positive `amount` into `to`, rounding toward the house as the module
    /// documents. Exact: the product is formed in 128-bit integers.
    pub fn convert(self, amount: Micros, to: Currency) -> Result<Micros, FxError> {
        let amount = u128::try_from(amount.get()).map_err(|_| FxError::NotPositive)?;
        // Both bounds hold by construction: mantissa <= RATE_MAX * 10^12 < 2^60, amount < 2^63,
        // so the product stays below 2^123.
        let mantissa = u128::try_from(self.0.mantissa()).map_err(|_| FxError::NotPositive)?;
        let product = amount.checked_mul(mantissa).ok_or(FxError::Overflow)?;
        let converted = product / 10_u128.pow(self.0.scale());
        let converted = i64::try_from(converted).map_err(|_| FxError::Overflow)?;
        Ok(Micros::new(converted).floor_to_minor_units(to))
    }
}

impl fmt::Debug for FxRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FxRate({})", self.0)
    }
}

impl fmt::Display for FxRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The house's rate for one currency pair, as an admin set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairRate {
    /// Source currency.
    pub base: Currency,
    /// Target currency.
    pub quote: Currency,
    /// The mid-market rate.
    pub mid: FxRate,
    /// What the house keeps, in basis points of the converted amount.
    pub spread_bps: u32,
    /// When it was set.
    pub updated_at: Timestamp,
}

impl PairRate {
    /// Validates a pair rate.
    pub fn new(
        base: Currency,
        quote: Currency,
        mid: FxRate,
        spread_bps: u32,
        now: Timestamp,
    ) -> Result<PairRate, FxError> {
        if base == quote {
            return Err(FxError::SameCurrency);
        }
        mid.with_spread(spread_bps)?;
        Ok(PairRate { base, quote, mid, spread_bps, updated_at: now })
    }

    /// The rate a customer gets, spread included.
    pub fn effective(&self) -> FxRate {
        self.mid.with_spread(self.spread_bps).expect("spread validated in PairRate::new")
    }

    /// The same pair quoted the other way round, when it can be expressed.
    pub fn inverse(&self) -> Option<PairRate> {
        Some(PairRate { base: self.quote, quote: self.base, mid: self.mid.inverse()?, ..*self })
    }
}

/// A rate locked for one customer and amount until it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxQuote {
    /// Its id.
    pub id: QuoteId,
    /// Who asked for it; only they may use it.
    pub owner: UserId,
    /// Source currency.
    pub from: Currency,
    /// Target currency.
    pub to: Currency,
    /// The effective rate, spread included.
    pub rate: FxRate,
    /// The source amount it was quoted for.
    pub from_amount: Micros,
    /// What the destination will receive.
    pub to_amount: Micros,
    /// Until when it may be used (exclusive).
    pub expires_at: Timestamp,
}

impl FxQuote {
    /// Quotes `from_amount` at `pair`'s effective rate, valid for `ttl` from `now`.
    pub fn new(
        id: QuoteId,
        owner: UserId,
        pair: &PairRate,
        from_amount: Micros,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<FxQuote, FxError> {
        let rate = pair.effective();
        let to_amount = rate.convert(from_amount, pair.quote)?;
        Ok(FxQuote {
            id,
            owner,
            from: pair.base,
            to: pair.quote,
            rate,
            from_amount,
            to_amount,
            expires_at: now.saturating_add(ttl),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rate(text: &str) -> FxRate {
        FxRate::parse(text).expect("valid rate")
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(FxRate::parse("0"), Err(FxError::NotPositive));
        assert_eq!(FxRate::parse("-1.5"), Err(FxError::NotPositive));
        assert_eq!(FxRate::parse("1000000.1"), Err(FxError::TooLarge));
        assert_eq!(FxRate::parse("0.0000000000001"), Err(FxError::TooPrecise));
        assert_eq!(rate("1.50").to_string(), "1.5");
        assert_eq!(rate("1").with_spread(10_000), Err(FxError::SpreadTooLarge));
    }

    #[test]
    fn conversion_rounds_down_to_minor_units() {
        // 100.00 USD at 0.9215 = 92.15 EUR exactly.
        assert_eq!(rate("0.9215").convert(Micros::new(100_000_000), Currency::EUR), Ok(Micros::new(92_150_000)));
        // 1.00 USD at 0.33333 = 0.33333 EUR, cut to 0.33.
        assert_eq!(rate("0.33333").convert(Micros::new(1_000_000), Currency::EUR), Ok(Micros::new(330_000)));
        // 10.00 USD at 149.876 JPY = 1498.76 JPY, cut to 1498 yen.
        assert_eq!(rate("149.876").convert(Micros::new(10_000_000), Currency::JPY), Ok(Micros::new(1_498_000_000)));
        // Too little to make one cent.
        assert_eq!(rate("0.5").convert(Micros::new(10_000), Currency::EUR), Ok(Micros::ZERO));
        // The largest amount at the largest rate is refused, not wrapped.
        assert_eq!(rate("1000000").convert(Micros::MAX, Currency::EUR), Err(FxError::Overflow));
    }

    #[test]
    fn spread_is_taken_toward_the_house() {
        // 1.1 less 25 bps = 1.09725 exactly.
        assert_eq!(rate("1.1").with_spread(25), Ok(rate("1.09725")));
        // 1/3 less 1 bp has more than 12 digits; it is cut, never rounded up.
        let cut = rate("0.333333333333").with_spread(1).expect("valid");
        assert_eq!(cut, rate("0.333299999999"));
        assert_eq!(rate("4").inverse(), Some(rate("0.25")));
        assert_eq!(rate("3").inverse(), Some(rate("0.333333333333")));
    }

    proptest! {
        /// The customer never gets more than the exact product, and loses less than one minor
        /// unit plus one micro to rounding.
        #[test]
        fn conversion_never_creates_money(
            amount in 1i64..=i64::MAX / 10_000_000,
            mantissa in 1i64..=1_000_000_000_000,
            scale in 0u32..=12,
            spread_bps in 0u32..10_000,
        ) {
            let Ok(mid) = FxRate::new(Decimal::new(mantissa, scale)) else { return Ok(()) };
            let Ok(effective) = mid.with_spread(spread_bps) else { return Ok(()) };
            prop_assert!(effective.as_decimal() <= mid.as_decimal());
            let to = Currency::USD;
            let converted = effective.convert(Micros::new(amount), to).expect("in range");
            let exact = i128::from(amount) * effective.as_decimal().mantissa();
            let scale_factor = 10_i128.pow(effective.as_decimal().scale());
            let received = i128::from(converted.get()) * scale_factor;
            prop_assert!(received <= exact, "rounded up: {} > {}", received, exact);
            let slack = i128::from(to.micros_per_minor_unit()) * scale_factor;
            prop_assert!(exact - received < slack);
        }
    }
}
