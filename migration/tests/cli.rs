//! The command line on SQLite: `up` creates the table and records each step as
//! `session/<migration>`, the name the store's `migrate()` records it under.

use std::process::Command;

use sea_orm_migration::sea_orm::{ConnectionTrait, Database, Statement};

/// Runs `tower-sessions-seaorm-migration <command>` on `url` and asserts it succeeded.
fn run(url: &str, command: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_tower-sessions-seaorm-migration"))
        .arg(command)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A directory of this test's own, and the URL of a SQLite file in it.
fn fresh_database(label: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "ts-cli-{label}-{}-{}",
        std::process::id(),
        time_now_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("sessions.db").display());
    (dir, url)
}

/// The history's versions matching `pattern` (SQL `LIKE`), in order.
async fn versions(url: &str, pattern: &str) -> Vec<String> {
    let conn = Database::connect(url).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT version FROM seaql_migrations_tower_sessions \
                 WHERE version LIKE '{pattern}' ORDER BY version"
            ),
        ))
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect()
}

#[tokio::test]
async fn up_records_each_step_under_the_name_migrate_gives_it() {
    let (dir, url) = fresh_database("up");
    run(&url, "up");
    run(&url, "status");
    assert_eq!(
        versions(&url, "%").await,
        [
            "session/m20261125_000001_create_session_table",
            "session/m20261125_000002_add_user_index",
            "session/m20261201_000003_exact_keys",
            "session/m20261202_000004_add_session_times",
            "session/m20261203_000005_insert_instant_defaults",
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn time_now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test]
async fn a_history_with_the_bare_names_of_an_older_cli_is_renamed_not_reported_missing() {
    let (dir, url) = fresh_database("old");
    run(&url, "up");
    // What an older CLI left: the same steps under their bare names.
    let conn = Database::connect(&url).await.unwrap();
    conn.execute_unprepared(
        "UPDATE seaql_migrations_tower_sessions SET version = substr(version, 9)",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    run(&url, "status");
    assert_eq!(
        versions(&url, "session/%").await.len(),
        5,
        "every bare name was given its table's prefix"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
