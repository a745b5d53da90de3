use std::{future::Future, sync::Arc, time::Duration};

use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};

use super::{Operation, SessionError};
use crate::ports::{Codec, SessionRepository};

/// The default bound on one store operation: long enough for a loaded database, short enough
/// that requests fail fast instead of piling up when the database is away.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The knobs of the service's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePolicy {
    /// How many ids `create` tries before it gives up (at least 1).
    pub max_create_attempts: u32,
    /// The most rows one cleanup statement deletes (at least 1).
    pub cleanup_batch_size: u64,
    /// The longest one operation (a create with its retries, a save, a load, a delete, one
    /// cleanup batch, a health check) may take before it fails with
    /// [`SessionError::TimedOut`]; `None` waits as long as the repository does.
    pub operation_timeout: Option<Duration>,
    /// The largest encoded session `create` and `save` accept, in bytes; `None` for no limit
    /// (the database's own: 1 GiB for PostgreSQL's `bytea`). A larger one fails with
    /// [`SessionError::TooLarge`] before anything is sent.
    pub max_encoded_size: Option<usize>,
    /// What `load` does with a row its codec cannot decode: `false` (the default) fails with
    /// [`SessionError::Decode`]; `true` logs a warning (without the row's data or id) and
    /// answers "no session", so a corrupt row does not lock its user into errors: the user gets
    /// a fresh session, whose first save replaces the row.
    pub undecodable_as_absent: bool,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        Self {
            max_create_attempts: 8,
            cleanup_batch_size: 10_000,
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            max_encoded_size: None,
            undecodable_as_absent: false,
        }
    }
}

/// An id no session can have (session ids are 22 URL-safe base64 characters), for probes.
const HEALTH_PROBE_ID: &str = "~health-check~";

/// Applies the store's rules over a [`SessionRepository`] and a [`Codec`].
///
/// Cheap to clone: the repository and codec are shared.
#[derive(Debug)]
pub struct SessionService<R, C> {
    repository: Arc<R>,
    codec: Arc<C>,
    policy: ServicePolicy,
}

impl<R, C> Clone for SessionService<R, C> {
    fn clone(&self) -> Self {
        Self {
            repository: Arc::clone(&self.repository),
            codec: Arc::clone(&self.codec),
            policy: self.policy,
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
    pub fn policy(&self) -> ServicePolicy {
        self.policy
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
        }
    }

    /// The same rules over another codec.
    pub fn with_codec<C2: Codec>(self, codec: C2) -> SessionService<R, C2> {
        SessionService::from_parts(self.repository, Arc::new(codec), self.policy)
    }

    /// The same rules over another repository.
    pub fn with_repository<R2: SessionRepository>(self, repository: R2) -> SessionService<R2, C> {
        SessionService::from_parts(Arc::new(repository), self.codec, self.policy)
    }

    /// Stores a new session. When `record.id` is taken, `record.id` is replaced by a fresh id
    /// and the insert retried; the existing session is never touched.
    pub async fn create(&self, record: &mut Record) -> Result<(), SessionError> {
        self.bounded(Operation::Create, self.create_unbounded(record))
            .await
    }

    async fn create_unbounded(&self, record: &mut Record) -> Result<(), SessionError> {
        for attempt in 1..=self.policy.max_create_attempts {
            if attempt > 1 {
                record.id = Id::default();
            }
            // The id is part of the encoded record, so every attempt encodes again.
            let data = self.encode(record)?;
            let id = record.id.to_string();
            if self
                .repository
                .insert_if_absent(&id, &data, record.expiry_date)
                .await?
            {
                return Ok(());
            }
            tracing::debug!(attempt, "session id already taken; drawing a fresh one");
        }
        Err(SessionError::IdsExhausted {
            attempts: self.policy.max_create_attempts,
        })
    }

    /// Inserts or replaces the session with `record.id`.
    pub async fn save(&self, record: &Record) -> Result<(), SessionError> {
        let data = self.encode(record)?;
        let id = record.id.to_string();
        let upsert = self.repository.upsert(&id, &data, record.expiry_date);
        self.bounded(Operation::Save, async { Ok(upsert.await?) })
            .await
    }

    /// The session with `id`, unless it is missing or expired at `now`.
    pub async fn load_at(
        &self,
        id: &Id,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, SessionError> {
        let id = id.to_string();
        let find = self.repository.find_unexpired(&id, now);
        let Some(data) = self
            .bounded(Operation::Load, async { Ok(find.await?) })
            .await?
        else {
            return Ok(None);
        };
        let record = match self.codec.decode(&data) {
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
        // The row's expiry column and the encoded expiry agree when this store wrote both; a row
        // edited by hand may not, and an expired record must never come back.
        if record.expiry_date <= now {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// The session with `id`, unless it is missing or expired now.
    pub async fn load(&self, id: &Id) -> Result<Option<Record>, SessionError> {
        self.load_at(id, OffsetDateTime::now_utc()).await
    }

    /// Deletes the session with `id`; deleting a missing session succeeds.
    pub async fn delete(&self, id: &Id) -> Result<(), SessionError> {
        let id = id.to_string();
        let delete = self.repository.delete_by_id(&id);
        self.bounded(Operation::Delete, async { Ok(delete.await?) })
            .await
    }

    /// Deletes every session expired at `now`, batch after batch, and returns how many.
    pub async fn delete_expired_at(&self, now: OffsetDateTime) -> Result<u64, SessionError> {
        let limit = self.policy.cleanup_batch_size;
        let mut total = 0;
        loop {
            let batch = self.repository.delete_expired_batch(now, limit);
            let deleted = self
                .bounded(Operation::DeleteExpired, async { Ok(batch.await?) })
                .await?;
            total += deleted;
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
        let probe = self
            .repository
            .find_unexpired(HEALTH_PROBE_ID, OffsetDateTime::now_utc());
        self.bounded(Operation::Health, async { Ok(probe.await.map(drop)?) })
            .await
    }

    /// Encodes `record` and checks the size limit.
    fn encode(&self, record: &Record) -> Result<Vec<u8>, SessionError> {
        let data = self.codec.encode(record).map_err(SessionError::Encode)?;
        match self.policy.max_encoded_size {
            Some(limit) if data.len() > limit => Err(SessionError::TooLarge {
                size: data.len(),
                limit,
            }),
            _ => Ok(data),
        }
    }

    /// Runs `operation` within the policy's timeout.
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
