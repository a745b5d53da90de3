//! The rules of the store, free of any database library.
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
//! The store ([`RepositoryStore`]) is written against the [ports](crate::ports): a repository,
//! a codec, a clock and, optionally, a read cache; the builder in `src/store` composes it with
//! the adapters.

mod error;
mod events;
mod history;
mod keys;
mod merge;
mod operators;
mod policy;
mod rows;
mod run;
mod store;
mod user_key;
mod users;

pub use error::{Operation, SessionError};
pub(crate) use events::EventFeed;
/// The cadence and span name a listening cache's listener reads the events with.
#[cfg(all(feature = "cache", feature = "postgres"))]
pub(crate) use events::{POLL as EVENTS_POLL, READ_EVENTS};
pub(crate) use history::HistoryRow;
pub use history::SessionEvent;
pub use keys::{IdStorage, SessionHandle};
pub(crate) use merge::BASE_KEY;
pub(crate) use policy::Policy;
pub use store::RepositoryStore;
pub use user_key::{UserKeyPath, MAX_USER_KEY_LEN};
pub use users::UserSession;

#[cfg(test)]
mod tests;
