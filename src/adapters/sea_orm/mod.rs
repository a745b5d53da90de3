//! The SeaORM repository: sessions in a SQL table, one statement per operation, on
//! PostgreSQL, SQLite or MySQL/MariaDB.

mod dialect;
pub mod entity;
mod errors;
mod identifier;
#[cfg(feature = "migration")]
mod migrate;
mod repository;
mod statements;
mod update;

#[cfg(feature = "tokio-postgres")]
pub(crate) use dialect::postgres_instant;
pub(crate) use dialect::Dialect;
pub(crate) use identifier::{IdentifierError, SessionTable};
pub use repository::SeaOrmRepository;
#[cfg(feature = "tokio-postgres")]
pub(crate) use statements::{Bind, Column, Statements, ROW_BINDS};
