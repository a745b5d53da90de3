//! The SeaORM repository: sessions in a SQL table, one statement per operation, on
//! PostgreSQL, SQLite or MySQL/MariaDB. The table, the names and the SQL it shares with the
//! tokio-postgres repository are in [`crate::adapters::sql`].

mod dialect;
pub mod entity;
mod errors;
#[cfg(feature = "migration")]
mod migrate;
mod repository;

pub(crate) use crate::adapters::sql::{Dialect, IdentifierError, SessionTable};
pub use repository::SeaOrmRepository;
