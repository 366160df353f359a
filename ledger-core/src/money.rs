//! Money: [`Micros`] (signed integer millionths of a currency unit) and [`Currency`]
//! (ISO 4217 codes with their minor-unit exponents).
//!
//! Every amount in the ledger is an `i64` count of micros: 1 unit = 1,000,000 micros, whatever
//! the currency. Arithmetic is only ever checked; an overflow is a value, never a wrap or a
//! panic. Parsing and formatting are exact decimal string operations, no floats involved.

use std::fmt;

/// Micros in one whole currency unit.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// The number of decimal digits micros carry.
pub const MICROS_DIGITS: u8 = 6;

/// A signed amount of money in micros (millionths of a unit) of some currency.
///
/// The currency is carried beside the amount (on the account or posting), not inside it, so
/// that the arithmetic here stays a plain, checked `i64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(i64);

/// Why an amount string was refused by [`Micros::parse_decimal`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    /// The string was empty or held something other than an optional `-`, digits and one `.`.
    #[error("amount is not a decimal number")]
    Malformed,
    /// More fraction digits than the currency (or micros) can hold.
    #[error("amount has more than {max} fraction digits")]
    TooPrecise {
        /// The most fraction digits allowed.
        max: u8,
    },
    /// The value does not fit in an `i64` count of micros.
    #[error("amount is too large")]
    Overflow,
}

impl Micros {
    /// Zero micros.
    pub const ZERO: Micros = Micros(0);
    /// The largest amount.
    pub const MAX: Micros = Micros(i64::MAX);

    /// Wraps a raw micros count.
    pub const fn new(micros: i64) -> Micros {
        Micros(micros)
    }

    /// Whole units, e.g. `Micros::from_units(150)` is 150.00.
    pub const fn from_units(units: i64) -> Option<Micros> {
        match units.checked_mul(MICROS_PER_UNIT) {
            Some(m) => Some(Micros(m)),
            None => None,
        }
    }

    /// The raw micros count.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// True for amounts above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// True for amounts below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Micros) -> Option<Micros> {
        match self.0.checked_add(other.0) {
            Some(m) => Some(Micros(m)),
            None => None,
        }
    }

    /// `self - other`, or `None` on overflow.
    pub const fn checked_sub(self, other: Micros) -> Option<Micros> {
        match self.0.checked_sub(other.0) {
            Some(m) => Some(Micros(m)),
            None => None,
        }
    }

    /// `-self`, or `None` for `i64::MIN` micros.
    pub const fn checked_neg(self) -> Option<Micros> {
        match self.0.checked_neg() {
            Some(m) => Some(Micros(m)),
            None => None,
        }
    }

    /// True when the amount is a whole number of the currency's minor units
    /// (cents for USD, yen for JPY): what a bank can actually move.
    pub const fn is_whole_minor_units(self, currency: Currency) -> bool {
        self.0 % currency.micros_per_minor_unit() == 0
    }

    /// The amount rounded toward zero to whole minor units of `currency`.
    pub const fn floor_to_minor_units(self, currency: Currency) -> Micros {
        let step = currency.micros_per_minor_unit();
        Micros(self.0 - self.0 % step)
    }

    /// Parses a decimal string such as `"150.25"` or `"-3"` with at most `max_fraction_digits`
    /// digits after the point (pass a currency's exponent to accept only its minor units, or
    /// [`MICROS_DIGITS`] for full micros precision). Exact: no floats, no rounding.
    pub fn parse_decimal(text: &str, max_fraction_digits: u8) -> Result<Micros, ParseAmountError> {
        let max = max_fraction_digits.min(MICROS_DIGITS);
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match body.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (body, None),
        };
        let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits_only(whole) || fraction.is_some_and(|f| !digits_only(f)) {
            return Err(ParseAmountError::Malformed);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > usize::from(max) {
            return Err(ParseAmountError::TooPrecise { max });
        }
        // Accumulate as a negative number so that i64::MIN micros parses too.
        let mut value: i64 = 0;
        let padded = fraction.bytes().chain(std::iter::repeat(b'0')).take(usize::from(MICROS_DIGITS));
        for digit in whole.bytes().chain(padded) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_sub(i64::from(digit - b'0')))
                .ok_or(ParseAmountError::Overflow)?;
        }
        let value = if negative { value } else { value.checked_neg().ok_or(ParseAmountError::Overflow)? };
        Ok(Micros(value))
    }

    /// Formats the amount as a decimal string with exactly `exponent` fraction digits when it is
    /// a whole number of minor units, and with as many micros digits as it needs otherwise, so
    /// that `parse_decimal(format_decimal(x, e), 6) == x` for every `x`.
    pub fn format_decimal(self, exponent: u8) -> String {
        let exponent = usize::from(exponent.min(MICROS_DIGITS));
        let magnitude = self.0.unsigned_abs();
        let per_unit = MICROS_PER_UNIT.unsigned_abs();
        let whole = magnitude / per_unit;
        let fraction = format!("{:06}", magnitude % per_unit);
        let significant = fraction.trim_end_matches('0').len().max(exponent);
        let sign = if self.0 < 0 { "-" } else { "" };
        if significant == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{}", &fraction[..significant]) }
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_decimal(MICROS_DIGITS))
    }
}

