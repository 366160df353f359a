//! The production implementations of the core's `Clock` and `IdGenerator` ports: the system
//! clock and UUID v7 (time-ordered, so ids sort by creation and index well).

use ledger_core::{Clock, IdGenerator, Timestamp};
use uuid::Uuid;

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_unix_micros(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// UUID v7 ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn next_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}
