use crate::ports::{CodecError, RepositoryError};

/// Why a session operation failed, in the domain's terms.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The repository (the database) failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),

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
}
