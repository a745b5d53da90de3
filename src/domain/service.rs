use std::{
    borrow::Cow,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use time::{OffsetDateTime, UtcOffset};
use tracing::Instrument;

use super::{
    keys::content_digest, IdStorage, Operation, SessionError, SessionHandle, SessionId,
    SessionRecord, UserKeyPath, MAX_USER_KEY_LEN,
};
use crate::ports::{Codec, SessionRepository, SessionRow, Unchanged};

/// The default bound on one store operation: long enough for a loaded database, short enough
/// that requests fail fast instead of piling up when the database is away.
pub(crate) const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The default limit on an encoded session, written or read: 1 MiB.
///
/// A session is usually a few hundred bytes (a cookie session must fit 4 KiB); 1 MiB is far
/// beyond what an application means to keep per visitor, and it bounds what one `load` may
/// decode: decoding expands compact encodings many times over (a MessagePack `nil` is 1 byte
/// and becomes a 32-byte value), so a row of 16 MiB written by another tool could cost a
/// request hundreds of megabytes.
pub(crate) const DEFAULT_MAX_SESSION_SIZE: usize = 1024 * 1024;

/// The id encoded into the rows of a store that hashes ids: such a row holds no session id,
/// and `load` restores the id it looked the row up by.
const NO_ID: SessionId = SessionId(0);

/// The knobs of the service's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// How many ids `create` tries before it gives up (at least 1).
    pub max_create_attempts: u32,
    /// The most rows one cleanup statement deletes (at least 1).
    pub cleanup_batch_size: u64,
    /// The longest one operation (a create with its retries, a save, a load, a delete, one
    /// cleanup batch, a health check) may take before it fails with
    /// [`SessionError::TimedOut`]; `None` waits as long as the repository does.
    pub operation_timeout: Option<Duration>,
    /// The largest encoded session, in bytes, that `create` and `save` write and `load` reads
    /// ([`DEFAULT_MAX_SESSION_SIZE`] unless set); `None` for no limit (the database's own: 1
    /// GiB for PostgreSQL's `bytea`). A larger one fails to write with
    /// [`SessionError::TooLarge`] before anything is sent; a larger stored row is refused
    /// before it is decoded ([`SessionError::Unreadable`]).
    pub max_encoded_size: Option<usize>,
    /// What `load` does with a row its codec cannot decode: `false` (the default) fails with
    /// [`SessionError::Decode`]; `true` logs a warning (without the row's data or id) and
    /// answers "no session", so a corrupt row does not lock its user into errors: the user gets
    /// a fresh session, whose first save replaces the row.
    pub undecodable_as_absent: bool,
    /// Whether rows are keyed by the id or by its SHA-256.
    pub id_storage: IdStorage,
    /// The per-user index: where the session's user is found; `None` keeps no index.
    pub user_key: Option<UserKeyPath>,
    /// Write avoidance: a save whose values did not change and whose expiry moves by less than
    /// this writes nothing; `None` writes every save.
    pub touch_after: Option<Duration>,
    /// The absolute lifetime: a session created longer ago than this is never loaded or listed,
    /// however active, and the cleanup deletes it; `None` lets activity extend it forever.
    pub absolute_lifetime: Option<Duration>,
    /// The per-user session limit: after a create or save that gives a user more live sessions
    /// than this, the least recently saved are deleted; `None` for no limit.
    pub max_sessions_per_user: Option<u64>,
    /// The values the user's session list shows ([`UserSession::listed`]); none by default.
    pub listed_values: Vec<UserKeyPath>,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        Self {
            max_create_attempts: 8,
            cleanup_batch_size: 10_000,
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            max_encoded_size: Some(DEFAULT_MAX_SESSION_SIZE),
            undecodable_as_absent: false,
            id_storage: IdStorage::Plain,
            user_key: None,
            touch_after: None,
            absolute_lifetime: None,
            max_sessions_per_user: None,
            listed_values: Vec::new(),
        }
    }
}

/// The most bytes a session's listed values may take, as JSON: they are copied beside the
/// session for its user's list, and a list shows a few short values (a device, an address).
pub const MAX_LISTED_VALUES_LEN: usize = 4096;

