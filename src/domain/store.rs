//! The store: its rules for tower-sessions' four operations and the cleanup, over a
//! [`SessionRepository`], a [`Codec`], a [`Clock`] and, optionally, a [`ReadCache`]. The
//! builder (`src/store`) sets its policy; the tower-sessions impls (`src/compat`) call it.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use time::OffsetDateTime;

use super::{
    merge::{Base, Delta, Forged},
    policy::Policy,
    rows::{Written, NO_ID},
    run::Run,
    IdStorage, Operation, SessionError,
};
use crate::ports::{
    CachedSession, Clock, Codec, Evict, ReadCache, SessionId, SessionRecord, SessionRepository,
    SystemClock,
};

/// An id no session can have (session ids are 22 URL-safe base64 characters), for probes.
const HEALTH_PROBE_ID: &str = "~health-check~";

/// How many times a save re-reads the row and merges before it gives up
/// ([`SessionError::Contended`]): each attempt lost to another save that committed in between,
/// so this many in a row means hundreds of saves on one session at once.
const MAX_MERGE_ATTEMPTS: u32 = 256;

/// A tower-sessions store over any [`SessionRepository`] and [`Codec`]: the crate's one store
/// type.
///
/// Most applications name it through `PostgresStore`, `SqliteStore` or `MySqlStore` (or
/// `LeanPostgresStore`, feature `tokio-postgres`). Cloning is cheap: clones share the repository
/// (and so the connection pool), the codec and the cache.
///
/// Every operation runs in a `debug` span named `session_store` with the fields `operation`,
/// `table`, `outcome` and `duration_us`; never a session id or session data.
pub struct RepositoryStore<R, C> {
    pub(crate) repository: Arc<R>,
    pub(crate) codec: Arc<C>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) cache: Option<Arc<dyn ReadCache>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// What spans name the table: its quoted, schema-qualified name.
    pub(crate) table_label: Arc<str>,
    /// The live events' reader, shared by the clones ([`events`](Self::events)).
    pub(crate) events: Arc<super::EventFeed>,
}

impl<R, C> Clone for RepositoryStore<R, C> {
    fn clone(&self) -> Self {
        Self {
            repository: Arc::clone(&self.repository),
            codec: Arc::clone(&self.codec),
            policy: Arc::clone(&self.policy),
            cache: self.cache.clone(),
            clock: Arc::clone(&self.clock),
            table_label: Arc::clone(&self.table_label),
            events: Arc::clone(&self.events),
        }
    }
}

