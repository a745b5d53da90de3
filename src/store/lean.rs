//! `LeanPostgresStore`: the store on the tokio-postgres repository (feature `tokio-postgres`).

#[cfg(feature = "msgpack")]
use deadpool_postgres::Pool;
use tokio_postgres::{
    tls::{MakeTlsConnect, TlsConnect},
    Socket,
};

#[cfg(feature = "msgpack")]
use crate::codec::MessagePackCodec;
use crate::{
    adapters::{
        sql::{Dialect, SessionTable},
        tokio_postgres::{CancelTls, TokioPostgresRepository},
    },
    domain::{RepositoryStore, SessionError as SeaOrmStoreError},
    ports::Codec,
};

/// The PostgreSQL store on a tokio-postgres pool (deadpool-postgres), MessagePack-encoded by
/// default: the same rows and rules as [`PostgresStore`](crate::PostgresStore), on a leaner
/// driver, for applications whose hottest path is the session lookup.
///
/// It creates no tables: run [`PostgresStore::migrate`](crate::PostgresStore::migrate) once on a
/// SeaORM connection, or add every step of the migration crate's
/// [`migrations`](crate::migration::migrations) to your own `Migrator` (`CreateSessionTable`,
/// `AddUserIndex`, `ExactKeys`, `AddSessionTimes`, `InsertInstantDefaults`, `AddVersion`,
/// `AddLongLived`: its writes need the columns of all of them).
///
/// **Timeouts.** A statement still running when the operation timeout fires is cancelled on the
/// server (a PostgreSQL cancel request) and its connection closed, never reused; give the store
/// the pool's TLS connector with
/// [`with_cancel_tls`](RepositoryStore::with_cancel_tls) if the pool uses `sslmode=require`.
///
/// ```no_run
/// use tower_sessions::SessionManagerLayer;
/// use tower_sessions_seaorm_store::{
///     deadpool_postgres::{tokio_postgres::NoTls, Manager, ManagerConfig, Pool, RecyclingMethod},
///     sea_orm::Database,
///     LeanPostgresStore, PostgresStore,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let url = "postgres://postgres@127.0.0.1:5432/test";
/// PostgresStore::new(Database::connect(url).await?).migrate().await?;
///
/// let manager = Manager::from_config(
///     url.parse()?,
///     NoTls,
///     ManagerConfig { recycling_method: RecyclingMethod::Fast },
/// );
/// let store = LeanPostgresStore::new(Pool::builder(manager).max_size(16).build()?);
/// let layer = SessionManagerLayer::new(store);
/// # Ok(()) }
/// ```
#[cfg(feature = "msgpack")]
pub type LeanPostgresStore<C = MessagePackCodec> = RepositoryStore<TokioPostgresRepository, C>;

/// The PostgreSQL store on a tokio-postgres pool; enable feature `msgpack` for the default codec.
#[cfg(not(feature = "msgpack"))]
pub type LeanPostgresStore<C> = RepositoryStore<TokioPostgresRepository, C>;

#[cfg(feature = "msgpack")]
impl RepositoryStore<TokioPostgresRepository, MessagePackCodec> {
    /// A store on `pool` using the table `"tower_sessions"."session"` and the MessagePack codec.
    pub fn new(pool: Pool) -> Self {
        let table = SessionTable::default();
        let repository = TokioPostgresRepository::with_table(pool, table.clone());
        Self::from_parts(repository, MessagePackCodec).with_table_label(&table, Dialect::Postgres)
    }
}

impl<C: Codec> RepositoryStore<TokioPostgresRepository, C> {
    /// The same store with its sessions in schema `name` (default `tower_sessions`); the same
    /// rules as [`PostgresStore::with_schema_name`](crate::PostgresStore::with_schema_name).
    pub fn with_schema_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        self.refuse_if_cached("`with_schema_name`")?;
        let table = self.repository().table().clone().with_schema(name)?;
        Ok(self.with_session_table(table))
    }

    /// The same store with its sessions in table `name` (default `session`); the same rules as
    /// [`PostgresStore::with_schema_name`](crate::PostgresStore::with_schema_name).
    pub fn with_table_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        self.refuse_if_cached("`with_table_name`")?;
        let table = self.repository().table().clone().with_table(name)?;
        Ok(self.with_session_table(table))
    }

    /// The same store, on a session table distributed by Citus; the same as
    /// [`PostgresStore::with_distributed_table`](crate::PostgresStore::with_distributed_table)
    /// but for `migrate()`, which this store does not have: its cleanup deletes without row
    /// locks, and a listening cache is refused. Call it before `with_cache`.
    pub fn with_distributed_table(self) -> Result<Self, SeaOrmStoreError> {
        self.refuse_if_cached("`with_distributed_table`")?;
        let table = self.repository().table().clone().with_distributed();
        Ok(self.with_session_table(table))
    }

    /// The same store, keeping a login history; the same as
    /// [`PostgresStore::with_login_history`](crate::PostgresStore::with_login_history) (the
    /// history table comes from `migrate()` on a SeaORM store with the history).
    pub fn with_login_history(
        self,
        retention: std::time::Duration,
    ) -> Result<Self, SeaOrmStoreError> {
        let table = super::history::history_table(&self, self.repository().table())?;
        let store = self.with_session_table(table);
        Ok(super::history::with_retention(store, retention))
    }

    /// The newest `limit` entries of `user`'s login history
    /// ([`with_login_history`](Self::with_login_history)), newest first: one indexed query.
    /// Fails with `InvalidConfiguration` when the store keeps no history.
    pub async fn user_history(
        &self,
        user: &str,
        limit: u64,
    ) -> Result<Vec<crate::SessionEvent>, SeaOrmStoreError> {
        super::history::user_history(self, user, limit).await
    }

    /// The same store, sending the cancel request for a timed-out statement through `tls`, the
    /// connector its pool was built with. A pool whose config says `sslmode=require` needs it:
    /// tokio-postgres then sends the cancel over TLS too, and cannot without a connector; the
    /// cancel fails (logged at `warn`) and the statement runs on. With `sslmode=prefer` (the
    /// default) or `disable`, the cancel goes in plain text, as libpq's `PQcancel` sends it.
    pub fn with_cancel_tls<T>(self, tls: T) -> Self
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + Sync,
        T::TlsConnect: Send + Sync,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let cancel_tls = CancelTls::with(tls);
        let repository = self.repository().clone().with_cancel_tls(cancel_tls);
        self.with_repository(repository)
    }

    /// The same store, serving loads from `cache`; the same rules as
    /// [`PostgresStore::with_cache`](crate::PostgresStore::with_cache). The triggers come from
    /// `migrate()` on a SeaORM store on the same table with a listening cache (see
    /// `docs/cache.md`).
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn with_cache(self, cache: crate::Cache) -> Result<Self, SeaOrmStoreError> {
        let table = self.repository().table().clone();
        super::cache::with_cache(self, cache, &table)
    }

    /// Clears every replica's read cache; the same as
    /// [`PostgresStore::clear_cache_everywhere`](crate::PostgresStore::clear_cache_everywhere):
    /// `NOTIFY tower_sessions_clear_caches` through the store's pool.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub async fn clear_cache_everywhere(&self) -> Result<(), SeaOrmStoreError> {
        super::cache::clear_caches(self).await
    }

    fn with_session_table(self, table: SessionTable) -> Self {
        let repository = self.repository().on_table(table.clone());
        self.with_repository(repository)
            .with_table_label(&table, Dialect::Postgres)
    }
}