/// One live session of a user, as
/// [`RepositoryStore::user_sessions`](crate::RepositoryStore::user_sessions) lists it: what a
/// "your devices" page shows, e.g. "Firefox on Linux · signed in 3 days ago · active 5 minutes
/// ago".
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque name for the session, safe to show and to post back ("sign out this device",
    /// [`RepositoryStore::delete_user_session`](crate::RepositoryStore::delete_user_session));
    /// see [`SessionHandle`].
    pub handle: SessionHandle,
    /// When the session was created (its first save; a new id from `cycle_id`, as at login, is
    /// a new session).
    pub created_at: OffsetDateTime,
    /// When it was last written: its last save that changed something (with write avoidance,
    /// saves within the touch window write nothing, so this lags by up to that window).
    pub last_active: OffsetDateTime,
    /// When it expires.
    pub expiry_date: OffsetDateTime,
    /// The values the store was told to list
    /// ([`with_listed_values`](crate::RepositoryStore::with_listed_values)), as they were at
    /// the session's last write, keyed by the path given there; a value the session does not
    /// hold is absent.
    pub listed: serde_json::Map<String, serde_json::Value>,
}

/// An id no session can have (session ids are 22 URL-safe base64 characters), for probes.
const HEALTH_PROBE_ID: &str = "~health-check~";

/// Applies the store's rules over a [`SessionRepository`] and a [`Codec`].
///
/// Every operation runs in a `debug` span named `session_store` with the fields `operation`,
/// `table` (see [`with_table_label`](Self::with_table_label)), `outcome` and `duration_us`;
/// never a session id or session data.
///
/// Cheap to clone: the repository and codec are shared.
#[derive(Debug)]
pub struct SessionService<R, C> {
    repository: Arc<R>,
    codec: Arc<C>,
    policy: ServicePolicy,
    table_label: Arc<str>,
    #[cfg(feature = "cache")]
    cache: Option<Arc<super::SessionCache>>,
}

impl<R, C> Clone for SessionService<R, C> {
    fn clone(&self) -> Self {
        Self {
            repository: Arc::clone(&self.repository),
            codec: Arc::clone(&self.codec),
            policy: self.policy.clone(),
            table_label: Arc::clone(&self.table_label),
            #[cfg(feature = "cache")]
            cache: self.cache.clone(),
        }
    }
}

impl<R, C> SessionService<R, C> {
    /// The repository this service writes to.
    pub fn repository(&self) -> &Arc<R> {
        &self.repository
    }

    /// The codec this service encodes with.
    pub fn codec(&self) -> &Arc<C> {
        &self.codec
    }

    /// The rules' knobs.
    pub fn policy(&self) -> &ServicePolicy {
        &self.policy
    }

    /// The same service with another policy. Values below 1 are raised to 1.
    pub fn with_policy(mut self, policy: ServicePolicy) -> Self {
        self.policy = ServicePolicy {
            max_create_attempts: policy.max_create_attempts.max(1),
            cleanup_batch_size: policy.cleanup_batch_size.max(1),
            ..policy
        };
        self
    }

    /// The same service, serving loads from `cache` (see [`SessionCache`](super::SessionCache)).
    #[cfg(feature = "cache")]
    pub fn with_cache(mut self, cache: Option<Arc<super::SessionCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// The read cache, if any.
    #[cfg(feature = "cache")]
    pub fn cache(&self) -> Option<&Arc<super::SessionCache>> {
        self.cache.as_ref()
    }

    /// What evicts `what()` from the cache when it drops: when the write it guards returns,
    /// fails or is abandoned (a time-out), so no outcome leaves a stale entry. A write that did
    /// not finish ([`Eviction::done`] not called) may still commit later: the eviction is
    /// repeated once it can no longer be running. Without a cache, nothing (and `what` is not
    /// called).
    fn eviction(&self, what: impl FnOnce() -> Evict) -> Eviction {
        #[cfg(feature = "cache")]
        {
            Eviction {
                pending: self.cache.as_ref().map(|cache| {
                    let settle = self
                        .policy
                        .operation_timeout
                        .map_or(Duration::from_secs(60), |limit| limit.saturating_mul(2));
                    (Arc::clone(cache), settle, what())
                }),
                done: false,
            }
        }
        #[cfg(not(feature = "cache"))]
        {
            let _ = what;
            Eviction
        }
    }

    /// The same service, naming its table `label` in its spans (the store passes the quoted,
    /// schema-qualified table name).
    pub fn with_table_label(mut self, label: impl Into<Arc<str>>) -> Self {
        self.table_label = label.into();
        self
    }
}

impl<R: SessionRepository, C: Codec> SessionService<R, C> {
    /// A service over `repository` and `codec` with the default policy.
    pub fn new(repository: R, codec: C) -> Self {
        Self::from_parts(
            Arc::new(repository),
            Arc::new(codec),
            ServicePolicy::default(),
        )
    }

