//! What the two SQL repositories (SeaORM, tokio-postgres) share: the table and its validated
//! names, the dialects and the instants each stores, the statements of every operation
//! (rendered once per table: by sea-query, which quotes the identifiers, or by hand where
//! sea-query renders no such SQL, in `update.rs` and `per_user.rs`, which quote the validated
//! names themselves), and what a server's error codes mean.

pub(crate) mod dialect;
#[cfg(all(feature = "cache", feature = "postgres"))]
pub(crate) mod eviction;
pub(crate) mod identifier;
pub(crate) mod per_user;
pub(crate) mod server_error;
pub(crate) mod statements;
mod update;

pub(crate) use dialect::Dialect;
pub(crate) use identifier::{IdentifierError, SessionTable};
pub(crate) use server_error::ServerError;
pub(crate) use statements::{Bind, Column, Statements, ROW_BINDS};
