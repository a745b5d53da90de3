//! A store given a connection to another backend than its own fails clearly, at `migrate()` and
//! at every operation, instead of sending it SQL it does not speak.

mod common;

use common::{connect_postgres, database_url, sqlite::connect_sqlite};
use tower_sessions_seaorm_store::{
    sea_orm::DatabaseConnection, session_store, Id, MySqlStore, PostgresStore, SeaOrmStoreError,
    SessionStore, SqliteStore,
};

async fn sqlite_memory() -> DatabaseConnection {
    connect_sqlite(
        &format!(
            "sqlite:file:{}?mode=memory&cache=shared",
            common::unique_name("ts_mismatch")
        ),
        1,
    )
    .await
}

/// Runs `migrate` and every operation on `store` and checks each error names `store_name` and
/// the connection's backend.
async fn assert_refused<S>(
    store: S,
    migrate: Result<(), SeaOrmStoreError>,
    store_name: &str,
    backend: &str,
) where
    S: SessionStore,
{
    let message = migrate.expect_err("migrate must refuse").to_string();
    assert!(message.contains(store_name), "{message}");
    assert!(message.contains(backend), "{message}");

    let mut rec = common::suite::record(common::suite::in_a_day());
    let errors = [
        store.create(&mut rec).await.unwrap_err(),
        store.save(&rec).await.unwrap_err(),
        store.load(&rec.id).await.unwrap_err(),
        store.delete(&Id::default()).await.unwrap_err(),
    ];
    for err in errors {
        match err {
            session_store::Error::Backend(message) => {
                assert!(message.contains(store_name), "{message}");
                assert!(message.contains(backend), "{message}");
            }
            other => panic!("expected a Backend error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_postgres_store_on_a_sqlite_connection_is_refused() {
    let store = PostgresStore::new(sqlite_memory().await);
    let migrate = store.migrate().await;
    assert_refused(store, migrate, "PostgresStore", "SQLite").await;
}

#[tokio::test]
async fn a_mysql_store_on_a_sqlite_connection_is_refused() {
    let store = MySqlStore::new(sqlite_memory().await);
    let migrate = store.migrate().await;
    assert_refused(store, migrate, "MySqlStore", "SQLite").await;
}

#[tokio::test]
async fn a_sqlite_store_on_a_postgres_connection_is_refused() {
    let store = SqliteStore::new(connect_postgres(&database_url()).await);
    let migrate = store.migrate().await;
    assert_refused(store, migrate, "SqliteStore", "PostgreSQL").await;
}