    /// A service over shared parts.
    pub fn from_parts(repository: Arc<R>, codec: Arc<C>, policy: ServicePolicy) -> Self {
        Self {
            repository,
            codec,
            policy,
            table_label: Arc::from("sessions"),
            #[cfg(feature = "cache")]
            cache: None,
        }
    }

    /// The same rules over another codec.
    pub fn with_codec<C2: Codec>(self, codec: C2) -> SessionService<R, C2> {
        let service = SessionService::from_parts(self.repository, Arc::new(codec), self.policy)
            .with_table_label(self.table_label);
        #[cfg(feature = "cache")]
        let service = service.with_cache(self.cache);
        service
    }

    /// The same rules over another repository.
    pub fn with_repository<R2: SessionRepository>(self, repository: R2) -> SessionService<R2, C> {
        let service = SessionService::from_parts(Arc::new(repository), self.codec, self.policy)
            .with_table_label(self.table_label);
        // The store refuses to move a cached store to another table, so the cache still holds
        // rows of this repository's table.
        #[cfg(feature = "cache")]
        let service = service.with_cache(self.cache);
        service
    }

    /// Stores a new session. When `record.id` is taken, `record.id` is replaced by a fresh id
    /// and the insert retried; the existing session is never touched.
    ///
    /// Refused before anything is sent ([`SessionError::Unstorable`]) when the expiry lies
    /// outside the years 1 to 9999 in UTC, the range every backend stores.
    ///
    /// With a per-user session limit, a session created with a user (a login) is followed by
    /// the trim of that user's sessions ([`Self::trim_after_login`]), which never fails the
    /// create.
    pub async fn create(&self, record: &mut SessionRecord<'_>) -> Result<(), SessionError> {
        let now = OffsetDateTime::now_utc();
        let written = self
            .run(Operation::Create, self.create_unbounded(record, now))
            .await?;
        self.trim_after_login(written, now).await;
        Ok(())
    }

