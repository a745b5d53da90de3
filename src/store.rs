//! The store: the domain service composed with the adapters, and the tower-sessions impls.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use tower_sessions_core::{
    session::{Id, Record},
    session_store, ExpiredDeletion, SessionStore,
};

#[cfg(feature = "msgpack")]
use crate::codec::MessagePackCodec;
use crate::{
    adapters::sea_orm::{MySql, Postgres, SeaOrmRepository, SessionTable, SqlDialect, Sqlite},
    cleanup::CleanupTask,
    domain::{Operation, ServicePolicy, SessionService},
    ports::{Codec, SessionRepository},
    SeaOrmStoreError,
};

/// The bound on [`RepositoryStore::migrate`].
#[cfg(feature = "migration")]
pub const MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A tower-sessions store over any [`SessionRepository`] and [`Codec`].
///
/// Most applications name it through [`PostgresStore`], [`SqliteStore`] or [`MySqlStore`] (or
/// `LeanPostgresStore`, feature `tokio-postgres`). Cloning is cheap: clones share the repository
/// (and so the connection pool) and the codec.
pub struct RepositoryStore<R, C> {
    service: SessionService<R, C>,
}

/// The PostgreSQL store on a SeaORM connection, MessagePack-encoded by default.
///
/// ```no_run
/// use tower_sessions::{Expiry, SessionManagerLayer};
/// use tower_sessions_seaorm_store::{sea_orm::Database, PostgresStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let store = PostgresStore::new(conn);
/// store.migrate().await?;
/// let layer = SessionManagerLayer::new(store)
///     .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
/// # Ok(()) }
/// ```
#[cfg(feature = "msgpack")]
pub type PostgresStore<C = MessagePackCodec> = RepositoryStore<SeaOrmRepository<Postgres>, C>;

/// The PostgreSQL store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(not(feature = "msgpack"))]
pub type PostgresStore<C> = RepositoryStore<SeaOrmRepository<Postgres>, C>;

/// The SQLite store on a SeaORM connection (feature `sqlite`), MessagePack-encoded by default.
///
/// The table is `session` in the connection's database: SQLite has no schemas, so
/// [`with_schema_name`](RepositoryStore::with_schema_name) is ignored.
///
/// ```no_run
/// use tower_sessions_seaorm_store::{sea_orm::Database, SqliteStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("sqlite://sessions.db?mode=rwc").await?;
/// let store = SqliteStore::new(conn);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "msgpack")]
pub type SqliteStore<C = MessagePackCodec> = RepositoryStore<SeaOrmRepository<Sqlite>, C>;

/// The SQLite store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(not(feature = "msgpack"))]
pub type SqliteStore<C> = RepositoryStore<SeaOrmRepository<Sqlite>, C>;

/// The MySQL and MariaDB store on a SeaORM connection (feature `mysql`), MessagePack-encoded by
/// default.
///
/// The table is `session` in the connection's database: a MySQL schema is a database, so
/// [`with_schema_name`](RepositoryStore::with_schema_name) is ignored.
///
/// ```no_run
/// use tower_sessions_seaorm_store::{sea_orm::Database, MySqlStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("mysql://root@127.0.0.1:3306/app").await?;
/// let store = MySqlStore::new(conn);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "msgpack")]
pub type MySqlStore<C = MessagePackCodec> = RepositoryStore<SeaOrmRepository<MySql>, C>;

/// The MySQL and MariaDB store on a SeaORM connection; enable feature `msgpack` for the default
/// codec.
#[cfg(not(feature = "msgpack"))]
pub type MySqlStore<C> = RepositoryStore<SeaOrmRepository<MySql>, C>;

#[cfg(feature = "tokio-postgres")]
mod lean;
#[cfg(feature = "tokio-postgres")]
pub use lean::LeanPostgresStore;

impl<R, C> Clone for RepositoryStore<R, C> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
        }
    }
}

impl<R: fmt::Debug, C: fmt::Debug> fmt::Debug for RepositoryStore<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryStore")
            .field("repository", self.service.repository())
            .field("codec", self.service.codec())
            .field("policy", &self.service.policy())
            .finish()
    }
}

#[cfg(feature = "msgpack")]
impl<B: SqlDialect> RepositoryStore<SeaOrmRepository<B>, MessagePackCodec> {
    /// A store on `conn` (the application's own SeaORM connection) using the default table
    /// (`"tower_sessions"."session"` on PostgreSQL, `session` on SQLite and MySQL) and the
    /// MessagePack codec.
    ///
    /// Never fails: a connection to another backend than the store's (a SQLite connection given
    /// to [`PostgresStore`], say) makes `migrate()` and every operation fail with an error
    /// naming both backends.
    pub fn new(conn: DatabaseConnection) -> Self {
        Self::from_parts(SeaOrmRepository::new(conn), MessagePackCodec)
    }
}

