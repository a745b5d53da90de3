use axum::{http::StatusCode, routing::get, Router};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_seaorm_store::{sea_orm::Database, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A SQLite file in the current directory, created on the first run.
    let conn = Database::connect("sqlite://sessions.db?mode=rwc").await?;
    let store = SqliteStore::new(conn);
    store.migrate().await?; // creates the session table; safe on every start

    // Deletes expired sessions every minute; it survives database errors.
    let cleanup = store.spawn_cleanup_task(std::time::Duration::from_secs(60));

    // A session ends after seven days without a visit.
    let expiry = Expiry::OnInactivity(time::Duration::days(7));
    let sessions = SessionManagerLayer::new(store).with_expiry(expiry);
    let app = Router::new().route("/", get(count)).layer(sessions);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    cleanup.shutdown().await;
    Ok(())
}

/// Counts this browser's visits in its session.
async fn count(session: Session) -> Result<String, StatusCode> {
    // A store error (say, the database is away) becomes a 503.
    let failed = |_| StatusCode::SERVICE_UNAVAILABLE;
    let visits: Option<u64> = session.get("visits").await.map_err(failed)?;
    let visits = visits.unwrap_or(0) + 1;
    session.insert("visits", visits).await.map_err(failed)?;
    Ok(format!("visit number {visits}\n"))
}
