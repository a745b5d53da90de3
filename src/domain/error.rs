use std::{fmt, time::Duration};

use crate::ports::{CodecError, RepositoryError};

/// A store operation, as named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `SessionStore::create`.
    Create,
    /// `SessionStore::save`.
    Save,
    /// `SessionStore::load`.
    Load,
    /// `SessionStore::delete`.
    Delete,
    /// One batch of expired-session cleanup.
    DeleteExpired,
    /// The health check.
    Health,
    /// The table migration.
    Migrate,
    /// Listing a user's sessions (per-user index).
    ListUserSessions,
    /// Deleting a user's sessions (per-user index).
    DeleteUserSessions,
    /// Counting the live sessions (all, or a user's).
    CountSessions,
    /// One batch of ending the sessions created before an instant (all, or a user's).
    DeleteSessions,
}

impl Operation {
    /// The operation's name: `create`, `save`, `load`, `delete`, `delete_expired`, `health`,
    /// `migrate`, `list_user_sessions`, `delete_user_sessions`, `count_sessions`,
    /// `delete_sessions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Save => "save",
            Self::Load => "load",
            Self::Delete => "delete",
            Self::DeleteExpired => "delete_expired",
            Self::Health => "health",
            Self::Migrate => "migrate",
            Self::ListUserSessions => "list_user_sessions",
            Self::DeleteUserSessions => "delete_user_sessions",
            Self::CountSessions => "count_sessions",
            Self::DeleteSessions => "delete_sessions",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in the store: the crate's one error type, public as
/// `SeaOrmStoreError`.
///
/// Messages say what failed and what to do about it; none contains session data or a session
/// id. At the `SessionStore` seam it becomes a `session_store::Error`: a session that cannot be
/// turned into a row is `Encode`, a stored row that is not a session this store returns is
/// `Decode`, everything else `Backend`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The database failed (unreachable, a statement refused, an unreadable row).
    #[error(transparent)]
    Database(#[from] RepositoryError),

    /// The record could not be encoded.
    #[error("could not encode the session: {0}")]
    Encode(#[source] CodecError),

    /// A stored row could not be decoded.
    #[error("could not decode a stored session: {0}")]
    Decode(#[source] CodecError),

    /// Every id `create` drew was already taken. With random 128-bit ids this points to a broken
    /// random source or a repository that reports every insert as a collision.
    #[error(
        "could not create the session: {attempts} freshly drawn session ids were all taken; \
         check the id generator and the session table"
    )]
    IdsExhausted {
        /// How many ids were tried.
        attempts: u32,
    },

    /// The encoded session is larger than the store accepts.
    #[error(
        "the session is {size} bytes encoded, over the store's limit of {limit} bytes; \
         store less in the session or raise the limit"
    )]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// Every attempt of a save to merge its request's changes lost to another save of the same
    /// session that committed in between; nothing of this save was written. Hundreds of saves
    /// of one session at once, from a loop or a client hammering one cookie.
    #[error(
        "could not save the session: {attempts} attempts to merge this request's changes each \
         lost to another save of the same session; nothing was written"
    )]
    Contended {
        /// How many merges were tried.
        attempts: u32,
    },

    /// The session's user key (per-user index) is longer than the index stores.
    #[error(
        "the session's user key is {len} bytes, over the per-user index's limit of {limit}; \
         index a shorter value (the user's id)"
    )]
    UserKeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit: 255 bytes.
        limit: usize,
    },

    /// The session cannot be stored as it is (the reason says why, e.g. an expiry outside the
    /// range every backend keeps, or a user key holding a NUL character); nothing was written.
    #[error("could not store the session: {0}")]
    Unstorable(&'static str),

    /// A stored row was refused before or after decoding: larger than the store's limit, or
    /// holding the record of another session (copied or tampered with). Never returned as a
    /// session.
    #[error("refused a stored session: {0}")]
    Unreadable(String),

    /// A login was refused: the user has as many live sessions as the per-user limit allows,
    /// and the store refuses logins at the limit
    /// ([`refusing_logins_at_the_limit`](crate::RepositoryStore::refusing_logins_at_the_limit)).
    /// Nothing was written. Tell the person they are signed in on too many devices (and where
    /// to sign one out); [`is_too_many_sessions`](Self::is_too_many_sessions) recognises it
    /// in the error tower-sessions returns. The message names neither the user nor the
    /// session.
    #[error(
        "{}: the user already has {limit} live session(s), the per-user limit, and the store \
         refuses logins at the limit; nothing was written (end one of the user's sessions to \
         sign in)",
        TOO_MANY_SESSIONS
    )]
    TooManySessions {
        /// The per-user limit.
        limit: u64,
    },

    /// A builder option was refused, or a call needs an option the store was built without
    /// (the message says which, and what to do).
    #[error("invalid store configuration: {0}")]
    InvalidConfiguration(String),

    /// `migrate` failed.
    #[error("migrating the session table failed after {attempts} attempt(s): {message}")]
    Migration {
        /// How many times it started over after losing a race to a concurrent migration.
        attempts: u32,
        /// What the database said.
        message: String,
    },

    /// The operation did not finish within the operation timeout; the database is probably
    /// unreachable, overloaded, or waiting on a lock.
    ///
    /// **Its outcome is unknown**: a write may still be applied by the database after this
    /// error, unless the server bounds its statements below the store's timeout
    /// (`statement_timeout`, `lock_timeout`) or the repository cancels it (the tokio-postgres
    /// repository does).
    #[error(
        "session {operation} timed out after {} ms (the database is unreachable, overloaded or \
         waiting on a lock); whether it took effect is unknown",
        after.as_millis()
    )]
    TimedOut {
        /// Which operation.
        operation: Operation,
        /// The timeout that elapsed.
        after: Duration,
    },
}

