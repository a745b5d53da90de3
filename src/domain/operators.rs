//! The operators' calls: count the live sessions, and end every session created before an
//! instant ("log everyone out after a breach") or every session at all, for every user or one.

use time::OffsetDateTime;

use super::{rows::is_storable_user_key, Operation, RepositoryStore, SessionError};
use crate::ports::{Codec, Evict, SessionRepository};

/// An instant after every session's creation: "created before it" is every session. (Stored
/// instants end at 9999-12-31, and the repositories clamp what they bind to that range.)
fn end_of_time() -> OffsetDateTime {
    let last_day = time::Date::from_calendar_date(9999, time::Month::December, 31);
    let last_micro = time::Time::from_hms_micro(23, 59, 59, 999_999);
    match (last_day, last_micro) {
        (Ok(day), Ok(micro)) => day.with_time(micro).assume_utc(),
        // Both are valid dates; never taken.
        _ => OffsetDateTime::now_utc() + time::Duration::days(365 * 100),
    }
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// The number of live sessions: those [`load`](tower_sessions_core::SessionStore::load)
    /// would return now (not expired and, with an absolute lifetime, within it). One
    /// statement; on a large table a full count, for dashboards and operators rather than every
    /// request.
    ///
    /// ```
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let live = store.count_sessions().await?;
    /// println!("{live} sessions are signed in");
    /// # Ok(()) }
    /// ```
    pub async fn count_sessions(&self) -> Result<u64, SessionError> {
        self.count(None).await
    }

    /// The number of live sessions of `user` (per-user index, see
    /// [`with_user_key`](Self::with_user_key)), as [`user_sessions`](Self::user_sessions)
    /// would list them: one indexed statement.
    ///
    /// Fails with [`SessionError::InvalidConfiguration`] when the store keeps no index.
    pub async fn count_user_sessions(&self, user: &str) -> Result<u64, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user) {
            return Ok(0);
        }
        self.count(Some(user)).await
    }

    async fn count(&self, user: Option<&str>) -> Result<u64, SessionError> {
        let now = self.clock.now();
        self.run(Operation::CountSessions, async {
            let count = self.repository.count_unexpired(
                user,
                now,
                self.born_after(now),
                self.long_born_after(now),
            );
            Ok(count.await?)
        })
        .await
    }

    /// Ends every session created before `before` (strictly), expired or not, whoever it
    /// belongs to ("log everyone out after a breach"), and returns how many.
    ///
    /// In batches of the cleanup's size
    /// ([`with_cleanup_batch_size`](Self::with_cleanup_batch_size)), each one statement (on
    /// MySQL, a read of keys, then deletes by key), each bounded by the operation timeout. It
    /// waits for a session being saved rather than skipping it, and never deadlocks with the
    /// store's other operations; a session created at or after `before` is never touched,
    /// and a device whose session ended finds it gone at its next request (its save writes
    /// nothing back). The store's read cache is cleared on this replica and, through the
    /// table's triggers, on every replica listening; with a login history, each session ended
    /// is logged as `revoked`.
    ///
    /// ```
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// // The breach was contained at 14:00 UTC: every session older than that ends.
    /// let contained = time::OffsetDateTime::parse(
    ///     "2026-12-04T14:00:00Z",
    ///     &time::format_description::well_known::Rfc3339,
    /// )?;
    /// let ended = store.delete_sessions_created_before(contained).await?;
    /// # let _ = ended;
    /// # Ok(()) }
    /// ```
    pub async fn delete_sessions_created_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, SessionError> {
        self.end_created_before(before, None).await
    }

    /// As [`delete_sessions_created_before`](Self::delete_sessions_created_before), of
    /// `user`'s sessions only (per-user index): "sign out every device this user signed in on
    /// before the password change".
    ///
    /// Fails with [`SessionError::InvalidConfiguration`] when the store keeps no index.
    pub async fn delete_user_sessions_created_before(
        &self,
        user: &str,
        before: OffsetDateTime,
    ) -> Result<u64, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user) {
            return Ok(0);
        }
        self.end_created_before(before, Some(user)).await
    }

    /// Ends **every** session in the store's table, expired or not, and returns how many: the
    /// batches of [`delete_sessions_created_before`](Self::delete_sessions_created_before), with
    /// the same guarantees, up to the end of time.
    ///
    /// `confirm_table` must name the store's table, as its spans do (`schema.table` on
    /// PostgreSQL, the table's name on SQLite and MySQL, `sessions` for a store of your own
    /// repository): the call says what it empties, and a store pointed at another table than
    /// the caller believes refuses with [`SessionError::InvalidConfiguration`], deleting
    /// nothing.
    ///
    /// ```
    /// # async fn run(store: tower_sessions_seaorm_store::PostgresStore) -> Result<(), tower_sessions_seaorm_store::SeaOrmStoreError> {
    /// let ended = store.delete_all_sessions("tower_sessions.session").await?;
    /// # let _ = ended;
    /// # Ok(()) }
    /// ```
    pub async fn delete_all_sessions(&self, confirm_table: &str) -> Result<u64, SessionError> {
        if confirm_table != &*self.table_label {
            return Err(SessionError::InvalidConfiguration(
                "delete_all_sessions was not confirmed: pass the name of the store's session \
                 table (`schema.table` on PostgreSQL, the table's name elsewhere)"
                    .to_owned(),
            ));
        }
        self.end_created_before(end_of_time(), None).await
    }

    /// The store's session table as its spans name it and
    /// [`delete_all_sessions`](Self::delete_all_sessions) wants it confirmed: `schema.table`
    /// on PostgreSQL, the table's name on SQLite and MySQL, `sessions` for a store of your own
    /// repository.
    pub fn table_name(&self) -> &str {
        &self.table_label
    }

    async fn end_created_before(
        &self,
        before: OffsetDateTime,
        user: Option<&str>,
    ) -> Result<u64, SessionError> {
        let limit = self.policy.cleanup_batch_size.max(1);
        // Evicted when the batches return; if one fails or times out, what it may still have
        // deleted is evicted again once it can no longer commit.
        let eviction = self.eviction(|| match user {
            Some(user) => Evict::User(user.to_owned()),
            None => Evict::All,
        });
        let mut total: u64 = 0;
        loop {
            let (deleted, found) = self
                .run(Operation::DeleteSessions, async {
                    let batch = self
                        .repository
                        .delete_created_before_batch(before, user, limit);
                    Ok(batch.await?)
                })
                .await?;
            total = total.saturating_add(deleted);
            if found < limit {
                break;
            }
        }
        eviction.done_if(total > 0);
        Ok(total)
    }
}
