//! The login history's rules: what one entry shows, how a user's entries are read (newest
//! first, bounded), and the retention the cleanup applies. The statements that write it are
//! the adapters' (`adapters/sql/history.rs`): each write logs in its own statement.

use std::future::Future;

use time::OffsetDateTime;

use super::{users::listed_of, Operation, RepositoryStore, SessionError, SessionHandle};
use crate::ports::{Codec, RepositoryError, SessionRepository};

/// One entry of a user's login history, as
/// [`user_history`](crate::PostgresStore::user_history) lists it: a sign-in, a sign-out, or a
/// session's end and why.
///
/// It never holds a session id, nor anything the id can be found from: the session is named
/// by its [`SessionHandle`], the one the device list shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// What happened, one of:
    /// - `"signed_in"`: a create or save gave the session this user (also when it had another);
    /// - `"signed_out"`: a save took the user away (also when it gave the session another);
    /// - `"deleted"`: the session was deleted by its own request (a logout, `delete`);
    /// - `"revoked"`: a per-user call ended it ("log out everywhere", "other devices", "that
    ///   device");
    /// - `"trimmed"`: the per-user limit ended it after another login;
    /// - `"lifetime"`: the cleanup deleted it past its absolute lifetime (its own, long-lived);
    /// - `"expired"`: the cleanup deleted it expired;
    /// - `"removed"` (PostgreSQL): a `DELETE` that did not come from the store ended it (an
    ///   operator's statement, a script, another application), logged by a trigger that
    ///   `migrate()` installs with the history. A `TRUNCATE` is not logged.
    pub kind: &'static str,
    /// Whose session: the user key it had (for a sign-out, the one it lost).
    pub user: String,
    /// When: the instant of the write (the store's clock for sign-ins, sign-outs, the trim and
    /// the cleanup; the database's statement time for deletes and revocations, whose
    /// repository operations take no instant).
    pub at: OffsetDateTime,
    /// The session's handle ([`UserSession::handle`](crate::UserSession::handle)).
    pub handle: SessionHandle,
    /// The session's listed values at that moment
    /// ([`with_listed_values`](crate::RepositoryStore::with_listed_values)); for a sign-out,
    /// those it had before.
    pub listed: serde_json::Map<String, serde_json::Value>,
}

impl SessionEvent {
    /// The event a history entry records; `None` (and a warning) for a kind this release does
    /// not know, which an operator or a newer release may have written.
    pub(crate) fn of_entry(
        user: String,
        kind: &str,
        at: OffsetDateTime,
        handle: String,
        listed: Option<String>,
    ) -> Option<Self> {
        let Some(kind) = KINDS.iter().find(|known| **known == kind) else {
            tracing::warn!("a login history row of an unknown kind; skipping it");
            return None;
        };
        Some(Self {
            kind,
            user,
            at,
            handle: SessionHandle::new(handle),
            listed: listed_of(listed.as_deref()),
        })
    }
}

/// A history row as a repository reads it: `kind, at, handle, listed_values`.
pub(crate) type HistoryRow = (String, OffsetDateTime, String, Option<String>);

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// The newest `limit` entries of `user`'s history, read by `read`.
    pub(crate) async fn login_history<F>(
        &self,
        user: &str,
        read: impl FnOnce() -> F,
    ) -> Result<Vec<SessionEvent>, SessionError>
    where
        F: Future<Output = Result<Vec<HistoryRow>, RepositoryError>> + Send,
    {
        self.require_history()?;
        if !super::rows::is_storable_user_key(user) {
            return Ok(Vec::new());
        }
        self.run(Operation::ListUserSessions, async {
            let rows = read().await?;
            Ok(rows
                .into_iter()
                .filter_map(|(kind, at, handle, listed)| {
                    SessionEvent::of_entry(user.to_owned(), &kind, at, handle, listed)
                })
                .collect())
        })
        .await
    }

    /// The history's retention, in the cleanup: deletes the rows older than it, in batches.
    pub(crate) async fn delete_old_history(&self, now: OffsetDateTime) -> Result<(), SessionError> {
        let Some(retention) = self.policy.history_retention else {
            return Ok(());
        };
        let Some(before) = time::Duration::try_from(retention)
            .ok()
            .and_then(|retention| now.checked_sub(retention))
        else {
            return Ok(());
        };
        let limit = self.policy.cleanup_batch_size;
        loop {
            let deleted = self
                .run(Operation::DeleteExpired, async {
                    Ok(self.repository.delete_history_before(before, limit).await?)
                })
                .await?;
            if deleted < limit {
                return Ok(());
            }
        }
    }

    pub(crate) fn require_history(&self) -> Result<(), SessionError> {
        match self.policy.history_retention {
            Some(_) => Ok(()),
            None => Err(SessionError::InvalidConfiguration(
                "the login history is off: build the store with `.with_user_key(…)`, then \
                 `.with_login_history(retention)`, and migrate"
                    .to_owned(),
            )),
        }
    }
}

/// The kinds a history row may hold (see [`SessionEvent::kind`]).
const KINDS: [&str; 8] = [
    "signed_in",
    "signed_out",
    "deleted",
    "revoked",
    "trimmed",
    "lifetime",
    "expired",
    "removed",
];