    async fn create_unbounded(
        &self,
        record: &mut SessionRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<Written, SessionError> {
        for attempt in 1..=self.policy.max_create_attempts {
            if attempt > 1 {
                record.id = SessionId::random();
            }
            // A plain row holds its id, so every attempt encodes again.
            let row = self.row(record, now)?;
            let user_key = row.user_key.clone();
            if self.repository.insert_if_absent(row).await? {
                return Ok(Written { login_of: user_key });
            }
            tracing::debug!(attempt, "session id already taken; drawing a fresh one");
        }
        Err(SessionError::IdsExhausted {
            attempts: self.policy.max_create_attempts,
        })
    }

    /// Replaces the stored session with `record.id`, **if it is still stored**: a session
    /// deleted since it was loaded (logged out in another tab, "log out everywhere", signed out
    /// from another device) stays deleted, and the save succeeds having written nothing.
    ///
    /// With write avoidance on ([`ServicePolicy::touch_after`]), a save that changes no value
    /// and no user key and moves the expiry by less than that writes nothing either.
    ///
    /// With a per-user session limit ([`ServicePolicy::max_sessions_per_user`]), a save that
    /// gives the session another user (a login) is followed by the trim of that user's
    /// sessions ([`Self::trim_after_login`]: a second statement, for those saves only), which
    /// never fails the save.
    pub async fn save(&self, record: &SessionRecord<'_>) -> Result<(), SessionError> {
        let now = OffsetDateTime::now_utc();
        let written = self
            .run(Operation::Save, async {
                let mut row = self.row(record, now)?;
                // Only a save with a user can give a user one more session.
                row.report_user_change =
                    self.policy.max_sessions_per_user.is_some() && row.user_key.is_some();
                let user_key = row.user_key.clone();
                let eviction = self.eviction(|| Evict::Key(row.id.clone()));
                let user_changed = self.repository.update_if_present(row).await?;
                eviction.done();
                Ok(Written {
                    login_of: user_key.filter(|_| user_changed),
                })
            })
            .await?;
        self.trim_after_login(written, now).await;
        Ok(())
    }

    /// The per-user session limit, after a write that gave a user one more session: ends the
    /// user's least recently saved live sessions beyond the limit. A dead session (expired, or
    /// past the absolute lifetime) takes no slot.
    ///
    /// Concurrent logins each trim after their own write, so once they have all returned the
    /// user has exactly the limit (or fewer sessions). The trim is an operation of its own
    /// (`delete_user_sessions` in spans and faults), bounded by its own operation timeout, and
    /// **never fails the login it follows**: the session is stored by then, so an error is
    /// logged at `warn` and the user keeps more than the limit until a later login of theirs
    /// trims again.
    async fn trim_after_login(&self, written: Written, now: OffsetDateTime) {
        let (Some(user_key), Some(limit)) = (written.login_of, self.policy.max_sessions_per_user)
        else {
            return;
        };
        let trimmed = self
            .run(Operation::DeleteUserSessions, async {
                let eviction = self.eviction(|| Evict::User(user_key.clone()));
                let ended = self
                    .repository
                    .trim_user_sessions(&user_key, limit, now, self.born_after(now))
                    .await?;
                eviction.done_if(ended > 0);
                Ok(ended)
            })
            .await;
        match trimmed {
            Ok(0) => {}
            Ok(ended) => tracing::debug!(
                ended,
                limit,
                "ended a user's sessions beyond the per-user limit"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                limit,
                "could not end a user's sessions beyond the per-user limit after a login; the \
                 login stands, and the user keeps more sessions until a later login trims"
            ),
        }
    }

    /// The instant at or before which a session was created too long ago to live at `now`
    /// (the absolute lifetime); `None` without one.
    fn born_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(self.policy.absolute_lifetime?).ok()?;
        now.checked_sub(lifetime)
    }

    /// The session with `id`, unless it is missing or expired at `now`.
    pub async fn load_at(
        &self,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.cache {
            return self.load_cached(cache, id, now).await;
        }
        self.run(Operation::Load, self.load_unbounded(id, now))
            .await
    }

    /// A load through the cache: served from it when it can, else read, and cached unless an
    /// eviction overtook the read.
    #[cfg(feature = "cache")]
    async fn load_cached(
        &self,
        cache: &super::SessionCache,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        let key = self.key(id);
        if let Some(record) = cache.get(&key, now) {
            return Ok(Some(record));
        }
        let ticket = cache.ticket(&key);
        self.run(Operation::Load, async {
            let born_after = self.born_after(now);
            let Some(found) = self
                .repository
                .find_unexpired_row(&key, now, born_after)
                .await?
            else {
                return Ok(None);
            };
            let Some(record) = self.accept(id, &key, found.data, now)? else {
                return Ok(None);
            };
            let lifetime_end = match (self.policy.absolute_lifetime, found.created_at) {
                (None, _) => Some(record.expiry_date),
                (Some(lifetime), Some(created_at)) => time::Duration::try_from(lifetime)
                    .ok()
                    .and_then(|lifetime| created_at.checked_add(lifetime))
                    .map(|end| end.min(record.expiry_date)),
                // A repository that does not say when the row was born: not cached.
                (Some(_), None) => None,
            };
            if let (Some(ticket), Some(valid_until)) = (ticket, lifetime_end) {
                let user_key = self.user_key_of(&record).ok().flatten();
                cache.insert(ticket, key.clone(), record.clone(), valid_until, user_key);
            }
            Ok(Some(record))
        })
        .await
    }

    async fn load_unbounded(
        &self,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        let key = self.key(id);
        let born_after = self.born_after(now);
        let Some(data) = self
            .repository
            .find_unexpired(&key, now, born_after)
            .await?
        else {
            return Ok(None);
        };
        self.accept(id, &key, data, now)
    }

