//! Fixtures whose table a second store reaches through a pool of its own, as a second replica
//! of an application would: for the tests that race operations across pools.

use std::future::Future;

use tower_sessions_seaorm_store::{sea_orm::DatabaseConnection, PostgresStore, RepositoryStore};

use super::{
    connect_postgres, memory::MemoryFixture, mysql::MySqlFixture, partitioned::PartitionedFixture,
    sqlite::SqliteFixture, PgFixture,
};

/// A fixture with a store, and more stores on the same table through pools of their own.
pub trait Replicas {
    /// The store type, a `RepositoryStore`.
    type Store;

    /// The fixture's own store.
    fn store(&self) -> &Self::Store;

    /// Another store on the same table, through a new pool (the in-memory repository: the same
    /// rows).
    fn replica(&self) -> impl Future<Output = Self::Store>;

    /// How many of a load test's `rounds` (or operations) to run on this backend: all of them
    /// but on SQLite.
    fn rounds(&self, rounds: usize) -> usize {
        rounds
    }

    /// How many of a load test's concurrent `tasks` to run on this backend: all of them but on
    /// SQLite.
    fn tasks(&self, tasks: usize) -> usize {
        tasks
    }
}

/// `conn`'s store on the PostgreSQL table `"<schema>"."session"`.
fn postgres_store_in(conn: DatabaseConnection, schema: &str) -> PostgresStore {
    PostgresStore::new(conn)
        .with_schema_name(schema)
        .expect("a valid schema name")
}

impl Replicas for PgFixture {
    type Store = PostgresStore;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn replica(&self) -> PostgresStore {
        postgres_store_in(connect_postgres(&self.url).await, &self.schema)
    }
}

impl Replicas for PartitionedFixture {
    type Store = PostgresStore;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn replica(&self) -> PostgresStore {
        postgres_store_in(connect_postgres(&super::database_url()).await, &self.schema)
    }
}

impl Replicas for MySqlFixture {
    type Store = PostgresStore;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn replica(&self) -> PostgresStore {
        let conn = super::mysql::connect_mysql(&super::mysql::mysql_url()).await;
        tower_sessions_seaorm_store::MySqlStore::new(conn)
            .with_table_name(&self.table)
            .expect("a valid table name")
    }
}

impl Replicas for SqliteFixture {
    type Store = PostgresStore;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn replica(&self) -> PostgresStore {
        let conn = super::sqlite::connect_sqlite(self.url(), 8).await;
        tower_sessions_seaorm_store::SqliteStore::new(conn)
    }

    /// A fifth. SQLite writes one statement at a time, each taking the database's write lock
    /// before it reads, so there is no lock order to get wrong; and its writers wait for that
    /// lock by polling (sleeping up to 100 ms between tries), so 24 concurrent logins cost
    /// ~75 ms each here (3,000 took 225 s), against 1 ms on the servers.
    fn rounds(&self, rounds: usize) -> usize {
        rounds.div_ceil(5)
    }

    /// A quarter: with 16 tasks polling for the write lock, one of them can wait past the
    /// store's 5 s timeout (1 save in 2,000 did, on a loaded machine). SQLite serves one writer
    /// at a time; fewer, queued in the pool instead, wait their turn.
    fn tasks(&self, tasks: usize) -> usize {
        tasks.div_ceil(4)
    }
}

impl Replicas for MemoryFixture {
    type Store = super::memory::MemoryStore;

    fn store(&self) -> &super::memory::MemoryStore {
        &self.store
    }

    async fn replica(&self) -> super::memory::MemoryStore {
        RepositoryStore::from_repository(self.store.repository().clone())
    }
}

#[cfg(feature = "tokio-postgres")]
impl Replicas for super::lean::LeanFixture {
    type Store = tower_sessions_seaorm_store::LeanPostgresStore;

    fn store(&self) -> &tower_sessions_seaorm_store::LeanPostgresStore {
        &self.store
    }

    async fn replica(&self) -> tower_sessions_seaorm_store::LeanPostgresStore {
        tower_sessions_seaorm_store::LeanPostgresStore::new(super::lean::lean_pool(
            &super::database_url(),
        ))
        .with_schema_name(&self.schema)
        .expect("a valid schema name")
    }
}
