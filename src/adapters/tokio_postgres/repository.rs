use std::{fmt, sync::Arc};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use time::OffsetDateTime;

use super::{
    cancel::{CancelTls, Lent},
    errors, statements,
};
use crate::adapters::sql::{
    dialect::{postgres_instant, EARLIEST},
    server_error::DELETE_ATTEMPTS,
    Bind, Column, Statements, ROW_BINDS,
};
use crate::{
    adapters::sql::SessionTable,
    ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow},
};

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// A [`SessionRepository`] on a [deadpool-postgres](https://docs.rs/deadpool-postgres) pool:
/// one statement per operation, prepared once per connection and cached by the pool.
///
/// Cloning is cheap: clones share the pool.
///
/// **A statement given up is cancelled.** When the store's operation timeout drops an operation
/// while its statement runs (a save waiting on a row lock, a slow trigger), the repository sends
/// the server a cancel request for it and closes its connection, so the statement does not take
/// effect later, and the connection, still busy with it, is never handed to another operation;
/// the pool opens a fresh one. A statement that ends, with a result or an error, costs nothing
/// extra. A cancel races the statement: one that completed just as its timeout fired stays
/// applied, which is why a timeout's outcome is reported as unknown. The cancel request is sent
/// without TLS unless the repository is given the pool's connector
/// ([`with_cancel_tls`](Self::with_cancel_tls)), which a pool with `sslmode=require` needs.
#[derive(Clone)]
pub struct TokioPostgresRepository {
    pool: Pool,
    table: SessionTable,
    statements: Arc<Statements>,
    cancel_tls: CancelTls,
}

impl fmt::Debug for TokioPostgresRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioPostgresRepository")
            .field("pool", &self.pool.status())
            .field("table", &self.table)
            .field("cancel_tls", &self.cancel_tls)
            .finish_non_exhaustive()
    }
}

impl TokioPostgresRepository {
    /// A repository on `pool` with the default table, `"tower_sessions"."session"`.
    pub fn new(pool: Pool) -> Self {
        Self::with_table(pool, SessionTable::default())
    }

    /// A repository on `pool` storing sessions in `table`.
    pub fn with_table(pool: Pool, table: SessionTable) -> Self {
        let statements = Arc::new(statements::for_table(&table));
        Self {
            pool,
            table,
            statements,
            cancel_tls: CancelTls::default(),
        }
    }

    /// The same repository, sending the cancel request for a timed-out statement through `tls`,
    /// the connector the pool was built with. A pool whose config says `sslmode=require` needs
    /// it: tokio-postgres then sends the cancel over TLS too, and cannot without a connector; the
    /// cancel fails (logged at `warn`) and the statement runs on. With `sslmode=prefer` (the
    /// default) or `disable`, the cancel goes in plain text, as libpq's `PQcancel` sends it.
    pub fn with_cancel_tls<T>(self, tls: T) -> Self
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Stream: Send + Sync,
        T::TlsConnect: Send + Sync,
        <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
    {
        Self {
            cancel_tls: CancelTls::with(tls),
            ..self
        }
    }

    /// The same repository (pool, cancel connector) storing sessions in `table`.
    pub(crate) fn on_table(&self, table: SessionTable) -> Self {
        Self {
            cancel_tls: self.cancel_tls.clone(),
            ..Self::with_table(self.pool.clone(), table)
        }
    }

    /// The pool the repository uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// How a listening cache sends its heartbeats through this repository's pool
    /// ([`SendHeartbeat`](crate::adapters::pg_listener::SendHeartbeat)).
    #[cfg(all(feature = "cache", feature = "postgres"))]
    pub(crate) fn send_heartbeat(&self) -> crate::adapters::pg_listener::SendHeartbeat {
        use crate::adapters::{pg_listener::HeartbeatStatement, sql::eviction::HEARTBEAT_SQL};
        let pool = self.pool.clone();
        Arc::new(move |beat: HeartbeatStatement| {
            let pool = pool.clone();
            Box::pin(async move {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                let sent = client
                    .query_opt(HEARTBEAT_SQL, &[&beat.table, &beat.channel, &beat.payload])
                    .await;
                sent.map(|row| row.is_some()).map_err(|e| e.to_string())
            })
        })
    }

