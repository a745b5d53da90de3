//! What the two SQL repositories (SeaORM, tokio-postgres) share: the table and its validated
//! names, the dialects and the instants each stores, and the statements of every operation,
//! rendered once per table by sea-query (which quotes the identifiers).

pub(crate) mod dialect;
#[cfg(all(feature = "cache", feature = "postgres"))]
pub(crate) mod eviction;
pub(crate) mod identifier;
pub(crate) mod statements;
mod update;

pub(crate) use dialect::Dialect;
pub(crate) use identifier::{IdentifierError, SessionTable};
pub(crate) use statements::{Bind, Column, Statements, ROW_BINDS};
