//! The session-record service: the rules of the store, free of any database library.
//!
//! - **create** never overwrites: it inserts if absent and, when the id is taken, draws a fresh
//!   id and tries again (a bounded number of times).
//! - **save** updates the stored session and never inserts one: a session deleted or revoked
//!   since it was loaded stays gone.
//! - **load** returns only the record of the session asked for, within the size limit.
//! - **load** never returns an expired record, whether or not cleanup has run.
//! - **delete** is idempotent.
//! - **delete_expired** works in bounded batches, so a large backlog never holds one long lock.
//!
//! The record it works on, [`SessionRecord`], is the crate's own: each tower-sessions version
//! converts its `Record` at the edge.
//!
//! The service is generic over the two [ports](crate::ports); the store composes it with the
//! adapters.

#[cfg(feature = "cache")]
mod cache;
mod error;
mod keys;
mod record;
mod service;
mod user_key;

#[cfg(feature = "cache")]
pub use cache::SessionCache;
pub use error::{Operation, SessionError};
pub use keys::{IdStorage, SessionHandle};
pub use record::{SessionData, SessionId, SessionRecord};
pub use service::{ServicePolicy, SessionService, UserSession};
pub use user_key::{UserKeyPath, MAX_USER_KEY_LEN};

#[cfg(test)]
mod tests;
