//! PostgreSQL specifics: time zones, concurrent migrations, names, the table's shape, and rows
//! left by other stores.

mod common;

use common::scalar_strings;

use common::{connect_postgres, database_url, unique_name, PgFixture};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    sea_orm::{
        ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    },
    session_store, Id, PostgresStore, Record, SeaOrmStoreError, SessionStore,
};

/// A pool of one connection whose session TimeZone is `zone` (sqlx itself starts every
/// connection in UTC, so the setting is made on the one connection after it is open).
async fn connection_in_time_zone(zone: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(database_url());
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let conn = Database::connect(options).await.unwrap();
    conn.execute_unprepared(&format!("SET TIME ZONE '{zone}'"))
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn delete_expired_keeps_live_sessions_under_time_zones_far_from_utc() {
    // Kiritimati is UTC+14 and Pago Pago UTC-11: a cleanup that compares with
    // `now() at time zone 'utc'` is off by that much and deletes live sessions (or keeps dead ones).
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        let fixture = PgFixture::on(connection_in_time_zone(zone).await).await;

        let store = &fixture.store;
        let now = OffsetDateTime::now_utc();
        let mut live = Vec::new();
        for offset in [
            Duration::minutes(1),
            Duration::hours(10),
            Duration::hours(13),
        ] {
            let mut rec = common::suite::record(now + offset);
            store.create(&mut rec).await.unwrap();
            live.push(rec);
        }
        let mut dead = Vec::new();
        for offset in [
            Duration::minutes(1),
            Duration::hours(10),
            Duration::hours(13),
        ] {
            let mut rec = common::suite::record(now - offset);
            store.create(&mut rec).await.unwrap();
            dead.push(rec);
        }

        assert_eq!(
            store.delete_expired_sessions().await.unwrap(),
            3,
            "in {zone}"
        );
        for rec in &live {
            assert_eq!(
                crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
                Some(rec),
                "in {zone}"
            );
        }
        let left = scalar_strings(
            &fixture.conn,
            &format!("SELECT id FROM {}", fixture.table()),
            vec![],
        )
        .await;
        assert_eq!(left.len(), 3, "only the live rows are left in {zone}");
        let shown = scalar_strings(&fixture.conn, "SHOW TimeZone", vec![]).await;
        assert_eq!(shown, [zone], "every statement ran in {zone}");
        fixture.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_migrations_on_an_empty_schema_all_succeed() {
    let conn = connect_postgres(&database_url()).await;
    for round in 0..3 {
        let schema = unique_name("ts_migrate");
        // Separate stores, as separate replicas would have.
        let replica = || {
            PostgresStore::new(conn.clone())
                .with_schema_name(&schema)
                .unwrap()
        };
        common::migrate_concurrently(8, replica, &format!("round {round}")).await;

        let store = PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .unwrap();
        let mut rec = common::suite::record(common::suite::in_a_day());
        store.create(&mut rec).await.unwrap();
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()),
            Some(rec)
        );
        let history = scalar_strings(
            &conn,
            &format!("SELECT version FROM \"{schema}\".seaql_migrations_tower_sessions"),
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
        conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn migrate_twice_changes_nothing_and_leaves_the_application_history_alone() {
    let fixture = PgFixture::new().await;
    fixture.store.migrate().await.unwrap();
    fixture.store.migrate().await.unwrap();

    let history = scalar_strings(
        &fixture.conn,
        &format!(
            "SELECT version FROM \"{}\".seaql_migrations_tower_sessions",
            fixture.schema
        ),
        vec![],
    )
    .await;
    assert_eq!(
        history.len(),
        7,
        "seven migrations, each recorded once: {history:?}"
    );
    let app_history = scalar_strings(
        &fixture.conn,
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = 'seaql_migrations'",
        vec![fixture.schema.clone().into()],
    )
    .await;
    assert!(app_history.is_empty());
    fixture.finish().await;
}

#[tokio::test]
async fn the_table_has_the_documented_shape_and_an_expiry_index() {
    let fixture = PgFixture::new().await;
    let columns = scalar_strings(
        &fixture.conn,
        "SELECT column_name || ' ' || data_type || ' ' || is_nullable \
         FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'session' ORDER BY ordinal_position",
        vec![fixture.schema.clone().into()],
    )
    .await;
    assert_eq!(
        columns,
        [
            "id text NO",
            "data bytea NO",
            "expiry_date timestamp with time zone NO",
            "user_key text YES",
            "data_digest bytea YES",
            "created_at timestamp with time zone NO",
            "updated_at timestamp with time zone NO",
            "listed_values text YES",
            "version bigint NO",
            "long_lived boolean NO"
        ]
    );
    let indexes = scalar_strings(
        &fixture.conn,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'session' \
         ORDER BY indexname",
        vec![fixture.schema.clone().into()],
    )
    .await;
    assert_eq!(indexes.len(), 4, "{indexes:?}");
    assert!(
        indexes.iter().any(|d| d.contains("(created_at)")),
        "{indexes:?}"
    );
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("(user_key) WHERE (user_key IS NOT NULL)")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|d| d.contains("(expiry_date)")),
        "{indexes:?}"
    );
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("UNIQUE") && d.contains("(id)")),
        "{indexes:?}"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let conn = connect_postgres(&database_url()).await;
    let long = "s".repeat(64);
    for name in [
        "",
        "9lives",
        "a\"b",
        "a'b",
        "a b",
        "a;b",
        "session; DROP TABLE users",
        "ѕession", // Cyrillic ѕ
        long.as_str(),
    ] {
        let store = PostgresStore::new(conn.clone());
        assert!(
            matches!(
                store.clone().with_schema_name(name),
                Err(SeaOrmStoreError::InvalidConfiguration(_))
            ),
            "schema {name:?}"
        );
        assert!(
            matches!(
                store.with_table_name(name),
                Err(SeaOrmStoreError::InvalidConfiguration(_))
            ),
            "table {name:?}"
        );
    }
}