    /// The record a stored row holds, if `load` may return it at `now`.
    fn accept(
        &self,
        id: SessionId,
        key: &str,
        data: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        // Checked before decoding: decoding can take many times the row's size in memory.
        if let Some(limit) = self.policy.max_encoded_size {
            if data.len() > limit {
                return self.refuse(format!(
                    "it is {} bytes, over the store's limit of {limit} bytes; raise \
                     `with_max_session_size` if sessions this large are expected",
                    data.len()
                ));
            }
        }
        let record = match self.codec.decode_row(key, &data) {
            Ok(record) => record,
            Err(err) if self.policy.undecodable_as_absent => {
                tracing::warn!(
                    codec = err.codec(),
                    reason = err.reason(),
                    bytes = data.len(),
                    "a stored session could not be decoded; treating it as absent"
                );
                return Ok(None);
            }
            Err(err) => return Err(SessionError::Decode(err)),
        };
        // The row must hold the record of the session it is stored under: a row whose data was
        // copied from another session would otherwise load as that one, and be saved under its
        // id. Hashed rows hold no id (older ones may still hold their own).
        let own = record.id == id || (self.hashes_ids() && record.id == NO_ID);
        if !own {
            return self.refuse(
                "it holds the record of another session id (the row was copied or tampered with)"
                    .to_owned(),
            );
        }
        // The row's expiry column and the encoded expiry agree when this store wrote both; a row
        // edited by hand may not, and an expired record must never come back.
        if record.expiry_date <= now {
            return Ok(None);
        }
        Ok(Some(SessionRecord { id, ..record }))
    }

    /// A stored row `load` does not return: an error, or no session with
    /// [`ServicePolicy::undecodable_as_absent`].
    fn refuse<T>(&self, reason: String) -> Result<Option<T>, SessionError> {
        if self.policy.undecodable_as_absent {
            tracing::warn!(%reason, "refused a stored session; treating it as absent");
            return Ok(None);
        }
        Err(SessionError::Unreadable(reason))
    }

    fn hashes_ids(&self) -> bool {
        self.policy.id_storage == IdStorage::Hashed
    }

    /// The session with `id`, unless it is missing or expired now.
    pub async fn load(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        self.load_at(id, OffsetDateTime::now_utc()).await
    }

    /// Deletes the session with `id`; deleting a missing session succeeds.
    pub async fn delete(&self, id: SessionId) -> Result<(), SessionError> {
        let key = self.key(id);
        self.run(Operation::Delete, async {
            let eviction = self.eviction(|| Evict::Key(key.clone()));
            self.repository.delete_by_id(&key).await?;
            eviction.done();
            Ok(())
        })
        .await
    }

    /// Deletes every session expired at `now`, batch after batch, and returns how many.
    pub async fn delete_expired_at(&self, now: OffsetDateTime) -> Result<u64, SessionError> {
        let limit = self.policy.cleanup_batch_size;
        let born_before = self.born_after(now);
        let mut total = 0;
        loop {
            let deleted = self
                .run(Operation::DeleteExpired, async {
                    Ok(self
                        .repository
                        .delete_expired_batch(now, born_before, limit)
                        .await?)
                })
                .await?;
            total = u64::saturating_add(total, deleted);
            if deleted < limit {
                return Ok(total);
            }
        }
    }

    /// Deletes every session expired now, batch after batch, and returns how many.
    pub async fn delete_expired(&self) -> Result<u64, SessionError> {
        self.delete_expired_at(OffsetDateTime::now_utc()).await
    }

    /// Checks that the repository answers: one cheap read of the session table, bounded by the
    /// operation timeout. An error says what failed (unreachable, table missing, timed out).
    pub async fn health(&self) -> Result<(), SessionError> {
        self.run(Operation::Health, async {
            let probe =
                self.repository
                    .find_unexpired(HEALTH_PROBE_ID, OffsetDateTime::now_utc(), None);
            Ok(probe.await.map(drop)?)
        })
        .await
    }

