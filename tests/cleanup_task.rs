//! The cleanup task: deletes expired sessions periodically, survives database errors, stops on
//! shutdown, never touches a live session.

mod common;

use std::time::Duration as StdDuration;

use common::{connect_postgres, database_url, unique_name, PgFixture};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::SessionRepository, sea_orm::ConnectionTrait, Id, PostgresStore, SessionStore,
};

/// Polls `check` until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: StdDuration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        // Real time: the task runs on its own period; poll until the deadline.
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    false
}

/// Whether the row of `id` leaves the table within 10 s. Looking "from the past" sees expired
/// rows that are still in the table.
async fn row_disappears(store: &PostgresStore, id: Id) -> bool {
    let repo = store.repository().clone();
    eventually(StdDuration::from_secs(10), || {
        let repo = repo.clone();
        let id = id.to_string();
        async move {
            repo.find_unexpired(&id, OffsetDateTime::UNIX_EPOCH, None, None)
                .await
                .unwrap()
                .is_none()
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_deletes_expired_sessions_and_keeps_live_ones() {
    let fixture = PgFixture::new().await;
    let store = fixture.store.clone();
    let mut live = common::suite::record(OffsetDateTime::now_utc() + Duration::hours(1));
    store.create(&mut live).await.unwrap();
    let mut expired = common::suite::record(OffsetDateTime::now_utc() - Duration::seconds(1));
    store.create(&mut expired).await.unwrap();

    let task = store.spawn_cleanup_task(StdDuration::from_millis(50));
    let gone = row_disappears(&store, expired.id).await;
    assert!(gone, "the expired row is deleted by the task");
    assert_eq!(
        crate::common::without_base(store.load(&live.id).await.unwrap()),
        Some(live)
    );

    task.shutdown().await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_keeps_running_across_database_errors() {
    // The table does not exist yet: every cleanup fails until it is created.
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_cleanup");
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    let task = store.spawn_cleanup_task(StdDuration::from_millis(50));
    // Real time is the point: several periods of failing cleanups pass.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(!task.is_finished(), "errors must not end the task");

    store.migrate().await.unwrap();
    let mut expired = common::suite::record(OffsetDateTime::now_utc() - Duration::seconds(1));
    store.create(&mut expired).await.unwrap();
    let gone = row_disappears(&store, expired.id).await;
    assert!(gone, "once the table exists, the same task cleans it");

    task.shutdown().await;
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_stops_the_task() {
    let fixture = PgFixture::new().await;
    let task = fixture
        .store
        .spawn_cleanup_task(StdDuration::from_secs(3600));
    assert!(!task.is_finished());
    tokio::time::timeout(StdDuration::from_secs(5), task.shutdown())
        .await
        .expect("shutdown returns promptly even mid-wait");
    fixture.finish().await;
}
