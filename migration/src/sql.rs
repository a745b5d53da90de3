//! The SQL the migrations and the runner share: identifiers quoted (the crate's one quoter),
//! catalog queries' rows read, a column looked up in the catalog, statements run in order,
//! `ALTER TABLE` of several changes, instants written as literals.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement, TryGetableMany, Value},
};
use time::OffsetDateTime;

/// Quotes identifier `name` for `backend`: in backquotes on MySQL and MariaDB, in double quotes
/// on PostgreSQL and SQLite, doubling any quote inside.
///
/// ```
/// use tower_sessions_seaorm_migration::{quote, sea_orm_migration::sea_orm::DbBackend};
///
/// assert_eq!(quote(DbBackend::Postgres, r#"a"b"#), r#""a""b""#);
/// assert_eq!(quote(DbBackend::MySql, "a`b"), "`a``b`");
/// ```
pub fn quote(backend: DbBackend, name: &str) -> String {
    let mark = if backend == DbBackend::MySql {
        "`"
    } else {
        "\""
    };
    format!("{mark}{}{mark}", name.replace(mark, &mark.repeat(2)))
}

/// PostgreSQL's `CREATE SCHEMA IF NOT EXISTS` of `schema`.
pub(crate) fn create_schema(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote(DbBackend::Postgres, schema)
    )
}

/// Table `table` of schema `schema` as statements name it: `"<schema>"."<table>"` on
/// PostgreSQL, the quoted table name alone on SQLite and MySQL, which have no schemas (the
/// table is in the connection's database).
pub fn qualified(backend: DbBackend, schema: &str, table: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("{}.{}", quote(backend, schema), quote(backend, table)),
        _ => quote(backend, table),
    }
}

/// The error of a migration (`what`: "the user index") run on a backend it has no SQL for.
pub(crate) fn no_sql_for(what: &str, backend: DbBackend) -> DbErr {
    DbErr::Migration(format!("{what} migration has no SQL for {backend:?}"))
}

/// The rows `sql` returns, each read as `T` (a value, or a tuple of the first columns).
pub(crate) async fn rows<T: TryGetableMany>(
    conn: &impl ConnectionTrait,
    backend: DbBackend,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<T>, DbErr> {
    conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .map(|row| row.try_get_many_by_index())
        .collect()
}

/// Whether `sql` returns a row.
pub(crate) async fn any_row(
    conn: &impl ConnectionTrait,
    backend: DbBackend,
    sql: &str,
    values: Vec<Value>,
) -> Result<bool, DbErr> {
    Ok(conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .is_some())
}

/// Runs `statements`, in order.
pub(crate) async fn execute_all(
    conn: &impl ConnectionTrait,
    statements: Vec<String>,
) -> Result<(), DbErr> {
    for sql in statements {
        conn.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Whether table `table` has column `column`, on SQLite or in MySQL's current database.
pub(crate) async fn has_column(
    conn: &impl ConnectionTrait,
    backend: DbBackend,
    table: &str,
    column: &str,
) -> Result<bool, DbErr> {
    let sql = match backend {
        DbBackend::Sqlite => "SELECT 1 FROM pragma_table_info(?) WHERE name = ?",
        _ => {
            "SELECT 1 FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?"
        }
    };
    any_row(conn, backend, sql, vec![table.into(), column.into()]).await
}

/// `ALTER TABLE target` making `changes`, none when there are none: on MySQL and PostgreSQL in
/// one statement, which keeps the parts together (MySQL's DDL commits each statement by
/// itself); on SQLite, which takes one change at a time, one statement each.
pub(crate) async fn alter(
    conn: &impl ConnectionTrait,
    backend: DbBackend,
    target: &str,
    changes: &[String],
) -> Result<(), DbErr> {
    let statements = match backend {
        DbBackend::Sqlite => changes.to_vec(),
        _ if changes.is_empty() => Vec::new(),
        _ => vec![changes.join(", ")],
    };
    let statements = statements
        .iter()
        .map(|changes| format!("ALTER TABLE {target} {changes}"))
        .collect();
    execute_all(conn, statements).await
}

/// One `ALTER TABLE` of MySQL table `table` making `changes`, none when there are none.
pub(crate) async fn alter_mysql(
    conn: &impl ConnectionTrait,
    table: &str,
    changes: &[String],
) -> Result<(), DbErr> {
    alter(
        conn,
        DbBackend::MySql,
        &quote(DbBackend::MySql, table),
        changes,
    )
    .await
}

/// `instant` as SQLite stores the session table's instants: microseconds since the Unix epoch.
pub(crate) fn sqlite_micros(instant: OffsetDateTime) -> i128 {
    instant.unix_timestamp_nanos() / 1_000
}

/// `instant` as a MySQL `datetime(6)` literal, in UTC: `'2026-12-03 10:20:30.123456'`.
pub(crate) fn mysql_datetime(instant: OffsetDateTime) -> String {
    let instant = instant.to_offset(time::UtcOffset::UTC);
    format!(
        "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
        instant.year(),
        u8::from(instant.month()),
        instant.day(),
        instant.hour(),
        instant.minute(),
        instant.second(),
        instant.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_backends_quote_and_leaves_the_other() {
        assert_eq!(quote(DbBackend::Postgres, r#"a"b"#), r#""a""b""#);
        assert_eq!(quote(DbBackend::Sqlite, "a`b"), r#""a`b""#);
        assert_eq!(quote(DbBackend::MySql, r#"a`b"c"#), r#"`a``b"c`"#);
    }

    #[test]
    fn only_postgresql_names_the_schema() {
        assert_eq!(
            qualified(DbBackend::Postgres, "tower_sessions", "session"),
            r#""tower_sessions"."session""#
        );
        assert_eq!(
            qualified(DbBackend::Sqlite, "tower_sessions", "session"),
            r#""session""#
        );
        assert_eq!(
            qualified(DbBackend::MySql, "tower_sessions", "session"),
            "`session`"
        );
    }

    #[test]
    fn instants_are_written_in_utc_to_the_microsecond() {
        let utc = OffsetDateTime::from_unix_timestamp_nanos(1_796_286_030_123_456_000).unwrap();
        let elsewhere = utc.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        for instant in [utc, elsewhere] {
            assert_eq!(mysql_datetime(instant), "'2026-12-03 08:20:30.123456'");
            assert_eq!(sqlite_micros(instant), 1_796_286_030_123_456);
        }
    }
}
