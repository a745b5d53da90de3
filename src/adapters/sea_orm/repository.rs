use std::{fmt, sync::Arc};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult, QueryResult,
    Statement, TransactionTrait, Value,
};

use super::{dialect::Dialect, errors::classify, SessionTable};
use crate::{
    adapters::sql::{
        driver::{Before, Logged},
        mysql_history::{by_key, locked_keys},
        Executed, Param, SqlDriver, SqlError, SqlRow, Statements,
    },
    ports::RepositoryError,
};

/// A [`SessionRepository`](crate::repository::SessionRepository) on a SeaORM
/// [`DatabaseConnection`]: one prepared, cached statement per operation, in the SQL of the
/// connection's backend (PostgreSQL, SQLite or MySQL/MariaDB), read from the connection when
/// the repository is built.
///
/// The connection is the application's own pool, shared, not a second one. Cloning the
/// repository is cheap. `PostgresStore`, `SqliteStore` and `MySqlStore` are stores over it.
#[derive(Clone)]
pub struct SeaOrmRepository {
    conn: DatabaseConnection,
    table: SessionTable,
    dialect: Dialect,
    statements: Arc<Statements>,
    /// The transaction its statements run in, when it is the per-user limit's guarded one
    /// ([`SqlDriver::begin_guarded`]); `None`: each statement on the pool.
    guarded: Option<Arc<Guarded>>,
}

/// The per-user limit's transaction on one pooled connection, and what runs on that
/// connection once the transaction has ended (MySQL's `RELEASE_LOCK`).
struct Guarded {
    transaction: Option<DatabaseTransaction>,
    release: Option<Statement>,
}

impl Guarded {
    fn transaction(&self) -> &DatabaseTransaction {
        self.transaction
            .as_ref()
            .expect("a guarded transaction is taken only when it ends")
    }

    /// Commits or rolls back, then releases. MySQL: the transaction is ended by a statement
    /// of its own, so that the release runs on its connection after it (SeaORM's commit would
    /// hand the connection back to the pool); SeaORM's commit then finds none open.
    async fn end(mut self, commit: bool) -> Result<(), DbErr> {
        let Some(transaction) = self.transaction.take() else {
            return Ok(());
        };
        let Some(release) = self.release.take() else {
            return match commit {
                true => transaction.commit().await,
                false => transaction.rollback().await,
            };
        };
        let ended = transaction
            .execute_unprepared(if commit { "COMMIT" } else { "ROLLBACK" })
            .await;
        let released = transaction.execute_raw(release).await;
        ended?;
        released?;
        transaction.commit().await
    }
}

/// Abandoned midway (an error, a time-out): rolled back and released on the connection, by a
/// task, since a drop cannot wait. Without a Tokio runtime, SeaORM rolls the transaction back
/// and the connection keeps MySQL's lock until it closes.
impl Drop for Guarded {
    fn drop(&mut self) {
        let Some(release) = self.release.take() else {
            return;
        };
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = transaction.execute_unprepared("ROLLBACK").await;
                if let Err(err) = transaction.execute_raw(release).await {
                    tracing::warn!(
                        error = %err,
                        "could not release the per-user limit's lock of an abandoned login; \
                         the connection keeps it until it closes"
                    );
                }
                drop(transaction);
            });
        }
    }
}

