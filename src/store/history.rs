//! The login history's options and reads, on both PostgreSQL stores (`with_login_history`,
//! `user_history`): the table option is the adapter's, the rules the domain's.

use std::time::Duration;

use crate::{
    adapters::sql::{history, SqlDriver},
    domain::{RepositoryStore, SessionError, SessionEvent},
    ports::Codec,
};

/// The checked table with a history, and the retention, for `store`.
pub(crate) fn history_table<R: SqlDriver, C: Codec>(
    store: &RepositoryStore<R, C>,
    table: &crate::adapters::sql::SessionTable,
) -> Result<crate::adapters::sql::SessionTable, SessionError> {
    store.refuse_if_cached("`with_login_history`")?;
    history::checked(table, store.policy.user_key.is_some())
}

/// `user`'s newest `limit` history entries.
pub(crate) async fn user_history<R: SqlDriver, C: Codec>(
    store: &RepositoryStore<R, C>,
    user: &str,
    limit: u64,
) -> Result<Vec<SessionEvent>, SessionError> {
    store
        .login_history(user, || history::find(store.repository(), user, limit))
        .await
}

/// The retention set on `store`.
pub(crate) fn with_retention<R: SqlDriver, C: Codec>(
    store: RepositoryStore<R, C>,
    retention: Duration,
) -> RepositoryStore<R, C> {
    store.with_policy(|policy| policy.history_retention = Some(retention))
}

impl<R: crate::ports::SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// A subscription to the store's **live session events**: every sign-in, sign-out and
    /// session end (and why) that commits after this returns, made by any replica or process
    /// sharing the database, as a [`SessionEvent`] — the entries of the login history
    /// ([`with_login_history`](crate::PostgresStore::with_login_history), which events need),
    /// as they commit. PostgreSQL (either store, through PgBouncer too), SQLite and
    /// MySQL/MariaDB.
    ///
    /// One reader per store (clones included) reads the entries committed since its last read
    /// every 10 ms, one indexed statement, and hands each to every subscriber; it stops when
    /// the last subscriber drops. With a listening read cache (PostgreSQL), the cache's
    /// listener does those reads, on its own connection, once a returned heartbeat proves that
    /// connection reaches the store's database (the store's pool until then, and while it
    /// reconnects): one listener per replica serves both. Delivery is **at most once**: a subscriber more than 1,024
    /// events behind loses the oldest, and its next `recv` says how many
    /// ([`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged)); a slow or
    /// stalled subscriber never slows or blocks a store operation. Events committed while no
    /// one subscribed, or while the process was down, are not replayed: the history keeps
    /// them. On MySQL/MariaDB an entry that commits later than twice the operation timeout
    /// after a read first missed it is not delivered (see `docs/session-events.md`). An event
    /// never holds a session id: the session is named by its handle.
    ///
    /// Fails with `InvalidConfiguration` when the store keeps no history or when called
    /// outside a Tokio runtime, and with the database's error when the history's end cannot
    /// be read. See `docs/session-events.md`.
    ///
    /// ```no_run
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// use tokio::sync::broadcast::error::RecvError;
    ///
    /// let mut events = store.events().await?;
    /// tokio::spawn(async move {
    ///     loop {
    ///         match events.recv().await {
    ///             Ok(event) if event.kind == "signed_in" => {
    ///                 println!("{} signed in on {}", event.user, event.handle);
    ///             }
    ///             Ok(_) => {}
    ///             Err(RecvError::Lagged(missed)) => eprintln!("{missed} session events missed"),
    ///             Err(RecvError::Closed) => break,
    ///         }
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub async fn events(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<SessionEvent>, crate::SeaOrmStoreError> {
        self.subscribe().await
    }
}