    /// Where the sessions live.
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Runs `work` on a pooled client. If the operation is given up before `work` ends (its
    /// future dropped by the store's operation timeout), the statement is cancelled on the
    /// server and the connection closed, never reused: see [`Lent`].
    async fn attended<T>(
        &self,
        work: impl AsyncFnOnce(&deadpool_postgres::Client) -> Result<T, RepositoryError>,
    ) -> Result<T, RepositoryError> {
        let client = self.pool.get().await.map_err(errors::pool)?;
        let mut lent = Lent::new(&self.cancel_tls);
        let result = work(lent.lend(client)).await;
        lent.returned();
        result
    }
}

impl TokioPostgresRepository {
    /// Runs `sql` (prepared and cached per connection) with `params` and returns how many rows
    /// it affected.
    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, RepositoryError> {
        self.attended(async |client| {
            let statement = prepared(client, sql).await?;
            client
                .execute(&statement, params)
                .await
                .map_err(errors::statement)
        })
        .await
    }

    /// Runs the delete `sql` with `params` and returns how many rows it deleted, running it
    /// again when it loses a conflict ([`DELETE_ATTEMPTS`]): for the per-user deletes only,
    /// which decide anew what to delete each time.
    async fn delete_retrying_conflicts(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, RepositoryError> {
        self.attended(async |client| {
            let statement = prepared(client, sql).await?;
            let mut attempt = 1;
            loop {
                match client.execute(&statement, params).await {
                    Ok(deleted) => return Ok(deleted),
                    Err(err) if attempt < DELETE_ATTEMPTS && errors::is_conflict(&err) => {
                        tracing::debug!(
                            attempt,
                            "a per-user delete lost a conflict; running it again"
                        );
                        attempt += 1;
                    }
                    Err(err) => return Err(errors::statement(err)),
                }
            }
        })
        .await
    }

    /// The parameters `binds` names for `row`, in order.
    fn row_params<'a>(binds: &[Bind], row: &'a SessionRow, extra: &'a RowExtras) -> Vec<Param<'a>> {
        binds
            .iter()
            .map(|bind| -> Param<'a> {
                match bind {
                    Bind::Column(Column::Id) => &row.id,
                    Bind::Column(Column::Data) => &row.data,
                    Bind::Column(Column::ExpiryDate) => &extra.expires_at,
                    Bind::Column(Column::UserKey) => &row.user_key,
                    Bind::Column(Column::DataDigest) => &extra.digest,
                    Bind::Column(Column::CreatedAt) => &extra.created_at,
                    Bind::Column(Column::UpdatedAt) => &extra.saved_at,
                    Bind::Column(Column::ListedValues) => &row.listed_values,
                    Bind::KeepIfExpiringAfter => &extra.keep_after,
                }
            })
            .collect()
    }
}

/// What a row's statements bind beside its own fields, and its instants as they are sent: as
/// [`postgres_instant`]s, in UTC, since postgres-types converts to UTC with `to_offset`, which
/// panics for an instant `time` cannot express there. Every "now" is sent the same way.
struct RowExtras {
    digest: Option<Vec<u8>>,
    expires_at: OffsetDateTime,
    keep_after: OffsetDateTime,
    created_at: OffsetDateTime,
    saved_at: OffsetDateTime,
}

impl RowExtras {
    fn of(row: &SessionRow) -> Self {
        Self {
            digest: row.unchanged.map(|unchanged| unchanged.digest.to_vec()),
            expires_at: postgres_instant(row.expires_at),
            keep_after: postgres_instant(
                row.unchanged
                    .map_or(row.expires_at, |unchanged| unchanged.keep_if_expiring_after),
            ),
            created_at: postgres_instant(row.created_at),
            saved_at: postgres_instant(row.saved_at),
        }
    }
}

/// A `LIMIT` or `OFFSET`, bound as a bigint; beyond `i64::MAX` means "no limit" anyway.
fn count(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// The lower bound on `created_at` of the rows a read returns: without an absolute lifetime,
/// the earliest instant a row holds, so every row passes.
fn born_after_bound(born_after: Option<OffsetDateTime>) -> OffsetDateTime {
    postgres_instant(born_after.unwrap_or(EARLIEST))
}

async fn prepared(
    client: &deadpool_postgres::Client,
    sql: &str,
) -> Result<tokio_postgres::Statement, RepositoryError> {
    client.prepare_cached(sql).await.map_err(errors::statement)
}

#[async_trait]
impl SessionRepository for TokioPostgresRepository {
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        let extras = RowExtras::of(&row);
        let params = Self::row_params(&ROW_BINDS, &row, &extras);
        let inserted = self
            .execute(&self.statements.insert_if_absent, &params)
            .await?;
        Ok(inserted == 1)
    }

    async fn update_if_present(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        let statements = &self.statements;
        let statement = match (row.unchanged, row.report_user_change) {
            (Some(_), false) => &statements.update_unless_unchanged,
            (None, false) => &statements.update_if_present,
            (Some(_), true) => &statements.update_unless_unchanged_reporting,
            (None, true) => &statements.update_if_present_reporting,
        };
        let extras = RowExtras::of(&row);
        let params = Self::row_params(&statement.binds, &row, &extras);
        if !row.report_user_change {
            return self.execute(&statement.sql, &params).await.map(|_| false);
        }
        // `RETURNING` one boolean when the row was written: whether its user key changed.
        let written = self
            .attended(async |client| {
                let statement = prepared(client, &statement.sql).await?;
                client
                    .query_opt(&statement, &params)
                    .await
                    .map_err(errors::statement)
            })
            .await?;
        written
            .map(|row| row.try_get::<_, bool>(0))
            .transpose()
            .map(|changed| changed.unwrap_or(false))
            .map_err(errors::row)
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        let now = postgres_instant(now);
        let born_after = born_after.map(postgres_instant);
        let row = self
            .attended(async |client| {
                let (sql, params): (_, Vec<Param<'_>>) = match &born_after {
                    None => (&self.statements.find_unexpired, vec![&id, &now]),
                    Some(born) => (
                        &self.statements.find_unexpired_born_after,
                        vec![&id, &now, born],
                    ),
                };
                let statement = prepared(client, sql).await?;
                client
                    .query_opt(&statement, &params)
                    .await
                    .map_err(errors::statement)
            })
            .await?;
        row.map(|row| row.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(errors::row)
    }

    async fn find_unexpired_row(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        let now = postgres_instant(now);
        let born_after = born_after.map(postgres_instant);
        let row = self
            .attended(async |client| {
                let (sql, params): (_, Vec<Param<'_>>) = match &born_after {
                    None => (&self.statements.find_unexpired_row, vec![&id, &now]),
                    Some(born) => (
                        &self.statements.find_unexpired_row_born_after,
                        vec![&id, &now, born],
                    ),
                };
                let statement = prepared(client, sql).await?;
                client
                    .query_opt(&statement, &params)
                    .await
                    .map_err(errors::statement)
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let data = row.try_get::<_, Vec<u8>>(0).map_err(errors::row)?;
        let created_at = row.try_get::<_, OffsetDateTime>(1).map_err(errors::row)?;
        Ok(Some(FoundRow {
            data,
            created_at: Some(created_at),
        }))
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        self.execute(&self.statements.delete_by_id, &[&id])
            .await
            .map(drop)
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let limit = count(limit);
        let now = postgres_instant(now);
        match born_before.map(postgres_instant) {
            None => {
                self.execute(&self.statements.delete_expired_batch, &[&now, &limit, &now])
                    .await
            }
            Some(born) => {
                let params: [Param<'_>; 5] = [&now, &born, &limit, &now, &born];
                self.execute(&self.statements.delete_outlived_batch, &params)
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
        let now = postgres_instant(now);
        let born_after = born_after_bound(born_after);
        let rows = self
            .attended(async |client| {
                let statement = prepared(client, &self.statements.find_unexpired_by_user).await?;
                client
                    .query(&statement, &[&user_key, &now, &born_after])
                    .await
                    .map_err(errors::statement)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UserSessionRow {
                    id: row.try_get(0).map_err(errors::row)?,
                    expires_at: row.try_get(1).map_err(errors::row)?,
                    created_at: row.try_get(2).map_err(errors::row)?,
                    saved_at: row.try_get(3).map_err(errors::row)?,
                    listed_values: row.try_get(4).map_err(errors::row)?,
                })
            })
            .collect()
    }

    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let now = postgres_instant(now);
        let born_after = born_after_bound(born_after);
        let keep = count(keep);
        let params: [Param<'_>; 4] = [&user_key, &now, &born_after, &keep];
        self.delete_retrying_conflicts(&self.statements.per_user.trim, &params)
            .await
    }

    async fn delete_by_user(&self, user_key: &str) -> Result<u64, RepositoryError> {
        let sql = &self.statements.per_user.delete_by_user;
        self.delete_retrying_conflicts(sql, &[&user_key]).await
    }

    async fn delete_by_user_except(
        &self,
        user_key: &str,
        keep: &str,
    ) -> Result<u64, RepositoryError> {
        let sql = &self.statements.per_user.delete_by_user_except;
        self.delete_retrying_conflicts(sql, &[&user_key, &keep])
            .await
    }

    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError> {
        let deleted = self
            .execute(&self.statements.delete_by_user_and_id, &[&user_key, &id])
            .await?;
        Ok(deleted > 0)
    }
}
