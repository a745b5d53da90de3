//! A Citus cluster (a coordinator and two workers) that `scripts/test` starts when given
//! `CITUS_SOURCE` (`scripts/lib/citus.sh`): where it is (`CITUS_URL`), and stores on session
//! tables distributed over it, each in a schema of its own.

use tower_sessions_seaorm_store::{
    sea_orm::{ConnectionTrait, DatabaseConnection},
    PostgresStore,
};

use super::{connect_postgres, replicas::Replicas, unique_name};

/// How to run the Citus tests, for the messages that say they did not.
pub const HOW_TO_RUN: &str = "CITUS_SOURCE=../shared/engines/citus scripts/test --test \
                              citus_suite --test citus_rebalance (scripts/lib/citus.sh builds \
                              Citus from that folder's tarball and patch, starts a coordinator \
                              and two workers, and sets CITUS_URL)";

/// `CITUS_URL`, or a panic that says how to get one.
pub fn citus_url() -> String {
    std::env::var("CITUS_URL").unwrap_or_else(|_| {
        panic!(
            "these tests need a Citus coordinator at CITUS_URL (they were built with it set, \
             and it is not any more): {HOW_TO_RUN}"
        )
    })
}

/// A store on the coordinator whose `migrate()` distributes `"<schema>"."session"`.
pub fn distributed_store(conn: DatabaseConnection, schema: &str) -> PostgresStore {
    PostgresStore::new(conn)
        .with_schema_name(schema)
        .expect("a valid schema name")
        .with_distributed_table()
        .expect("a distributed table on PostgreSQL")
}

/// A store on a session table distributed over the cluster, made by the store's `migrate()`.
pub struct CitusFixture {
    pub store: PostgresStore,
    pub conn: DatabaseConnection,
    pub schema: String,
    pub url: String,
}

impl CitusFixture {
    pub async fn new() -> Self {
        let url = citus_url();
        let conn = connect_postgres(&url).await;
        let schema = unique_name("ts_citus");
        let store = distributed_store(conn.clone(), &schema);
        store
            .migrate()
            .await
            .expect("migrate a fresh distributed table");
        Self {
            store,
            conn,
            schema,
            url,
        }
    }

    /// The schema-qualified, quoted session table.
    pub fn table(&self) -> String {
        format!("\"{}\".\"session\"", self.schema)
    }

    /// How many shards of the session table each worker holds, by port.
    pub async fn shards_per_worker(&self) -> Vec<(i32, i64)> {
        let rows = self
            .conn
            .query_all_raw(
                tower_sessions_seaorm_store::sea_orm::Statement::from_sql_and_values(
                    self.conn.get_database_backend(),
                    "SELECT nodeport, count(*) FROM citus_shards WHERE table_name = $1::regclass \
                 GROUP BY 1 ORDER BY 1",
                    [self.table().into()],
                ),
            )
            .await
            .expect("list the shards");
        rows.iter()
            .map(|row| {
                (
                    row.try_get_by_index::<i32>(0).expect("a port"),
                    row.try_get_by_index::<i64>(1).expect("a count"),
                )
            })
            .collect()
    }

    /// Drops the test's schema (Citus drops the shards on the workers with it).
    pub async fn finish(self) {
        super::drop_schema(self.conn, &self.schema).await;
    }
}

impl Replicas for CitusFixture {
    type Store = PostgresStore;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn replica(&self) -> PostgresStore {
        distributed_store(connect_postgres(&self.url).await, &self.schema)
    }
}

/// The lean store (tokio-postgres) on a distributed table that the SeaORM store migrated.
#[cfg(feature = "tokio-postgres")]
pub struct LeanCitusFixture {
    pub store: tower_sessions_seaorm_store::LeanPostgresStore,
    pub citus: CitusFixture,
}

#[cfg(feature = "tokio-postgres")]
impl LeanCitusFixture {
    pub async fn new() -> Self {
        let citus = CitusFixture::new().await;
        let store = lean_store(&citus.url, &citus.schema);
        Self { store, citus }
    }

    pub async fn finish(self) {
        self.store.repository().pool().close();
        self.citus.finish().await;
    }
}

#[cfg(feature = "tokio-postgres")]
fn lean_store(url: &str, schema: &str) -> tower_sessions_seaorm_store::LeanPostgresStore {
    tower_sessions_seaorm_store::LeanPostgresStore::new(super::lean::lean_pool(url))
        .with_schema_name(schema)
        .expect("a valid schema name")
        .with_distributed_table()
        .expect("a distributed table")
}

#[cfg(feature = "tokio-postgres")]
impl Replicas for LeanCitusFixture {
    type Store = tower_sessions_seaorm_store::LeanPostgresStore;

    fn store(&self) -> &tower_sessions_seaorm_store::LeanPostgresStore {
        &self.store
    }

    async fn replica(&self) -> tower_sessions_seaorm_store::LeanPostgresStore {
        lean_store(&self.citus.url, &self.citus.schema)
    }
}

/// A name for a test's own schema, for tests that migrate by hand.
pub fn fresh_schema() -> String {
    unique_name("ts_citus")
}