    /// The live sessions of `user_key` at `now` (per-user index), most recently active first.
    pub async fn user_sessions_at(
        &self,
        user_key: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<UserSession>, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user_key) {
            return Ok(Vec::new());
        }
        self.run(Operation::ListUserSessions, async {
            let rows = self
                .repository
                .find_unexpired_by_user(user_key, now, self.born_after(now))
                .await?;
            let mut sessions: Vec<_> = rows
                .into_iter()
                .map(|row| UserSession {
                    handle: SessionHandle::of_key(&row.id),
                    created_at: row.created_at,
                    last_active: row.saved_at,
                    expiry_date: row.expires_at,
                    listed: listed_of(row.listed_values.as_deref()),
                })
                .collect();
            sessions.sort_by(|a, b| {
                (b.last_active, b.handle.as_str()).cmp(&(a.last_active, a.handle.as_str()))
            });
            Ok(sessions)
        })
        .await
    }

    /// The live sessions of `user_key` (per-user index), most recently active first.
    pub async fn user_sessions(&self, user_key: &str) -> Result<Vec<UserSession>, SessionError> {
        self.user_sessions_at(user_key, OffsetDateTime::now_utc())
            .await
    }

    /// Deletes every session of `user_key` ("log out everywhere") and returns how many.
    pub async fn delete_user_sessions(&self, user_key: &str) -> Result<u64, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user_key) {
            return Ok(0);
        }
        self.run(Operation::DeleteUserSessions, async {
            let eviction = self.eviction(|| Evict::User(user_key.to_owned()));
            let deleted = self.repository.delete_by_user(user_key).await?;
            eviction.done_if(deleted > 0);
            Ok(deleted)
        })
        .await
    }

    /// Deletes every session of `user_key` but `keep` (the current one: "log out my other
    /// devices") and returns how many.
    pub async fn delete_user_sessions_except(
        &self,
        user_key: &str,
        keep: SessionId,
    ) -> Result<u64, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user_key) {
            return Ok(0);
        }
        let keep = self.key(keep);
        self.run(Operation::DeleteUserSessions, async {
            let eviction = self.eviction(|| Evict::User(user_key.to_owned()));
            let deleted = self
                .repository
                .delete_by_user_except(user_key, &keep)
                .await?;
            eviction.done_if(deleted > 0);
            Ok(deleted)
        })
        .await
    }

    /// Deletes the session of `user_key` listed as `handle` ("sign out that device"); `false`
    /// when the user has no such live session.
    ///
    /// Two statements, the list then the delete, because the handle is a one-way hash the
    /// database cannot compute everywhere (SQLite has no SHA-256); the delete checks the user
    /// again, so a session that changed hands in between is not deleted for its former user.
    pub async fn delete_user_session(
        &self,
        user_key: &str,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user_key) {
            return Ok(false);
        }
        self.run(Operation::DeleteUserSessions, async {
            let now = OffsetDateTime::now_utc();
            let rows = self
                .repository
                .find_unexpired_by_user(user_key, now, self.born_after(now))
                .await?;
            let Some(row) = rows
                .into_iter()
                .find(|row| SessionHandle::of_key(&row.id) == *handle)
            else {
                return Ok(false);
            };
            let eviction = self.eviction(|| Evict::Key(row.id.clone()));
            let deleted = self
                .repository
                .delete_by_user_and_id(user_key, &row.id)
                .await?;
            eviction.done();
            Ok(deleted)
        })
        .await
    }

    /// The handle the user's session list shows for the session with `id`: compare it with
    /// [`UserSession::handle`] to mark the current session.
    pub fn session_handle(&self, id: SessionId) -> SessionHandle {
        SessionHandle::of_key(&self.key(id))
    }

    fn require_user_index(&self) -> Result<(), SessionError> {
        match self.policy.user_key {
            Some(_) => Ok(()),
            None => Err(SessionError::InvalidConfiguration(
                "the per-user session index is off: build the store with \
                 `.with_user_key(\"user_id\")` (naming the session key that holds the user's id) \
                 and migrate"
                    .to_owned(),
            )),
        }
    }

    /// The repository key of `id`.
    fn key(&self, id: SessionId) -> String {
        self.policy.id_storage.key(id)
    }

    /// The row that stores `record` at `now`: encoded (without its id when ids are hashed),
    /// size-checked, with its user key, its listed values and, with write avoidance, its
    /// digest.
    fn row(
        &self,
        record: &SessionRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<SessionRow, SessionError> {
        check_expiry(record.expiry_date)?;
        let user_key = self.user_key_of(record)?;
        let listed_values = self.listed_values_of(record)?;
        let key = self.key(record.id);
        let encoded = if self.hashes_ids() {
            // A hashed table must not hold working ids, and a codec encodes the whole record.
            let record = SessionRecord {
                id: NO_ID,
                data: Cow::Borrowed(record.data.as_ref()),
                expiry_date: record.expiry_date,
            };
            self.codec.encode_row(&key, &record)
        } else {
            self.codec.encode_row(&key, record)
        };
        let data = encoded.map_err(SessionError::Encode)?;
        if let Some(limit) = self.policy.max_encoded_size {
            if data.len() > limit {
                return Err(SessionError::TooLarge {
                    size: data.len(),
                    limit,
                });
            }
        }
        let unchanged = self.policy.touch_after.and_then(|window| {
            let digest = self.codec.digest(content_digest(&key, &record.data)?);
            Some(Unchanged {
                digest,
                keep_if_expiring_after: record.expiry_date.checked_sub(window.try_into().ok()?)?,
            })
        });
        Ok(SessionRow {
            id: key,
            data,
            expires_at: record.expiry_date,
            user_key,
            unchanged,
            created_at: now,
            saved_at: now,
            listed_values,
            report_user_change: false,
        })
    }

    /// The listed values of `record` as a JSON object, `None` when the store lists none.
    fn listed_values_of(&self, record: &SessionRecord<'_>) -> Result<Option<String>, SessionError> {
        if self.policy.listed_values.is_empty() {
            return Ok(None);
        }
        let listed: serde_json::Map<String, serde_json::Value> = self
            .policy
            .listed_values
            .iter()
            .filter_map(|path| {
                let value = path.value_in(&record.data)?;
                Some((path.as_str().to_owned(), value.clone()))
            })
            .collect();
        let json = serde_json::Value::Object(listed).to_string();
        if json.len() > MAX_LISTED_VALUES_LEN {
            return Err(SessionError::Unstorable(
                "its listed values (`with_listed_values`) take more than 4096 bytes as JSON: \
                 list a few short values, such as a device name",
            ));
        }
        Ok(Some(json))
    }

    fn user_key_of(&self, record: &SessionRecord<'_>) -> Result<Option<String>, SessionError> {
        let Some(path) = &self.policy.user_key else {
            return Ok(None);
        };
        match path.user_key_of(&record.data) {
            Some(key) if key.len() > MAX_USER_KEY_LEN => Err(SessionError::UserKeyTooLong {
                len: key.len(),
                limit: MAX_USER_KEY_LEN,
            }),
            Some(key) if !is_storable_user_key(&key) => Err(SessionError::Unstorable(
                "its user key (per-user index) contains a NUL character, which PostgreSQL \
                 cannot store; index a value without one",
            )),
            key => Ok(key),
        }
    }

    /// Runs `operation` within the policy's timeout, in its span.
    async fn run<T: Outcome>(
        &self,
        operation: Operation,
        work: impl Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        let span = tracing::debug_span!(
            "session_store",
            operation = operation.as_str(),
            table = %self.table_label,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.bounded(operation, work).instrument(span.clone()).await;
        span.record("duration_us", started.elapsed().as_micros() as u64);
        span.record(
            "outcome",
            match &result {
                Ok(value) => value.outcome(),
                Err(err) => err.outcome(),
            },
        );
        result
    }

    async fn bounded<T>(
        &self,
        operation: Operation,
        work: impl Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        let Some(limit) = self.policy.operation_timeout else {
            return work.await;
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SessionError::TimedOut {
                operation,
                after: limit,
            }),
        }
    }
}

