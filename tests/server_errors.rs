//! Both PostgreSQL repositories (SeaORM's and tokio-postgres') classify a server error the same
//! way: here a connection the server terminates (`pg_terminate_backend`, SQLSTATE 57P01) while
//! its statement waits on a row lock is the database being unavailable, not a failed statement.
#![cfg(feature = "tokio-postgres")]

mod common;

use std::{fmt::Debug, time::Duration};

use serde_json::json;
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::{RepositoryError, SessionRepository},
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait},
    RepositoryStore, SeaOrmStoreError, SessionStore,
};

/// The pid of the server process whose statement on `schema`'s table waits on a lock.
async fn waiting_backend(conn: &DatabaseConnection, schema: &str) -> i32 {
    for _ in 0..100 {
        let found = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                [schema.into()],
            ))
            .await
            .unwrap();
        if let Some(row) = found {
            return row.try_get_by_index::<i32>(0).unwrap();
        }
        // Polling the server until the statement reaches the lock: what the test waits for.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no statement on {schema} waited on the lock within 5 s");
}

/// "Log out everywhere" of a user whose session another transaction holds locked; the server
/// terminates the waiting connection: the store reports the database unavailable, naming
/// 57P01.
async fn a_terminated_connection_is_unavailable<R, C>(
    store: RepositoryStore<R, C>,
    conn: &DatabaseConnection,
    schema: &str,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = store.with_user_key("user_id").unwrap();
    let mut record = common::suite::record(common::suite::in_a_day());
    record.data.insert("user_id".to_owned(), json!("ada"));
    store.create(&mut record).await.unwrap();
    let blocker = conn.begin().await.unwrap();
    blocker
        .execute_unprepared(&format!(
            "SELECT 1 FROM \"{schema}\".\"session\" WHERE \"id\" = '{}' FOR UPDATE",
            record.id
        ))
        .await
        .unwrap();

    let logout = tokio::spawn(async move { store.delete_user_sessions("ada").await });
    let pid = waiting_backend(conn, schema).await;
    conn.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    let err = logout.await.unwrap().unwrap_err();
    blocker.rollback().await.unwrap();

    assert!(
        matches!(
            &err,
            SeaOrmStoreError::Database(RepositoryError::Unavailable(m)) if m.contains("57P01")
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seaorm_store_reports_a_terminated_connection_as_unavailable() {
    let fixture = common::PgFixture::new().await;
    a_terminated_connection_is_unavailable(fixture.store.clone(), &fixture.conn, &fixture.schema)
        .await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_store_reports_a_terminated_connection_as_unavailable() {
    let fixture = common::lean::LeanFixture::new().await;
    a_terminated_connection_is_unavailable(fixture.store.clone(), &fixture.conn, &fixture.schema)
        .await;
    fixture.finish().await;
}
