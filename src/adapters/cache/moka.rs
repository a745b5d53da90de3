//! The read cache: decoded sessions kept in memory, so a load that finds one asks nothing of
//! the database.
//!
//! Its rules, each against a race:
//!
//! - **An entry never outlives its session.** It is served only before its session's expiry
//!   and, with an absolute lifetime, before the session's creation plus that lifetime; and only
//!   while the cache is *serving* (below).
//! - **A write evicts.** This store's own saves, deletes and per-user deletions evict their
//!   entries when they return; every other replica's (and every other writer's: a manual
//!   `DELETE`, another tool) reach the cache as evictions from the database, through the
//!   listener adapter.
//! - **A load never caches what an eviction has overtaken.** A load that misses takes a
//!   [`Ticket`] before it reads the database and inserts only if no eviction touched that key
//!   (or cleared the cache) meanwhile; it checks again after inserting and removes its own
//!   entry if one did, so an eviction that lands between the check and the insert is not lost.
//! - **Never serve what may have missed an eviction.** A cache fed by a listener serves only
//!   while it holds a recent *proof*: a heartbeat the listener sent through the database came
//!   back, so every eviction committed before that heartbeat was sent has been applied. A
//!   heartbeat older than the staleness bound, or a lost listening connection, stops the
//!   serving (loads go to the database) and a lost connection clears every entry.
//!
//! Keys are the repository's keys (a session id's text, or its hash with hashed ids).
//!
//! **Bounded in bytes, not entries.** Each entry weighs an estimate of the memory its decoded
//! session takes ([`weigh`]), and the cache holds at most its budget: a few sessions of
//! megabytes (an application keeping user input in the session) cannot grow it past the budget
//! the way a bound on the number of entries would let them.

// Only a PostgreSQL listener proves a cache fresh (the `Proven` half).
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use time::OffsetDateTime;

use crate::ports::{cache::Ticket, CachedSession, Evict, HistoryCarrier, ReadCache, SessionRecord};

/// How many eviction counters the keys share: enough that a busy cache rarely sees an
/// unrelated eviction abort a load's insert, small enough to stay in cache lines.
const STRIPES: usize = 1024;

/// A decoded session in the cache.
#[derive(Debug)]
struct Entry {
    record: SessionRecord<'static>,
    /// The first instant it may no longer be served: its expiry, or its creation plus the
    /// absolute lifetime if earlier.
    valid_until: OffsetDateTime,
    /// Its user (per-user index), for the per-user deletions.
    user_key: Option<String>,
    /// What it counts against the cache's budget ([`weigh`]).
    weight: u32,
}

/// Whether the cache may serve, and on what grounds.
#[derive(Debug)]
enum Freshness {
    /// Only this store writes the table: its own evictions are all there are.
    Local,
    /// Evictions arrive from the database; the cache serves only while its latest proof (the
    /// send instant of the latest heartbeat that came back) is at most `max_staleness` old.
    Proven {
        max_staleness: Duration,
        base: Instant,
        /// Nanoseconds from `base` to the proof's instant, plus one; `0`: no proof.
        proven_at: AtomicU64,
    },
}

/// The cache of decoded sessions (see the module's rules). Shared by every clone of a store.
#[derive(Debug)]
pub struct SessionCache {
    entries: moka::sync::Cache<String, Arc<Entry>, foldhash::quality::RandomState>,
    /// Per stripe of keys, how many evictions touched it.
    stripes: Box<[AtomicU64]>,
    /// Bumped by every clear and every per-user eviction: a load that started before one
    /// does not insert.
    generation: AtomicU64,
    freshness: Freshness,
    /// The heaviest entry it keeps: an eighth of its budget, so that one session cannot push
    /// out most of the others (and moka, which weighs entries after inserting them, never
    /// serves one heavier than the budget).
    max_weight: u32,
    /// The background tasks feeding this cache (the listener), stopped when it drops.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The listener's reads of the live events, for a store with the login history.
    history: Option<Arc<dyn HistoryCarrier>>,
}

