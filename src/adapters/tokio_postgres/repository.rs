use std::{fmt, sync::Arc};

use bytes::BytesMut;
use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{
    cancel::{abandon, CancelTls, Lent},
    errors,
};
use crate::{
    adapters::sql::{
        dialect::postgres_instant, Dialect, Executed, Param, SessionTable, SqlDriver, SqlError,
        SqlRow, Statements,
    },
    ports::RepositoryError,
};

/// A [`SessionRepository`](crate::repository::SessionRepository) on a
/// [deadpool-postgres](https://docs.rs/deadpool-postgres) pool: one statement per operation,
/// prepared once per connection and cached by the pool. `LeanPostgresStore` is a store over it.
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
/// without TLS unless the store is given the pool's connector (`with_cancel_tls`), which a pool
/// with `sslmode=require` needs.
#[derive(Clone)]
pub struct TokioPostgresRepository {
    pool: Pool,
    table: SessionTable,
    statements: Arc<Statements>,
    cancel_tls: CancelTls,
    /// The per-user limit's transaction its statements run in ([`SqlDriver::begin_guarded`]);
    /// `None`: each statement on a client of its own.
    guarded: Option<Arc<Guarded>>,
}

/// The per-user limit's transaction, on a client taken from the pool for it.
struct Guarded {
    client: Option<deadpool_postgres::Client>,
    cancel_tls: CancelTls,
}

impl Guarded {
    fn client(&self) -> Result<&deadpool_postgres::Client, SqlError> {
        self.client.as_ref().ok_or_else(|| {
            RepositoryError::Statement("the per-user limit's transaction has ended".into()).into()
        })
    }
}

/// Abandoned midway (an error, a time-out): the client never returns to the pool; whatever it
/// runs is cancelled and its connection closed, which rolls the transaction back and releases
/// its lock ([`abandon`]).
impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            abandon(client, self.cancel_tls.clone());
        }
    }
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
    /// A repository on `pool` storing sessions in `table`.
    pub(crate) fn with_table(pool: Pool, table: SessionTable) -> Self {
        let statements = Arc::new(Statements::new(Dialect::Postgres, &table));
        Self {
            pool,
            table,
            statements,
            cancel_tls: CancelTls::default(),
            guarded: None,
        }
    }

    /// The same repository, sending cancel requests through `cancel_tls` (the pool's
    /// connector).
    pub(crate) fn with_cancel_tls(self, cancel_tls: CancelTls) -> Self {
        Self { cancel_tls, ..self }
    }

    /// The same repository (pool, cancel connector) storing sessions in `table`.
    pub(crate) fn on_table(&self, table: SessionTable) -> Self {
        Self {
            cancel_tls: self.cancel_tls.clone(),
            ..Self::with_table(self.pool.clone(), table)
        }
    }

    /// Where the sessions live.
    pub(crate) fn table(&self) -> &SessionTable {
        &self.table
    }

    /// The pool the repository uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled client, for one statement.
    async fn client(&self) -> Result<deadpool_postgres::Client, SqlError> {
        Ok(self.pool.get().await.map_err(errors::pool)?)
    }
}

/// A parameter as tokio-postgres sends it, converted as it is written into the message (no
/// vector of converted values per statement): instants as [`postgres_instant`]s, in UTC, since
/// postgres-types converts to UTC with `to_offset`, which panics for an instant `time` cannot
/// express there.
///
/// Each variant is checked against the column's type as its value type checks it, in `to_sql`
/// itself: `accepts` cannot tell the variants apart, and tokio-postgres's blanket impl for
/// `&Param` (what `execute_raw` is handed) checks only `accepts` before calling `to_sql`. So a
/// parameter of the wrong kind is refused before anything is sent, whichever way it is bound,
/// rather than sent as bytes the server might read as another type's.
impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxedError> {
        match self {
            Self::Text(text) => text.to_sql_checked(ty, out),
            Self::Bytes(bytes) => bytes.to_sql_checked(ty, out),
            Self::Instant(at) => postgres_instant(*at).to_sql_checked(ty, out),
            Self::Integer(value) => value.to_sql_checked(ty, out),
            Self::Boolean(value) => value.to_sql_checked(ty, out),
        }
    }

    /// Every type some variant accepts; `to_sql` checks the variant's own.
    fn accepts(ty: &Type) -> bool {
        <Option<String> as ToSql>::accepts(ty)
            || <Option<Vec<u8>> as ToSql>::accepts(ty)
            || <OffsetDateTime as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <bool as ToSql>::accepts(ty)
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxedError> {
        self.to_sql(ty, out)
    }
}

