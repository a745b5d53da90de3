use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};
use time::OffsetDateTime;

use crate::{created_at_index_name, quote_mysql, quote_pg};

/// Adds when each session was created and last saved, and the values its user's device list
/// shows: what the absolute lifetime (`with_absolute_lifetime`), the per-user session limit
/// (`with_max_sessions_per_user`) and the device list (`with_listed_values`) read.
///
/// | backend | `created_at`, `updated_at` | `listed_values` | index on `created_at` |
/// |---|---|---|---|
/// | PostgreSQL | `timestamptz NOT NULL DEFAULT now()` | `text` (a JSON object) | yes |
/// | SQLite | `integer NOT NULL` (µs since the Unix epoch), defaulting to the migration's instant | `text` | yes |
/// | MySQL, MariaDB | `datetime(6) NOT NULL` (UTC), defaulting to the migration's instant | `longtext`, `utf8mb4` | yes |
///
/// **Rows from before this migration count from the migration**: they get its instant as their
/// creation and last save, so an absolute lifetime ends them that long after the migration, not
/// at once. On PostgreSQL (11 and later) adding a column with a non-volatile default changes
/// only the catalog; SQLite and MariaDB add such columns in place too. The index on
/// `created_at` serves the cleanup of outlived sessions; the store writes `created_at` only when
/// it creates a row, so saves never touch it.
///
/// Idempotent: each part is added only if missing, so racing replicas are fine. An
/// application's own `Migrator` adds it after [`ExactKeys`](crate::ExactKeys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSessionTimes {
    schema: String,
    table: String,
}

/// The columns and their types, per backend: (name, PostgreSQL, SQLite, MySQL). The instants'
/// defaults are added where the statement is written.
const COLUMNS: [(&str, &str, &str, &str); 3] = [
    ("created_at", "timestamptz", "integer", "datetime(6)"),
    ("updated_at", "timestamptz", "integer", "datetime(6)"),
    (
        "listed_values",
        "text",
        "text",
        "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    ),
];

impl AddSessionTimes {
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

    /// The PostgreSQL statements: `IF NOT EXISTS` on every part. `now()` is the migration's
    /// transaction's instant, the same for every existing row.
    pub fn postgres_statements(&self) -> [String; 2] {
        let target = self.pg_target();
        let columns = COLUMNS
            .iter()
            .map(|(name, kind, _, _)| {
                let default = if *kind == "timestamptz" {
                    " NOT NULL DEFAULT now()"
                } else {
                    ""
                };
                format!("ADD COLUMN IF NOT EXISTS \"{name}\" {kind}{default}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        [
            format!("ALTER TABLE {target} {columns}"),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {target} (\"created_at\")",
                quote_pg(&created_at_index_name(&self.table))
            ),
        ]
    }

    async fn up_sqlite(&self, conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
        let table = quote_pg(&self.table);
        // SQLite adds a NOT NULL column only with a constant default.
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
        for (name, _, kind, _) in COLUMNS {
            if !self.has_column(conn, DbBackend::Sqlite, name).await? {
                let default = if kind == "integer" {
                    format!(" NOT NULL DEFAULT {now}")
                } else {
                    String::new()
                };
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN \"{name}\" {kind}{default}"
                ))
                .await?;
            }
        }
        conn.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} (\"created_at\")",
            quote_pg(&created_at_index_name(&self.table))
        ))
        .await?;
        Ok(())
    }

    /// One `ALTER TABLE` with whatever is missing (MySQL has no `ADD COLUMN IF NOT EXISTS`).
    /// The default is a UTC literal: `CURRENT_TIMESTAMP` would follow the session's time zone.
    async fn up_mysql(&self, conn: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
        let now = OffsetDateTime::now_utc();
        let now = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.microsecond()
        );
        let mut parts = Vec::new();
        for (name, _, _, kind) in COLUMNS {
            if !self.has_column(conn, DbBackend::MySql, name).await? {
                let default = if kind == "datetime(6)" {
                    format!(" NOT NULL DEFAULT '{now}'")
                } else {
                    " NULL".to_owned()
                };
                parts.push(format!("ADD COLUMN `{name}` {kind}{default}"));
            }
        }
        let index = created_at_index_name(&self.table);
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
            parts.push(format!("ADD KEY {} (`created_at`)", quote_mysql(&index)));
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

impl MigrationName for AddSessionTimes {
    fn name(&self) -> &str {
        "m20261202_000004_add_session_times"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddSessionTimes {
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
                "the session times migration has no SQL for {other:?}"
            ))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let index = created_at_index_name(&self.table);
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                let drops = COLUMNS
                    .iter()
                    .map(|(name, ..)| format!("DROP COLUMN IF EXISTS \"{name}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                conn.execute_unprepared(&format!("ALTER TABLE {} {drops}", self.pg_target()))
                    .await?;
            }
            DbBackend::Sqlite => {
                conn.execute_unprepared(&format!("DROP INDEX IF EXISTS {}", quote_pg(&index)))
                    .await?;
                for (name, ..) in COLUMNS {
                    if self.has_column(conn, DbBackend::Sqlite, name).await? {
                        conn.execute_unprepared(&format!(
                            "ALTER TABLE {} DROP COLUMN \"{name}\"",
                            quote_pg(&self.table)
                        ))
                        .await?;
                    }
                }
            }
            _ => {
                let drops = COLUMNS
                    .iter()
                    .map(|(name, ..)| format!("DROP COLUMN `{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {} {drops}",
                    quote_mysql(&self.table)
                ))
                .await?;
            }
        }
        Ok(())
    }
}
