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
