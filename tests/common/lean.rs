//! Fixtures for the tokio-postgres repository (`LeanPostgresStore`): a deadpool on
//! `DATABASE_URL`, and a schema of its own created by the SeaORM store's `migrate()`.

use tower_sessions_seaorm_store::{
    deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod},
    sea_orm::DatabaseConnection,
    LeanPostgresStore, PostgresStore,
};

use super::{connect_postgres, database_url, unique_name};

/// A deadpool of 16 connections on the database at `url`.
pub fn lean_pool(url: &str) -> Pool {
    lean_pool_of(url, 16)
}

/// A deadpool of `size` connections on the database at `url`.
pub fn lean_pool_of(url: &str, size: usize) -> Pool {
    let config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|err| panic!("DATABASE_URL is not a PostgreSQL URL: {err}"));
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .expect("a deadpool with a Tokio runtime")
}

/// A lean store in a fresh, migrated schema; the SeaORM connection migrates and cleans up.
pub struct LeanFixture {
    pub store: LeanPostgresStore,
    pub conn: DatabaseConnection,
    pub schema: String,
}

impl LeanFixture {
    /// A fresh store at `DATABASE_URL`, its table made by `PostgresStore::migrate()`.
    pub async fn new() -> Self {
        let url = database_url();
        let conn = connect_postgres(&url).await;
        let schema = unique_name("ts_lean");
        PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .expect("a valid schema name")
            .migrate()
            .await
            .expect("migrate a fresh schema");
        let store = LeanPostgresStore::new(lean_pool(&url))
            .with_schema_name(&schema)
            .expect("a valid schema name");
        Self {
            store,
            conn,
            schema,
        }
    }

    /// Drops the test's schema.
    pub async fn finish(self) {
        self.store.repository().pool().close();
        super::drop_schema(self.conn, &self.schema).await;
    }
}
