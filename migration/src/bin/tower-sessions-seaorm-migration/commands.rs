//! The commands, on one session table, through the migration crate's [`Runner`] (the one the
//! store's `migrate()` runs): `up`, `down` (and `reset`, all of them), `status`, each printing
//! what it did.

use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend};
use tower_sessions_seaorm_migration::{
    check_names, RunError, Runner, TableState, Undone, MAX_NAME_LEN,
};

/// The runner of session table `table` (in `schema` on PostgreSQL), its names checked as the
/// store checks them.
pub fn runner(backend: DbBackend, schema: &str, table: &str) -> Result<Runner, String> {
    check_identifier("--schema", schema)?;
    check_identifier("--table", table)?;
    if backend == DbBackend::Sqlite && table.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "--table {table}: SQLite ignores case in table names, and the store refuses \
             uppercase ones there; use lowercase letters, digits and underscores"
        ));
    }
    check_names(table, None).map_err(|err| format!("--table {table}: {err}"))?;
    Ok(Runner::new(backend, schema, table))
}

pub async fn up(
    runner: &Runner,
    conn: &DatabaseConnection,
    num: Option<u32>,
) -> Result<(), RunError> {
    let applied = runner.up(conn, num).await?;
    if applied.is_empty() {
        println!("{}: nothing to apply", runner.describe());
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

pub async fn down(
    runner: &Runner,
    conn: &DatabaseConnection,
    num: Option<u32>,
) -> Result<(), RunError> {
    let undone = runner.down(conn, num).await?;
    if undone.is_empty() {
        println!("{}: nothing to roll back", runner.describe());
    }
    for step in undone {
        match step {
            Undone::RolledBack(version) => println!("rolled back {version}"),
            Undone::Forgotten(version) => println!("forgot {version} (the table is gone)"),
        }
    }
    Ok(())
}

pub async fn status(runner: &Runner, conn: &DatabaseConnection) -> Result<(), RunError> {
    let status = runner.status(conn).await?;
    let found = match status.table {
        TableState::Missing => "missing".to_owned(),
        TableState::SessionTable => "present".to_owned(),
        TableState::NotASessionTable { lacks } => format!(
            "present, but NOT a session table (no {}): up and down refuse it",
            lacks.join(", ")
        ),
    };
    println!(
        "session table {}: {found}; history in {}",
        runner.describe(),
        runner.describe_history()
    );
    for (version, applied) in status.steps {
        let state = if applied { "applied" } else { "pending" };
        println!("  {state:<8} {version}");
    }
    for unknown in status.unknown {
        println!("  applied  {unknown} (unknown to this version of the command line)");
    }
    Ok(())
}

/// The store's rule for schema and table names: 1 to 63 ASCII letters, digits and
/// underscores, not starting with a digit.
fn check_identifier(option: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{option} {name:?}: use 1 to 63 ASCII letters, digits and underscores, not starting \
             with a digit (the store's rule for its names)"
        ))
    }
}
