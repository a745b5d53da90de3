use sea_orm_migration::{
    prelude::*,
    sea_orm::{DatabaseTransaction, DbBackend, Statement, TransactionTrait, TryGetable},
};
use time::OffsetDateTime;

use crate::sql::{mysql_datetime, no_sql_for, quote, sqlite_micros};

/// Makes `created_at` and `updated_at` default to **the insert's instant** on every backend,
/// so that a row written without them (by another writer: `tower-sessions-sqlx-store` during a
/// switch, a restore, a hand-written `INSERT`) counts its absolute lifetime from when it was
/// written.
///
/// [`AddSessionTimes`](crate::AddSessionTimes) gave both columns a constant default on SQLite
/// and MySQL/MariaDB, the migration's own instant (both refuse, or refused, an expression
/// default in `ADD COLUMN`): rows written later without a value counted from the day the table
/// was migrated, and an absolute lifetime ended them at once, or never.
///
/// | backend | `created_at`, `updated_at` default |
/// |---|---|
/// | PostgreSQL | unchanged: `now()`, the inserting transaction's start |
/// | SQLite | the statement's instant in µs since the Unix epoch (UTC), to the millisecond: `strftime('%s', 'now')`, `strftime('%f', 'now')` |
/// | MySQL, MariaDB | `UTC_TIMESTAMP(6)`, in UTC whatever the session's time zone (`CURRENT_TIMESTAMP` is not) |
///
/// Rows already stored keep their values: only the default changes. The store itself always
/// writes both columns, so its own rows are not affected.
///
/// - **MySQL/MariaDB**: `ALTER TABLE … ALTER COLUMN … SET DEFAULT (UTC_TIMESTAMP(6))`, a
///   change of the table's metadata only (MySQL 8.0.13 and MariaDB 10.2 take expression
///   defaults). With statement-based binary logging, an `INSERT` relying on it is logged as
///   unsafe; the default row-based logging is not concerned.
/// - **SQLite** changes a default only by rebuilding the table: within one transaction, a copy
///   of the table with the new defaults (the stored `CREATE TABLE` with only the two defaults
///   replaced), every row copied, the old table dropped, the copy renamed, its indexes and
///   triggers created again. It takes the database's write lock for as long as the copy takes.
///
/// Idempotent: a table whose defaults are already the insert's instant is left alone, so a
/// second run and racing replicas are fine (on SQLite the loser of the race fails with
/// `SQLITE_BUSY`, and `migrate()` starts over and finds the work done). An application's own
/// `Migrator` adds it after [`AddSessionTimes`](crate::AddSessionTimes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertInstantDefaults {
    table: String,
}

/// The columns whose default changes.
const COLUMNS: [&str; 2] = ["created_at", "updated_at"];

/// SQLite's expression for the statement's instant in microseconds since the Unix epoch (UTC):
/// whole seconds from `%s`, milliseconds from `%f` (`SS.SSS`). Every `'now'` of one statement
/// is the same instant. (`unixepoch('subsec')` would need SQLite 3.42.)
const SQLITE_NOW_MICROS: &str = "CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + \
                                 CAST(substr(strftime('%f', 'now'), 4) AS INTEGER) * 1000";

/// MySQL's and MariaDB's expression for the statement's instant in UTC.
const MYSQL_NOW_UTC: &str = "UTC_TIMESTAMP(6)";

