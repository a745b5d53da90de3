use sea_orm_migration::prelude::*;

use crate::added_columns::{AddedColumns, Column};

session_migration! {
    /// Adds the marker of a long-lived session ("remember me"): the store's
    /// `with_long_lived_sessions` writes `true` at each create and save of a session whose value
    /// at the path it names is JSON `true`, and such a session lives to the long lifetime
    /// instead of `with_absolute_lifetime`'s.
    ///
    /// | backend | `long_lived` |
    /// |---|---|
    /// | PostgreSQL | `boolean NOT NULL DEFAULT false` |
    /// | SQLite | `boolean NOT NULL DEFAULT 0` |
    /// | MySQL, MariaDB | `boolean NOT NULL DEFAULT false` |
    ///
    /// Rows from before this migration are short-lived, and so are rows another writer inserts
    /// without it. A constant default adds the column in place (PostgreSQL changes only its
    /// catalog, on a hash-partitioned table too: the column is added to the parent and its
    /// partitions at once). No index: every statement that reads it finds its rows by another.
    ///
    /// Idempotent: the column is added only if missing, so racing replicas are fine. An
    /// application's own `Migrator` adds it after [`AddVersion`](crate::AddVersion).
    AddLongLived = "m20261206_000008_add_long_lived", adds columns
}

impl AddLongLived {
    fn added(&self) -> AddedColumns<'_> {
        AddedColumns {
            migration: "the long-lived marker",
            schema: &self.schema,
            table: &self.table,
            columns: vec![Column::new(
                "long_lived",
                "boolean NOT NULL DEFAULT false",
                "boolean NOT NULL DEFAULT 0",
                "boolean NOT NULL DEFAULT false",
            )],
            index: None,
        }
    }
}
