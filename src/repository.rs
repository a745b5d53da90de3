//! The seam between the store and where its sessions live: the [`SessionRepository`] trait,
//! for a repository of your own, what it exchanges with the store, and the crate's own
//! repositories.
//!
//! The store's own repositories ([`SeaOrmRepository`], and `TokioPostgresRepository` with
//! feature `tokio-postgres`) and the testing kit's (module `testing`, feature `testing`)
//! implement it; a store over any of them is
//! [`RepositoryStore::from_parts(repository, codec)`](crate::RepositoryStore::from_parts). The
//! trait's documentation states the contract every repository keeps: one statement per method,
//! `create` never overwrites, `save` never inserts, an expired row is never returned; the
//! testing kit's `check_repository_contract` checks a repository of your own against it.

#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
pub use crate::adapters::tokio_postgres::TokioPostgresRepository;
pub use crate::{
    adapters::sea_orm::SeaOrmRepository,
    ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow},
};