type BoxedError = Box<dyn std::error::Error + Sync + Send>;

/// The statement's parameters as tokio-postgres's `query` takes them.
fn as_sql(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|param| param as _).collect()
}

impl SqlDriver for TokioPostgresRepository {
    type Row = tokio_postgres::Row;

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn statements(&self) -> &Statements {
        &self.statements
    }

    #[cfg(all(feature = "cache", feature = "postgres"))]
    fn statements_mut(&mut self) -> &mut Statements {
        Arc::make_mut(&mut self.statements)
    }

    // Each statement is prepared and cached per connection. If the operation is given up
    // before it ends (its future dropped by the store's operation timeout), the statement is
    // cancelled on the server and the connection closed, never reused: see [`Lent`].

    async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<Executed, SqlError> {
        if let Some(guarded) = &self.guarded {
            let client = guarded.client()?;
            let statement = client.prepare_cached(sql).await;
            let rows = match statement {
                Ok(statement) => client.execute_raw(&statement, params.iter()).await,
                Err(err) => Err(err),
            };
            return Ok(Executed {
                rows: rows.map_err(errors::statement)?,
                last_insert_id: 0,
            });
        }
        let mut lent = Lent::new(&self.cancel_tls);
        let client = lent.lend(self.client().await?);
        let rows = match client.prepare_cached(sql).await {
            Ok(statement) => client.execute_raw(&statement, params.iter()).await,
            Err(err) => Err(err),
        };
        lent.returned();
        Ok(Executed {
            rows: rows.map_err(errors::statement)?,
            last_insert_id: 0,
        })
    }

    // The per-user limit's transaction: a client of its own, `BEGIN` … `COMMIT`. PostgreSQL
    // has no `release`: the advisory lock is the transaction's.
    async fn begin_guarded(
        &self,
        _release: Option<(String, Vec<Param>)>,
    ) -> Result<Self, SqlError> {
        let guarded = Guarded {
            client: Some(self.client().await?),
            cancel_tls: self.cancel_tls.clone(),
        };
        // Dropped on an error: the connection is closed, never handed back mid-transaction.
        guarded
            .client()?
            .batch_execute("BEGIN")
            .await
            .map_err(errors::statement)?;
        Ok(Self {
            guarded: Some(Arc::new(guarded)),
            ..self.clone()
        })
    }

    async fn end_guarded(self, commit: bool) -> Result<(), SqlError> {
        let Some(guarded) = self.guarded else {
            return Ok(());
        };
        let mut guarded = Arc::into_inner(guarded).ok_or_else(|| {
            RepositoryError::Statement("the per-user limit's transaction is still in use".into())
        })?;
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        guarded
            .client()?
            .batch_execute(end)
            .await
            .map_err(errors::statement)?;
        // Ended: the client goes back to the pool.
        drop(guarded.client.take());
        Ok(())
    }

