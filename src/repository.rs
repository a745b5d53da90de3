//! The seam between the store and where its sessions live: the [`SessionRepository`] trait,
//! for a repository of your own, and what it exchanges with the store.
//!
//! The store's own repositories (SeaORM, tokio-postgres) and the testing kit's
//! (module `testing`, feature `testing`) implement it; a store over any of them is
//! [`RepositoryStore::from_parts(repository, codec)`](crate::RepositoryStore::from_parts). The
//! trait's documentation states the contract every repository keeps: one statement per method,
//! `create` never overwrites, `save` never inserts, an expired row is never returned.

pub use crate::ports::{
    FoundRow, RepositoryError, SessionRepository, SessionRow, Unchanged, UserSessionRow,
};
