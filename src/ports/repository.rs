use async_trait::async_trait;
use time::OffsetDateTime;

/// One session as the repository stores it.
///
/// Owned, and passed by value: the store builds it for one call (the encoded bytes are moved
/// in, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The key the session is stored under: its id in text form (the 22 characters `Id`'s
    /// `Display` produces), or a SHA-256 of it when the store hashes ids (64 hex digits).
    pub id: String,
    /// What the store's [`Codec`](super::Codec) produced.
    pub data: Vec<u8>,
    /// The record's expiry, as an absolute instant.
    pub expires_at: OffsetDateTime,
    /// The per-user index's key (`None`: a session without a user, or a store without the
    /// index). Stored by every insert and update, `None` included, so a logged-out session
    /// leaves its user's list.
    pub user_key: Option<String>,
    /// When the session was created: written by `insert_if_absent` only, never by an update
    /// (the absolute lifetime counts from it).
    pub created_at: OffsetDateTime,
    /// When this write happens ("now"): the session's last activity in its user's list.
    pub saved_at: OffsetDateTime,
    /// The values the user's session list shows, as a JSON object (`None` when the store lists
    /// none).
    pub listed_values: Option<String>,
    /// Whether the application marked the session long-lived ("remember me"): it then lives to
    /// the long lifetime (`long_born_after`) rather than the absolute lifetime (`born_after`).
    /// Written by every insert and update.
    pub long_lived: bool,
}

/// A live session of one user, as [`SessionRepository::find_unexpired_by_user`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSessionRow {
    /// The key the session is stored under (see [`SessionRow::id`]).
    pub id: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// When it was created ([`SessionRow::created_at`]).
    pub created_at: OffsetDateTime,
    /// When it was last written ([`SessionRow::saved_at`]).
    pub saved_at: OffsetDateTime,
    /// Its listed values ([`SessionRow::listed_values`]).
    pub listed_values: Option<String>,
    /// Whether it is long-lived ([`SessionRow::long_lived`]).
    pub long_lived: bool,
}

/// A live row as [`SessionRepository::find_unexpired`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRow {
    /// What the store's [`Codec`](super::Codec) produced.
    pub data: Vec<u8>,
    /// When the session was created ([`SessionRow::created_at`]), read when `find_unexpired`
    /// is given a `born_after` (the store has an absolute lifetime): a cached load stops serving
    /// the session once that lifetime is over. Without one the store does not use it, and a
    /// repository may leave it `None` (the SQL repositories then read two columns fewer).
    pub created_at: Option<OffsetDateTime>,
    /// The row's version: 0 when inserted, one more at every update. A save of what was
    /// loaded at this version writes only if the row still holds it
    /// ([`SessionRepository::update_if_present`]).
    pub version: i64,
    /// The row's user key ([`SessionRow::user_key`]).
    pub user_key: Option<String>,
    /// Whether it is long-lived ([`SessionRow::long_lived`]): a cached load stops serving it at
    /// the long lifetime's end instead. Read, or left `None`, with `created_at`.
    pub long_lived: Option<bool>,
}

