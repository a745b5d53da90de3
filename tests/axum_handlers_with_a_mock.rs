//! Testing an Axum application's session behaviour with `MockSessionRepository` (feature
//! `mock`): exact expectations per call, and any answer the database could give, corrupt bytes
//! included. A call the test did not expect panics, so each test also shows what the application
//! did not do.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::demo_app::{app, body, send, session_cookie, session_id, PATIENT, USER_ID};
use mockall::predicate::{always, eq};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    codec::MessagePackCodec,
    repository::{FoundRow, RepositoryError},
    testing::MockSessionRepository,
    Id, Record, RepositoryStore,
};

fn down() -> RepositoryError {
    RepositoryError::Unavailable("connection refused".into())
}

/// A stored session of user 42, as the store would have written it.
/// The row of a session of user 42, as a repository finds it.
fn session_of_user_42(id: Id) -> FoundRow {
    let record = Record {
        id,
        data: [(USER_ID.to_owned(), json!(42))].into_iter().collect(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    FoundRow {
        data: MessagePackCodec.encode(&(&record).into()).unwrap(),
        created_at: None,
        version: 0,
        user_key: None,
        long_lived: None,
    }
}

#[tokio::test]
async fn login_creates_one_session_holding_the_user_id() {
    let inserted_id = Arc::new(Mutex::new(None));
    let mut repository = MockSessionRepository::new();
    let log = Arc::clone(&inserted_id);
    repository
        .expect_insert_if_absent()
        .withf(|row| {
            let record = MessagePackCodec.decode(&row.data).unwrap();
            record.data.get(USER_ID) == Some(&json!(42))
        })
        .times(1)
        .returning(move |row| {
            *log.lock().unwrap() = Some(row.id);
            Ok(true)
        });
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let login = send(&app, "POST", "/login/42", None).await;

    assert_eq!(login.status(), StatusCode::OK);
    let cookie = session_cookie(&login).expect("a session cookie");
    assert_eq!(
        inserted_id.lock().unwrap().as_deref(),
        Some(session_id(&cookie))
    );
}

#[tokio::test]
async fn me_loads_the_cookies_session_once_and_writes_nothing() {
    let id = Id::default();
    let mut repository = MockSessionRepository::new();
    repository
        .expect_find_unexpired()
        .with(eq(id.to_string()), always(), always(), always())
        .times(1)
        .returning(move |_, _, _, _| Ok(Some(session_of_user_42(id))));
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let me = send(&app, "GET", "/me", Some(&format!("id={id}"))).await;

    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(body(me).await, "user 42");
}

#[tokio::test]
async fn me_without_a_cookie_never_calls_the_database() {
    let repository = MockSessionRepository::new();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let me = send(&app, "GET", "/me", None).await;

    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn when_the_database_is_down_me_answers_the_applications_503() {
    let mut repository = MockSessionRepository::new();
    repository
        .expect_find_unexpired()
        .times(1)
        .returning(|_, _, _, _| Err(down()));
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let me = send(&app, "GET", "/me", Some(&format!("id={}", Id::default()))).await;

    // The load failed inside the handler, which chose its own answer.
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(me).await, "sessions are unavailable, try again");
}

#[tokio::test]
async fn when_the_stored_session_is_corrupt_me_answers_the_applications_503() {
    let mut repository = MockSessionRepository::new();
    repository
        .expect_find_unexpired()
        .times(1)
        .returning(|_, _, _, _| {
            Ok(Some(FoundRow {
                data: b"\xc1 not a session".to_vec(),
                created_at: None,
                version: 0,
                user_key: None,
                long_lived: None,
            }))
        });
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let me = send(&app, "GET", "/me", Some(&format!("id={}", Id::default()))).await;

    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn when_saving_fails_the_layer_replaces_the_response_with_an_empty_500() {
    let mut repository = MockSessionRepository::new();
    repository
        .expect_insert_if_absent()
        .times(1)
        .returning(|_| Err(down()));
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let login = send(&app, "POST", "/login/42", None).await;

    // The handler answered "welcome"; the save after it failed, and tower-sessions answered
    // instead, without a cookie. The application never sees this error.
    assert_eq!(login.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(session_cookie(&login).is_none());
    assert_eq!(body(login).await, "");
}

#[tokio::test]
async fn when_deleting_fails_logout_answers_503_and_nothing_is_saved() {
    let mut repository = MockSessionRepository::new();
    repository
        .expect_delete_by_id()
        .times(1)
        .returning(|_| Err(down()));
    // No `update_if_present` expected: after a 5xx from the handler, tower-sessions does not save.
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let logout = send(
        &app,
        "POST",
        "/logout",
        Some(&format!("id={}", Id::default())),
    )
    .await;

    assert_eq!(logout.status(), StatusCode::SERVICE_UNAVAILABLE);
}
