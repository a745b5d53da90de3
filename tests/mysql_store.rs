//! MySQL/MariaDB specifics: the session time zone, case-sensitive ids, keys compared byte for
//! byte (no trailing-space padding), concurrent migrations, the table's shape, why `create` is a
//! plain INSERT, and the move to hashed ids.

mod common;

use common::scalar_strings;

use common::{
    mysql::{connect_mysql, connect_mysql_with, drop_table, mysql_url, MySqlFixture},
    unique_name,
};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
    MySqlStore, SessionStore,
};

#[tokio::test]
async fn expiry_is_compared_the_same_whatever_the_session_time_zone() {
    // Sessions are written by a connection in UTC (sqlx's default) and read and cleaned by one
    // in +13:00 or -12:00, about as far from UTC as MariaDB allows. A `timestamp` column (which
    // the server converts through the session's time_zone) or a comparison with NOW() would be
    // off by that much: dead sessions would load, or live ones would be deleted.
    for zone in ["+13:00", "-12:00"] {
        let fixture = MySqlFixture::new().await;
        let now = OffsetDateTime::now_utc();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for offset in [
            Duration::minutes(1),
            Duration::hours(10),
            Duration::hours(12) + Duration::minutes(50),
        ] {
            let mut rec = common::suite::record(now + offset);
            fixture.store.create(&mut rec).await.unwrap();
            live.push(rec);
            let mut rec = common::suite::record(now - offset);
            fixture.store.create(&mut rec).await.unwrap();
            dead.push(rec);
        }

        // One connection, so the SET applies to every statement this store sends.
        let zoned = connect_mysql_with(&mysql_url(), 1).await;
        zoned
            .execute_unprepared(&format!("SET time_zone = '{zone}'"))
            .await
            .unwrap();
        let store = MySqlStore::new(zoned.clone())
            .with_table_name(&fixture.table)
            .unwrap();
        for rec in &dead {
            assert_eq!(store.load(&rec.id).await.unwrap(), None, "in {zone}");
        }
        for rec in &live {
            assert_eq!(
                crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
                Some(rec),
                "in {zone}"
            );
        }
        assert_eq!(
            store.delete_expired_sessions().await.unwrap(),
            3,
            "in {zone}"
        );
        for rec in &live {
            assert_eq!(
                crate::common::without_base(fixture.store.load(&rec.id).await.unwrap()).as_ref(),
                Some(rec),
                "in {zone}"
            );
        }
        let shown = scalar_strings(&zoned, "SELECT @@session.time_zone", vec![]).await;
        assert_eq!(shown, [zone], "every statement ran in {zone}");
        fixture.finish().await;
    }
}

#[tokio::test]
async fn ids_that_differ_only_in_case_are_different_sessions() {
    // MySQL's default collations compare case-insensitively; session ids are case-sensitive.
    let fixture = MySqlFixture::new().await;
    let repo = fixture.store.repository();
    let expires = common::suite::in_a_day();
    repo.insert_if_absent(common::row("AbCdEfGhIjKlMnOpQrStUv", b"upper", expires))
        .await
        .unwrap();
    assert!(repo
        .insert_if_absent(common::row("abcdefghijklmnopqrstuv", b"lower", expires))
        .await
        .unwrap());
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        repo.find_unexpired("AbCdEfGhIjKlMnOpQrStUv", now, None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"upper".to_vec())
    );
    assert_eq!(
        repo.find_unexpired("abcdefghijklmnopqrstuv", now, None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"lower".to_vec())
    );
    assert_eq!(
        repo.find_unexpired("ABCDEFGHIJKLMNOPQRSTUV", now, None, None)
            .await
            .unwrap(),
        None
    );
    fixture.finish().await;
}