/// The listed values stored with a row; a value no store of this version wrote (edited by hand,
/// or cut) is shown as none, with a warning that holds none of it.
fn listed_of(json: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let Some(json) = json else {
        return serde_json::Map::new();
    };
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(listed)) => listed,
        _ => {
            tracing::warn!(
                bytes = json.len(),
                "a session's listed values are not a JSON object; listing it without them"
            );
            serde_json::Map::new()
        }
    }
}

/// Whether every backend can store `user_key`: PostgreSQL's `text` holds no NUL character, so
/// none is stored anywhere (and none is looked up: no stored key has one).
fn is_storable_user_key(user_key: &str) -> bool {
    !user_key.contains('\0')
}

/// Refuses an expiry outside the years 1 to 9999 in UTC: what every backend stores (PostgreSQL
/// and its drivers convert to UTC and fail on instants `time` cannot hold there; MySQL's
/// `datetime` ends with 9999).
fn check_expiry(expiry: OffsetDateTime) -> Result<(), SessionError> {
    match expiry.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if (1..=9999).contains(&utc.year()) => Ok(()),
        _ => Err(SessionError::Unstorable(
            "its expiry lies outside the years 1 to 9999 (UTC), the range every session \
             database stores; give it a nearer expiry",
        )),
    }
}