/// Where encoded sessions live: the storage operations the store needs, one database
/// statement each.
///
/// Sessions are addressed by a key in text form (see [`SessionRow::id`]); `data` is what the
/// store's [`Codec`](super::Codec) produced; `expires_at` is the record's expiry as an absolute
/// instant.
///
/// # Contract
///
/// - Every method is **one statement** (one round trip), atomic on its own. No method reads
///   before it writes: concurrency is the database's job (`ON CONFLICT`, not a check). The
///   per-user deletes ([`trim_user_sessions`](Self::trim_user_sessions),
///   [`delete_by_user`](Self::delete_by_user)) may take two on a database whose one statement would lock rows out of key order (the
///   crate's MySQL/MariaDB repository: a plain read of the keys, then a delete by key that
///   checks every condition again); they run at a login or a logout, never in an ordinary save.
///   The writes within the refusing per-user limit
///   ([`insert_within_limit`](Self::insert_within_limit),
///   [`update_within_limit`](Self::update_within_limit)) are one transaction of a few: a lock,
///   a count, the write; they run at a login only.
/// - "Now" is always passed in by the caller; an implementation never asks the database for the
///   time, so the result does not depend on the connection's time zone or the server's clock.
/// - A row whose `expires_at` is at or before `now` is **expired**: it is never returned, even
///   before anything deleted it. So is a row created at or before `born_after`, when given (an
///   absolute lifetime), unless it is long-lived ([`SessionRow::long_lived`]) and was created
///   after `long_born_after`, when that is given too (its own, longer lifetime): the rows live
///   at `now` are those with `expires_at > now AND (created_at > born_after OR (long_lived AND
///   created_at > long_born_after))`. Without `born_after`, `long_born_after` is ignored.
/// - Errors carry no session data and no session id.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Inserts the session unless a row with this id exists (expired or not).
    ///
    /// Returns `true` if this call inserted it, `false` if the id was taken; an existing row is
    /// never modified.
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError>;

    /// Replaces the data, expiry, user key, last save and listed values of the row with this
    /// id, **if it exists** (expired or not) and, with `expected_version`, **if it still holds
    /// that version**; adds one to its version. A missing row stays missing, and `created_at`
    /// is never written.
    ///
    /// This is what a save is: tower-sessions saves only sessions it found at load, so a row
    /// that is gone by now was deleted or revoked (a logout, "log out everywhere"), and writing
    /// it back would log that device in again. Never an insert, never an upsert.
    ///
    /// - `expected_version` (compare-and-swap): `Some(v)` writes only a row whose version is
    ///   `v`, in the same statement (no read first), so a save of what was loaded at `v` never
    ///   overwrites another save that happened since; the store then reads the row again and
    ///   merges. `None` writes whatever the version.
    /// - `report_user_change` (the per-user limit): asks whether the write gave the row
    ///   another user key than it had, so the store trims that user's sessions. The answer is
    ///   `true` when its previous user key differed from [`SessionRow::user_key`]. A repository
    ///   that cannot see the previous key within its one statement may answer `true` for every
    ///   row it wrote with a user (the crate's SQLite repository does); the cost is a trim that
    ///   ends nothing unless the user is over the limit. Without it the answer is `false`.
    ///
    /// With a login history, a save that may sign someone in or out is sent reporting: an
    /// unreported save checked against a version (`Some(v)`, `false`) is one that writes the
    /// user key the row holds at `v` (every write moves the version), so it logs nothing.
    ///
    /// Returns `None` when nothing was written (no such row, or another version), else
    /// `Some` of the answer to `report_user_change`.
    async fn update_if_present(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        report_user_change: bool,
    ) -> Result<Option<bool>, RepositoryError>;

    /// The data, creation instant, version, user key and marker of the row with this id if it
    /// is live at `now` (expires after `now`; `born_after` and `long_born_after` as in the
    /// contract); `None` if there is no such row.
    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError>;

    /// Deletes the row with this id. Deleting a missing row is not an error.
    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError>;

    /// Deletes at most `limit` rows that expired at or before `now` or, with `born_before`,
    /// were created at or before it (a long-lived row, with `long_born_before`: at or before
    /// that), and returns how many it deleted: exactly the rows that are not live (see the
    /// contract). A row that does not match at the moment of deletion (say, a concurrent save
    /// extended it or marked it long-lived) is left alone.
    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        long_born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError>;

    /// The live rows of `user_key` at `now` (per-user index; `born_after` and
    /// `long_born_after` as in the contract), in no particular order.
    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError>;

    /// Deletes the live rows of `user_key` (expiring after `now` and, with `born_after`,
    /// created after it), except the `keep` most recently saved ones (ties broken by key, the
    /// greater kept), and returns how many it deleted: the per-user session limit.
    ///
    /// A dead row (expired, or created at or before `born_after`) takes no slot: it is neither
    /// kept nor counted, and is left to the cleanup. A row deleted must still belong to
    /// `user_key` and still be live when it is deleted.
    ///
    /// **Never a deadlock with another operation of the port.** Concurrent trims of one user,
    /// saves, inserts and the per-user deletes below must all succeed: the crate's repositories
    /// decide the rows to delete without locking and lock them in key order (on MySQL and on a
    /// table distributed by Citus with a second statement, a delete by key: a trim follows a
    /// login only, never an ordinary save).
    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError>;

    /// [`insert_if_absent`](Self::insert_if_absent), **only if the row's user has fewer than
    /// `limit` live sessions** (expiring after `now` and, with `born_after`, created after it)
    /// other than this id: the per-user limit that refuses logins. `None` when it refused,
    /// having written nothing; else `Some` of what `insert_if_absent` answers.
    ///
    /// **Serialised per user**: concurrent calls for one user never leave it more than `limit`
    /// live sessions, and never deadlock (a count and a write in one snapshot would: each
    /// would count before the other's row commits). The crate's repositories take a lock
    /// named after the table and the user in a transaction, count, write and commit.
    ///
    /// The store calls it only for a row with a user. A repository that does not implement it
    /// (the default) fails, and so does every login of a store refusing at the limit.
    async fn insert_within_limit(
        &self,
        row: SessionRow,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        let _ = (row, limit, now, born_after, long_born_after);
        Err(no_refusing_limit())
    }

    /// [`update_if_present`](Self::update_if_present) (with `expected_version`, reporting
    /// nothing), **only if the row's user has fewer than `limit` live sessions other than
    /// this one**, serialised per user as
    /// [`insert_within_limit`](Self::insert_within_limit): a save that gives the session a
    /// user. `None` when it refused, having written nothing; else `Some(written)`, `false`
    /// when the row is missing or holds another version. A repository that does not
    /// implement it (the default) fails.
    async fn update_within_limit(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        let _ = (
            row,
            expected_version,
            limit,
            now,
            born_after,
            long_born_after,
        );
        Err(no_refusing_limit())
    }

    /// Deletes every row of `user_key`, expired or not, but the one with id `except` when
    /// given, and returns how many ("log out everywhere", "log out my other devices"). Like
    /// [`trim_user_sessions`](Self::trim_user_sessions), it locks the rows it deletes in key
    /// order, so the two never deadlock; a row that gains the user while the delete runs may
    /// survive it (it logged in after the logout).
    async fn delete_by_user<'a>(
        &self,
        user_key: &str,
        except: Option<&'a str>,
    ) -> Result<u64, RepositoryError>;

    /// Deletes the row with this id if it still belongs to `user_key`, and returns whether it
    /// did: a row that changed hands (or lost its user) since it was listed is left alone.
    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError>;

    /// The number of rows that expire after `now` and, with `born_after`, were created after
    /// it (exactly the rows [`find_unexpired`](Self::find_unexpired) returns): every live
    /// session or, with `user_key`, that user's (per-user index). One statement. A repository
    /// that does not implement it (the default) fails.
    async fn count_unexpired<'a>(
        &self,
        user_key: Option<&'a str>,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let _ = (user_key, now, born_after, long_born_after);
        Err(no_operator_calls())
    }

    /// One batch of "end every session created before `before`": deletes rows created
    /// strictly before `before`, expired or not, every user's or, with `user_key`, that
    /// user's only, among at most `limit` it finds; returns `(deleted, found)`.
    ///
    /// `found` is how many matching rows the batch found (at most `limit`): the caller runs
    /// another batch while `found == limit`. `deleted` may be fewer than `found` when another
    /// operation deleted a row first. The batch waits for a row another transaction holds
    /// (never skips it: a session being saved is ended all the same) and, like
    /// [`trim_user_sessions`](Self::trim_user_sessions), never deadlocks with another
    /// operation of the port: the crate's repositories read the rows to delete without locking
    /// and lock them in key order (on MySQL and on a table distributed by Citus with more
    /// statements: a plain read of the keys, then deletes by key that check every condition
    /// again). A session created at or after `before` is never deleted. With a login history,
    /// each row deleted is logged as revoked. A repository that does not implement it (the
    /// default) fails.
    async fn delete_created_before_batch<'a>(
        &self,
        before: OffsetDateTime,
        user_key: Option<&'a str>,
        limit: u64,
    ) -> Result<(u64, u64), RepositoryError> {
        let _ = (before, user_key, limit);
        Err(no_operator_calls())
    }

    /// Deletes at most `limit` rows of the login history recorded before `before` (its
    /// retention, in the cleanup), and returns how many. A repository that keeps no history
    /// (the default) deletes nothing.
    async fn delete_history_before(
        &self,
        before: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let _ = (before, limit);
        Ok(0)
    }

    /// Where a reader of the login history's new entries starts (the live events,
    /// [`events`](crate::RepositoryStore::events)): an opaque cursor past every entry
    /// committed so far. A repository that keeps no history (the default) has none.
    async fn history_cursor(&self) -> Result<String, RepositoryError> {
        Err(no_history())
    }

    /// The login history's entries committed after `cursor` (from
    /// [`history_cursor`](Self::history_cursor) or an earlier call), oldest first, as
    /// `(user_key, kind, at, handle, listed_values)`, and the cursor to read from next. Along
    /// a chain of cursors, each committed entry is returned at most once, and exactly once
    /// when it commits within `settle` of `now` at the read that first saw it missing:
    /// `settle` is how long a write abandoned by its store may still commit (a repository
    /// whose entries become visible out of their order, as MySQL's `AUTO_INCREMENT` ones do,
    /// looks for a missing entry that long; one that reads by snapshot, as PostgreSQL's, needs
    /// neither).
    async fn history_since(
        &self,
        cursor: &str,
        now: OffsetDateTime,
        settle: std::time::Duration,
    ) -> Result<(String, Vec<super::HistoryEntry>), RepositoryError> {
        let _ = (cursor, now, settle);
        Err(no_history())
    }
}

