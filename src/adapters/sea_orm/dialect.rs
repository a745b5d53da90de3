//! The three SQL backends the repository speaks, as types: a store built for one backend says
//! so in its type ([`PostgresStore`](crate::PostgresStore), [`SqliteStore`](crate::SqliteStore),
//! [`MySqlStore`](crate::MySqlStore)), so a connection to another backend is caught, not
//! silently sent the wrong SQL.

use std::fmt::Debug;

use sea_orm::{DbBackend, Value};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A SQL backend the SeaORM repository has statements for: [`Postgres`], [`Sqlite`] or
/// [`MySql`]. Sealed: the statements for a backend live in this crate.
pub trait SqlDialect: sealed::Sealed + Copy + Default + Debug + Send + Sync + 'static {}

/// PostgreSQL: `text` id, `bytea` data, `timestamptz` expiry, in a schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postgres;

/// SQLite: `text` id, `blob` data, expiry as `integer` microseconds since the Unix epoch (UTC).
/// SQLite has no schemas: the schema name is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sqlite;

/// MySQL and MariaDB: `varbinary(128)` id (byte for byte), `longblob` data, `datetime(6)`
/// expiry in UTC. The schema name is ignored: the table lives in the connection's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MySql;

impl SqlDialect for Postgres {}
impl SqlDialect for Sqlite {}
impl SqlDialect for MySql {}

mod sealed {
    pub trait Sealed {
        const DIALECT: super::Dialect;
    }
    impl Sealed for super::Postgres {
        const DIALECT: super::Dialect = super::Dialect::Postgres;
    }
    impl Sealed for super::Sqlite {
        const DIALECT: super::Dialect = super::Dialect::Sqlite;
    }
    impl Sealed for super::MySql {
        const DIALECT: super::Dialect = super::Dialect::MySql;
    }
}

/// The dialect of a [`SqlDialect`] type, for code that branches on it.
pub(crate) fn dialect_of<B: SqlDialect>() -> Dialect {
    <B as sealed::Sealed>::DIALECT
}

/// The closed set of dialects; what the statements, the migration runner and the error
/// classification branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// SeaORM's name for the backend.
    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Self::Postgres => DbBackend::Postgres,
            Self::Sqlite => DbBackend::Sqlite,
            Self::MySql => DbBackend::MySql,
        }
    }

    /// The store type for this backend, for error messages.
    pub(crate) fn store_name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgresStore",
            Self::Sqlite => "SqliteStore",
            Self::MySql => "MySqlStore",
        }
    }

    /// What the database calls its error codes, for error messages.
    pub(crate) fn code_label(self) -> &'static str {
        match self {
            Self::Postgres | Self::MySql => "SQLSTATE",
            Self::Sqlite => "SQLite code",
        }
    }

    /// An instant as the `expiry_date` column stores it.
    ///
    /// Each form compares correctly whatever the connection's time zone, and each is truncated
    /// (toward the past) to microseconds, so a session is never loaded after its expiry.
    pub(crate) fn instant(self, at: OffsetDateTime) -> Value {
        match self {
            // timestamptz: an absolute instant; sqlx sends microseconds since 2000-01-01 UTC.
            Self::Postgres => Value::TimeDateTimeWithTimeZone(Some(at)),
            // No date type: integer microseconds since the Unix epoch order like instants.
            Self::Sqlite => Value::BigInt(Some(unix_micros(at))),
            // datetime(6) has no zone and is never converted by the server: we bind UTC, and
            // `time_zone` cannot change the result (unlike `timestamp`).
            Self::MySql => Value::TimeDateTime(Some(mysql_datetime(at))),
        }
    }
}

impl Dialect {
    /// The instant in column `index` of `row`, as [`Dialect::instant`] stored it.
    pub(crate) fn read_instant(
        self,
        row: &sea_orm::QueryResult,
        index: usize,
    ) -> Result<OffsetDateTime, sea_orm::DbErr> {
        match self {
            Self::Postgres => row.try_get_by_index::<OffsetDateTime>(index),
            Self::Sqlite => {
                let micros = row.try_get_by_index::<i64>(index)?;
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
                    .map_err(|_| sea_orm::DbErr::Type("a stored expiry is out of range".to_owned()))
            }
            Self::MySql => Ok(row
                .try_get_by_index::<PrimitiveDateTime>(index)?
                .assume_utc()),
        }
    }
}

impl Dialect {
    /// The key (`id` or `user_key`) in column `index` of `row`, as text.
    ///
    /// MySQL's key columns are `varbinary` (compared byte for byte; the third migration), which
    /// sqlx refuses to read as a string: the bytes are read and must be UTF-8, else the row is
    /// corrupt (an error that quotes none of them).
    pub(crate) fn read_key(
        self,
        row: &sea_orm::QueryResult,
        index: usize,
    ) -> Result<String, sea_orm::DbErr> {
        match self {
            Self::Postgres | Self::Sqlite => row.try_get_by_index::<String>(index),
            Self::MySql => String::from_utf8(row.try_get_by_index::<Vec<u8>>(index)?)
                .map_err(|_| sea_orm::DbErr::Type("a stored session key is not UTF-8".to_owned())),
        }
    }
}

fn unix_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1_000);
    // OffsetDateTime spans ±9999 years, well within i64 microseconds (±292,000 years).
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// `at` in UTC, truncated to microseconds and clamped to `datetime`'s range (years 1000–9999):
/// MySQL would round the fraction, and refuse a date outside the range.
fn mysql_datetime(at: OffsetDateTime) -> PrimitiveDateTime {
    let utc = at.to_offset(UtcOffset::UTC);
    let min = PrimitiveDateTime::new(
        Date::from_calendar_date(1000, time::Month::January, 1).unwrap_or(Date::MIN),
        Time::MIDNIGHT,
    );
    let max = PrimitiveDateTime::new(
        Date::from_calendar_date(9999, time::Month::December, 31).unwrap_or(Date::MAX),
        Time::from_hms_micro(23, 59, 59, 999_999).unwrap_or(Time::MIDNIGHT),
    );
    let truncated = PrimitiveDateTime::new(utc.date(), utc.time())
        .replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
        .unwrap_or(PrimitiveDateTime::new(utc.date(), utc.time()));
    truncated.clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_instants_are_microseconds_truncated_toward_the_past() {
        let at = datetime!(1970-01-01 00:00:01.000_001_999 UTC);
        assert_eq!(Dialect::Sqlite.instant(at), Value::BigInt(Some(1_000_001)));
        let before = datetime!(1969-12-31 23:59:59.999_999_5 UTC);
        assert_eq!(Dialect::Sqlite.instant(before), Value::BigInt(Some(-1)));
    }

    #[test]
    fn sqlite_instants_ignore_the_offset() {
        let utc = datetime!(2030-01-01 12:00 UTC);
        let east = utc.to_offset(time::macros::offset!(+14));
        assert_eq!(Dialect::Sqlite.instant(utc), Dialect::Sqlite.instant(east));
    }

    #[test]
    fn mysql_instants_are_utc_truncated_and_clamped() {
        let at = datetime!(2030-01-01 14:00:00.123_456_999 +02:00);
        assert_eq!(
            Dialect::MySql.instant(at),
            Value::TimeDateTime(Some(datetime!(2030-01-01 12:00:00.123_456)))
        );
        let ancient = datetime!(0500-01-01 00:00 UTC);
        assert_eq!(
            Dialect::MySql.instant(ancient),
            Value::TimeDateTime(Some(datetime!(1000-01-01 00:00)))
        );
    }
}
