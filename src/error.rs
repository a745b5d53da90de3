use std::time::Duration;

use tower_sessions_core::session_store;

use crate::{
    adapters::sea_orm::IdentifierError,
    domain::{Operation, SessionError},
    ports::{CodecError, RepositoryError},
};

/// Everything that can go wrong in this crate.
///
/// Messages say what failed and what to do about it; none contains session data or a session id.
/// At the `SessionStore` seam it becomes a [`session_store::Error`]: encoding failures become
/// `Encode`, decoding failures `Decode`, everything else `Backend`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeaOrmStoreError {
    /// The database failed (unreachable, a statement refused, an unreadable row).
    #[error(transparent)]
    Database(#[from] RepositoryError),

    /// The session could not be encoded by the store's codec.
    #[error("could not encode the session: {0}")]
    Encode(#[source] CodecError),

    /// A stored session could not be decoded by the store's codec: the row is corrupt, truncated
    /// or was written by another codec.
    #[error("could not decode a stored session: {0}")]
    Decode(#[source] CodecError),

    /// The encoded session is larger than the store's limit
    /// ([`with_max_session_size`](crate::RepositoryStore::with_max_session_size)); nothing was
    /// written. An `Encode` error for tower-sessions.
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

    /// The session's user key (per-user index, see
    /// [`with_user_key`](crate::RepositoryStore::with_user_key)) is longer than
    /// [`MAX_USER_KEY_LEN`](crate::domain::MAX_USER_KEY_LEN); nothing was written. An `Encode`
    /// error for tower-sessions.
    #[error(
        "the session's user key is {len} bytes, over the per-user index's limit of {limit}; \
         index a shorter value (the user's id)"
    )]
    UserKeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },

    /// The session cannot be stored as it is: an expiry outside the range every backend keeps
    /// (years 1 to 9999 in UTC), or a user key holding a NUL character. Nothing was written.
    /// An `Encode` error for tower-sessions.
    #[error("could not store the session: {0}")]
    Unstorable(&'static str),

    /// A stored row was refused: larger than the store's limit
    /// ([`with_max_session_size`](crate::RepositoryStore::with_max_session_size)), checked
    /// before decoding, or holding another session's record. A `Decode` error for
    /// tower-sessions.
    #[error("refused a stored session: {0}")]
    Unreadable(String),

    /// A builder option was refused (the message says which and the allowed range).
    #[error("invalid store configuration: {0}")]
    InvalidConfiguration(String),

    /// A schema or table name was refused.
    #[error(transparent)]
    InvalidIdentifier(#[from] IdentifierError),

    /// `create` drew several fresh ids and every one was taken.
    #[error(
        "could not create the session: {attempts} freshly drawn session ids were all taken; \
         check the id generator and the session table"
    )]
    IdsExhausted {
        /// How many ids were tried.
        attempts: u32,
    },

    /// An operation did not finish within its timeout (see
    /// [`with_operation_timeout`](crate::RepositoryStore::with_operation_timeout)).
    ///
    /// **Its outcome is unknown**: a timed-out save, create or delete may still be applied
    /// when the database gets to it, unless the server bounds statements below the store's
    /// timeout (see the README's pool section) or the repository cancels it.
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

    /// `migrate` failed.
    #[error("migrating the session table failed after {attempts} attempt(s): {message}")]
    Migration {
        /// How many times it started over after losing a race to a concurrent migration.
        attempts: u32,
        /// What the database said.
        message: String,
    },
}

impl From<SessionError> for SeaOrmStoreError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::UserIndexDisabled => Self::InvalidConfiguration(err.to_string()),
            SessionError::Repository(e) => Self::Database(e),
            SessionError::Encode(e) => Self::Encode(e),
            SessionError::Decode(e) => Self::Decode(e),
            SessionError::IdsExhausted { attempts } => Self::IdsExhausted { attempts },
            SessionError::TimedOut { operation, after } => Self::TimedOut { operation, after },
            SessionError::TooLarge { size, limit } => Self::TooLarge { size, limit },
            SessionError::UserKeyTooLong { len, limit } => Self::UserKeyTooLong { len, limit },
            SessionError::Unstorable(reason) => Self::Unstorable(reason),
            SessionError::Unreadable(reason) => Self::Unreadable(reason),
        }
    }
}

impl SeaOrmStoreError {
    /// Whether tower-sessions sees this as an `Encode` error: the session could not be turned
    /// into a row, and nothing was written.
    pub(crate) fn is_encode(&self) -> bool {
        matches!(
            self,
            Self::Encode(_)
                | Self::TooLarge { .. }
                | Self::UserKeyTooLong { .. }
                | Self::Unstorable(_)
        )
    }

    /// Whether tower-sessions sees this as a `Decode` error: a stored row is not a session
    /// this store returns.
    pub(crate) fn is_decode(&self) -> bool {
        matches!(self, Self::Decode(_) | Self::Unreadable(_))
    }
}

impl From<SeaOrmStoreError> for session_store::Error {
    fn from(err: SeaOrmStoreError) -> Self {
        match err {
            _ if err.is_encode() => Self::Encode(err.to_string()),
            _ if err.is_decode() => Self::Decode(err.to_string()),
            _ => Self::Backend(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_failures_keep_their_kind_at_the_seam() {
        let encode: session_store::Error =
            SeaOrmStoreError::Encode(CodecError::new("X", "too deep")).into();
        assert!(matches!(encode, session_store::Error::Encode(m) if m.contains("too deep")));
        let decode: session_store::Error =
            SeaOrmStoreError::Decode(CodecError::new("X", "truncated")).into();
        assert!(matches!(decode, session_store::Error::Decode(m) if m.contains("truncated")));
    }

    #[test]
    fn everything_else_is_a_backend_error() {
        let db: session_store::Error =
            SeaOrmStoreError::Database(RepositoryError::Unavailable("refused".into())).into();
        assert!(matches!(db, session_store::Error::Backend(m) if m.contains("unavailable")));
        let ids: session_store::Error = SeaOrmStoreError::IdsExhausted { attempts: 8 }.into();
        assert!(matches!(ids, session_store::Error::Backend(m) if m.contains("8 freshly drawn")));
        let slow: session_store::Error = SeaOrmStoreError::TimedOut {
            operation: Operation::Load,
            after: Duration::from_millis(1500),
        }
        .into();
        assert!(
            matches!(&slow, session_store::Error::Backend(m) if m.contains("load timed out after 1500 ms")),
            "{slow:?}"
        );
        assert!(
            matches!(&slow, session_store::Error::Backend(m) if m.contains("whether it took effect is unknown")),
            "a timeout says its outcome is unknown: {slow:?}"
        );
    }

    #[test]
    fn unstorable_sessions_are_encode_errors_and_refused_rows_decode_errors() {
        let unstorable: session_store::Error =
            SeaOrmStoreError::Unstorable("its expiry is out of range").into();
        assert!(
            matches!(unstorable, session_store::Error::Encode(m) if m.contains("out of range"))
        );
        let refused: session_store::Error =
            SeaOrmStoreError::Unreadable("too large".to_owned()).into();
        assert!(matches!(refused, session_store::Error::Decode(m) if m.contains("too large")));
    }
}
