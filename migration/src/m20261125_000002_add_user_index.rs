use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};

use crate::{quote_mysql, quote_pg, user_key_index_name};

/// Adds the per-user index and write avoidance's digest to an existing session table: two
/// nullable columns and an index, in the SQL of the connection's backend.
///
/// | backend | `user_key` | `data_digest` | index on `user_key` |
/// |---|---|---|---|
/// | PostgreSQL | `text` | `bytea` | partial, `WHERE user_key IS NOT NULL` |
/// | SQLite | `text` | `blob` | partial, `WHERE user_key IS NOT NULL` |
/// | MySQL, MariaDB | `varchar(255)`, `utf8mb4_bin` | `varbinary(32)` | plain |
///
/// Both columns are nullable without a default, so on PostgreSQL adding them only changes the
/// catalog (no table rewrite; a brief `ACCESS EXCLUSIVE` lock) and rows written before stay
/// valid: they simply have no user and no digest until their next save. Idempotent: each part
/// is added only if missing, so racing replicas and a table that already has the columns are
/// fine.
///
/// A table created by [`CreateSessionTable`](crate::CreateSessionTable) in an application's own
/// `Migrator` needs this migration too before the store is built with `with_user_key` or
/// `with_touch_after`: add it after `CreateSessionTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddUserIndex {
    schema: String,
    table: String,
}

impl AddUserIndex {
    /// The migration for `"<schema>"."<table>"`.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }

    fn pg_target(&self) -> String {
        format!("{}.{}", quote_pg(&self.schema), quote_pg(&self.table))
    }

    /// The PostgreSQL statements: `IF NOT EXISTS` on every part.
    pub fn postgres_statements(&self) -> [String; 2] {
        let target = self.pg_target();
        [
            format!(
                "ALTER TABLE {target} ADD COLUMN IF NOT EXISTS \"user_key\" text, \
                 ADD COLUMN IF NOT EXISTS \"data_digest\" bytea"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {target} (\"user_key\") \
                 WHERE \"user_key\" IS NOT NULL",
                quote_pg(&user_key_index_name(&self.table))
            ),
        ]
    }

    async fn up_sqlite(&self, conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
        let table = quote_pg(&self.table);
        for (column, kind) in [("user_key", "text"), ("data_digest", "blob")] {
            if !self.has_column(conn, DbBackend::Sqlite, column).await? {
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN \"{column}\" {kind}"
                ))
                .await?;
            }
        }
        conn.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} (\"user_key\") WHERE \"user_key\" IS NOT NULL",
            quote_pg(&user_key_index_name(&self.table))
        ))
        .await?;
        Ok(())
    }

    /// One `ALTER TABLE` with whatever is missing: MySQL has no `ADD COLUMN IF NOT EXISTS`
    /// (MariaDB does), and one statement keeps the parts together.
    async fn up_mysql(&self, conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
        let mut parts = Vec::new();
        if !self.has_column(conn, DbBackend::MySql, "user_key").await? {
            parts.push(
                "ADD COLUMN `user_key` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL"
                    .to_owned(),
            );
        }
        if !self
            .has_column(conn, DbBackend::MySql, "data_digest")
            .await?
        {
            parts.push("ADD COLUMN `data_digest` varbinary(32) NULL".to_owned());
        }
        let index = user_key_index_name(&self.table);
        let has_index = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT 1 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?",
                [self.table.clone().into(), index.clone().into()],
            ))
            .await?
            .is_some();
        if !has_index {
            parts.push(format!("ADD KEY {} (`user_key`)", quote_mysql(&index)));
        }
        if !parts.is_empty() {
            conn.execute_unprepared(&format!(
                "ALTER TABLE {} {}",
                quote_mysql(&self.table),
                parts.join(", ")
            ))
            .await?;
        }
        Ok(())
    }

    async fn has_column(
        &self,
        conn: &SchemaManagerConnection<'_>,
        backend: DbBackend,
        column: &str,
    ) -> Result<bool, DbErr> {
        let sql = match backend {
            DbBackend::Sqlite => "SELECT 1 FROM pragma_table_info(?) WHERE name = ?",
            _ => {
                "SELECT 1 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?"
            }
        };
        Ok(conn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [self.table.clone().into(), column.to_owned().into()],
            ))
            .await?
            .is_some())
    }
}

impl MigrationName for AddUserIndex {
    fn name(&self) -> &str {
        "m20261125_000002_add_user_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddUserIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for sql in self.postgres_statements() {
                    conn.execute_unprepared(&sql).await?;
                }
                Ok(())
            }
            DbBackend::Sqlite => self.up_sqlite(conn).await,
            DbBackend::MySql => self.up_mysql(conn).await,
            other => Err(DbErr::Migration(format!(
                "the user index migration has no SQL for {other:?}"
            ))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let index = user_key_index_name(&self.table);
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {} DROP COLUMN IF EXISTS \"user_key\", \
                     DROP COLUMN IF EXISTS \"data_digest\"",
                    self.pg_target()
                ))
                .await?;
            }
            DbBackend::Sqlite => {
                conn.execute_unprepared(&format!("DROP INDEX IF EXISTS {}", quote_pg(&index)))
                    .await?;
                for column in ["user_key", "data_digest"] {
                    if self.has_column(conn, DbBackend::Sqlite, column).await? {
                        conn.execute_unprepared(&format!(
                            "ALTER TABLE {} DROP COLUMN \"{column}\"",
                            quote_pg(&self.table)
                        ))
                        .await?;
                    }
                }
            }
            _ => {
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {} DROP COLUMN `user_key`, DROP COLUMN `data_digest`",
                    quote_mysql(&self.table)
                ))
                .await?;
            }
        }
        Ok(())
    }
}