#[tokio::test]
async fn through_sqlx_a_duplicate_reports_a_found_row_so_create_cannot_use_on_duplicate_key_update()
{
    // sqlx connects with CLIENT_FOUND_ROWS: `ON DUPLICATE KEY UPDATE id = id` reports 1 row for
    // a duplicate, the same as for an insert. This is why `insert_if_absent` is a plain INSERT
    // whose duplicate-key error means "taken".
    let fixture = MySqlFixture::new().await;
    let insert = |id: &str| {
        Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT INTO `{}` (id, data, expiry_date) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE id = id",
                fixture.table
            ),
            [
                id.into(),
                b"x".to_vec().into(),
                time::PrimitiveDateTime::new(
                    time::Date::from_calendar_date(2100, time::Month::January, 1).unwrap(),
                    time::Time::MIDNIGHT,
                )
                .into(),
            ],
        )
    };
    let first = fixture.conn.execute_raw(insert("a")).await.unwrap();
    let duplicate = fixture.conn.execute_raw(insert("a")).await.unwrap();
    assert_eq!(first.rows_affected(), 1);
    assert_eq!(duplicate.rows_affected(), 1, "a found row counts as one");

    // The store's own create tells them apart.
    let repo = fixture.store.repository();
    let expires = common::suite::in_a_day();
    assert!(repo
        .insert_if_absent(common::row("b", b"x", expires))
        .await
        .unwrap());
    assert!(!repo
        .insert_if_absent(common::row("b", b"y", expires))
        .await
        .unwrap());
    assert_eq!(
        repo.find_unexpired("b", OffsetDateTime::now_utc(), None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"x".to_vec()),
        "the taken id keeps its session"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn migrate_refuses_an_application_table_named_like_the_session_table() {
    let conn = connect_mysql(&mysql_url()).await;
    let table = unique_name("ts_app");
    let store = MySqlStore::new(conn.clone())
        .with_table_name(&table)
        .unwrap();

    common::migrate_refuses_an_application_table(&store, &conn, &format!("`{table}`")).await;

    conn.execute_unprepared(&format!("DROP TABLE `{table}`"))
        .await
        .unwrap();
}

/// A session table dropped by hand while its steps stay recorded: `migrate` refuses, saying
/// so, rather than creating it empty again. (Here the runner's second look opens the table,
/// where PostgreSQL's reads the catalog: MariaDB's lists a table a concurrent run is altering
/// without its columns for a moment.)
#[tokio::test]
async fn migrate_refuses_a_table_dropped_by_hand() {
    let conn = connect_mysql(&mysql_url()).await;
    let table = unique_name("ts_dropped");
    let store = MySqlStore::new(conn.clone())
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    conn.execute_unprepared(&format!("DROP TABLE `{table}`"))
        .await
        .unwrap();
    let refused = store
        .migrate()
        .await
        .expect_err("a table dropped by hand is not created again, empty");
    assert!(
        refused.to_string().contains("was it dropped by hand?"),
        "{refused}"
    );
    let tables = scalar_strings(
        &conn,
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = ?",
        vec![table.clone().into()],
    )
    .await;
    assert!(tables.is_empty(), "nothing was created: {tables:?}");
    drop_table(&conn, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_migrations_on_a_fresh_table_all_succeed() {
    let conn = connect_mysql(&mysql_url()).await;
    for round in 0..3 {
        let table = unique_name("ts_migrate");
        let replica = || {
            MySqlStore::new(conn.clone())
                .with_table_name(&table)
                .unwrap()
        };
        common::migrate_concurrently(8, replica, &format!("round {round}")).await;
        let store = MySqlStore::new(conn.clone())
            .with_table_name(&table)
            .unwrap();
        let mut rec = common::suite::record(common::suite::in_a_day());
        store.create(&mut rec).await.unwrap();
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()),
            Some(rec)
        );
        let history = scalar_strings(
            &conn,
            "SELECT version FROM seaql_migrations_tower_sessions WHERE version LIKE ?",
            vec![format!("{table}/%").into()],
        )
        .await;
        assert_eq!(
            history,
            [
                format!("{table}/m20261125_000001_create_session_table"),
                format!("{table}/m20261125_000002_add_user_index"),
                format!("{table}/m20261201_000003_exact_keys"),
                format!("{table}/m20261202_000004_add_session_times"),
                format!("{table}/m20261203_000005_insert_instant_defaults"),
                format!("{table}/m20261204_000006_add_version"),
                format!("{table}/m20261206_000008_add_long_lived"),
            ]
        );
        drop_table(&conn, &table).await;
    }
}

#[tokio::test]
async fn the_table_has_the_documented_shape_and_an_expiry_index() {
    let fixture = MySqlFixture::new().await;
    let columns = scalar_strings(
        &fixture.conn,
        "SELECT CONCAT_WS(' ', column_name, column_type, \
                COALESCE(collation_name, '-'), is_nullable, COALESCE(column_key, '-')) \
         FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        vec![fixture.table.clone().into()],
    )
    .await;
    assert_eq!(
        columns,
        [
            "id varbinary(128) - NO PRI",
            "data longblob - NO ",
            "expiry_date datetime(6) - NO MUL",
            "user_key varbinary(255) - YES MUL",
            "data_digest varbinary(32) - YES ",
            "created_at datetime(6) - NO MUL",
            "updated_at datetime(6) - NO ",
            "listed_values longtext utf8mb4_bin YES ",
            "version bigint(20) - NO ",
            "long_lived tinyint(1) - NO ",
        ]
    );
    let indexes = scalar_strings(
        &fixture.conn,
        "SELECT CONCAT(index_name, ' ', column_name) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY index_name",
        vec![fixture.table.clone().into()],
    )
    .await;
    assert_eq!(
        indexes,
        [
            "PRIMARY id",
            &format!("{}_created_at_idx created_at", fixture.table),
            &format!("{}_expiry_date_idx expiry_date", fixture.table),
            &format!("{}_user_key_idx user_key", fixture.table),
        ]
    );
    fixture.finish().await;
}

#[tokio::test]
async fn the_schema_name_is_ignored_and_the_table_lives_in_the_connections_database() {
    let conn = connect_mysql(&mysql_url()).await;
    let table = unique_name("ts_schema");
    let store = MySqlStore::new(conn.clone())
        .with_schema_name("some_other_database")
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    let ids = scalar_strings(
        &conn,
        &format!("SELECT CAST(id AS CHAR) FROM `{table}`"),
        vec![],
    )
    .await;
    assert_eq!(ids, [rec.id.to_string()]);
    drop_table(&conn, &table).await;
}

#[tokio::test]
async fn the_documented_update_moves_plain_rows_to_hashed_ids() {
    let fixture = MySqlFixture::new().await;
    let mut rec = common::suite::record(common::suite::in_a_day());
    fixture.store.create(&mut rec).await.unwrap();
    let hashed = fixture.store.clone().with_hashed_ids();
    assert_eq!(
        hashed.load(&rec.id).await.unwrap(),
        None,
        "not found before"
    );

    // The statement the README gives for MySQL, on this test's table.
    fixture
        .conn
        .execute_unprepared(&format!(
            "UPDATE `{}` SET id = SHA2(id, 256) WHERE CHAR_LENGTH(id) = 22",
            fixture.table
        ))
        .await
        .unwrap();

    assert_eq!(
        crate::common::without_base(hashed.load(&rec.id).await.unwrap()).as_ref(),
        Some(&rec)
    );
    fixture.finish().await;
}

/// A session of `user` (the `user_id` value), expiring in a day.
fn session_of(user: &str) -> tower_sessions_seaorm_store::Record {
    let mut record = common::suite::record(common::suite::in_a_day());
    record
        .data
        .insert("user_id".to_owned(), serde_json::json!(user));
    record
}

/// The handles of `user`'s live sessions, as a set.
async fn handles_of(
    store: &MySqlStore,
    user: &str,
) -> std::collections::HashSet<tower_sessions_seaorm_store::SessionHandle> {
    store
        .user_sessions(user)
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.handle)
        .collect()
}

