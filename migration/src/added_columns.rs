//! What [`AddUserIndex`](crate::AddUserIndex), [`AddSessionTimes`](crate::AddSessionTimes) and
//! [`AddVersion`](crate::AddVersion) share: columns added to the session table and an index on
//! one of them, each part only where it is missing, so that racing replicas and a table that
//! has some of them already are fine.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::sql::{alter, any_row, execute_all, has_column, no_sql_for, qualified, quote};

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

    /// `ADD COLUMN` of this column in `backend`'s SQL, `IF NOT EXISTS` on PostgreSQL.
    fn add(&self, backend: DbBackend) -> String {
        let (if_missing, declaration) = match backend {
            DbBackend::Postgres => ("IF NOT EXISTS ", &self.postgres),
            DbBackend::Sqlite => ("", &self.sqlite),
            _ => ("", &self.mysql),
        };
        let name = quote(backend, self.name);
        format!("ADD COLUMN {if_missing}{name} {declaration}")
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
        let columns: Vec<_> = self
            .columns
            .iter()
            .map(|c| c.add(DbBackend::Postgres))
            .collect();
        let alter = format!(
            "ALTER TABLE {} {}",
            self.target(DbBackend::Postgres),
            columns.join(", ")
        );
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

    /// The missing columns of the table, `ADD COLUMN` in `backend`'s SQL (SQLite or MySQL).
    async fn missing_columns(
        &self,
        conn: &SchemaManagerConnection<'_>,
        backend: DbBackend,
    ) -> Result<Vec<String>, DbErr> {
        let mut changes = Vec::new();
        for column in &self.columns {
            if !has_column(conn, backend, self.table, column.name).await? {
                changes.push(column.add(backend));
            }
        }
        Ok(changes)
    }

    pub async fn up(&self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        match backend {
            DbBackend::Postgres => execute_all(conn, self.postgres_statements()).await,
            DbBackend::Sqlite => {
                let changes = self.missing_columns(conn, backend).await?;
                alter(conn, backend, &self.target(backend), &changes).await?;
                execute_all(conn, self.create_index(backend).into_iter().collect()).await
            }
            // MySQL has no `ADD COLUMN IF NOT EXISTS` (MariaDB does), nor
            // `CREATE INDEX IF NOT EXISTS`: what is missing, in one `ALTER TABLE`.
            DbBackend::MySql => {
                let mut changes = self.missing_columns(conn, backend).await?;
                if let Some(index) = &self.index {
                    let sql = "SELECT 1 FROM information_schema.STATISTICS \
                               WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?";
                    let values = vec![self.table.into(), index.name.clone().into()];
                    if !any_row(conn, backend, sql, values).await? {
                        let name = quote(backend, &index.name);
                        changes.push(format!("ADD KEY {name} (`{}`)", index.column));
                    }
                }
                alter(conn, backend, &self.target(backend), &changes).await
            }
            other => Err(no_sql_for(self.migration, other)),
        }
    }

    pub async fn down(&self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        let mut drops = Vec::new();
        for column in &self.columns {
            let name = quote(backend, column.name);
            match backend {
                DbBackend::Postgres => drops.push(format!("DROP COLUMN IF EXISTS {name}")),
                // SQLite has no `DROP COLUMN IF EXISTS`: only the columns it has.
                DbBackend::Sqlite
                    if !has_column(conn, backend, self.table, column.name).await? => {}
                _ => drops.push(format!("DROP COLUMN {name}")),
            }
        }
        if let (DbBackend::Sqlite, Some(index)) = (backend, &self.index) {
            let name = quote(backend, &index.name);
            conn.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        alter(conn, backend, &self.target(backend), &drops).await
    }
}
