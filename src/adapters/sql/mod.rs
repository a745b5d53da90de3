//! The SQL repository, for every driver: the table and its validated names, the dialects and
//! the instants each stores, the statements of every operation (rendered once per table: by
//! sea-query, which quotes the identifiers, or by hand where sea-query renders no such SQL, in
//! `update.rs` and `per_user.rs`), what a server's error codes mean, and the one implementation
//! of the port over a [`SqlDriver`] (`repository.rs`). The SeaORM and tokio-postgres adapters
//! are drivers.

pub(crate) mod columns;
pub(crate) mod dialect;
pub(crate) mod driver;
pub(crate) mod ending;
#[cfg(all(feature = "cache", feature = "postgres"))]
pub(crate) mod eviction;
pub(crate) mod history;
pub(crate) mod identifier;
pub(crate) mod mysql_history;
pub(crate) mod per_user;
mod repository;
pub(crate) mod server_error;
pub(crate) mod statements;
pub(crate) mod update;

pub(crate) use dialect::Dialect;
pub(crate) use driver::{Executed, Param, SqlDriver, SqlError, SqlRow};
pub(crate) use identifier::{IdentifierError, SessionTable};
pub(crate) use server_error::ServerError;
pub(crate) use statements::Statements;
