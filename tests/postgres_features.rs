//! The features beyond the tower-sessions contract, checked where only PostgreSQL can show
//! them: no new row version for a no-op save, what a hashed table holds, and the second
//! migration on an existing table. (The spans are checked in `tracing_spans.rs`.)

mod common;

use std::time::Duration as StdDuration;

use common::{connect_postgres, database_url, scalar_strings, unique_name, PgFixture};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    migration::{sea_orm_migration::prelude::*, CreateSessionTable},
    repository::RepositoryError,
    sea_orm::{ConnectionTrait, Value},
    Id, PostgresStore, Record, SeaOrmStoreError, SessionStore,
};

fn record(user: &str) -> Record {
    Record {
        id: Id::default(),
        data: [("user_id".to_owned(), json!(user))].into(),
        expiry_date: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1),
    }
}

/// The row's current version: `xmin` changes with every write of the row, and only then.
async fn xmin(fixture: &PgFixture, stored_id: &str) -> String {
    let rows = scalar_strings(
        &fixture.conn,
        &format!("SELECT xmin::text FROM {} WHERE id = $1", fixture.table()),
        vec![Value::from(stored_id.to_owned())],
    )
    .await;
    rows.into_iter().next().expect("the row exists")
}

#[tokio::test]
async fn a_no_op_save_in_the_touch_window_writes_no_new_row_version() {
    let fixture = PgFixture::new().await;
    let store = fixture
        .store
        .clone()
        .with_touch_after(StdDuration::from_secs(60));
    let mut rec = record("ada");
    store.create(&mut rec).await.unwrap();
    let id = rec.id.to_string();
    let created = xmin(&fixture, &id).await;

    // What `with_always_save(true)` and a sliding expiry do on every request: load, save.
    let loaded = store.load(&rec.id).await.unwrap().expect("a live session");
    for seconds in [0, 5, 30, 59] {
        let mut again = loaded.clone();
        again.expiry_date = rec.expiry_date + Duration::seconds(seconds);
        store.save(&again).await.unwrap();
        assert_eq!(
            xmin(&fixture, &id).await,
            created,
            "+{seconds} s: nothing written"
        );
    }

    rec.expiry_date += Duration::seconds(61);
    store.save(&rec).await.unwrap();
    let touched = xmin(&fixture, &id).await;
    assert_ne!(touched, created, "past the window the expiry is written");

    rec.data.insert("cart".into(), json!(["tea"]));
    store.save(&rec).await.unwrap();
    assert_ne!(
        xmin(&fixture, &id).await,
        touched,
        "a changed value is written"
    );

    // Without write avoidance every save writes a row version.
    let before = xmin(&fixture, &id).await;
    fixture.store.save(&rec).await.unwrap();
    assert_ne!(xmin(&fixture, &id).await, before);
    fixture.finish().await;
}

#[tokio::test]
async fn a_hashed_table_holds_no_session_id() {
    let fixture = PgFixture::new().await;
    let store = fixture
        .store
        .clone()
        .with_hashed_ids()
        .with_user_key("user_id")
        .unwrap();
    let mut rec = record("ada");
    store.create(&mut rec).await.unwrap();

    let stored = scalar_strings(
        &fixture.conn,
        &format!("SELECT id FROM {}", fixture.table()),
        vec![],
    )
    .await;
    // What `printf '%s' "$id" | sha256sum` prints.
    let expected = scalar_strings(
        &fixture.conn,
        "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        vec![Value::from(rec.id.to_string())],
    )
    .await;
    assert_eq!(stored, expected);
    assert_eq!(stored[0].len(), 64);
    assert_ne!(stored[0], rec.id.to_string());
    assert!(store.load(&rec.id).await.unwrap().is_some());
    fixture.finish().await;
}

#[tokio::test]
async fn the_documented_update_moves_plain_rows_to_hashed_ids_without_logging_anyone_out() {
    let fixture = PgFixture::new().await;
    let mut recs = Vec::new();
    for user in ["ada", "bob"] {
        let mut rec = record(user);
        fixture.store.create(&mut rec).await.unwrap();
        recs.push(rec);
    }
    let hashed = fixture.store.clone().with_hashed_ids();
    assert_eq!(
        hashed.load(&recs[0].id).await.unwrap(),
        None,
        "not found before"
    );

    // The statement `with_hashed_ids`' docs give, on this test's table.
    fixture
        .conn
        .execute_unprepared(&format!(
            "UPDATE {} SET id = encode(sha256(convert_to(id, 'UTF8')), 'hex') \
             WHERE length(id) = 22",
            fixture.table()
        ))
        .await
        .unwrap();

    for rec in &recs {
        assert_eq!(
            crate::common::without_base(hashed.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec)
        );
    }
    fixture.finish().await;
}

/// A schema holding a session table made by the first migration only, as every table was
/// before the per-user index.
async fn table_from_the_first_migration(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
) -> String {
    let schema = unique_name("ts_old");
    CreateSessionTable::new(&schema, "session")
        .up(&SchemaManager::new(conn))
        .await
        .unwrap();
    schema
}

