//! The runner of one session table's migrations: applied, rolled back and listed with their
//! history, for the store's `migrate()` and the command line alike.

mod catalog;
mod history;
mod races;

use std::time::Duration;

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr},
};

use crate::{migrations_with_partitions, qualified, sql::execute_all};
use history::History;

/// How many times [`Runner::up`] starts, at most, after losing races to concurrent runs.
const MAX_ATTEMPTS: u32 = 12;
/// The pause before the first retry, doubled after each lost race up to [`LONGEST_PAUSE`], with
/// up to as much again of random jitter, so that racing replicas do not retry in lock step.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// Runs the migrations of one session table, `"<schema>"."<table>"`, and keeps their history in
/// `seaql_migrations_tower_sessions` (on PostgreSQL in the table's schema, elsewhere in the
/// connection's database; never the application's `seaql_migrations`). The store's
/// `migrate()` and the command line both run it, so each sees the other's steps.
///
/// Each step is recorded as `<table>/<migration>`: one schema can hold several session tables.
/// Steps recorded under their bare names by the command line before 0.2 count as the default
/// table's, and are renamed when the history is next written.
///
/// - **Safe when replicas run it at once**: [`up`](Self::up) starts over, after a short random
///   pause, when it loses a race to a concurrent run (recognised by error code: PostgreSQL's and
///   MySQL's SQLSTATE, SQLite's busy and locked codes, with this crate's `postgres`, `mysql` or
///   `sqlite` feature), and no advisory lock is needed.
/// - **Atomic steps where DDL is transactional**: on PostgreSQL and SQLite each step commits
///   with its history row. MySQL commits DDL by itself: there the steps are idempotent, and one
///   whose history row was not written runs again, harmlessly.
/// - **The session table alone**: a table of another kind under the session table's name (an
///   application's `session` table) is refused, never altered or dropped.
///
/// Why a runner of its own: sea-orm-migration's `MigratorTrait` is static (its migrations and
/// history table are fixed by the type, with no table name given at run time, and it records
/// each step under the migration's name alone), so it cannot run the migrations of a table the
/// application names. The steps are sea-orm-migration's [`MigrationTrait`]s, run on its
/// [`SchemaManager`]. The backoff sleeps on tokio's timer, as SeaORM's drivers run on tokio.
///
/// ```no_run
/// use tower_sessions_seaorm_migration::{
///     sea_orm_migration::sea_orm::{ConnectionTrait, Database},
///     Runner,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("postgres://postgres@127.0.0.1/app").await?;
/// let runner = Runner::new(conn.get_database_backend(), "tower_sessions", "session");
/// for version in runner.up(&conn, None).await? {
///     println!("applied {version}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Runner {
    backend: DbBackend,
    schema: String,
    table: String,
    hash_partitions: Option<u16>,
    then: Vec<String>,
    history: History,
}

/// What is found under the session table's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableState {
    /// Nothing.
    Missing,
    /// A session table: it has the first migration's columns.
    SessionTable,
    /// Another table, or a relation that is no table (a view, a sequence): the session table's
    /// columns it lacks.
    NotASessionTable {
        /// The columns of the first migration it lacks.
        lacks: Vec<&'static str>,
    },
}

/// A session table's migrations as [`Runner::status`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// What holds the session table's name.
    pub table: TableState,
    /// This release's steps, oldest first: each one's version in the history, and whether it is
    /// applied.
    pub steps: Vec<(String, bool)>,
    /// This table's versions in the history that this release does not know: a newer
    /// release's.
    pub unknown: Vec<String>,
}

/// A step [`Runner::down`] undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// The step was rolled back and its history row removed.
    RolledBack(String),
    /// The table was gone: only the step's history row was removed.
    Forgotten(String),
}

/// Why a run of the [`Runner`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Nothing was done: the message says what is in the way and what to do.
    #[error("{0}")]
    Refused(String),
    /// The database failed, at the run's `attempts`th attempt (it starts over after losing a
    /// race to a concurrent run). Steps applied before the failure stay applied and recorded.
    #[error("{error}")]
    Failed {
        /// How many attempts the run made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        error: DbErr,
    },
}

impl From<DbErr> for RunError {
    fn from(error: DbErr) -> Self {
        Self::Failed { attempts: 1, error }
    }
}

impl Runner {
    /// The runner of session table `table`, in `schema` on PostgreSQL (SQLite and MySQL keep it
    /// in the connection's database), on a connection to `backend`. The names are quoted in
    /// every statement, not validated: the store and the command line check them first.
    pub fn new(backend: DbBackend, schema: &str, table: &str) -> Self {
        Self {
            backend,
            schema: schema.to_owned(),
            table: table.to_owned(),
            hash_partitions: None,
            then: Vec::new(),
            history: History::new(backend, schema, table),
        }
    }

