//! `AddLongLived`, the eighth migration, on a populated table of the seventh: on PostgreSQL
//! (plain and hash-partitioned), SQLite and MariaDB/MySQL. The rows are kept and are
//! short-lived, the store then marks and serves long-lived sessions, running it again changes
//! nothing, and an application table beside it is left alone. (The table of the seventh
//! migration is made by dropping the column from a fully migrated one, with its rows in it.)

mod common;

use std::time::Duration as StdDuration;

use common::{
    mysql::MySqlFixture,
    partitioned::PartitionedFixture,
    sqlite::{connect_sqlite, file_url, remove_db_files, temp_db_path},
    unique_name, PgFixture,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        AddLongLived,
    },
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement},
    testing::ManualClock,
    Id, PostgresStore, Record, SessionStore,
};

const HOUR: StdDuration = StdDuration::from_secs(60 * 60);

async fn execute(conn: &DatabaseConnection, sql: &str) {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// `table` (quoted, qualified) is the store's session table; `schema` and `name` what the
/// migration is given.
async fn migrates_a_populated_table(
    store: &PostgresStore,
    conn: &DatabaseConnection,
    (schema, name, table): (&str, &str, &str),
) {
    let backend = conn.get_database_backend();
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let app = unique_name("app");
    let app_table = match backend {
        DbBackend::Postgres => format!("{}.{}", quote(schema), quote(&app)),
        _ => quote(&app),
    };
    execute(
        conn,
        &format!("CREATE TABLE {app_table} (id integer PRIMARY KEY, note text)"),
    )
    .await;
    execute(conn, &format!("INSERT INTO {app_table} VALUES (1, 'kept')")).await;

    let clock = ManualClock::at(OffsetDateTime::now_utc().replace_nanosecond(0).unwrap());
    let plain = store.clone().with_clock(clock.reader());
    let mut old = Vec::new();
    for n in 0..3 {
        let mut record = Record {
            id: Id::default(),
            data: [("n".to_owned(), json!(n))].into(),
            expiry_date: clock.now() + Duration::days(30),
        };
        plain.create(&mut record).await.unwrap();
        old.push(record);
    }
    execute(
        conn,
        &format!("ALTER TABLE {table} DROP COLUMN {}", quote("long_lived")),
    )
    .await;

    let manager = SchemaManager::new(conn);
    AddLongLived::new(schema, name).up(&manager).await.unwrap();
    AddLongLived::new(schema, name)
        .up(&manager)
        .await
        .expect("running it again changes nothing");

    let remembering = plain
        .with_absolute_lifetime(HOUR)
        .with_long_lived_sessions("remember_me", 24 * HOUR)
        .unwrap();
    let marked = count(
        conn,
        &format!("SELECT count(*) FROM {table} WHERE {}", quote("long_lived")),
    )
    .await;
    assert_eq!(marked, 0, "rows from before the migration are short-lived");
    let mut remembered = remembering.load(&old[0].id).await.unwrap().unwrap();
    remembered.data.insert("remember_me".into(), json!(true));
    remembering.save(&remembered).await.unwrap();

    clock.advance(HOUR + StdDuration::from_secs(1));
    assert!(remembering.load(&old[0].id).await.unwrap().is_some());
    for record in &old[1..] {
        assert_eq!(remembering.load(&record.id).await.unwrap(), None);
    }
    assert_eq!(remembering.delete_expired_sessions().await.unwrap(), 2);
    assert!(remembering.load(&old[0].id).await.unwrap().is_some());

    assert_eq!(
        count(
            conn,
            &format!("SELECT count(*) FROM {app_table} WHERE note = 'kept'")
        )
        .await,
        1,
        "the application's table is left alone"
    );
    execute(conn, &format!("DROP TABLE {app_table}")).await;
}

#[tokio::test]
async fn postgres_adds_the_marker_to_a_populated_table() {
    let fixture = PgFixture::new().await;
    let table = format!("\"{}\".\"session\"", fixture.schema);
    let names = (fixture.schema.as_str(), "session", table.as_str());
    migrates_a_populated_table(&fixture.store, &fixture.conn, names).await;
    fixture.finish().await;
}

#[tokio::test]
async fn postgres_adds_the_marker_to_a_populated_partitioned_table() {
    let fixture = PartitionedFixture::new().await;
    let table = format!("\"{}\".\"session\"", fixture.schema);
    let names = (fixture.schema.as_str(), "session", table.as_str());
    migrates_a_populated_table(&fixture.store, &fixture.conn, names).await;
    fixture.finish().await;
}

/// On one connection: SQLite's `DROP COLUMN` rewrites the table, and another connection of a
/// pool may still read the old schema (a production table never loses the column).
#[tokio::test]
async fn sqlite_adds_the_marker_to_a_populated_table() {
    let path = temp_db_path();
    let conn = connect_sqlite(&file_url(&path), 1).await;
    let store = PostgresStore::new(conn.clone());
    store.migrate().await.unwrap();
    let names = ("ignored", "session", "\"session\"");
    migrates_a_populated_table(&store, &conn, names).await;
    let _ = conn.close().await;
    remove_db_files(&path);
}

#[tokio::test]
async fn mysql_adds_the_marker_to_a_populated_table() {
    let fixture = MySqlFixture::new().await;
    let table = format!("`{}`", fixture.table);
    let names = ("ignored", fixture.table.as_str(), table.as_str());
    migrates_a_populated_table(&fixture.store, &fixture.conn, names).await;
    fixture.finish().await;
}