/// An ISO 4217 currency the ledger knows, with its minor-unit exponent (2 for USD, 0 for JPY).
///
/// Only [`Currency::parse`] makes one, so an unknown code can never reach the books.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Why a currency code was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency code {0:?}: expected an upper-case ISO 4217 code such as USD")]
pub struct UnknownCurrency(pub String);

/// The currencies we support, with their ISO 4217 minor-unit exponents.
const KNOWN: &[(&str, u8)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("DKK", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GHS", 2),
    ("HKD", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PLN", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("TRY", 2),
    ("UGX", 0),
    ("USD", 2),
    ("ZAR", 2),
];

impl Currency {
    /// US dollar.
    pub const USD: Currency = Currency::known(*b"USD", 2);
    /// Euro.
    pub const EUR: Currency = Currency::known(*b"EUR", 2);
    /// Pound sterling.
    pub const GBP: Currency = Currency::known(*b"GBP", 2);
    /// Ethiopian birr.
    pub const ETB: Currency = Currency::known(*b"ETB", 2);
    /// Japanese yen.
    pub const JPY: Currency = Currency::known(*b"JPY", 0);

    const fn known(code: [u8; 3], exponent: u8) -> Currency {
        Currency { code, exponent }
    }

    /// Parses an upper-case ISO 4217 code the ledger supports.
    pub fn parse(code: &str) -> Result<Currency, UnknownCurrency> {
        KNOWN
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(known, exponent)| {
                let b = known.as_bytes();
                Currency { code: [b[0], b[1], b[2]], exponent: *exponent }
            })
            .ok_or_else(|| UnknownCurrency(code.to_owned()))
    }

    /// Every supported currency, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        KNOWN.iter().map(|(code, _)| Currency::parse(code).expect("table entries parse"))
    }

    /// The three-letter code, e.g. `"USD"`.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("codes are ASCII by construction")
    }

    /// Minor-unit digits: 2 for USD (cents), 0 for JPY.
    pub const fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Micros in one minor unit: 10,000 for USD, 1,000,000 for JPY.
    pub const fn micros_per_minor_unit(&self) -> i64 {
        let mut step = MICROS_PER_UNIT;
        let mut i = 0;
        while i < self.exponent {
            step /= 10;
            i += 1;
        }
        step
    }

    /// Parses a decimal amount in this currency, e.g. `"150.25"` USD; more fraction digits
    /// than the currency's exponent are refused.
    pub fn parse_amount(&self, text: &str) -> Result<Micros, ParseAmountError> {
        Micros::parse_decimal(text, self.exponent)
    }

    /// Formats an amount in this currency, e.g. `"150.00"`.
    pub fn format_amount(&self, amount: Micros) -> String {
        amount.format_decimal(self.exponent)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(text: &str, digits: u8, expected: Result<i64, ParseAmountError>) {
        assert_eq!(Micros::parse_decimal(text, digits).map(Micros::get), expected, "parsing {text:?}");
    }

    #[test]
    fn parses_decimal_strings_exactly() {
        check_parse("150.25", 2, Ok(150_250_000));
        check_parse("0", 2, Ok(0));
        check_parse("-3", 2, Ok(-3_000_000));
        check_parse("0.000001", 6, Ok(1));
        check_parse("150.255", 2, Err(ParseAmountError::TooPrecise { max: 2 }));
        check_parse("1.5", 0, Err(ParseAmountError::TooPrecise { max: 0 }));
        check_parse("", 2, Err(ParseAmountError::Malformed));
        check_parse("1.", 2, Err(ParseAmountError::Malformed));
        check_parse(".5", 2, Err(ParseAmountError::Malformed));
        check_parse("1e5", 2, Err(ParseAmountError::Malformed));
        check_parse("+1", 2, Err(ParseAmountError::Malformed));
        check_parse("1,000", 2, Err(ParseAmountError::Malformed));
        check_parse("9223372036854.775807", 6, Ok(i64::MAX));
        check_parse("-9223372036854.775808", 6, Ok(i64::MIN));
        check_parse("9223372036854.775808", 6, Err(ParseAmountError::Overflow));
        check_parse("99999999999999999999", 2, Err(ParseAmountError::Overflow));
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        let usd = Currency::USD;
        assert_eq!(usd.format_amount(Micros::new(150_000_000)), "150.00");
        assert_eq!(usd.format_amount(Micros::new(150_250_000)), "150.25");
        assert_eq!(usd.format_amount(Micros::new(-5_000)), "-0.005");
        assert_eq!(Currency::JPY.format_amount(Micros::new(7_000_000)), "7");
        assert_eq!(Currency::JPY.format_amount(Micros::new(7_500_000)), "7.5");
        assert_eq!(Micros::new(i64::MIN).to_string(), "-9223372036854.775808");
    }

    #[test]
    fn currencies_parse_only_known_upper_case_codes() {
        assert_eq!(Currency::parse("USD"), Ok(Currency::USD));
        assert_eq!(Currency::parse("JPY").map(|c| c.exponent()), Ok(0));
        assert_eq!(Currency::parse("ETB"), Ok(Currency::ETB));
        assert_eq!(Currency::parse("usd"), Err(UnknownCurrency("usd".into())));
        assert_eq!(Currency::parse("XXX"), Err(UnknownCurrency("XXX".into())));
        assert_eq!(Currency::USD.micros_per_minor_unit(), 10_000);
        assert_eq!(Currency::JPY.micros_per_minor_unit(), 1_000_000);
        assert_eq!(Currency::parse("KWD").map(|c| c.micros_per_minor_unit()), Ok(1_000));
        assert!(Currency::all().all(|c| Currency::parse(c.code()) == Ok(c)));
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Micros::MAX.checked_add(Micros::new(1)), None);
        assert_eq!(Micros::new(i64::MIN).checked_neg(), None);
        assert_eq!(Micros::new(5).checked_sub(Micros::new(7)), Some(Micros::new(-2)));
        assert_eq!(Micros::new(1_234_567).floor_to_minor_units(Currency::USD), Micros::new(1_230_000));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn format_then_parse_round_trips(raw in any::<i64>(), exponent in 0u8..=3) {
                let amount = Micros::new(raw);
                let text = amount.format_decimal(exponent);
                prop_assert_eq!(Micros::parse_decimal(&text, MICROS_DIGITS), Ok(amount));
                if amount.is_whole_minor_units(Currency::known(*b"TST", exponent)) {
                    prop_assert_eq!(Micros::parse_decimal(&text, exponent), Ok(amount));
                }
            }

            #[test]
            fn parse_never_panics(text in "\\PC{0,40}", digits in 0u8..=8) {
                let _ = Micros::parse_decimal(&text, digits);
            }

            #[test]
            fn parse_never_panics_on_numeric_text(text in "-?[0-9]{0,25}(\\.[0-9]{0,9})?", digits in 0u8..=8) {
                if let Ok(m) = Micros::parse_decimal(&text, digits) {
                    prop_assert_eq!(Micros::parse_decimal(&m.to_string(), MICROS_DIGITS), Ok(m));
                }
            }
        }
    }
}
