//! The read cache's configuration ([`Cache`]) and the builder methods that install it.

use std::{sync::Arc, time::Duration};

use crate::{
    adapters::{
        cache::SessionCache,
        sql::{SessionTable, SqlDriver},
    },
    domain::{RepositoryStore, SessionError as SeaOrmStoreError},
    ports::Codec,
};
#[cfg(feature = "postgres")]
use crate::{
    adapters::{
        cache::{pg_events, pg_listener},
        sql::{eviction, Dialect},
    },
    ports::RepositoryError,
};

/// An in-memory read cache for a store (feature `cache`): a load that finds its session in the
/// cache asks nothing of the database.
///
/// Two kinds:
///
/// - [`Cache::listening`] (PostgreSQL): every replica's cache is kept right through the
///   database. Triggers that [`migrate`](RepositoryStore::migrate) installs on the session
///   table announce every update, delete and truncate with `NOTIFY` (another replica's delete,
///   a manual `DELETE`, another tool's `UPDATE`), except the saves of stores with a listening
///   cache, which they append to an eviction log that every replica reads every
///   [`poll_every`](Self::poll_every) (so those saves take no global lock at commit); each
///   replica's listener evicts what it hears and reads. A cache serves only while
///   its listener proves it is hearing everything (a heartbeat it sent through the database has
///   come back within [`max_staleness`](Self::max_staleness)); a lost connection clears the
///   cache and sends loads to the database until it listens again. A catalog change that
///   could hide a write from the triggers (one disabled, even inside one transaction; the
///   table swapped; a partition detached; the function replaced) clears every replica's cache
///   within the bound, and `clear_cache_everywhere()` (or `NOTIFY tower_sessions_clear_caches`
///   in `psql`) clears them all after manual surgery.
/// - [`Cache::single_replica`] (any backend): for a table that only this process writes. Its
///   own writes evict; nothing else can. With two replicas, a logout on one is not seen by the
///   other's cache: use it only with one.
///
/// Either way a cached session is never served at or after its expiry (or its absolute
/// lifetime's end), a store's own save, delete, revocation and per-user limit evict before they
/// return, and a load that raced an eviction does not cache what it read. See
/// `docs/cache.md` for the staleness bound and what it means for a request.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_sessions_seaorm_store::{sea_orm::Database, Cache, PostgresStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // The store's pool may go through PgBouncer; the listener needs a direct connection.
/// let conn = Database::connect("postgres://app@pgbouncer:6432/app").await?;
/// let store = PostgresStore::new(conn)
///     .with_cache(Cache::listening("postgres://app@db:5432/app").max_memory(256 << 20))?;
/// store.migrate().await?; // installs the triggers the listeners depend on
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cache {
    kind: Kind,
    max_memory: u64,
    max_staleness: Duration,
    poll: Duration,
}

#[derive(Debug, Clone)]
enum Kind {
    SingleReplica,
    #[cfg(feature = "postgres")]
    Listening {
        url: String,
    },
}

impl Cache {
    /// The default memory budget of a cache: 64 MiB (about 100,000 sessions of a few values).
    pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;
    /// The default staleness bound of a listening cache: 2 s.
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(2);
    /// How often a listening cache reads the eviction log by default: every 5 ms.
    pub const DEFAULT_POLL: Duration = Duration::from_millis(5);

    /// A cache evicted through PostgreSQL `LISTEN/NOTIFY`, listening over `url`: a direct
    /// connection to the store's database (not through PgBouncer's transaction pooling, where
    /// `LISTEN` does not work). The listener takes one connection; its heartbeats go through
    /// the store's own pool, so a URL naming another database by mistake never serves. On a
    /// store with the login history, the listener also reads the live events
    /// ([`events`](RepositoryStore::events)) on that connection once a heartbeat proves it
    /// reaches the store's database (the pool reads them until then): one listener per
    /// replica serves both.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn listening(url: impl Into<String>) -> Self {
        Self::of(Kind::Listening { url: url.into() })
    }

    /// A cache for a store that is the only writer of its table (one process, one store):
    /// it evicts on its own writes only. On SQLite and MySQL/MariaDB, which have no `NOTIFY`,
    /// this is the only kind.
    pub fn single_replica() -> Self {
        Self::of(Kind::SingleReplica)
    }

    fn of(kind: Kind) -> Self {
        Self {
            kind,
            max_memory: Self::DEFAULT_MAX_MEMORY,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
            poll: Self::DEFAULT_POLL,
        }
    }

    /// The same cache holding at most about `bytes` of sessions (least valuable evicted
    /// first). Each entry counts an estimate of its decoded session's memory (its values'
    /// nodes, strings and slots, its key and a share for bookkeeping), so a few large sessions
    /// cannot grow the cache past its budget; a session weighing more than an eighth of it is not
    /// cached (it is read from the database each time), so one cannot push out the others.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// The same cache with another staleness bound (listening caches; at least 40 ms): a cached
    /// load never misses a write committed on any replica more than `bound` earlier, whatever
    /// happens to the listener. A heartbeat goes every quarter of it (a `pg_notify` through the
    /// store's pool).
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound.max(Duration::from_millis(40));
        self
    }

    /// The same cache reading the eviction log every `every` (listening caches; 5 ms by
    /// default, at least 1 ms, at most a quarter of the staleness bound): how soon, typically,
    /// a save on another replica stops being served from this one. Each read is one indexed
    /// query on the listener's own connection that returns the keys saved since the previous
    /// one (about 50 µs of the server's time when there are none), so a replica costs the
    /// database `1 s / every` such queries a second whether or not anything is saved, and a
    /// save costs nothing more however many replicas there are. Deletes, revocations and
    /// writes that bypass the store are announced at once with `NOTIFY` all the same.
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }
}

