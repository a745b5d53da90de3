//! SQLite specifics: the table's shape, how expiry is stored, concurrent migrations on one file,
//! and what the schema name means.

mod common;

use common::scalar_strings;

use common::sqlite::{connect_sqlite, file_url, remove_db_files, temp_db_path, SqliteFixture};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{SessionStore, SqliteStore};

#[tokio::test]
async fn the_table_has_the_documented_shape_and_an_expiry_index() {
    let fixture = SqliteFixture::memory().await;
    let columns = scalar_strings(
        &fixture.conn,
        "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || pk \
         FROM pragma_table_info('session') ORDER BY cid",
        vec![],
    )
    .await;
    assert_eq!(
        columns,
        [
            "id TEXT 1 1",
            "data BLOB 1 0",
            "expiry_date INTEGER 1 0",
            "user_key TEXT 0 0",
            "data_digest BLOB 0 0",
            "created_at INTEGER 1 0",
            "updated_at INTEGER 1 0",
            "listed_values TEXT 0 0",
            "version INTEGER 1 0",
            "long_lived boolean 1 0"
        ]
    );
    let user_index = scalar_strings(
        &fixture.conn,
        "SELECT sql FROM sqlite_master WHERE name = 'session_user_key_idx'",
        vec![],
    )
    .await;
    assert_eq!(
        user_index,
        [
            r#"CREATE INDEX "session_user_key_idx" ON "session" ("user_key") WHERE "user_key" IS NOT NULL"#
        ]
    );
    let indexed = scalar_strings(
        &fixture.conn,
        "SELECT name FROM pragma_index_info('session_expiry_date_idx')",
        vec![],
    )
    .await;
    assert_eq!(indexed, ["expiry_date"]);
    fixture.finish().await;
}

#[tokio::test]
async fn expiry_is_stored_as_integer_microseconds_since_the_epoch() {
    let fixture = SqliteFixture::memory().await;
    let expiry = OffsetDateTime::from_unix_timestamp_nanos(4_102_444_800_123_456_789).unwrap();
    let mut rec = common::suite::record(expiry);
    fixture.store.create(&mut rec).await.unwrap();
    let stored = scalar_strings(
        &fixture.conn,
        "SELECT typeof(expiry_date) || ' ' || expiry_date FROM session WHERE id = ?",
        vec![rec.id.to_string().into()],
    )
    .await;
    assert_eq!(stored, ["integer 4102444800123456"]);
    fixture.finish().await;
}

#[tokio::test]
async fn expiry_compares_as_an_instant_whatever_the_offset_of_the_record() {
    // The same instant written with a +14:00 offset: text timestamps would compare by their
    // local digits and get this wrong.
    let fixture = SqliteFixture::memory().await;
    let east = time::UtcOffset::from_hms(14, 0, 0).unwrap();
    let mut rec =
        common::suite::record((OffsetDateTime::now_utc() - Duration::hours(1)).to_offset(east));
    fixture.store.create(&mut rec).await.unwrap();
    assert_eq!(fixture.store.load(&rec.id).await.unwrap(), None);
    assert_eq!(fixture.store.delete_expired_sessions().await.unwrap(), 1);
    fixture.finish().await;
}

