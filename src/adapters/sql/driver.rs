//! What a SQL driver gives the one SQL repository (`repository.rs`): run a statement, read its
//! rows, and say what an error means. The SeaORM adapter (PostgreSQL, SQLite, MySQL/MariaDB)
//! and the tokio-postgres adapter each implement it once; everything a repository decides (which
//! statement, which values, what the result means) is written once, for both.

use std::future::Future;

use time::OffsetDateTime;

use super::{Dialect, Statements};
use crate::ports::RepositoryError;

/// A value a statement binds, before the driver turns it into its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    /// An instant, stored as the dialect stores instants (see [`Dialect`]).
    Instant(OffsetDateTime),
    /// A bigint: a row's version, or a `LIMIT` or `OFFSET` ([`Param::count`]).
    Integer(i64),
    /// A boolean: the long-lived marker.
    Boolean(bool),
}

impl Param {
    pub(crate) fn text(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }

    /// About how many bytes the value takes bound, with its length prefix: what a driver
    /// reserves for a statement's values at once.
    #[cfg(feature = "postgres")]
    pub(crate) fn encoded_size(&self) -> usize {
        4 + match self {
            Self::Text(text) => text.as_ref().map_or(0, String::len),
            Self::Bytes(bytes) => bytes.as_ref().map_or(0, Vec::len),
            Self::Instant(_) | Self::Integer(_) => 8,
            Self::Boolean(_) => 1,
        }
    }