impl SessionCache {
    fn with_freshness(max_bytes: u64, freshness: Freshness) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, entry: &Arc<Entry>| entry.weight)
                .support_invalidation_closures()
                // foldhash, seeded at random: about 30 instructions a key where the SipHash
                // moka uses by default takes about 200, on every cached load. Its keys are the
                // stored keys of real rows (random ids, or their SHA-256): nothing a client
                // chooses is inserted, so no client can make them collide.
                .build_with_hasher(foldhash::quality::RandomState::default()),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            freshness,
            max_weight: u32::try_from(max_bytes / 8).unwrap_or(u32::MAX),
            tasks: Mutex::new(Vec::new()),
            history: None,
        }
    }

    /// The same cache, whose listener also reads the live events through `carrier`.
    pub(crate) fn with_history_carrier(mut self, carrier: Arc<dyn HistoryCarrier>) -> Self {
        self.history = Some(carrier);
        self
    }

    /// A cache for a table only this store writes, holding at most about `max_bytes` of
    /// sessions: it serves always, and its own writes are the only evictions.
    pub fn local(max_bytes: u64) -> Self {
        Self::with_freshness(max_bytes, Freshness::Local)
    }

    /// A cache fed by a listener, holding at most about `max_bytes` of sessions: it serves
    /// only while its latest proof is at most `max_staleness` old, and has none until the
    /// listener delivers one.
    pub fn listening(max_bytes: u64, max_staleness: Duration) -> Self {
        Self::with_freshness(
            max_bytes,
            Freshness::Proven {
                max_staleness,
                base: Instant::now(),
                proven_at: AtomicU64::new(0),
            },
        )
    }

    fn still(&self, ticket: Ticket) -> bool {
        self.generation.load(Ordering::SeqCst) == ticket.generation
            && self.stripes[ticket.stripe].load(Ordering::SeqCst) == ticket.evictions
    }

    /// The listener's proof: the heartbeat it sent at `sent` came back, so every eviction
    /// committed before then has been applied.
    pub fn prove(&self, sent: Instant) {
        if let Freshness::Proven {
            base, proven_at, ..
        } = &self.freshness
        {
            // A heartbeat sent before the cache existed proves nothing about it.
            let Some(since_base) = sent.checked_duration_since(*base) else {
                return;
            };
            let at = u64::try_from(since_base.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
            proven_at.fetch_max(at, Ordering::SeqCst);
        }
    }

    /// The listener lost its connection (or its proof is overdue): evictions may have been
    /// missed, so the cache stops serving until the next proof, and forgets every entry.
    pub fn lost(&self) {
        if let Freshness::Proven { proven_at, .. } = &self.freshness {
            proven_at.store(0, Ordering::SeqCst);
        }
        self.clear();
    }

    /// Ties a background task's life to the cache's.
    pub(crate) fn attach(&self, task: tokio::task::AbortHandle) {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(task);
    }
}