#[tokio::test]
async fn user_keys_that_differ_only_in_trailing_spaces_are_different_users() {
    // MySQL's and MariaDB's PAD SPACE collations (utf8mb4_bin among them) compare 'ada' and
    // 'ada ' as equal: one user would list and end the other's sessions.
    let fixture = MySqlFixture::new().await;
    let store = fixture.store.clone().with_user_key("user_id").unwrap();
    let mut ada = session_of("ada");
    store.create(&mut ada).await.unwrap();
    let mut ada_space = session_of("ada ");
    store.create(&mut ada_space).await.unwrap();
    let mut ada_spaces = session_of("ada  ");
    store.create(&mut ada_spaces).await.unwrap();

    assert_eq!(
        handles_of(&store, "ada").await,
        [store.session_handle(ada.id)].into()
    );
    assert_eq!(
        handles_of(&store, "ada ").await,
        [store.session_handle(ada_space.id)].into()
    );
    assert_eq!(
        store
            .delete_user_sessions_except("ada", ada.id)
            .await
            .unwrap(),
        0,
        "'ada' has no other session"
    );
    assert_eq!(store.delete_user_sessions("ada ").await.unwrap(), 1);
    assert_eq!(
        crate::common::without_base(store.load(&ada.id).await.unwrap()).as_ref(),
        Some(&ada)
    );
    assert_eq!(store.load(&ada_space.id).await.unwrap(), None);
    assert_eq!(
        crate::common::without_base(store.load(&ada_spaces.id).await.unwrap()).as_ref(),
        Some(&ada_spaces)
    );
    assert_eq!(store.delete_user_sessions("ada").await.unwrap(), 1);
    assert_eq!(
        handles_of(&store, "ada  ").await,
        [store.session_handle(ada_spaces.id)].into()
    );
    fixture.finish().await;
}

