//! What [`AddUserIndex`](crate::AddUserIndex), [`AddSessionTimes`](crate::AddSessionTimes) and
//! [`AddVersion`](crate::AddVersion) share: columns added to the session table and an index on
//! one of them, each part only where it is missing, so that racing replicas and a table that
//! has some of them already are fine.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};

use crate::sql::{alter_mysql, has_column, no_sql_for, qualified, quote};

/// A column and its declaration after the name (type, nullability, default) on each backend.
pub(crate) struct Column {
    pub name: &'static str,
    pub postgres: String,
    pub sqlite: String,
    pub mysql: String,
}

impl Column {
    pub fn new(name: &'static str, postgres: &str, sqlite: &str, mysql: &str) -> Self {
        Self {
            name,
            postgres: postgres.to_owned(),
            sqlite: sqlite.to_owned(),
            mysql: mysql.to_owned(),
        }
    }
}

/// Columns added to `"<schema>"."<table>"` and, maybe, an index on one of them.
pub(crate) struct AddedColumns<'a> {
    /// The migration, as its errors name it: "the user index".
    pub migration: &'static str,
    pub schema: &'a str,
    pub table: &'a str,
    pub columns: Vec<Column>,
    /// The index, if the migration adds one.
    pub index: Option<Index>,
}

/// An index on one added column.
pub(crate) struct Index {
    pub name: String,
    pub column: &'static str,
    /// Whether the index leaves out the rows whose column is null (PostgreSQL and SQLite;
    /// MySQL has no partial indexes).
    pub partial: bool,
}

impl AddedColumns<'_> {
    /// The PostgreSQL statements: `IF NOT EXISTS` on every part.
    pub fn postgres_statements(&self) -> Vec<String> {
        let columns = self
            .columns
            .iter()
            .map(|c| format!("ADD COLUMN IF NOT EXISTS \"{}\" {}", c.name, c.postgres))
            .collect::<Vec<_>>()
            .join(", ");
        let alter = format!("ALTER TABLE {} {columns}", self.target(DbBackend::Postgres));
        std::iter::once(alter)
            .chain(self.create_index(DbBackend::Postgres))
            .collect()
    }

    fn target(&self, backend: DbBackend) -> String {
        qualified(backend, self.schema, self.table)
    }

    /// `CREATE INDEX IF NOT EXISTS`, on PostgreSQL and SQLite.
    fn create_index(&self, backend: DbBackend) -> Option<String> {
        let index = self.index.as_ref()?;
        let filter = if index.partial {
            format!(" WHERE \"{}\" IS NOT NULL", index.column)
        } else {
            String::new()
        };
        Some(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (\"{}\"){filter}",
            quote(backend, &index.name),
            self.target(backend),
            index.column
        ))
    }

    pub async fn up(&self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for sql in self.postgres_statements() {
                    conn.execute_unprepared(&sql).await?;
                }
            }
            DbBackend::Sqlite => {
                let table = self.target(DbBackend::Sqlite);
                for column in &self.columns {
                    if !has_column(conn, DbBackend::Sqlite, self.table, column.name).await? {
                        conn.execute_unprepared(&format!(
                            "ALTER TABLE {table} ADD COLUMN \"{}\" {}",
                            column.name, column.sqlite
                        ))
                        .await?;
                    }
                }
                if let Some(sql) = self.create_index(DbBackend::Sqlite) {
                    conn.execute_unprepared(&sql).await?;
                }
            }
            // MySQL has no `ADD COLUMN IF NOT EXISTS` (MariaDB does), nor
            // `CREATE INDEX IF NOT EXISTS`: what is missing, in one `ALTER TABLE`.
            DbBackend::MySql => {
                let mut changes = Vec::new();
                for column in &self.columns {
                    if !has_column(conn, DbBackend::MySql, self.table, column.name).await? {
                        changes.push(format!("ADD COLUMN `{}` {}", column.name, column.mysql));
                    }
                }
                if let Some(index) = &self.index {
                    if !self.mysql_has_index(conn, index).await? {
                        changes.push(format!(
                            "ADD KEY {} (`{}`)",
                            quote(DbBackend::MySql, &index.name),
                            index.column
                        ));
                    }
                }
                alter_mysql(conn, self.table, &changes).await?;
            }
            other => return Err(no_sql_for(self.migration, other)),
        }
        Ok(())
    }

    pub async fn down(&self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                let drops = self
                    .columns
                    .iter()
                    .map(|c| format!("DROP COLUMN IF EXISTS \"{}\"", c.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                conn.execute_unprepared(&format!(
                    "ALTER TABLE {} {drops}",
                    self.target(DbBackend::Postgres)
                ))
                .await?;
            }
            DbBackend::Sqlite => {
                if let Some(index) = &self.index {
                    conn.execute_unprepared(&format!(
                        "DROP INDEX IF EXISTS {}",
                        quote(DbBackend::Sqlite, &index.name)
                    ))
                    .await?;
                }
                for column in &self.columns {
                    if has_column(conn, DbBackend::Sqlite, self.table, column.name).await? {
                        conn.execute_unprepared(&format!(
                            "ALTER TABLE {} DROP COLUMN \"{}\"",
                            self.target(DbBackend::Sqlite),
                            column.name
                        ))
                        .await?;
                    }
                }
            }
            _ => {
                let drops: Vec<_> = self
                    .columns
                    .iter()
                    .map(|c| format!("DROP COLUMN `{}`", c.name))
                    .collect();
                alter_mysql(conn, self.table, &drops).await?;
            }
        }
        Ok(())
    }

    async fn mysql_has_index(
        &self,
        conn: &SchemaManagerConnection<'_>,
        index: &Index,
    ) -> Result<bool, DbErr> {
        Ok(conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT 1 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?",
                [self.table.to_owned().into(), index.name.clone().into()],
            ))
            .await?
            .is_some())
    }
}
