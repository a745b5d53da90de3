//! Classifying SeaORM's errors into the port's [`RepositoryError`], without session data, and
//! recognising each backend's duplicate-key and lost-race errors.

use sea_orm::{sqlx::error::ErrorKind, DbErr, RuntimeErr};

use super::dialect::Dialect;
use crate::{
    adapters::sql::{ServerError, SqlError},
    ports::RepositoryError,
};

/// The database's own error, if the error came from the database.
#[cfg(feature = "migration")]
fn database_error(err: &DbErr) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Database(db) => Some(db.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// The error code of a database error: the SQLSTATE on PostgreSQL and MySQL, the extended
/// result code on SQLite.
#[cfg(feature = "migration")]
pub(crate) fn error_code(err: &DbErr) -> Option<String> {
    database_error(err).and_then(|db| db.code().map(|c| c.into_owned()))
}

/// Whether the database refused a row because its key is taken: PostgreSQL 23505, SQLite
/// `SQLITE_CONSTRAINT_PRIMARYKEY`/`_UNIQUE`, MySQL `ER_DUP_ENTRY` (1062) and its kin, as sqlx
/// reads each driver's code.
#[cfg(feature = "migration")]
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    database_error(err).is_some_and(|db| matches!(db.kind(), ErrorKind::UniqueViolation))
}

/// The C function of PostgreSQL that raised `err` (the `R` field of its error report: not
/// translated, unlike the message).
#[cfg(feature = "migration")]
fn postgres_routine(err: &DbErr) -> Option<&str> {
    #[cfg(feature = "postgres")]
    {
        database_error(err)?
            .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()?
            .routine()
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = err;
        None
    }
}

/// Whether `err` is PostgreSQL failing to name a table's array type: it tries `_<table>` cut to
/// 63 bytes, then more underscores, and gives up when other objects whose names share the
/// table's first bytes hold every candidate. SQLSTATE 42710 as a lost race, but no retry helps.
#[cfg(feature = "migration")]
pub(crate) fn is_array_type_name_exhausted(dialect: Dialect, err: &DbErr) -> bool {
    dialect == Dialect::Postgres
        && error_code(err).as_deref() == Some("42710")
        && postgres_routine(err) == Some("makeArrayTypeName")
}

/// Whether `err` is PostgreSQL's duplicate_object (42710), which a lost race raises ("type
/// … already exists", the winner's row type) but so does a type of someone else's in the way:
/// the caller tells the two apart by looking.
#[cfg(feature = "migration")]
pub(crate) fn is_duplicate_object(dialect: Dialect, err: &DbErr) -> bool {
    dialect == Dialect::Postgres && error_code(err).as_deref() == Some("42710")
}

