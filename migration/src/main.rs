use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, Database, DbBackend},
};
use tower_sessions_seaorm_migration::{Migrator, DEFAULT_SCHEMA, HISTORY_TABLE};

/// SeaORM's migration command line for the default session table. On PostgreSQL the history is
/// kept in the session table's schema, as the store's `migrate()` keeps it, so the two can be
/// mixed; the schema is created first, since the history table is.
#[tokio::main]
async fn main() {
    cli::run_cli_with_connection(Migrator, |mut options| async move {
        options.set_schema_search_path(DEFAULT_SCHEMA);
        let conn = Database::connect(options).await?;
        let backend = conn.get_database_backend();
        if backend == DbBackend::Postgres {
            conn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{DEFAULT_SCHEMA}\""))
                .await?;
        }
        // Releases before 0.2 recorded bare names (`m2026…`), which SeaORM would now report as
        // missing migrations: give them the names `migrate()` uses. A history that does not
        // exist yet has nothing to rename, so that error is not one.
        let prefixed = match backend {
            DbBackend::MySql => "CONCAT('session/', version)",
            _ => "'session/' || version",
        };
        let _ = conn
            .execute_unprepared(&format!(
                "UPDATE {HISTORY_TABLE} SET version = {prefixed} WHERE version NOT LIKE '%/%'"
            ))
            .await;
        Ok(conn)
    })
    .await;
}
