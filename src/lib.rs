// README.md's links to other files are relative, for GitHub; on docs.rs the same labels lead to
// the guide pages and the repository, defined first (the first definition of a label wins).
#![doc = include_str!("guide/root-links.md")]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
compile_error!(
    "tower-sessions-seaorm-store needs a database driver: enable at least one of the features \
     `postgres` (default), `sqlite` or `mysql`"
);

// The hexagon is the crate's inside: the rules (`domain`), the seams (`ports`) and the outside
// world (`adapters`). What users see is the flat set of names below.
mod adapters;
mod cleanup;
mod compat;
mod domain;
mod error;
pub mod guide;
mod ports;
pub mod repository;
mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use adapters::{codec, sea_orm::entity};
pub use cleanup::CleanupTask;
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
#[doc(no_inline)]
pub use deadpool_postgres;
pub use domain::{Operation, RepositoryStore, SessionEvent, SessionHandle, UserSession};
pub use error::SeaOrmStoreError;
#[doc(no_inline)]
pub use sea_orm;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use store::Cache;
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
pub use store::LeanPostgresStore;
#[cfg(feature = "mysql")]
pub use store::MySqlStore;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
// tower-sessions' own items, re-exported so that one dependency names them all; documented
// where they live.
#[doc(no_inline)]
pub use tower_sessions_core::{
    session::{Id, Record},
    session_store, ExpiredDeletion, Session, SessionStore,
};
#[cfg(feature = "migration")]
#[cfg_attr(docsrs, doc(cfg(feature = "migration")))]
pub use tower_sessions_seaorm_migration as migration;
