use std::fmt;

use time::OffsetDateTime;

/// Where the rules read "now": every instant the store writes (a row's creation and last
/// save) and compares (expiry, absolute lifetime, the touch window) comes from one clock, so a
/// test moves time instead of sleeping (`testing::ManualClock`).
///
/// Any `Fn() -> OffsetDateTime` is a clock; the store's default is [`SystemClock`].
pub(crate) trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

impl<F: Fn() -> OffsetDateTime + Send + Sync + 'static> Clock for F {
    fn now(&self) -> OffsetDateTime {
        self()
    }
}

/// The system's clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

impl fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}
