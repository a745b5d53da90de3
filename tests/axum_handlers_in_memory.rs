//! Testing an Axum application's session behaviour with no database: the demo application over
//! the in-memory repository, wrapped in the fault injector to make the database fail, slow down
//! or hang.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::demo_app::{app, body, send, session_cookie, session_id, PATIENT};
use tower_sessions_seaorm_store::{
    repository::SessionRepository,
    testing::{Fault, FaultController, FaultyRepository, InMemoryRepository},
    Operation, RepositoryStore,
};

/// The in-memory repository (to look inside), and a fault controller in front of it.
fn database() -> (
    InMemoryRepository,
    FaultController,
    FaultyRepository<InMemoryRepository>,
) {
    let sessions = InMemoryRepository::new();
    let repository = FaultyRepository::new(sessions.clone());
    (sessions, repository.controller(), repository)
}

#[tokio::test]
async fn login_stores_the_user_id_and_me_reads_it_back_with_the_cookie() {
    let (sessions, _, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let login = send(&app, "POST", "/login/42", None).await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = session_cookie(&login).expect("login sets a session cookie");
    assert_eq!(sessions.len(), 1);
    let now = time::OffsetDateTime::now_utc();
    assert!(sessions
        .find_unexpired(session_id(&cookie), now, None, None)
        .await
        .unwrap()
        .is_some());

    let me = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(body(me).await, "user 42");
}

#[tokio::test]
async fn me_without_a_session_is_unauthorized_and_stores_nothing() {
    let (sessions, faults, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let me = send(&app, "GET", "/me", None).await;

    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&me).is_none());
    assert!(sessions.is_empty());
    assert_eq!(faults.total_calls(), 0, "no cookie, no database call");
}

#[tokio::test]
async fn logout_deletes_the_session() {
    let (sessions, _, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);
    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();

    let logout = send(&app, "POST", "/logout", Some(&cookie)).await;

    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(sessions.is_empty());
    let me = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn when_the_database_is_down_me_answers_the_applications_503() {
    let (_, faults, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);
    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();

    faults.inject(Fault::unavailable());
    let me = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(me).await, "sessions are unavailable, try again");

    faults.clear();
    let me = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(body(me).await, "user 42", "the session survived the outage");
}

#[tokio::test]
async fn when_saving_fails_the_layer_replaces_the_response_with_an_empty_500() {
    let (sessions, faults, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);
    faults.inject(Fault::unavailable().on(Operation::Create));

    let login = send(&app, "POST", "/login/42", None).await;

    // The handler said "welcome"; tower-sessions saves after it, fails, and answers for it.
    assert_eq!(login.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(session_cookie(&login).is_none());
    assert_eq!(body(login).await, "");
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn a_slow_database_slows_requests_down_but_they_still_succeed() {
    let (_, faults, repository) = database();
    faults.inject(Fault::latency(Duration::from_millis(20)));
    let app = app(RepositoryStore::from_repository(repository), PATIENT);

    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();
    let me = send(&app, "GET", "/me", Some(&cookie)).await;

    assert_eq!(body(me).await, "user 42");
    assert_eq!(faults.calls(Operation::Create), 1);
    assert_eq!(faults.calls(Operation::Load), 1);
}

#[tokio::test]
async fn a_hung_database_read_is_given_up_at_the_applications_deadline() {
    let (_, faults, repository) = database();
    let app = app(
        RepositoryStore::from_repository(repository),
        Duration::from_millis(50),
    );
    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();

    faults.inject(Fault::hang().on(Operation::Load));
    let me = send(&app, "GET", "/me", Some(&cookie)).await;

    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn a_hung_database_read_fails_at_the_stores_operation_timeout() {
    let (_, faults, repository) = database();
    // The application waits 30 s; the store gives up first, after its default 5 s.
    let app = app(RepositoryStore::from_repository(repository), PATIENT);
    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();

    faults.inject(Fault::hang().on(Operation::Load));
    // The paused clock jumps to the store's timeout as soon as everything waits.
    let me = send(&app, "GET", "/me", Some(&cookie)).await;

    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(me).await, "sessions are unavailable, try again");
}

#[tokio::test]
async fn a_request_waiting_on_a_hung_database_completes_once_it_recovers() {
    let (_, faults, repository) = database();
    let app = app(RepositoryStore::from_repository(repository), PATIENT);
    let cookie = session_cookie(&send(&app, "POST", "/login/42", None).await).unwrap();

    faults.inject(Fault::hang().on(Operation::Load));
    let in_flight = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "GET", "/me", Some(&cookie)).await }
    });
    while faults.calls(Operation::Load) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!in_flight.is_finished());

    faults.clear();
    let me = in_flight.await.unwrap();
    assert_eq!(body(me).await, "user 42");
}
