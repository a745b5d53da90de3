//! Classifying tokio-postgres and deadpool errors into the port's [`RepositoryError`], without
//! session data.

use deadpool_postgres::PoolError;

use crate::ports::RepositoryError;

/// No connection could be had from the pool.
pub(crate) fn pool(err: PoolError) -> RepositoryError {
    RepositoryError::Unavailable(err.to_string())
}

/// A statement failed. A database error keeps the server's primary message and SQLSTATE, which
/// describe the statement, not the bound values (the detail lines that can quote a value are
/// dropped); anything else is the connection failing.
pub(crate) fn statement(err: tokio_postgres::Error) -> RepositoryError {
    match err.as_db_error() {
        Some(db) => {
            let message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            // undefined_table, invalid_schema_name, undefined_column: not (fully) migrated.
            match db.code().code() {
                "42P01" | "3F000" | "42703" => RepositoryError::MissingTable(message),
                _ => RepositoryError::Statement(message),
            }
        }
        None => RepositoryError::Unavailable(err.to_string()),
    }
}

/// A row came back in a shape that does not decode.
pub(crate) fn row(err: tokio_postgres::Error) -> RepositoryError {
    RepositoryError::CorruptRow(err.to_string())
}