impl ReadCache for SessionCache {
    fn get(&self, key: &str, now: OffsetDateTime) -> Option<SessionRecord<'static>> {
        if !self.is_serving() {
            return None;
        }
        let entry = self.entries.get(key)?;
        if entry.valid_until <= now {
            self.entries.invalidate(key);
            return None;
        }
        Some(entry.record.clone())
    }

    fn ticket(&self, key: &str) -> Option<Ticket> {
        if !self.is_serving() {
            return None;
        }
        let stripe = stripe_of(key);
        Some(Ticket {
            generation: self.generation.load(Ordering::SeqCst),
            stripe,
            evictions: self.stripes[stripe].load(Ordering::SeqCst),
        })
    }

    fn insert(&self, ticket: Ticket, key: String, cached: CachedSession) {
        if !self.still(ticket) {
            return;
        }
        let weight = weigh(&key, &cached.record, cached.user_key.as_deref());
        if weight > self.max_weight {
            return;
        }
        let entry = Arc::new(Entry {
            record: cached.record,
            valid_until: cached.valid_until,
            user_key: cached.user_key,
            weight,
        });
        self.entries.insert(key.clone(), entry);
        // An eviction that counted itself after the check above may have run its removal
        // before this insert: this entry must not stay.
        if !self.still(ticket) {
            self.entries.invalidate(&key);
        }
    }

    fn evict(&self, key: &str) {
        self.stripes[stripe_of(key)].fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key);
    }

    fn evict_user(&self, user_key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let user_key = user_key.to_owned();
        let registered = self
            .entries
            .invalidate_entries_if(move |_, entry| entry.user_key.as_deref() == Some(&user_key));
        if registered.is_err() {
            // Closures are enabled when the cache is built; should that ever change, the
            // safe answer is to drop everything.
            self.entries.invalidate_all();
        }
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    fn evict_later(self: Arc<Self>, what: Evict, settle: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = Arc::downgrade(&self);
        runtime.spawn(async move {
            // Real time is the point: the abandoned write may commit until `settle` has
            // passed (tokio's clock, so a test with a paused runtime advances it).
            tokio::time::sleep(settle).await;
            if let Some(cache) = cache.upgrade() {
                cache.forget(&what);
            }
        });
    }

    fn is_serving(&self) -> bool {
        match &self.freshness {
            Freshness::Local => true,
            Freshness::Proven {
                max_staleness,
                base,
                proven_at,
            } => match proven_at.load(Ordering::SeqCst) {
                0 => false,
                at => {
                    let proof = *base + Duration::from_nanos(at - 1);
                    Instant::now().saturating_duration_since(proof) <= *max_staleness
                }
            },
        }
    }

    fn is_local(&self) -> bool {
        matches!(self.freshness, Freshness::Local)
    }

    fn history_carrier(&self) -> Option<Arc<dyn HistoryCarrier>> {
        self.history.clone()
    }
}

