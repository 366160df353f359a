//! Identifiers and time: typed UUID ids for every entity, and [`Timestamp`].
//!
//! The core never generates an id or reads the clock (TigerBeetle's state machine takes its
//! timestamp from outside); both arrive as parameters, produced by the [`Clock`](crate::Clock)
//! and [`IdGenerator`](crate::IdGenerator) ports that adapters implement.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    };
}

typed_id!(
    /// An account.
    AccountId
);
typed_id!(
    /// A journal entry (one balanced transaction).
    EntryId
);
typed_id!(
    /// A two-phase hold.
    HoldId
);
typed_id!(
    /// A payout or an API-initiated deposit.
    PayoutId
);
typed_id!(
    /// A user of the service; accounts have owners.
    UserId
);
typed_id!(
    /// A locked FX quote.
    QuoteId
);
typed_id!(
    /// An outbound webhook endpoint a user registered.
    EndpointId
);
typed_id!(
    /// One event's delivery to one webhook endpoint.
    DeliveryId
);

/// An instant, as microseconds since the Unix epoch (UTC): PostgreSQL's `timestamptz`
/// resolution, so values round-trip through storage exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the epoch.
    pub const fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// From whole seconds since the epoch.
    pub const fn from_unix_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_unix_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-22T09:30:00.000000Z` (the proleptic
    /// Gregorian calendar; years outside 0..=9999 print with more or fewer digits).
    pub fn to_rfc3339(self) -> String {
        let days = self.as_unix_secs().div_euclid(86_400);
        let secs_of_day = self.as_unix_secs().rem_euclid(86_400);
        let micros = self.0.rem_euclid(1_000_000);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            secs_of_day / 3_600,
            secs_of_day % 3_600 / 60,
            secs_of_day % 60
        )
    }

    /// `self + duration`, saturating at the end of time rather than wrapping.
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// `self - duration`, saturating.
    pub fn saturating_sub(self, duration: Duration) -> Timestamp {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp::from_unix_micros(1_795_340_096_123_456).to_rfc3339(), "2026-11-22T09:34:56.123456Z");
        assert_eq!(Timestamp::from_unix_secs(951_782_400).to_rfc3339(), "2000-02-29T00:00:00.000000Z");
        assert_eq!(Timestamp::from_unix_micros(-1).to_rfc3339(), "1969-12-31T23:59:59.999999Z");
    }
}
