//! The command line on SQLite, and what it offers: `up` records each step as
//! `session/<migration>`, the name the store's `migrate()` records it under; `--help` offers
//! only the commands that fit a session table, and SeaORM's others are refused with a reason.
//! (`tests/migration_cli.rs`, in the store's package, runs every command on all three
//! backends beside an application's tables.)

use std::process::{Command, Output};

use sea_orm_migration::sea_orm::{ConnectionTrait, Database, Statement};

/// Runs `tower-sessions-seaorm-migration <args>` with `DATABASE_URL` set to `url`.
fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tower-sessions-seaorm-migration"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .unwrap()
}

/// Runs `tower-sessions-seaorm-migration <args>` on `url`, asserts it succeeded, and returns
/// what it printed.
fn run(url: &str, args: &[&str]) -> String {
    let output = cli(url, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
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

fn time_now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The history's versions, in order.
async fn versions(url: &str) -> Vec<String> {
    let conn = Database::connect(url).await.unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT version FROM seaql_migrations_tower_sessions ORDER BY version",
        ))
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect()
}

async fn execute(url: &str, sql: &str) {
    let conn = Database::connect(url).await.unwrap();
    conn.execute_unprepared(sql).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn up_records_each_step_under_the_name_migrate_gives_it() {
    let (dir, url) = fresh_database("up");
    run(&url, &["up"]);
    let status = run(&url, &["status"]);
    assert_eq!(status.matches("applied").count(), 7, "{status}");
    assert_eq!(
        versions(&url).await,
        [
            "session/m20261125_000001_create_session_table",
            "session/m20261125_000002_add_user_index",
            "session/m20261201_000003_exact_keys",
            "session/m20261202_000004_add_session_times",
            "session/m20261203_000005_insert_instant_defaults",
            "session/m20261204_000006_add_version",
            "session/m20261206_000008_add_long_lived",
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A table dropped by hand, its steps still recorded: `up` refuses, saying what to delete, and
/// creates it again once that is done (the remedy it prints is run as printed).
#[tokio::test]
async fn a_table_dropped_by_hand_is_refused_with_the_remedy_that_works() {
    let (dir, url) = fresh_database("dropped");
    run(&url, &["up"]);
    execute(&url, "DROP TABLE session").await;
    let refused = cli(&url, &["up"]);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("was it dropped by hand?"), "{stderr}");
    assert_eq!(versions(&url).await.len(), 7, "nothing was forgotten");
    let remedy = stderr
        .split_once("forget them: ")
        .and_then(|(_, rest)| rest.split_once("; then"))
        .map(|(remedy, _)| remedy.to_owned())
        .unwrap_or_else(|| panic!("no remedy in: {stderr}"));
    execute(&url, &remedy).await;
    assert!(versions(&url).await.is_empty(), "{remedy}");
    run(&url, &["up"]);
    assert_eq!(versions(&url).await.len(), 7);
    execute(&url, "SELECT id, data, expiry_date FROM session").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn another_table_is_recorded_under_its_own_name() {
    let (dir, url) = fresh_database("table");
    run(&url, &["--table", "web_session", "up"]);
    run(&url, &["up"]);
    run(&url, &["--table", "web_session", "down", "-n", "7"]);
    assert_eq!(
        versions(&url).await.len(),
        7,
        "the default table's steps stay: {:?}",
        versions(&url).await
    );
    assert!(versions(&url)
        .await
        .iter()
        .all(|v| v.starts_with("session/")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_history_with_the_bare_names_of_an_older_cli_counts_as_applied_and_is_renamed() {
    let (dir, url) = fresh_database("old");
    run(&url, &["up"]);
    // What an older CLI left: the same steps under their bare names.
    execute(
        &url,
        "UPDATE seaql_migrations_tower_sessions SET version = substr(version, 9)",
    )
    .await;

    let status = run(&url, &["status"]);
    assert_eq!(status.matches("applied").count(), 7, "{status}");
    assert!(
        versions(&url).await.iter().all(|v| !v.contains('/')),
        "status changes nothing"
    );
    let up = run(&url, &["up"]);
    assert!(up.contains("nothing to apply"), "{up}");
    assert!(
        versions(&url)
            .await
            .iter()
            .all(|v| v.starts_with("session/")),
        "every bare name was given its table's prefix"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_offers_only_what_fits_a_session_table() {
    let output = cli("sqlite::memory:", &["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .expect("a list of commands")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        ["up", "down", "status", "reset", "refresh", "sessions", "help"]
    );
    let words: Vec<&str> = help
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    for absent in ["fresh", "init", "generate", "public"] {
        assert!(!words.contains(&absent), "{absent} in --help:\n{help}");
    }
    assert!(help.contains("[default: tower_sessions]"), "{help}");
}

#[test]
fn help_never_prints_the_database_url() {
    let url = "postgres://app:s3cret@db.example/app";
    let output = cli(url, &["--help"]);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"));
}

#[test]
fn seaorm_commands_that_do_not_fit_are_refused_with_what_to_do() {
    for (args, instead) in [
        (&["fresh"][..], "run `refresh`"),
        (&["init"], "sea-orm-cli migrate init"),
        (&["generate", "add_users"], "sea-orm-cli migrate generate"),
    ] {
        // No database is needed to refuse: nothing is connected to, nothing done.
        let output = cli("postgres://nowhere.invalid/db", args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains("not offered")
                && message.contains(instead)
                && message.contains("Nothing was done"),
            "{args:?}: {message}"
        );
    }
}

#[test]
fn names_the_store_would_refuse_are_refused() {
    for (option, name) in [
        ("--table", "session; DROP TABLE users"),
        ("--table", "9lives"),
        ("--schema", ""),
        ("--table", "Sessions"),
    ] {
        let output = cli("sqlite::memory:", &[option, name, "up"]);
        assert_eq!(output.status.code(), Some(1), "{option} {name:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(option), "{message}");
    }
}
