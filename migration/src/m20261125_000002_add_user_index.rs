use sea_orm_migration::prelude::*;

use crate::{
    added_columns::{AddedColumns, Column, Index},
    user_key_index_name,
};

session_migration! {
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
    AddUserIndex = "m20261125_000002_add_user_index", adds columns
}

impl AddUserIndex {
    fn added(&self) -> AddedColumns<'_> {
        AddedColumns {
            migration: "the user index",
            schema: &self.schema,
            table: &self.table,
            columns: vec![
                Column::new(
                    "user_key",
                    "text",
                    "text",
                    "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
                ),
                Column::new("data_digest", "bytea", "blob", "varbinary(32) NULL"),
            ],
            index: Some(Index {
                name: user_key_index_name(&self.table),
                column: "user_key",
                partial: true,
            }),
        }
    }
}
