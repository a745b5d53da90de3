//! Revocation is final: a request that loaded a session before it was logged out (by another
//! tab, by "log out everywhere", by "log out my other devices") and saves after that must not
//! bring it back. Two real requests on one cookie through axum and `SessionManagerLayer`, the
//! slow one held between its load and its save while the other logs out.

mod common;

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, Request},
    response::Response,
    routing::get,
    Router,
};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_seaorm_store::PostgresStore;

/// The store on every backend: it speaks the SQL of its connection.
type Store = PostgresStore;

/// The slow request's two checkpoints: it says when it has loaded the session, and waits to be
/// let go before it answers (and so before the layer saves).
#[derive(Default)]
struct Gate {
    loaded: Notify,
    release: Notify,
}

struct AppState {
    store: Store,
    gate: Gate,
}

fn app(state: Arc<AppState>) -> Router {
    let layer = SessionManagerLayer::new(state.store.clone())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    Router::new()
        .route(
            "/login",
            get(|session: Session| async move {
                session.insert("user_id", "ada").await.unwrap();
            }),
        )
        .route(
            "/slow",
            get(
                |State(state): State<Arc<AppState>>, session: Session| async move {
                    // Loads the session and changes it: the layer saves it after the response.
                    session.insert("cart", ["book"]).await.unwrap();
                    state.gate.loaded.notify_one();
                    state.gate.release.notified().await;
                },
            ),
        )
        .route(
            "/logout",
            get(|session: Session| async move {
                session.flush().await.unwrap();
            }),
        )
        .route(
            "/logout-everywhere",
            get(|State(state): State<Arc<AppState>>| async move {
                state.store.delete_user_sessions("ada").await.unwrap();
            }),
        )
        .route(
            "/logout-others",
            get(
                |State(state): State<Arc<AppState>>, session: Session| async move {
                    let current = session.id().expect("a stored session");
                    state
                        .store
                        .delete_user_sessions_except("ada", current)
                        .await
                        .unwrap();
                },
            ),
        )
        .route(
            "/whoami",
            get(|session: Session| async move {
                let user: Option<String> = session.get("user_id").await.unwrap();
                user.unwrap_or_else(|| "anonymous".to_owned())
            }),
        )
        .layer(layer)
        .with_state(state)
}

async fn call(app: &Router, path: &str, cookie: Option<&str>) -> Response {
    let mut request = Request::builder().uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn session_cookie(response: &Response) -> String {
    let value = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    value.split(';').next().unwrap().to_owned()
}

async fn body(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn log_in(app: &Router) -> String {
    let cookie = session_cookie(&call(app, "/login", None).await);
    assert_eq!(body(call(app, "/whoami", Some(&cookie)).await).await, "ada");
    cookie
}

/// Holds a `/slow` request with `slow_cookie` between its load and its save, runs `logout`
/// (a request on `logout_cookie`), lets the slow request finish, and checks that the session of
/// `slow_cookie` is gone for good: in the table and for the next request.
async fn slow_request_across_a_logout(
    state: &Arc<AppState>,
    slow_cookie: &str,
    logout: &str,
    logout_cookie: &str,
) {
    let app = app(Arc::clone(state));
    let slow = tokio::spawn({
        let app = app.clone();
        let cookie = slow_cookie.to_owned();
        async move { call(&app, "/slow", Some(&cookie)).await }
    });
    state.gate.loaded.notified().await;

    call(&app, logout, Some(logout_cookie)).await;
    let id: tower_sessions::session::Id = slow_cookie
        .trim_start_matches("id=")
        .parse()
        .expect("a session id");
    assert_eq!(
        state.store.load(&id).await.unwrap(),
        None,
        "{logout} ended the session"
    );

    state.gate.release.notify_one();
    slow.await.expect("the slow request finished");

    assert_eq!(
        state.store.load(&id).await.unwrap(),
        None,
        "the slow request's save after {logout} must not bring the session back"
    );
    assert_eq!(
        body(call(&app, "/whoami", Some(slow_cookie)).await).await,
        "anonymous",
        "the revoked cookie is logged out"
    );
}

async fn revocation_is_final(store: Store) {
    let store = store.with_user_key("user_id").unwrap();
    let state = Arc::new(AppState {
        store,
        gate: Gate::default(),
    });
    let app = app(Arc::clone(&state));

    // Logged out in another tab of the same browser.
    let cookie = log_in(&app).await;
    slow_request_across_a_logout(&state, &cookie, "/logout", &cookie).await;

    // Logged out everywhere, from another device.
    let cookie = log_in(&app).await;
    let other_device = log_in(&app).await;
    slow_request_across_a_logout(&state, &cookie, "/logout-everywhere", &other_device).await;

    // Another device logs out every device but itself.
    let cookie = log_in(&app).await;
    let other_device = log_in(&app).await;
    slow_request_across_a_logout(&state, &cookie, "/logout-others", &other_device).await;
    assert_eq!(
        body(call(&app, "/whoami", Some(&other_device)).await).await,
        "ada",
        "the device that logged the others out stays logged in"
    );
}

/// The store with write avoidance: a save that changes nothing must not revive a row either.
fn with_write_avoidance(store: &Store) -> Store {
    store
        .clone()
        .with_touch_after(std::time::Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_save_after_a_logout_does_not_log_the_device_back_in() {
    let fixture = common::PgFixture::new().await;
    revocation_is_final(fixture.store.clone()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_write_avoidance_a_save_after_a_logout_does_not_log_the_device_back_in() {
    let fixture = common::PgFixture::new().await;
    revocation_is_final(with_write_avoidance(&fixture.store)).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_hashed_ids_a_save_after_a_logout_does_not_log_the_device_back_in() {
    let fixture = common::PgFixture::new().await;
    revocation_is_final(fixture.store.clone().with_hashed_ids()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_save_after_a_logout_does_not_log_the_device_back_in() {
    let fixture = common::sqlite::SqliteFixture::file().await;
    revocation_is_final(with_write_avoidance(&fixture.store)).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_save_after_a_logout_does_not_log_the_device_back_in() {
    let fixture = common::mysql::MySqlFixture::new().await;
    revocation_is_final(with_write_avoidance(&fixture.store)).await;
    fixture.finish().await;
}
