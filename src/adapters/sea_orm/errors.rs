//! Classifying SeaORM's errors into what the store reports, without session data: the
//! SeaORM driver's half of [`ServerError`]'s one classification. (`migrate()`'s lost races
//! are the migration crate's runner's to recognise.)

use sea_orm::{sqlx::error::ErrorKind, DbErr, RuntimeErr};

use super::dialect::Dialect;
use crate::{
    adapters::sql::{ServerError, SqlError},
    ports::RepositoryError,
};

/// Maps a SeaORM error to what the store reports, keeping only what is safe to log.
///
/// Database errors keep the server's primary message and code, which describe the statement
/// (e.g. `relation "tower_sessions.session" does not exist`), not the bound values; the detail
/// lines that can quote a value are dropped.
pub(crate) fn classify(dialect: Dialect, err: DbErr) -> SqlError {
    use sea_orm::sqlx::Error as Sqlx;
    let failed = SqlError::from;
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            failed(RepositoryError::Unavailable(err.to_string()))
        }
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                // MySQL's duplicate-entry message quotes the key, which may be a session id.
                Sqlx::Database(db) if matches!(db.kind(), ErrorKind::UniqueViolation) => SqlError {
                    duplicate: true,
                    ..failed(RepositoryError::Statement(format!(
                        "a row with this key already exists ({} {})",
                        dialect.code_label(),
                        db.code().unwrap_or_default()
                    )))
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
