use std::{fmt, sync::Arc};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use time::OffsetDateTime;

use super::{errors, statements};
use crate::adapters::sea_orm::Statements;
use crate::{
    adapters::sea_orm::SessionTable,
    ports::{RepositoryError, SessionRepository, SessionRow, UserSessionRow},
};

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// A [`SessionRepository`] on a [deadpool-postgres](https://docs.rs/deadpool-postgres) pool:
/// one statement per operation, prepared once per connection and cached by the pool.
///
/// Cloning is cheap: clones share the pool.
///
/// ```no_run
/// use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
/// use tower_sessions_seaorm_store::adapters::tokio_postgres::TokioPostgresRepository;
///
/// # fn build() -> Result<TokioPostgresRepository, Box<dyn std::error::Error>> {
/// let config: tokio_postgres::Config = "postgres://postgres@127.0.0.1:5432/test".parse()?;
/// let manager = Manager::from_config(
///     config,
///     tokio_postgres::NoTls,
///     ManagerConfig { recycling_method: RecyclingMethod::Fast },
/// );
/// let pool = Pool::builder(manager).max_size(16).build()?;
/// let repository = TokioPostgresRepository::new(pool);
/// # Ok(repository) }
/// ```
#[derive(Clone)]
pub struct TokioPostgresRepository {
    pool: Pool,
    table: SessionTable,
    statements: Arc<Statements>,
}

impl fmt::Debug for TokioPostgresRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioPostgresRepository")
            .field("pool", &self.pool.status())
            .field("table", &self.table)
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
        }
    }

    /// The pool the repository uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where the sessions live.
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, RepositoryError> {
        self.pool.get().await.map_err(errors::pool)
    }
}

impl TokioPostgresRepository {
    /// The parameters of a row, in the statements' column order.
    /// Runs `sql` (prepared and cached per connection) with `params` and returns how many rows
    /// it affected.
    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, RepositoryError> {
        let client = self.client().await?;
        let statement = prepared(&client, sql).await?;
        client
            .execute(&statement, params)
            .await
            .map_err(errors::statement)
    }

    fn row_params<'a>(row: &'a SessionRow, digest: &'a Option<Vec<u8>>) -> Vec<Param<'a>> {
        vec![&row.id, &row.data, &row.expires_at, &row.user_key, digest]
    }
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
        let digest = row.unchanged.map(|unchanged| unchanged.digest.to_vec());
        let params = Self::row_params(&row, &digest);
        let inserted = self
            .execute(&self.statements.insert_if_absent, &params)
            .await?;
        Ok(inserted == 1)
    }

    async fn upsert(&self, row: SessionRow) -> Result<(), RepositoryError> {
        let digest = row.unchanged.map(|unchanged| unchanged.digest.to_vec());
        let keep_after = row
            .unchanged
            .map(|unchanged| unchanged.keep_if_expiring_after);
        let mut params = Self::row_params(&row, &digest);
        let sql = match &keep_after {
            Some(keep_after) => {
                params.push(keep_after);
                &self.statements.upsert_unless_unchanged
            }
            None => &self.statements.upsert,
        };
        self.execute(sql, &params).await.map(drop)
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        let client = self.client().await?;
        let statement = prepared(&client, &self.statements.find_unexpired).await?;
        let Some(row) = client
            .query_opt(&statement, &[&id, &now])
            .await
            .map_err(errors::statement)?
        else {
            return Ok(None);
        };
        row.try_get::<_, Vec<u8>>(0).map(Some).map_err(errors::row)
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        self.execute(&self.statements.delete_by_id, &[&id])
            .await
            .map(drop)
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        // LIMIT is bound as a bigint; a limit beyond i64::MAX means "no limit" anyway.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.execute(&self.statements.delete_expired_batch, &[&now, &limit, &now])
            .await
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        let client = self.client().await?;
        let statement = prepared(&client, &self.statements.find_unexpired_by_user).await?;
        let rows = client
            .query(&statement, &[&user_key, &now])
            .await
            .map_err(errors::statement)?;
        rows.iter()
            .map(|row| {
                Ok(UserSessionRow {
                    id: row.try_get(0).map_err(errors::row)?,
                    expires_at: row.try_get(1).map_err(errors::row)?,
                })
            })
            .collect()
    }

    async fn delete_by_user(&self, user_key: &str) -> Result<u64, RepositoryError> {
        self.execute(&self.statements.delete_by_user, &[&user_key])
            .await
    }

    async fn delete_by_user_except(
        &self,
        user_key: &str,
        keep: &str,
    ) -> Result<u64, RepositoryError> {
        self.execute(&self.statements.delete_by_user_except, &[&user_key, &keep])
            .await
    }
}