impl fmt::Debug for SeaOrmRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaOrmRepository")
            .field("dialect", &self.dialect)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SeaOrmRepository {
    /// A repository on `conn` storing sessions in `table`.
    pub(crate) fn with_table(conn: DatabaseConnection, table: SessionTable) -> Self {
        let dialect = Dialect::of(conn.get_database_backend());
        let statements = Arc::new(Statements::new(dialect, &table));
        Self {
            conn,
            table,
            dialect,
            statements,
            guarded: None,
        }
    }

    /// Where the sessions live.
    pub(crate) fn table(&self) -> &SessionTable {
        &self.table
    }

    /// The SQL dialect of the connection's backend.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection the repository uses.
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    fn statement(&self, sql: &str, params: Vec<Param>) -> Statement {
        let values = params.into_iter().map(|param| match param {
            Param::Text(text) => Value::String(text),
            Param::Bytes(bytes) => Value::Bytes(bytes),
            Param::Instant(at) => self.dialect.instant(at),
            Param::Integer(value) => Value::BigInt(Some(value)),
            Param::Boolean(value) => Value::Bool(Some(value)),
        });
        Statement::from_sql_and_values(self.conn.get_database_backend(), sql, values)
    }

    /// SeaORM's own sqlx pool, when the connection is a PostgreSQL pool and the statement is
    /// not the per-user limit's transaction's: the store's statements go to that pool
    /// directly, bound as sqlx binds them, as a hand-written sqlx query would. The same pool,
    /// connections, options (`search_path`, logging, acquire checks) and prepared-statement
    /// cache; what is skipped is SeaORM's per-statement work (values converted twice, the
    /// rows re-wrapped, spans), which costs a store operation several microseconds of the
    /// application's CPU (BENCHMARKS.md). A mock or proxy connection keeps SeaORM's path, and
    /// so does SeaORM's metric callback, which does not see these statements.
    #[cfg(feature = "postgres")]
    fn postgres_pool(&self) -> Option<&sea_orm::sqlx::PgPool> {
        if self.guarded.is_some() {
            return None;
        }
        match &self.conn.inner {
            sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                Some(self.conn.get_postgres_connection_pool())
            }
            #[allow(unreachable_patterns)] // with feature `postgres` alone
            _ => None,
        }
    }

    /// A sqlx error of the direct path, classified as SeaORM's would be.
    #[cfg(feature = "postgres")]
    fn sqlx_failed(&self, err: sea_orm::sqlx::Error) -> SqlError {
        classify(
            self.dialect,
            DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(err))),
        )
    }
}

/// `sql` with `params` bound for sqlx's PostgreSQL driver, as SeaORM binds the same values,
/// into arguments sized once for all of them.
#[cfg(feature = "postgres")]
fn postgres_query(
    sql: &str,
    params: Vec<Param>,
) -> Result<
    sea_orm::sqlx::query::Query<'_, sea_orm::sqlx::Postgres, sea_orm::sqlx::postgres::PgArguments>,
    SqlError,
> {
    use sea_orm::sqlx::Arguments;

    use crate::adapters::sql::dialect::postgres_instant;
    let mut arguments = sea_orm::sqlx::postgres::PgArguments::default();
    let size = params.iter().map(Param::encoded_size).sum();
    arguments.reserve(params.len(), size);
    params
        .into_iter()
        .try_for_each(|param| match param {
            Param::Text(text) => arguments.add(text),
            Param::Bytes(bytes) => arguments.add(bytes),
            Param::Instant(at) => arguments.add(postgres_instant(at)),
            Param::Integer(value) => arguments.add(value),
            Param::Boolean(value) => arguments.add(value),
        })
        // Only a value over 2 GiB fails to bind; the error names no value.
        .map_err(|err| SqlError::from(RepositoryError::Statement(err.to_string())))?;
    Ok(sea_orm::sqlx::query_with(
        sea_orm::sqlx::AssertSqlSafe(sql),
        arguments,
    ))
}

impl SqlDriver for SeaOrmRepository {
    type Row = SeaOrmRow;

    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn statements(&self) -> &Statements {
        &self.statements
    }

    #[cfg(all(feature = "cache", feature = "postgres"))]
    fn statements_mut(&mut self) -> &mut Statements {
        Arc::make_mut(&mut self.statements)
    }

