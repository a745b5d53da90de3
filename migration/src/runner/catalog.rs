//! What the runner reads from the catalog before it acts: what holds the session table's name,
//! a type in the way of the tables it creates (PostgreSQL), the eviction functions the table's
//! triggers call (PostgreSQL).

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::{Runner, TableState};
use crate::{partition_name, qualified, sql::rows, HISTORY_TABLE};

/// The columns every session table has, since the first migration.
const SESSION_COLUMNS: [&str; 3] = ["id", "data", "expiry_date"];

/// The read cache's eviction triggers (the store's `migrate()` with `Cache::listening`,
/// PostgreSQL), which call a function named `tower_sessions_evict_<digest of the table's name>`
/// in the table's schema.
const EVICTION_TRIGGERS: &str = "'tower_sessions_evict_on_update', \
     'tower_sessions_evict_on_delete', 'tower_sessions_evict_on_truncate'";

impl Runner {
    /// What holds the session table's name: nothing, a session table, or another table or
    /// relation (and which of the session columns it lacks). One statement, so one snapshot of
    /// the catalog: a table a concurrent run creates meanwhile is seen whole or not at all.
    pub(super) async fn table_state(
        &self,
        conn: &impl ConnectionTrait,
    ) -> Result<TableState, DbErr> {
        // Each row: `table` when the relation under the name is a table (views and other
        // relations have columns too, but only a table is a session table), and one of its
        // columns.
        let (sql, names): (&str, Vec<Value>) = match self.backend {
            DbBackend::Postgres => (
                "SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table' END, a.attname::text \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                   AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE n.nspname = $1 AND c.relname = $2",
                vec![self.schema.clone().into(), self.table.clone().into()],
            ),
            // SQLite ignores case in names: `Session` is the table `session` names.
            DbBackend::Sqlite => (
                "SELECT CASE WHEN m.type = 'table' THEN 'table' END, p.name FROM sqlite_master m \
                 LEFT JOIN pragma_table_info(m.name) p ON m.type = 'table' \
                 WHERE m.name = ? COLLATE NOCASE",
                vec![self.table.clone().into()],
            ),
            _ => (
                "SELECT CASE WHEN t.TABLE_TYPE = 'BASE TABLE' THEN 'table' END, \
                   CAST(c.COLUMN_NAME AS CHAR) \
                 FROM information_schema.TABLES t LEFT JOIN information_schema.COLUMNS c \
                   ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME \
                   AND t.TABLE_TYPE = 'BASE TABLE' \
                 WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = ?",
                vec![self.table.clone().into()],
            ),
        };
        let found: Vec<(Option<String>, Option<String>)> =
            rows(conn, self.backend, sql, names).await?;
        let Some((kind, _)) = found.first() else {
            return Ok(TableState::Missing);
        };
        let is_table = kind.is_some();
        let columns: Vec<_> = found.iter().filter_map(|(_, c)| c.as_ref()).collect();
        // MariaDB's catalog is no snapshot: it lists a table that a concurrent run is creating
        // before its columns. Every table there has a column, so a table without any is that
        // one, and nothing is in the way.
        if self.backend == DbBackend::MySql && is_table && columns.is_empty() {
            return Ok(TableState::Missing);
        }
        let lacks: Vec<_> = SESSION_COLUMNS
            .into_iter()
            .filter(|column| !columns.iter().any(|c| c == column))
            .collect();
        Ok(if lacks.is_empty() {
            TableState::SessionTable
        } else {
            TableState::NotASessionTable { lacks }
        })
    }

    /// Whether the session table opens: `SELECT` of no row from it, which waits for a
    /// concurrent `ALTER TABLE` of it to finish. `false` when no table has its name (MySQL's
    /// 42S02).
    pub(super) async fn opens(&self, conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
        let sql = format!("SELECT 1 FROM {} LIMIT 0", self.describe());
        match conn
            .query_all_raw(Statement::from_string(self.backend, sql))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if super::races::is_missing_table(self.backend, &err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// After PostgreSQL's duplicate_object (42710): a type that is not a table's, named like
    /// one of the tables `up` creates, as an error; `None` when there is none (a lost race: the
    /// winner's row type and table committed together) or the catalog cannot be read.
    pub(super) async fn type_in_the_way(&self, conn: &impl ConnectionTrait) -> Option<DbErr> {
        let mut names = vec![self.table.clone(), HISTORY_TABLE.to_owned()];
        names
            .extend((0..self.hash_partitions.unwrap_or(0)).map(|k| partition_name(&self.table, k)));
        // The names are validated identifiers: no comma in any.
        let found: Vec<String> = rows(
            conn,
            self.backend,
            "SELECT t.typname::text FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE n.nspname = $1 AND t.typname::text = ANY (string_to_array($2, ',')) \
                 AND NOT EXISTS (SELECT 1 FROM pg_class c \
                                 WHERE c.relnamespace = n.oid AND c.relname = t.typname) \
                 LIMIT 1",
            vec![self.schema.clone().into(), names.join(",").into()],
        )
        .await
        .ok()?;
        let name = found.first()?;
        Some(DbErr::Migration(format!(
            "a type named \"{name}\" that is not a table's is in schema \"{}\": PostgreSQL gives \
             every table a type of its own name, so drop or rename that type, or choose another \
             table name",
            self.schema
        )))
    }

    /// The eviction functions the table's (and its partitions') eviction triggers call, as
    /// `"schema"."name"()`: only functions of the store's naming in the table's schema. (A
    /// plain table is no partition tree: `pg_partition_tree` lists nothing for it.)
    pub(super) async fn eviction_functions(
        &self,
        conn: &impl ConnectionTrait,
    ) -> Result<Vec<String>, DbErr> {
        let sql = format!(
            "SELECT DISTINCT format('%I.%I()', n.nspname, p.proname) \
             FROM pg_catalog.pg_trigger t \
             JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE t.tgrelid IN (SELECT to_regclass($1) \
               UNION SELECT relid FROM pg_catalog.pg_partition_tree(to_regclass($1))) \
             AND t.tgname IN ({EVICTION_TRIGGERS}) \
             AND n.nspname = $2 AND p.proname LIKE 'tower\\_sessions\\_evict\\_%'"
        );
        let regclass = qualified(DbBackend::Postgres, &self.schema, &self.table);
        rows(
            conn,
            self.backend,
            &sql,
            vec![regclass.into(), self.schema.clone().into()],
        )
        .await
    }

    /// Drops each of `functions` that no trigger calls any more.
    pub(super) async fn drop_unused_functions(
        &self,
        conn: &impl ConnectionTrait,
        functions: &[String],
    ) -> Result<(), DbErr> {
        for function in functions {
            let callers: Vec<String> = rows(
                conn,
                self.backend,
                "SELECT 'called' FROM pg_catalog.pg_trigger \
                     WHERE tgfoid = to_regprocedure($1)",
                vec![function.clone().into()],
            )
            .await?;
            if callers.is_empty() {
                conn.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {function}"))
                    .await?;
            }
        }
        Ok(())
    }
}
