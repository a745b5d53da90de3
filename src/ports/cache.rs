use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;

use super::{HistoryCarrier, SessionRecord};

/// A read cache of decoded sessions, keyed by the repository's keys (a session id's text, or
/// its hash with hashed ids). The rules hold one as `Option<Arc<dyn ReadCache>>`: a store
/// without one (or built without feature `cache`) has `None`, and nothing else changes.
///
/// # Contract
///
/// - `get` serves an entry only while the cache is serving ([`ReadCache::is_serving`]) and
///   before the entry's `valid_until`.
/// - A load that missed takes a [`Ticket`] **before** it reads the database; `insert` caches
///   what it read only if no eviction of that key (or clear) happened since, so a load that
///   raced a write never caches the old value.
/// - `evict` and `evict_user` take effect before they return; `evict_later` evicts again once
///   a write that was abandoned (timed out) can no longer commit.
// Without feature `cache` no adapter implements it, and every store has `None`.
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) trait ReadCache: Send + Sync + 'static {
    /// The session stored under `key`, if cached, serving and still valid at `now`.
    fn get(&self, key: &str, now: OffsetDateTime) -> Option<SessionRecord<'static>>;
    /// What a load of `key` that missed holds while it reads the database; `None` when the
    /// cache is not serving (the load will not insert).
    fn ticket(&self, key: &str) -> Option<Ticket>;
    /// Caches what a load read under `ticket`, unless an eviction has overtaken it.
    fn insert(&self, ticket: Ticket, key: String, entry: CachedSession);
    /// Evicts the session stored under `key`.
    fn evict(&self, key: &str);
    /// Evicts every session of `user_key`.
    fn evict_user(&self, user_key: &str);
    /// Evicts every entry.
    fn clear(&self);
    /// Applies `what` now.
    fn forget(&self, what: &Evict) {
        match what {
            Evict::Key(key) => self.evict(key),
            Evict::User(user) => self.evict_user(user),
            Evict::All => self.clear(),
        }
    }
    /// Runs [`forget`](Self::forget) again after `settle`: for a write given up before it
    /// returned, which may still commit until then.
    fn evict_later(self: Arc<Self>, what: Evict, settle: Duration);
    /// Whether the cache may serve now.
    fn is_serving(&self) -> bool;
    /// Whether only this process writes the table (no listener proves the cache fresh).
    #[cfg_attr(not(feature = "migration"), allow(dead_code))]
    fn is_local(&self) -> bool;
    /// A reader of the login history on the cache's own connection, if it has one (a listening
    /// cache on a store with the history): the live events are read by it while it
    /// [carries](HistoryCarrier::is_carrying), so one listener per replica serves both.
    fn history_carrier(&self) -> Option<Arc<dyn HistoryCarrier>> {
        None
    }
}

/// What a load that missed caches.
#[derive(Debug)]
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) struct CachedSession {
    pub record: SessionRecord<'static>,
    /// The first instant it may no longer be served: its expiry, or its creation plus the
    /// absolute lifetime if earlier.
    pub valid_until: OffsetDateTime,
    /// Its user (per-user index), for the per-user evictions.
    pub user_key: Option<String>,
}

/// What a write evicts.
#[derive(Debug, Clone)]
pub(crate) enum Evict {
    /// The session stored under this key.
    Key(String),
    /// Every session of this user.
    User(String),
    /// Every session.
    All,
}

/// The cache's state when a load that missed began: what it must still be for the load to
/// insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub generation: u64,
    pub stripe: usize,
    pub evictions: u64,
}