    /// The same runner, creating the table hash-partitioned by id into `partitions` when given
    /// (PostgreSQL; see [`CreatePartitionedSessionTable`](crate::CreatePartitionedSessionTable)).
    pub fn with_hash_partitions(mut self, partitions: Option<u16>) -> Self {
        self.hash_partitions = partitions;
        self
    }

    /// The same runner, executing `sql` after the steps in every attempt of [`up`](Self::up)
    /// (started over with them after a lost race): the store's `migrate()` makes the table
    /// `UNLOGGED` and installs the read cache's eviction triggers so.
    pub fn then_execute(mut self, sql: impl Into<String>) -> Self {
        self.then.push(sql.into());
        self
    }

    /// The session table's name, as statements and messages write it.
    pub fn describe(&self) -> String {
        qualified(self.backend, &self.schema, &self.table)
    }

    /// The history table's name, as statements and messages write it.
    pub fn describe_history(&self) -> String {
        self.history.describe()
    }

    fn steps(&self) -> Vec<Box<dyn MigrationTrait>> {
        migrations_with_partitions(&self.schema, &self.table, self.hash_partitions)
    }

    /// Applies the pending steps, oldest first (`num` of them at most), creating the table when
    /// it is missing; returns the versions it applied, none when the table is up to date.
    pub async fn up(
        &self,
        conn: &DatabaseConnection,
        num: Option<u32>,
    ) -> Result<Vec<String>, RunError> {
        let limit = num.map_or(usize::MAX, |n| n as usize);
        let mut applied = Vec::new();
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.up_once(conn, limit, &mut applied).await {
                Ok(()) => return Ok(applied),
                Err(RunError::Failed { error, .. }) => error,
                Err(refused) => return Err(refused),
            };
            let failed = |error| RunError::Failed {
                attempts: attempt,
                error,
            };
            if attempt == MAX_ATTEMPTS || !races::lost_a_race(self.backend, &error) {
                return Err(failed(races::explained(self.backend, &self.schema, error)));
            }
            if races::is_duplicate_object(self.backend, &error) {
                if let Some(error) = self.type_in_the_way(conn).await {
                    return Err(failed(error));
                }
            }
            tracing::debug!(
                attempt,
                "the session table's migration raced another; retrying"
            );
            tokio::time::sleep(pause + pause.mul_f64(rand::random())).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// One attempt of [`up`](Self::up); `applied` holds what earlier attempts applied.
    async fn up_once(
        &self,
        conn: &DatabaseConnection,
        limit: usize,
        applied: &mut Vec<String>,
    ) -> Result<(), RunError> {
        let state = self.table_state(conn).await?;
        if let TableState::NotASessionTable { lacks } = state {
            return Err(self.not_a_session_table(&lacks, "migrate"));
        }
        self.history.create_if_missing(conn).await?;
        let steps = self.steps();
        let recorded = self.history.named_versions(conn, &names(&steps)).await?;
        // Missing, yet recorded: dropped by hand, unless a concurrent run created it and
        // recorded its steps since the look above. A step is recorded after its table exists
        // (in its transaction on PostgreSQL, after MySQL's self-committing DDL), so a second
        // look, after the records were read, tells the two apart.
        if state == TableState::Missing && !recorded.is_empty() && self.missing(conn).await? {
            return Err(self.dropped_by_hand());
        }
        for step in &steps {
            let version = self.history.version(step.name());
            if applied.len() >= limit {
                break;
            }
            if recorded.contains(&version) {
                continue;
            }
            let manager = self.step_manager(conn).await?;
            step.up(&manager).await?;
            let record = self.history.record(&version);
            manager.get_connection().execute(&record).await?;
            self.commit(manager).await?;
            tracing::info!(%version, "migrated the session table");
            applied.push(version);
        }
        Ok(execute_all(conn, self.then.clone()).await?)
    }

    /// Whether the table is missing, on a second look. MariaDB's catalog lists the table
    /// without its columns for a moment while a concurrent run's `ALTER TABLE` runs (6 looks in
    /// 400 during a loop of them), which [`table_state`](Self::table_state) takes for a table
    /// being created, so missing: there the table is opened instead, which waits for that
    /// `ALTER` (its metadata lock) and fails only when no table has the name.
    async fn missing(&self, conn: &DatabaseConnection) -> Result<bool, DbErr> {
        match self.backend {
            DbBackend::MySql => Ok(!self.opens(conn).await?),
            _ => Ok(self.table_state(conn).await? == TableState::Missing),
        }
    }

    /// The table is missing, but its steps are recorded: it was dropped without them (by hand,
    /// or by a tool of its own). Creating it again silently could hide a mistake (a wrong
    /// `--schema`, a restore that left it out), so the run says what to do instead.
    fn dropped_by_hand(&self) -> RunError {
        let prefix = self.history.version("");
        let length = prefix.chars().count();
        let prefix = prefix.replace('\'', "''");
        RunError::Refused(format!(
            "{} does not exist, but its migrations are recorded in {} (was it dropped by \
             hand?). To create it again, forget them: DELETE FROM {} WHERE substr(version, 1, \
             {}) = '{prefix}'; then migrate again. Nothing was done.",
            self.describe(),
            self.history.describe(),
            self.history.describe(),
            length,
        ))
    }

    /// Rolls back the last `num` applied steps (all with `None`), newest first; rolling back
    /// the first drops the table, and every session with it (on PostgreSQL with the read
    /// cache's eviction function, once no trigger calls it). Refused, doing nothing, when the
    /// history holds steps this release does not know.
    pub async fn down(
        &self,
        conn: &DatabaseConnection,
        num: Option<u32>,
    ) -> Result<Vec<Undone>, RunError> {
        let steps = self.steps();
        let known = names(&steps);
        let recorded = self.history.versions(conn, &known).await?;
        let unknown = self.unknown(&recorded, &known);
        if !unknown.is_empty() {
            return Err(RunError::Refused(format!(
                "the history of {} holds migrations this release does not know ({}), applied \
                 by a newer release: roll back with that release. Nothing was done.",
                self.describe(),
                unknown.join(", ")
            )));
        }
        let table = self.table_state(conn).await?;
        if let TableState::NotASessionTable { lacks } = &table {
            return Err(self.not_a_session_table(lacks, "drop or alter"));
        }
        if recorded.is_empty() {
            return Ok(Vec::new());
        }
        let recorded = self.history.named_versions(conn, &known).await?;
        let applied: Vec<_> = steps
            .iter()
            .enumerate()
            .filter(|(_, step)| recorded.contains(&self.history.version(step.name())))
            .rev()
            .take(num.map_or(usize::MAX, |n| n as usize))
            .collect();
        let table_exists = table != TableState::Missing;
        let mut undone = Vec::new();
        for (position, step) in applied {
            let version = self.history.version(step.name());
            let manager = self.step_manager(conn).await?;
            let db = manager.get_connection();
            if table_exists {
                // The first step's rollback drops the table (its triggers with it), and then on
                // PostgreSQL the eviction functions they called.
                let functions = if position == 0 && self.backend == DbBackend::Postgres {
                    self.eviction_functions(db).await?
                } else {
                    Vec::new()
                };
                step.down(&manager).await?;
                self.drop_unused_functions(db, &functions).await?;
            }
            db.execute(&self.history.forget(&version)).await?;
            self.commit(manager).await?;
            undone.push(if table_exists {
                Undone::RolledBack(version)
            } else {
                Undone::Forgotten(version)
            });
        }
        Ok(undone)
    }

    /// The table and its steps, applied or pending; changes nothing.
    pub async fn status(&self, conn: &DatabaseConnection) -> Result<Status, DbErr> {
        let steps = self.steps();
        let known = names(&steps);
        let recorded = self.history.versions(conn, &known).await?;
        Ok(Status {
            table: self.table_state(conn).await?,
            steps: known
                .iter()
                .map(|name| {
                    let version = self.history.version(name);
                    let applied = recorded.iter().any(|v| *v == version || v == name);
                    (version, applied)
                })
                .collect(),
            unknown: self.unknown(&recorded, &known),
        })
    }

    /// Where a step and its history row run: a transaction of their own where DDL is
    /// transactional; on MySQL, which commits DDL by itself (see the type's docs), the
    /// connection.
    async fn step_manager<'c>(
        &self,
        conn: &'c DatabaseConnection,
    ) -> Result<SchemaManager<'c>, DbErr> {
        let manager = SchemaManager::new(conn);
        match self.backend {
            DbBackend::MySql => Ok(manager),
            _ => manager.begin().await,
        }
    }

    /// Commits the transaction of [`step_manager`](Self::step_manager), if it began one.
    async fn commit(&self, manager: SchemaManager<'_>) -> Result<(), DbErr> {
        match self.backend {
            DbBackend::MySql => Ok(()),
            _ => manager.commit().await,
        }
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

    fn not_a_session_table(&self, lacks: &[&str], verb: &str) -> RunError {
        RunError::Refused(format!(
            "{} is not a session table: it has no {} column. It is another table of the \
             database, which the session table's migrations will not {verb}. If your sessions \
             live in a table of another name (the store's `with_table_name`, the command \
             line's --table), name that one. Nothing was done.",
            self.describe(),
            lacks.join(", ")
        ))
    }
}

/// The steps' migration names.
fn names(steps: &[Box<dyn MigrationTrait>]) -> Vec<&str> {
    steps.iter().map(|step| step.name()).collect()
}