    async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<Executed, SqlError> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.postgres_pool() {
            let done = postgres_query(sql, params)?
                .execute(pool)
                .await
                .map_err(|err| self.sqlx_failed(err))?;
            return Ok(Executed {
                rows: done.rows_affected(),
                last_insert_id: 0,
            });
        }
        let statement = self.statement(sql, params);
        let result = match &self.guarded {
            Some(guarded) => guarded.transaction().execute_raw(statement).await,
            None => self.conn.execute_raw(statement).await,
        };
        let result: ExecResult = result.map_err(|err| classify(self.dialect, err))?;
        Ok(Executed {
            rows: result.rows_affected(),
            last_insert_id: match self.dialect {
                Dialect::MySql => result.last_insert_id(),
                Dialect::Postgres | Dialect::Sqlite => 0,
            },
        })
    }

    async fn logged(&self, logged: Logged<'_, SeaOrmRow>) -> Result<u64, SqlError> {
        let failed = |err| classify(self.dialect, err);
        let dialect = self.dialect;
        let row = |row| SeaOrmRow(Read::SeaOrm { row, dialect });
        // Dropped without a commit on any error: rolled back, the change with its entries.
        let transaction = match &self.guarded {
            // In the per-user limit's transaction: a savepoint.
            Some(guarded) => guarded.transaction().begin().await,
            None => self.conn.begin().await,
        };
        let transaction = transaction.map_err(failed)?;
        let (mut previous, mut locked) = (None, Vec::new());
        match logged.before {
            Before::Nothing => {}
            Before::Locked([(lock, lock_params), (read, read_params)]) => {
                transaction
                    .execute_raw(self.statement(lock, lock_params))
                    .await
                    .map_err(failed)?;
                previous = transaction
                    .query_all_raw(self.statement(read, read_params))
                    .await
                    .map_err(failed)?
                    .into_iter()
                    .next()
                    .map(row);
            }
            Before::ForUpdate(read, read_params) => {
                locked = transaction
                    .query_all_raw(self.statement(&read, read_params))
                    .await
                    .map_err(failed)?
                    .into_iter()
                    .map(row)
                    .collect();
                if locked.is_empty() {
                    // Nothing to change: the write would find nothing either.
                    transaction.commit().await.map_err(failed)?;
                    return Ok(0);
                }
            }
        }
        let writes = match logged.by_key {
            Some(deletes) => by_key(deletes, &locked_keys(&locked)?),
            None => vec![(logged.sql, logged.params)],
        };
        let (mut count, mut written) = (0, Vec::new());
        for (sql, params) in writes {
            let statement = self.statement(sql, params);
            match self.dialect {
                // No `RETURNING`: what it changed is what it locked.
                Dialect::MySql => {
                    count += transaction
                        .execute_raw(statement)
                        .await
                        .map_err(failed)?
                        .rows_affected();
                }
                Dialect::Postgres | Dialect::Sqlite => {
                    let rows = transaction.query_all_raw(statement).await.map_err(failed)?;
                    count += rows.len() as u64;
                    written.extend(rows.into_iter().map(row));
                }
            }
        }
        let mut entries = Vec::new();
        for written in &written {
            entries.extend((logged.log)(previous.as_ref(), Some(written))?);
        }
        if count > 0 {
            for locked in &locked {
                entries.extend((logged.log)(Some(locked), None)?);
            }
            if self.dialect == Dialect::MySql && locked.is_empty() {
                entries.extend((logged.log)(None, None)?);
            }
        }
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let (count, sql) = logged
                .history
                .insert_rows
                .at_most(rest.len())
                .unwrap_or((1, &logged.history.insert));
            let (now, later) = rest.split_at(count.clamp(1, rest.len()));
            transaction
                .execute_raw(self.statement(sql, now.concat()))
                .await
                .map_err(failed)?;
            rest = later;
        }
        transaction.commit().await.map_err(failed)?;
        Ok(count)
    }

    async fn begin_guarded(&self, release: Option<(String, Vec<Param>)>) -> Result<Self, SqlError> {
        let transaction = self
            .conn
            .begin()
            .await
            .map_err(|err| classify(self.dialect, err))?;
        let release = release.map(|(sql, params)| self.statement(&sql, params));
        Ok(Self {
            guarded: Some(Arc::new(Guarded {
                transaction: Some(transaction),
                release,
            })),
            ..self.clone()
        })
    }

    async fn end_guarded(self, commit: bool) -> Result<(), SqlError> {
        let dialect = self.dialect;
        let Some(guarded) = self.guarded else {
            return Ok(());
        };
        let guarded = Arc::into_inner(guarded).ok_or_else(|| {
            RepositoryError::Statement("the per-user limit's transaction is still in use".into())
        })?;
        guarded
            .end(commit)
            .await
            .map_err(|err| classify(dialect, err))
    }

    // A read by key: sqlx's `fetch_optional` reads the one row, without `fetch_all`'s boxed
    // stream and its collection (about 4,800 instructions less per load; BENCHMARKS.md).
    async fn query_first(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Option<SeaOrmRow>, SqlError> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.postgres_pool() {
            let row = postgres_query(sql, params)?
                .fetch_optional(pool)
                .await
                .map_err(|err| self.sqlx_failed(err))?;
            return Ok(row.map(SeaOrmRow::direct));
        }
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    async fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<SeaOrmRow>, SqlError> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.postgres_pool() {
            let rows = postgres_query(sql, params)?
                .fetch_all(pool)
                .await
                .map_err(|err| self.sqlx_failed(err))?;
            return Ok(rows.into_iter().map(SeaOrmRow::direct).collect());
        }
        let statement = self.statement(sql, params);
        let rows = match &self.guarded {
            Some(guarded) => guarded.transaction().query_all_raw(statement).await,
            None => self.conn.query_all_raw(statement).await,
        };
        let rows = rows.map_err(|err| classify(self.dialect, err))?;
        let dialect = self.dialect;
        Ok(rows
            .into_iter()
            .map(|row| SeaOrmRow(Read::SeaOrm { row, dialect }))
            .collect())
    }
}