#[tokio::test]
async fn a_custom_table_name_holds_the_sessions() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_custom");
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_table_name("Web_Sessions")
        .unwrap();
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();

    let ids = scalar_strings(
        &conn,
        &format!("SELECT id FROM \"{schema}\".\"Web_Sessions\""),
        vec![],
    )
    .await;
    assert_eq!(ids, [rec.id.to_string()]);
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn rows_written_the_way_tower_sessions_sqlx_store_writes_them_load_unchanged() {
    // tower-sessions-sqlx-store's PostgresStore::save binds `rmp_serde::to_vec(&record)` and the
    // id's Display form into the same table shape.
    let fixture = PgFixture::new().await;
    let record = Record {
        id: Id::default(),
        data: [("user_id".to_owned(), json!(7))].into_iter().collect(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(2),
    };
    fixture
        .conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "insert into {} (id, data, expiry_date) values ($1, $2, $3)",
                fixture.table()
            ),
            [
                record.id.to_string().into(),
                rmp_serde::to_vec(&record).unwrap().into(),
                record.expiry_date.into(),
            ],
        ))
        .await
        .unwrap();

    assert_eq!(
        crate::common::without_base(fixture.store.load(&record.id).await.unwrap()),
        Some(record)
    );
    fixture.finish().await;
}