impl<R: fmt::Debug, C: fmt::Debug> fmt::Debug for RepositoryStore<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryStore")
            .field("repository", &self.repository)
            .field("codec", &self.codec)
            .field("policy", &self.policy)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// A store over `repository`, encoding with `codec`, with the default policy and the
    /// system clock.
    pub fn from_parts(repository: R, codec: C) -> Self {
        Self {
            repository: Arc::new(repository),
            codec: Arc::new(codec),
            policy: Arc::new(Policy::default()),
            cache: None,
            clock: Arc::new(SystemClock),
            table_label: Arc::from("sessions"),
            events: Arc::default(),
        }
    }

    /// Stores a new session. When `record.id` is taken, `record.id` is replaced by a fresh id
    /// and the insert retried; the existing session is never touched.
    ///
    /// Refused before anything is sent ([`SessionError::Unstorable`]) when the expiry lies
    /// outside the years 1 to 9999 in UTC, the range every backend stores. With a per-user
    /// session limit, a session created with a user (a login) is followed by the trim of that
    /// user's sessions, which never fails the create.
    pub(crate) async fn create_session(
        &self,
        record: &mut SessionRecord<'_>,
    ) -> Result<(), SessionError> {
        let now = self.clock.now();
        let written = self
            .run(Operation::Create, async {
                for attempt in 1..=self.policy.max_create_attempts {
                    if attempt > 1 {
                        record.id = SessionId::random();
                    }
                    // A plain row holds its id, so every attempt encodes again.
                    let row = self.row(self.key(record.id), record, now)?;
                    let user_key = row.user_key.clone();
                    let inserted = match self.refusing_limit().filter(|_| user_key.is_some()) {
                        Some(limit) => self
                            .repository
                            .insert_within_limit(
                                row,
                                limit,
                                now,
                                self.born_after(now),
                                self.long_born_after(now),
                            )
                            .await?
                            .ok_or(SessionError::TooManySessions { limit })?,
                        None => self.repository.insert_if_absent(row).await?,
                    };
                    if inserted {
                        return Ok(Written { login_of: user_key });
                    }
                    tracing::debug!(attempt, "session id already taken; drawing a fresh one");
                }
                Err(SessionError::IdsExhausted {
                    attempts: self.policy.max_create_attempts,
                })
            })
            .await?;
        self.trim_after_login(written, now).await;
        Ok(())
    }

    /// Writes what this request changed to the stored session with `record.id`, **if it is
    /// still stored**: a session deleted since it was loaded (logged out in another tab, "log
    /// out everywhere", signed out from another device) stays deleted, and the save succeeds
    /// having written nothing.
    ///
    /// Concurrent requests merge per key (`merge.rs`): the keys this request set or removed
    /// since its load are written, every other key keeps what the row holds now. Uncontended,
    /// that is one statement, an update of the row if it still holds the loaded version; after
    /// another save, the row is read again and this request's changes applied to it. A record
    /// without a base (cleared in this request) replaces the whole session; one whose base was
    /// not made by this process's load is refused ([`SessionError::Unstorable`]).
    ///
    /// With write avoidance on, a save that changes no value and no user key and moves the
    /// expiry by less than the window writes nothing. With a per-user session limit, a save
    /// that gives the session another user (a login) is followed by the trim of that user's
    /// sessions (a second statement, for those saves only), which never fails the save.
    pub(crate) async fn save_session(
        &self,
        record: &SessionRecord<'_>,
    ) -> Result<(), SessionError> {
        let now = self.clock.now();
        let key = self.key(record.id);
        let written = self
            .run(Operation::Save, async {
                // The base stays in the record: encoding, the delta and write avoidance all
                // leave its key out, so the session's values are not copied at every save.
                let read = Base::read(&key, &record.data).map_err(|Forged| {
                    SessionError::Unstorable(
                        "its reserved entry `tower-sessions-seaorm-store:base` was not made by \
                         this store's load (an application must not write that key)",
                    )
                });
                // The rare save without a base is boxed: inline, its update kept a room of its
                // own in every save's future, which outgrew what glibc serves from its
                // per-thread cache (1,032 bytes; tower-sessions boxes every operation's future).
                // The `?` stays in the `let`: a named `Option<Base>` would keep a room (80
                // bytes) beside the `Base` it holds.
                let Some(base) = read? else {
                    return Box::pin(self.replace(&key, record, now)).await;
                };
                if self.is_unchanged(&base, record)? {
                    return Ok(Written::default());
                }
                let eviction = self.eviction(|| Evict::Key(key.clone()));
                let held = Some((base.version, &base.user_key));
                let written = match self.update(&key, record, now, held).await? {
                    Some(written) => written,
                    // What this request changed is measured only now that another save
                    // overtook it: the uncontended save needs only the base's version. (The
                    // merge's future, an update's inside it, is boxed: every save would
                    // otherwise carry its room.)
                    None => {
                        let delta = base.delta(&record.data);
                        Box::pin(self.merge(&key, record, &delta, now)).await?
                    }
                };
                eviction.done();
                Ok(written)
            })
            .await?;
        self.trim_after_login(written, now).await;
        Ok(())
    }

    /// A save of a record without a base (cleared in this request): it replaces the whole
    /// session, if it is still stored.
    async fn replace(
        &self,
        key: &str,
        record: &SessionRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<Written, SessionError> {
        let eviction = self.eviction(|| Evict::Key(key.to_owned()));
        let written = self.update(key, record, now, None).await?;
        eviction.done();
        Ok(written.unwrap_or_default())
    }

    /// Whether write avoidance lets this save write nothing: no value changed, nor the user
    /// key, and the expiry moves later by less than the window.
    fn is_unchanged(&self, base: &Base, record: &SessionRecord<'_>) -> Result<bool, SessionError> {
        let Some(window) = self.policy.touch_after else {
            return Ok(false);
        };
        let Ok(window) = time::Duration::try_from(window) else {
            return Ok(false);
        };
        let moved = record.expiry_date - base.expiry;
        Ok((time::Duration::ZERO..window).contains(&moved)
            && self.user_key_of(record)? == base.user_key
            && base.delta(&record.data).is_empty())
    }

    /// Writes `record` over the row stored under `key` if it holds the version of `held` (the
    /// version and the user key the row had at it; any version with `None`); `None` when
    /// nothing was written.
    async fn update(
        &self,
        key: &str,
        record: &SessionRecord<'_>,
        now: OffsetDateTime,
        held: Option<(i64, &Option<String>)>,
    ) -> Result<Option<Written>, SessionError> {
        let row = self.row(key.to_owned(), record, now)?;
        // Refusing at the limit, a save that may give the session its user is a login, checked
        // against the limit under the user's lock. One that writes the version it loaded, with
        // the user the row had at that version, cannot (every write moves the version): it is
        // the ordinary one statement.
        if let Some(limit) = self.refusing_limit() {
            let keeps_user = held.is_some_and(|(_, user)| *user == row.user_key);
            if row.user_key.is_some() && !keeps_user {
                let key = row.id.clone();
                let version = held.map(|(version, _)| version);
                let written = self.repository.update_within_limit(
                    row,
                    version,
                    limit,
                    now,
                    self.born_after(now),
                    self.long_born_after(now),
                );
                return match written.await? {
                    None => self.refused(&key, version, limit, now).await,
                    Some(true) => Ok(Some(Written::default())),
                    Some(false) => Ok(None),
                };
            }
        }
        // Only a save with a user can give a user one more session.
        let limited = self.policy.max_sessions_per_user.is_some()
            && !self.policy.refuse_at_limit
            && row.user_key.is_some();
        // With the history, a save that may sign someone in or out reports (and logs); one
        // checked against a version whose user key it keeps cannot: every write moves the
        // version.
        let may_change_user = held.is_none_or(|(_, user)| *user != row.user_key);
        let logged = self.policy.history_retention.is_some() && may_change_user;
        let user_key = row.user_key.clone();
        let update = self.repository.update_if_present(
            row,
            held.map(|(version, _)| version),
            limited || logged,
        );
        Ok(update.await?.map(|user_changed| Written {
            login_of: user_key.filter(|_| user_changed && limited),
        }))
    }

    /// Another save overtook this one: applies `delta` to what the row holds now and writes
    /// that, again and again while other saves keep overtaking it. A row gone (or no longer
    /// live) is left gone.
    async fn merge(
        &self,
        key: &str,
        record: &SessionRecord<'_>,
        delta: &Delta,
        now: OffsetDateTime,
    ) -> Result<Written, SessionError> {
        for attempt in 1..=MAX_MERGE_ATTEMPTS {
            tracing::debug!(attempt, "another save overtook this one; merging");
            let found = self.repository.find_unexpired(
                key,
                now,
                self.born_after(now),
                self.long_born_after(now),
            );
            let Some(found) = found.await? else {
                return Ok(Written::default());
            };
            let Some(mut current) = self.accept(record.id, key, found.data, now)? else {
                return Ok(Written::default());
            };
            delta.apply(current.data.to_mut());
            current.expiry_date = record.expiry_date;
            let held = Some((found.version, &found.user_key));
            if let Some(written) = self.update(key, &current, now, held).await? {
                return Ok(written);
            }
        }
        Err(SessionError::Contended {
            attempts: MAX_MERGE_ATTEMPTS,
        })
    }

    /// A save refused at the per-user limit: [`SessionError::TooManySessions`], unless the
    /// save would have written nothing anyway (one read, on this path only): a session deleted
    /// meanwhile stays deleted and its save succeeds, as any save of it does; one another save
    /// moved on from `version` is merged again (`None`), and checked against the limit anew.
    async fn refused(
        &self,
        key: &str,
        version: Option<i64>,
        limit: u64,
        now: OffsetDateTime,
    ) -> Result<Option<Written>, SessionError> {
        let found = self.repository.find_unexpired(
            key,
            now,
            self.born_after(now),
            self.long_born_after(now),
        );
        match found.await? {
            None => Ok(Some(Written::default())),
            Some(found) if version.is_some_and(|version| version != found.version) => Ok(None),
            Some(_) => Err(SessionError::TooManySessions { limit }),
        }
    }

    /// The per-user limit, when the store refuses logins at it (rather than trimming).
    fn refusing_limit(&self) -> Option<u64> {
        self.policy
            .max_sessions_per_user
            .filter(|_| self.policy.refuse_at_limit)
    }

    /// The session with `id`, unless it is missing or expired: from the cache when it holds
    /// it, else read (and cached, unless an eviction overtook the read).
    pub(crate) async fn load_session(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionRecord<'static>>, SessionError> {
        let now = self.clock.now();
        let key = self.key(id);
        let cache = self.cache.as_deref();
        if let Some(record) = cache.and_then(|cache| cache.get(&key, now)) {
            return Ok(Some(record));
        }
        let ticket = cache.and_then(|cache| cache.ticket(&key));
        self.run(Operation::Load, async {
            let (born_after, long) = (self.born_after(now), self.long_born_after(now));
            let Some(found) = self
                .repository
                .find_unexpired(&key, now, born_after, long)
                .await?
            else {
                return Ok(None);
            };
            let Some(mut record) = self.accept(id, &key, found.data, now)? else {
                return Ok(None);
            };
            // What this request's save will measure its changes against; cached with the
            // record, so a cached load's save merges from the version it was read at.
            let base = Base::of(
                &key,
                &record.data,
                found.version,
                record.expiry_date,
                found.user_key,
            );
            base.attach(record.data.to_mut());
            if let (Some(cache), Some(ticket)) = (cache, ticket) {
                let lifetime_end = match found.created_at {
                    Some(created_at) => {
                        self.lifetime_end(created_at, found.long_lived.unwrap_or(false))
                    }
                    // Not read: none is needed without an absolute lifetime. With one, a
                    // repository that read no age gets its session served no longer than now.
                    None => born_after.map(|_| now),
                };
                let valid_until =
                    lifetime_end.map_or(record.expiry_date, |end| end.min(record.expiry_date));
                let entry = CachedSession {
                    record: record.clone(),
                    valid_until,
                    user_key: self.user_key_of(&record).ok().flatten(),
                };
                cache.insert(ticket, key, entry);
            }
            Ok(Some(record))
        })
        .await
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
    /// `with_undecodable_as_absent(true)`.
    fn refuse<T>(&self, reason: String) -> Result<Option<T>, SessionError> {
        if self.policy.undecodable_as_absent {
            tracing::warn!(%reason, "refused a stored session; treating it as absent");
            return Ok(None);
        }
        Err(SessionError::Unreadable(reason))
    }

    /// Deletes the session with `id`; deleting a missing session succeeds.
    pub(crate) async fn delete_session(&self, id: SessionId) -> Result<(), SessionError> {
        let key = self.key(id);
        self.run(Operation::Delete, async {
            let eviction = self.eviction(|| Evict::Key(key.clone()));
            self.repository.delete_by_id(&key).await?;
            eviction.done();
            Ok(())
        })
        .await
    }

    /// Deletes every expired session, in batches, and returns how many it deleted.
    pub async fn delete_expired_sessions(&self) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let limit = self.policy.cleanup_batch_size;
        let (born_before, long_born_before) = (self.born_after(now), self.long_born_after(now));
        let mut total = 0;
        loop {
            let deleted = self
                .run(Operation::DeleteExpired, async {
                    let batch = self.repository.delete_expired_batch(
                        now,
                        born_before,
                        long_born_before,
                        limit,
                    );
                    Ok(batch.await?)
                })
                .await?;
            total = u64::saturating_add(total, deleted);
            if deleted < limit {
                break;
            }
        }
        self.delete_old_history(now).await?;
        Ok(total)
    }

    /// Checks that the session table answers, for readiness probes: one indexed lookup of an id
    /// no session has, bounded by the operation timeout. Cheap enough to call every few seconds.
    ///
    /// The error says what failed: [`RepositoryError::Unavailable`] (cannot connect),
    /// [`RepositoryError::MissingTable`] (not migrated), [`SessionError::TimedOut`].
    ///
    /// [`RepositoryError::Unavailable`]: crate::repository::RepositoryError::Unavailable
    /// [`RepositoryError::MissingTable`]: crate::repository::RepositoryError::MissingTable
    pub async fn health(&self) -> Result<(), SessionError> {
        self.run(Operation::Health, async {
            let probe =
                self.repository
                    .find_unexpired(HEALTH_PROBE_ID, self.clock.now(), None, None);
            Ok(probe.await.map(drop)?)
        })
        .await
    }
}

