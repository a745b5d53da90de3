//! The read cache ([`ReadCache`](crate::ports::ReadCache)): decoded sessions in memory (moka),
//! and on PostgreSQL the listener that evicts them on every replica.

mod moka;
#[cfg(feature = "postgres")]
pub(crate) mod pg_listener;

pub(crate) use moka::SessionCache;
