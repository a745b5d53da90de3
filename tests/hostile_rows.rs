//! Rows the store did not write, with expiries its drivers cannot turn into a `time` instant:
//! PostgreSQL's `'infinity'` and years beyond 9999, MySQL's invalid dates, SQLite values of
//! any type. Listing a user's sessions reads the expiry column: such a row is listed with a
//! clamped expiry (PostgreSQL) or refused as a corrupt row, never a panic.
//!
//! Each listing runs in a task of its own, so that a panic in a driver fails the test with the
//! row that caused it instead of tearing the runtime down.

mod common;

use std::fmt::Debug;

use time::macros::datetime;
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::{RepositoryError, SessionRepository},
    sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait},
    RepositoryStore, SeaOrmStoreError, UserSession,
};

/// The last instant the store reads from PostgreSQL: the last microsecond of year 9999, UTC.
const LATEST: time::OffsetDateTime = datetime!(9999-12-31 23:59:59.999_999 UTC);

/// `user`'s sessions, listed in a task of its own; a panic fails the test, naming `rows`.
async fn listed<R, C>(
    store: &RepositoryStore<R, C>,
    user: &str,
    rows: &str,
) -> Result<Vec<UserSession>, SeaOrmStoreError>
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let store = store.clone().with_user_key("user_id").unwrap();
    let user = user.to_owned();
    match tokio::spawn(async move { store.user_sessions(&user).await }).await {
        Ok(result) => result,
        Err(err) => panic!("listing a user with {rows} did not finish: {err}"),
    }
}

/// Rows of user `ada` expiring at `'infinity'`, `'-infinity'`, in year 12000 and at
/// PostgreSQL's last instant, written by plain SQL into `table`; the listing shows the three
/// live ones with year 9999's last microsecond as their expiry, and signing one out works.
async fn postgres_rows_beyond_year_9999_are_listed_clamped<R, C>(
    store: &RepositoryStore<R, C>,
    conn: &DatabaseConnection,
    table: &str,
) where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let expiries = [
        "infinity",
        "-infinity",
        "12000-01-01 00:00:00+00",
        "294276-12-31 23:59:59.999999+00",
    ];
    for (n, expiry) in expiries.iter().enumerate() {
        conn.execute_unprepared(&format!(
            "INSERT INTO {table} (id, data, expiry_date, user_key) \
             VALUES ('hostile-{n}', '\\x00', '{expiry}', 'ada')"
        ))
        .await
        .unwrap();
    }
    let sessions = listed(store, "ada", "expiries beyond year 9999")
        .await
        .expect("the rows are listed");
    let expiries: Vec<_> = sessions.iter().map(|s| s.expiry_date).collect();
    assert_eq!(
        expiries, [LATEST; 3],
        "'-infinity' is expired, the others clamped"
    );

    let indexed = store.clone().with_user_key("user_id").unwrap();
    let handle = sessions[0].handle.clone();
    let deleted = tokio::spawn(async move { indexed.delete_user_session("ada", &handle).await });
    assert!(deleted.await.expect("no panic").unwrap(), "signed out");
    let left = listed(store, "ada", "expiries beyond year 9999")
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_rows_expiring_at_infinity_or_after_year_9999_clamped() {
    let fixture = common::PgFixture::new().await;
    postgres_rows_beyond_year_9999_are_listed_clamped(
        &fixture.store,
        &fixture.conn,
        &fixture.table(),
    )
    .await;
    fixture.finish().await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_postgres_lists_rows_expiring_at_infinity_or_after_year_9999_clamped() {
    let fixture = common::lean::LeanFixture::new().await;
    let table = format!("\"{}\".\"session\"", fixture.schema);
    postgres_rows_beyond_year_9999_are_listed_clamped(&fixture.store, &fixture.conn, &table).await;
    fixture.finish().await;
}

fn is_corrupt_row(result: &Result<Vec<UserSession>, SeaOrmStoreError>) -> bool {
    matches!(
        result,
        Err(SeaOrmStoreError::Database(RepositoryError::CorruptRow(_)))
    )
}

/// SQLite stores any value in any column: an integer beyond `time`'s years, a real, a text, a
/// blob, each in a row of its own user, each after every integer in the column's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_expiries_that_are_no_instant_as_corrupt_rows() {
    let fixture = common::sqlite::SqliteFixture::file().await;
    let values = [
        ("i64::MAX", "9223372036854775807"),
        ("year 10000", "253402300800000000"),
        ("a real", "1e300"),
        ("a text", "'tomorrow'"),
        ("a blob", "x'00'"),
    ];
    for (n, (what, value)) in values.iter().enumerate() {
        let user = format!("user-{n}");
        fixture
            .conn
            .execute_unprepared(&format!(
                "INSERT INTO \"session\" (id, data, expiry_date, user_key) \
                 VALUES ('hostile-{n}', x'00', {value}, '{user}')"
            ))
            .await
            .unwrap();
        let result = listed(&fixture.store, &user, what).await;
        assert!(is_corrupt_row(&result), "{what}: {result:?}");
    }
    fixture.finish().await;
}

/// MySQL and MariaDB store dates with a zero month or day, and the zero date, when `sql_mode`
/// allows them; written in a transaction of its own that allows them, each for its own user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_invalid_dates_as_corrupt_rows_or_skips_them_as_expired() {
    let fixture = common::mysql::MySqlFixture::new().await;
    let values = [
        ("a zero month and day", "9999-00-00 00:00:00", true),
        ("a zero day", "9999-12-00 00:00:00", true),
        ("the zero date", "0000-00-00 00:00:00", false),
    ];
    for (n, (what, value, live)) in values.iter().enumerate() {
        let user = format!("user-{n}");
        let txn = fixture.conn.begin().await.unwrap();
        txn.execute_unprepared("SET SESSION sql_mode = ''")
            .await
            .unwrap();
        txn.execute_unprepared(&format!(
            "INSERT INTO `{}` (id, data, expiry_date, user_key) \
             VALUES ('hostile-{n}', x'00', '{value}', '{user}')",
            fixture.table
        ))
        .await
        .unwrap();
        txn.execute_unprepared("SET SESSION sql_mode = DEFAULT")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let result = listed(&fixture.store, &user, what).await;
        if *live {
            assert!(is_corrupt_row(&result), "{what}: {result:?}");
        } else {
            assert!(
                matches!(&result, Ok(s) if s.is_empty()),
                "{what}: {result:?}"
            );
        }
    }
    fixture.finish().await;
}
