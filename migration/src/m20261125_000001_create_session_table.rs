use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::{
    expiry_index_name,
    sql::{create_schema, execute_all, no_sql_for, qualified, quote},
};

session_migration! {
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
    CreateSessionTable = "m20261125_000001_create_session_table"
}

impl CreateSessionTable {
    /// The SQL `up` sends after creating the schema, for tests and documentation: `CREATE TABLE`
    /// and the expiry index, `IF NOT EXISTS`, in `backend`'s column types.
    pub fn create_statements(&self, backend: DbBackend) -> Result<Vec<String>, DbErr> {
        let [id, data, expiry_date] = match backend {
            DbBackend::Postgres => ["text", "bytea", "timestamp with time zone"],
            DbBackend::Sqlite => ["text", "blob", "integer"],
            DbBackend::MySql => [
                "varchar(128) CHARACTER SET ascii COLLATE ascii_bin",
                "longblob",
                "datetime(6)",
            ],
            other => return Err(no_sql_for("the session table", other)),
        };
        let table = qualified(backend, &self.schema, &self.table);
        let [id_name, data_name, expiry] = ["id", "data", "expiry_date"].map(|c| quote(backend, c));
        let columns = format!(
            "{id_name} {id} NOT NULL PRIMARY KEY, {data_name} {data} NOT NULL, \
             {expiry} {expiry_date} NOT NULL"
        );
        let index = quote(backend, &expiry_index_name(&self.table));
        Ok(match backend {
            DbBackend::MySql => vec![format!(
                "CREATE TABLE IF NOT EXISTS {table} ( {columns}, KEY {index} ({expiry}) )"
            )],
            _ => vec![
                format!("CREATE TABLE IF NOT EXISTS {table} ( {columns} )"),
                format!("CREATE INDEX IF NOT EXISTS {index} ON {table} ({expiry})"),
            ],
        })
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSessionTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut sql = self.create_statements(backend)?;
        if backend == DbBackend::Postgres {
            sql.insert(0, create_schema(&self.schema));
        }
        execute_all(manager.get_connection(), sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = qualified(manager.get_database_backend(), &self.schema, &self.table);
        let sql = format!("DROP TABLE IF EXISTS {table}");
        manager
            .get_connection()
            .execute_unprepared(&sql)
            .await
            .map(drop)
    }
}
