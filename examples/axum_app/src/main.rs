//! A small Axum application on tower-sessions and this store: a visit counter, log in / log
//! out that cycle the session id, and an account page listing the user's devices (browser and
//! OS, when they signed in, when they were last active) through the store's per-user index,
//! with "sign out" for each and "log out my other devices". A device signed out from elsewhere
//! is told so on its next visit. The store keeps a login history: the
//! account page lists the recent sign-ins, and every other device of the user is told of a new
//! sign-in, heard through the store's live events.
//!
//! ```sh
//! cargo run -p axum_app
//! ```
//!
//! It is a package of its own in the workspace, so that this builds only what the application
//! uses. With no configuration the sessions live in SQLite, in `examples/axum_app/axum_app.db`
//! (created on the first run, git-ignored), so no database server is needed. The environment
//! changes that:
//!
//! - `DATABASE_URL`: `postgres://…`, `mysql://…` (MySQL or MariaDB) or `sqlite://…?mode=rwc`.
//! - `BIND_ADDRESS` (default `127.0.0.1:3000`), or just `PORT` on 127.0.0.1; port 0 picks a free
//!   port. The address actually served is printed: `listening on http://…`.
//! - `COOKIE_SECURE=false` drops the cookies' `Secure` attribute; see [`cookie_is_secure`].
//! - `LOG_LEVEL` (default `info`): the log on stderr. Every failure of the session store is
//!   logged with its cause, never with a session id or session data: the handlers log what
//!   they are given, and tower-sessions logs a save that fails after the handler (the request
//!   then gets an empty 500, which `pages::html_errors` turns into a page).
//!
//! Expired sessions are deleted every minute by the store's cleanup task.
//!
//! - `handlers.rs`: the routes, what the session holds, the error statuses.
//! - `pages.rs`: the HTML and its stylesheet.
//! - `device.rs`: "Firefox on Linux" from a User-Agent, "5 minutes ago" from a time.
//! - `notices.rs`: the sign-ins heard from the store's events, for the notices.

mod device;
mod handlers;
mod notices;
mod pages;

use std::{env, error::Error, net::SocketAddr, time::Duration};

use axum::{
    middleware,
    routing::{get, post},
    Router,
};
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};
use tower_sessions_seaorm_store::{
    sea_orm::{ConnectOptions, Database, DbBackend},
    MySqlStore, PostgresStore, SqliteStore,
};
use tracing::Level;

use handlers::App;
use notices::Notices;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // tower-sessions reports a failed save only here, at `error`; so do the store's cleanup
    // task and its warnings. None of them holds a session id or session data.
    let level = env::var("LOG_LEVEL").map_or(Ok(Level::INFO), |level| level.parse())?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    let url = env::var("DATABASE_URL").unwrap_or_else(|_| default_database_url());
    // sqlx would log every statement at `info`: the store's own spans say more, at `debug`.
    let conn = Database::connect(ConnectOptions::new(url).sqlx_logging(false).to_owned()).await?;
    // One name per backend; the store writes the SQL of the connection it is given.
    // Each keeps the login history (and the events it carries).
    match conn.get_database_backend() {
        DbBackend::Postgres => serve(PostgresStore::new(conn)).await,
        DbBackend::MySql => serve(MySqlStore::new(conn)).await,
        DbBackend::Sqlite => serve(SqliteStore::new(conn)).await,
        other => Err(format!("no session store for {other:?}").into()),
    }
}

/// `axum_app.db` in this package's directory, created if missing.
fn default_database_url() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/axum_app.db");
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
    // The device list shows each session's `LISTED` values (browser and OS, times), which the
    // store copies beside the session at each write. A login lasts a day at most, however
    // active, or 30 days when the user ticked "remember me" (`REMEMBER_ME`, which only the
    // login handler writes); a user keeps at most 10 devices signed in (the least recently
    // active go).
    let store = store
        .with_user_key(handlers::USER)?
        .with_listed_values(handlers::LISTED)?
        .with_touch_after(Duration::from_secs(60))
        .with_absolute_lifetime(Duration::from_secs(24 * 60 * 60))
        .with_long_lived_sessions(
            handlers::REMEMBER_ME,
            Duration::from_secs(30 * 24 * 60 * 60),
        )?
        .with_max_sessions_per_user(10)?;
    // Every sign-in and session end, kept 90 days: the account page's "recent sign-ins", and
    // through `events()` the "new sign-in" notice on the user's other devices.
    let store = store.with_login_history(Duration::from_secs(90 * 24 * 60 * 60))?;
    store.migrate().await?;
    let cleanup = store.spawn_cleanup_task(Duration::from_secs(60));
    let notices = Notices::default();
    notices.listen(store.events().await?);

    let secure_cookies = cookie_is_secure();
    // SameSite=Lax is this app's defence against cross-site request forgery: see handlers.rs.
    let sessions = SessionManagerLayer::new(store.clone())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure_cookies)
        .with_expiry(Expiry::OnInactivity(handlers::IDLE));
    let app = Router::new()
        .route("/", get(handlers::home))
        .route("/login", post(handlers::login))
        .route("/logout", post(handlers::logout))
        .route("/logout-others", post(handlers::logout_others))
        .route("/devices/sign-out", post(handlers::sign_out_device))
        .fallback(handlers::not_found)
        .layer(sessions)
        // Outside the session layer, so its bodiless 500 (a failed save) gets a page too.
        .layer(middleware::map_response(pages::html_errors))
        .with_state(App {
            store,
            secure_cookies,
            notices,
        });

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
