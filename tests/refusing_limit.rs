//! The per-user limit that refuses logins, where a backend's lock could outlive its login: a
//! login abandoned by the operation timeout while it holds the user's lock (its save waits on a
//! row another transaction holds) writes nothing, and leaves the lock to no connection, so the
//! user's next logins, through another pool, are admitted at once. MySQL's `GET_LOCK` belongs
//! to the connection, not the transaction: released by the driver after the rollback.
//! PostgreSQL's advisory lock is the transaction's: released by the rollback (SeaORM) or the
//! closed connection (the lean store). And the guide's axum handler answering a refused login,
//! run over the in-memory repository.
//!
//! The backend-generic scenarios (concurrent logins, a refused login writing nothing, a logout
//! freeing a slot) are in `common/refuse.rs`, run by every `*_suite.rs`.

mod common;

use std::time::{Duration as StdDuration, Instant};

#[cfg(feature = "tokio-postgres")]
use common::lean::LeanFixture;
use common::{mysql::MySqlFixture, PgFixture};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait},
    Id, Record, RepositoryStore, SeaOrmStoreError, SessionStore,
};

fn refusing<R, C>(store: RepositoryStore<R, C>) -> RepositoryStore<R, C>
where
    R: SessionRepository,
    C: Codec,
{
    store
        .with_user_key("user_id")
        .unwrap()
        .with_max_sessions_per_user(2)
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap()
}

fn record(user: Option<&str>) -> Record {
    let mut data = std::collections::HashMap::new();
    if let Some(user) = user {
        data.insert("user_id".to_owned(), json!(user));
    }
    data.insert("cart".to_owned(), json!([]));
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1),
    }
}

/// The scenario: `store` and `replica` reach one table, `table` quoted as `blocker`'s SQL
/// names it.
async fn an_abandoned_login_leaves_the_users_lock_to_no_connection<R, C>(
    store: RepositoryStore<R, C>,
    replica: RepositoryStore<R, C>,
    blocker: &DatabaseConnection,
    table: &str,
) where
    R: SessionRepository + std::fmt::Debug,
    C: Codec + std::fmt::Debug,
{
    let impatient = refusing(store).with_operation_timeout(Some(StdDuration::from_millis(300)));
    let replica = refusing(replica);
    let ada = format!("abandoned-{}", Id::default());
    let mut anonymous = record(None);
    impatient.create(&mut anonymous).await.unwrap();
    let mut login = impatient.load(&anonymous.id).await.unwrap().unwrap();
    login.data.insert("user_id".into(), json!(ada));

    // Another transaction holds the session's row: the login takes the user's lock, counts,
    // then waits on the row until the operation timeout gives it up.
    let holding = blocker.begin().await.unwrap();
    holding
        .execute_unprepared(&format!(
            "SELECT id FROM {table} WHERE id = '{}' FOR UPDATE",
            anonymous.id
        ))
        .await
        .unwrap();
    let err = impatient.save(&login).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err:?}");
    holding.commit().await.unwrap();

    // A lock left held would make these wait 10 s (MySQL) or for ever, past the operation
    // timeout of 5 s.
    let started = Instant::now();
    for _ in 0..2 {
        let mut device = record(Some(&ada));
        replica.create(&mut device).await.unwrap();
    }
    let mut third = record(Some(&ada));
    let refused = replica.create(&mut third).await.unwrap_err();
    assert!(
        SeaOrmStoreError::is_too_many_sessions(&refused),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < StdDuration::from_secs(3),
        "the user's next logins waited {:?}",
        started.elapsed()
    );
    let stored = replica.load(&anonymous.id).await.unwrap().unwrap();
    assert_eq!(
        stored.data.get("user_id"),
        None,
        "the abandoned login wrote nothing"
    );
    assert_eq!(replica.count_user_sessions(&ada).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_an_abandoned_login_releases_its_get_lock() {
    let fixture = MySqlFixture::new().await;
    let replica =
        MySqlFixture::on(common::mysql::connect_mysql(&common::mysql::mysql_url()).await).await;
    let replica_store = replica
        .store
        .clone()
        .with_table_name(&fixture.table)
        .unwrap();
    let table = format!("`{}`", fixture.table);
    an_abandoned_login_leaves_the_users_lock_to_no_connection(
        fixture.store.clone(),
        replica_store,
        &replica.conn,
        &table,
    )
    .await;
    replica.finish().await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_abandoned_login_rolls_back_its_advisory_lock() {
    let fixture = PgFixture::new().await;
    let other = common::connect_postgres(&fixture.url).await;
    let replica = tower_sessions_seaorm_store::PostgresStore::new(other.clone())
        .with_schema_name(&fixture.schema)
        .unwrap();
    let table = fixture.table();
    an_abandoned_login_leaves_the_users_lock_to_no_connection(
        fixture.store.clone(),
        replica,
        &other,
        &table,
    )
    .await;
    fixture.finish().await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_an_abandoned_login_closes_its_connection_and_so_its_lock() {
    let fixture = LeanFixture::new().await;
    let replica = tower_sessions_seaorm_store::LeanPostgresStore::new(common::lean::lean_pool(
        &common::database_url(),
    ))
    .with_schema_name(&fixture.schema)
    .unwrap();
    let table = format!("\"{}\".\"session\"", fixture.schema);
    let blocker = fixture.conn.clone();
    an_abandoned_login_leaves_the_users_lock_to_no_connection(
        fixture.store.clone(),
        replica,
        &blocker,
        &table,
    )
    .await;
    fixture.finish().await;
}

/// The handler of docs/features.md, over the in-memory repository: a login at the limit is
/// answered 409 with the message, sets no cookie and stores nothing; a logout frees the slot.
#[tokio::test]
async fn the_guides_handler_answers_a_refused_login_with_409_and_stores_nothing() {
    use axum::{
        http::StatusCode,
        response::{IntoResponse, Response},
        routing::post,
        Router,
    };
    use common::demo_app::{body, send, session_cookie};
    use tower_sessions::{Session, SessionManagerLayer};
    use tower_sessions_seaorm_store::testing::InMemoryRepository;

    async fn log_in(session: Session) -> Response {
        if session.cycle_id().await.is_err() || session.insert("user_id", 42).await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        match session.save().await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(err) if SeaOrmStoreError::is_too_many_sessions(&err) => {
                let _ = session.flush().await;
                let message = "You are signed in on too many devices: sign out of one first.";
                (StatusCode::CONFLICT, message).into_response()
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }

    async fn log_out(session: Session) -> StatusCode {
        match session.flush().await {
            Ok(()) => StatusCode::NO_CONTENT,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    let sessions = InMemoryRepository::new();
    let store = RepositoryStore::from_repository(sessions.clone())
        .with_user_key("user_id")
        .unwrap()
        .with_max_sessions_per_user(1)
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap();
    let app = Router::new()
        .route("/login", post(log_in))
        .route("/logout", post(log_out))
        .layer(SessionManagerLayer::new(store.clone()));

    let first = send(&app, "POST", "/login", None).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let cookie = session_cookie(&first).expect("the login sets a cookie");

    let refused = send(&app, "POST", "/login", None).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        session_cookie(&refused).is_none(),
        "no cookie for a refused login"
    );
    assert!(body(refused).await.contains("too many devices"));
    assert_eq!(sessions.len(), 1, "nothing stored");

    let logout = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let again = send(&app, "POST", "/login", None).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(store.count_user_sessions("42").await.unwrap(), 1);
}
