use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, TransactionTrait},
};
use time::OffsetDateTime;

use crate::sql::{execute_all, mysql_datetime, no_sql_for, quote, rows, sqlite_micros};

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

    /// Gives both columns the insert's instant (`to_insert`, `up`) or the present one (`down`)
    /// as their default, unless they have it already.
    async fn set_defaults(
        &self,
        manager: &SchemaManager<'_>,
        to_insert: bool,
    ) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let now = OffsetDateTime::now_utc();
        match manager.get_database_backend() {
            // `DEFAULT now()` since `AddSessionTimes`.
            DbBackend::Postgres => Ok(()),
            DbBackend::Sqlite => {
                let to = match to_insert {
                    true => SQLITE_NOW_MICROS.to_owned(),
                    false => sqlite_micros(now).to_string(),
                };
                let done = |default: &str| default.contains("'now'") == to_insert;
                self.sqlite_rebuild(conn, &to, done).await
            }
            DbBackend::MySql => {
                if to_insert && self.mysql_defaults_are_the_insert(conn).await? {
                    return Ok(());
                }
                let to = match to_insert {
                    true => format!("({MYSQL_NOW_UTC})"),
                    false => mysql_datetime(now),
                };
                conn.execute_unprepared(&self.mysql_statement(&to))
                    .await
                    .map(drop)
            }
            other => Err(no_sql_for("the insert instant defaults", other)),
        }
    }

    /// Whether both columns' defaults on MySQL already read the clock.
    async fn mysql_defaults_are_the_insert(
        &self,
        conn: &SchemaManagerConnection<'_>,
    ) -> Result<bool, DbErr> {
        let sql = "SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                   AND COLUMN_NAME IN ('created_at', 'updated_at')";
        let defaults: Vec<Option<String>> =
            rows(conn, DbBackend::MySql, sql, vec![self.table.clone().into()]).await?;
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
        let fail =
            |what: String| DbErr::Migration(format!("the session table \"{}\" {what}", self.table));
        let about_table = || vec![self.table.clone().into()];
        let sql = "SELECT name, dflt_value FROM pragma_table_info(?) ORDER BY cid";
        let columns: Vec<(String, Option<String>)> =
            rows(&txn, DbBackend::Sqlite, sql, about_table()).await?;
        let mut defaults = Vec::new();
        for column in COLUMNS {
            let Some((_, default)) = columns.iter().find(|(name, _)| name == column) else {
                return Err(fail(format!(
                    "has no \"{column}\": run `AddSessionTimes` first"
                )));
            };
            defaults.push((column, default.clone().unwrap_or_default()));
        }
        if defaults.iter().all(|(_, default)| skip_if(default)) {
            return txn.commit().await;
        }

        let sql = "SELECT type, sql FROM sqlite_schema WHERE tbl_name = ? AND sql IS NOT NULL";
        let objects: Vec<(String, String)> =
            rows(&txn, DbBackend::Sqlite, sql, about_table()).await?;
        let Some((_, create)) = objects.iter().find(|(kind, _)| kind == "table") else {
            return Err(fail("does not exist".to_owned()));
        };
        let mut definition = create.clone();
        for (column, default) in &defaults {
            definition =
                sqlite_with_default(&definition, column, default, to).ok_or_else(|| {
                    fail(format!(
                        "declares \"{column}\" in an unexpected way, so its default cannot be \
                     replaced; give \"{column}\" the default ({to}) by hand"
                    ))
                })?;
        }
        // The same definition under the copy's name: everything from its first parenthesis.
        let body = definition
            .find('(')
            .map(|at| &definition[at..])
            .ok_or_else(|| fail("has an unreadable definition".to_owned()))?;
        let table = quote(DbBackend::Sqlite, &self.table);
        let copy = quote(DbBackend::Sqlite, &format!("{}__rebuilt", self.table));
        let names = columns
            .iter()
            .map(|(name, _)| quote(DbBackend::Sqlite, name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = vec![
            format!("CREATE TABLE {copy} {body}"),
            format!("INSERT INTO {copy} ({names}) SELECT {names} FROM {table}"),
            format!("DROP TABLE {table}"),
            format!("ALTER TABLE {copy} RENAME TO {table}"),
        ];
        // The indexes and triggers went with the old table; their names are free again.
        let again = objects
            .iter()
            .filter(|(kind, _)| kind == "index" || kind == "trigger");
        sql.extend(again.map(|(_, sql)| sql.clone()));
        execute_all(&txn, sql).await?;
        txn.commit().await
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

migration_name!(InsertInstantDefaults = "m20261203_000005_insert_instant_defaults");

#[async_trait::async_trait]
impl MigrationTrait for InsertInstantDefaults {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.set_defaults(manager, true).await
    }

    /// Back to a constant default, the instant of this `down`, as `AddSessionTimes` left it.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.set_defaults(manager, false).await
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