/// Whether `err` is what the loser of a race between two concurrent `migrate()` calls sees, so
/// that starting over is correct (the winner's objects are then visible and `IF NOT EXISTS`
/// holds).
///
/// PostgreSQL's duplicate_object (42710) counts unless it is
/// [`is_array_type_name_exhausted`]; `migrate` checks the rest ([`is_duplicate_object`]).
#[cfg(feature = "migration")]
pub(crate) fn lost_a_migration_race(dialect: Dialect, err: &DbErr) -> bool {
    if is_array_type_name_exhausted(dialect, err) {
        return false;
    }
    if is_unique_violation(err) {
        // PostgreSQL: `IF NOT EXISTS` checks the catalog before inserting into it, so two
        // transactions can both pass and one trips pg_type's or pg_class's unique index. All:
        // the history row, when its insert is not an upsert.
        return true;
    }
    let Some(code) = error_code(err) else {
        return false;
    };
    match dialect {
        Dialect::Postgres => [
            "42P07", // duplicate_table
            "42P06", // duplicate_schema
            "42710", // duplicate_object: a row type the winner created meanwhile
            "42701", // duplicate_column (the user index's columns)
            "40P01", // deadlock_detected
            "40001", // serialization_failure
        ]
        .contains(&code.as_str()),
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes (the low byte is
        // the primary code): another connection holds the write lock past the busy timeout.
        Dialect::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
        // MySQL has no transactional DDL: each step is idempotent, and these mean another
        // replica got there first (or the two collided on a metadata lock).
        Dialect::MySql => [
            "42S01", // ER_TABLE_EXISTS_ERROR (1050)
            "42S21", // ER_DUP_FIELDNAME (1060): the user index's columns
            "40001", // ER_LOCK_DEADLOCK (1213)
        ]
        .contains(&code.as_str()),
    }
}

/// Maps a SeaORM error to what the store reports, keeping only what is safe to log.
///
/// Database errors keep the server's primary message and code, which describe the statement
/// (e.g. `relation "tower_sessions.session" does not exist`), not the bound values; the detail
/// lines that can quote a value are dropped.
pub(crate) fn classify(dialect: Dialect, err: DbErr) -> SqlError {
    use sea_orm::sqlx::Error as Sqlx;
    let failed = |error| SqlError {
        error,
        duplicate: false,
        conflict: false,
    };
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            failed(RepositoryError::Unavailable(err.to_string()))
        }
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                // MySQL's duplicate-entry message quotes the key, which may be a session id.
                Sqlx::Database(db) if matches!(db.kind(), ErrorKind::UniqueViolation) => SqlError {
                    error: RepositoryError::Statement(format!(
                        "a row with this key already exists ({} {})",
                        dialect.code_label(),
                        db.code().unwrap_or_default()
                    )),
                    duplicate: true,
                    conflict: false,
                },
                Sqlx::Database(db) => ServerError::sql_error(
                    dialect,
                    db.code().as_deref(),
                    db.message(),
                    "e.g. through a PgBouncer re-pointed at failover",
                ),
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed
                | Sqlx::Protocol(_) => failed(RepositoryError::Unavailable(e.to_string())),
                Sqlx::ColumnDecode { .. } | Sqlx::ColumnNotFound(_) | Sqlx::TypeNotFound { .. } => {
                    failed(RepositoryError::CorruptRow(e.to_string()))
                }
                _ => failed(RepositoryError::Statement(e.to_string())),
            }
        }
        DbErr::Type(_) | DbErr::TryIntoErr { .. } => {
            failed(RepositoryError::CorruptRow(err.to_string()))
        }
        _ => failed(RepositoryError::Statement(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, sync::Arc};

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error as a driver reports it: a SQLSTATE and a primary message.
    #[derive(Debug)]
    struct ServerError {
        code: &'static str,
        message: &'static str,
    }

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.message)
        }
    }

    impl std::error::Error for ServerError {}

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            self.message
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn failed_exec(code: &'static str, message: &'static str) -> DbErr {
        let sqlx = sea_orm::sqlx::Error::Database(Box::new(ServerError { code, message }));
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx)))
    }

    #[test]
    fn a_write_on_a_postgres_standby_is_unavailable_and_says_to_connect_to_the_primary() {
        let err = classify(
            Dialect::Postgres,
            failed_exec("25006", "cannot execute INSERT in a read-only transaction"),
        )
        .error;
        let RepositoryError::Unavailable(message) = &err else {
            panic!("a read-only server is unavailable for writes, not {err:?}");
        };
        assert!(
            message.contains("cannot execute INSERT in a read-only transaction (SQLSTATE 25006)"),
            "{message}"
        );
        assert!(
            message.contains("connect the store to the primary"),
            "{message}"
        );
    }

    #[test]
    fn a_lost_server_connection_is_unavailable_not_a_failed_statement() {
        for (code, message) in [
            ("08P01", "server conn crashed?"),
            ("08006", "connection failure"),
            (
                "57P01",
                "terminating connection due to administrator command",
            ),
            ("57P03", "the database system is starting up"),
        ] {
            let err = classify(Dialect::Postgres, failed_exec(code, message)).error;
            assert!(
                matches!(&err, RepositoryError::Unavailable(m) if m.contains(code)),
                "{code}: {err:?}"
            );
        }
    }

    #[test]
    fn other_database_errors_keep_their_classification() {
        assert!(matches!(
            classify(
                Dialect::Postgres,
                failed_exec("42P01", "relation \"s.t\" does not exist")
            )
            .error,
            RepositoryError::MissingTable(_)
        ));
        assert!(matches!(
            classify(Dialect::Postgres, failed_exec("23514", "new row violates check constraint")).error,
            RepositoryError::Statement(m) if m == "new row violates check constraint (SQLSTATE 23514)"
        ));
    }
}
