use std::{fmt, sync::Arc};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};
use time::OffsetDateTime;

use super::{
    dialect::Dialect,
    errors::{classify, is_conflict, is_unique_violation},
    SessionTable,
};
use crate::{
    adapters::sql::{
        dialect::EARLIEST,
        per_user::{padded, KeyedDeletes, MAX_KEYS_PER_DELETE},
        server_error::DELETE_ATTEMPTS,
        Bind, Column, Statements, ROW_BINDS,
    },
    ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow},
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

    /// How a listening cache sends its heartbeats through this repository's connection
    /// ([`SendHeartbeat`](crate::adapters::pg_listener::SendHeartbeat)); `None` off PostgreSQL.
    #[cfg(all(feature = "cache", feature = "postgres"))]
    pub(crate) fn send_heartbeat(&self) -> Option<crate::adapters::pg_listener::SendHeartbeat> {
        use crate::adapters::{pg_listener::HeartbeatStatement, sql::eviction::HEARTBEAT_SQL};
        if self.dialect != Dialect::Postgres {
            return None;
        }
        let conn = self.conn.clone();
        Some(Arc::new(move |beat: HeartbeatStatement| {
            let conn = conn.clone();
            Box::pin(async move {
                let statement = Statement::from_sql_and_values(
                    conn.get_database_backend(),
                    HEARTBEAT_SQL,
                    [beat.table.into(), beat.channel.into(), beat.payload.into()],
                );
                let sent = conn.query_one_raw(statement).await;
                sent.map(|row| row.is_some()).map_err(|e| e.to_string())
            })
        }))
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

    /// Runs the delete `sql` with `values` and returns how many rows it deleted, running it
    /// again when it loses a conflict ([`DELETE_ATTEMPTS`]): for the per-user deletes only,
    /// which decide anew what to delete each time.
    async fn delete_retrying_conflicts(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, RepositoryError> {
        let mut attempt = 1;
        loop {
            let statement = self.statement(sql, values.clone());
            match self.conn.execute_raw(statement).await {
                Ok(result) => return Ok(result.rows_affected()),
                Err(err) if attempt < DELETE_ATTEMPTS && is_conflict(self.dialect, &err) => {
                    tracing::debug!(
                        attempt,
                        "a per-user delete lost a conflict; running it again"
                    );
                    attempt += 1;
                }
                Err(err) => return Err(self.classify(err)),
            }
        }
    }

    /// MySQL's per-user deletes: the keys `read` returns (a plain read, which locks nothing),
    /// deleted by primary key with `deletes`, each also binding `checks` (the user, and for the
    /// trim the row's liveness) to re-check every row as it is once locked.
    async fn delete_read_keys(
        &self,
        read: &str,
        read_values: Vec<Value>,
        deletes: &KeyedDeletes,
        checks: Vec<Value>,
    ) -> Result<u64, RepositoryError> {
        // As bytes, bound back as bytes: a key another tool wrote need not be UTF-8.
        let keys = self
            .conn
            .query_all_raw(self.statement(read, read_values))
            .await
            .map_err(|e| self.classify(e))?
            .iter()
            .map(|row| row.try_get_by_index::<Vec<u8>>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.classify(e))?;
        // A key read here may be gone by its delete (another trim or logout got there first):
        // the delete then finds nothing. Each delete is retried on its own.
        let mut deleted = 0;
        for chunk in keys.chunks(MAX_KEYS_PER_DELETE) {
            let Some((count, sql)) = deletes.for_keys(chunk.len()) else {
                continue;
            };
            let mut values: Vec<Value> = padded(chunk, count)
                .into_iter()
                .map(|key| Value::Bytes(Some(key)))
                .collect();
            values.extend(checks.iter().cloned());
            deleted += self.delete_retrying_conflicts(sql, values).await?;
        }
        Ok(deleted)
    }

    fn instant(&self, at: OffsetDateTime) -> Value {
        self.dialect.instant(at)
    }

    /// The lower bound on `created_at` of the rows a read returns: without an absolute
    /// lifetime, the earliest instant a row holds, so every row passes.
    fn born_after(&self, born_after: Option<OffsetDateTime>) -> Value {
        self.instant(born_after.unwrap_or(EARLIEST))
    }

    fn classify(&self, err: sea_orm::DbErr) -> RepositoryError {
        classify(self.dialect, err)
    }
}

fn text(value: &str) -> Value {
    Value::String(Some(value.to_owned()))
}

/// A `LIMIT` or `OFFSET`, bound as a bigint; beyond `i64::MAX` means "no limit" anyway.
fn count(rows: u64) -> Value {
    Value::BigInt(Some(i64::try_from(rows).unwrap_or(i64::MAX)))
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
                Bind::Column(Column::CreatedAt) => self.instant(row.created_at),
                Bind::Column(Column::UpdatedAt) => self.instant(row.saved_at),
                Bind::Column(Column::ListedValues) => Value::String(row.listed_values.clone()),
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

    async fn update_if_present(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        let statements = &self.statements;
        let reporting = row.report_user_change;
        let statement = match (row.unchanged, reporting) {
            (Some(_), false) => &statements.update_unless_unchanged,
            (None, false) => &statements.update_if_present,
            (Some(_), true) => &statements.update_unless_unchanged_reporting,
            (None, true) => &statements.update_if_present_reporting,
        };
        if !reporting {
            let values = self.bound_values(&statement.binds, row);
            return self.execute(&statement.sql, values).await.map(|_| false);
        }
        match self.dialect {
            // `RETURNING` one boolean when the row was written.
            Dialect::Postgres => {
                let values = self.bound_values(&statement.binds, row);
                let stmt = self.statement(&statement.sql, values);
                let written = self
                    .conn
                    .query_one_raw(stmt)
                    .await
                    .map_err(|e| self.classify(e))?;
                match written {
                    Some(row) => row
                        .try_get_by_index::<bool>(0)
                        .map_err(|e| self.classify(e)),
                    None => Ok(false),
                }
            }
            // `LAST_INSERT_ID(IF(same, 1, 2))`, reported with the result; 0 when not written.
            Dialect::MySql => {
                let values = self.bound_values(&statement.binds, row);
                let result = self
                    .conn
                    .execute_raw(self.statement(&statement.sql, values))
                    .await
                    .map_err(|e| self.classify(e))?;
                Ok(result.rows_affected() > 0 && result.last_insert_id() == 2)
            }
            // No statement of SQLite's returns a row's previous value (`RETURNING` sees the new
            // one), and a read first would race other connections' saves: every row written
            // with a user is reported, and the trim that follows ends nothing unless the user
            // is over the limit (one more statement, in process, for such saves only).
            Dialect::Sqlite => {
                let has_user = row.user_key.is_some();
                let values = self.bound_values(&statement.binds, row);
                let written = self.execute(&statement.sql, values).await? > 0;
                Ok(written && has_user)
            }
        }
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        let stmt = match born_after {
            None => self.statement(
                &self.statements.find_unexpired,
                [text(id), self.instant(now)],
            ),
            Some(born) => self.statement(
                &self.statements.find_unexpired_born_after,
                [text(id), self.instant(now), self.instant(born)],
            ),
        };
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

    async fn find_unexpired_row(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        let stmt = match born_after {
            None => self.statement(
                &self.statements.find_unexpired_row,
                [text(id), self.instant(now)],
            ),
            Some(born) => self.statement(
                &self.statements.find_unexpired_row_born_after,
                [text(id), self.instant(now), self.instant(born)],
            ),
        };
        let Some(row) = self
            .conn
            .query_one_raw(stmt)
            .await
            .map_err(|e| self.classify(e))?
        else {
            return Ok(None);
        };
        let data = row
            .try_get_by_index::<Vec<u8>>(0)
            .map_err(|e| self.classify(e))?;
        let created_at = self
            .dialect
            .read_instant(&row, 1)
            .map_err(|e| self.classify(e))?;
        Ok(Some(FoundRow {
            data,
            created_at: Some(created_at),
        }))
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        let sql = &self.statements.delete_by_id;
        self.execute(sql, [text(id)]).await.map(drop)
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let statements = &self.statements;
        let limit = count(limit);
        match born_before {
            None => {
                let values = statements.delete_expired_values(self.instant(now), limit);
                self.execute(&statements.delete_expired_batch, values).await
            }
            Some(born_before) => {
                let values = statements.delete_outlived_values(
                    self.instant(now),
                    self.instant(born_before),
                    limit,
                );
                self.execute(&statements.delete_outlived_batch, values)
                    .await
            }
        }
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        let sql = &self.statements.find_unexpired_by_user;
        let stmt = self.statement(
            sql,
            [
                text(user_key),
                self.instant(now),
                self.born_after(born_after),
            ],
        );
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
                    created_at: self.dialect.read_instant(row, 2)?,
                    saved_at: self.dialect.read_instant(row, 3)?,
                    listed_values: row.try_get_by_index::<Option<String>>(4)?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(|e| self.classify(e))
    }

    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let statements = &self.statements;
        let per_user = &statements.per_user;
        let (now, born_after) = (self.instant(now), self.born_after(born_after));
        let values = statements.trim_user_values(
            text(user_key),
            now.clone(),
            born_after.clone(),
            count(keep),
        );
        match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                self.delete_retrying_conflicts(&per_user.trim, values).await
            }
            Dialect::MySql => {
                let checks = vec![text(user_key), now, born_after];
                self.delete_read_keys(&per_user.trim, values, &per_user.delete_live_keys, checks)
                    .await
            }
        }
    }

    async fn delete_by_user(&self, user_key: &str) -> Result<u64, RepositoryError> {
        let per_user = &self.statements.per_user;
        let values = vec![text(user_key)];
        match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                self.delete_retrying_conflicts(&per_user.delete_by_user, values)
                    .await
            }
            Dialect::MySql => {
                let checks = vec![text(user_key)];
                self.delete_read_keys(
                    &per_user.delete_by_user,
                    values,
                    &per_user.delete_keys,
                    checks,
                )
                .await
            }
        }
    }

    async fn delete_by_user_except(
        &self,
        user_key: &str,
        keep: &str,
    ) -> Result<u64, RepositoryError> {
        let per_user = &self.statements.per_user;
        let values = vec![text(user_key), text(keep)];
        match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                self.delete_retrying_conflicts(&per_user.delete_by_user_except, values)
                    .await
            }
            Dialect::MySql => {
                let checks = vec![text(user_key)];
                self.delete_read_keys(
                    &per_user.delete_by_user_except,
                    values,
                    &per_user.delete_keys,
                    checks,
                )
                .await
            }
        }
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
