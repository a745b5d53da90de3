//! The history table, `seaql_migrations_tower_sessions`, read and written one session table's
//! rows at a time: `<table>/<migration>`. Rows of other session tables (one database or schema
//! can hold several) are never read as ours, never deleted, and the table itself is never
//! dropped.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Value},
};

use crate::{
    history_version, qualified,
    sql::{any_row, create_schema},
    DEFAULT_TABLE, HISTORY_TABLE,
};

#[derive(Debug, Clone)]
pub(super) struct History {
    backend: DbBackend,
    schema: String,
    table: String,
}

impl History {
    /// The history of session table `table`; `schema` is where it lives on PostgreSQL.
    pub fn new(backend: DbBackend, schema: &str, table: &str) -> Self {
        Self {
            backend,
            schema: schema.to_owned(),
            table: table.to_owned(),
        }
    }

    fn table_ref(&self) -> TableRef {
        match self.backend {
            DbBackend::Postgres => (Alias::new(&self.schema), Alias::new(HISTORY_TABLE)).into(),
            _ => Alias::new(HISTORY_TABLE).into(),
        }
    }

    /// The history table's name, as messages show it.
    pub fn describe(&self) -> String {
        qualified(self.backend, &self.schema, HISTORY_TABLE)
    }

    /// The name migration `name` of this table is recorded under.
    pub fn version(&self, name: &str) -> String {
        history_version(&self.table, name)
    }

    async fn exists(&self, conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
        let (sql, values): (&str, Vec<Value>) = match self.backend {
            DbBackend::Postgres => (
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = $2",
                vec![self.schema.clone().into(), HISTORY_TABLE.into()],
            ),
            DbBackend::Sqlite => (
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                vec![HISTORY_TABLE.into()],
            ),
            _ => (
                "SELECT 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                vec![HISTORY_TABLE.into()],
            ),
        };
        any_row(conn, self.backend, sql, values).await
    }

    /// Creates the history table if missing, and on PostgreSQL its schema first (the first
    /// migration creates it again, harmlessly).
    pub async fn create_if_missing(&self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.backend == DbBackend::Postgres {
            conn.execute_unprepared(&create_schema(&self.schema))
                .await?;
        }
        conn.execute(
            &Table::create()
                .table(self.table_ref())
                .if_not_exists()
                .col(
                    ColumnDef::new(Alias::new("version"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Alias::new("applied_at"))
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    /// This table's versions in the history, as stored; empty when there is no history table.
    /// Releases before 0.2 recorded the default table's steps under their bare names
    /// (`m2026…`, among `known`): those count as the default table's.
    pub async fn versions(
        &self,
        conn: &impl ConnectionTrait,
        known: &[&str],
    ) -> Result<Vec<String>, DbErr> {
        if !self.exists(conn).await? {
            return Ok(Vec::new());
        }
        self.read(conn, known).await
    }

    /// This table's versions in the (existing) history, the bare names of releases before 0.2
    /// first given the names used since, so that the two agree: a bare name whose full name is
    /// recorded too is removed.
    pub async fn named_versions(
        &self,
        conn: &impl ConnectionTrait,
        known: &[&str],
    ) -> Result<Vec<String>, DbErr> {
        let versions = self.read(conn, known).await?;
        if versions.iter().all(|v| v.contains('/')) {
            return Ok(versions);
        }
        for bare in versions.iter().filter(|v| !v.contains('/')) {
            let named = self.version(bare);
            if versions.contains(&named) {
                conn.execute(&self.forget(bare)).await?;
            } else {
                conn.execute(
                    &Query::update()
                        .table(self.table_ref())
                        .value(Alias::new("version"), named)
                        .and_where(Expr::col(Alias::new("version")).eq(bare.as_str()))
                        .to_owned(),
                )
                .await?;
            }
        }
        self.read(conn, known).await
    }

    async fn read(
        &self,
        conn: &impl ConnectionTrait,
        known: &[&str],
    ) -> Result<Vec<String>, DbErr> {
        let rows = conn
            .query_all(
                &Query::select()
                    .column(Alias::new("version"))
                    .from(self.table_ref())
                    .to_owned(),
            )
            .await?;
        let mut versions = Vec::new();
        for row in rows {
            let version: String = row.try_get_by_index(0)?;
            if self.is_ours(&version, known) {
                versions.push(version);
            }
        }
        Ok(versions)
    }

    fn is_ours(&self, version: &str, known: &[&str]) -> bool {
        match version.split_once('/') {
            Some((table, _)) => table == self.table,
            None => self.table == DEFAULT_TABLE && known.contains(&version),
        }
    }

    /// Records `version` as applied; a row recorded meanwhile (a concurrent run's) is not an
    /// error: `ON CONFLICT DO NOTHING`, on MySQL `ON DUPLICATE KEY UPDATE version = version`.
    pub fn record(&self, version: &str) -> InsertStatement {
        Query::insert()
            .into_table(self.table_ref())
            .columns([Alias::new("version"), Alias::new("applied_at")])
            .values_panic([
                Expr::val(version),
                Expr::val(time::OffsetDateTime::now_utc().unix_timestamp()),
            ])
            .on_conflict(
                OnConflict::column(Alias::new("version"))
                    .do_nothing_on([Alias::new("version")])
                    .to_owned(),
            )
            .to_owned()
    }

    /// Removes `version`'s row, and only it.
    pub fn forget(&self, version: &str) -> DeleteStatement {
        Query::delete()
            .from_table(self.table_ref())
            .and_where(Expr::col(Alias::new("version")).eq(version))
            .to_owned()
    }
}
