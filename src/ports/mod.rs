//! The seams of the store: what a session record is ([`SessionRecord`]), how it becomes bytes
//! ([`Codec`]), where those bytes live ([`SessionRepository`]), and the two things the rules read
//! from the outside: the time ([`Clock`]) and, optionally, a read cache ([`ReadCache`]).
//!
//! Traits and the types they exchange, nothing else. The rules ([`crate::domain`]) are written
//! against them; the adapters ([`crate::adapters`]) implement them. Nothing here knows about SQL
//! or SeaORM, and nothing here imports the domain.

pub(crate) mod cache;
mod clock;
mod codec;
mod events;
mod record;
mod repository;

pub(crate) use cache::{CachedSession, Evict, ReadCache};
pub(crate) use clock::{Clock, SystemClock};
pub use codec::{Codec, CodecError};
pub(crate) use events::{HistoryCarrier, HistoryEntry, HistoryFeed, TakenCursor};
pub use record::{SessionData, SessionId, SessionRecord};
#[cfg(any(test, feature = "testing"))]
pub use repository::MockSessionRepository;
pub use repository::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow};
