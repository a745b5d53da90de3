//! A small Axum application on tower-sessions and this store: a visit counter, log in / log
//! out that cycle the session id, and, through the store's per-user index, the list of the
//! user's sessions with "log out my other devices".
//!
//! ```sh
//! cargo run --example axum_app
//! ```
//!
//! With no configuration the sessions live in SQLite, in `examples/axum_app.db` (created on the
//! first run, git-ignored), so no database server is needed. The environment changes that:
//!
//! - `DATABASE_URL`: `postgres://…`, `mysql://…` (MySQL or MariaDB) or `sqlite://…?mode=rwc`.
//! - `BIND_ADDRESS` (default `127.0.0.1:3000`), or just `PORT` on 127.0.0.1; port 0 picks a free
//!   port. The address actually served is printed: `listening on http://…`.
//! - `COOKIE_SECURE=false` drops the cookie's `Secure` attribute; see [`cookie_is_secure`].
//! - `RUST_LOG`-style logging is not set up, to keep the example short.
//!
//! Expired sessions are deleted every minute by the store's cleanup task.

use std::{env, error::Error, net::SocketAddr, time::Duration};

use axum::{
    extract::State,
    response::{Html, Redirect},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use tower_sessions::{cookie::SameSite, Expiry, Session, SessionManagerLayer};
use tower_sessions_seaorm_store::{
    sea_orm::{Database, DbBackend},
    MySqlStore, PostgresStore, SqliteStore,
};

type BoxError = Box<dyn Error + Send + Sync>;

const VISITS: &str = "visits";
const USER: &str = "user";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = env::var("DATABASE_URL").unwrap_or_else(|_| default_database_url());
    let conn = Database::connect(&url).await?;
    // One name per backend; the store writes the SQL of the connection it is given.
    match conn.get_database_backend() {
        DbBackend::Postgres => serve(PostgresStore::new(conn)).await,
        DbBackend::MySql => serve(MySqlStore::new(conn)).await,
        DbBackend::Sqlite => serve(SqliteStore::new(conn)).await,
        other => Err(format!("no session store for {other:?}").into()),
    }
}

/// `examples/axum_app.db` beside this file, created if missing.
fn default_database_url() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/axum_app.db");
    format!("sqlite://{path}?mode=rwc")
}

fn bind_address() -> Result<SocketAddr, BoxError> {
    if let Ok(address) = env::var("BIND_ADDRESS") {
        return Ok(address.parse()?);
    }
    let port: u16 = env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Whether the session cookie carries `Secure` (default: yes).
///
/// `Secure` is what production needs (the cookie never travels over plain HTTP), so it is on
/// even here: browsers treat `localhost` and `127.0.0.1` as secure contexts and keep and send
/// Secure cookies for them over plain `http://`. Serving plain HTTP on another address, set
/// `COOKIE_SECURE=false`, or better, put TLS in front.
fn cookie_is_secure() -> bool {
    env::var("COOKIE_SECURE").map_or(true, |v| v != "false")
}

/// One store type for every backend: the store speaks the SQL of the connection it is given.
type Store = PostgresStore;

async fn serve(store: Store) -> Result<(), BoxError> {
    // Index sessions by the logged-in user's name, and skip rewriting a session whose values
    // did not change (the visit counter changes on every page, the other routes do not).
    let store = store
        .with_user_key(USER)?
        .with_touch_after(Duration::from_secs(60));
    store.migrate().await?;
    let cleanup = store.spawn_cleanup_task(Duration::from_secs(60));

    let sessions = SessionManagerLayer::new(store.clone())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(cookie_is_secure())
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-others", post(logout_others))
        .layer(sessions)
        .with_state(store);

    let listener = tokio::net::TcpListener::bind(bind_address()?).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    cleanup.shutdown().await;
    Ok(())
}

/// Counts the visit and shows who is logged in, on how many devices.
async fn home(State(store): State<Store>, session: Session) -> Result<Html<String>, String> {
    let visits: u64 = session
        .get(VISITS)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(0)
        + 1;
    session
        .insert(VISITS, visits)
        .await
        .map_err(|e| e.to_string())?;
    let user: Option<String> = session.get(USER).await.map_err(|e| e.to_string())?;

    let who = match &user {
        Some(name) => {
            let devices = store.user_sessions(name).await.map_err(|e| e.to_string())?;
            let current = session.id().map(|id| store.session_handle(id));
            let list: String = devices
                .iter()
                .map(|device| {
                    let this = if Some(&device.handle) == current.as_ref() {
                        " (this device)"
                    } else {
                        ""
                    };
                    format!("<li>until {}{this}</li>", device.expiry_date.date())
                })
                .collect();
            format!(
                "<p>Logged in as {}</p><p>Sessions: {}</p><ul>{list}</ul>\
                 <form method=\"post\" action=\"/logout-others\">\
                 <button>Log out my other devices</button></form>",
                escape(name),
                devices.len()
            )
        }
        None => "<p>Not logged in</p>".to_owned(),
    };
    let form = match user {
        Some(_) => r#"<form method="post" action="/logout"><button>Log out</button></form>"#,
        None => {
            r#"<form method="post" action="/login"><input name="name" placeholder="your name" required><button>Log in</button></form>"#
        }
    };
    Ok(Html(format!(
        "<!doctype html><title>Sessions</title><h1>Visits: {visits}</h1>{who}{form}"
    )))
}

#[derive(Deserialize)]
struct Login {
    name: String,
}

/// Logs in as `name`. The session id changes, so an id planted before the login (session
/// fixation) is worthless after it.
async fn login(session: Session, Form(form): Form<Login>) -> Result<Redirect, String> {
    let name = form.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("a name is 1 to 64 bytes".to_owned());
    }
    session.cycle_id().await.map_err(|e| e.to_string())?;
    session
        .insert(USER, name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Redirect::to("/"))
}

/// Logs out, keeping the visit count, under a new session id.
async fn logout(session: Session) -> Result<Redirect, String> {
    session
        .remove::<String>(USER)
        .await
        .map_err(|e| e.to_string())?;
    session.cycle_id().await.map_err(|e| e.to_string())?;
    Ok(Redirect::to("/"))
}

/// Ends every other session of the logged-in user (the per-user index), keeping this one.
async fn logout_others(State(store): State<Store>, session: Session) -> Result<Redirect, String> {
    let user: Option<String> = session.get(USER).await.map_err(|e| e.to_string())?;
    if let (Some(user), Some(current)) = (user, session.id()) {
        store
            .delete_user_sessions_except(&user, current)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Redirect::to("/"))
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
