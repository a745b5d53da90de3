//! The store's builder: the options every store has (here), those of the SeaORM store
//! (`sea_orm.rs`) and of the lean store (`lean.rs`), and the read cache's (`cache.rs`). Each
//! option edits the store's policy in one place ([`RepositoryStore::with_policy`]); the rules
//! themselves are the domain's ([`crate::domain`]), and the tower-sessions impls are in
//! [`crate::compat`].

use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;

#[cfg(feature = "msgpack")]
use crate::codec::MessagePackCodec;
use crate::{
    adapters::{
        sea_orm::SeaOrmRepository,
        sql::{Dialect, SessionTable},
    },
    cleanup::CleanupTask,
    domain::{IdStorage, Policy, RepositoryStore, UserKeyPath},
    ports::{Codec, SessionRepository},
    SeaOrmStoreError,
};

/// The store on a SeaORM connection: PostgreSQL, SQLite or MySQL/MariaDB, whichever the
/// connection is to (the SQL follows the connection). `PostgresStore`, `SqliteStore` and
/// `MySqlStore` are its names, one per backend feature.
type SeaOrmStore<C> = RepositoryStore<SeaOrmRepository, C>;

/// The PostgreSQL store on a SeaORM connection, MessagePack-encoded by default.
///
/// ```no_run
/// use tower_sessions::{Expiry, SessionManagerLayer};
/// use tower_sessions_seaorm_store::{sea_orm::Database, PostgresStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let store = PostgresStore::new(conn);
/// store.migrate().await?;
/// let layer = SessionManagerLayer::new(store)
///     .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
/// # Ok(()) }
/// ```
///
/// `PostgresStore`, `SqliteStore` and `MySqlStore` are one type: the store speaks the SQL of
/// the connection it is given.
#[cfg(all(feature = "postgres", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub type PostgresStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The PostgreSQL store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(all(feature = "postgres", not(feature = "msgpack")))]
pub type PostgresStore<C> = SeaOrmStore<C>;

/// The SQLite store on a SeaORM connection (feature `sqlite`), MessagePack-encoded by default.
///
/// The table is `session` in the connection's database: SQLite has no schemas, so
/// [`with_schema_name`](RepositoryStore::with_schema_name) is ignored.
///
/// ```no_run
/// use tower_sessions_seaorm_store::{sea_orm::Database, SqliteStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("sqlite://sessions.db?mode=rwc").await?;
/// let store = SqliteStore::new(conn);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[cfg(all(feature = "sqlite", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub type SqliteStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The SQLite store on a SeaORM connection; enable feature `msgpack` for the default codec.
#[cfg(all(feature = "sqlite", not(feature = "msgpack")))]
pub type SqliteStore<C> = SeaOrmStore<C>;

/// The MySQL and MariaDB store on a SeaORM connection (feature `mysql`), MessagePack-encoded by
/// default.
///
/// The table is `session` in the connection's database: a MySQL schema is a database, so
/// [`with_schema_name`](RepositoryStore::with_schema_name) is ignored.
///
/// ```no_run
/// use tower_sessions_seaorm_store::{sea_orm::Database, MySqlStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Database::connect("mysql://root@127.0.0.1:3306/app").await?;
/// let store = MySqlStore::new(conn);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[cfg(all(feature = "mysql", feature = "msgpack"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub type MySqlStore<C = MessagePackCodec> = SeaOrmStore<C>;

/// The MySQL and MariaDB store on a SeaORM connection; enable feature `msgpack` for the default
/// codec.
#[cfg(all(feature = "mysql", not(feature = "msgpack")))]
pub type MySqlStore<C> = SeaOrmStore<C>;

#[cfg(feature = "cache")]
mod cache;
#[cfg(feature = "cache")]
pub use cache::Cache;
#[cfg(feature = "tokio-postgres")]
mod lean;
#[cfg(feature = "tokio-postgres")]
pub use lean::LeanPostgresStore;
mod history;
mod sea_orm;

