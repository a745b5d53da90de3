//! The two seams of the store: how a session record becomes bytes ([`Codec`]) and where those
//! bytes live ([`SessionRepository`]).
//!
//! Traits only. The domain service ([`crate::domain`]) is written against them; the adapters
//! ([`crate::adapters`]) implement them. Nothing here knows about SQL or SeaORM.

mod codec;
mod repository;

pub use codec::{Codec, CodecError};
#[cfg(any(test, feature = "testing"))]
pub use repository::MockSessionRepository;
pub use repository::{
    FoundRow, RepositoryError, SessionRepository, SessionRow, Unchanged, UserSessionRow,
};
