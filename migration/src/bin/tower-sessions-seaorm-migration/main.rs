//! The session table's command line. It acts on the session table alone: its columns and
//! indexes, its triggers (and, on PostgreSQL, the read cache's eviction function), and its own
//! rows of the history table; `sessions` counts and ends its rows (and logs the ends in the
//! login history beside it, when there is one). The application's tables, its
//! `seaql_migrations` and other session tables' history rows are never touched, whatever the
//! command.
//!
//! It is not SeaORM's generic migration CLI: that one's `fresh` drops every table of the
//! database, and its `init` and `generate` write a migration crate, neither of which a session
//! table needs. Typed anyway, they are refused with what to do instead.

mod args;
mod commands;
mod sessions;

use std::process::ExitCode;

use clap::Parser;
use sea_orm_migration::sea_orm::{Database, DbBackend, DbErr};
use tower_sessions_seaorm_migration::{AddLoginHistory, RunError};

use args::{Action, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A `.env` in the current directory, as SeaORM's CLI reads it: DATABASE_URL may be there.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let action = match cli.command.action() {
        Ok(action) => action,
        Err(refusal) => {
            eprintln!("refused: {refusal}");
            return ExitCode::from(2);
        }
    };
    match run(cli, action).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, action: Action) -> Result<(), String> {
    let url = cli.database_url.ok_or(
        "no database: set DATABASE_URL (or pass --database-url), e.g. \
         postgres://user@host/db, mysql://user@host/db or sqlite://sessions.db?mode=rwc",
    )?;
    // The URL may hold a password: errors name the backend, never the URL.
    let conn = Database::connect(url.as_str())
        .await
        .map_err(|err| format!("cannot connect to the database: {}", without_url(err)))?;
    let backend = conn.get_database_backend();
    let mut runner = commands::runner(backend, &cli.schema, &cli.table)?;
    if let Action::Up(_, true) = action {
        // After the session table's steps, in every attempt: the history's statements are
        // idempotent, as the store's `migrate()` runs them.
        for sql in AddLoginHistory::new(&cli.schema, &cli.table).statements(backend) {
            runner = runner.then_execute(sql);
        }
    }
    if let Action::Sessions(command) = action {
        let outcome = sessions::run(&runner, &conn, &cli.schema, &cli.table, command).await;
        let _ = conn.close().await;
        return outcome;
    }
    let outcome = commands::run(&runner, &conn, action).await;
    let _ = conn.close().await;
    outcome.map_err(|err| match err {
        RunError::Refused(message) => message,
        RunError::Failed { error, .. } => format!(
            "{error}\n(nothing outside {} was touched; a step that failed was {})",
            runner.describe(),
            if backend == DbBackend::MySql {
                "partly applied if MySQL had committed its DDL: run `status`, then the command again"
            } else {
                "rolled back with its history row"
            }
        ),
    })
}

/// A connection error's text. sqlx does not put the URL into its errors, but a URL that fails
/// to parse may be quoted back: say only that.
fn without_url(err: DbErr) -> String {
    let text = err.to_string();
    if text.contains("://") {
        "the URL could not be used (check its scheme, host and credentials)".to_owned()
    } else {
        text
    }
}