#[tokio::test]
async fn migrate_refuses_an_application_table_named_like_the_session_table() {
    let path = temp_db_path();
    let conn = connect_sqlite(&file_url(&path), 2).await;

    common::migrate_refuses_an_application_table(&SqliteStore::new(conn.clone()), &conn, "session")
        .await;

    let _ = conn.close().await;
    remove_db_files(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_migrations_on_a_fresh_file_all_succeed() {
    for round in 0..3 {
        let path = temp_db_path();
        let conn = connect_sqlite(&file_url(&path), 8).await;
        let replica = || SqliteStore::new(conn.clone());
        common::migrate_concurrently(8, replica, &format!("round {round}")).await;
        let store = SqliteStore::new(conn.clone());
        let mut rec = common::suite::record(common::suite::in_a_day());
        store.create(&mut rec).await.unwrap();
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()),
            Some(rec)
        );
        let history = scalar_strings(
            &conn,
            "SELECT version FROM seaql_migrations_tower_sessions",
            vec![],
        )
        .await;
        assert_eq!(
            history,
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
        let _ = conn.close().await;
        remove_db_files(&path);
    }
}

#[tokio::test]
async fn the_schema_name_is_ignored() {
    let fixture = SqliteFixture::memory().await;
    let store = SqliteStore::new(fixture.conn.clone())
        .with_schema_name("auth")
        .unwrap()
        .with_table_name("web_session")
        .unwrap();
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    let ids = scalar_strings(&fixture.conn, "SELECT id FROM main.web_session", vec![]).await;
    assert_eq!(ids, [rec.id.to_string()]);
    fixture.finish().await;
}

#[tokio::test]
async fn sessions_survive_closing_and_reopening_the_file() {
    let path = temp_db_path();
    let conn = connect_sqlite(&file_url(&path), 2).await;
    let store = SqliteStore::new(conn.clone());
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    conn.close().await.unwrap();

    let conn = connect_sqlite(&file_url(&path), 2).await;
    let reopened = SqliteStore::new(conn.clone());
    reopened.migrate().await.unwrap();
    assert_eq!(
        crate::common::without_base(reopened.load(&rec.id).await.unwrap()),
        Some(rec)
    );
    let _ = conn.close().await;
    remove_db_files(&path);
}

#[tokio::test]
async fn user_keys_that_differ_only_in_trailing_spaces_are_different_users() {
    let fixture = SqliteFixture::memory().await;
    let store = fixture.store.clone().with_user_key("user_id").unwrap();
    let mut ids = Vec::new();
    for user in ["ada", "ada "] {
        let mut record = common::suite::record(common::suite::in_a_day());
        record
            .data
            .insert("user_id".to_owned(), serde_json::json!(user));
        store.create(&mut record).await.unwrap();
        ids.push(record.id);
    }
    let listed = store.user_sessions("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, store.session_handle(ids[0]));
    assert_eq!(store.delete_user_sessions("ada ").await.unwrap(), 1);
    assert!(store.load(&ids[0]).await.unwrap().is_some());
    fixture.finish().await;
}

#[tokio::test]
async fn a_table_name_with_uppercase_letters_is_refused_because_sqlite_ignores_case() {
    // SQLite would take `Sessions` for `sessions`: two stores, one table, shared sessions.
    let fixture = SqliteFixture::memory().await;
    for name in ["Sessions", "web_Session", "SESSION"] {
        let err = SqliteStore::new(fixture.conn.clone())
            .with_table_name(name)
            .unwrap_err();
        assert!(
            matches!(
                err,
                tower_sessions_seaorm_store::SeaOrmStoreError::InvalidConfiguration(_)
            ),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("SQLite ignores case"), "{message}");
        assert!(message.contains("lowercase"), "{message}");
    }

    let store = SqliteStore::new(fixture.conn.clone())
        .with_table_name("sessions")
        .unwrap();
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );
    assert_eq!(
        fixture.store.load(&rec.id).await.unwrap(),
        None,
        "the default table `session` is another table"
    );
    fixture.finish().await;
}

/// Inserts a row the way another writer would: without `created_at` and `updated_at`.
async fn insert_without_instants(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
    id: &str,
) {
    use tower_sessions_seaorm_store::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let expiry_micros =
        (OffsetDateTime::now_utc() + Duration::hours(1)).unix_timestamp() * 1_000_000;
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        r#"INSERT INTO "session" ("id", "data", "expiry_date") VALUES (?, ?, ?)"#,
        [id.into(), b"raw".to_vec().into(), expiry_micros.into()],
    ))
    .await
    .expect("an insert without the instants");
}

/// Whether the row `id` is live for a store whose absolute lifetime began at `born_after`, and
/// its creation instant.
async fn created_at_of(
    store: &SqliteStore,
    id: &str,
    born_after: OffsetDateTime,
) -> Option<OffsetDateTime> {
    use tower_sessions_seaorm_store::repository::SessionRepository;
    store
        .repository()
        .find_unexpired(id, OffsetDateTime::now_utc(), Some(born_after), None)
        .await
        .unwrap()
        .map(|row| row.created_at.expect("read with an absolute lifetime"))
}