/// A row the repository read: through SeaORM, or straight from its PostgreSQL pool.
pub(crate) struct SeaOrmRow(Read);

enum Read {
    /// Through SeaORM, read as its dialect stores each column.
    SeaOrm { row: QueryResult, dialect: Dialect },
    /// Straight from SeaORM's sqlx PostgreSQL pool: the columns read off sqlx's row, with no
    /// `QueryResult` around it.
    #[cfg(feature = "postgres")]
    Postgres(super::PostgresRow),
}

impl SeaOrmRow {
    #[cfg(feature = "postgres")]
    fn direct(row: sea_orm::sqlx::postgres::PgRow) -> Self {
        Self(Read::Postgres(super::PostgresRow(row)))
    }
}

/// A column SeaORM read, its error classified in the row's dialect.
fn through_seaorm<T>(dialect: Dialect, read: Result<T, DbErr>) -> Result<T, RepositoryError> {
    read.map_err(|err| classify(dialect, err).error)
}

impl SqlRow for SeaOrmRow {
    fn bytes(&self, index: usize) -> Result<Vec<u8>, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => through_seaorm(*dialect, row.try_get_by_index(index)),
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.bytes(index),
        }
    }

    fn key(&self, index: usize) -> Result<String, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => through_seaorm(*dialect, dialect.read_key(row, index)),
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.key(index),
        }
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => through_seaorm(*dialect, row.try_get_by_index(index)),
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.optional_text(index),
        }
    }

    fn instant(&self, index: usize) -> Result<time::OffsetDateTime, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => {
                through_seaorm(*dialect, dialect.read_instant(row, index))
            }
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.instant(index),
        }
    }

    fn boolean(&self, index: usize) -> Result<bool, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => through_seaorm(*dialect, row.try_get_by_index(index)),
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.boolean(index),
        }
    }

    fn integer(&self, index: usize) -> Result<i64, RepositoryError> {
        match &self.0 {
            Read::SeaOrm { row, dialect } => through_seaorm(*dialect, row.try_get_by_index(index)),
            #[cfg(feature = "postgres")]
            Read::Postgres(row) => row.integer(index),
        }
    }
}
