//! `PostgresStore`, `SqliteStore` and `MySqlStore` are one store type, which speaks the SQL of
//! the connection it is given: whichever name a store is built with, it works on its connection's
//! backend, so no connection can be sent SQL it does not speak.

mod common;

use common::{connect_postgres, database_url, unique_name};
use tower_sessions_seaorm_store::{MySqlStore, PostgresStore, SessionStore, SqliteStore};

/// The three names are one type: a store built under one name is a store of the others.
const _: fn(PostgresStore) -> (SqliteStore, MySqlStore) = |store| (store.clone(), store);

async fn round_trip(store: PostgresStore) {
    store
        .migrate()
        .await
        .expect("migrate on the connection's backend");
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
        Some(&rec)
    );
    rec.data.insert("cart".into(), serde_json::json!(["tea"]));
    store.save(&rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );
    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_store_named_for_postgres_on_a_sqlite_connection_speaks_sqlite() {
    let url = format!(
        "sqlite:file:{}?mode=memory&cache=shared",
        unique_name("ts_follows")
    );
    let conn = common::sqlite::connect_sqlite(&url, 1).await;
    round_trip(PostgresStore::new(conn)).await;
}

#[tokio::test]
async fn a_store_named_for_mysql_on_a_postgres_connection_speaks_postgres() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_follows");
    round_trip(
        MySqlStore::new(conn.clone())
            .with_schema_name(&schema)
            .unwrap(),
    )
    .await;
    common::PgFixture {
        store: PostgresStore::new(conn.clone()),
        conn,
        schema,
        url: database_url(),
    }
    .finish()
    .await;
}

#[tokio::test]
async fn a_store_named_for_sqlite_on_a_mysql_connection_speaks_mysql() {
    let conn = common::mysql::connect_mysql(&common::mysql::mysql_url()).await;
    let table = unique_name("ts_follows");
    round_trip(
        SqliteStore::new(conn.clone())
            .with_table_name(&table)
            .unwrap(),
    )
    .await;
    common::mysql::drop_table(&conn, &table).await;
}