#[tokio::test]
async fn migrate_adds_the_user_index_to_an_existing_table_and_its_rows_still_load() {
    let conn = connect_postgres(&database_url()).await;
    let schema = table_from_the_first_migration(&conn).await;
    // A row written before: three columns only (as tower-sessions-sqlx-store writes them).
    let old = record("ada");
    conn.execute_raw(
        tower_sessions_seaorm_store::sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "INSERT INTO \"{schema}\".\"session\" (id, data, expiry_date) VALUES ($1, $2, $3)"
            ),
            [
                Value::from(old.id.to_string()),
                Value::from(rmp_serde::to_vec(&old).unwrap()),
                Value::from(old.expiry_date),
            ],
        ),
    )
    .await
    .unwrap();

    // Before the later migrations the statements name columns the table lacks: the readiness
    // probe, loads and writes all say so.
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_user_key("user_id")
        .unwrap();
    let err = store.health().await.unwrap_err();
    assert!(err.to_string().contains("not fully migrated"), "{err}");
    let err = store.load(&old.id).await.unwrap_err();
    assert!(
        err.to_string().contains("run the store's migration"),
        "{err}"
    );
    let mut early = record("ada");
    let err = tower_sessions_seaorm_store::SessionStore::create(&store, &mut early)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("run the store's migration"),
        "{err}"
    );

    // Eight replicas upgrading at once.
    common::migrate_concurrently(
        8,
        || {
            PostgresStore::new(conn.clone())
                .with_schema_name(&schema)
                .unwrap()
        },
        "the second migration",
    )
    .await;

    assert_eq!(
        crate::common::without_base(store.load(&old.id).await.unwrap()).as_ref(),
        Some(&old)
    );
    // An old row counts from the migration: a lifetime of an hour still loads it (from the
    // epoch it would be long outlived), a lifetime it has outlived since does not.
    let bounded = store
        .clone()
        .with_absolute_lifetime(std::time::Duration::from_secs(3600));
    assert_eq!(
        crate::common::without_base(bounded.load(&old.id).await.unwrap()).as_ref(),
        Some(&old)
    );
    assert!(
        store.user_sessions("ada").await.unwrap().is_empty(),
        "an old row has no user until its next save"
    );
    store.save(&old).await.unwrap();
    let listed = store.user_sessions("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    let migrated_at = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert!(listed[0].created_at > migrated_at, "{:?}", listed[0]);
    // Two seconds on: a lifetime of one second is over for the old row.
    let short = store
        .clone()
        .with_absolute_lifetime(std::time::Duration::from_secs(1))
        .with_clock(|| time::OffsetDateTime::now_utc() + time::Duration::seconds(2));
    assert_eq!(short.load(&old.id).await.unwrap(), None);
    let versions = scalar_strings(
        &conn,
        &format!(
            "SELECT version FROM \"{schema}\".seaql_migrations_tower_sessions ORDER BY version"
        ),
        vec![],
    )
    .await;
    assert_eq!(
        versions,
        [
            "session/m20261125_000001_create_session_table",
            "session/m20261125_000002_add_user_index",
            "session/m20261201_000003_exact_keys",
            "session/m20261202_000004_add_session_times",
            "session/m20261203_000005_insert_instant_defaults",
            "session/m20261204_000006_add_version",
            "session/m20261206_000008_add_long_lived"
        ]
    );
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_without_the_second_migration_is_reported_as_not_migrated() {
    let conn = connect_postgres(&database_url()).await;
    let schema = table_from_the_first_migration(&conn).await;
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    let err = store.save(&record("ada")).await.unwrap_err();
    assert!(err.to_string().contains("not fully migrated"), "{err}");
    // The typed error, through a call that needs the second migration's columns too.
    let typed = store
        .clone()
        .with_user_key("user_id")
        .unwrap()
        .delete_user_sessions("ada")
        .await
        .unwrap_err();
    assert!(
        matches!(
            typed,
            SeaOrmStoreError::Database(RepositoryError::MissingTable(_))
        ),
        "{typed:?}"
    );
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_with_write_avoidance_all_succeed_and_one_of_them_is_stored() {
    let fixture = PgFixture::new().await;
    let store = fixture
        .store
        .clone()
        .with_touch_after(StdDuration::from_secs(60))
        .with_user_key("user_id")
        .unwrap();
    let mut rec = record("ada");
    store.create(&mut rec).await.unwrap();

    // Half the writers change a value, half only move the expiry a little.
    let writers: Vec<_> = (0..32)
        .map(|n| {
            let (store, mut rec) = (store.clone(), rec.clone());
            tokio::spawn(async move {
                for round in 0..10 {
                    if n % 2 == 0 {
                        rec.data.insert("writer".into(), json!(n * 100 + round));
                    }
                    rec.expiry_date += Duration::milliseconds(1);
                    store.save(&rec).await?;
                }
                Ok::<_, tower_sessions_seaorm_store::session_store::Error>(rec)
            })
        })
        .collect();
    let mut finals = Vec::new();
    for writer in writers {
        finals.push(writer.await.unwrap().expect("every save succeeds"));
    }

    let stored = crate::common::without_base(store.load(&rec.id).await.unwrap())
        .expect("the session is there");
    assert!(
        finals.iter().any(|last| last.data == stored.data),
        "the stored values are some writer's last save"
    );
    assert_eq!(store.user_sessions("ada").await.unwrap().len(), 1);
    fixture.finish().await;
}