impl InsertInstantDefaults {
    /// The migration for `"<schema>"."<table>"` (the schema only matters on PostgreSQL, where
    /// there is nothing to do).
    pub fn new(_schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
        }
    }

    /// The MySQL statement giving both columns `default` (an expression, or a literal).
    pub fn mysql_statement(&self, default: &str) -> String {
        let sets = COLUMNS
            .iter()
            .map(|column| format!("ALTER COLUMN `{column}` SET DEFAULT {default}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "ALTER TABLE {} {sets}",
            quote(DbBackend::MySql, &self.table)
        )
    }

    /// Whether both columns' defaults on MySQL already read the clock.
    async fn mysql_defaults_are_the_insert(
        &self,
        conn: &SchemaManagerConnection<'_>,
    ) -> Result<bool, DbErr> {
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                 AND COLUMN_NAME IN ('created_at', 'updated_at')",
                [self.table.clone().into()],
            ))
            .await?;
        let defaults = rows
            .iter()
            .map(|row| row.try_get_by_index::<Option<String>>(0))
            .collect::<Result<Vec<_>, _>>()?;
        if defaults.len() != COLUMNS.len() {
            return Err(DbErr::Migration(format!(
                "the session table `{}` has no `created_at` or `updated_at`: run \
                 `AddSessionTimes` first",
                self.table
            )));
        }
        Ok(defaults.iter().all(|default| {
            default
                .as_deref()
                .is_some_and(|d| d.to_ascii_lowercase().contains("utc_timestamp"))
        }))
    }

    /// Rebuilds the SQLite table with each column's default `from` (as SQLite reports it)
    /// replaced by `to`, in one transaction (a savepoint within the caller's).
    async fn sqlite_rebuild(
        &self,
        conn: &SchemaManagerConnection<'_>,
        to: &str,
        skip_if: impl Fn(&str) -> bool,
    ) -> Result<(), DbErr> {
        let txn = conn.begin().await?;
        let table = quote(DbBackend::Sqlite, &self.table);
        let columns: Vec<(String, Option<String>)> = self
            .sqlite_pairs(
                &txn,
                "SELECT name, dflt_value FROM pragma_table_info(?) ORDER BY cid",
            )
            .await?;
        let default_of = |name: &str| {
            columns
                .iter()
                .find(|(column, _)| column == name)
                .map(|(_, default)| default.clone().unwrap_or_default())
        };
        let mut defaults = Vec::new();
        for column in COLUMNS {
            let Some(default) = default_of(column) else {
                return Err(DbErr::Migration(format!(
                    "the session table \"{}\" has no \"{column}\": run `AddSessionTimes` first",
                    self.table
                )));
            };
            defaults.push((column, default));
        }
        if defaults.iter().all(|(_, default)| skip_if(default)) {
            return txn.commit().await;
        }

        let objects: Vec<(String, String)> = self
            .sqlite_pairs(
                &txn,
                "SELECT type, sql FROM sqlite_schema WHERE tbl_name = ? AND sql IS NOT NULL",
            )
            .await?;
        let Some((_, create)) = objects.iter().find(|(kind, _)| kind == "table") else {
            return Err(DbErr::Migration(format!(
                "the session table \"{}\" does not exist",
                self.table
            )));
        };
        let mut definition = create.clone();
        for (column, default) in &defaults {
            definition =
                sqlite_with_default(&definition, column, default, to).ok_or_else(|| {
                    DbErr::Migration(format!(
                    "the session table \"{}\" declares \"{column}\" in an unexpected way, so its \
                     default cannot be replaced; give \"{column}\" the default ({to}) by hand",
                    self.table
                ))
                })?;
        }
        // The same definition under the copy's name: everything from its first parenthesis.
        let body = definition
            .find('(')
            .map(|at| &definition[at..])
            .ok_or_else(|| {
                DbErr::Migration(format!(
                    "the session table \"{}\" has an unreadable definition",
                    self.table
                ))
            })?;
        let copy = quote(DbBackend::Sqlite, &format!("{}__rebuilt", self.table));
        let names = columns
            .iter()
            .map(|(name, _)| quote(DbBackend::Sqlite, name))
            .collect::<Vec<_>>()
            .join(", ");
        txn.execute_unprepared(&format!("CREATE TABLE {copy} {body}"))
            .await?;
        txn.execute_unprepared(&format!(
            "INSERT INTO {copy} ({names}) SELECT {names} FROM {table}"
        ))
        .await?;
        txn.execute_unprepared(&format!("DROP TABLE {table}"))
            .await?;
        txn.execute_unprepared(&format!("ALTER TABLE {copy} RENAME TO {table}"))
            .await?;
        // The indexes and triggers went with the old table; their names are free again.
        for (kind, sql) in &objects {
            if kind == "index" || kind == "trigger" {
                txn.execute_unprepared(sql).await?;
            }
        }
        txn.commit().await
    }

    /// The rows SQLite query `sql` (about the table, its one parameter) returns, as pairs.
    async fn sqlite_pairs<T: TryGetable>(
        &self,
        txn: &DatabaseTransaction,
        sql: &str,
    ) -> Result<Vec<(String, T)>, DbErr> {
        txn.query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [self.table.clone().into()],
        ))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
    }
}

