use sea_orm_migration::prelude::*;
use time::OffsetDateTime;

use crate::{
    added_columns::{AddedColumns, Column, Index},
    created_at_index_name,
    sql::{mysql_datetime, sqlite_micros},
};

session_migration! {
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
    AddSessionTimes = "m20261202_000004_add_session_times", adds columns
}

impl AddSessionTimes {
    /// The columns, the instants defaulting to the migration's: SQLite adds a `NOT NULL`
    /// column only with a constant default, and on MySQL `CURRENT_TIMESTAMP` would follow the
    /// session's time zone, so both get a UTC literal. On PostgreSQL `now()` is the migration's
    /// transaction's instant, the same for every existing row.
    fn added(&self) -> AddedColumns<'_> {
        let now = OffsetDateTime::now_utc();
        let instant = |name| Column {
            name,
            postgres: "timestamptz NOT NULL DEFAULT now()".to_owned(),
            sqlite: format!("integer NOT NULL DEFAULT {}", sqlite_micros(now)),
            mysql: format!("datetime(6) NOT NULL DEFAULT {}", mysql_datetime(now)),
        };
        AddedColumns {
            migration: "the session times",
            schema: &self.schema,
            table: &self.table,
            columns: vec![
                instant("created_at"),
                instant("updated_at"),
                Column::new(
                    "listed_values",
                    "text",
                    "text",
                    "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
                ),
            ],
            index: Some(Index {
                name: created_at_index_name(&self.table),
                column: "created_at",
                partial: false,
            }),
        }
    }
}
