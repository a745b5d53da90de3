use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::{
    expiry_index_name,
    sql::{no_sql_for, quote},
};

/// Creates the session table and its expiry index, if they do not exist, in the SQL of the
/// connection's backend:
///
/// | backend | table | `id` | `data` | `expiry_date` |
/// |---|---|---|---|---|
/// | PostgreSQL | `"<schema>"."<table>"` (the schema is created too) | `text` | `bytea` | `timestamptz` |
/// | SQLite | `"<table>"` (no schemas: `schema` is ignored) | `text` | `blob` | `integer` (64-bit), microseconds since the Unix epoch, UTC |
/// | MySQL, MariaDB | `` `<table>` `` in the connection's database (`schema` is ignored) | `varchar(128)` ASCII, binary collation | `longblob` | `datetime(6)`, UTC |
///
/// Every column is `NOT NULL`, `id` is the primary key, and `expiry_date` is indexed for
/// cleanup. On MySQL the id's collation is binary because session ids are case-sensitive (the
/// default `_ci` collations would match `abc` against `ABC`), and the index is declared inside
/// `CREATE TABLE` so that the table never exists without it (MySQL has no
/// `CREATE INDEX IF NOT EXISTS`).
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

    fn target(&self, backend: DbBackend) -> TableRef {
        match backend {
            DbBackend::Postgres => (Alias::new(&self.schema), Alias::new(&self.table)).into(),
            _ => Alias::new(&self.table).into(),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` in `backend`'s column types.
    fn table_statement(&self, backend: DbBackend) -> Result<TableCreateStatement, DbErr> {
        let mut table = Table::create();
        table.table(self.target(backend)).if_not_exists();
        match backend {
            DbBackend::Postgres => table
                .col(ColumnDef::new(Session::Id).text().not_null().primary_key())
                .col(ColumnDef::new(Session::Data).blob().not_null())
                .col(
                    ColumnDef::new(Session::ExpiryDate)
                        .timestamp_with_time_zone()
                        .not_null(),
                ),
            DbBackend::Sqlite => table
                .col(ColumnDef::new(Session::Id).text().not_null().primary_key())
                .col(ColumnDef::new(Session::Data).blob().not_null())
                .col(ColumnDef::new(Session::ExpiryDate).big_integer().not_null()),
            DbBackend::MySql => table
                .col(
                    ColumnDef::new(Session::Id)
                        .custom(Alias::new(
                            "varchar(128) CHARACTER SET ascii COLLATE ascii_bin",
                        ))
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Session::Data)
                        .custom(Alias::new("longblob"))
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Session::ExpiryDate)
                        .custom(Alias::new("datetime(6)"))
                        .not_null(),
                )
                .index(&mut self.expiry_index(backend)),
            other => return Err(no_sql_for("the session table", other)),
        };
        Ok(table)
    }

    /// The separate `CREATE INDEX IF NOT EXISTS`; `None` on MySQL, where the index is part of
    /// `CREATE TABLE`.
    fn index_statement(&self, backend: DbBackend) -> Option<IndexCreateStatement> {
        (backend != DbBackend::MySql).then(|| self.expiry_index(backend))
    }

    /// The SQL `up` sends after creating the schema, for tests and documentation.
    pub fn create_statements(&self, backend: DbBackend) -> Result<Vec<String>, DbErr> {
        let mut sql = vec![backend.build(&self.table_statement(backend)?).sql];
        sql.extend(
            self.index_statement(backend)
                .map(|index| backend.build(&index).sql),
        );
        Ok(sql)
    }

    fn expiry_index(&self, backend: DbBackend) -> IndexCreateStatement {
        Index::create()
            .if_not_exists()
            .name(expiry_index_name(&self.table))
            .table(self.target(backend))
            .col(Session::ExpiryDate)
            .to_owned()
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
        let backend = manager.get_database_backend();
        let table = self.table_statement(backend)?;
        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote(backend, &self.schema)
                ))
                .await?;
        }
        manager.create_table(table).await?;
        if let Some(index) = self.index_statement(backend) {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(self.target(manager.get_database_backend()))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
