//! The store: the domain service composed with the adapters, and its builder. The
//! tower-sessions impls are driving adapters in [`crate::compat`].

use std::{fmt, time::Duration};

#[cfg(feature = "msgpack")]
use sea_orm::DatabaseConnection;

#[cfg(feature = "msgpack")]
use crate::codec::MessagePackCodec;
use crate::{
    adapters::sea_orm::Dialect,
    adapters::sea_orm::{SeaOrmRepository, SessionTable},
    cleanup::CleanupTask,
    domain::{
        IdStorage, ServicePolicy, SessionHandle, SessionId, SessionService, UserKeyPath,
        UserSession,
    },
    ports::{Codec, SessionRepository},
    SeaOrmStoreError,
};

/// The bound on [`RepositoryStore::migrate`].
#[cfg(feature = "migration")]
pub(crate) const MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A tower-sessions store over any [`SessionRepository`] and [`Codec`].
///
/// Most applications name it through `PostgresStore`, `SqliteStore` or `MySqlStore` (or
/// `LeanPostgresStore`, feature `tokio-postgres`). Cloning is cheap: clones share the repository
/// (and so the connection pool) and the codec.
pub struct RepositoryStore<R, C> {
    service: SessionService<R, C>,
}

/// The store on a SeaORM connection: PostgreSQL, SQLite or MySQL/MariaDB, whichever the
/// connection is to (the SQL follows the connection). `PostgresStore`, `SqliteStore` and
/// `MySqlStore` are its names, one per backend feature.
type SeaOrmStore<C> = RepositoryStore<SeaOrmRepository, C>;

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
///
/// `PostgresStore`, `SqliteStore` and `MySqlStore` are one type: the store speaks the SQL of
/// the connection it is given.
#[cfg(all(feature = "postgres", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub type PostgresStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The PostgreSQL store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(all(feature = "postgres", not(feature = "msgpack")))]
pub type PostgresStore<C> = SeaOrmStore<C>;

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
#[cfg(all(feature = "sqlite", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub type SqliteStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The SQLite store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(all(feature = "sqlite", not(feature = "msgpack")))]
pub type SqliteStore<C> = SeaOrmStore<C>;

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
#[cfg(all(feature = "mysql", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub type MySqlStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The MySQL and MariaDB store on a SeaORM connection; enable feature `msgpack` for the default
/// codec.
#[cfg(all(feature = "mysql", not(feature = "msgpack")))]
pub type MySqlStore<C> = SeaOrmStore<C>;

#[cfg(feature = "cache")]
mod cache;
#[cfg(feature = "cache")]
pub use cache::Cache;
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
impl RepositoryStore<SeaOrmRepository, MessagePackCodec> {
    /// A store on `conn` (the application's own SeaORM connection) using the default table
    /// (`"tower_sessions"."session"` on PostgreSQL, `session` on SQLite and MySQL) and the
    /// MessagePack codec. The SQL is the connection's backend's.
    pub fn new(conn: DatabaseConnection) -> Self {
        let store = Self::from_parts(
            SeaOrmRepository::with_table(conn, SessionTable::default()),
            MessagePackCodec,
        );
        let (table, dialect) = (
            store.repository().table().clone(),
            store.repository().dialect(),
        );
        store.with_table_label(&table, dialect)
    }
}

#[cfg(feature = "msgpack")]
impl<R: SessionRepository> RepositoryStore<R, MessagePackCodec> {
    /// A store over any `repository`, with the MessagePack codec: one of the testing kit's
    /// (`InMemoryRepository`, `FaultyRepository`, the mock; module `testing`, feature
    /// `testing`), or your own.
    pub fn from_repository(repository: R) -> Self {
        Self::from_parts(repository, MessagePackCodec)
    }
}

