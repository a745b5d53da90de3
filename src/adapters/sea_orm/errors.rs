//! Classifying SeaORM's errors into the port's [`RepositoryError`], without session data, and
//! recognising each backend's duplicate-key and conflict errors. (`migrate()`'s lost races are
//! the migration crate's runner's to recognise.)

use sea_orm::{sqlx::error::ErrorKind, DbErr, RuntimeErr};

use super::dialect::Dialect;
use crate::{adapters::sql::ServerError, ports::RepositoryError};

/// The database's own error, if the error came from the database.
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

/// Whether the database refused a row because its key is taken: PostgreSQL 23505, SQLite
/// `SQLITE_CONSTRAINT_PRIMARYKEY`/`_UNIQUE`, MySQL `ER_DUP_ENTRY` (1062) and its kin, as sqlx
/// reads each driver's code.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    database_error(err).is_some_and(|db| matches!(db.kind(), ErrorKind::UniqueViolation))
}

/// Whether `err` is the server rolling the statement back after a conflict with another
/// transaction (a deadlock, a serialization failure), so that running it again may succeed.
pub(crate) fn is_conflict(dialect: Dialect, err: &DbErr) -> bool {
    database_error(err).is_some_and(|db| {
        ServerError::of(dialect, db.code().as_deref(), db.message()) == ServerError::Conflict
    })
}

/// Maps a SeaORM error to the port's error, keeping only what is safe to log.
///
/// Database errors keep the server's primary message and code, which describe the statement
/// (e.g. `relation "tower_sessions.session" does not exist`), not the bound values; the detail
/// lines that can quote a value are dropped.
pub(crate) fn classify(dialect: Dialect, err: DbErr) -> RepositoryError {
    use sea_orm::sqlx::Error as Sqlx;
    match &err {
        DbErr::ConnectionAcquire(_) => RepositoryError::Unavailable(err.to_string()),
        DbErr::Conn(_) => RepositoryError::Unavailable(err.to_string()),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                // MySQL's duplicate-entry message quotes the key, which may be a session id.
                Sqlx::Database(db) if matches!(db.kind(), ErrorKind::UniqueViolation) => {
                    RepositoryError::Statement(format!(
                        "a row with this key already exists ({} {})",
                        dialect.code_label(),
                        db.code().unwrap_or_default()
                    ))
                }
                Sqlx::Database(db) => {
                    let code = db.code();
                    let message = match &code {
                        Some(code) => format!("{} ({} {code})", db.message(), dialect.code_label()),
                        None => db.message().to_owned(),
                    };
                    match ServerError::of(dialect, code.as_deref(), db.message()) {
                        ServerError::NotMigrated => RepositoryError::MissingTable(message),
                        ServerError::ReadOnly => RepositoryError::Unavailable(format!(
                            "the server is a standby or read-only and accepts no writes: \
                             {message}; connect the store to the primary, e.g. through a \
                             PgBouncer re-pointed at failover (SCALING.md, High availability)"
                        )),
                        ServerError::ConnectionLost => RepositoryError::Unavailable(message),
                        ServerError::Conflict | ServerError::Statement => {
                            RepositoryError::Statement(message)
                        }
                    }
                }
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed
                | Sqlx::Protocol(_) => RepositoryError::Unavailable(e.to_string()),
                Sqlx::ColumnDecode { .. } | Sqlx::ColumnNotFound(_) | Sqlx::TypeNotFound { .. } => {
                    RepositoryError::CorruptRow(e.to_string())
                }
                _ => RepositoryError::Statement(e.to_string()),
            }
        }
        DbErr::Type(_) | DbErr::TryIntoErr { .. } => RepositoryError::CorruptRow(err.to_string()),
        _ => RepositoryError::Statement(err.to_string()),
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
        );
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
            let err = classify(Dialect::Postgres, failed_exec(code, message));
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
            ),
            RepositoryError::MissingTable(_)
        ));
        assert!(matches!(
            classify(Dialect::Postgres, failed_exec("23514", "new row violates check constraint")),
            RepositoryError::Statement(m) if m == "new row violates check constraint (SQLSTATE 23514)"
        ));
    }
}
