//! The three SQL backends, and the instants each stores: what the SeaORM and the tokio-postgres
//! repositories share.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The closed set of dialects; what the statements, the migration runner and the error
/// classification branch on.
///
/// - PostgreSQL: `text` id, `bytea` data, `timestamptz` expiry, in a schema.
/// - SQLite: `text` id, `blob` data, expiry as `integer` microseconds since the Unix epoch
///   (UTC); no schemas (the schema name is ignored).
/// - MySQL and MariaDB: `varbinary(128)` id (byte for byte), `longblob` data, `datetime(6)`
///   expiry in UTC; the table lives in the connection's database (the schema name is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// What the database calls its error codes, for error messages.
    pub(crate) fn code_label(self) -> &'static str {
        match self {
            Self::Postgres | Self::MySql => "SQLSTATE",
            Self::Sqlite => "SQLite code",
        }
    }
}

/// The first instant the store writes to a PostgreSQL or SQLite column: year 1, UTC, where the
/// domain's range of expiries begins.
pub(crate) const EARLIEST: OffsetDateTime = utc(1, Month::January, 1, Time::MIDNIGHT);

/// The last instant the store writes and reads: the last microsecond of year 9999, UTC. `time`
/// holds no later year (without its `large-dates` feature), and MySQL's `datetime` ends there.
pub(crate) const LATEST: OffsetDateTime = utc(9999, Month::December, 31, LAST_MICROSECOND);

/// MySQL's `datetime` begins with year 1000.
pub(crate) const MYSQL_EARLIEST: OffsetDateTime = utc(1000, Month::January, 1, Time::MIDNIGHT);

/// [`EARLIEST`] as a PostgreSQL literal, for statements that clamp what they read.
pub(crate) const POSTGRES_EARLIEST_SQL: &str = "TIMESTAMPTZ '0001-01-01 00:00:00+00'";

/// [`LATEST`] as a PostgreSQL literal, for statements that clamp what they read.
pub(crate) const POSTGRES_LATEST_SQL: &str = "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'";

/// PostgreSQL: the current transaction snapshot, as text: where a reader of a log ordered by
/// transaction ids starts (the read cache's eviction log, the login history's events).
pub(crate) const POSTGRES_SNAPSHOT_SQL: &str = "SELECT txid_current_snapshot()::text";

const LAST_MICROSECOND: Time = match Time::from_hms_micro(23, 59, 59, 999_999) {
    Ok(time) => time,
    Err(_) => panic!("23:59:59.999999 is a time"),
};

/// A UTC instant, for the constants above: evaluated when the crate is compiled, so an invalid
/// date fails the build, not a request.
const fn utc(year: i32, month: Month, day: u8, time: Time) -> OffsetDateTime {
    match Date::from_calendar_date(year, month, day) {
        Ok(date) => OffsetDateTime::new_utc(date, time),
        Err(_) => panic!("the bounds are dates"),
    }
}

/// `at` in UTC, clamped to `earliest..=latest` (UTC instants).
///
/// Never panics: `to_offset` does for an instant that `time` cannot express in UTC (the first
/// hours of year -9999 at a positive offset, the last of year 9999 at a negative one); such an
/// instant lies beyond one of the bounds, and becomes that bound. (Comparing instants never
/// converts them.)
pub(crate) fn clamped_utc(
    at: OffsetDateTime,
    earliest: OffsetDateTime,
    latest: OffsetDateTime,
) -> OffsetDateTime {
    match at.checked_to_offset(UtcOffset::UTC) {
        Some(utc) => utc.clamp(earliest, latest),
        None if at < earliest => earliest,
        None => latest,
    }
}

/// `at` as a PostgreSQL `timestamptz` parameter: in UTC, clamped to years 1 to 9999,
/// truncated to microseconds toward the past.
///
/// Both drivers convert to UTC with `to_offset`, which panics for instants `time` cannot
/// express in UTC (e.g. `9999-12-31 23:59:59 -01:00`), so the adapters hand them only UTC
/// instants. The clamp keeps parameters within what the rows are read back as (see
/// [`Dialect::read_instant`]): as a "now", an instant before year 1 or after 9999 compares
/// with the stored rows as those bounds do. The drivers truncate toward zero, which is toward
/// the future before 2000; truncated here first, every instant is sent as it is stored.
pub(crate) fn postgres_instant(at: OffsetDateTime) -> OffsetDateTime {
    truncated_to_micros(clamped_utc(at, EARLIEST, LATEST))
}

/// Microseconds since the Unix epoch, truncated toward the past, of `at` clamped to years 1 to
/// 9999 (UTC). The integer column would hold any instant, but only these read back as instants
/// on every backend; and `now`s beyond them compare with the rows as the bounds do.
pub(crate) fn unix_micros(at: OffsetDateTime) -> i64 {
    let micros = clamped_utc(at, EARLIEST, LATEST)
        .unix_timestamp_nanos()
        .div_euclid(1_000);
    // Years 1 to 9999 are within ±2.6·10¹⁷ µs of 1970, far within an `i64` (±9.2·10¹⁸).
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// `at` in UTC, truncated to microseconds and clamped to `datetime`'s range (years 1000–9999):
/// MySQL would round the fraction, and refuse a date outside the range. Never panics, whatever
/// the offset (see [`clamped_utc`]).
pub(crate) fn mysql_datetime(at: OffsetDateTime) -> PrimitiveDateTime {
    let utc = truncated_to_micros(clamped_utc(at, MYSQL_EARLIEST, LATEST));
    PrimitiveDateTime::new(utc.date(), utc.time())
}

/// `at` without its sub-microsecond nanoseconds: toward the past, within its second. The
/// bounds are whole microseconds, so a clamped instant stays within them.
pub(crate) fn truncated_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    // The nanosecond of a valid instant, floored to a microsecond, is still a valid nanosecond.
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}
