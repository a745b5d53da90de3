//! The commands, on one session table: `up`, `down` (and `reset`, all of them), `status`.
//!
//! Each step runs as the store's `migrate()` runs it: on PostgreSQL and SQLite in a
//! transaction with its history row, on MySQL (whose DDL commits by itself) step, then row.
//! Before anything is created or dropped, the table found under the session table's name must
//! be a session table: an application table of that name is refused, never altered.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait},
};
use tower_sessions_seaorm_migration::{check_names, migrations, DEFAULT_TABLE, MAX_NAME_LEN};

use crate::history::History;

/// The columns every session table has, since the first migration.
const SESSION_COLUMNS: [&str; 3] = ["id", "data", "expiry_date"];

/// The read cache's eviction triggers (`migrate()` with `Cache::listening`, PostgreSQL), which
/// call a function named `tower_sessions_evict_<digest of the table's name>` in the table's
/// schema.
const EVICTION_TRIGGERS: &str = "'tower_sessions_evict_on_update', \
     'tower_sessions_evict_on_delete', 'tower_sessions_evict_on_truncate'";

pub enum Failure {
    /// Nothing was done, and the message says why and what to do.
    Refused(String),
    Database(DbErr),
}

impl From<DbErr> for Failure {
    fn from(err: DbErr) -> Self {
        Self::Database(err)
    }
}

