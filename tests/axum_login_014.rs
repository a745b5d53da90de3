//! axum-login 0.18 on tower-sessions 0.14 with this store, against PostgreSQL: a user logs in,
//! stays logged in across requests with the cookie, and logs out; and the per-user index finds
//! axum-login's user, to log them out on their other devices or everywhere.

mod common;

use std::{collections::HashMap, convert::Infallible};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use common::PgFixture;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_sessions_014::SessionManagerLayer;

#[derive(Debug, Clone)]
struct User {
    id: i64,
    name: String,
    password: String,
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        // Changing the password invalidates the user's sessions.
        self.password.as_bytes()
    }
}

#[derive(Debug, Clone)]
struct Credentials {
    name: String,
    password: String,
}

#[derive(Debug, Clone)]
struct Users(HashMap<i64, User>);

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Infallible> {
        Ok(self
            .0
            .values()
            .find(|u| u.name == creds.name && u.password == creds.password)
            .cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Infallible> {
        Ok(self.0.get(id).cloned())
    }
}

type Auth = AuthSession<Users>;

async fn login(mut auth: Auth, body: String) -> Response {
    let (name, password) = body.split_once(':').unwrap_or_default();
    let creds = Credentials {
        name: name.to_owned(),
        password: password.to_owned(),
    };
    match auth.authenticate(creds).await {
        Ok(Some(user)) => {
            auth.login(&user).await.expect("log in");
            StatusCode::OK.into_response()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn me(auth: Auth) -> String {
    auth.user.map_or_else(|| "nobody".to_owned(), |u| u.name)
}

async fn logout(mut auth: Auth) -> StatusCode {
    auth.logout().await.expect("log out");
    StatusCode::OK
}

fn app(fixture: &PgFixture) -> Router {
    app_on(fixture.store.clone())
}

fn app_on(store: tower_sessions_seaorm_store::PostgresStore) -> Router {
    let users = Users(
        [(
            1,
            User {
                id: 1,
                name: "ada".into(),
                password: "analytical-engine".into(),
            },
        )]
        .into_iter()
        .collect(),
    );
    // tower-sessions 0.14's layer, over the store as it is.
    let sessions = SessionManagerLayer::new(store).with_secure(false);
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(AuthManagerLayerBuilder::new(users, sessions).build())
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

fn cookie(response: &Response) -> Option<String> {
    let value = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned())
}

async fn text(response: Response) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

async fn stored_ids(fixture: &PgFixture) -> Vec<String> {
    let sql = format!("SELECT id FROM {}", fixture.table());
    common::scalar_strings(&fixture.conn, &sql, vec![]).await
}

#[tokio::test]
async fn a_user_logs_in_stays_logged_in_with_the_cookie_and_logs_out() {
    let fixture = PgFixture::new().await;
    let app = app(&fixture);

    assert_eq!(
        text(send(&app, "GET", "/me", None, "").await).await,
        "nobody"
    );

    let refused = send(&app, "POST", "/login", None, "ada:wrong").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let response = send(&app, "POST", "/login", None, "ada:analytical-engine").await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = cookie(&response).expect("a session cookie after logging in");
    let id = session.trim_start_matches("id=").to_owned();
    assert_eq!(
        stored_ids(&fixture).await,
        vec![id.clone()],
        "the session is in PostgreSQL"
    );

    for _ in 0..3 {
        let response = send(&app, "GET", "/me", Some(&session), "").await;
        assert_eq!(
            text(response).await,
            "ada",
            "still logged in with the cookie"
        );
    }

    let response = send(&app, "POST", "/logout", Some(&session), "").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(send(&app, "GET", "/me", Some(&session), "").await).await,
        "nobody"
    );
    assert!(
        !stored_ids(&fixture).await.contains(&id),
        "logging out removed the session row"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn the_per_user_index_finds_axum_logins_user_and_logs_them_out_everywhere() {
    let fixture = PgFixture::new().await;
    // axum-login 0.18 keeps its user id at "axum-login.data" / "user_id".
    let store = fixture
        .store
        .clone()
        .with_user_key("/axum-login.data/user_id")
        .unwrap();
    let app = app_on(store.clone());
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let response = send(&app, "POST", "/login", None, "ada:analytical-engine").await;
        cookies.push(cookie(&response).expect("a session cookie"));
    }
    assert_eq!(store.user_sessions("1").await.unwrap().len(), 3);

    // "Log out my other devices" from the first, with tower-sessions 0.14's id type.
    let current: tower_sessions_core_014::session::Id =
        cookies[0].trim_start_matches("id=").parse().unwrap();
    assert_eq!(
        store
            .delete_user_sessions_except("1", current)
            .await
            .unwrap(),
        2
    );
    for (n, session) in cookies.iter().enumerate() {
        let me = text(send(&app, "GET", "/me", Some(session), "").await).await;
        assert_eq!(me, if n == 0 { "ada" } else { "nobody" }, "device {n}");
    }

    // "Log out everywhere".
    assert_eq!(store.delete_user_sessions("1").await.unwrap(), 1);
    let me = text(send(&app, "GET", "/me", Some(&cookies[0]), "").await).await;
    assert_eq!(me, "nobody");
    fixture.finish().await;
}
