//! The dialect of a SeaORM connection, read once when the repository is built (the store's SQL
//! follows its connection, so no connection can be sent another backend's SQL), and instants as
//! SeaORM values.

use sea_orm::{DbBackend, Value};
use time::{OffsetDateTime, PrimitiveDateTime};

pub(crate) use crate::adapters::sql::dialect::Dialect;
use crate::adapters::sql::dialect::{mysql_datetime, postgres_instant, unix_micros};

impl Dialect {
    /// The dialect of SeaORM's backend.
    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::Postgres,
            DbBackend::Sqlite => Self::Sqlite,
            DbBackend::MySql => Self::MySql,
            // SeaORM 2 has these three; its enum is open for more. A backend this crate has no
            // SQL for gets PostgreSQL's (the most standard), and says so once.
            other => {
                tracing::warn!(
                    backend = ?other,
                    "no session-store SQL for this database backend; using PostgreSQL's"
                );
                Self::Postgres
            }
        }
    }

    /// An instant as the `expiry_date` column stores it.
    ///
    /// Each form compares correctly whatever the connection's time zone, and each is truncated
    /// (toward the past) to microseconds, so a session is never loaded after its expiry.
    ///
    /// Never panics, whatever the instant and its offset: instants are clamped to years 1 to
    /// 9999 in UTC (1000 to 9999 on MySQL, whose `datetime` starts there), the range the column
    /// is read back in ([`postgres_instant`], [`unix_micros`], [`mysql_datetime`]). The domain
    /// refuses expiries outside years 1 to 9999 before they get here, so the clamp changes only
    /// instants a caller hands the repository directly, a "now" beyond the range, and on MySQL
    /// expiries before year 1000 (long expired either way).
    pub(crate) fn instant(self, at: OffsetDateTime) -> Value {
        match self {
            // timestamptz: an absolute instant; sqlx sends microseconds since 2000-01-01 UTC.
            Self::Postgres => Value::TimeDateTimeWithTimeZone(Some(postgres_instant(at))),
            // No date type: integer microseconds since the Unix epoch order like instants.
            Self::Sqlite => Value::BigInt(Some(unix_micros(at))),
            // datetime(6) has no zone and is never converted by the server: we bind UTC, and
            // `time_zone` cannot change the result (unlike `timestamp`).
            Self::MySql => Value::TimeDateTime(Some(mysql_datetime(at))),
        }
    }

    /// The instant in column `index` of `row`, as [`Dialect::instant`] stored it.
    ///
    /// A value the driver cannot turn into an instant (a MySQL date with a zero month or day, a
    /// SQLite integer beyond `time`'s years ±9999 or a value of another type) is an error, never
    /// a panic. PostgreSQL's statements must clamp the column before it is read
    /// ([`POSTGRES_EARLIEST_SQL`], [`POSTGRES_LATEST_SQL`]): sqlx panics decoding a
    /// `timestamptz` beyond year 9999, such as `'infinity'`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::dialect::{
        EARLIEST, LATEST, MYSQL_EARLIEST, POSTGRES_EARLIEST_SQL, POSTGRES_LATEST_SQL,
    };
    use time::{macros::datetime, Date, Time, UtcOffset};

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

    #[test]
    fn the_bounds_are_the_literals_postgres_statements_clamp_to() {
        use time::format_description::well_known::Rfc3339;
        let literal = |sql: &str| {
            let text = sql
                .trim_start_matches("TIMESTAMPTZ '")
                .trim_end_matches("+00'");
            OffsetDateTime::parse(&format!("{}Z", text.replace(' ', "T")), &Rfc3339).unwrap()
        };
        assert_eq!(literal(POSTGRES_EARLIEST_SQL), EARLIEST);
        assert_eq!(literal(POSTGRES_LATEST_SQL), LATEST);
    }

    /// Instants whose UTC form `time` cannot express: `to_offset(UTC)` panics on each.
    fn beyond_utc() -> [OffsetDateTime; 4] {
        use time::macros::offset;
        [
            datetime!(9999-12-31 23:59:59 -01:00),
            Date::MIN.midnight().assume_offset(offset!(+01:00)),
            Date::MAX
                .with_time(Time::MAX)
                .assume_offset(offset!(-23:59:59)),
            Date::MIN.midnight().assume_offset(offset!(+23:59:59)),
        ]
    }

    #[test]
    fn instants_beyond_what_utc_can_express_are_clamped_not_panicking() {
        let [late, early, latest, earliest] = beyond_utc();
        for (at, postgres, mysql) in [
            (late, LATEST, LATEST),
            (early, EARLIEST, MYSQL_EARLIEST),
            (latest, LATEST, LATEST),
            (earliest, EARLIEST, MYSQL_EARLIEST),
        ] {
            assert_eq!(
                Dialect::Postgres.instant(at),
                Value::TimeDateTimeWithTimeZone(Some(postgres)),
                "{at}"
            );
            let mysql = PrimitiveDateTime::new(mysql.date(), mysql.time());
            assert_eq!(
                Dialect::MySql.instant(at),
                Value::TimeDateTime(Some(mysql)),
                "{at}"
            );
            let micros = (postgres.unix_timestamp_nanos() / 1_000) as i64;
            assert_eq!(
                Dialect::Sqlite.instant(at),
                Value::BigInt(Some(micros)),
                "{at}"
            );
        }
    }

    #[test]
    fn postgres_instants_are_utc_and_truncated_toward_the_past() {
        let before_2000 = datetime!(1999-12-31 23:59:59.999_999_5 -05:00);
        assert_eq!(
            postgres_instant(before_2000),
            datetime!(2000-01-01 04:59:59.999_999 UTC)
        );
        assert!(postgres_instant(before_2000).offset().is_utc());
        assert_eq!(postgres_instant(datetime!(0000-12-31 23:00 UTC)), EARLIEST);
    }

    mod any_instant {
        use proptest::prelude::*;

        use super::*;

        /// Any date `time` holds, any time of day, any offset: including the instants whose UTC
        /// form `time` cannot express.
        fn any_offset_date_time() -> impl Strategy<Value = OffsetDateTime> {
            let days = Date::MIN.to_julian_day()..=Date::MAX.to_julian_day();
            (days, 0u64..86_400 * 1_000_000_000, -86_399i32..=86_399).prop_map(
                |(day, nanos, offset)| {
                    let date = Date::from_julian_day(day).unwrap();
                    let time = Time::MIDNIGHT + time::Duration::nanoseconds(nanos as i64);
                    let offset = UtcOffset::from_whole_seconds(offset).unwrap();
                    OffsetDateTime::new_in_offset(date, time, offset)
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn every_instant_becomes_a_value_of_its_column(at in any_offset_date_time()) {
                let Value::TimeDateTimeWithTimeZone(Some(postgres)) = Dialect::Postgres.instant(at)
                else { panic!("a timestamptz") };
                prop_assert!(postgres.offset().is_utc());
                prop_assert!((EARLIEST..=LATEST).contains(&postgres));
                prop_assert_eq!(postgres.nanosecond() % 1_000, 0);
                if (EARLIEST..=LATEST).contains(&at) {
                    prop_assert!(postgres <= at && at - postgres < time::Duration::MICROSECOND);
                }

                let Value::TimeDateTime(Some(mysql)) = Dialect::MySql.instant(at)
                else { panic!("a datetime") };
                let mysql = mysql.assume_utc();
                prop_assert!((MYSQL_EARLIEST..=LATEST).contains(&mysql));
                prop_assert_eq!(mysql.nanosecond() % 1_000, 0);

                let Value::BigInt(Some(micros)) = Dialect::Sqlite.instant(at)
                else { panic!("an integer") };
                let stored = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000);
                prop_assert_eq!(stored, Ok(postgres));
            }
        }
    }
}
