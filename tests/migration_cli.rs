//! The migration command line (`cargo install tower-sessions-seaorm-migration --features cli`),
//! run as a process on every backend:
//!
//! - it acts on the session table alone: in a database that also holds the application's
//!   tables (a `users` table with rows, the application's `seaql_migrations` history, on
//!   PostgreSQL a table named `session` in `public`) and another session table migrated by the
//!   store, every command (`up`, `down`, `reset`, `refresh`, `status`, and SeaORM's `fresh`,
//!   `init` and `generate`, which are refused) leaves all of those exactly as they were;
//! - an application table under the session table's name is refused, never altered;
//! - on PostgreSQL, `reset` drops the read cache's eviction function with the table's triggers;
//! - it records the same history as the store's `migrate()`, so the two can be mixed;
//! - its `sessions` commands count and end exactly the sessions they name (hashed ids, a
//!   hash-partitioned table, through PgBouncer), with `--dry-run` ending none, and log each
//!   end in the login history when there is one.
//!
//! Each test works in a database of its own (a fresh PostgreSQL database, a fresh MariaDB
//! database, a temporary SQLite file), since the CLI works on the default table.

mod common;

use std::{path::PathBuf, process::Command};

use tower_sessions_seaorm_store::{
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend},
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

/// What a run of the CLI printed, and whether it succeeded.
struct Outcome {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `tower-sessions-seaorm-migration <args>` on `url`.
fn cli(url: &str, args: &[&str]) -> Outcome {
    let output = Command::new(cli_binary())
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run the migration CLI");
    Outcome {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn run_cli(url: &str, command: &str) {
    let outcome = cli(url, &[command]);
    assert!(
        outcome.success,
        "`tower-sessions-seaorm-migration {command}` failed:\n{}",
        outcome.stderr
    );
}

const HISTORY: [&str; 7] = [
    "session/m20261125_000001_create_session_table",
    "session/m20261125_000002_add_user_index",
    "session/m20261201_000003_exact_keys",
    "session/m20261202_000004_add_session_times",
    "session/m20261203_000005_insert_instant_defaults",
    "session/m20261204_000006_add_version",
    "session/m20261206_000008_add_long_lived",
];

/// A database of the test's own, holding an application: its URL and a connection.
struct AppDatabase {
    url: String,
    conn: DatabaseConnection,
    /// The history table, qualified as the backend needs.
    history: &'static str,
    /// The session table, qualified as the backend needs.
    session: &'static str,
    /// Another session table, the store's `with_table_name("other_session")`.
    other: &'static str,
    /// What to drop at the end.
    owned: Owned,
}

/// The database a test made, and the connection to drop it through.
enum Owned {
    Postgres(DatabaseConnection, String),
    MySql(DatabaseConnection, String),
    Sqlite(PathBuf),
}

impl AppDatabase {
    async fn postgres() -> Self {
        let admin = common::connect_postgres(&common::database_url()).await;
        let database = common::unique_name("ts_cli");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{database}\""))
            .await
            .unwrap();
        let base = common::database_url();
        let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
        let conn = common::connect_postgres(&url).await;
        Self {
            url,
            conn,
            history: "tower_sessions.seaql_migrations_tower_sessions",
            session: "tower_sessions.session",
            other: "tower_sessions.other_session",
            owned: Owned::Postgres(admin, database),
        }
    }

    async fn mysql() -> Self {
        let base = common::mysql::mysql_url();
        let admin = common::mysql::connect_mysql(&base).await;
        let database = common::unique_name("ts_cli");
        admin
            .execute_unprepared(&format!("CREATE DATABASE `{database}`"))
            .await
            .unwrap();
        let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
        let conn = common::mysql::connect_mysql(&url).await;
        Self {
            url,
            conn,
            history: "seaql_migrations_tower_sessions",
            session: "session",
            other: "other_session",
            owned: Owned::MySql(admin, database),
        }
    }

    async fn sqlite() -> Self {
        let path = common::sqlite::temp_db_path();
        let url = common::sqlite::file_url(&path);
        let conn = common::sqlite::connect_sqlite(&url, 2).await;
        Self {
            url,
            conn,
            history: "seaql_migrations_tower_sessions",
            session: "session",
            other: "other_session",
            owned: Owned::Sqlite(path),
        }
    }

    fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute(&self, sql: &str) {
        self.conn
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        common::scalar_strings(&self.conn, sql, vec![]).await
    }

    /// The application's own objects: a `users` table with rows, its `seaql_migrations`
    /// history, another session table (`other_session`, migrated by the store, with a
    /// session in it, its history rows beside the session table's); on PostgreSQL also a
    /// `public.session` table and a table beside the session table in its schema.
    async fn plant_application(&self) {
        self.execute("CREATE TABLE users (id integer PRIMARY KEY, name varchar(64) NOT NULL)")
            .await;
        self.execute("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')")
            .await;
        self.execute(
            "CREATE TABLE seaql_migrations (version varchar(255) PRIMARY KEY, \
             applied_at bigint NOT NULL)",
        )
        .await;
        self.execute(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES \
             ('m20240101_000001_create_users', 1704067200), \
             ('m20240102_000001_add_names', 1704153600)",
        )
        .await;
        if self.backend() == DbBackend::Postgres {
            self.execute("CREATE TABLE public.session (id integer PRIMARY KEY, note text)")
                .await;
            self.execute("INSERT INTO public.session VALUES (1, 'the application''s own')")
                .await;
            self.execute("CREATE SCHEMA tower_sessions").await;
            self.execute("CREATE TABLE tower_sessions.audit (line text)")
                .await;
            self.execute("INSERT INTO tower_sessions.audit VALUES ('kept')")
                .await;
        }
        let other = PostgresStore::new(self.conn.clone())
            .with_table_name("other_session")
            .unwrap();
        other
            .migrate()
            .await
            .expect("migrate another session table");
        let mut record = common::suite::record(common::suite::in_a_day());
        other.create(&mut record).await.unwrap();
    }

    /// Everything of the database but the session table, its indexes and its history rows:
    /// what no command may change.
    async fn application(&self) -> Vec<String> {
        let mut seen = Vec::new();
        let catalog = match self.backend() {
            DbBackend::Postgres => {
                "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                 AND NOT (n.nspname = 'tower_sessions' AND (c.relname = 'session' \
                   OR c.relname LIKE 'session\\_%' \
                   OR c.relname LIKE 'seaql\\_migrations\\_tower\\_sessions%')) \
                 UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname \
                 FROM pg_trigger WHERE NOT tgisinternal \
                 AND tgrelid IS DISTINCT FROM to_regclass('tower_sessions.session') \
                 UNION ALL SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 ORDER BY 1"
            }
            DbBackend::Sqlite => {
                "SELECT type || ' ' || name || ' ' || tbl_name FROM sqlite_master \
                 WHERE tbl_name NOT IN ('session', 'seaql_migrations_tower_sessions') \
                 ORDER BY 1"
            }
            _ => {
                "SELECT CONCAT(TABLE_NAME, ' ', INDEX_NAME, ' ', COLUMN_NAME) \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME NOT IN ('session', 'seaql_migrations_tower_sessions') \
                 UNION ALL SELECT CONCAT(TABLE_NAME, ' ', COLUMN_NAME, ' ', COLUMN_TYPE) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME NOT IN ('session', 'seaql_migrations_tower_sessions') \
                 ORDER BY 1"
            }
        };
        seen.extend(self.strings(catalog).await);
        seen.extend(self.strings("SELECT name FROM users ORDER BY id").await);
        seen.extend(
            self.strings("SELECT version FROM seaql_migrations ORDER BY version")
                .await,
        );
        seen.extend(
            self.strings(&format!("SELECT id FROM {} ORDER BY id", self.other))
                .await,
        );
        seen.extend(
            self.strings(&format!(
                "SELECT version FROM {} WHERE version NOT LIKE 'session/%' ORDER BY version",
                self.history
            ))
            .await,
        );
        if self.backend() == DbBackend::Postgres {
            seen.extend(self.strings("SELECT note FROM public.session").await);
            seen.extend(self.strings("SELECT line FROM tower_sessions.audit").await);
        }
        seen
    }

    /// The session table's history rows.
    async fn session_history(&self) -> Vec<String> {
        self.strings(&format!(
            "SELECT version FROM {} WHERE version LIKE 'session/%' ORDER BY version",
            self.history
        ))
        .await
    }

    /// Whether the session table exists.
    async fn has_session_table(&self) -> bool {
        let sql = match self.backend() {
            DbBackend::Postgres => {
                "SELECT 'yes' WHERE to_regclass('tower_sessions.session') IS NOT NULL".to_owned()
            }
            DbBackend::Sqlite => {
                "SELECT 'yes' FROM sqlite_master WHERE type = 'table' AND name = 'session'"
                    .to_owned()
            }
            _ => "SELECT 'yes' FROM information_schema.TABLES \
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'session'"
                .to_owned(),
        };
        !self.strings(&sql).await.is_empty()
    }

    async fn finish(self) {
        let _ = self.conn.close().await;
        match self.owned {
            Owned::Postgres(admin, database) => admin
                .execute_unprepared(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
                .await
                .map(drop)
                .unwrap(),
            Owned::MySql(admin, database) => admin
                .execute_unprepared(&format!("DROP DATABASE `{database}`"))
                .await
                .map(drop)
                .unwrap(),
            Owned::Sqlite(path) => common::sqlite::remove_db_files(&path),
        }
    }
}

/// Every command, in an order that creates, rolls back and recreates the session table, with
/// the application checked unchanged after each; and the session table's state checked where
/// a command must have changed it, so the test cannot pass by doing nothing.
async fn every_command_leaves_the_application_alone(db: AppDatabase) {
    db.plant_application().await;
    let application = db.application().await;
    assert!(
        application.iter().any(|line| line == "grace"),
        "the snapshot sees the users: {application:?}"
    );
    let steps: &[(&[&str], Option<usize>)] = &[
        (&["status"], Some(0)),
        (&["up"], Some(7)),
        (&["status"], Some(7)),
        (&["down"], Some(6)),
        (&["down", "-n", "2"], Some(4)),
        (&["up", "-n", "1"], Some(5)),
        (&["up"], Some(7)),
        (&["reset"], Some(0)),
        (&["reset"], Some(0)),
        (&["refresh"], Some(7)),
        (&["refresh"], Some(7)),
        (&["down", "-n", "10"], Some(0)),
        (&["up"], Some(7)),
        (&["fresh"], None),
        (&["init"], None),
        (&["generate", "create_users"], None),
        (&["status"], Some(7)),
    ];
    for (args, history_rows) in steps {
        let outcome = cli(&db.url, args);
        match history_rows {
            Some(rows) => {
                assert!(outcome.success, "{args:?} failed:\n{}", outcome.stderr);
                assert_eq!(
                    db.session_history().await.len(),
                    *rows,
                    "{args:?}: the session table's history rows"
                );
                assert_eq!(
                    db.has_session_table().await,
                    *rows > 0,
                    "{args:?}: the session table exists exactly while its first migration is \
                     applied"
                );
            }
            None => {
                assert_eq!(outcome.code, Some(2), "{args:?} is refused");
                assert!(
                    outcome.stderr.contains("not offered")
                        && outcome.stderr.contains("Nothing was done"),
                    "{args:?}: the refusal says why and what to do: {}",
                    outcome.stderr
                );
            }
        }
        assert_eq!(
            db.application().await,
            application,
            "`tower-sessions-seaorm-migration {}` changed the application's tables",
            args.join(" ")
        );
    }
    // The sessions table the CLI made is the store's: a session round-trips through it.
    let store = PostgresStore::new(db.conn.clone());
    let mut record = common::suite::record(common::suite::in_a_day());
    store.create(&mut record).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&record.id).await.unwrap()),
        Some(record)
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_command_leaves_the_application_alone() {
    every_command_leaves_the_application_alone(AppDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_command_leaves_the_application_alone() {
    every_command_leaves_the_application_alone(AppDatabase::mysql().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_command_leaves_the_application_alone() {
    every_command_leaves_the_application_alone(AppDatabase::sqlite().await).await;
}

/// An application table under the session table's name: every command that would create,
/// alter or drop it is refused, saying so, and the table keeps its rows.
/// `up` adds the long-lived marker (`AddLongLived`) to a populated table of the seventh
/// migration: the sessions in it are kept, short-lived, and the store marks them from then on;
/// the application's tables are left alone.
async fn up_adds_the_long_lived_marker_to_a_populated_table(db: AppDatabase) {
    use std::time::Duration as StdDuration;
    use tower_sessions_seaorm_store::testing::ManualClock;

    db.plant_application().await;
    let application = db.application().await;
    run_cli(&db.url, "up");
    let clock = ManualClock::new();
    let store = PostgresStore::new(db.conn.clone()).with_clock(clock.reader());
    let mut records = Vec::new();
    for _ in 0..2 {
        let mut record = common::suite::record(common::suite::in_a_day());
        store.create(&mut record).await.unwrap();
        records.push(record);
    }
    // Back to a table of the seventh migration, its sessions in it; then `up` again.
    run_cli(&db.url, "down");
    assert_eq!(db.session_history().await.len(), 6);
    run_cli(&db.url, "up");
    assert_eq!(db.session_history().await, HISTORY);

    let hour = StdDuration::from_secs(60 * 60);
    let remembering = store
        .with_absolute_lifetime(hour)
        .with_long_lived_sessions("remember_me", 24 * hour)
        .unwrap();
    let mut remembered = remembering.load(&records[0].id).await.unwrap().unwrap();
    remembered
        .data
        .insert("remember_me".into(), serde_json::json!(true));
    remembering.save(&remembered).await.unwrap();
    clock.advance(hour + StdDuration::from_secs(1));
    assert!(remembering.load(&records[0].id).await.unwrap().is_some());
    assert_eq!(remembering.load(&records[1].id).await.unwrap(), None);
    assert_eq!(db.application().await, application);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_up_adds_the_long_lived_marker_to_a_populated_table() {
    up_adds_the_long_lived_marker_to_a_populated_table(AppDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_up_adds_the_long_lived_marker_to_a_populated_table() {
    up_adds_the_long_lived_marker_to_a_populated_table(AppDatabase::mysql().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_up_adds_the_long_lived_marker_to_a_populated_table() {
    up_adds_the_long_lived_marker_to_a_populated_table(AppDatabase::sqlite().await).await;
}

async fn an_application_table_named_session_is_refused(db: AppDatabase) {
    let table = db.session;
    if db.backend() == DbBackend::Postgres {
        db.execute("CREATE SCHEMA tower_sessions").await;
    }
    db.execute(&format!(
        "CREATE TABLE {table} (id integer PRIMARY KEY, topic varchar(64) NOT NULL)"
    ))
    .await;
    db.execute(&format!(
        "INSERT INTO {table} (id, topic) VALUES (1, 'a conference session')"
    ))
    .await;
    // Its history says the session table is migrated (say, by an older tool): the table is
    // still checked before anything is dropped.
    record_every_step_as_applied(&db).await;
    for args in [&["up"][..], &["down"], &["reset"], &["refresh"]] {
        let outcome = cli(&db.url, args);
        assert_eq!(outcome.code, Some(1), "{args:?} is refused");
        assert!(
            outcome.stderr.contains("is not a session table")
                && outcome.stderr.contains("Nothing was done"),
            "{args:?}: {}",
            outcome.stderr
        );
    }
    let status = cli(&db.url, &["status"]);
    assert!(status.success && status.stdout.contains("NOT a session table"));
    assert_eq!(
        db.strings(&format!("SELECT topic FROM {table}")).await,
        ["a conference session"]
    );
    db.finish().await;
}

/// Records every step as applied, as if an older tool had migrated the table.
async fn record_every_step_as_applied(db: &AppDatabase) {
    if db.backend() == DbBackend::Postgres {
        db.execute(&format!(
            "CREATE TABLE {} (version varchar PRIMARY KEY, applied_at bigint NOT NULL)",
            db.history
        ))
        .await;
    } else {
        db.execute(&format!(
            "CREATE TABLE {} (version varchar(255) PRIMARY KEY, applied_at bigint NOT NULL)",
            db.history
        ))
        .await;
    }
    for version in HISTORY {
        db.execute(&format!(
            "INSERT INTO {} (version, applied_at) VALUES ('{version}', 0)",
            db.history
        ))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_application_table_named_session_is_refused() {
    an_application_table_named_session_is_refused(AppDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_an_application_table_named_session_is_refused() {
    an_application_table_named_session_is_refused(AppDatabase::mysql().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_application_table_named_session_is_refused() {
    an_application_table_named_session_is_refused(AppDatabase::sqlite().await).await;
}

/// On PostgreSQL with a listening read cache, `migrate()` installs eviction triggers and their
/// function: `reset` drops the table's (the triggers with the table, then the function), and
/// leaves another session table's triggers and function in place.
#[cfg(feature = "cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reset_drops_the_eviction_function_and_only_it() {
    use tower_sessions_seaorm_store::Cache;

    let db = AppDatabase::postgres().await;
    db.plant_application().await;
    for table in ["session", "other_session"] {
        PostgresStore::new(db.conn.clone())
            .with_table_name(table)
            .unwrap()
            .with_cache(Cache::listening(db.url.clone()))
            .unwrap()
            .migrate()
            .await
            .unwrap();
    }
    let functions = "SELECT p.proname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
                     WHERE t.tgrelid = to_regclass($1) GROUP BY 1";
    let function_of = |table: &'static str| {
        let conn = db.conn.clone();
        async move { common::scalar_strings(&conn, functions, vec![table.into()]).await }
    };
    let ours = function_of("tower_sessions.session").await;
    let others = function_of("tower_sessions.other_session").await;
    assert_eq!((ours.len(), others.len()), (1, 1), "one function per table");
    assert_ne!(ours, others);
    let application = db.application().await;

    run_cli(&db.url, "reset");
    let left = db
        .strings(
            "SELECT proname::text FROM pg_proc WHERE proname LIKE 'tower\\_sessions\\_evict\\_%'",
        )
        .await;
    assert_eq!(
        left, others,
        "the session table's function went, the other's stayed"
    );
    assert_eq!(function_of("tower_sessions.other_session").await, others);
    let ours = format!("function tower_sessions.{}", ours[0]);
    let expected: Vec<_> = application
        .into_iter()
        .filter(|line| *line != ours)
        .collect();
    assert_eq!(db.application().await, expected, "nothing else changed");
    db.finish().await;
}

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
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec)
    );

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
    let db = AppDatabase::postgres().await;
    cli_and_migrate_mix(&db.url, db.conn.clone(), db.history).await;
    let elsewhere = db
        .strings(
            "SELECT coalesce(to_regclass('public.seaql_migrations_tower_sessions')::text, 'none')",
        )
        .await;
    assert_eq!(
        elsewhere,
        ["none"],
        "the CLI keeps no second history in `public`"
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_the_cli_and_migrate_share_one_history() {
    let db = AppDatabase::mysql().await;
    cli_and_migrate_mix(&db.url, db.conn.clone(), db.history).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_cli_and_migrate_share_one_history() {
    let db = AppDatabase::sqlite().await;
    cli_and_migrate_mix(&db.url, db.conn.clone(), db.history).await;
    db.finish().await;
}

/// The `sessions` commands, run as a process in a database that also holds the application:
/// each counts or ends exactly the sessions it names (the store cannot load them any more, and
/// with the login history each ended session of a user is logged `revoked` under the handle
/// the device list shows), `--dry-run` ends none, and the application is untouched.
async fn the_sessions_commands_end_only_the_sessions_they_name(db: AppDatabase) {
    use std::time::Duration as StdDuration;
    use tower_sessions_seaorm_store::{testing::ManualClock, Id, Record};

    db.plant_application().await;
    run_cli(&db.url, "up");
    // Hashed ids: no command involves an id, and the history's handles are the stored keys'.
    let mut store = PostgresStore::new(db.conn.clone())
        .with_user_key("user_id")
        .unwrap()
        .with_hashed_ids();
    store = store
        .with_login_history(StdDuration::from_secs(86_400))
        .unwrap();
    store.migrate().await.unwrap();
    // The history's table is the session table's (SQLite lists it with the application's).
    let application = db.application().await;
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let old_clock = ManualClock::at(now - day * 2);
    let old_store = store.clone().with_clock(old_clock.reader());
    let create = |store: &PostgresStore, user: Option<&str>, expiry| {
        let store = store.clone();
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: expiry,
        };
        if let Some(user) = user {
            record
                .data
                .insert("user_id".into(), serde_json::json!(user));
        }
        async move {
            store.create(&mut record).await.unwrap();
            record
        }
    };
    let mut old = Vec::new();
    for user in [Some("ada"), Some("ada"), Some("bob"), None] {
        old.push(create(&old_store, user, now + day).await);
    }
    let new_ada = create(&store, Some("ada"), now + day).await;
    let new_anonymous = create(&store, None, now + day).await;
    let expired = create(&store, None, now - time::Duration::hours(1)).await;

    let sessions = |args: &[&str]| {
        let mut all = vec!["sessions"];
        all.extend_from_slice(args);
        let outcome = cli(&db.url, &all);
        assert!(outcome.success, "{args:?}: {}", outcome.stderr);
        outcome.stdout
    };
    let table = match db.backend() {
        DbBackend::Postgres => "\"tower_sessions\".\"session\"",
        DbBackend::MySql => "`session`",
        _ => "\"session\"",
    };
    assert_eq!(
        sessions(&["count"]),
        format!("6 live sessions in {table}\n")
    );
    assert_eq!(
        sessions(&["count", "--user", "ada"]),
        format!("3 live sessions in {table}\n")
    );
    let breach = (now - day)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        sessions(&["revoke", "--created-before", &breach, "--dry-run"]),
        format!("would end 4 sessions in {table} (dry run: nothing was deleted)\n")
    );
    assert!(
        store.load(&old[0].id).await.unwrap().is_some(),
        "a dry run ends nothing"
    );
    assert_eq!(
        sessions(&["revoke", "--created-before", &breach, "--user", "ada"]),
        format!("ended 2 sessions in {table}\n")
    );
    assert!(
        store.load(&old[2].id).await.unwrap().is_some(),
        "bob's stays"
    );
    assert_eq!(
        sessions(&["revoke", "--created-before", &breach]),
        format!("ended 2 sessions in {table}\n")
    );
    for record in &old {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    assert!(
        store.load(&new_ada.id).await.unwrap().is_some(),
        "created after the instant"
    );
    assert_eq!(
        sessions(&["revoke", "--user", "ada"]),
        format!("ended 1 session in {table}\n")
    );
    assert_eq!(store.load(&new_ada.id).await.unwrap(), None);
    assert_eq!(
        sessions(&["purge-expired", "--dry-run"]),
        format!("would end 1 session in {table} (dry run: nothing was deleted)\n")
    );
    assert_eq!(
        sessions(&["purge-expired"]),
        format!("ended 1 session in {table}\n")
    );
    assert_eq!(sessions(&["count"]), format!("1 live session in {table}\n"));
    assert!(store.load(&new_anonymous.id).await.unwrap().is_some());
    let _ = expired;

    let refused = cli(&db.url, &["sessions", "revoke"]);
    assert!(!refused.success && refused.stderr.contains("--user, --created-before"));
    let refused = cli(
        &db.url,
        &["sessions", "revoke", "--created-before", "yesterday"],
    );
    assert!(
        !refused.success && refused.stderr.contains("RFC 3339"),
        "{}",
        refused.stderr
    );

    // `--all` ends every session, once confirmed with the table's name as the store's
    // `table_name()` gives it; anything else (or beside --user) ends none.
    let refused = cli(&db.url, &["sessions", "revoke", "--all", "sessions"]);
    assert!(
        !refused.success
            && refused.stderr.contains(&format!(
                "(--all {}). Nothing was done.",
                store.table_name()
            )),
        "{}",
        refused.stderr
    );
    let refused = cli(
        &db.url,
        &[
            "sessions",
            "revoke",
            "--all",
            store.table_name(),
            "--user",
            "bob",
        ],
    );
    assert!(!refused.success, "--all with --user is refused");
    assert!(
        store.load(&new_anonymous.id).await.unwrap().is_some(),
        "an unconfirmed --all ends nothing"
    );
    assert_eq!(
        sessions(&["revoke", "--all", store.table_name(), "--dry-run"]),
        format!("would end 1 session in {table} (dry run: nothing was deleted)\n")
    );
    assert_eq!(
        sessions(&["revoke", "--all", store.table_name()]),
        format!("ended 1 session in {table}\n")
    );
    assert_eq!(store.load(&new_anonymous.id).await.unwrap(), None);
    assert_eq!(
        sessions(&["count"]),
        format!("0 live sessions in {table}\n")
    );

    // Each ended session of a user logged once, as `revoked` (on PostgreSQL the trigger that
    // logs deletes the store did not make finds the command's own entries and adds none).
    for (user, ended) in [("ada", 3), ("bob", 1)] {
        let history = store.user_history(user, 10).await.unwrap();
        let kinds: Vec<_> = history.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds.iter().filter(|kind| **kind == "revoked").count(),
            ended,
            "{user}: {history:?}"
        );
        assert!(
            kinds
                .iter()
                .all(|kind| matches!(*kind, "revoked" | "signed_in")),
            "{user}: {history:?}"
        );
    }
    let handle = store.session_handle(old[0].id);
    assert!(store
        .user_history("ada", 10)
        .await
        .unwrap()
        .iter()
        .any(|event| event.kind == "revoked" && event.handle == handle));
    assert_eq!(
        db.application().await,
        application,
        "the application is untouched"
    );
    db.finish().await;
}

#[tokio::test]
async fn postgres_the_sessions_commands_end_only_the_sessions_they_name() {
    the_sessions_commands_end_only_the_sessions_they_name(AppDatabase::postgres().await).await;
}

#[tokio::test]
async fn mysql_the_sessions_commands_end_only_the_sessions_they_name() {
    the_sessions_commands_end_only_the_sessions_they_name(AppDatabase::mysql().await).await;
}

#[tokio::test]
async fn sqlite_the_sessions_commands_end_only_the_sessions_they_name() {
    the_sessions_commands_end_only_the_sessions_they_name(AppDatabase::sqlite().await).await;
}

/// On a hash-partitioned table, through PgBouncer in transaction mode, in a schema of its own
/// beside an application table: the commands count and end the same sessions.
#[tokio::test]
async fn postgres_the_sessions_commands_work_on_a_hash_partitioned_table_through_pgbouncer() {
    use tower_sessions_seaorm_store::{testing::ManualClock, Id, Record};

    let conn = common::connect_postgres(&common::database_url()).await;
    let schema = common::unique_name("ts_cli_parts");
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_hash_partitions(4)
        .unwrap()
        .with_user_key("user_id")
        .unwrap()
        .with_hashed_ids();
    store.migrate().await.unwrap();
    conn.execute_unprepared(&format!(
        "CREATE TABLE \"{schema}\".audit (line text); \
         INSERT INTO \"{schema}\".audit VALUES ('kept')"
    ))
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let old_store = store
        .clone()
        .with_clock(ManualClock::at(now - day * 2).reader());
    let mut sessions = Vec::new();
    for (store, user) in [
        (&old_store, Some("ada")),
        (&old_store, Some("ada")),
        (&old_store, None),
        (&store, Some("ada")),
    ] {
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: now + day,
        };
        if let Some(user) = user {
            record
                .data
                .insert("user_id".into(), serde_json::json!(user));
        }
        store.create(&mut record).await.unwrap();
        sessions.push(record);
    }
    let url = common::pgbouncer::pgbouncer_url();
    let sessions_cli = |args: &[&str]| {
        let mut all = vec!["--schema", schema.as_str(), "sessions"];
        all.extend_from_slice(args);
        let outcome = cli(&url, &all);
        assert!(outcome.success, "{args:?}: {}", outcome.stderr);
        outcome.stdout
    };
    let table = format!("\"{schema}\".\"session\"");
    assert_eq!(
        sessions_cli(&["count", "--user", "ada"]),
        format!("3 live sessions in {table}\n")
    );
    let breach = (now - day)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        sessions_cli(&["revoke", "--created-before", &breach]),
        format!("ended 3 sessions in {table}\n")
    );
    for record in &sessions[..3] {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    assert!(store.load(&sessions[3].id).await.unwrap().is_some());
    assert_eq!(
        sessions_cli(&["count"]),
        format!("1 live session in {table}\n")
    );
    assert_eq!(
        sessions_cli(&["revoke", "--all", &format!("{schema}.session")]),
        format!("ended 1 session in {table}\n")
    );
    assert_eq!(store.load(&sessions[3].id).await.unwrap(), None);
    let audit = common::scalar_strings(
        &conn,
        &format!("SELECT line FROM \"{schema}\".audit"),
        vec![],
    )
    .await;
    assert_eq!(audit, ["kept"], "the application's table is untouched");
    common::drop_schema(conn, &schema).await;
}

/// `up --login-history` creates what the store's `with_login_history` needs (the history table
/// and, on PostgreSQL, the trigger that logs deletes the store did not make), idempotently and
/// beside the application: a store with the history then works without its own `migrate()`.
async fn up_with_the_login_history_makes_what_the_store_needs(db: AppDatabase) {
    use std::time::Duration as StdDuration;
    use tower_sessions_seaorm_store::{Id, Record};

    db.plant_application().await;
    let users = db.strings("SELECT name FROM users ORDER BY id").await;
    let first = cli(&db.url, &["up", "--login-history"]);
    assert!(first.success, "{}", first.stderr);
    let again = cli(&db.url, &["up", "--login-history"]);
    assert!(again.success, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to apply"),
        "{}",
        again.stdout
    );
    let store = PostgresStore::new(db.conn.clone())
        .with_user_key("user_id")
        .unwrap()
        .with_login_history(StdDuration::from_secs(86_400))
        .unwrap();
    let mut record = Record {
        id: Id::default(),
        data: [("user_id".to_owned(), serde_json::json!("ada"))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    };
    store.create(&mut record).await.unwrap();
    store.delete(&record.id).await.unwrap();
    let mut expected = vec!["deleted", "signed_in"];
    if db.backend() == DbBackend::Postgres {
        // The trigger is in place: an operator's delete is logged.
        let mut other = Record {
            id: Id::default(),
            ..record.clone()
        };
        store.create(&mut other).await.unwrap();
        db.execute(&format!(
            "DELETE FROM {} WHERE user_key = 'ada'",
            db.session
        ))
        .await;
        expected = vec!["removed", "signed_in", "deleted", "signed_in"];
    }
    let kinds: Vec<_> = store
        .user_history("ada", 10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.kind)
        .collect();
    assert_eq!(kinds, expected);
    assert_eq!(
        db.strings("SELECT name FROM users ORDER BY id").await,
        users,
        "the application's rows are untouched"
    );
    db.finish().await;
}

#[tokio::test]
async fn postgres_up_with_the_login_history_makes_what_the_store_needs() {
    up_with_the_login_history_makes_what_the_store_needs(AppDatabase::postgres().await).await;
}

#[tokio::test]
async fn mysql_up_with_the_login_history_makes_what_the_store_needs() {
    up_with_the_login_history_makes_what_the_store_needs(AppDatabase::mysql().await).await;
}

#[tokio::test]
async fn sqlite_up_with_the_login_history_makes_what_the_store_needs() {
    up_with_the_login_history_makes_what_the_store_needs(AppDatabase::sqlite().await).await;
}
