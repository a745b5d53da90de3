//! The command line on SQLite: `up` creates the table and records each step as
//! `session/<migration>`, the name the store's `migrate()` records it under.

use std::process::Command;

use sea_orm_migration::sea_orm::{ConnectionTrait, Database, Statement};

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tower-sessions-seaorm-migration"))
}

#[tokio::test]
async fn up_records_each_step_under_the_name_migrate_gives_it() {
    let dir = std::env::temp_dir().join(format!(
        "ts-cli-{}-{}",
        std::process::id(),
        time_now_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("sessions.db").display());

    let up = cli().arg("up").env("DATABASE_URL", &url).output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status = cli()
        .arg("status")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let conn = Database::connect(&url).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT version FROM seaql_migrations_tower_sessions ORDER BY version",
        ))
        .await
        .unwrap();
    let versions: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect();
    assert_eq!(
        versions,
        [
            "session/m20261125_000001_create_session_table",
            "session/m20261125_000002_add_user_index",
            "session/m20261201_000003_exact_keys",
        ]
    );
    conn.close().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn time_now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test]
async fn a_history_with_the_bare_names_of_an_older_cli_is_renamed_not_reported_missing() {
    let dir = std::env::temp_dir().join(format!(
        "ts-cli-old-{}-{}",
        std::process::id(),
        time_now_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("sessions.db").display());
    let up = cli().arg("up").env("DATABASE_URL", &url).output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // What an older CLI left: the same steps under their bare names.
    let conn = Database::connect(&url).await.unwrap();
    conn.execute_unprepared(
        "UPDATE seaql_migrations_tower_sessions SET version = substr(version, 9)",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    let status = cli()
        .arg("status")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let conn = Database::connect(&url).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT version FROM seaql_migrations_tower_sessions WHERE version LIKE 'session/%'",
        ))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "every bare name was given its table's prefix"
    );
    conn.close().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