impl<R, C> RepositoryStore<R, C> {
    /// The repository the store writes to.
    pub fn repository(&self) -> &R {
        &self.repository
    }

    /// The codec the store encodes with.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The repository key of `id`.
    pub(crate) fn key(&self, id: SessionId) -> String {
        self.policy.id_storage.key(id)
    }

    pub(crate) fn hashes_ids(&self) -> bool {
        self.policy.id_storage == IdStorage::Hashed
    }

    /// The instant at or before which a session was created too long ago to live at `now`
    /// (the absolute lifetime); `None` without one.
    pub(crate) fn born_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let lifetime = time::Duration::try_from(self.policy.absolute_lifetime?).ok()?;
        now.checked_sub(lifetime)
    }

    /// The instant at or before which a long-lived session was created too long ago to live at
    /// `now` (its own lifetime, [`Policy::long_lived`]); `None` without one.
    pub(crate) fn long_born_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let short = self.policy.absolute_lifetime?;
        let (_, long) = self.policy.long_lived.as_ref()?;
        now.checked_sub(time::Duration::try_from((*long).max(short)).ok()?)
    }

    /// When a session created at `created_at` (long-lived or not) reaches its absolute
    /// lifetime; `None` without one.
    pub(crate) fn lifetime_end(
        &self,
        created_at: OffsetDateTime,
        long_lived: bool,
    ) -> Option<OffsetDateTime> {
        let lifetime = match &self.policy.long_lived {
            Some((_, long)) if long_lived => (*long).max(self.policy.absolute_lifetime?),
            _ => self.policy.absolute_lifetime?,
        };
        created_at.checked_add(time::Duration::try_from(lifetime).ok()?)
    }

    /// What evicts `what()` from the cache when it drops: when the write it guards returns,
    /// fails or is abandoned (a time-out), so no outcome leaves a stale entry. A write that did
    /// not finish ([`Eviction::done`] not called) may still commit later: the eviction is
    /// repeated once it can no longer be running. Without a cache, nothing (and `what` is not
    /// called).
    pub(crate) fn eviction(&self, what: impl FnOnce() -> Evict) -> Eviction {
        Eviction {
            pending: self.cache.clone().map(|cache| (cache, what())),
            settle: self.policy.settle(),
            done: false,
        }
    }

    /// Runs `operation` within the policy's timeout, in its span ([`Run`]).
    pub(crate) fn run<T: Outcome, F: Future<Output = Result<T, SessionError>>>(
        &self,
        operation: Operation,
        work: F,
    ) -> Run<F> {
        let span = tracing::debug_span!(
            "session_store",
            operation = operation.as_str(),
            table = %self.table_label,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        Run::new(operation, work, self.policy.operation_timeout, span)
    }
}

