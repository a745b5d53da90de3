//! `with_unlogged_table()`: `migrate()` makes the PostgreSQL session table `UNLOGGED`, once,
//! also with replicas migrating at once; the store works on it; the option is refused where it
//! cannot hold.

mod common;

use common::{
    connect_postgres, database_url, migrate_concurrently, sqlite::SqliteFixture, unique_name,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    sea_orm::{ConnectionTrait, DatabaseConnection, Statement},
    Id, PostgresStore, Record, SeaOrmStoreError, SessionStore,
};

async fn persistence(conn: &DatabaseConnection, schema: &str) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT relpersistence::text FROM pg_class WHERE oid = '\"{schema}\".\"session\"'::regclass"
            ),
        ))
        .await
        .unwrap()
        .expect("the session table exists");
    row.try_get_by_index::<String>(0).unwrap()
}

#[tokio::test]
async fn migrate_makes_the_table_unlogged_once_even_with_replicas_racing() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_unlogged");
    let store = || {
        PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .unwrap()
            .with_unlogged_table()
            .unwrap()
    };
    migrate_concurrently(4, store, "unlogged").await;
    assert_eq!(persistence(&conn, &schema).await, "u");

    let store = store();
    let mut record = Record {
        id: Id::default(),
        data: [("n".to_owned(), json!(1))].into(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    store.create(&mut record).await.unwrap();
    record.data.insert("n".into(), json!(2));
    store.save(&record).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap().unwrap().data["n"], 2);

    // A store without the option leaves it as it is.
    PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .migrate()
        .await
        .unwrap();
    assert_eq!(persistence(&conn, &schema).await, "u");
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_existing_logged_table_becomes_unlogged_keeping_its_sessions() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_unlogged");
    let logged = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    logged.migrate().await.unwrap();
    assert_eq!(persistence(&conn, &schema).await, "p");
    let mut record = Record {
        id: Id::default(),
        data: [("n".to_owned(), json!(1))].into(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    logged.create(&mut record).await.unwrap();

    let unlogged = logged.clone().with_unlogged_table().unwrap();
    unlogged.migrate().await.unwrap();
    assert_eq!(persistence(&conn, &schema).await, "u");
    assert!(unlogged.load(&record.id).await.unwrap().is_some());
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn unlogged_is_refused_with_partitions_and_off_postgresql() {
    let conn = connect_postgres(&database_url()).await;
    let refusals = [
        PostgresStore::new(conn.clone())
            .with_hash_partitions(4)
            .unwrap()
            .with_unlogged_table()
            .unwrap_err(),
        PostgresStore::new(conn)
            .with_unlogged_table()
            .unwrap()
            .with_hash_partitions(4)
            .unwrap_err(),
        SqliteFixture::memory()
            .await
            .store
            .clone()
            .with_unlogged_table()
            .unwrap_err(),
    ];
    for err in refusals {
        assert!(
            matches!(&err, SeaOrmStoreError::InvalidConfiguration(m) if m.contains("UNLOGGED")),
            "{err}"
        );
    }
}