#[tokio::test]
async fn ids_that_differ_only_in_trailing_spaces_are_different_rows() {
    let fixture = MySqlFixture::new().await;
    let repo = fixture.store.repository();
    let expires = common::suite::in_a_day();
    assert!(repo
        .insert_if_absent(common::row("abc", b"plain", expires))
        .await
        .unwrap());
    assert!(
        repo.insert_if_absent(common::row("abc ", b"spaced", expires))
            .await
            .unwrap(),
        "'abc ' is not the taken 'abc'"
    );
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        repo.find_unexpired("abc", now, None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"plain".to_vec())
    );
    assert_eq!(
        repo.find_unexpired("abc ", now, None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"spaced".to_vec())
    );
    repo.delete_by_id("abc ").await.unwrap();
    assert_eq!(
        repo.find_unexpired("abc", now, None, None)
            .await
            .unwrap()
            .map(|found| found.data),
        Some(b"plain".to_vec())
    );
    fixture.finish().await;
}

/// `table`'s `id` and `user_key` column types.
async fn key_column_types(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
    table: &str,
) -> Vec<String> {
    scalar_strings(
        conn,
        "SELECT CONCAT_WS(' ', column_name, column_type, COALESCE(collation_name, '-')) \
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? \
         AND column_name IN ('id', 'user_key') ORDER BY ordinal_position",
        vec![table.to_owned().into()],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_converts_a_table_of_the_first_two_migrations_with_rows_under_eight_replicas() {
    use tower_sessions_seaorm_store::migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        AddLongLived, AddSessionTimes, AddUserIndex, CreateSessionTable,
    };
    let conn = connect_mysql(&mysql_url()).await;
    let table = unique_name("ts_exact");
    // The table as the first two migrations left it, outside the store's history (as an
    // application's own Migrator would have made it).
    let manager = SchemaManager::new(&conn);
    CreateSessionTable::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    AddUserIndex::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    // The columns today's store writes; the keys are still the first two migrations' types.
    AddSessionTimes::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    // The long-lived marker today's store writes.
    AddLongLived::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    assert_eq!(
        key_column_types(&conn, &table).await,
        [
            "id varchar(128) ascii_bin",
            "user_key varchar(255) utf8mb4_bin"
        ]
    );
    let store = MySqlStore::new(conn.clone())
        .with_table_name(&table)
        .unwrap()
        .with_user_key("user_id")
        .unwrap();
    let mut sessions = Vec::new();
    for user in ["ada", "ada ", "grace", "grâce"] {
        let mut record = session_of(user);
        store.create(&mut record).await.unwrap();
        sessions.push(record);
    }

    common::migrate_concurrently(
        8,
        || {
            MySqlStore::new(conn.clone())
                .with_table_name(&table)
                .unwrap()
        },
        "the exact-keys migration",
    )
    .await;

    assert_eq!(
        key_column_types(&conn, &table).await,
        ["id varbinary(128) -", "user_key varbinary(255) -"]
    );
    for record in &sessions {
        assert_eq!(
            crate::common::without_base(store.load(&record.id).await.unwrap()).as_ref(),
            Some(record)
        );
    }
    assert_eq!(
        handles_of(&store, "ada").await,
        [store.session_handle(sessions[0].id)].into()
    );
    assert_eq!(
        handles_of(&store, "grâce").await,
        [store.session_handle(sessions[3].id)].into()
    );
    let history = scalar_strings(
        &conn,
        "SELECT version FROM seaql_migrations_tower_sessions WHERE version LIKE ? ORDER BY version",
        vec![format!("{table}/%").into()],
    )
    .await;
    assert_eq!(
        history,
        [
            format!("{table}/m20261125_000001_create_session_table"),
            format!("{table}/m20261125_000002_add_user_index"),
            format!("{table}/m20261201_000003_exact_keys"),
            format!("{table}/m20261202_000004_add_session_times"),
            format!("{table}/m20261203_000005_insert_instant_defaults"),
            format!("{table}/m20261204_000006_add_version"),
            format!("{table}/m20261206_000008_add_long_lived"),
        ]
    );
    drop_table(&conn, &table).await;
}

#[tokio::test]
async fn a_stored_id_that_is_not_utf8_is_a_corrupt_row_error_not_a_panic() {
    let fixture = MySqlFixture::new().await;
    let store = fixture.store.clone().with_user_key("user_id").unwrap();
    let mut ada = session_of("ada");
    store.create(&mut ada).await.unwrap();
    fixture
        .conn
        .execute_unprepared(&format!(
            "UPDATE `{}` SET id = X'61FF62' WHERE user_key = 'ada'",
            fixture.table
        ))
        .await
        .unwrap();

    let err = store.user_sessions("ada").await.unwrap_err();

    assert!(
        matches!(
            err,
            tower_sessions_seaorm_store::SeaOrmStoreError::Database(
                tower_sessions_seaorm_store::repository::RepositoryError::CorruptRow(_)
            )
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    fixture.finish().await;
}

#[tokio::test]
async fn through_sqlx_a_varbinary_key_does_not_read_as_a_string_so_keys_are_read_as_bytes() {
    // Why `Dialect::read_key` reads bytes: sqlx refuses a `binary`-collated column as `String`.
    use tower_sessions_seaorm_store::sea_orm::sqlx::{self, AssertSqlSafe};
    let fixture = MySqlFixture::new().await;
    fixture
        .store
        .repository()
        .insert_if_absent(common::row("abc", b"x", common::suite::in_a_day()))
        .await
        .unwrap();
    let pool = fixture.conn.get_mysql_connection_pool();
    let sql = format!("SELECT id FROM `{}`", fixture.table);

    let as_string = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.clone()))
        .fetch_one(pool)
        .await;
    let as_bytes = sqlx::query_scalar::<_, Vec<u8>>(AssertSqlSafe(sql))
        .fetch_one(pool)
        .await;

    let err = as_string.unwrap_err().to_string();
    assert!(err.contains("mismatched types"), "{err}");
    assert_eq!(as_bytes.unwrap(), b"abc");
    fixture.finish().await;
}

/// Inserts a row into `table` the way another writer would, without `created_at` and
/// `updated_at`, through a connection in the session time zone `zone`.
async fn insert_without_instants(table: &str, id: &str, zone: &str) {
    let zoned = connect_mysql_with(&mysql_url(), 1).await;
    zoned
        .execute_unprepared(&format!("SET time_zone = '{zone}'"))
        .await
        .unwrap();
    zoned
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT INTO `{table}` (`id`, `data`, `expiry_date`) \
                 VALUES (?, 'raw', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR)"
            ),
            [id.into()],
        ))
        .await
        .expect("an insert without the instants");
    let _ = zoned.close().await;
}

