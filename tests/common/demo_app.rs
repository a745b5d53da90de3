//! A small application under test, as an application team would write it: log in, ask who is
//! logged in, log out. It answers 503 itself when its session store fails, so the tests can tell
//! its choices from the responses tower-sessions' layer makes on its own (an empty 500).

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_sessions::{Session, SessionManagerLayer, SessionStore};

pub const USER_ID: &str = "user_id";

/// The application's answer when sessions cannot be read or written from a handler.
fn sessions_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "sessions are unavailable, try again",
    )
        .into_response()
}

/// The application over `store`; a session read that takes longer than `read_deadline` is
/// given up, and answered like a failed one.
pub fn app(store: impl SessionStore + Clone, read_deadline: Duration) -> Router {
    Router::new()
        .route("/login/{user_id}", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(read_deadline)
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

async fn login(session: Session, Path(user_id): Path<u64>) -> Response {
    match session.insert(USER_ID, user_id).await {
        Ok(()) => "welcome".into_response(),
        Err(_) => sessions_unavailable(),
    }
}

async fn me(session: Session, State(read_deadline): State<Duration>) -> Response {
    match tokio::time::timeout(read_deadline, session.get::<u64>(USER_ID)).await {
        Ok(Ok(Some(user_id))) => format!("user {user_id}").into_response(),
        Ok(Ok(None)) => StatusCode::UNAUTHORIZED.into_response(),
        Ok(Err(_)) | Err(_) => sessions_unavailable(),
    }
}

async fn logout(session: Session) -> Response {
    match session.flush().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => sessions_unavailable(),
    }
}

/// A generous deadline: only a hung store reaches it.
pub const PATIENT: Duration = Duration::from_secs(30);

/// Sends `method path` with `cookie` (an `id=…` pair) through a clone of `app`.
pub async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// The `id=…` pair of the response's session cookie, if it set one.
pub fn session_cookie(response: &Response) -> Option<String> {
    let value = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned())
}

/// The session id in an `id=…` pair.
pub fn session_id(cookie: &str) -> &str {
    cookie.trim_start_matches("id=")
}

pub async fn body(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
