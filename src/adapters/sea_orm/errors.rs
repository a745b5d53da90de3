//! Classifying SeaORM's errors into the port's [`RepositoryError`], without session data.

use sea_orm::{DbErr, RuntimeErr};

use crate::ports::RepositoryError;

/// The SQLSTATE (PostgreSQL, SQLite's extended code, MySQL's state) of a database error, if the
/// error came from the database.
pub(crate) fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// "No such table": PostgreSQL's undefined_table (also raised for a missing schema), MySQL's
/// ER_NO_SUCH_TABLE.
const MISSING_TABLE_SQLSTATES: &[&str] = &["42P01", "3F000", "42S02"];

/// Maps a SeaORM error to the port's error, keeping only what is safe to log.
///
/// Database errors keep the server's primary message and SQLSTATE, which describe the statement
/// (e.g. `relation "tower_sessions.session" does not exist`), not the bound values; the detail
/// lines that can quote a value are dropped.
pub(crate) fn classify(err: DbErr) -> RepositoryError {
    use sea_orm::sqlx::Error as Sqlx;
    match &err {
        DbErr::ConnectionAcquire(_) => RepositoryError::Unavailable(err.to_string()),
        DbErr::Conn(_) => RepositoryError::Unavailable(err.to_string()),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Database(db) => {
                    let code = db.code();
                    let message = match &code {
                        Some(code) => format!("{} (SQLSTATE {code})", db.message()),
                        None => db.message().to_owned(),
                    };
                    if code.is_some_and(|c| MISSING_TABLE_SQLSTATES.contains(&c.as_ref())) {
                        RepositoryError::MissingTable(message)
                    } else {
                        RepositoryError::Statement(message)
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