    // A read by key: its one row read off the stream (see [`first_row`]).
    async fn query_first(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Option<tokio_postgres::Row>, SqlError> {
        if let Some(guarded) = &self.guarded {
            let client = guarded.client()?;
            let row = match client.prepare_cached(sql).await {
                Ok(statement) => first_row(client, &statement, &params).await,
                Err(err) => Err(err),
            };
            return row.map_err(errors::statement);
        }
        let mut lent = Lent::new(&self.cancel_tls);
        let client = lent.lend(self.client().await?);
        let row = match client.prepare_cached(sql).await {
            Ok(statement) => first_row(client, &statement, &params).await,
            Err(err) => Err(err),
        };
        lent.returned();
        row.map_err(errors::statement)
    }

    async fn query(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<tokio_postgres::Row>, SqlError> {
        let params = as_sql(&params);
        if let Some(guarded) = &self.guarded {
            let client = guarded.client()?;
            let rows = match client.prepare_cached(sql).await {
                Ok(statement) => client.query(&statement, &params).await,
                Err(err) => Err(err),
            };
            return rows.map_err(errors::statement);
        }
        let mut lent = Lent::new(&self.cancel_tls);
        let client = lent.lend(self.client().await?);
        let rows = match client.prepare_cached(sql).await {
            Ok(statement) => client.query(&statement, &params).await,
            Err(err) => Err(err),
        };
        lent.returned();
        rows.map_err(errors::statement)
    }
}

/// The first row `statement` returns, read off its stream: no vector of rows, and the client
/// goes back to the pool as soon as the row is read (what follows it, if anything, is
/// discarded by the connection as it arrives).
async fn first_row(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    params: &[Param],
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    let rows = client.query_raw(statement, params.iter()).await?;
    let mut rows = std::pin::pin!(rows);
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx))
        .await
        .transpose()
}

impl SqlRow for tokio_postgres::Row {
    fn bytes(&self, index: usize) -> Result<Vec<u8>, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }

    fn key(&self, index: usize) -> Result<String, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }

    fn instant(&self, index: usize) -> Result<OffsetDateTime, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }

    fn boolean(&self, index: usize) -> Result<bool, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }

    fn integer(&self, index: usize) -> Result<i64, RepositoryError> {
        self.try_get(index).map_err(errors::row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of parameter, with a column type it binds to and one it must not.
    fn kinds() -> Vec<(Param, Type, Type)> {
        vec![
            (Param::text("id"), Type::TEXT, Type::INT8),
            (Param::Text(None), Type::TEXT, Type::BOOL),
            (Param::Bytes(Some(vec![1, 2])), Type::BYTEA, Type::TEXT),
            (
                Param::Instant(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)),
                Type::TIMESTAMPTZ,
                Type::INT8,
            ),
            (Param::Integer(7), Type::INT8, Type::TIMESTAMPTZ),
            (Param::Boolean(true), Type::BOOL, Type::INT8),
        ]
    }

    #[test]
    fn a_parameter_of_the_wrong_kind_is_refused_however_it_is_bound() {
        for (param, right, wrong) in kinds() {
            let mut out = BytesMut::new();
            assert!(param.to_sql_checked(&right, &mut out).is_ok(), "{param:?}");
            // As `query` binds it (a trait object), as `execute_raw` does (a reference, whose
            // blanket impl checks only `accepts`), and directly.
            let by_object: &(dyn ToSql + Sync) = &param;
            let by_reference = &param;
            let refused = [
                by_object.to_sql_checked(&wrong, &mut out),
                by_reference.to_sql_checked(&wrong, &mut out),
                param.to_sql(&wrong, &mut out),
            ];
            for result in refused {
                assert!(result.is_err(), "{param:?} bound as {wrong}");
            }
        }
    }

    #[test]
    fn an_instant_is_sent_in_utc_clamped_to_what_postgres_stores() {
        let far = OffsetDateTime::new_utc(
            time::Date::from_calendar_date(-9999, time::Month::January, 1).unwrap(),
            time::Time::MIDNIGHT,
        );
        let mut sent = BytesMut::new();
        Param::Instant(far)
            .to_sql_checked(&Type::TIMESTAMPTZ, &mut sent)
            .unwrap();
        let mut clamped = BytesMut::new();
        postgres_instant(far)
            .to_sql_checked(&Type::TIMESTAMPTZ, &mut clamped)
            .unwrap();
        assert_eq!(sent, clamped);
    }
}