/// How the message of [`SessionError::TooManySessions`] begins, in every form it takes (a
/// `session_store::Error::Backend` holds the message alone).
const TOO_MANY_SESSIONS: &str = "too many sessions for one user";

impl SessionError {
    /// Whether `err` is, or was made from, [`SessionError::TooManySessions`]: a login refused
    /// at the per-user limit. `err` is this error itself, or what tower-sessions made of it
    /// (its `session::Error` from `Session::save`, the `session_store::Error` of a
    /// `SessionStore` call), of either tower-sessions version.
    ///
    /// tower-sessions keeps only the message of a store's error, so beyond this crate's own
    /// type the message is what is recognised; its beginning is fixed for that.
    ///
    /// ```
    /// use tower_sessions_seaorm_store::{session_store, SeaOrmStoreError};
    ///
    /// let refused: session_store::Error = SeaOrmStoreError::TooManySessions { limit: 3 }.into();
    /// assert!(SeaOrmStoreError::is_too_many_sessions(&refused));
    /// let other = session_store::Error::Backend("the database is unavailable".to_owned());
    /// assert!(!SeaOrmStoreError::is_too_many_sessions(&other));
    /// ```
    pub fn is_too_many_sessions(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(own) = err.downcast_ref::<Self>() {
                return matches!(own, Self::TooManySessions { .. });
            }
            if err.to_string().starts_with(TOO_MANY_SESSIONS) {
                return true;
            }
            next = err.source();
        }
        false
    }

    /// The error's kind, for spans.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Database(RepositoryError::Unavailable(_)) => "unavailable",
            Self::Database(RepositoryError::MissingTable(_)) => "missing_table",
            Self::Database(RepositoryError::Statement(_)) => "statement_failed",
            Self::Database(RepositoryError::CorruptRow(_)) => "corrupt_row",
            Self::Encode(_) => "encode_failed",
            Self::Decode(_) => "decode_failed",
            Self::IdsExhausted { .. } => "ids_exhausted",
            Self::TooLarge { .. } => "too_large",
            Self::Contended { .. } => "contended",
            Self::UserKeyTooLong { .. } => "user_key_too_long",
            Self::TooManySessions { .. } => "too_many_sessions",
            Self::InvalidConfiguration(_) => "invalid_configuration",
            Self::Migration { .. } => "migration_failed",
            Self::Unstorable(_) => "unstorable",
            Self::Unreadable(_) => "refused_row",
            Self::TimedOut { .. } => "timed_out",
        }
    }
}
