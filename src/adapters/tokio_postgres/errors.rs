//! Classifying tokio-postgres and deadpool errors into the port's [`RepositoryError`], without
//! session data.

use deadpool_postgres::PoolError;

use crate::{
    adapters::sql::{Dialect, ServerError, SqlError},
    ports::RepositoryError,
};

/// No connection could be had from the pool.
pub(crate) fn pool(err: PoolError) -> RepositoryError {
    if refused_by_target_session_attrs(&err) {
        // tokio-postgres says only "error connecting to server"; the reason is in its source.
        return RepositoryError::Unavailable(
            "no server in the URL accepts writes: target_session_attrs=read-write found only \
             standbys or read-only servers; list the primary (or wait for a standby's promotion)"
                .to_owned(),
        );
    }
    RepositoryError::Unavailable(err.to_string())
}

/// Whether a connection failed because `target_session_attrs=read-write` found the server
/// read-only: tokio-postgres reports it as an I/O error, "database does not allow writes", in
/// the source chain of "error connecting to server".
fn refused_by_target_session_attrs(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == std::io::ErrorKind::PermissionDenied
                && io.to_string() == "database does not allow writes"
        }) {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A statement failed. A database error keeps the server's primary message and SQLSTATE, which
/// describe the statement, not the bound values (the detail lines that can quote a value are
/// dropped); anything else is the connection failing.
pub(crate) fn statement(err: tokio_postgres::Error) -> SqlError {
    match err.as_db_error() {
        Some(db) => database(db.code().code(), db.message()),
        None => RepositoryError::Unavailable(err.to_string()).into(),
    }
}

/// A database error, by its SQLSTATE and primary message: the classification the SeaORM
/// adapter uses too ([`ServerError`]).
fn database(code: &str, message: &str) -> SqlError {
    ServerError::sql_error(
        Dialect::Postgres,
        Some(code),
        message,
        "e.g. list every server in the URL with target_session_attrs=read-write",
    )
}

/// A row came back in a shape that does not decode.
pub(crate) fn row(err: tokio_postgres::Error) -> RepositoryError {
    RepositoryError::CorruptRow(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_on_a_standby_is_unavailable_and_says_to_connect_to_the_primary() {
        let err = database("25006", "cannot execute INSERT in a read-only transaction").error;
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
        assert!(
            message.contains("target_session_attrs=read-write"),
            "{message}"
        );
    }

    /// "error connecting to server", caused by `cause`, as tokio-postgres reports it.
    #[derive(Debug)]
    struct Connecting(std::io::Error);

    impl std::fmt::Display for Connecting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error connecting to server")
        }
    }

    impl std::error::Error for Connecting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_connection_refused_by_target_session_attrs_is_recognised_in_the_source_chain() {
        let read_only = Connecting(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "database does not allow writes",
        ));
        assert!(refused_by_target_session_attrs(&read_only));
        let refused = Connecting(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!refused_by_target_session_attrs(&refused));
    }

    #[test]
    fn a_lost_server_connection_is_unavailable_as_in_the_seaorm_adapter() {
        for code in ["08P01", "08006", "57P01", "57P02", "57P03"] {
            let err = database(code, "terminating connection due to administrator command").error;
            assert!(
                matches!(&err, RepositoryError::Unavailable(m) if m.contains(code)),
                "{code}: {err:?}"
            );
        }
    }

    #[test]
    fn other_database_errors_keep_their_classification() {
        assert!(matches!(
            database("42P01", "relation \"s.t\" does not exist").error,
            RepositoryError::MissingTable(_)
        ));
        assert!(matches!(
            database("23514", "new row violates check constraint").error,
            RepositoryError::Statement(m) if m == "new row violates check constraint (SQLSTATE 23514)"
        ));
    }
}
