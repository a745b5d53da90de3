//! PgBouncer in front of the test PostgreSQL: where it is (`PGBOUNCER_URL`, set by
//! `scripts/test`), and stores connected through it with the options that work there.

use std::time::Duration;

use tower_sessions_seaorm_store::sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::PgFixture;

/// `PGBOUNCER_URL`, or a panic that says how to get one.
pub fn pgbouncer_url() -> String {
    std::env::var("PGBOUNCER_URL").unwrap_or_else(|_| {
        panic!(
            "these tests need PgBouncer in transaction pooling mode in front of the test \
             PostgreSQL: run scripts/test (it starts PgBouncer) or set PGBOUNCER_URL \
             (e.g. postgres://postgres@127.0.0.1:16432/test)"
        )
    })
}

/// SeaORM's connect options for a pool behind PgBouncer in transaction pooling mode.
///
/// sqlx caches a named prepared statement per connection (`sqlx_s_1`, …) and expects to find it
/// again on the same server connection; PgBouncer's transaction mode hands the next transaction
/// (and even the Bind after a Parse) another one. PgBouncer 1.21+ with
/// `max_prepared_statements` re-prepares them wherever they run, so sqlx's defaults work.
pub fn pgbouncer_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    options
}

/// A connection through PgBouncer, or a panic that says how to start it.
pub async fn connect_through_pgbouncer() -> DatabaseConnection {
    let url = pgbouncer_url();
    match Database::connect(pgbouncer_options(&url)).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "PgBouncer does not answer at {url} (PGBOUNCER_URL): {err}\n\
             run scripts/test (it starts PgBouncer in front of PostgreSQL)"
        ),
    }
}

/// A fresh, migrated store in a schema of its own, reached through PgBouncer.
pub async fn pgbouncer_fixture() -> PgFixture {
    PgFixture {
        url: pgbouncer_url(),
        ..PgFixture::on(connect_through_pgbouncer().await).await
    }
}
