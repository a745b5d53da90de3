//! The SeaORM store's own options: its table, its migration, its read cache.

#[cfg(feature = "msgpack")]
use sea_orm::DatabaseConnection;

#[cfg(feature = "msgpack")]
use crate::codec::MessagePackCodec;
use crate::{
    adapters::{sea_orm::SeaOrmRepository, sql::SessionTable},
    domain::RepositoryStore,
    ports::Codec,
    SeaOrmStoreError,
};

/// The bound on [`RepositoryStore::migrate`].
#[cfg(feature = "migration")]
pub(crate) const MIGRATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(feature = "msgpack")]
impl RepositoryStore<SeaOrmRepository, MessagePackCodec> {
    /// A store on `conn` (the application's own SeaORM connection) using the default table
    /// (`"tower_sessions"."session"` on PostgreSQL, `session` on SQLite and MySQL) and the
    /// MessagePack codec. The SQL is the connection's backend's.
    pub fn new(conn: DatabaseConnection) -> Self {
        let repository = SeaOrmRepository::with_table(conn, SessionTable::default());
        let (table, dialect) = (repository.table().clone(), repository.dialect());
        Self::from_parts(repository, MessagePackCodec).with_table_label(&table, dialect)
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
        if self.repository().table().distributed() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "hash partitions on a distributed table: Citus shards the table itself; \
                 choose one"
                    .to_owned(),
            ));
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
        if self.repository().dialect() != crate::adapters::sql::Dialect::Postgres {
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
        if self.repository().table().distributed() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "an UNLOGGED table distributed by Citus was not tried; choose one".to_owned(),
            ));
        }
        let table = self.repository().table().clone().with_unlogged();
        self.with_checked_table(table)
    }

    /// The same store, on a session table distributed by id over a
    /// [Citus](https://docs.citusdata.com) cluster: `migrate()` makes the table
    /// as on PostgreSQL, then distributes it (`create_distributed_table(…, 'id')`) when it is
    /// not yet. Citus refuses `FOR UPDATE` in a statement that reaches several shards, so
    /// there the cleanup picks its batches without row locks, and the per-user deletes (the
    /// limit's trim, log out everywhere) read the user's keys on every shard first, then delete
    /// them by key, each on the shard that holds it. A session's own operations name its id
    /// and run on one shard. Connect the store to the coordinator. See SCALING.md for the
    /// measurements and how to add a worker.
    ///
    /// Refused with hash partitions (Citus shards the table itself), with an `UNLOGGED` table
    /// (not tried on Citus), and with a listening cache (`Cache::listening`: its triggers' `NOTIFY`
    /// would fire on the workers, out of the listener's hearing). `migrate()` fails, saying so,
    /// where the database has no Citus extension.
    pub fn with_distributed_table(self) -> Result<Self, SeaOrmStoreError> {
        if self.repository().dialect() != crate::adapters::sql::Dialect::Postgres {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a distributed table is Citus's, a PostgreSQL extension: SQLite and MySQL have \
                 none"
                    .to_owned(),
            ));
        }
        let table = self.repository().table();
        #[cfg(feature = "migration")]
        if table.hash_partitions().is_some() || table.unlogged() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a distributed table with hash partitions or UNLOGGED: Citus shards the table \
                 itself, and neither was tried on it; choose the distributed table alone"
                    .to_owned(),
            ));
        }
        let table = table.clone().with_distributed();
        self.with_checked_table(table)
    }

    /// The same store on `table`, once its names are checked for the store's backend and, when
    /// the store can migrate, every name derived from them.
    fn with_checked_table(self, table: SessionTable) -> Result<Self, SeaOrmStoreError> {
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
        super::cache::with_cache(self, cache, &table)
    }

    /// The same store, keeping a **login history** (PostgreSQL, SQLite, MySQL/MariaDB): an
    /// append-only table beside the session table (`<table>_history`, created by `migrate()`)
    /// that every write of a session with a user appends to **in its own statement**, so an
    /// entry exists exactly when its change committed (on SQLite and MySQL/MariaDB, in its
    /// transaction): sign-ins, sign-outs, and each
    /// session's end and why
    /// ([`SessionEvent`](crate::SessionEvent)). [`user_history`](Self::user_history) lists them;
    /// the cleanup deletes the entries older than `retention`.
    ///
    /// Call it after [`with_user_key`](Self::with_user_key) (refused without it) and the
    /// table options, before `with_cache`. Refused on a distributed table, and for a table
    /// name over 46 bytes. Without it no statement
    /// changes. See `docs/login-history.md`.
    pub fn with_login_history(
        self,
        retention: std::time::Duration,
    ) -> Result<Self, SeaOrmStoreError> {
        let table = super::history::history_table(&self, self.repository().table())?;
        let store = self.with_checked_table(table)?;
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
        super::cache::clear_caches(self).await
    }

    fn with_session_table(self, table: SessionTable) -> Self {
        let repository =
            SeaOrmRepository::with_table(self.repository().connection().clone(), table.clone());
        let dialect = repository.dialect();
        self.with_repository(repository)
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
        // A listening cache's replicas depend on the eviction triggers.
        let triggers = self.cache.as_ref().is_some_and(|cache| !cache.is_local());
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
