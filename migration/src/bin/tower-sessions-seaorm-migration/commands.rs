//! The commands, on one session table, through the migration crate's [`Runner`] (the one the
//! store's `migrate()` runs): `up`, `down` (and `reset`, all of them), `refresh`, `status`, each
//! printing what it did.

use crate::args::Action;
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

/// Runs `action` (`refresh` rolls back, then applies), printing what it did.
pub async fn run(
    runner: &Runner,
    conn: &DatabaseConnection,
    action: Action,
) -> Result<(), RunError> {
    let (down, up) = match action {
        Action::Up(num, _) => (None, Some(num)),
        Action::Down(num) => (Some(num), None),
        Action::Refresh => (Some(None), Some(None)),
        Action::Status => return status(runner, conn).await,
        // Run by `sessions.rs`, not the runner.
        Action::Sessions(_) => {
            return Err(RunError::Refused(
                "`sessions` commands do not migrate; nothing was done".to_owned(),
            ))
        }
    };
    if let Some(num) = down {
        let undone = runner.down(conn, num).await?;
        let lines = undone.iter().map(|step| match step {
            Undone::RolledBack(version) => format!("rolled back {version}"),
            Undone::Forgotten(version) => format!("forgot {version} (the table is gone)"),
        });
        report(runner, "nothing to roll back", lines.collect());
    }
    if let Some(num) = up {
        let applied = runner.up(conn, num).await?;
        let lines = applied.iter().map(|version| format!("applied {version}"));
        report(runner, "nothing to apply", lines.collect());
    }
    Ok(())
}

/// Prints what a command did, one line each, or that it had `nothing` to do.
fn report(runner: &Runner, nothing: &str, lines: Vec<String>) {
    if lines.is_empty() {
        println!("{}: {nothing}", runner.describe());
    }
    for line in lines {
        println!("{line}");
    }
}

async fn status(runner: &Runner, conn: &DatabaseConnection) -> Result<(), RunError> {
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