#[tokio::test]
async fn a_row_inserted_without_created_at_counts_its_lifetime_from_its_insert() {
    let fixture = SqliteFixture::file().await;
    // Real time is the point: the default must be the insert's instant, not the migration's,
    // and the two must lie apart for the test to tell them.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = OffsetDateTime::now_utc();
    insert_without_instants(&fixture.conn, "written-by-another-tool").await;
    let after = OffsetDateTime::now_utc();

    // SQLite's default is to the millisecond: 100 ms of margin.
    let created = created_at_of(
        &fixture.store,
        "written-by-another-tool",
        before - Duration::milliseconds(100),
    )
    .await
    .expect("live: created at its insert, not at the migration 300 ms before");
    assert!(created <= after, "{created} after {after}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_gives_a_table_of_the_fourth_migration_insert_instant_defaults_under_eight_replicas(
) {
    use tower_sessions_seaorm_store::migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        AddLongLived, AddSessionTimes, AddUserIndex, CreateSessionTable, ExactKeys,
    };
    let path = temp_db_path();
    let conn = connect_sqlite(&file_url(&path), 8).await;
    // The table as the first four migrations left it, with rows.
    let manager = SchemaManager::new(&conn);
    CreateSessionTable::new("ignored", "session")
        .up(&manager)
        .await
        .unwrap();
    AddUserIndex::new("ignored", "session")
        .up(&manager)
        .await
        .unwrap();
    ExactKeys::new("ignored", "session")
        .up(&manager)
        .await
        .unwrap();
    AddSessionTimes::new("ignored", "session")
        .up(&manager)
        .await
        .unwrap();
    // The long-lived marker today's store writes.
    AddLongLived::new("ignored", "session")
        .up(&manager)
        .await
        .unwrap();
    let store = SqliteStore::new(conn.clone())
        .with_user_key("user_id")
        .unwrap();
    let mut sessions = Vec::new();
    for user in ["ada", "grace"] {
        let mut record = common::suite::record(common::suite::in_a_day());
        record
            .data
            .insert("user_id".to_owned(), serde_json::json!(user));
        store.create(&mut record).await.unwrap();
        sessions.push(record);
    }
    let listed_before = store.user_sessions("ada").await.unwrap();
    let objects = "SELECT type || ' ' || name FROM sqlite_master WHERE tbl_name = 'session' \
                   ORDER BY 1";
    let objects_before = scalar_strings(&conn, objects, vec![]).await;
    // Real time is the point, as above.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    common::migrate_concurrently(8, || SqliteStore::new(conn.clone()), "insert defaults").await;

    for record in &sessions {
        assert_eq!(
            crate::common::without_base(store.load(&record.id).await.unwrap()).as_ref(),
            Some(record)
        );
    }
    assert_eq!(
        store.user_sessions("ada").await.unwrap(),
        listed_before,
        "rows keep their instants"
    );
    assert_eq!(scalar_strings(&conn, objects, vec![]).await, objects_before);
    let before = OffsetDateTime::now_utc();
    insert_without_instants(&conn, "written-after-the-upgrade").await;
    assert!(created_at_of(
        &store,
        "written-after-the-upgrade",
        before - Duration::milliseconds(100)
    )
    .await
    .is_some());
    // Run again, the table is left alone; down and up again rebuild it each way.
    store.migrate().await.unwrap();
    let defaults = "SELECT dflt_value FROM pragma_table_info('session') \
                    WHERE name IN ('created_at', 'updated_at')";
    let step = tower_sessions_seaorm_store::migration::InsertInstantDefaults::new("", "session");
    step.down(&manager).await.unwrap();
    let constant = scalar_strings(&conn, defaults, vec![]).await;
    assert!(
        constant.iter().all(|d| d.parse::<i64>().is_ok()),
        "{constant:?}"
    );
    step.up(&manager).await.unwrap();
    let expression = scalar_strings(&conn, defaults, vec![]).await;
    assert!(
        expression.iter().all(|d| d.contains("'now'")),
        "{expression:?}"
    );
    assert_eq!(scalar_strings(&conn, objects, vec![]).await, objects_before);
    assert_eq!(store.user_sessions("ada").await.unwrap(), listed_before);
    let _ = conn.close().await;
    remove_db_files(&path);
}
