//! The SeaORM repository: sessions in a SQL table, one statement per operation.

pub mod entity;
mod errors;
mod identifier;
#[cfg(feature = "migration")]
mod migrate;
mod repository;
mod statements;

pub use identifier::{IdentifierError, IdentifierKind, SessionTable};
#[cfg(feature = "migration")]
pub use migrate::MIGRATION_HISTORY_TABLE;
pub use repository::SeaOrmRepository;
