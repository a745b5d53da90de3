//! An Axum application with `SessionManagerLayer` over the store, against PostgreSQL: insert,
//! read back with the cookie, cycle the id, flush.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::Response,
    routing::get,
    Router,
};
use common::PgFixture;
use http_body_util::BodyExt;
use time::Duration;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

fn app(fixture: &PgFixture) -> Router {
    let layer = SessionManagerLayer::new(fixture.store.clone())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    Router::new()
        .route(
            "/insert",
            get(|session: Session| async move {
                session.insert("answer", 42).await.unwrap();
            }),
        )
        .route(
            "/get",
            get(|session: Session| async move {
                let answer: Option<u32> = session.get("answer").await.unwrap();
                answer.map_or_else(|| "none".to_owned(), |a| a.to_string())
            }),
        )
        .route(
            "/cycle",
            get(|session: Session| async move {
                session.cycle_id().await.unwrap();
            }),
        )
        .route(
            "/flush",
            get(|session: Session| async move {
                session.flush().await.unwrap();
            }),
        )
        .layer(layer)
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

/// The `id=…` pair of the response's session cookie.
fn session_cookie(response: &Response) -> Option<String> {
    let value = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned())
}

async fn body(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn stored_ids(fixture: &PgFixture) -> Vec<String> {
    let sql = format!("SELECT id FROM {} ORDER BY id", fixture.table());
    common::scalar_strings(&fixture.conn, &sql, vec![]).await
}

#[tokio::test]
async fn a_session_lives_through_insert_read_cycle_and_flush() {
    let fixture = PgFixture::new().await;
    let app = app(&fixture);

    // Nothing stored for a request that does not touch the session.
    let response = call(&app, "/get", None).await;
    assert!(session_cookie(&response).is_none());
    assert_eq!(body(response).await, "none");
    assert!(stored_ids(&fixture).await.is_empty());

    // Insert: a cookie, and one row whose id is the cookie's value.
    let response = call(&app, "/insert", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response).expect("a session cookie");
    let first_id = cookie.trim_start_matches("id=").to_owned();
    assert_eq!(stored_ids(&fixture).await, vec![first_id.clone()]);

    // Read back with the cookie.
    let response = call(&app, "/get", Some(&cookie)).await;
    assert_eq!(body(response).await, "42");

    // Cycle: a new id in a new cookie, the data moves with it, the old row is gone.
    let response = call(&app, "/cycle", Some(&cookie)).await;
    let cycled = session_cookie(&response).expect("a new cookie after cycle_id");
    let second_id = cycled.trim_start_matches("id=").to_owned();
    assert_ne!(second_id, first_id);
    assert_eq!(stored_ids(&fixture).await, vec![second_id.clone()]);
    assert_eq!(body(call(&app, "/get", Some(&cycled)).await).await, "42");
    assert_eq!(body(call(&app, "/get", Some(&cookie)).await).await, "none");

    // Flush: the row is deleted and the data is gone for that cookie.
    call(&app, "/flush", Some(&cycled)).await;
    assert!(stored_ids(&fixture).await.is_empty());
    assert_eq!(body(call(&app, "/get", Some(&cycled)).await).await, "none");

    fixture.finish().await;
}