impl Drop for SessionCache {
    fn drop(&mut self) {
        let tasks = self
            .tasks
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// An estimate of the bytes an entry holds: its key, its user key and its decoded values
/// (`serde_json::Value` nodes, strings, the maps' and arrays' slots), plus a fixed share for
/// the cache's own bookkeeping. Walks the values with a stack of its own, so no nesting depth
/// can overflow the thread's stack.
pub(crate) fn weigh(key: &str, record: &SessionRecord<'_>, user_key: Option<&str>) -> u32 {
    use std::mem::size_of;

    use serde_json::Value;

    /// A map slot beyond its key and value: hash-table control bytes, B-tree node share.
    const SLOT: usize = 16;
    /// The entry, its `Arc`, moka's node and its key's second copy in moka's bookkeeping.
    const FIXED: usize = size_of::<Entry>() + 128;
    let slot = |name: &str| size_of::<String>() + name.len() + size_of::<Value>() + SLOT;

    let mut bytes = FIXED + 2 * key.len() + user_key.map_or(0, str::len);
    let mut pending: Vec<&Value> = Vec::new();
    for (name, value) in record.data.iter() {
        bytes = bytes.saturating_add(slot(name));
        pending.push(value);
    }
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) => bytes = bytes.saturating_add(text.len()),
            Value::Array(items) => {
                bytes = bytes.saturating_add(items.len().saturating_mul(size_of::<Value>()));
                pending.extend(items.iter());
            }
            Value::Object(map) => {
                for (name, value) in map {
                    bytes = bytes.saturating_add(slot(name));
                    pending.push(value);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

fn stripe_of(key: &str) -> usize {
    // FNV-1a: keys are random ids or hashes, so any mixing spreads them.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use time::Duration as TimeDuration;

    use super::*;
    use crate::ports::{SessionData, SessionId};

    fn entry(
        record: SessionRecord<'static>,
        valid_until: OffsetDateTime,
        user_key: Option<String>,
    ) -> CachedSession {
        CachedSession {
            record,
            valid_until,
            user_key,
        }
    }

    fn record(n: i64) -> SessionRecord<'static> {
        let data: SessionData = [("n".to_owned(), serde_json::json!(n))].into();
        SessionRecord {
            id: SessionId(7),
            data: Cow::Owned(data),
            expiry_date: OffsetDateTime::now_utc() + TimeDuration::hours(1),
        }
    }

    fn later() -> OffsetDateTime {
        OffsetDateTime::now_utc() + TimeDuration::hours(1)
    }

    #[test]
    fn an_insert_overtaken_by_an_eviction_is_not_kept() {
        let cache = SessionCache::local(1 << 20);
        let ticket = cache.ticket("k").unwrap();
        cache.evict("k");
        cache.insert(ticket, "k".into(), entry(record(1), later(), None));
        assert!(cache.get("k", OffsetDateTime::now_utc()).is_none());

        let ticket = cache.ticket("k").unwrap();
        cache.insert(ticket, "k".into(), entry(record(2), later(), None));
        assert_eq!(
            cache.get("k", OffsetDateTime::now_utc()).unwrap().data["n"],
            2
        );
    }

    #[test]
    fn an_insert_overtaken_by_a_clear_or_a_user_eviction_is_not_kept() {
        let cache = SessionCache::local(1 << 20);
        let ticket = cache.ticket("k").unwrap();
        cache.clear();
        cache.insert(ticket, "k".into(), entry(record(1), later(), None));
        assert!(cache.get("k", OffsetDateTime::now_utc()).is_none());

        let ticket = cache.ticket("k").unwrap();
        cache.evict_user("someone else");
        cache.insert(
            ticket,
            "k".into(),
            entry(record(1), later(), Some("u".into())),
        );
        assert!(cache.get("k", OffsetDateTime::now_utc()).is_none());
    }

    #[test]
    fn a_user_eviction_removes_that_users_entries_only() {
        let cache = SessionCache::local(1 << 20);
        for (key, user) in [("a", "u"), ("b", "u"), ("c", "v")] {
            let ticket = cache.ticket(key).unwrap();
            cache.insert(
                ticket,
                key.into(),
                entry(record(1), later(), Some(user.into())),
            );
        }
        cache.evict_user("u");
        let now = OffsetDateTime::now_utc();
        assert!(cache.get("a", now).is_none());
        assert!(cache.get("b", now).is_none());
        assert!(cache.get("c", now).is_some());
    }

    #[test]
    fn an_entry_is_never_served_at_or_after_its_validity() {
        let cache = SessionCache::local(1 << 20);
        let until = OffsetDateTime::now_utc() + TimeDuration::seconds(10);
        let ticket = cache.ticket("k").unwrap();
        cache.insert(ticket, "k".into(), entry(record(1), until, None));
        assert!(cache
            .get("k", until - TimeDuration::nanoseconds(1))
            .is_some());
        assert!(cache.get("k", until).is_none());
    }

    #[test]
    fn a_proven_cache_serves_only_with_a_fresh_proof() {
        let cache = SessionCache::listening(1 << 20, Duration::from_millis(200));
        assert!(!cache.is_serving(), "no proof yet");
        assert!(cache.ticket("k").is_none(), "a load does not insert");

        cache.prove(Instant::now());
        assert!(cache.is_serving());
        let ticket = cache.ticket("k").unwrap();
        cache.insert(ticket, "k".into(), entry(record(1), later(), None));
        assert!(cache.get("k", OffsetDateTime::now_utc()).is_some());

        // A proof older than the bound stops the serving, without forgetting entries; the
        // next proof restores both.
        let short = SessionCache::listening(1 << 20, Duration::from_millis(50));
        short.prove(Instant::now());
        let ticket = short.ticket("k").unwrap();
        short.insert(ticket, "k".into(), entry(record(1), later(), None));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!short.is_serving());
        assert!(short.get("k", OffsetDateTime::now_utc()).is_none());
        short.prove(Instant::now());
        assert!(short.get("k", OffsetDateTime::now_utc()).is_some());

        // A heartbeat sent before the cache existed proves nothing.
        let young = SessionCache::listening(1 << 20, Duration::from_secs(60));
        young.prove(Instant::now() - Duration::from_secs(1));
        assert!(!young.is_serving());

        // A lost connection stops it and forgets everything, until the next proof.
        cache.lost();
        assert!(!cache.is_serving());
        cache.prove(Instant::now());
        assert!(cache.get("k", OffsetDateTime::now_utc()).is_none());
    }

    #[test]
    fn an_older_proof_never_replaces_a_newer_one() {
        let cache = SessionCache::listening(1 << 20, Duration::from_millis(200));
        cache.prove(Instant::now());
        cache.prove(Instant::now() - Duration::from_secs(5));
        assert!(cache.is_serving());
    }

    fn holding(text_bytes: usize) -> SessionRecord<'static> {
        let data: SessionData = [(
            "draft".to_owned(),
            serde_json::json!("x".repeat(text_bytes)),
        )]
        .into();
        SessionRecord {
            id: SessionId(7),
            data: Cow::Owned(data),
            expiry_date: later(),
        }
    }

    #[test]
    fn an_entry_weighs_what_its_session_holds() {
        let small = weigh("k", &record(1), None);
        assert!((100..1_000).contains(&small), "{small}");
        let large = weigh("k", &holding(100_000), None);
        assert!((100_000..101_000).contains(&large), "{large}");
        // Nesting: every array slot and map slot counts, however deep.
        let mut nested = serde_json::json!("leaf");
        for _ in 0..500 {
            nested = serde_json::json!([nested, {"k": 1}]);
        }
        let deep = SessionRecord {
            id: SessionId(7),
            data: Cow::Owned([("deep".to_owned(), nested)].into()),
            expiry_date: later(),
        };
        let per_level = 2 * std::mem::size_of::<serde_json::Value>();
        assert!(weigh("k", &deep, None) as usize > 500 * per_level);
        // The key and the user key count too.
        assert!(weigh("k", &record(1), Some(&"u".repeat(200))) >= small + 200);
    }

    #[test]
    fn the_cache_holds_at_most_its_budget_in_bytes() {
        let budget = 1 << 20;
        let cache = SessionCache::local(budget);
        for n in 0..100 {
            let key = format!("k{n}");
            let ticket = cache.ticket(&key).unwrap();
            cache.insert(ticket, key, entry(holding(50_000), later(), None));
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.weighted_size() <= budget);
        let kept = cache.entries.entry_count();
        assert!((1..=21).contains(&kept), "{kept} entries of 50 kB in 1 MiB");
    }

    #[test]
    fn a_session_over_an_eighth_of_the_budget_is_never_kept() {
        let cache = SessionCache::local(64 << 10);
        let ticket = cache.ticket("big").unwrap();
        cache.insert(ticket, "big".into(), entry(holding(9_000), later(), None));
        assert!(cache.get("big", OffsetDateTime::now_utc()).is_none());
        let ticket = cache.ticket("big").unwrap();
        cache.insert(ticket, "big".into(), entry(holding(7_000), later(), None));
        assert!(cache.get("big", OffsetDateTime::now_utc()).is_some());
        let ticket = cache.ticket("small").unwrap();
        cache.insert(ticket, "small".into(), entry(record(1), later(), None));
        cache.entries.run_pending_tasks();
        assert!(cache.get("small", OffsetDateTime::now_utc()).is_some());
    }

    #[test]
    fn racing_loads_and_evictions_never_leave_a_stale_entry() {
        // Each round: a load reads version n under a ticket while a writer stores n + 1 and
        // evicts; whatever the interleaving, the cache ends empty or holding n + 1.
        let cache = Arc::new(SessionCache::local(1 << 20));
        for round in 0..2000i64 {
            let stored = Arc::new(AtomicU64::new(round as u64));
            let reader = {
                let (cache, stored) = (Arc::clone(&cache), Arc::clone(&stored));
                std::thread::spawn(move || {
                    let ticket = cache.ticket("k").unwrap();
                    let read = stored.load(Ordering::SeqCst) as i64;
                    cache.insert(ticket, "k".into(), entry(record(read), later(), None));
                })
            };
            let writer = {
                let (cache, stored) = (Arc::clone(&cache), Arc::clone(&stored));
                std::thread::spawn(move || {
                    stored.store(round as u64 + 1, Ordering::SeqCst);
                    cache.evict("k");
                })
            };
            reader.join().unwrap();
            writer.join().unwrap();
            if let Some(hit) = cache.get("k", OffsetDateTime::now_utc()) {
                assert_eq!(
                    hit.data["n"],
                    round + 1,
                    "a stale entry survived round {round}"
                );
            }
            cache.evict("k");
        }
    }
}