#[cfg(feature = "msgpack")]
impl<R: SessionRepository> RepositoryStore<R, MessagePackCodec> {
    /// A store over any `repository`, with the MessagePack codec: one of the testing kit's
    /// (`InMemoryRepository`, `FaultyRepository`, the mock; module `testing`, feature
    /// `testing`), or your own.
    pub fn from_repository(repository: R) -> Self {
        Self::from_parts(repository, MessagePackCodec)
    }
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// The same store encoding with `codec`.
    ///
    /// Rows written by another codec no longer decode (a Decode error): choose the codec before
    /// the first session is stored.
    pub fn with_codec<C2: Codec>(self, codec: C2) -> RepositoryStore<R, C2> {
        RepositoryStore {
            repository: self.repository,
            codec: Arc::new(codec),
            policy: self.policy,
            cache: self.cache,
            clock: self.clock,
            table_label: self.table_label,
            // A reader of another repository's history is no reader of this one's.
            events: Arc::default(),
        }
    }

    /// The same store reading "now" from `clock` instead of the system's clock: every instant
    /// it writes (a session's creation and last save) and compares (expiry, the absolute
    /// lifetime, the touch window) comes from it. For tests, which move time with
    /// `testing::ManualClock` instead of sleeping; tower-sessions itself still computes each
    /// record's expiry from the system's clock.
    pub fn with_clock(self, clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// The longest one store operation may take (default 5 s);
    /// `None` waits as long as the database and its pool do.
    ///
    /// It bounds `create` (retries included), `save`, `load`, `delete`, each cleanup batch and
    /// [`health`](Self::health). Past it the operation fails with
    /// [`SeaOrmStoreError::TimedOut`] (a `Backend` error for tower-sessions) naming the
    /// operation and the limit. Without it, an operation waits for the pool's acquire timeout
    /// (30 s by default in sqlx) whenever the database is away, and requests pile up.
    pub fn with_operation_timeout(self, timeout: Option<Duration>) -> Self {
        self.with_policy(|policy| policy.operation_timeout = timeout)
    }

    /// The largest encoded session the store writes or reads, in bytes (default 1 MiB:
    /// far beyond what an application means to keep per visitor, and a bound on what one `load`
    /// may decode; `None`: no limit but the database's).
    ///
    /// Beyond it `create` and `save` fail with [`SeaOrmStoreError::TooLarge`] (an `Encode`
    /// error for tower-sessions) giving the size, and nothing is sent to the database; `load`
    /// refuses a larger stored row before decoding it ([`SeaOrmStoreError::Unreadable`], a
    /// `Decode` error, or no session with
    /// [`with_undecodable_as_absent`](Self::with_undecodable_as_absent)), so a row written by
    /// another tool cannot make one request decode gigabytes.
    pub fn with_max_session_size(self, bytes: Option<usize>) -> Self {
        self.with_policy(|policy| policy.max_encoded_size = bytes)
    }

    /// Whether `load` treats a row the codec cannot decode as no session (default `false`: a
    /// `Decode` error).
    ///
    /// With `true`, a corrupt, truncated or foreign row is logged at `warn` (codec, reason and
    /// size; never the data or the id) and the user simply gets a new session, instead of an
    /// error on every request until the row expires. The row stays until that new session's
    /// first save replaces it, or cleanup removes it.
    pub fn with_undecodable_as_absent(self, absent: bool) -> Self {
        self.with_policy(|policy| policy.undecodable_as_absent = absent)
    }

    /// How many fresh ids `create` tries when the id is taken (default 8, at least 1).
    pub fn with_create_attempts(self, attempts: u32) -> Self {
        self.with_policy(|policy| policy.max_create_attempts = attempts.max(1))
    }

    /// The most rows one cleanup statement deletes (default 10,000, at least 1). Smaller
    /// batches hold their locks for less time; cleanup runs batch after batch until none is left.
    pub fn with_cleanup_batch_size(self, rows: u64) -> Self {
        self.with_policy(|policy| policy.cleanup_batch_size = rows.max(1))
    }

    /// The same store keeping a **per-user index**: every create and save stores the session's
    /// user, read from the session value `path`, beside the row, so that a user's sessions can
    /// be listed ([`user_sessions`](Self::user_sessions)) and ended
    /// ([`delete_user_sessions`](Self::delete_user_sessions),
    /// [`delete_user_sessions_except`](Self::delete_user_sessions_except),
    /// [`delete_user_session`](Self::delete_user_session)): "log out everywhere", "log out my
    /// other devices", "sign out that device".
    ///
    /// `path` is a session key (`"user_id"`), or a JSON Pointer when it starts with `/`
    /// (`"/axum-login.data/user_id"` for axum-login 0.18, whose default data key is
    /// `axum-login.data`). The value found becomes the user key: a string as it is, a number in
    /// decimal, a boolean as `true`/`false`, an array or object as compact JSON; a missing value
    /// or `null` means no user. A session
    /// without that value (anonymous, or logged out) has no user and leaves its user's list at
    /// its next save. The table needs the second migration (`migrate()` runs it).
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// let store = store.with_user_key("user_id")?;
    /// store.migrate().await?;
    /// for session in store.user_sessions("42").await? {
    ///     println!("{} expires at {}", session.handle, session.expiry_date);
    /// }
    /// store.delete_user_sessions("42").await?; // log user 42 out everywhere
    /// # Ok(()) }
    /// ```
    pub fn with_user_key(self, path: &str) -> Result<Self, SeaOrmStoreError> {
        let path = UserKeyPath::new(path)
            .map_err(|err| SeaOrmStoreError::InvalidConfiguration(err.to_string()))?;
        Ok(self.with_policy(|policy| policy.user_key = Some(path)))
    }

    /// The same store with **write avoidance**: a save whose session values did not change and
    /// whose new expiry is less than `window` after the stored one writes nothing.
    ///
    /// Decided by the database inside the save's single statement (an `UPDATE … WHERE` that
    /// matches no row when nothing worth writing changed), against a SHA-256 of the values kept
    /// beside the row: no read first, and no new row version for a no-op save.
    /// Worth it with `SessionManagerLayer::with_always_save(true)` or a short
    /// `Expiry::OnInactivity`, which otherwise rewrite every session on every request.
    ///
    /// The trade-off: a session's stored expiry can lag its true expiry by up to `window`, so
    /// an inactive session may expire up to `window` early. Keep `window` a small fraction of
    /// the inactivity timeout (a minute for a day). A change of any value, or a shorter expiry,
    /// is always written. The table needs the second migration (`migrate()` runs it).
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// let store = store.with_touch_after(std::time::Duration::from_secs(60));
    /// # }
    /// ```
    pub fn with_touch_after(self, window: Duration) -> Self {
        self.with_policy(|policy| policy.touch_after = Some(window))
    }

    /// The same store keeping **ids hashed at rest**: the table's `id` column holds the
    /// lowercase hex SHA-256 of each session id instead of the id, and the encoded record in
    /// `data` holds no id (the store writes a zero id and restores the real one from the key it
    /// looked up), so a leaked table or backup cannot be used to take over sessions. Every
    /// operation works the same, the per-user index too.
    ///
    /// What a hashed table still reveals: every session's values (encrypt them if they are
    /// sensitive), its expiry, its user key (per-user index), how many sessions there are and
    /// their sizes. Rows written before hashing was switched on keep their id in `data` until
    /// their next save rewrites them.
    ///
    /// The trade-off: rows written without it are not found with it (their users are logged
    /// out once), and the other way round. To switch without logging anyone out, convert the
    /// table in the same deploy, e.g. on PostgreSQL:
    ///
    /// ```sql
    /// UPDATE tower_sessions.session SET id = encode(sha256(convert_to(id, 'UTF8')), 'hex')
    /// WHERE length(id) = 22;
    /// ```
    ///
    /// (MySQL and MariaDB: ``UPDATE `session` SET id = SHA2(id, 256) WHERE CHAR_LENGTH(id) =
    /// 22``; SQLite has no SHA-256 built in: let the sessions expire, or convert them from the
    /// application.) Hashing costs about a microsecond per operation.
    pub fn with_hashed_ids(self) -> Self {
        self.with_policy(|policy| policy.id_storage = IdStorage::Hashed)
    }

    /// The same store with an **absolute session lifetime**: a session created more than
    /// `lifetime` ago is never loaded (the request gets a fresh, empty session) nor listed,
    /// however active it is, and the cleanup deletes it. tower-sessions' `Expiry` is either an
    /// idle timeout or a fixed date; with `Expiry::OnInactivity` an active session otherwise
    /// lives forever (OWASP ASVS 5.0 §7.3.2 asks for both).
    ///
    /// The creation instant is written by `create` only, never by `save`. A new id is a new
    /// session: `Session::cycle_id`, as axum-login calls at login, starts a new lifetime, so a
    /// lifetime is a bound on one login. Sessions stored before the fourth migration
    /// ([`AddSessionTimes`](crate::migration::AddSessionTimes); `migrate()` runs it) count from
    /// the migration; rows another writer inserts later without a `created_at` count from their
    /// insert ([`InsertInstantDefaults`](crate::migration::InsertInstantDefaults)). Still one
    /// statement per load and per cleanup batch.
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// use std::time::Duration;
    /// // Idle timeout: tower-sessions' Expiry::OnInactivity; absolute: 12 hours.
    /// let store = store.with_absolute_lifetime(Duration::from_secs(12 * 60 * 60));
    /// # }
    /// ```
    pub fn with_absolute_lifetime(self, lifetime: Duration) -> Self {
        self.with_policy(|policy| policy.absolute_lifetime = Some(lifetime))
    }

    /// The same store with **long-lived sessions** ("remember me"): a session whose value at
    /// `path` is JSON `true` lives to `lifetime` after its creation instead of the absolute
    /// lifetime ([`with_absolute_lifetime`](Self::with_absolute_lifetime), which must be set
    /// first), while every other session keeps that one.
    ///
    /// `path` is read like [`with_user_key`](Self::with_user_key)'s (a session key, or a JSON
    /// Pointer when it starts with `/`), at every create and save, and the answer is stored
    /// beside the row (`long_lived`, added by the eighth migration,
    /// [`AddLongLived`](crate::migration::AddLongLived); `migrate()` runs it). Only `true`
    /// counts: `"true"`, `1` or a missing value leave the session short-lived. The value is
    /// one the application wrote into the server-side session, never anything the client
    /// sends, so a client cannot lengthen its own session. A save that sets it later lengthens
    /// the session (counted from its creation still), one that removes it shortens it again.
    /// Every read that applies the lifetime (a load, the read cache, a user's list and counts,
    /// the per-user limit's trim) and the cleanup apply the session's own, each in its one
    /// statement: a long-lived session is never deleted at the short lifetime.
    ///
    /// Only the absolute lifetime is the store's; the idle timeout is tower-sessions'. Give a
    /// remembered session a longer one in the handler:
    /// `session.set_expiry(Some(Expiry::OnInactivity(time::Duration::days(30))))`.
    ///
    /// Fails with `InvalidConfiguration` without an absolute lifetime, or with a `lifetime`
    /// shorter than it, or an unusable `path`.
    ///
    /// ```
    /// # use tower_sessions_seaorm_store::{testing::InMemoryRepository, RepositoryStore};
    /// use std::time::Duration;
    /// use tower_sessions::{Expiry, Session};
    ///
    /// # fn run() -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// # let store = RepositoryStore::from_repository(InMemoryRepository::new());
    /// const DAY: u64 = 24 * 60 * 60;
    /// let store = store
    ///     .with_absolute_lifetime(Duration::from_secs(DAY / 2))
    ///     .with_long_lived_sessions("remember_me", Duration::from_secs(30 * DAY))?;
    /// # let _ = store;
    /// # Ok(()) }
    ///
    /// // At login, when the user ticked "remember me":
    /// async fn remember(session: &Session) -> Result<(), tower_sessions::session::Error> {
    ///     session.insert("remember_me", true).await?;
    ///     session.set_expiry(Some(Expiry::OnInactivity(time::Duration::days(30))));
    ///     Ok(())
    /// }
    /// # run().unwrap();
    /// ```
    pub fn with_long_lived_sessions(
        self,
        path: &str,
        lifetime: Duration,
    ) -> Result<Self, SeaOrmStoreError> {
        let path = UserKeyPath::new(path)
            .map_err(|err| SeaOrmStoreError::InvalidConfiguration(err.to_string()))?;
        match self.policy.absolute_lifetime {
            None => Err(SeaOrmStoreError::InvalidConfiguration(
                "long-lived sessions need an absolute lifetime for the others: call \
                 `.with_absolute_lifetime(...)` first"
                    .to_owned(),
            )),
            Some(short) if lifetime < short => {
                Err(SeaOrmStoreError::InvalidConfiguration(format!(
                    "the long-lived sessions' lifetime ({lifetime:?}) is shorter than the \
                     absolute lifetime ({short:?}): give at least as long"
                )))
            }
            Some(_) => Ok(self.with_policy(|policy| policy.long_lived = Some((path, lifetime)))),
        }
    }

    /// The same store with a **limit on each user's concurrent sessions**: after a create or a
    /// save that gives a user more than `sessions` live sessions, the user's least recently
    /// active ones (by last save) are ended, so no user has more than `sessions` once every
    /// such save has returned, also when one user logs in from many devices at once (OWASP
    /// ASVS 5.0 §7.1.2).
    ///
    /// Only live sessions count: one past its expiry or its absolute lifetime
    /// ([`with_absolute_lifetime`](Self::with_absolute_lifetime)) takes no slot, and is left to
    /// the cleanup.
    ///
    /// Needs the per-user index: call [`with_user_key`](Self::with_user_key) first. Costs one
    /// more statement (two on MySQL/MariaDB) for the creates and saves that set or change a
    /// session's user (a login), nothing for the others: on PostgreSQL and MySQL the save
    /// reports a change of user within its own statement. SQLite cannot, so there every save
    /// it writes with a user is followed by the trim, which ends nothing unless the user is
    /// over the limit (one more statement, in process). A session ended this way is gone at
    /// its device's next request, as after "log out my other devices".
    ///
    /// The trim never deadlocks with other logins, logouts or saves (it locks the sessions it
    /// ends by key, in key order, after choosing them without locking), and never fails the
    /// login it follows: it runs after the session is stored, bounded by its own operation
    /// timeout, and if it fails the login stands, a warning is logged, and the user keeps more
    /// sessions until their next login trims again.
    ///
    /// To refuse the login beyond the limit instead of ending older sessions, add
    /// [`refusing_logins_at_the_limit`](Self::refusing_logins_at_the_limit).
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let store = store.with_user_key("user_id")?.with_max_sessions_per_user(5)?;
    /// # Ok(()) }
    /// ```
    pub fn with_max_sessions_per_user(self, sessions: u64) -> Result<Self, SeaOrmStoreError> {
        if sessions == 0 {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a per-user session limit of 0 would end every login: give at least 1".to_owned(),
            ));
        }
        if self.policy.user_key.is_none() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "a per-user session limit needs the per-user index: call \
                 `.with_user_key(\"user_id\")` before `.with_max_sessions_per_user(n)`"
                    .to_owned(),
            ));
        }
        Ok(self.with_policy(|policy| policy.max_sessions_per_user = Some(sessions)))
    }

    /// The same store **refusing a login that would give its user more sessions than the
    /// per-user limit**, instead of ending the user's least recently active ones: the create or
    /// save of that login fails with [`SeaOrmStoreError::TooManySessions`] and writes nothing
    /// (no session, no login history entry, no event), and the application tells the person
    /// they are signed in on too many devices
    /// ([`SeaOrmStoreError::is_too_many_sessions`] recognises the error tower-sessions
    /// returns; the guide's [per-user limit](crate::guide::features#a-per-user-session-limit)
    /// has an axum handler).
    ///
    /// Only live sessions count, and the session being saved does not count against itself.
    /// Concurrent logins of one user are serialised per user, so however many race, the user
    /// ends with at most the limit, and none fails with a deadlock: on PostgreSQL (both
    /// drivers) a transaction takes `pg_advisory_xact_lock` on a hash of the table and the
    /// user, counts the user's live sessions and writes only below the limit; on SQLite the
    /// transaction takes the database's write lock first; on MySQL/MariaDB it takes
    /// `GET_LOCK` on that hash, released after the commit. That transaction costs a login
    /// three or four statements instead of one; a save that keeps its session's user stays
    /// one statement (it writes only the version it loaded, which had that user).
    ///
    /// Needs the limit: call [`with_max_sessions_per_user`](Self::with_max_sessions_per_user)
    /// first. A repository of your own must implement
    /// [`SessionRepository::insert_within_limit`](crate::repository::SessionRepository::insert_within_limit)
    /// and `update_within_limit`; without them every login fails with a database error.
    ///
    /// ```no_run
    /// # fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let store = store
    ///     .with_user_key("user_id")?
    ///     .with_max_sessions_per_user(5)?
    ///     .refusing_logins_at_the_limit()?;
    /// # Ok(()) }
    /// ```
    pub fn refusing_logins_at_the_limit(self) -> Result<Self, SeaOrmStoreError> {
        if self.policy.max_sessions_per_user.is_none() {
            return Err(SeaOrmStoreError::InvalidConfiguration(
                "refusing logins at the per-user limit needs the limit: call \
                 `.with_max_sessions_per_user(n)` before `.refusing_logins_at_the_limit()`"
                    .to_owned(),
            ));
        }
        Ok(self.with_policy(|policy| policy.refuse_at_limit = true))
    }

    /// The same store copying the session values named by `paths` beside each session, so
    /// that its user's list ([`user_sessions`](Self::user_sessions)) shows them in
    /// [`UserSession::listed`](crate::UserSession::listed): what a person needs to recognise a device ("Firefox on
    /// Linux", the city or address it signed in from). Each path is a session key or a JSON
    /// Pointer, as in [`with_user_key`](Self::with_user_key).
    ///
    /// The values are copied as they are at each write, as JSON (at most 4096 bytes per
    /// session, else the write fails with [`SeaOrmStoreError::Unstorable`]), in plain text
    /// whatever the codec: list what the list shows, nothing secret.
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let store = store
    ///     .with_user_key("user_id")?
    ///     .with_listed_values(["device", "signed_in_from"])?;
    /// for device in store.user_sessions("42").await? {
    ///     let name = device.listed.get("device").and_then(|v| v.as_str()).unwrap_or("A device");
    ///     println!("{name} · signed in {} · active {}", device.created_at, device.last_active);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_listed_values<I, S>(self, paths: I) -> Result<Self, SeaOrmStoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let listed_values = paths
            .into_iter()
            .map(|path| UserKeyPath::new(path.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                SeaOrmStoreError::InvalidConfiguration(format!("a listed value's {err}"))
            })?;
        Ok(self.with_policy(|policy| policy.listed_values = listed_values))
    }

    /// Spawns a task that deletes expired sessions every `period`, on the current Tokio runtime.
    ///
    /// The task survives database errors (it logs them and retries with a back-off) and stops
    /// when [`CleanupTask::shutdown`] is called.
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) {
    /// let cleanup = store.spawn_cleanup_task(std::time::Duration::from_secs(60));
    /// // ... serve ...
    /// cleanup.shutdown().await;
    /// # }
    /// ```
    pub fn spawn_cleanup_task(&self, period: Duration) -> CleanupTask {
        CleanupTask::spawn(self.clone(), period)
    }

    /// Whether loads are being served from the read cache now: `false` without a cache, and
    /// for a listening cache until its listener has proven it hears every eviction (shortly
    /// after start-up, and again after a lost connection). Worth a metric.
    pub fn is_cache_serving(&self) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.is_serving())
    }

    /// Whether the store has a read cache; table options refuse to follow one.
    pub(crate) fn refuse_if_cached(&self, what: &str) -> Result<(), SeaOrmStoreError> {
        match self.cache {
            Some(_) => Err(SeaOrmStoreError::InvalidConfiguration(format!(
                "{what} after `with_cache`: the cache listens on the table it was given; set \
                 the table first"
            ))),
            None => Ok(()),
        }
    }

    /// The same store with its policy edited by `edit`: every option above, in one place.
    pub(crate) fn with_policy(mut self, edit: impl FnOnce(&mut Policy)) -> Self {
        edit(Arc::make_mut(&mut self.policy));
        self
    }

    /// The same store naming `table` in its spans.
    pub(crate) fn with_table_label(self, table: &SessionTable, dialect: Dialect) -> Self {
        Self {
            table_label: Arc::from(table.label(dialect)),
            ..self
        }
    }

    /// The same rules over another repository (the same table options, the same cache).
    pub(crate) fn with_repository<R2: SessionRepository>(
        self,
        repository: R2,
    ) -> RepositoryStore<R2, C> {
        RepositoryStore {
            repository: Arc::new(repository),
            codec: self.codec,
            policy: self.policy,
            cache: self.cache,
            clock: self.clock,
            table_label: self.table_label,
            // A reader of another repository's history is no reader of this one's.
            events: Arc::default(),
        }
    }
}