/// What is found under the session table's name.
enum Found {
    Missing,
    SessionTable,
    /// A table that is no session table: the columns it lacks.
    Other(Vec<&'static str>),
}

pub struct SessionTable {
    backend: DbBackend,
    schema: String,
    table: String,
    history: History,
}

impl SessionTable {
    /// The session table `table` (in `schema` on PostgreSQL), its names checked as the store
    /// checks them.
    pub fn new(backend: DbBackend, schema: &str, table: &str) -> Result<Self, String> {
        check_identifier("--schema", schema)?;
        check_identifier("--table", table)?;
        if backend == DbBackend::Sqlite && table.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "--table {table}: SQLite ignores case in table names, and the store refuses \
                 uppercase ones there; use lowercase letters, digits and underscores"
            ));
        }
        check_names(table, None).map_err(|err| format!("--table {table}: {err}"))?;
        Ok(Self {
            backend,
            schema: schema.to_owned(),
            table: table.to_owned(),
            history: History::new(backend, schema, table),
        })
    }

    /// The session table's name, as messages show it.
    pub fn describe(&self) -> String {
        match self.backend {
            DbBackend::Postgres => format!("\"{}\".\"{}\"", self.schema, self.table),
            _ => format!("\"{}\"", self.table),
        }
    }

    fn steps(&self) -> Vec<Box<dyn MigrationTrait>> {
        migrations(&self.schema, &self.table)
    }

    fn known(steps: &[Box<dyn MigrationTrait>]) -> Vec<&str> {
        steps.iter().map(|step| step.name()).collect()
    }

    pub async fn status(&self, conn: &DatabaseConnection) -> Result<(), Failure> {
        let steps = self.steps();
        let known = Self::known(&steps);
        let recorded = self.history.versions(conn, &known).await?;
        let found = match self.find(conn).await? {
            Found::Missing => "missing".to_owned(),
            Found::SessionTable => "present".to_owned(),
            Found::Other(lacks) => format!(
                "present, but NOT a session table (no {}): up and down refuse it",
                lacks.join(", ")
            ),
        };
        println!(
            "session table {}: {found}; history in {}",
            self.describe(),
            self.history.describe()
        );
        for name in &known {
            let version = self.history.version(name);
            let applied = recorded.contains(&version) || recorded.iter().any(|v| v == name);
            let state = if applied { "applied" } else { "pending" };
            println!("  {state:<8} {version}");
        }
        for unknown in self.unknown(&recorded, &known) {
            println!("  applied  {unknown} (unknown to this version of the command line)");
        }
        Ok(())
    }

    pub async fn up(&self, conn: &DatabaseConnection, num: Option<u32>) -> Result<(), Failure> {
        if let Found::Other(lacks) = self.find(conn).await? {
            return Err(self.not_a_session_table(&lacks, "migrate"));
        }
        let steps = self.steps();
        let known = Self::known(&steps);
        self.history.create_if_missing(conn).await?;
        self.history.rename_bare_names(conn, &known).await?;
        let recorded = self.history.versions(conn, &known).await?;
        let pending: Vec<_> = steps
            .iter()
            .filter(|step| !recorded.contains(&self.history.version(step.name())))
            .take(num.map_or(usize::MAX, |n| n as usize))
            .collect();
        if pending.is_empty() {
            println!("{}: nothing to apply", self.describe());
        }
        for step in pending {
            let version = self.history.version(step.name());
            let record = self.history.record(&version);
            match self.backend {
                DbBackend::MySql => {
                    step.up(&SchemaManager::new(conn)).await?;
                    conn.execute(&record).await?;
                }
                _ => {
                    let txn = conn.begin().await?;
                    step.up(&SchemaManager::new(&txn)).await?;
                    txn.execute(&record).await?;
                    txn.commit().await?;
                }
            }
            println!("applied {version}");
        }
        Ok(())
    }

    /// Rolls back the last `num` applied migrations of the session table, all of them with
    /// `None`.
    pub async fn down(&self, conn: &DatabaseConnection, num: Option<u32>) -> Result<(), Failure> {
        let steps = self.steps();
        let known = Self::known(&steps);
        let recorded = self.history.versions(conn, &known).await?;
        let unknown = self.unknown(&recorded, &known);
        if !unknown.is_empty() {
            return Err(Failure::Refused(format!(
                "the history of {} holds migrations this version of the command line does not \
                 know ({}), applied by a newer release: roll back with that release's command \
                 line. Nothing was done.",
                self.describe(),
                unknown.join(", ")
            )));
        }
        let found = self.find(conn).await?;
        if let Found::Other(lacks) = &found {
            return Err(self.not_a_session_table(lacks, "drop or alter"));
        }
        if recorded.is_empty() {
            println!("{}: nothing to roll back", self.describe());
            return Ok(());
        }
        self.history.rename_bare_names(conn, &known).await?;
        let recorded = self.history.versions(conn, &known).await?;
        let applied: Vec<_> = steps
            .iter()
            .enumerate()
            .filter(|(_, step)| recorded.contains(&self.history.version(step.name())))
            .rev()
            .take(num.map_or(usize::MAX, |n| n as usize))
            .collect();
        let table_exists = !matches!(found, Found::Missing);
        for (position, step) in applied {
            let version = self.history.version(step.name());
            let forget = self.history.forget(&version);
            // The first migration's rollback drops the table (its indexes and triggers with
            // it), and then on PostgreSQL the eviction function its triggers called.
            let drops_table_on_postgres = position == 0 && self.backend == DbBackend::Postgres;
            match self.backend {
                DbBackend::MySql => {
                    if table_exists {
                        step.down(&SchemaManager::new(conn)).await?;
                    }
                    conn.execute(&forget).await?;
                }
                _ => {
                    let txn = conn.begin().await?;
                    if table_exists {
                        let functions = if drops_table_on_postgres {
                            self.eviction_functions(&txn).await?
                        } else {
                            Vec::new()
                        };
                        step.down(&SchemaManager::new(&txn)).await?;
                        self.drop_unused_functions(&txn, &functions).await?;
                    }
                    txn.execute(&forget).await?;
                    txn.commit().await?;
                }
            }
            if table_exists {
                println!("rolled back {version}");
            } else {
                println!("forgot {version} (the table is gone)");
            }
        }
        Ok(())
    }

    /// Recorded versions of this table that this release does not know.
    fn unknown(&self, recorded: &[String], known: &[&str]) -> Vec<String> {
        recorded
            .iter()
            .filter(|version| {
                !known
                    .iter()
                    .any(|name| *version == name || **version == self.history.version(name))
            })
            .cloned()
            .collect()
    }

    fn not_a_session_table(&self, lacks: &[&str], verb: &str) -> Failure {
        let hint = if self.table == DEFAULT_TABLE {
            " (the store's `with_table_name`; say which with --table)"
        } else {
            ""
        };
        Failure::Refused(format!(
            "{} is not a session table: it has no {} column. It is another table of the \
             database, which this command will not {verb}. If your sessions live in a table of \
             another name{hint}, pass it. Nothing was done.",
            self.describe(),
            lacks.join(", ")
        ))
    }

    /// What is found under the session table's name: nothing, a session table, or another
    /// table (and which of the session columns it lacks).
    async fn find(&self, conn: &impl ConnectionTrait) -> Result<Found, DbErr> {
        let (sql, values): (&str, Vec<sea_orm_migration::sea_orm::Value>) = match self.backend {
            DbBackend::Postgres => (
                // Views and other relations have columns too: only a table (plain or
                // partitioned) is a session table.
                "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
                 AND a.attnum > 0 AND NOT a.attisdropped",
                vec![self.schema.clone().into(), self.table.clone().into()],
            ),
            DbBackend::Sqlite => (
                // SQLite ignores case in names: `Session` is the table `session` names.
                "SELECT p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name = ? COLLATE NOCASE",
                vec![self.table.clone().into()],
            ),
            _ => (
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS c \
                 JOIN information_schema.TABLES t USING (TABLE_SCHEMA, TABLE_NAME) \
                 WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = ? \
                 AND t.TABLE_TYPE = 'BASE TABLE'",
                vec![self.table.clone().into()],
            ),
        };
        let mut columns = Vec::new();
        for row in conn
            .query_all_raw(Statement::from_sql_and_values(self.backend, sql, values))
            .await?
        {
            columns.push(row.try_get_by_index::<String>(0)?);
        }
        if columns.is_empty() && !self.name_is_taken(conn).await? {
            return Ok(Found::Missing);
        }
        let lacks: Vec<_> = SESSION_COLUMNS
            .into_iter()
            .filter(|column| !columns.iter().any(|c| c == column))
            .collect();
        Ok(if lacks.is_empty() {
            Found::SessionTable
        } else {
            Found::Other(lacks)
        })
    }

    /// Whether something that is no table (a view, a sequence) holds the table's name.
    async fn name_is_taken(&self, conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
        let (sql, values): (&str, Vec<sea_orm_migration::sea_orm::Value>) = match self.backend {
            DbBackend::Postgres => (
                "SELECT 1 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                vec![self.schema.clone().into(), self.table.clone().into()],
            ),
            DbBackend::Sqlite => (
                "SELECT 1 FROM sqlite_master WHERE name = ? COLLATE NOCASE",
                vec![self.table.clone().into()],
            ),
            _ => (
                "SELECT 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                vec![self.table.clone().into()],
            ),
        };
        Ok(conn
            .query_one_raw(Statement::from_sql_and_values(self.backend, sql, values))
            .await?
            .is_some())
    }

    /// The eviction functions the table's (and its partitions') eviction triggers call, as
    /// `"schema"."name"()`: only functions of the store's naming in the table's schema. (A
    /// plain table is no partition tree: `pg_partition_tree` lists nothing for it.)
    async fn eviction_functions(&self, conn: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
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
        let regclass = format!("\"{}\".\"{}\"", self.schema, self.table);
        let mut functions = Vec::new();
        for row in conn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [regclass.into(), self.schema.clone().into()],
            ))
            .await?
        {
            functions.push(row.try_get_by_index::<String>(0)?);
        }
        Ok(functions)
    }

    /// Drops each of `functions` that no trigger calls any more.
    async fn drop_unused_functions(
        &self,
        conn: &impl ConnectionTrait,
        functions: &[String],
    ) -> Result<(), DbErr> {
        for function in functions {
            let used = conn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgfoid = to_regprocedure($1)",
                    [function.clone().into()],
                ))
                .await?
                .is_some();
            if !used {
                conn.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {function}"))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The store's rule for schema and table names: 1 to 63 ASCII letters, digits and
/// underscores, not starting with a digit.
fn check_identifier(option: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{option} {name:?}: use 1 to 63 ASCII letters, digits and underscores, not starting \
             with a digit (the store's rule for its names)"
        ))
    }
}
