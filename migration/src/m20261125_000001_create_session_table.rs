use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::{expiry_index_name, quote_pg};

/// Creates the session table and its expiry index, if they do not exist.
///
/// PostgreSQL: `"<schema>"."<table>"` with `id text primary key`, `data bytea not null`,
/// `expiry_date timestamptz not null`, and an index on `expiry_date` for cleanup. The schema is
/// created too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionTable {
    schema: String,
    table: String,
}

impl CreateSessionTable {
    /// The migration for `"<schema>"."<table>"`.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }

    fn target(&self) -> TableRef {
        (Alias::new(&self.schema), Alias::new(&self.table)).into()
    }
}

impl MigrationName for CreateSessionTable {
    fn name(&self) -> &str {
        "m20261125_000001_create_session_table"
    }
}

#[derive(DeriveIden)]
enum Session {
    Id,
    Data,
    ExpiryDate,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSessionTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Err(DbErr::Migration(format!(
                "the session table migration supports PostgreSQL only in this release, not {:?}",
                manager.get_database_backend()
            )));
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_pg(&self.schema)
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(self.target())
                    .if_not_exists()
                    .col(ColumnDef::new(Session::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Session::Data).blob().not_null())
                    .col(
                        ColumnDef::new(Session::ExpiryDate)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(expiry_index_name(&self.table))
                    .table(self.target())
                    .col(Session::ExpiryDate)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(self.target()).if_exists().to_owned())
            .await
    }
}
