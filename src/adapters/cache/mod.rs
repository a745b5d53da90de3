//! The read cache ([`ReadCache`](crate::ports::ReadCache)): decoded sessions in memory (moka),
//! and on PostgreSQL the listener that evicts them on every replica
//! (and reads the live events, when the store has them).

mod moka;
#[cfg(feature = "postgres")]
pub(crate) mod pg_events;
#[cfg(feature = "postgres")]
pub(crate) mod pg_listener;

pub(crate) use moka::SessionCache;
