//! Bounded latency when the database is away: each operation fails within the operation timeout
//! while PostgreSQL is stopped, succeeds again soon after it returns, and the health check
//! follows. Each test runs a PostgreSQL cluster of its own, so it can stop it.

mod common;

use std::time::{Duration, Instant};

use common::{connect_postgres, database_url, throwaway_pg::ThrowawayPostgres, unique_name};
use tower_sessions_seaorm_store::{
    repository::RepositoryError, sea_orm::Database, session_store, PostgresStore, SeaOrmStoreError,
    SessionStore,
};

/// What an operation may take beyond the timeout: scheduling, and the error's way back.
const MARGIN: Duration = Duration::from_millis(1500);

/// Retries `load` until it succeeds and returns how long that took, at most `limit`.
async fn time_to_recovery(store: &PostgresStore, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let id = tower_sessions_seaorm_store::Id::default();
    while started.elapsed() < limit {
        if store.load(&id).await.is_ok() {
            return Some(started.elapsed());
        }
        // Real time: polling a database that is coming back.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_timeout_operations_fail_fast_while_the_database_is_stopped_and_recover() {
    let pg = ThrowawayPostgres::start();
    // SeaORM's and sqlx's defaults: a 30 s acquire timeout, a ping before each acquire.
    let conn = Database::connect(pg.url())
        .await
        .expect("connect to the throwaway cluster");
    let store = PostgresStore::new(conn);
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    store
        .health()
        .await
        .expect("healthy while the database runs");

    pg.stop();

    let started = Instant::now();
    let err = store.load(&rec.id).await.unwrap_err();
    let first_error = started.elapsed();
    assert!(matches!(err, session_store::Error::Backend(_)), "{err:?}");
    assert!(
        first_error <= Duration::from_secs(5) + MARGIN,
        "the first error took {first_error:?}, beyond the 5 s default timeout"
    );
    let message = err.to_string();
    assert!(!message.contains(&rec.id.to_string()), "{message}");

    let started = Instant::now();
    let health = store.health().await.unwrap_err();
    assert!(started.elapsed() <= Duration::from_secs(5) + MARGIN);
    assert!(
        matches!(
            health,
            SeaOrmStoreError::TimedOut { .. }
                | SeaOrmStoreError::Database(RepositoryError::Unavailable(_))
        ),
        "the health check reports the database down: {health:?}"
    );

    let started = Instant::now();
    let save = store.save(&rec).await;
    assert!(save.is_err());
    assert!(started.elapsed() <= Duration::from_secs(5) + MARGIN);

    pg.resume();
    let recovery = time_to_recovery(&store, Duration::from_secs(10))
        .await
        .expect("the store recovers by itself");
    assert!(
        recovery <= Duration::from_secs(1),
        "operations succeed again {recovery:?} after the database returned"
    );
    store.health().await.expect("healthy again");
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
    eprintln!(
        "database away: first error after {} ms (timeout 5000 ms); recovered {} ms after restart",
        first_error.as_millis(),
        recovery.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_operation_timeout_bounds_every_operation() {
    let pg = ThrowawayPostgres::start();
    let conn = Database::connect(pg.url()).await.unwrap();
    let store = PostgresStore::new(conn).with_operation_timeout(Some(Duration::from_millis(800)));
    store.migrate().await.unwrap();
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();

    pg.stop();
    let limit = Duration::from_millis(800) + MARGIN;
    for (name, result, elapsed) in [
        {
            let t = Instant::now();
            let r = store.create(&mut rec.clone()).await.map(drop);
            ("create", r, t.elapsed())
        },
        {
            let t = Instant::now();
            let r = store.save(&rec).await;
            ("save", r, t.elapsed())
        },
        {
            let t = Instant::now();
            let r = store.load(&rec.id).await.map(drop);
            ("load", r, t.elapsed())
        },
        {
            let t = Instant::now();
            let r = store.delete(&rec.id).await;
            ("delete", r, t.elapsed())
        },
    ] {
        let err = result.expect_err(name);
        assert!(
            matches!(err, session_store::Error::Backend(_)),
            "{name}: {err:?}"
        );
        assert!(elapsed <= limit, "{name} took {elapsed:?}");
    }
    let t = Instant::now();
    assert!(store.delete_expired_sessions().await.is_err());
    assert!(t.elapsed() <= limit);
}

#[tokio::test]
async fn the_health_check_names_a_missing_table() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn)
        .with_schema_name(&unique_name("ts_unmigrated"))
        .unwrap();
    let err = store.health().await.unwrap_err();
    assert!(
        matches!(
            err,
            SeaOrmStoreError::Database(RepositoryError::MissingTable(_))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("migration"), "{err}");
}

#[tokio::test]
async fn the_health_check_passes_on_a_migrated_table() {
    let fixture = common::PgFixture::new().await;
    fixture.store.health().await.unwrap();
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_recommended_pool_options_the_pool_reports_the_outage_first() {
    let pg = ThrowawayPostgres::start();
    let mut options = tower_sessions_seaorm_store::sea_orm::ConnectOptions::new(pg.url());
    options
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1));
    let store = PostgresStore::new(Database::connect(options).await.unwrap());
    store.migrate().await.unwrap();

    pg.stop();
    let started = Instant::now();
    let err = store.health().await.unwrap_err();
    let first_error = started.elapsed();
    assert!(
        matches!(
            err,
            SeaOrmStoreError::Database(RepositoryError::Unavailable(_))
        ),
        "the pool's own timeout fires before the store's: {err:?}"
    );
    assert!(
        first_error <= Duration::from_secs(2) + MARGIN,
        "{first_error:?}"
    );

    pg.resume();
    let recovery = time_to_recovery(&store, Duration::from_secs(10))
        .await
        .expect("the store recovers by itself");
    assert!(recovery <= Duration::from_secs(1), "{recovery:?}");
    eprintln!(
        "database away, acquire_timeout 2 s: first error after {} ms; recovered {} ms after restart",
        first_error.as_millis(),
        recovery.as_millis()
    );
}
