use sea_orm_migration::prelude::*;

use crate::added_columns::{AddedColumns, Column};

session_migration! {
    /// Adds the row version that lets concurrent requests on one session merge their changes: a
    /// save writes `"version" = "version" + 1` only where the row still holds the version its
    /// request loaded, and otherwise re-applies that request's changes to what the row holds now.
    ///
    /// | backend | `version` |
    /// |---|---|
    /// | PostgreSQL | `bigint NOT NULL DEFAULT 0` |
    /// | SQLite | `integer NOT NULL DEFAULT 0` |
    /// | MySQL, MariaDB | `bigint NOT NULL DEFAULT 0` |
    ///
    /// Rows from before this migration get version 0, and so do rows another writer inserts
    /// without it. A constant default adds the column in place: PostgreSQL (11 and later) changes
    /// only its catalog, SQLite and MariaDB do not rewrite the table either. No index: a save finds
    /// its row by id.
    ///
    /// Idempotent: the column is added only if missing, so racing replicas are fine. An
    /// application's own `Migrator` adds it after
    /// [`InsertInstantDefaults`](crate::InsertInstantDefaults).
    AddVersion = "m20261204_000006_add_version", adds columns
}

impl AddVersion {
    fn added(&self) -> AddedColumns<'_> {
        AddedColumns {
            migration: "the row version",
            schema: &self.schema,
            table: &self.table,
            columns: vec![Column::new(
                "version",
                "bigint NOT NULL DEFAULT 0",
                "integer NOT NULL DEFAULT 0",
                "bigint NOT NULL DEFAULT 0",
            )],
            index: None,
        }
    }
}