/// What a create or a save wrote.
struct Written {
    /// The user the write gave one more session (a login), whose sessions the per-user limit
    /// then trims; `None` for any other write.
    login_of: Option<String>,
}

impl Outcome for Written {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

/// What a span records as an operation's `outcome`.
trait Outcome {
    fn outcome(&self) -> &'static str;
}

impl Outcome for () {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for bool {
    fn outcome(&self) -> &'static str {
        if *self {
            "ok"
        } else {
            "not_found"
        }
    }
}

impl Outcome for u64 {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl<T> Outcome for Vec<T> {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl<T> Outcome for Option<T> {
    fn outcome(&self) -> &'static str {
        match self {
            Some(_) => "found",
            None => "not_found",
        }
    }
}

impl SessionError {
    /// The error's kind, for spans.
    fn outcome(&self) -> &'static str {
        use crate::ports::RepositoryError;
        match self {
            Self::Database(RepositoryError::Unavailable(_)) => "unavailable",
            Self::Database(RepositoryError::MissingTable(_)) => "missing_table",
            Self::Database(RepositoryError::Statement(_)) => "statement_failed",
            Self::Database(RepositoryError::CorruptRow(_)) => "corrupt_row",
            Self::Encode(_) => "encode_failed",
            Self::Decode(_) => "decode_failed",
            Self::IdsExhausted { .. } => "ids_exhausted",
            Self::TooLarge { .. } => "too_large",
            Self::UserKeyTooLong { .. } => "user_key_too_long",
            Self::InvalidConfiguration(_) => "invalid_configuration",
            Self::Migration { .. } => "migration_failed",
            Self::Unstorable(_) => "unstorable",
            Self::Unreadable(_) => "refused_row",
            Self::TimedOut { .. } => "timed_out",
        }
    }
}

/// What a write evicts from the read cache.
#[derive(Debug)]
enum Evict {
    /// The session stored under this key.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    Key(String),
    /// Every session of this user.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    User(String),
}

/// Evicts on drop ([`SessionService::eviction`]).
#[cfg(feature = "cache")]
#[must_use]
struct Eviction {
    /// The cache, how long an abandoned write may still commit, and what to evict.
    pending: Option<(Arc<super::SessionCache>, Duration, Evict)>,
    done: bool,
}

/// Without the cache feature there is nothing to evict.
#[cfg(not(feature = "cache"))]
#[must_use]
struct Eviction;

impl Eviction {
    /// The write returned: evict now, once.
    #[cfg(feature = "cache")]
    fn done(mut self) {
        self.done = true;
    }

    /// The write returned having changed something (`changed`: evict now, once) or nothing
    /// (nothing to evict: a per-user eviction costs every cached entry a check).
    #[cfg(feature = "cache")]
    fn done_if(mut self, changed: bool) {
        if !changed {
            self.pending = None;
        }
        self.done = true;
    }

    #[cfg(not(feature = "cache"))]
    fn done(self) {}

    #[cfg(not(feature = "cache"))]
    fn done_if(self, _changed: bool) {}
}

#[cfg(feature = "cache")]
impl Drop for Eviction {
    fn drop(&mut self) {
        let Some((cache, settle, what)) = self.pending.take() else {
            return;
        };
        let apply = |cache: &super::SessionCache, what: &Evict| match what {
            Evict::Key(key) => cache.evict(key),
            Evict::User(user) => cache.evict_user(user),
        };
        apply(&cache, &what);
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = Arc::downgrade(&cache);
        runtime.spawn(async move {
            tokio::time::sleep(settle).await;
            if let Some(cache) = cache.upgrade() {
                apply(&cache, &what);
            }
        });
    }
}