impl<C: Codec> RepositoryStore<SeaOrmRepository, C> {
    /// The same store with its sessions in schema `name` (default `tower_sessions`).
    ///
    /// PostgreSQL only: SQLite has no schemas, and a MySQL schema is a database, so on those
    /// backends the table lives in the connection's database and the name is ignored (still
    /// validated).
    ///
    /// Refuses names that are empty, longer than 63 bytes, start with a digit, or hold anything
    /// but ASCII letters, digits and underscores.
    pub fn with_schema_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        #[cfg(feature = "cache")]
        self.refuse_if_cached("`with_schema_name`")?;
        let table = self.repository().table().clone().with_schema(name)?;
        Ok(self.with_session_table(table))
    }

    /// The same store with its sessions in table `name` (default `session`); the same rules as
    /// [`with_schema_name`](Self::with_schema_name), and two more:
    ///
    /// - On SQLite the name must be lowercase: SQLite ignores case in names,
    ///   so stores on `Sessions` and `sessions` would share one table.
    /// - Every name derived from it (its indexes, partitions, and the row and array types
    ///   PostgreSQL makes for each table) must fit in PostgreSQL's 63 bytes and be distinct
    ///   (feature `migration`; see [`check_names`](crate::migration::check_names)). This holds
    ///   for every valid name but `_` 63 times, and a name equal to the migration history
    ///   table's; the error says what to rename or shorten.
    pub fn with_table_name(self, name: &str) -> Result<Self, SeaOrmStoreError> {
        let table = self.repository().table().clone().with_table(name)?;
        self.with_checked_table(table)
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
        if self.repository().table().unlogged() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "hash partitions with an UNLOGGED table: PostgreSQL cannot make a partitioned \
                 table unlogged; choose one"
                    .to_owned(),
            ));
        }
        let table = self
            .repository()
            .table()
            .clone()
            .with_hash_partitions(partitions);
        self.with_checked_table(table)
    }

    /// The same store, whose [`migrate`](Self::migrate) makes the session table `UNLOGGED`
    /// (PostgreSQL only): its writes skip the write-ahead log, so a create or save no longer
    /// waits for a WAL flush, at a price: **after a crash (not a clean restart) PostgreSQL
    /// empties the table**, logging everyone out, and the table is **not replicated** to
    /// standbys (after a fail-over, no sessions). See `docs/operations.md` for the numbers and
    /// the milder `synchronous_commit = off`.
    ///
    /// An existing logged table is rewritten once, under an exclusive lock (seconds for a
    /// large table). A store without this option never changes it back: `ALTER TABLE … SET
    /// LOGGED` does. Refused with hash partitions.
    #[cfg(feature = "migration")]
    pub fn with_unlogged_table(self) -> Result<Self, SeaOrmStoreError> {
        if self.repository().dialect() != Dialect::Postgres {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "an UNLOGGED table is PostgreSQL's: SQLite and MySQL have none".to_owned(),
            ));
        }
        if self.repository().table().hash_partitions().is_some() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "an UNLOGGED table with hash partitions: PostgreSQL cannot make a partitioned \
                 table unlogged; choose one"
                    .to_owned(),
            ));
        }
        let table = self.repository().table().clone().with_unlogged();
        self.with_checked_table(table)
    }

    /// The same store on `table`, once its names are checked for the store's backend and, when
    /// the store can migrate, every name derived from them.
    fn with_checked_table(self, table: SessionTable) -> Result<Self, SeaOrmStoreError> {
        #[cfg(feature = "cache")]
        self.refuse_if_cached("a table option")?;
        table.check_for(self.repository().dialect())?;
        #[cfg(feature = "migration")]
        crate::migration::check_names(table.table(), table.hash_partitions())
            .map_err(|err| SeaOrmStoreError::InvalidConfiguration(err.to_string()))?;
        Ok(self.with_session_table(table))
    }

    /// The same store, serving loads from `cache` (feature `cache`; see [`Cache`](crate::Cache)):
    /// call it after the table options. A listening cache needs PostgreSQL and a Tokio runtime
    /// (its listener starts here), and [`migrate`](Self::migrate) to have installed its
    /// triggers; until they are there, it logs why and does not serve.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn with_cache(self, cache: crate::Cache) -> Result<Self, SeaOrmStoreError> {
        let table = self.repository().table().clone();
        #[cfg(feature = "postgres")]
        let heartbeat = self.repository().send_heartbeat();
        #[cfg(not(feature = "postgres"))]
        let heartbeat = None;
        self.with_cache_on(cache, &table, heartbeat)
    }

    /// Clears every replica's read cache (feature `cache`): after the session table was
    /// changed by hand, or whenever every session must be read from the database again.
    ///
    /// On PostgreSQL it sends `NOTIFY tower_sessions_clear_caches` through the store's pool
    /// (PgBouncer included), the statement an operator can also run in `psql`: every listening
    /// cache on this database (every replica, every session table) clears itself when the
    /// notification arrives, usually within a millisecond and at the latest within its
    /// staleness bound; this store's own cache is cleared before this returns. A store without
    /// a cache sends it too, so an administration tool clears the application's replicas. On
    /// SQLite and MySQL, which have no `NOTIFY`, only this store's own cache is cleared.
    ///
    /// Fails when the database cannot be reached (this store's cache is cleared even then).
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub async fn clear_cache_everywhere(&self) -> Result<(), SeaOrmStoreError> {
        self.clear_own_cache();
        #[cfg(feature = "postgres")]
        if self.repository().dialect() == Dialect::Postgres {
            use crate::{adapters::sql::eviction::CLEAR_SQL, ports::RepositoryError};
            use sea_orm::{ConnectionTrait, DbErr};
            let sent = self
                .repository()
                .connection()
                .execute_unprepared(CLEAR_SQL)
                .await;
            sent.map_err(|err| match err {
                DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                    RepositoryError::Unavailable(err.to_string())
                }
                _ => RepositoryError::Statement(err.to_string()),
            })?;
        }
        Ok(())
    }

    fn with_session_table(self, table: SessionTable) -> Self {
        let repository =
            SeaOrmRepository::with_table(self.repository().connection().clone(), table.clone());
        let dialect = repository.dialect();
        Self {
            service: self.service.with_repository(repository),
        }
        .with_table_label(&table, dialect)
    }

    /// Creates the schema, the session table and its expiry index if they are missing, and
    /// records the migration in `"<schema>"."seaql_migrations_tower_sessions"` (SQLite, MySQL:
    /// `seaql_migrations_tower_sessions` in the connection's database).
    ///
    /// Safe to call from every replica at start-up at once: a replica that loses the race to
    /// create an object starts over and finds it there. Races are recognised by error code
    /// (PostgreSQL's and MySQL's SQLSTATE, SQLite's busy and locked codes), and no advisory lock
    /// is needed. A table of another kind under the session table's name is refused, not altered.
    ///
    /// Bounded by 60 s: DDL can wait for locks held by long transactions.
    ///
    /// With a listening `Cache` (feature `cache`), it also installs (again) the
    /// eviction triggers its listeners depend on: see `docs/cache.md`.
    #[cfg(feature = "migration")]
    pub async fn migrate(&self) -> Result<(), SeaOrmStoreError> {
        #[cfg(feature = "cache")]
        let triggers = self.cache_listens();
        #[cfg(not(feature = "cache"))]
        let triggers = false;
        let migration = self.repository().migrate(triggers);
        match tokio::time::timeout(MIGRATE_TIMEOUT, migration).await {
            Ok(result) => result.map_err(|failure| SeaOrmStoreError::Migration {
                attempts: failure.attempts,
                message: failure.error.to_string(),
            }),
            Err(_elapsed) => Err(SeaOrmStoreError::TimedOut {
                operation: crate::domain::Operation::Migrate,
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

    /// The longest one store operation may take (default 5 s);
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
            ..self.service.policy().clone()
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
    /// [`RepositoryError::Unavailable`]: crate::repository::RepositoryError::Unavailable
    /// [`RepositoryError::MissingTable`]: crate::repository::RepositoryError::MissingTable
    pub async fn health(&self) -> Result<(), SeaOrmStoreError> {
        self.service.health().await
    }

    /// The largest encoded session the store writes or reads, in bytes (default 1 MiB:
    /// far beyond what an application means to keep per visitor, and a bound on what one `load`
    /// may decode; `None`: no limit but the database's).
    ///
    /// Beyond it `create` and `save` fail with [`SeaOrmStoreError::TooLarge`] (an `Encode`
    /// error for tower-sessions) giving the size, and nothing is sent to the database; `load`
    /// refuses a larger stored row before decoding it ([`SeaOrmStoreError::Unreadable`], a
    /// `Decode` error, or no session with
    /// [`with_undecodable_as_absent`](Self::with_undecodable_as_absent)), so a row written by
    /// another tool cannot make one request decode gigabytes.
    pub fn with_max_session_size(self, bytes: Option<usize>) -> Self {
        let policy = ServicePolicy {
            max_encoded_size: bytes,
            ..self.service.policy().clone()
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
            ..self.service.policy().clone()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// How many fresh ids `create` tries when the id is taken (default 8, at least 1).
    pub fn with_create_attempts(self, attempts: u32) -> Self {
        let policy = ServicePolicy {
            max_create_attempts: attempts,
            ..self.service.policy().clone()
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
            ..self.service.policy().clone()
        };
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// The same store naming `table` in its spans.
    pub(crate) fn with_table_label(self, table: &SessionTable, dialect: Dialect) -> Self {
        Self {
            service: self.service.with_table_label(table.label(dialect)),
        }
    }

    fn with_policy(self, policy: ServicePolicy) -> Self {
        Self {
            service: self.service.with_policy(policy),
        }
    }

    /// The same store keeping a **per-user index**: every create and save stores the session's
    /// user, read from the session value `path`, beside the row, so that a user's sessions can
    /// be listed ([`user_sessions`](Self::user_sessions)) and ended
    /// ([`delete_user_sessions`](Self::delete_user_sessions),
    /// [`delete_user_sessions_except`](Self::delete_user_sessions_except),
    /// [`delete_user_session`](Self::delete_user_session)): "log out everywhere", "log out my
    /// other devices", "sign out that device".
    ///
    /// `path` is a session key (`"user_id"`), or a JSON Pointer when it starts with `/`
    /// (`"/axum-login.data/user_id"` for axum-login 0.18, whose default data key is
    /// `axum-login.data`). The value found becomes the user key: a string as it is, a number in
    /// decimal, a boolean as `true`/`false`, an array or object as compact JSON; a missing value
    /// or `null` means no user. A session
    /// without that value (anonymous, or logged out) has no user and leaves its user's list at
    /// its next save. The table needs the second migration (`migrate()` runs it).
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// let store = store.with_user_key("user_id")?;
    /// store.migrate().await?;
    /// for session in store.user_sessions("42").await? {
    ///     println!("{} expires at {}", session.handle, session.expiry_date);
    /// }
    /// store.delete_user_sessions("42").await?; // log user 42 out everywhere
    /// # Ok(()) }
    /// ```
    pub fn with_user_key(self, path: &str) -> Result<Self, SeaOrmStoreError> {
        let path = UserKeyPath::new(path)
            .map_err(|err| SeaOrmStoreError::InvalidConfiguration(err.to_string()))?;
        let policy = ServicePolicy {
            user_key: Some(path),
            ..self.service.policy().clone()
        };
        Ok(self.with_policy(policy))
    }

    /// The same store with **write avoidance**: a save whose session values did not change and
    /// whose new expiry is less than `window` after the stored one writes nothing.
    ///
    /// Decided by the database inside the save's single statement (an `UPDATE … WHERE` that
    /// matches no row when nothing worth writing changed), against a SHA-256 of the values kept
    /// beside the row: no read first, and no new row version for a no-op save.
    /// Worth it with `SessionManagerLayer::with_always_save(true)` or a short
    /// `Expiry::OnInactivity`, which otherwise rewrite every session on every request.
    ///
    /// The trade-off: a session's stored expiry can lag its true expiry by up to `window`, so
    /// an inactive session may expire up to `window` early. Keep `window` a small fraction of
    /// the inactivity timeout (a minute for a day). A change of any value, or a shorter expiry,
    /// is always written. The table needs the second migration (`migrate()` runs it).
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// let store = store.with_touch_after(std::time::Duration::from_secs(60));
    /// # }
    /// ```
    pub fn with_touch_after(self, window: Duration) -> Self {
        let policy = ServicePolicy {
            touch_after: Some(window),
            ..self.service.policy().clone()
        };
        self.with_policy(policy)
    }

    /// The same store keeping **ids hashed at rest**: the table's `id` column holds the
    /// lowercase hex SHA-256 of each session id instead of the id, and the encoded record in
    /// `data` holds no id (the store writes a zero id and restores the real one from the key it
    /// looked up), so a leaked table or backup cannot be used to take over sessions. Every
    /// operation works the same, the per-user index too.
    ///
    /// What a hashed table still reveals: every session's values (encrypt them if they are
    /// sensitive), its expiry, its user key (per-user index), how many sessions there are and
    /// their sizes. Rows written before hashing was switched on keep their id in `data` until
    /// their next save rewrites them.
    ///
    /// The trade-off: rows written without it are not found with it (their users are logged
    /// out once), and the other way round. To switch without logging anyone out, convert the
    /// table in the same deploy, e.g. on PostgreSQL:
    ///
    /// ```sql
    /// UPDATE tower_sessions.session SET id = encode(sha256(convert_to(id, 'UTF8')), 'hex')
    /// WHERE length(id) = 22;
    /// ```
    ///
    /// (MySQL and MariaDB: ``UPDATE `session` SET id = SHA2(id, 256) WHERE CHAR_LENGTH(id) =
    /// 22``; SQLite has no SHA-256 built in: let the sessions expire, or convert them from the
    /// application.) Hashing costs about a microsecond per operation.
    pub fn with_hashed_ids(self) -> Self {
        let policy = ServicePolicy {
            id_storage: IdStorage::Hashed,
            ..self.service.policy().clone()
        };
        self.with_policy(policy)
    }

    /// The same store with an **absolute session lifetime**: a session created more than
    /// `lifetime` ago is never loaded (the request gets a fresh, empty session) nor listed,
    /// however active it is, and the cleanup deletes it. tower-sessions' `Expiry` is either an
    /// idle timeout or a fixed date; with `Expiry::OnInactivity` an active session otherwise
    /// lives forever (OWASP ASVS 5.0 §7.3.2 asks for both).
    ///
    /// The creation instant is written by `create` only, never by `save`. A new id is a new
    /// session: `Session::cycle_id`, as axum-login calls at login, starts a new lifetime, so a
    /// lifetime is a bound on one login. Sessions stored before the fourth migration
    /// ([`AddSessionTimes`](crate::migration::AddSessionTimes); `migrate()` runs it) count from
    /// the migration; rows another writer inserts later without a `created_at` count from their
    /// insert ([`InsertInstantDefaults`](crate::migration::InsertInstantDefaults)). Still one
    /// statement per load and per cleanup batch.
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// use std::time::Duration;
    /// // Idle timeout: tower-sessions' Expiry::OnInactivity; absolute: 12 hours.
    /// let store = store.with_absolute_lifetime(Duration::from_secs(12 * 60 * 60));
    /// # }
    /// ```
    pub fn with_absolute_lifetime(self, lifetime: Duration) -> Self {
        let policy = ServicePolicy {
            absolute_lifetime: Some(lifetime),
            ..self.service.policy().clone()
        };
        self.with_policy(policy)
    }

    /// The same store with a **limit on each user's concurrent sessions**: after a create or a
    /// save that gives a user more than `sessions` live sessions, the user's least recently
    /// active ones (by last save) are ended, so no user has more than `sessions` once every
    /// such save has returned, also when one user logs in from many devices at once (OWASP
    /// ASVS 5.0 §7.1.2).
    ///
    /// Only live sessions count: one past its expiry or its absolute lifetime
    /// ([`with_absolute_lifetime`](Self::with_absolute_lifetime)) takes no slot, and is left to
    /// the cleanup.
    ///
    /// Needs the per-user index: call [`with_user_key`](Self::with_user_key) first. Costs one
    /// more statement (two on MySQL/MariaDB) for the creates and saves that set or change a
    /// session's user (a login), nothing for the others: on PostgreSQL and MySQL the save
    /// reports a change of user within its own statement. SQLite cannot, so there every save
    /// it writes with a user is followed by the trim, which ends nothing unless the user is
    /// over the limit (one more statement, in process). A session ended this way is gone at
    /// its device's next request, as after "log out my other devices".
    ///
    /// The trim never deadlocks with other logins, logouts or saves (it locks the sessions it
    /// ends by key, in key order, after choosing them without locking), and never fails the
    /// login it follows: it runs after the session is stored, bounded by its own operation
    /// timeout, and if it fails the login stands, a warning is logged, and the user keeps more
    /// sessions until their next login trims again.
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let store = store.with_user_key("user_id")?.with_max_sessions_per_user(5)?;
    /// # Ok(()) }
    /// ```
    pub fn with_max_sessions_per_user(self, sessions: u64) -> Result<Self, SeaOrmStoreError> {
        if sessions == 0 {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a per-user session limit of 0 would end every login: give at least 1".to_owned(),
            ));
        }
        if self.service.policy().user_key.is_none() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a per-user session limit needs the per-user index: call \
                 `.with_user_key(\"user_id\")` before `.with_max_sessions_per_user(n)`"
                    .to_owned(),
            ));
        }
        let policy = ServicePolicy {
            max_sessions_per_user: Some(sessions),
            ..self.service.policy().clone()
        };
        Ok(self.with_policy(policy))
    }

    /// The same store copying the session values named by `paths` beside each session, so
    /// that its user's list ([`user_sessions`](Self::user_sessions)) shows them in
    /// [`UserSession::listed`]: what a person needs to recognise a device ("Firefox on
    /// Linux", the city or address it signed in from). Each path is a session key or a JSON
    /// Pointer, as in [`with_user_key`](Self::with_user_key).
    ///
    /// The values are copied as they are at each write, as JSON (at most 4096 bytes per
    /// session, else the write fails with [`SeaOrmStoreError::Unstorable`]), in plain text
    /// whatever the codec: list what the list shows, nothing secret.
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let store = store
    ///     .with_user_key("user_id")?
    ///     .with_listed_values(["device", "signed_in_from"])?;
    /// for device in store.user_sessions("42").await? {
    ///     let name = device.listed.get("device").and_then(|v| v.as_str()).unwrap_or("A device");
    ///     println!("{name} · signed in {} · active {}", device.created_at, device.last_active);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_listed_values<I, S>(self, paths: I) -> Result<Self, SeaOrmStoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let listed_values = paths
            .into_iter()
            .map(|path| UserKeyPath::new(path.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                SeaOrmStoreError::InvalidConfiguration(format!("a listed value's {err}"))
            })?;
        let policy = ServicePolicy {
            listed_values,
            ..self.service.policy().clone()
        };
        Ok(self.with_policy(policy))
    }

    /// The live sessions of `user` (per-user index, see [`with_user_key`](Self::with_user_key)),
    /// most recently active first: one indexed query. Each comes with a
    /// [`SessionHandle`](crate::SessionHandle) that is safe to show and to send back, never its
    /// id, when it was created and last active, and its listed values
    /// ([`with_listed_values`](Self::with_listed_values)).
    ///
    /// Fails with [`SeaOrmStoreError::InvalidConfiguration`] when the store keeps no index.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>, SeaOrmStoreError> {
        self.service.user_sessions(user).await
    }

    /// Deletes every session of `user`, expired or not ("log out everywhere"), and returns how
    /// many: one statement.
    ///
    /// Each device finds its session gone at its next request. A cache in front of the store
    /// (tower-sessions' `CachingSessionStore`) keeps serving its copy until the entry expires
    /// there.
    pub async fn delete_user_sessions(&self, user: &str) -> Result<u64, SeaOrmStoreError> {
        self.service.delete_user_sessions(user).await
    }

    /// Deletes every session of `user` but `current` ("log out my other devices"), and returns
    /// how many: one statement. `current` is the id of the request's session
    /// (`session.id()`); tower-sessions 0.14's `Id` works too with feature
    /// `tower-sessions-014`.
    pub async fn delete_user_sessions_except(
        &self,
        user: &str,
        current: impl Into<SessionId>,
    ) -> Result<u64, SeaOrmStoreError> {
        self.service
            .delete_user_sessions_except(user, current.into())
            .await
    }

    /// Deletes the session of `user` listed with `handle` ("sign out that device"); `false`
    /// when `user` has no live session with that handle (a handle of another user's session
    /// deletes nothing).
    pub async fn delete_user_session(
        &self,
        user: &str,
        handle: &SessionHandle,
    ) -> Result<bool, SeaOrmStoreError> {
        self.service.delete_user_session(user, handle).await
    }

    /// The handle [`user_sessions`](Self::user_sessions) shows for the session `id`: compare
    /// to mark the current session in a list.
    pub fn session_handle(&self, id: impl Into<SessionId>) -> SessionHandle {
        self.service.session_handle(id.into())
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
    pub(crate) fn service(&self) -> &SessionService<R, C> {
        &self.service
    }

    /// Deletes every expired session, in batches, and returns how many it deleted.
    pub async fn delete_expired_sessions(&self) -> Result<u64, SeaOrmStoreError> {
        self.service.delete_expired().await
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