/// `create` (a stored `CREATE TABLE`) with the default of `column`, which SQLite reports as
/// `current`, replaced by `(to)`; `None` when the column's declaration is not found as
/// `ALTER TABLE … ADD COLUMN` (or a table this crate created) wrote it.
fn sqlite_with_default(create: &str, column: &str, current: &str, to: &str) -> Option<String> {
    let declared = |default: &str| format!("\"{column}\" integer NOT NULL DEFAULT {default}");
    let candidates = [declared(current), declared(&format!("({current})"))];
    let found = candidates
        .iter()
        .find(|candidate| create.matches(candidate.as_str()).count() == 1)?;
    Some(create.replacen(found.as_str(), &declared(&format!("({to})")), 1))
}

impl MigrationName for InsertInstantDefaults {
    fn name(&self) -> &str {
        "m20261203_000005_insert_instant_defaults"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for InsertInstantDefaults {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            // `DEFAULT now()` since `AddSessionTimes`.
            DbBackend::Postgres => Ok(()),
            DbBackend::Sqlite => {
                self.sqlite_rebuild(conn, SQLITE_NOW_MICROS, |default| default.contains("'now'"))
                    .await
            }
            DbBackend::MySql => {
                if !self.mysql_defaults_are_the_insert(conn).await? {
                    conn.execute_unprepared(&self.mysql_statement(&format!("({MYSQL_NOW_UTC})")))
                        .await?;
                }
                Ok(())
            }
            other => Err(no_sql_for("the insert instant defaults", other)),
        }
    }

    /// Back to a constant default, the instant of this `down`, as `AddSessionTimes` left it.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let now = OffsetDateTime::now_utc();
        match manager.get_database_backend() {
            DbBackend::Postgres => Ok(()),
            DbBackend::Sqlite => {
                let micros = sqlite_micros(now).to_string();
                self.sqlite_rebuild(conn, &micros, |default| !default.contains("'now'"))
                    .await
            }
            _ => conn
                .execute_unprepared(&self.mysql_statement(&mysql_datetime(now)))
                .await
                .map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_defaults_to_the_statements_instant_in_utc() {
        assert_eq!(
            InsertInstantDefaults::new("ignored", "session").mysql_statement("(UTC_TIMESTAMP(6))"),
            "ALTER TABLE `session` ALTER COLUMN `created_at` SET DEFAULT (UTC_TIMESTAMP(6)), \
             ALTER COLUMN `updated_at` SET DEFAULT (UTC_TIMESTAMP(6))"
        );
    }

    #[test]
    fn sqlite_replaces_exactly_the_columns_constant_default() {
        let create = r#"CREATE TABLE "session" ( "id" text NOT NULL PRIMARY KEY, "data" blob NOT NULL, "expiry_date" integer NOT NULL , "created_at" integer NOT NULL DEFAULT 1764000000000000, "updated_at" integer NOT NULL DEFAULT 1764000000000000)"#;
        let once = sqlite_with_default(create, "created_at", "1764000000000000", "NOW").unwrap();
        assert_eq!(
            once,
            r#"CREATE TABLE "session" ( "id" text NOT NULL PRIMARY KEY, "data" blob NOT NULL, "expiry_date" integer NOT NULL , "created_at" integer NOT NULL DEFAULT (NOW), "updated_at" integer NOT NULL DEFAULT 1764000000000000)"#
        );
        let twice = sqlite_with_default(&once, "updated_at", "1764000000000000", "NOW").unwrap();
        assert!(twice.ends_with(r#""updated_at" integer NOT NULL DEFAULT (NOW))"#));
        // Back again: SQLite reports an expression default without its parentheses.
        let back = sqlite_with_default(&twice, "created_at", "NOW", "1").unwrap();
        assert!(back.contains(r#""created_at" integer NOT NULL DEFAULT (1),"#));
        assert_eq!(
            sqlite_with_default(create, "created_at", "42", "NOW"),
            None,
            "a default it does not find is not guessed at"
        );
    }
}
