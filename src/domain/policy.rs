//! The knobs of the rules, set by the store's builder.

use std::time::Duration;

use super::{IdStorage, UserKeyPath};

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

/// The knobs of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// How many ids `create` tries before it gives up (at least 1).
    pub max_create_attempts: u32,
    /// The most rows one cleanup statement deletes (at least 1).
    pub cleanup_batch_size: u64,
    /// The longest one operation (a create with its retries, a save, a load, a delete, one
    /// cleanup batch, a health check) may take before it fails with `TimedOut`; `None` waits
    /// as long as the repository does.
    pub operation_timeout: Option<Duration>,
    /// The largest encoded session, in bytes, that `create` and `save` write and `load` reads;
    /// `None` for no limit (the database's own: 1 GiB for PostgreSQL's `bytea`).
    pub max_encoded_size: Option<usize>,
    /// What `load` does with a row its codec cannot decode: `false` fails with `Decode`;
    /// `true` logs a warning (without the row's data or id) and answers "no session".
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
    /// Long-lived sessions ("remember me"): a session whose value at this path is JSON `true`
    /// lives to this lifetime instead of `absolute_lifetime` (at least as long; only with one).
    pub long_lived: Option<(UserKeyPath, Duration)>,
    /// The per-user session limit: after a write that gives a user more live sessions than
    /// this, the least recently saved are deleted; `None` for no limit.
    pub max_sessions_per_user: Option<u64>,
    /// What the per-user limit does with a login beyond it: `false` ends the user's least
    /// recently active sessions (the trim), `true` refuses the login
    /// ([`SessionError::TooManySessions`](super::SessionError::TooManySessions)).
    pub refuse_at_limit: bool,
    /// The values the user's session list shows; none by default.
    pub listed_values: Vec<UserKeyPath>,
    /// The login history's retention: the cleanup deletes history rows older than this;
    /// `None` when the store keeps no history.
    pub history_retention: Option<Duration>,
}

impl Policy {
    /// How long a write abandoned by its store (timed out) may still commit: twice the
    /// operation timeout, 60 s without one.
    pub(crate) fn settle(&self) -> Duration {
        self.operation_timeout
            .map_or(Duration::from_secs(60), |limit| limit.saturating_mul(2))
    }
}

impl Default for Policy {
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
            long_lived: None,
            max_sessions_per_user: None,
            refuse_at_limit: false,
            listed_values: Vec::new(),
            history_retention: None,
        }
    }
}
