//! Driving adapters: tower-sessions' traits on [`RepositoryStore`](crate::RepositoryStore).
//!
//! The domain owns its record type ([`SessionRecord`](crate::codec::SessionRecord)); each
//! tower-sessions version converts its own `Record` and `Id` at the edge, lending the session
//! data rather than copying it, and calls the same store. The `SessionStore` and
//! `ExpiredDeletion` traits and the `Record`/`Id` shapes did not change between 0.14 and 0.15
//! (only the `rand` dependency moved), so both adapters are the same few lines.

mod tower_sessions_015;

#[cfg(feature = "tower-sessions-014")]
mod tower_sessions_014;
