//! Driving adapters for other versions of tower-sessions' traits.
//!
//! The store's own impls are tower-sessions 0.15's (`SessionStore`, `ExpiredDeletion`, in
//! `store.rs`). The `SessionStore` and `ExpiredDeletion` traits and the `Record`/`Id` shapes did
//! not change between 0.14 and 0.15 (only the `rand` dependency moved), so each older version is
//! a thin layer that converts its `Record` and `Id` at the edge and calls the same domain service.

#[cfg(feature = "tower-sessions-014")]
mod tower_sessions_014;
