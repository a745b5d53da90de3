use std::{fmt, sync::Arc};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use time::OffsetDateTime;

use super::{errors::classify, statements::Statements, SessionTable};
use crate::ports::{RepositoryError, SessionRepository};

/// A [`SessionRepository`] on a SeaORM [`DatabaseConnection`]: one prepared, cached statement
/// per operation.
///
/// The connection is the application's own pool, shared, not a second one. Cloning the
/// repository is cheap.
#[derive(Clone)]
pub struct SeaOrmRepository {
    conn: DatabaseConnection,
    table: SessionTable,
    statements: Option<Arc<Statements>>,
}

impl fmt::Debug for SeaOrmRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaOrmRepository")
            .field("backend", &self.conn.get_database_backend())
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SeaOrmRepository {
    /// A repository on `conn` with the default table, `"tower_sessions"."session"`.
    pub fn new(conn: DatabaseConnection) -> Self {
        Self::with_table(conn, SessionTable::default())
    }

    /// A repository on `conn` storing sessions in `table`.
    pub fn with_table(conn: DatabaseConnection, table: SessionTable) -> Self {
        let statements = Statements::new(conn.get_database_backend(), &table).map(Arc::new);
        Self {
            conn,
            table,
            statements,
        }
    }

    /// The connection the repository uses.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Where the sessions live.
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// The database backend of the connection.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    fn statements(&self) -> Result<&Statements, RepositoryError> {
        self.statements.as_deref().ok_or_else(|| {
            RepositoryError::Statement(format!(
                "this build of tower-sessions-seaorm-store has no SQL dialect for {:?}; \
                 use a PostgreSQL connection",
                self.backend()
            ))
        })
    }

    fn statement(&self, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql, values)
    }
}

fn text(value: &str) -> Value {
    Value::String(Some(value.to_owned()))
}

fn bytes(value: &[u8]) -> Value {
    Value::Bytes(Some(value.to_vec()))
}

fn instant(value: OffsetDateTime) -> Value {
    Value::TimeDateTimeWithTimeZone(Some(value))
}

#[async_trait]
impl SessionRepository for SeaOrmRepository {
    async fn insert_if_absent(
        &self,
        id: &str,
        data: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let sql = &self.statements()?.insert_if_absent;
        let stmt = self.statement(sql, [text(id), bytes(data), instant(expires_at)]);
        let result = self.conn.execute_raw(stmt).await.map_err(classify)?;
        Ok(result.rows_affected() == 1)
    }

    async fn upsert(
        &self,
        id: &str,
        data: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<(), RepositoryError> {
        let sql = &self.statements()?.upsert;
        let stmt = self.statement(sql, [text(id), bytes(data), instant(expires_at)]);
        self.conn.execute_raw(stmt).await.map_err(classify)?;
        Ok(())
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        let sql = &self.statements()?.find_unexpired;
        let stmt = self.statement(sql, [text(id), instant(now)]);
        let Some(row) = self.conn.query_one_raw(stmt).await.map_err(classify)? else {
            return Ok(None);
        };
        row.try_get_by_index::<Vec<u8>>(0)
            .map(Some)
            .map_err(classify)
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        let sql = &self.statements()?.delete_by_id;
        let stmt = self.statement(sql, [text(id)]);
        self.conn.execute_raw(stmt).await.map_err(classify)?;
        Ok(())
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let sql = &self.statements()?.delete_expired_batch;
        // LIMIT is bound as a bigint; a limit beyond i64::MAX means "no limit" anyway.
        let limit = Value::BigInt(Some(i64::try_from(limit).unwrap_or(i64::MAX)));
        let stmt = self.statement(sql, [instant(now), limit, instant(now)]);
        let result = self.conn.execute_raw(stmt).await.map_err(classify)?;
        Ok(result.rows_affected())
    }
}
