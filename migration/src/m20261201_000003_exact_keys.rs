use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::sql::{alter_mysql, no_sql_for, quote, rows};

/// Makes the session table's keys, `id` and `user_key`, compare byte for byte on MySQL and
/// MariaDB, as they already do on PostgreSQL and SQLite.
///
/// | backend | `id` | `user_key` |
/// |---|---|---|
/// | PostgreSQL | unchanged (`text`: `=` compares bytes) | unchanged |
/// | SQLite | unchanged (`text`, `BINARY` collation) | unchanged |
/// | MySQL, MariaDB | `varbinary(128)` | `varbinary(255)` |
///
/// The first two migrations gave MySQL `varchar` columns with binary collations (`ascii_bin`,
/// `utf8mb4_bin`). Those collations are `PAD SPACE`: `'ada'` and `'ada '` compare equal, so
/// user `ada ` would list and end user `ada`'s sessions. `varbinary` compares every byte, on
/// MySQL 8 and MariaDB 10.11 alike (the `NO PAD` collations are named differently on each). The
/// stored bytes are unchanged: ids are ASCII and user keys UTF-8, so every row loads as before.
///
/// On MySQL this rebuilds the table (`ALTER TABLE … MODIFY`, which keeps the primary key and the
/// user index). Idempotent: a column that is already `varbinary` is left alone, so racing
/// replicas and a second run are fine. On PostgreSQL and SQLite it does nothing.
///
/// An application's own `Migrator` adds it after [`AddUserIndex`](crate::AddUserIndex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactKeys {
    table: String,
}

impl ExactKeys {
    /// The migration for `"<schema>"."<table>"` (the schema only matters on PostgreSQL, where
    /// there is nothing to do).
    pub fn new(_schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
        }
    }

    /// The `MODIFY` clauses that make the columns of `types` (name, `DATA_TYPE`) exact.
    fn mysql_changes(types: &[(String, String)]) -> Vec<String> {
        let exact = [
            ("id", "varbinary(128) NOT NULL"),
            ("user_key", "varbinary(255) NULL"),
        ];
        modify(types, exact, |kind| !kind.eq_ignore_ascii_case("varbinary"))
    }

    /// The `id` and `user_key` columns of the table and their types.
    async fn mysql_key_types(
        &self,
        conn: &SchemaManagerConnection<'_>,
    ) -> Result<Vec<(String, String)>, DbErr> {
        let sql = "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                   AND COLUMN_NAME IN ('id', 'user_key')";
        rows(conn, DbBackend::MySql, sql, vec![self.table.clone().into()]).await
    }

    async fn up_mysql(&self, conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
        let types = self.mysql_key_types(conn).await?;
        if !types.iter().any(|(name, _)| name == "id") {
            return Err(DbErr::Migration(format!(
                "the session table {} has no id column: create it first (CreateSessionTable)",
                quote(DbBackend::MySql, &self.table)
            )));
        }
        // A replica racing this one may run the same ALTER meanwhile: the server serialises
        // them, and the second changes a varbinary column to itself.
        alter_mysql(conn, &self.table, &Self::mysql_changes(&types)).await
    }
}

migration_name!(ExactKeys = "m20261201_000003_exact_keys");

#[async_trait::async_trait]
impl MigrationTrait for ExactKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::MySql => self.up_mysql(manager.get_connection()).await,
            // Already exact: PostgreSQL's deterministic collations and SQLite's BINARY compare
            // bytes, and neither pads.
            DbBackend::Postgres | DbBackend::Sqlite => Ok(()),
            other => Err(no_sql_for("the exact-keys", other)),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let conn = manager.get_connection();
        let types = self.mysql_key_types(conn).await?;
        let padded = [
            (
                "id",
                "varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
            ),
            (
                "user_key",
                "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
            ),
        ];
        alter_mysql(conn, &self.table, &modify(&types, padded, |_| true)).await
    }
}

/// `MODIFY COLUMN` of each of `columns` (name, definition) that `types` (name, `DATA_TYPE`)
/// lists with a type that `needs_it`.
fn modify(
    types: &[(String, String)],
    columns: [(&str, &str); 2],
    needs_it: impl Fn(&str) -> bool,
) -> Vec<String> {
    columns
        .into_iter()
        .filter(|(column, _)| {
            types
                .iter()
                .any(|(name, kind)| name == column && needs_it(kind))
        })
        .map(|(column, definition)| format!("MODIFY COLUMN `{column}` {definition}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn only_the_columns_not_yet_varbinary_are_changed() {
        assert_eq!(
            ExactKeys::mysql_changes(&types(&[("id", "varchar"), ("user_key", "varchar")])),
            [
                "MODIFY COLUMN `id` varbinary(128) NOT NULL",
                "MODIFY COLUMN `user_key` varbinary(255) NULL"
            ]
        );
        assert_eq!(
            ExactKeys::mysql_changes(&types(&[("id", "varbinary"), ("user_key", "varchar")])),
            ["MODIFY COLUMN `user_key` varbinary(255) NULL"]
        );
        assert_eq!(
            ExactKeys::mysql_changes(&types(&[("id", "varchar")])),
            ["MODIFY COLUMN `id` varbinary(128) NOT NULL"],
            "a table without the user index keeps having none"
        );
        assert!(ExactKeys::mysql_changes(&types(&[
            ("id", "VARBINARY"),
            ("user_key", "varbinary")
        ]))
        .is_empty());
    }
}
