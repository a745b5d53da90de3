//! The migration command line and the store's `migrate()` record the same history, so an
//! application can mix them in either order, on every backend: the CLI, run from anywhere
//! (`cargo install tower-sessions-seaorm-migration --features cli`), on the default table.
//!
//! Each test works in a database of its own (a fresh PostgreSQL database, a fresh MariaDB
//! database, a temporary SQLite file), since the CLI works on the default table.

mod common;

use std::{path::PathBuf, process::Command};

use tower_sessions_seaorm_store::{
    sea_orm::{ConnectionTrait, DatabaseConnection},
    PostgresStore, SessionStore,
};

/// The CLI binary, built beside this test by `cargo test --workspace --all-features`.
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let cli = dir.join("tower-sessions-seaorm-migration");
    assert!(
        cli.exists(),
        "the migration CLI is not built at {}: run the suite with `scripts/test` (it builds \
         every workspace member with all features), or `cargo build -p \
         tower-sessions-seaorm-migration --features cli`",
        cli.display()
    );
    cli
}

fn run_cli(url: &str, command: &str) {
    let output = Command::new(cli_binary())
        .arg(command)
        .env("DATABASE_URL", url)
        .output()
        .expect("run the migration CLI");
    assert!(
        output.status.success(),
        "`tower-sessions-seaorm-migration {command}` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const HISTORY: [&str; 5] = [
    "session/m20261125_000001_create_session_table",
    "session/m20261125_000002_add_user_index",
    "session/m20261201_000003_exact_keys",
    "session/m20261202_000004_add_session_times",
    "session/m20261203_000005_insert_instant_defaults",
];

/// Both orders on the database at `url`, whose history table is `history`.
async fn cli_and_migrate_mix(url: &str, conn: DatabaseConnection, history: &str) {
    // The CLI first, then every replica's migrate(): nothing is done twice.
    run_cli(url, "up");
    let store = PostgresStore::new(conn.clone());
    store.migrate().await.expect("migrate() after the CLI");
    let versions = common::scalar_strings(
        &conn,
        &format!("SELECT version FROM {history} ORDER BY version"),
        vec![],
    )
    .await;
    assert_eq!(versions, HISTORY, "one history, each step once");
    let mut rec = common::suite::record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec));

    // migrate() first, on a fresh history: the CLI finds every step applied.
    conn.execute_unprepared(&format!("DELETE FROM {history}"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    run_cli(url, "status");
    run_cli(url, "up");
    let versions = common::scalar_strings(
        &conn,
        &format!("SELECT version FROM {history} ORDER BY version"),
        vec![],
    )
    .await;
    assert_eq!(versions, HISTORY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_cli_and_migrate_share_one_history() {
    let admin = common::connect_postgres(&common::database_url()).await;
    let database = common::unique_name("ts_cli");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{database}\""))
        .await
        .unwrap();
    let base = common::database_url();
    let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
    let conn = common::connect_postgres(&url).await;
    cli_and_migrate_mix(
        &url,
        conn.clone(),
        "tower_sessions.seaql_migrations_tower_sessions",
    )
    .await;
    let elsewhere = common::scalar_strings(
        &conn,
        "SELECT coalesce(to_regclass('public.seaql_migrations_tower_sessions')::text, 'none')",
        vec![],
    )
    .await;
    assert_eq!(
        elsewhere,
        ["none"],
        "the CLI keeps no second history in `public`"
    );
    conn.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_the_cli_and_migrate_share_one_history() {
    let base = common::mysql::mysql_url();
    let admin = common::mysql::connect_mysql(&base).await;
    let database = common::unique_name("ts_cli");
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{database}`"))
        .await
        .unwrap();
    let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
    let conn = common::mysql::connect_mysql(&url).await;
    cli_and_migrate_mix(&url, conn.clone(), "seaql_migrations_tower_sessions").await;
    conn.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_cli_and_migrate_share_one_history() {
    let path = common::sqlite::temp_db_path();
    let url = common::sqlite::file_url(&path);
    let conn = common::sqlite::connect_sqlite(&url, 2).await;
    cli_and_migrate_mix(&url, conn.clone(), "seaql_migrations_tower_sessions").await;
    conn.close().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