#[cfg(feature = "msgpack")]
impl<R: SessionRepository> RepositoryStore<R, MessagePackCodec> {
    /// A store over any `repository`, with the MessagePack codec: an
    /// [`InMemoryRepository`](crate::adapters::memory::InMemoryRepository), a
    /// [`FaultyRepository`](crate::adapters::faulty::FaultyRepository), the mock (feature
    /// `mock`), or your own. See [`testing`](crate::testing).
    pub fn from_repository(repository: R) -> Self {
        Self::from_parts(repository, MessagePackCodec)
    }
}

impl<B: SqlDialect, C: Codec> RepositoryStore<SeaOrmRepository<B>, C> {
    /// The same store with its sessions in schema `name` (default `tower_sessions`).
    ///
    /// PostgreSQL only: SQLite has no schemas, and a MySQL schema is a database, so on those
    /// backends the table lives in the connection's database and the name is ignored (still
    /// validated).
    ///
    /// Refuses names that are empty, longer than 63 bytes, start with a digit, or hold anything
    /// but ASCII letters, digits and underscores.
    pub fn with_schema_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        let table = self.repository().table().clone().with_schema(name)?;
        Ok(self.with_session_table(table))
    }

    /// The same store with its sessions in table `name` (default `session`); the same rules as
    /// [`with_schema_name`](Self::with_schema_name).
    pub fn with_table_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        let table = self.repository().table().clone().with_table(name)?;
        Ok(self.with_session_table(table))
    }

    /// The same store, whose [`migrate`](Self::migrate) creates the table hash-partitioned by
    /// id into `partitions` partitions (PostgreSQL 11+; 1 to
    /// [`MAX_HASH_PARTITIONS`](crate::migration::MAX_HASH_PARTITIONS)). Every operation works
    /// unchanged on it; see SCALING.md. An existing plain table is not converted: `migrate()`
    /// refuses it.
    #[cfg(feature = "migration")]
    pub fn with_hash_partitions(self, partitions: u16) -> Result<Self, SeaOrmStoreError> {
        if !(1..=crate::migration::MAX_HASH_PARTITIONS).contains(&partitions) {
            return Err(SeaOrmStoreError::InvalidConfiguration(format!(
                "{partitions} hash partitions: use 1 to {}",
                crate::migration::MAX_HASH_PARTITIONS
            )));
        }
        let table = self
            .repository()
            .table()
            .clone()
            .with_hash_partitions(partitions);
        Ok(self.with_session_table(table))
    }

    fn with_session_table(self, table: SessionTable) -> Self {
        let repository =
            SeaOrmRepository::with_table(self.repository().connection().clone(), table);
        Self {
            service: self.service.with_repository(repository),
        }
    }

    /// Creates the schema, the session table and its expiry index if they are missing, and
    /// records the migration in `"<schema>"."seaql_migrations_tower_sessions"` (SQLite, MySQL:
    /// `seaql_migrations_tower_sessions` in the connection's database).
    ///
    /// Safe to call from every replica at start-up at once: a replica that loses the race to
    /// create an object starts over and finds it there. Races are recognised by error code
    /// (PostgreSQL's and MySQL's SQLSTATE, SQLite's busy and locked codes), and no advisory lock
    /// is needed.
    ///
    /// Bounded by [`MIGRATE_TIMEOUT`] (60 s): DDL can wait for locks held by long transactions.
    #[cfg(feature = "migration")]
    pub async fn migrate(&self) -> Result<(), SeaOrmStoreError> {
        self.repository().check_backend()?;
        let migration = self.repository().migrate();
        match tokio::time::timeout(MIGRATE_TIMEOUT, migration).await {
            Ok(result) => result.map_err(|failure| SeaOrmStoreError::Migration {
                attempts: failure.attempts,
                message: failure.error.to_string(),
            }),
            Err(_elapsed) => Err(SeaOrmStoreError::TimedOut {
                operation: Operation::Migrate,
                after: MIGRATE_TIMEOUT,
            }),
        }
    }
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// A store over `repository`, encoding with `codec`.
    pub fn from_parts(repository: R, codec: C) -> Self {
        Self {
            service: SessionService::new(repository, codec),
        }
    }

    /// The same store encoding with `codec`.
    ///
    /// Rows written by another codec no longer decode (a Decode error): choose the codec before
    /// the first session is stored.
    pub fn with_codec<C2: Codec>(self, codec: C2) -> RepositoryStore<R, C2> {
        RepositoryStore {
            service: self.service.with_codec(codec),
        }
    }

    /// The longest one store operation may take (default 5 s, [`DEFAULT_OPERATION_TIMEOUT`](crate::DEFAULT_OPERATION_TIMEOUT));
    /// `None` waits as long as the database and its pool do.
    ///
    /// It bounds `create` (retries included), `save`, `load`, `delete`, each cleanup batch and
    /// [`health`](Self::health). Past it the operation fails with
    /// [`SeaOrmStoreError::TimedOut`] (a `Backend` error for tower-sessions) naming the
    /// operation and the limit. Without it, an operation waits for the pool's acquire timeout
    /// (30 s by default in sqlx) whenever the database is away, and requests pile up.
    pub fn with_operation_timeout(self, timeout: Option<Duration>) -> Self {
        let policy = ServicePolicy {
            operation_timeout: timeout,
            ..self.service.policy()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// Checks that the session table answers, for readiness probes: one indexed lookup of an id
    /// no session has, bounded by the operation timeout. Cheap enough to call every few seconds.
    ///
    /// The error says what failed: [`RepositoryError::Unavailable`] (cannot connect),
    /// [`RepositoryError::MissingTable`] (not migrated), [`SeaOrmStoreError::TimedOut`].
    ///
    /// [`RepositoryError::Unavailable`]: crate::ports::RepositoryError::Unavailable
    /// [`RepositoryError::MissingTable`]: crate::ports::RepositoryError::MissingTable
    pub async fn health(&self) -> Result<(), SeaOrmStoreError> {
        Ok(self.service.health().await?)
    }

    /// The largest encoded session `create` and `save` accept, in bytes (default: no limit but
    /// the database's). Beyond it they fail with [`SeaOrmStoreError::TooLarge`] (an `Encode`
    /// error for tower-sessions) giving the size, and nothing is sent to the database.
    pub fn with_max_session_size(self, bytes: Option<usize>) -> Self {
        let policy = ServicePolicy {
            max_encoded_size: bytes,
            ..self.service.policy()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// Whether `load` treats a row the codec cannot decode as no session (default `false`: a
    /// `Decode` error).
    ///
    /// With `true`, a corrupt, truncated or foreign row is logged at `warn` (codec, reason and
    /// size; never the data or the id) and the user simply gets a new session, instead of an
    /// error on every request until the row expires. The row stays until that new session's
    /// first save replaces it, or cleanup removes it.
    pub fn with_undecodable_as_absent(self, absent: bool) -> Self {
        let policy = ServicePolicy {
            undecodable_as_absent: absent,
            ..self.service.policy()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// How many fresh ids `create` tries when the id is taken (default 8, at least 1).
    pub fn with_create_attempts(self, attempts: u32) -> Self {
        let policy = ServicePolicy {
            max_create_attempts: attempts,
            ..self.service.policy()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// The most rows one cleanup statement deletes (default 10,000, at least 1). Smaller
    /// batches hold their locks for less time; cleanup runs batch after batch until none is left.
    pub fn with_cleanup_batch_size(self, rows: u64) -> Self {
        let policy = ServicePolicy {
            cleanup_batch_size: rows,
            ..self.service.policy()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// The repository the store writes to.
    pub fn repository(&self) -> &R {
        self.service.repository()
    }

    /// The codec the store encodes with.
    pub fn codec(&self) -> &C {
        self.service.codec()
    }

    /// The domain service behind the store.
    pub fn service(&self) -> &SessionService<R, C> {
        &self.service
    }

    /// Deletes every expired session, in batches, and returns how many it deleted.
    pub async fn delete_expired_sessions(&self) -> Result<u64, SeaOrmStoreError> {
        Ok(self.service.delete_expired().await?)
    }

    /// Spawns a task that deletes expired sessions every `period`, on the current Tokio runtime.
    ///
    /// The task survives database errors (it logs them and retries with a back-off) and stops
    /// when [`CleanupTask::shutdown`] is called.
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// let cleanup = store.spawn_cleanup_task(std::time::Duration::from_secs(60));
    /// // ... serve ...
    /// cleanup.shutdown().await;
    /// # }
    /// ```
    pub fn spawn_cleanup_task(&self, period: Duration) -> CleanupTask {
        CleanupTask::spawn(self.service.clone(), period)
    }
}

#[async_trait]
impl<R, C> SessionStore for RepositoryStore<R, C>
where
    R: SessionRepository + fmt::Debug,
    C: Codec + fmt::Debug,
{
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        Ok(self
            .service
            .create(record)
            .await
            .map_err(SeaOrmStoreError::from)?)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        Ok(self
            .service
            .save(record)
            .await
            .map_err(SeaOrmStoreError::from)?)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self
            .service
            .load(id)
            .await
            .map_err(SeaOrmStoreError::from)?)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        Ok(self
            .service
            .delete(id)
            .await
            .map_err(SeaOrmStoreError::from)?)
    }
}

#[async_trait]
impl<R, C> ExpiredDeletion for RepositoryStore<R, C>
where
    R: SessionRepository + fmt::Debug,
    C: Codec + fmt::Debug,
{
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.delete_expired_sessions().await?;
        Ok(())
    }
}