    /// A `LIMIT` or `OFFSET`: beyond `i64::MAX` means "no limit" anyway.
    pub(crate) fn count(rows: u64) -> Self {
        Self::Integer(i64::try_from(rows).unwrap_or(i64::MAX))
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Executed {
    /// How many rows it affected.
    pub rows: u64,
    /// MySQL's `LAST_INSERT_ID()` after it (0 elsewhere): how a reporting save tells whether it
    /// changed the row's user (`update.rs`).
    pub last_insert_id: u64,
}

/// A failed statement, classified once, where the driver's error is read.
#[derive(Debug)]
pub(crate) struct SqlError {
    /// What the store reports (without session data).
    pub error: RepositoryError,
    /// A unique key refused the row: MySQL's plain insert of a taken id.
    pub duplicate: bool,
    /// The statement lost a conflict with another transaction (a deadlock, a serialization
    /// failure) and was rolled back: running it again may succeed.
    pub conflict: bool,
}

/// A failure that is neither a duplicate nor a conflict.
impl From<RepositoryError> for SqlError {
    fn from(error: RepositoryError) -> Self {
        Self {
            error,
            duplicate: false,
            conflict: false,
        }
    }
}

impl From<SqlError> for RepositoryError {
    fn from(err: SqlError) -> Self {
        err.error
    }
}

/// One row of a result, read by column index.
pub(crate) trait SqlRow: Send {
    fn bytes(&self, index: usize) -> Result<Vec<u8>, RepositoryError>;
    /// A key column (`id`, `user_key`) as text: MySQL's are `varbinary`, read as bytes that
    /// must be UTF-8.
    fn key(&self, index: usize) -> Result<String, RepositoryError>;
    fn optional_text(&self, index: usize) -> Result<Option<String>, RepositoryError>;
    /// An instant column, as [`Param::Instant`] stored it.
    fn instant(&self, index: usize) -> Result<OffsetDateTime, RepositoryError>;
    fn boolean(&self, index: usize) -> Result<bool, RepositoryError>;
    fn integer(&self, index: usize) -> Result<i64, RepositoryError>;
}

/// A SQL connection (pool) the store's sessions live behind. Every type that implements it is
/// a [`SessionRepository`](crate::ports::SessionRepository) (`repository.rs`).
///
/// Its futures are returned as they are, not boxed (as `async_trait` would box them): a store
/// operation runs one or two statements, and each box was an allocation and a copy of the
/// statement's state in every operation. The repository's own futures, which the store calls
/// through the port, are boxed once there.
pub(crate) trait SqlDriver: Send + Sync + 'static {
    type Row: SqlRow;

    fn dialect(&self) -> Dialect;
    fn statements(&self) -> &Statements;
    /// This driver's own copy of its statements, to change (a listening cache's quiet saves).
    #[cfg(all(feature = "cache", feature = "postgres"))]
    fn statements_mut(&mut self) -> &mut Statements;

    /// Runs `sql` with `params`.
    fn execute(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<Executed, SqlError>> + Send;

    /// Runs `sql` with `params` and returns its rows.
    fn query(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, SqlError>> + Send;

    /// Runs `sql`, a read by key (one row or none), with `params` and returns its first row.
    /// A driver may ask for that row alone (on SeaORM's PostgreSQL pool, sqlx's
    /// `fetch_optional`, which costs the client less than collecting the rows). Never for a
    /// write: a statement asked for one row may stop at it.
    fn query_first(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<Option<Self::Row>, SqlError>> + Send {
        async move { Ok(self.query(sql, params).await?.into_iter().next()) }
    }

    /// The per-user limit that refuses logins (`per_user::Refusing`): a driver whose
    /// statements run in one new transaction, on one connection, until
    /// [`end_guarded`](Self::end_guarded). `release` (MySQL's `RELEASE_LOCK`, with its values)
    /// runs on that connection once the transaction has ended, however it ends: committed,
    /// rolled back, or abandoned (the driver dropped midway, as by a time-out), which rolls
    /// it back.
    fn begin_guarded(
        &self,
        release: Option<(String, Vec<Param>)>,
    ) -> impl Future<Output = Result<Self, SqlError>> + Send
    where
        Self: Sized;

    /// Ends the transaction of [`begin_guarded`](Self::begin_guarded): commits it, or rolls it
    /// back, then runs its `release`.
    fn end_guarded(self, commit: bool) -> impl Future<Output = Result<(), SqlError>> + Send
    where
        Self: Sized;

    /// The login history on SQLite and MySQL (see `history.rs`, `mysql_history.rs`): runs
    /// `logged` in one transaction and returns how many rows its write wrote. Only the SeaORM
    /// driver has SQLite and MySQL.
    fn logged(
        &self,
        logged: Logged<'_, Self::Row>,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send {
        let _ = logged;
        std::future::ready(Err(RepositoryError::Statement(
            "this driver keeps no login history in a transaction".to_owned(),
        )
        .into()))
    }
}

/// The entries of one logged row: `(before, row)`, the values of one history insert each.
/// SQLite: each row the write returned, with the row as it was before when read
/// ([`Before::Locked`]). MySQL: each row [`Before::ForUpdate`] locked, as `before`, with no
/// row; or, with [`Before::Nothing`] (an insert), once, with neither.
pub(crate) type LogFn<'a, R> =
    dyn Fn(Option<&R>, Option<&R>) -> Result<Vec<Vec<Param>>, RepositoryError> + Send + Sync + 'a;

/// What a logged write reads first, in its transaction.
pub(crate) enum Before<'a> {
    /// Nothing: the rows the write returns are logged (SQLite), or what `log` knows already
    /// (MySQL's insert).
    Nothing,
    /// SQLite's save: a write that takes the database's write lock, then the read of the row
    /// as it is.
    Locked([(&'a str, Vec<Param>); 2]),
    /// MySQL: the rows the write changes, read `FOR UPDATE` with its own `WHERE`
    /// (`mysql_history::locking_read`): the write is sent only when there are some, and each
    /// is logged.
    ForUpdate(String, Vec<Param>),
}

/// A write and the history it logs, in one transaction: `before`, then the write (`sql`,
/// `RETURNING` its rows on SQLite; or, with `by_key`, the deletes by key of the rows `before`
/// locked: MySQL's cleanup), then the inserts of the entries `log` makes (`history.insert`,
/// and on MySQL `history.insert_rows` for several at once).
pub(crate) struct Logged<'a, R> {
    pub before: Before<'a>,
    pub sql: &'a str,
    pub params: Vec<Param>,
    pub by_key: Option<&'a super::per_user::KeyedDeletes>,
    pub history: &'a super::history::HistoryStatements,
    pub log: &'a LogFn<'a, R>,
}
