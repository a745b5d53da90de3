use async_trait::async_trait;
use time::OffsetDateTime;

/// Where encoded sessions live: the storage operations the domain service needs, one database
/// statement each.
///
/// Sessions are addressed by their id in text form (the 22-character form `Id`'s `Display`
/// produces); `data` is what the store's [`Codec`](super::Codec) produced; `expires_at` is the
/// record's expiry as an absolute instant.
///
/// # Contract
///
/// - Every method is **one statement** (one round trip), atomic on its own. No method reads
///   before it writes: concurrency is the database's job (`ON CONFLICT`, not a check).
/// - "Now" is always passed in by the caller; an implementation never asks the database for the
///   time, so the result does not depend on the connection's time zone or the server's clock.
/// - A row whose `expires_at` is at or before `now` is **expired**: it is never returned, even
///   before anything deleted it.
/// - Errors carry no session data and no session id.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Inserts the session unless a row with this id exists (expired or not).
    ///
    /// Returns `true` if this call inserted it, `false` if the id was taken; an existing row is
    /// never modified.
    async fn insert_if_absent(
        &self,
        id: &str,
        data: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<bool, RepositoryError>;

    /// Inserts the session, or replaces the data and expiry of the row with this id.
    async fn upsert(
        &self,
        id: &str,
        data: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<(), RepositoryError>;

    /// The data of the row with this id if it expires after `now`; `None` if there is no such
    /// row or it has expired.
    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, RepositoryError>;

    /// Deletes the row with this id. Deleting a missing row is not an error.
    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError>;

    /// Deletes at most `limit` rows that expired at or before `now`, and returns how many it
    /// deleted. A row that does not match at the moment of deletion (say, a concurrent save
    /// extended it) is left alone.
    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError>;
}

/// A storage operation failed.
///
/// The message says what failed and hints at what to do; it never contains session data or a
/// session id.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The database could not be reached, or no connection was free in time.
    #[error("the session database is unavailable: {0}")]
    Unavailable(String),

    /// The session table does not exist: run `migrate()` (or the migration) first.
    #[error("the session table is missing (run the store's migration): {0}")]
    MissingTable(String),

    /// The database refused or failed the statement (permissions, constraint, syntax…).
    #[error("the session database failed a statement: {0}")]
    Statement(String),

    /// A row came back in a shape the repository cannot read (e.g. a column of the wrong type).
    #[error("the session table returned an unreadable row: {0}")]
    CorruptRow(String),
}
