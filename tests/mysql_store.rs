//! MySQL/MariaDB specifics: the session time zone, case-sensitive ids, concurrent migrations,
//! the table's shape, why `create` is a plain INSERT, and the move to hashed ids.

mod common;

use common::scalar_strings;

use common::{
    mysql::{connect_mysql, connect_mysql_with, drop_table, mysql_url, MySqlFixture},
    unique_name,
};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    ports::SessionRepository,
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
                store.load(&rec.id).await.unwrap().as_ref(),
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
                fixture.store.load(&rec.id).await.unwrap().as_ref(),
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
        repo.find_unexpired("AbCdEfGhIjKlMnOpQrStUv", now)
            .await
            .unwrap(),
        Some(b"upper".to_vec())
    );
    assert_eq!(
        repo.find_unexpired("abcdefghijklmnopqrstuv", now)
            .await
            .unwrap(),
        Some(b"lower".to_vec())
    );
    assert_eq!(
        repo.find_unexpired("ABCDEFGHIJKLMNOPQRSTUV", now)
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
        repo.find_unexpired("b", OffsetDateTime::now_utc())
            .await
            .unwrap(),
        Some(b"x".to_vec()),
        "the taken id keeps its session"
    );
    fixture.finish().await;
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
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec));
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
                format!("{table}/m20261125_000002_add_user_index")
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
            "id varchar(128) ascii_bin NO PRI",
            "data longblob - NO ",
            "expiry_date datetime(6) - NO MUL",
            "user_key varchar(255) utf8mb4_bin YES MUL",
            "data_digest varbinary(32) - YES ",
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
    let ids = scalar_strings(&conn, &format!("SELECT id FROM `{table}`"), vec![]).await;
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

    assert_eq!(hashed.load(&rec.id).await.unwrap().as_ref(), Some(&rec));
    fixture.finish().await;
}
