use std::{fmt, sync::Arc};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};
use time::OffsetDateTime;

use super::{
    dialect::Dialect,
    errors::{classify, is_unique_violation},
    SessionTable,
};
use crate::{
    adapters::sql::{Bind, Column, Statements, ROW_BINDS},
    ports::{RepositoryError, SessionRepository, SessionRow, UserSessionRow},
};

/// A [`SessionRepository`] on a SeaORM [`DatabaseConnection`]: one prepared, cached statement
/// per operation, in the SQL of the connection's backend (PostgreSQL, SQLite or MySQL/MariaDB),
/// read from the connection when the repository is built.
///
/// The connection is the application's own pool, shared, not a second one. Cloning the
/// repository is cheap.
#[derive(Clone)]
pub struct SeaOrmRepository {
    conn: DatabaseConnection,
    table: SessionTable,
    dialect: Dialect,
    statements: Arc<Statements>,
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
        }
    }

    /// The connection the repository uses.
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Where the sessions live.
    pub(crate) fn table(&self) -> &SessionTable {
        &self.table
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn statement(&self, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
        Statement::from_sql_and_values(self.conn.get_database_backend(), sql, values)
    }

    /// Runs `sql` with `values` and returns how many rows it affected.
    async fn execute(
        &self,
        sql: &str,
        values: impl IntoIterator<Item = Value>,
    ) -> Result<u64, RepositoryError> {
        let result = self
            .conn
            .execute_raw(self.statement(sql, values))
            .await
            .map_err(|e| self.classify(e))?;
        Ok(result.rows_affected())
    }

    fn instant(&self, at: OffsetDateTime) -> Value {
        self.dialect.instant(at)
    }

    fn classify(&self, err: sea_orm::DbErr) -> RepositoryError {
        classify(self.dialect, err)
    }
}

fn text(value: &str) -> Value {
    Value::String(Some(value.to_owned()))
}

impl SeaOrmRepository {
    /// The values `binds` names for `row`, in order.
    fn bound_values(&self, binds: &[Bind], row: SessionRow) -> Vec<Value> {
        let digest = row.unchanged.map(|unchanged| unchanged.digest.to_vec());
        let keep_after = row
            .unchanged
            .map_or(row.expires_at, |unchanged| unchanged.keep_if_expiring_after);
        // Every statement binds the data once (the statements' tests check it), so the encoded
        // bytes are moved into the statement, not copied.
        let mut data = Some(row.data);
        binds
            .iter()
            .map(|bind| match bind {
                Bind::Column(Column::Id) => text(&row.id),
                Bind::Column(Column::Data) => Value::Bytes(data.take()),
                Bind::Column(Column::ExpiryDate) => self.instant(row.expires_at),
                Bind::Column(Column::UserKey) => Value::String(row.user_key.clone()),
                Bind::Column(Column::DataDigest) => Value::Bytes(digest.clone()),
                Bind::KeepIfExpiringAfter => self.instant(keep_after),
            })
            .collect()
    }
}

#[async_trait]
impl SessionRepository for SeaOrmRepository {
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        let statements = &self.statements;
        let values = self.bound_values(&ROW_BINDS, row);
        let stmt = self.statement(&statements.insert_if_absent, values);
        match self.conn.execute_raw(stmt).await {
            Ok(result) => Ok(result.rows_affected() == 1),
            // MySQL's plain INSERT: the primary key refused the id, nothing was written.
            Err(err) if is_unique_violation(&err) => Ok(false),
            Err(err) => Err(self.classify(err)),
        }
    }

    async fn update_if_present(&self, row: SessionRow) -> Result<(), RepositoryError> {
        let statements = &self.statements;
        let statement = match row.unchanged {
            Some(_) => &statements.update_unless_unchanged,
            None => &statements.update_if_present,
        };
        let values = self.bound_values(&statement.binds, row);
        self.execute(&statement.sql, values).await.map(drop)
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        let sql = &self.statements.find_unexpired;
        let stmt = self.statement(sql, [text(id), self.instant(now)]);
        let Some(row) = self
            .conn
            .query_one_raw(stmt)
            .await
            .map_err(|e| self.classify(e))?
        else {
            return Ok(None);
        };
        row.try_get_by_index::<Vec<u8>>(0)
            .map(Some)
            .map_err(|e| self.classify(e))
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        let sql = &self.statements.delete_by_id;
        self.execute(sql, [text(id)]).await.map(drop)
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let statements = &self.statements;
        // LIMIT is bound as a bigint; a limit beyond i64::MAX means "no limit" anyway.
        let limit = Value::BigInt(Some(i64::try_from(limit).unwrap_or(i64::MAX)));
        let values = statements.delete_expired_values(self.instant(now), limit);
        self.execute(&statements.delete_expired_batch, values).await
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        let sql = &self.statements.find_unexpired_by_user;
        let stmt = self.statement(sql, [text(user_key), self.instant(now)]);
        let rows = self
            .conn
            .query_all_raw(stmt)
            .await
            .map_err(|e| self.classify(e))?;
        rows.iter()
            .map(|row| {
                Ok(UserSessionRow {
                    id: self.dialect.read_key(row, 0)?,
                    expires_at: self.dialect.read_instant(row, 1)?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(|e| self.classify(e))
    }

    async fn delete_by_user(&self, user_key: &str) -> Result<u64, RepositoryError> {
        let sql = &self.statements.delete_by_user;
        self.execute(sql, [text(user_key)]).await
    }

    async fn delete_by_user_except(
        &self,
        user_key: &str,
        keep: &str,
    ) -> Result<u64, RepositoryError> {
        let sql = &self.statements.delete_by_user_except;
        self.execute(sql, [text(user_key), text(keep)]).await
    }

    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError> {
        let sql = &self.statements.delete_by_user_and_id;
        let deleted = self.execute(sql, [text(user_key), text(id)]).await?;
        Ok(deleted > 0)
    }
}
