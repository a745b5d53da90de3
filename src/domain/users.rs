//! The per-user index's operations: a user's sessions listed ("your devices") and ended ("log
//! out everywhere", "my other devices", "that device"), and the per-user limit's trim after a
//! login.

use time::OffsetDateTime;

use super::{
    rows::{is_storable_user_key, Written},
    Operation, RepositoryStore, SessionError, SessionHandle,
};
use crate::ports::{Codec, Evict, SessionId, SessionRepository};

/// One live session of a user, as
/// [`RepositoryStore::user_sessions`](crate::RepositoryStore::user_sessions) lists it: what a
/// "your devices" page shows, e.g. "Firefox on Linux · signed in 3 days ago · active 5 minutes
/// ago".
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque name for the session, safe to show and to post back ("sign out this device",
    /// [`RepositoryStore::delete_user_session`](crate::RepositoryStore::delete_user_session));
    /// see [`SessionHandle`].
    pub handle: SessionHandle,
    /// When the session was created (its first save; a new id from `cycle_id`, as at login, is
    /// a new session).
    pub created_at: OffsetDateTime,
    /// When it was last written: its last save that changed something (with write avoidance,
    /// saves within the touch window write nothing, so this lags by up to that window).
    pub last_active: OffsetDateTime,
    /// When it ends unless it is saved again: its expiry or, with an absolute lifetime
    /// ([`with_absolute_lifetime`](crate::RepositoryStore::with_absolute_lifetime)), its
    /// creation plus that lifetime when that comes first (a long-lived session's own,
    /// [`with_long_lived_sessions`](crate::RepositoryStore::with_long_lived_sessions)).
    pub expiry_date: OffsetDateTime,
    /// The values the store was told to list
    /// ([`with_listed_values`](crate::RepositoryStore::with_listed_values)), as they were at
    /// the session's last write, keyed by the path given there; a value the session does not
    /// hold is absent.
    pub listed: serde_json::Map<String, serde_json::Value>,
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// The live sessions of `user` (per-user index, see
    /// [`with_user_key`](Self::with_user_key)), most recently active first: one indexed query.
    /// Each comes with a [`SessionHandle`] that is safe to show and to send back, never its
    /// id, when it was created and last active, and its listed values
    /// ([`with_listed_values`](Self::with_listed_values)).
    ///
    /// Fails with [`SessionError::InvalidConfiguration`] when the store keeps no index.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user) {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        self.run(Operation::ListUserSessions, async {
            let rows = self
                .repository
                .find_unexpired_by_user(user, now, self.born_after(now), self.long_born_after(now))
                .await?;
            let mut sessions: Vec<_> = rows
                .into_iter()
                .map(|row| UserSession {
                    handle: SessionHandle::of_key(&row.id),
                    created_at: row.created_at,
                    last_active: row.saved_at,
                    expiry_date: self
                        .lifetime_end(row.created_at, row.long_lived)
                        .map_or(row.expires_at, |end| end.min(row.expires_at)),
                    listed: listed_of(row.listed_values.as_deref()),
                })
                .collect();
            sessions.sort_by(|a, b| {
                (b.last_active, b.handle.as_str()).cmp(&(a.last_active, a.handle.as_str()))
            });
            Ok(sessions)
        })
        .await
    }

    /// Deletes every session of `user`, expired or not ("log out everywhere"), and returns how
    /// many: one statement.
    ///
    /// Each device finds its session gone at its next request. A cache in front of the store
    /// (tower-sessions' `CachingSessionStore`) keeps serving its copy until the entry expires
    /// there; the store's own read cache is evicted on every replica.
    pub async fn delete_user_sessions(&self, user: &str) -> Result<u64, SessionError> {
        self.delete_user_sessions_but(user, None).await
    }

    /// Deletes every session of `user` but `current` ("log out my other devices"), and returns
    /// how many: one statement. `current` is the id of the request's session
    /// (`session.id()`); tower-sessions 0.14's `Id` works too with feature
    /// `tower-sessions-014`.
    pub async fn delete_user_sessions_except(
        &self,
        user: &str,
        current: impl Into<SessionId>,
    ) -> Result<u64, SessionError> {
        let keep = self.key(current.into());
        self.delete_user_sessions_but(user, Some(&keep)).await
    }

    async fn delete_user_sessions_but(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> Result<u64, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user) {
            return Ok(0);
        }
        self.run(Operation::DeleteUserSessions, async {
            let eviction = self.eviction(|| Evict::User(user.to_owned()));
            let deleted = self.repository.delete_by_user(user, except).await?;
            eviction.done_if(deleted > 0);
            Ok(deleted)
        })
        .await
    }

    /// Deletes the session of `user` listed with `handle` ("sign out that device"); `false`
    /// when `user` has no live session with that handle (a handle of another user's session
    /// deletes nothing).
    ///
    /// Two statements, the list then the delete, because the handle is a one-way hash the
    /// database cannot compute everywhere (SQLite has no SHA-256); the delete checks the user
    /// again, so a session that changed hands in between is not deleted for its former user.
    pub async fn delete_user_session(
        &self,
        user: &str,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        self.require_user_index()?;
        if !is_storable_user_key(user) {
            return Ok(false);
        }
        let now = self.clock.now();
        self.run(Operation::DeleteUserSessions, async {
            let rows = self
                .repository
                .find_unexpired_by_user(user, now, self.born_after(now), self.long_born_after(now))
                .await?;
            let Some(row) = rows
                .into_iter()
                .find(|row| SessionHandle::of_key(&row.id) == *handle)
            else {
                return Ok(false);
            };
            let eviction = self.eviction(|| Evict::Key(row.id.clone()));
            let deleted = self.repository.delete_by_user_and_id(user, &row.id).await?;
            eviction.done();
            Ok(deleted)
        })
        .await
    }

    /// The handle [`user_sessions`](Self::user_sessions) shows for the session `id`: compare
    /// to mark the current session in a list.
    pub fn session_handle(&self, id: impl Into<SessionId>) -> SessionHandle {
        SessionHandle::of_key(&self.key(id.into()))
    }

    pub(super) fn require_user_index(&self) -> Result<(), SessionError> {
        match self.policy.user_key {
            Some(_) => Ok(()),
            None => Err(SessionError::InvalidConfiguration(
                "the per-user session index is off: build the store with \
                 `.with_user_key(\"user_id\")` (naming the session key that holds the user's id) \
                 and migrate"
                    .to_owned(),
            )),
        }
    }

    /// The per-user session limit, after a write that gave a user one more session: ends the
    /// user's least recently saved live sessions beyond the limit. A dead session (expired, or
    /// past the absolute lifetime) takes no slot.
    ///
    /// Concurrent logins each trim after their own write, so once they have all returned the
    /// user has exactly the limit (or fewer sessions). The trim is an operation of its own
    /// (`delete_user_sessions` in spans and faults), bounded by its own operation timeout, and
    /// **never fails the login it follows**: the session is stored by then, so an error is
    /// logged at `warn` and the user keeps more than the limit until a later login of theirs
    /// trims again.
    pub(crate) async fn trim_after_login(&self, written: Written, now: OffsetDateTime) {
        let (Some(user_key), Some(limit)) = (written.login_of, self.policy.max_sessions_per_user)
        else {
            return;
        };
        if self.policy.refuse_at_limit {
            // The login was admitted below the limit: nothing to end.
            return;
        }
        let trimmed = self
            .run(Operation::DeleteUserSessions, async {
                let eviction = self.eviction(|| Evict::User(user_key.clone()));
                let ended = self
                    .repository
                    .trim_user_sessions(
                        &user_key,
                        limit,
                        now,
                        self.born_after(now),
                        self.long_born_after(now),
                    )
                    .await?;
                eviction.done_if(ended > 0);
                Ok(ended)
            })
            .await;
        match trimmed {
            Ok(0) => {}
            Ok(ended) => tracing::debug!(
                ended,
                limit,
                "ended a user's sessions beyond the per-user limit"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                limit,
                "could not end a user's sessions beyond the per-user limit after a login; the \
                 login stands, and the user keeps more sessions until a later login trims"
            ),
        }
    }
}

/// The listed values stored with a row; a value no store of this version wrote (edited by hand,
/// or cut) is shown as none, with a warning that holds none of it.
pub(super) fn listed_of(json: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let Some(json) = json else {
        return serde_json::Map::new();
    };
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(listed)) => listed,
        _ => {
            tracing::warn!(
                bytes = json.len(),
                "a session's listed values are not a JSON object; listing it without them"
            );
            serde_json::Map::new()
        }
    }
}