/// The creation instant of the row `id`, if it is live for a store whose absolute lifetime
/// began at `born_after`.
async fn created_at_of(
    store: &MySqlStore,
    id: &str,
    born_after: OffsetDateTime,
) -> Option<OffsetDateTime> {
    store
        .repository()
        .find_unexpired(id, OffsetDateTime::now_utc(), Some(born_after), None)
        .await
        .unwrap()
        .map(|row| row.created_at.expect("read with an absolute lifetime"))
}

#[tokio::test]
async fn a_row_inserted_without_created_at_counts_its_lifetime_from_its_insert_in_any_time_zone() {
    let fixture = MySqlFixture::new().await;
    // Real time is the point: the default must be the insert's instant, not the migration's,
    // and the two must lie apart for the test to tell them.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (n, zone) in ["+13:00", "-12:00"].into_iter().enumerate() {
        let id = format!("written-by-another-tool-{n}");
        let before = OffsetDateTime::now_utc();
        insert_without_instants(&fixture.table, &id, zone).await;
        let after = OffsetDateTime::now_utc();

        let created = created_at_of(&fixture.store, &id, before - Duration::milliseconds(100))
            .await
            .unwrap_or_else(|| panic!("in {zone}: live, created at its insert"));
        assert!(
            created <= after + Duration::milliseconds(100),
            "in {zone}: {created} is not the insert's instant, in UTC"
        );
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_gives_a_table_of_the_fourth_migration_insert_instant_defaults_under_eight_replicas(
) {
    use tower_sessions_seaorm_store::migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        AddLongLived, AddSessionTimes, AddUserIndex, CreateSessionTable, ExactKeys,
    };
    let conn = connect_mysql(&mysql_url()).await;
    let table = unique_name("ts_defaults");
    let manager = SchemaManager::new(&conn);
    CreateSessionTable::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    AddUserIndex::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    ExactKeys::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    AddSessionTimes::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    // The long-lived marker today's store writes.
    AddLongLived::new("ignored", &table)
        .up(&manager)
        .await
        .unwrap();
    let store = MySqlStore::new(conn.clone())
        .with_table_name(&table)
        .unwrap()
        .with_user_key("user_id")
        .unwrap();
    let mut record = session_of("ada");
    store.create(&mut record).await.unwrap();
    let listed_before = store.user_sessions("ada").await.unwrap();
    // Real time is the point, as above.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    common::migrate_concurrently(
        8,
        || {
            MySqlStore::new(conn.clone())
                .with_table_name(&table)
                .unwrap()
        },
        "the insert instant defaults",
    )
    .await;

    assert_eq!(
        crate::common::without_base(store.load(&record.id).await.unwrap()).as_ref(),
        Some(&record)
    );
    assert_eq!(store.user_sessions("ada").await.unwrap(), listed_before);
    let defaults = scalar_strings(
        &conn,
        "SELECT LOWER(COLUMN_DEFAULT) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
         AND COLUMN_NAME IN ('created_at', 'updated_at')",
        vec![table.clone().into()],
    )
    .await;
    assert_eq!(defaults, ["utc_timestamp(6)", "utc_timestamp(6)"]);
    let before = OffsetDateTime::now_utc();
    insert_without_instants(&table, "written-after-the-upgrade", "+13:00").await;
    assert!(created_at_of(
        &store,
        "written-after-the-upgrade",
        before - Duration::milliseconds(100)
    )
    .await
    .is_some());
    drop_table(&conn, &table).await;
}
