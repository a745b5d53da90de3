//! The session-record service: the rules of the store, free of any database library.
//!
//! - **create** never overwrites: it inserts if absent and, when the id is taken, draws a fresh
//!   id and tries again (a bounded number of times).
//! - **save** is one upsert.
//! - **load** never returns an expired record, whether or not cleanup has run.
//! - **delete** is idempotent.
//! - **delete_expired** works in bounded batches, so a large backlog never holds one long lock.
//!
//! The service is generic over the two [ports](crate::ports); the store composes it with the
//! adapters.

mod error;
mod service;

pub use error::{Operation, SessionError};
pub use service::{ServicePolicy, SessionService, DEFAULT_OPERATION_TIMEOUT};

#[cfg(test)]
mod tests;