/// What a repository written before the operators' calls answers them (the crate's all
/// implement them).
fn no_operator_calls() -> RepositoryError {
    RepositoryError::Statement(
        "this session repository cannot count or end sessions in bulk: implement \
         `count_unexpired` and `delete_created_before_batch`"
            .to_owned(),
    )
}

/// What a repository written before the refusing limit answers its writes.
fn no_refusing_limit() -> RepositoryError {
    RepositoryError::Statement(
        "this session repository cannot refuse logins at a per-user limit: implement \
         `insert_within_limit` and `update_within_limit`, or build the store without \
         `refusing_logins_at_the_limit`"
            .to_owned(),
    )
}

fn no_history() -> RepositoryError {
    RepositoryError::Statement("this session repository keeps no login history".to_owned())
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

    /// The session table, or a column of it, does not exist: run `migrate()` (or the
    /// migrations) first.
    #[error("the session table is missing or not fully migrated (run the store's migration): {0}")]
    MissingTable(String),

    /// The database refused or failed the statement (permissions, constraint, syntax…).
    #[error("the session database failed a statement: {0}")]
    Statement(String),

    /// A row came back in a shape the repository cannot read (e.g. a column of the wrong type).
    #[error("the session table returned an unreadable row: {0}")]
    CorruptRow(String),
}
