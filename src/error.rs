use crate::adapters::sql::IdentifierError;
#[cfg(test)]
use crate::{
    domain::Operation,
    ports::{CodecError, RepositoryError},
};

/// Everything that can go wrong in this crate: the domain's error, under the name users know.
pub use crate::domain::SessionError as SeaOrmStoreError;

/// Names and identifiers refused by the builder are configuration errors.
impl From<IdentifierError> for SeaOrmStoreError {
    fn from(err: IdentifierError) -> Self {
        Self::InvalidConfiguration(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower_sessions_core::session_store;

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
    fn a_refused_login_is_a_backend_error_recognised_through_tower_sessions() {
        let refused: session_store::Error = SeaOrmStoreError::TooManySessions { limit: 5 }.into();
        assert!(
            matches!(&refused, session_store::Error::Backend(m) if m.contains("limit")),
            "{refused:?}"
        );
        assert!(SeaOrmStoreError::is_too_many_sessions(&refused));
        // What `Session::save` returns in a handler.
        let in_a_handler = tower_sessions_core::session::Error::Store(refused);
        assert!(SeaOrmStoreError::is_too_many_sessions(&in_a_handler));
        let other: session_store::Error = SeaOrmStoreError::Contended { attempts: 3 }.into();
        assert!(!SeaOrmStoreError::is_too_many_sessions(&other));
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
