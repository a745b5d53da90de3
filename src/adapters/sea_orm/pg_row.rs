//! A row read straight from SeaORM's sqlx PostgreSQL pool: what the repository's direct path
//! returns, and what a listening cache's connection returns for the live events.

use sea_orm::sqlx::{self, postgres::PgRow, Row};
use time::OffsetDateTime;

use crate::{adapters::sql::SqlRow, ports::RepositoryError};

/// A row sqlx's PostgreSQL driver returned, read as SeaORM reads the same columns: a column that
/// will not decode (a `NULL` where none belongs, a wrong type) is a corrupt row, with an error
/// that names the column and quotes none of its value.
pub(crate) struct PostgresRow(pub(crate) PgRow);

impl PostgresRow {
    fn get<'r, T>(&'r self, index: usize) -> Result<T, RepositoryError>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        self.0
            .try_get(index)
            .map_err(|e| RepositoryError::CorruptRow(format!("column {index}: {e}")))
    }
}

impl SqlRow for PostgresRow {
    fn bytes(&self, index: usize) -> Result<Vec<u8>, RepositoryError> {
        self.get(index)
    }

    fn key(&self, index: usize) -> Result<String, RepositoryError> {
        self.get(index)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, RepositoryError> {
        self.get(index)
    }

    fn instant(&self, index: usize) -> Result<OffsetDateTime, RepositoryError> {
        // The statements clamp their instants to what `time` holds (sqlx panics beyond them).
        self.get(index)
    }

    fn boolean(&self, index: usize) -> Result<bool, RepositoryError> {
        self.get(index)
    }

    fn integer(&self, index: usize) -> Result<i64, RepositoryError> {
        self.get(index)
    }
}