#[tokio::test]
async fn a_missing_table_is_a_backend_error_that_names_it() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn)
        .with_schema_name(&unique_name("ts_missing"))
        .unwrap();
    let err = store.load(&Id::default()).await.unwrap_err();
    match err {
        session_store::Error::Backend(message) => {
            assert!(message.contains("does not exist"), "{message}");
            assert!(message.contains("42P01"), "{message}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn error_messages_carry_no_session_id() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn)
        .with_schema_name(&unique_name("ts_missing"))
        .unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    let id = rec.id.to_string();
    let errors = [
        store.create(&mut rec).await.unwrap_err(),
        store.save(&rec).await.unwrap_err(),
        store.load(&rec.id).await.unwrap_err(),
        store.delete(&rec.id).await.unwrap_err(),
    ];
    for err in errors {
        let message = err.to_string();
        assert!(!message.contains(&id), "{message}");
        assert!(!message.contains("Ada Lovelace"), "{message}");
    }
}

#[tokio::test]
async fn with_hash_partitions_migrate_creates_a_partitioned_table_that_serves_every_operation() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_parts");
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_hash_partitions(4)
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    let partitions = scalar_strings(
        &conn,
        "SELECT c.relname::text FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         JOIN pg_namespace n ON n.oid = p.relnamespace \
         WHERE n.nspname = $1 AND p.relname = 'session' AND c.relkind = 'r' ORDER BY 1",
        vec![schema.clone().into()],
    )
    .await;
    assert_eq!(
        partitions,
        ["session_p0", "session_p1", "session_p2", "session_p3"]
    );

    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );
    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_partition_count_out_of_range_is_refused() {
    let store = PostgresStore::new(connect_postgres(&database_url()).await);
    for n in [0, 1025, u16::MAX] {
        assert!(
            matches!(
                store.clone().with_hash_partitions(n),
                Err(SeaOrmStoreError::InvalidConfiguration(_))
            ),
            "{n}"
        );
    }
}

/// `migrate()` on `store`, which must fail at its first attempt; its message.
async fn fails_at_once(store: &PostgresStore) -> String {
    let started = std::time::Instant::now();
    let err = store.migrate().await.unwrap_err();
    let SeaOrmStoreError::Migration { attempts, message } = &err else {
        panic!("not a migration failure: {err:?}");
    };
    assert_eq!(*attempts, 1, "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    message.clone()
}

#[tokio::test]
async fn a_table_postgresql_cannot_name_an_array_type_for_fails_migrate_at_once_saying_what_to_shorten(
) {
    // 62 tables whose names share the session table's first 62 bytes take every array type
    // name PostgreSQL could give it: "could not form array type name" (SQLSTATE 42710, which
    // a lost race also raises). Retrying cannot help.
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_array");
    let prefix = "x".repeat(62);
    conn.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let others = ('a'..='y').chain('A'..='Z').chain('0'..='9').chain(['_']);
    for last in others {
        conn.execute_unprepared(&format!("CREATE TABLE \"{schema}\".\"{prefix}{last}\" ()"))
            .await
            .unwrap();
    }
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_table_name(&format!("{prefix}z"))
        .unwrap();

    let message = fails_at_once(&store).await;

    assert!(message.contains("array type"), "{message}");
    assert!(message.contains("shorten the table name"), "{message}");
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_type_named_like_the_table_fails_migrate_at_once_naming_it() {
    // SQLSTATE 42710 again ("type already exists"), but from an object that is not ours.
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_type");
    conn.execute_unprepared(&format!(
        "CREATE SCHEMA \"{schema}\"; CREATE TYPE \"{schema}\".\"session\" AS ENUM ('a')"
    ))
    .await
    .unwrap();
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();

    let message = fails_at_once(&store).await;

    assert!(message.contains("type"), "{message}");
    assert!(message.contains("session"), "{message}");
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_refuses_an_application_table_named_like_the_session_table() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_app");
    conn.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();

    common::migrate_refuses_an_application_table(&store, &conn, &format!("\"{schema}\".session"))
        .await;

    let history = scalar_strings(
        &conn,
        "SELECT 'found' FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'seaql%'",
        vec![schema.clone().into()],
    )
    .await;
    assert!(history.is_empty(), "nothing was done, not even the history");
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn names_that_differ_only_in_case_are_different_tables() {
    // PostgreSQL keeps quoted names as written (unlike SQLite, which refuses them).
    let fixture = PgFixture::new().await;
    let upper = PostgresStore::new(fixture.conn.clone())
        .with_schema_name(&fixture.schema)
        .unwrap()
        .with_table_name("Session")
        .unwrap();
    upper.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    upper.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(upper.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );
    assert_eq!(fixture.store.load(&rec.id).await.unwrap(), None);
    fixture.finish().await;
}

#[tokio::test]
async fn a_table_name_whose_derived_names_collide_is_refused_at_the_builder_saying_why() {
    let store = PostgresStore::new(connect_postgres(&database_url()).await);
    // `_` and the first 62 bytes of the name is the name again: the table's array type would
    // take its row type's name (PostgreSQL fails with a duplicate key in pg_type).
    let name = "_".repeat(63);
    for partitions in [None, Some(4)] {
        let store = match partitions {
            Some(n) => store.clone().with_hash_partitions(n).unwrap(),
            None => store.clone(),
        };
        let err = store.with_table_name(&name).unwrap_err();
        let SeaOrmStoreError::InvalidConfiguration(message) = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("array type"), "{message}");
        assert!(message.contains("rename or shorten the table"), "{message}");
    }
    let err = store
        .with_table_name("seaql_migrations_tower_sessions")
        .unwrap_err();
    assert!(err.to_string().contains("migration history table"), "{err}");
}

#[tokio::test]
async fn a_row_inserted_without_created_at_counts_its_lifetime_from_its_insert() {
    use tower_sessions_seaorm_store::{
        repository::SessionRepository,
        sea_orm::{ConnectionTrait, DbBackend, Statement},
    };
    let fixture = PgFixture::new().await;
    // Real time is the point: the default must be the insert's instant, not the migration's,
    // and the two must lie apart for the test to tell them.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = OffsetDateTime::now_utc();
    fixture
        .conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO {} (\"id\", \"data\", \"expiry_date\") \
                 VALUES ($1, 'raw', now() + interval '1 hour')",
                fixture.table()
            ),
            ["written-by-another-tool".into()],
        ))
        .await
        .unwrap();
    let after = OffsetDateTime::now_utc();

    let created = fixture
        .store
        .repository()
        .find_unexpired(
            "written-by-another-tool",
            OffsetDateTime::now_utc(),
            Some(before - Duration::milliseconds(100)),
            None,
        )
        .await
        .unwrap()
        .and_then(|row| row.created_at)
        .expect("live, and read with an absolute lifetime: created at its insert");
    assert!(created <= after + Duration::milliseconds(100));
    fixture.finish().await;
}

/// The `entity` module reads and writes the default table as the store stores it: every column,
/// with its type and nullability (the entity is written out by hand, so this keeps it honest).
#[tokio::test]
async fn the_entity_reads_and_writes_the_default_session_table() {
    use tower_sessions_seaorm_store::{
        entity,
        sea_orm::{ActiveModelTrait, EntityTrait, Set},
    };

    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn.clone())
        .with_user_key("user_id")
        .unwrap()
        .with_listed_values(["device"])
        .unwrap()
        .with_touch_after(std::time::Duration::from_secs(60));
    store.migrate().await.unwrap();
    let mut record = Record {
        id: Id::default(),
        data: [
            ("user_id".to_owned(), json!("ada")),
            ("device".to_owned(), json!("Firefox on Linux")),
        ]
        .into(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    store.create(&mut record).await.unwrap();

    let row = entity::Entity::find_by_id(record.id.to_string())
        .one(&conn)
        .await
        .unwrap()
        .expect("the entity finds the session");
    assert_eq!(row.user_key.as_deref(), Some("ada"));
    assert_eq!(
        row.listed_values.as_deref(),
        Some(r#"{"device":"Firefox on Linux"}"#)
    );
    assert_eq!(row.data_digest, None, "unused since 0.3.0");
    assert_eq!(row.version, 0, "a created row is at version 0");
    assert!(!row.long_lived, "not marked: no long-lived sessions");
    assert_eq!(
        row.expiry_date.unix_timestamp(),
        record.expiry_date.unix_timestamp()
    );
    assert!(row.created_at <= row.updated_at);

    // An application's admin page can end a session through the entity.
    let mut ended: entity::ActiveModel = row.into();
    ended.expiry_date = Set(OffsetDateTime::now_utc() - Duration::seconds(1));
    ended.update(&conn).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    entity::Entity::delete_by_id(record.id.to_string())
        .exec(&conn)
        .await
        .unwrap();
}
