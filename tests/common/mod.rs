//! Shared test setup: where the databases are, and stores in tables of their own so that tests
//! run in parallel without seeing each other's rows.
#![allow(dead_code)]

pub mod citus;
pub mod codecs;
pub mod demo_app;
pub mod events;
#[cfg(feature = "tokio-postgres")]
pub mod failover;
pub mod features;
#[cfg(feature = "tokio-postgres")]
pub mod lean;
pub mod log_capture;
pub mod long_lived;
pub mod memory;
pub mod mysql;
pub mod operators;
pub mod partitioned;
pub mod pgbouncer;
pub mod refuse;
pub mod replicas;
pub mod sqlite;
pub mod suite;
pub mod throwaway_pg;

use std::time::Duration;

use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::SessionRepository,
    sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection},
    Id, PostgresStore, RepositoryStore,
};

/// The first column of every row `sql` returns, as strings, on any backend.
pub async fn scalar_strings(
    conn: &DatabaseConnection,
    sql: &str,
    values: Vec<tower_sessions_seaorm_store::sea_orm::Value>,
) -> Vec<String> {
    let statement = tower_sessions_seaorm_store::sea_orm::Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    );
    conn.query_all_raw(statement)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// Runs `migrate()` on `replicas` stores built by `store` at once, as replicas starting together
/// would, and panics with `what` if any of them fails.
/// (One store type serves every backend: `SqliteStore` and `MySqlStore` are `PostgresStore`.)
pub async fn migrate_concurrently<F>(replicas: usize, store: F, what: &str)
where
    F: Fn() -> PostgresStore,
{
    let tasks: Vec<_> = (0..replicas)
        .map(|_| {
            let store = store();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("no migrate panicked")
            .unwrap_or_else(|err| panic!("{what}: a concurrent migrate failed: {err}"));
    }
}

/// An application's table under the session table's name (`table`, quoted as the backend
/// needs): `store.migrate()` refuses it, saying why, and leaves it as it was, rows and columns.
pub async fn migrate_refuses_an_application_table(
    store: &PostgresStore,
    conn: &DatabaseConnection,
    table: &str,
) {
    conn.execute_unprepared(&format!(
        "CREATE TABLE {table} (id integer PRIMARY KEY, topic varchar(64) NOT NULL)"
    ))
    .await
    .unwrap();
    conn.execute_unprepared(&format!(
        "INSERT INTO {table} (id, topic) VALUES (1, 'a conference session')"
    ))
    .await
    .unwrap();

    let err = store.migrate().await.unwrap_err().to_string();

    assert!(
        err.contains("is not a session table: it has no data, expiry_date column")
            && err.contains("Nothing was done"),
        "{err}"
    );
    assert_eq!(
        scalar_strings(conn, &format!("SELECT topic FROM {table}"), vec![]).await,
        ["a conference session"]
    );
    assert!(
        conn.execute_unprepared(&format!("SELECT user_key FROM {table}"))
            .await
            .is_err(),
        "no session column was added"
    );
}

/// A repository row with no user and no write avoidance.
pub fn row(
    id: &str,
    data: &[u8],
    expires_at: time::OffsetDateTime,
) -> tower_sessions_seaorm_store::repository::SessionRow {
    tower_sessions_seaorm_store::repository::SessionRow {
        created_at: time::OffsetDateTime::now_utc(),
        saved_at: time::OffsetDateTime::now_utc(),
        listed_values: None,
        id: id.to_owned(),
        data: data.to_vec(),
        expires_at,
        user_key: None,
        long_lived: false,
    }
}

/// The repository contract (`testing::check_repository_contract`, every method of the port) on
/// the repository of the store `$fixture` makes, in a table of its own.
///
/// `$fixture` is an async fn returning a value with a `store` field and an async `finish`.
#[macro_export]
macro_rules! repository_contract {
    ($fixture:expr) => {
        #[tokio::test]
        async fn the_repository_keeps_the_contract() {
            let fixture = $fixture.await;
            tower_sessions_seaorm_store::testing::check_repository_contract(
                fixture.store.repository(),
            )
            .await;
            fixture.finish().await;
        }
    };
}

/// `DATABASE_URL`, or the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection to the test PostgreSQL (a pool of 16), or a panic that says how to start one.
pub async fn connect_postgres(url: &str) -> DatabaseConnection {
    connect_postgres_with(url, 16).await
}

/// A connection to the test PostgreSQL with a pool of `connections`, or a panic that says how
/// to start one.
pub async fn connect_postgres_with(url: &str, connections: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "these tests need PostgreSQL at {url} (set DATABASE_URL to change it): {err}\n\
             start one with `scripts/test` (it starts or installs PostgreSQL, then runs the suite), \
             or `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        ),
    }
}

/// Waits until `store`'s read cache serves loads (its listener has heard its first heartbeat),
/// or panics after 10 s saying what to check; `name` says which replica.
pub async fn wait_until_serving<R: SessionRepository, C: Codec>(
    store: &RepositoryStore<R, C>,
    name: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.is_cache_serving() {
        assert!(
            std::time::Instant::now() < deadline,
            "replica {name}'s cache did not start serving within 10 s: is PostgreSQL at \
             DATABASE_URL reachable for LISTEN, and were the triggers installed?"
        );
        // Real time: the listener connects and its first heartbeat comes back over the network.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Drops a test's schema (and everything in it), then closes the connection.
pub async fn drop_schema(conn: DatabaseConnection, schema: &str) {
    conn.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
    let _ = conn.close().await;
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", Id::default().0 as u64)
}

/// A migrated store in a schema of its own, and how to drop it afterwards.
pub struct PgFixture {
    pub store: PostgresStore,
    pub conn: DatabaseConnection,
    pub schema: String,
    /// Where another pool on the same table connects (`replicas::Replicas`).
    pub url: String,
}

impl PgFixture {
    /// A fresh, migrated store at `DATABASE_URL`.
    pub async fn new() -> Self {
        Self::at(&database_url()).await
    }

    /// A fresh, migrated store on the database at `url`.
    pub async fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::on(connect_postgres(url).await).await
        }
    }

    /// A fresh, migrated store on `conn` (its replicas connect to `DATABASE_URL`).
    pub async fn on(conn: DatabaseConnection) -> Self {
        let schema = unique_name("ts_test");
        let store = PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .expect("a valid schema name");
        store.migrate().await.expect("migrate a fresh schema");
        Self {
            store,
            conn,
            schema,
            url: database_url(),
        }
    }

    /// The schema-qualified, quoted session table.
    pub fn table(&self) -> String {
        format!("\"{}\".\"session\"", self.schema)
    }

    /// Drops the test's schema.
    pub async fn finish(self) {
        drop_schema(self.conn, &self.schema).await;
    }
}

/// The store type the behavioural suite drives on every backend.
pub type SuiteStore = PostgresStore;

/// The reserved key under which `load` adds the base a save merges from
/// (docs/concurrent-requests.md).
pub const BASE_KEY: &str = "tower-sessions-seaorm-store:base";

/// A loaded record as the application stored it: without the base `load` adds, checked to be
/// there (every record `load` returns carries one).
pub fn without_base(
    loaded: Option<tower_sessions_seaorm_store::Record>,
) -> Option<tower_sessions_seaorm_store::Record> {
    loaded.map(|mut record| {
        assert!(
            record.data.remove(BASE_KEY).is_some(),
            "a loaded record carries its base"
        );
        record
    })
}