/// Evicts on drop ([`RepositoryStore::eviction`]).
#[must_use]
pub(crate) struct Eviction {
    /// The cache and what to evict from it; `None` without a cache, or nothing to evict.
    pending: Option<(Arc<dyn ReadCache>, Evict)>,
    /// How long an abandoned write may still commit.
    settle: Duration,
    done: bool,
}

impl Eviction {
    /// The write returned: evict now, once.
    pub(crate) fn done(mut self) {
        self.done = true;
    }

    /// The write returned having changed something (`changed`: evict now, once) or nothing
    /// (nothing to evict: a per-user eviction costs every cached entry a check).
    pub(crate) fn done_if(mut self, changed: bool) {
        if !changed {
            self.pending = None;
        }
        self.done = true;
    }
}

impl Drop for Eviction {
    fn drop(&mut self) {
        let Some((cache, what)) = self.pending.take() else {
            return;
        };
        cache.forget(&what);
        if !self.done {
            cache.evict_later(what, self.settle);
        }
    }
}

/// What a span records as an operation's `outcome`.
pub(crate) trait Outcome {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for () {}
impl Outcome for u64 {}
impl Outcome for (u64, u64) {}
impl<T> Outcome for Vec<T> {}
impl Outcome for Written {}

impl Outcome for bool {
    fn outcome(&self) -> &'static str {
        if *self {
            "ok"
        } else {
            "not_found"
        }
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