/// `store` with `cache` on its table; a listening cache's heartbeats go through the store's own
/// repository. (The SeaORM and the lean store's `with_cache`.)
pub(crate) fn with_cache<R: SqlDriver + Clone, C: Codec>(
    store: RepositoryStore<R, C>,
    cache: Cache,
    table: &SessionTable,
) -> Result<RepositoryStore<R, C>, SeaOrmStoreError> {
    store.refuse_if_cached("a second `with_cache`")?;
    let shared = match cache.kind {
        Kind::SingleReplica => {
            let _ = table; // only a listener needs it
            Arc::new(SessionCache::local(cache.max_memory))
        }
        #[cfg(feature = "postgres")]
        Kind::Listening { url } => {
            if store.repository.dialect() != Dialect::Postgres {
                return Err(SeaOrmStoreError::InvalidConfiguration(
                    "a listening cache needs PostgreSQL's LISTEN/NOTIFY; SQLite and MySQL \
                     have none: use `Cache::single_replica()` with a single replica, or no \
                     cache"
                        .to_owned(),
                ));
            }
            if table.distributed() {
                return Err(SeaOrmStoreError::InvalidConfiguration(
                    "a listening cache on a table distributed by Citus: its eviction triggers \
                     would run on the workers, whose NOTIFY never reaches a listener on the \
                     coordinator, so a replica's cache would serve sessions deleted \
                     elsewhere; use no cache, or `Cache::single_replica()` with a single \
                     replica"
                        .to_owned(),
                ));
            }
            // The store's saves have the triggers log their keys, which every listener reads
            // every `poll` (`eviction`): its commits stay off the notify lock.
            let mut repository = (*store.repository).clone();
            let quiet = repository.statements().clone().with_quiet_saves(table);
            *repository.statements_mut() = quiet;
            // With the login history, the listener also reads the live events (`pg_events`):
            // one listener per replica serves both.
            let events = repository.statements().history.as_ref().map(|history| {
                Arc::new(pg_events::Carrier::new(
                    history.feed_read.clone(),
                    Arc::clone(&store.table_label),
                ))
            });
            let store = store.with_repository(repository);
            let mut listening = SessionCache::listening(cache.max_memory, cache.max_staleness);
            if let Some(carrier) = &events {
                listening = listening.with_history_carrier(Arc::clone(carrier) as _);
            }
            let shared = Arc::new(listening);
            let settings = pg_listener::ListenerSettings {
                url,
                table: table.clone(),
                // At least every 15 s, whatever the bound: each returned heartbeat also reads
                // the eviction log, which keeps two minutes of saves.
                heartbeat: (cache.max_staleness / 4).min(pg_listener::LONGEST_HEARTBEAT),
                silence: cache.max_staleness * 2,
                poll: cache.poll.min(cache.max_staleness / 4),
                send: Arc::clone(&store.repository) as Arc<dyn pg_listener::Heartbeat>,
                events,
            };
            pg_listener::spawn(&shared, settings)
                .map_err(SeaOrmStoreError::InvalidConfiguration)?;
            return Ok(RepositoryStore {
                cache: Some(shared),
                ..store
            });
        }
    };
    Ok(RepositoryStore {
        cache: Some(shared),
        ..store
    })
}

/// Clears `store`'s own cache and, on PostgreSQL, every replica's: `NOTIFY
/// tower_sessions_clear_caches` through the store's repository. (The SeaORM and the lean
/// store's `clear_cache_everywhere`.)
pub(crate) async fn clear_caches<R: SqlDriver, C>(
    store: &RepositoryStore<R, C>,
) -> Result<(), SeaOrmStoreError> {
    if let Some(cache) = &store.cache {
        cache.clear();
    }
    #[cfg(feature = "postgres")]
    if store.repository.dialect() == Dialect::Postgres {
        let sent = store
            .repository
            .execute(eviction::CLEAR_SQL, Vec::new())
            .await;
        sent.map_err(RepositoryError::from)?;
    }
    Ok(())
}
