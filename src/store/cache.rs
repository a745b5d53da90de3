//! The read cache's configuration ([`Cache`]) and the builder methods that install it.

use std::{sync::Arc, time::Duration};

use crate::{
    domain::SessionCache,
    ports::{Codec, SessionRepository},
    RepositoryStore, SeaOrmStoreError,
};

/// An in-memory read cache for a store (feature `cache`): a load that finds its session in the
/// cache asks nothing of the database.
///
/// Two kinds:
///
/// - [`Cache::listening`] (PostgreSQL): every replica's cache is kept right through `LISTEN/
///   NOTIFY`. Triggers that [`migrate`](RepositoryStore::migrate) installs on the session table
///   announce every update, delete and truncate (this store's, another replica's, a manual
///   `DELETE`'s), and each replica's listener evicts what they name. A cache serves only while
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

    /// A cache evicted through PostgreSQL `LISTEN/NOTIFY`, listening over `url`: a direct
    /// connection to the store's database (not through PgBouncer's transaction pooling, where
    /// `LISTEN` does not work). The listener takes one connection; its heartbeats go through
    /// the store's own pool, so a URL naming another database by mistake never serves.
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
}

/// How a listening cache's heartbeats reach the store's database (PostgreSQL only).
#[cfg(feature = "postgres")]
pub(crate) type Heartbeat = crate::adapters::pg_listener::SendHeartbeat;
/// Without PostgreSQL there is no listening cache, and no heartbeat.
#[cfg(not(feature = "postgres"))]
pub(crate) type Heartbeat = std::convert::Infallible;

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// Whether loads are being served from the cache now: `false` without a cache, and for a
    /// listening cache until its listener has proven it hears every eviction (shortly after
    /// start-up, and again after a lost connection). Worth a metric.
    pub fn is_cache_serving(&self) -> bool {
        self.service()
            .cache()
            .is_some_and(|cache| cache.is_serving())
    }

    /// Clears this store's own cache, if it has one: its next loads read the database.
    pub(crate) fn clear_own_cache(&self) {
        if let Some(cache) = self.service().cache() {
            cache.clear();
        }
    }

    /// Whether the store has a cache; table options refuse to follow one.
    pub(crate) fn refuse_if_cached(&self, what: &str) -> Result<(), SeaOrmStoreError> {
        match self.service().cache() {
            Some(_) => Err(SeaOrmStoreError::InvalidConfiguration(format!(
                "{what} after `with_cache`: the cache listens on the table it was given; set \
                 the table first"
            ))),
            None => Ok(()),
        }
    }

    fn with_session_cache(self, cache: SessionCache) -> (Self, Arc<SessionCache>) {
        let cache = Arc::new(cache);
        let store = Self {
            service: self.service.with_cache(Some(Arc::clone(&cache))),
        };
        (store, cache)
    }

    /// Installs `cache` given where the store's table is and how heartbeats reach its
    /// database (`None`: not PostgreSQL).
    pub(crate) fn with_cache_on(
        self,
        cache: Cache,
        table: &crate::adapters::sql::SessionTable,
        heartbeat: Option<Heartbeat>,
    ) -> Result<Self, SeaOrmStoreError> {
        self.refuse_if_cached("a second `with_cache`")?;
        match cache.kind {
            Kind::SingleReplica => {
                let _ = (table, heartbeat);
                Ok(self
                    .with_session_cache(SessionCache::local(cache.max_memory))
                    .0)
            }
            #[cfg(feature = "postgres")]
            Kind::Listening { url } => {
                let Some(send) = heartbeat else {
                    return Err(SeaOrmStoreError::InvalidConfiguration(
                        "a listening cache needs PostgreSQL's LISTEN/NOTIFY; SQLite and MySQL \
                         have none: use `Cache::single_replica()` with a single replica, or no \
                         cache"
                            .to_owned(),
                    ));
                };
                let (store, shared) = self.with_session_cache(SessionCache::listening(
                    cache.max_memory,
                    cache.max_staleness,
                ));
                crate::adapters::pg_listener::spawn(
                    &shared,
                    crate::adapters::pg_listener::ListenerSettings {
                        url,
                        table: table.clone(),
                        heartbeat: cache.max_staleness / 4,
                        silence: cache.max_staleness * 2,
                        send,
                    },
                )
                .map_err(SeaOrmStoreError::InvalidConfiguration)?;
                Ok(store)
            }
        }
    }

    /// Whether `migrate` installs the eviction triggers: the store has a listening cache.
    #[cfg(feature = "migration")]
    pub(crate) fn cache_listens(&self) -> bool {
        self.service()
            .cache()
            .is_some_and(|cache| !cache.is_local())
    }
}
