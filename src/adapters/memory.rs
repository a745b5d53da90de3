//! An in-memory [`SessionRepository`]: the SQL adapters' semantics without a database, for
//! applications' tests and local development.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow};

/// Sessions in a `HashMap` behind a mutex, with exactly the semantics of the SQL repositories.
///
/// - `insert_if_absent` never overwrites: an id is taken while its row exists, **even if that
///   row has expired** (as a primary key is until cleanup deletes the row).
/// - `update_if_present` never inserts: a row deleted since it was loaded stays deleted.
/// - `find_unexpired` hides every row whose expiry is at or before `now`.
/// - `delete_expired_batch` deletes at most `limit` rows expired at or before `now` and returns
///   how many it deleted.
/// - `delete_by_id` of a missing id succeeds.
/// - `update_if_present` with an expected version writes only a row that holds it, and every
///   update adds one to the version, as the SQL table's `version` column does.
/// - It keeps the per-user index, as a table migrated by `migrate()` does.
/// - `count_unexpired` counts what `find_unexpired` would return; `delete_created_before_batch`
///   deletes rows created strictly before the instant, expired or not.
/// - `insert_within_limit` and `update_within_limit` (refusing logins at the per-user limit)
///   count the user's other live rows and write under one lock, so concurrent logins of one
///   user never pass the limit.
///
/// It never fails. Clones share the same sessions, so a test can keep one clone to look inside
/// while a store owns another. Nothing is persisted: the sessions die with the last clone.
///
/// ```
/// use tower_sessions_seaorm_store::{testing::InMemoryRepository, RepositoryStore};
///
/// let repository = InMemoryRepository::new();
/// let store = RepositoryStore::from_repository(repository.clone());
/// assert!(repository.is_empty());
/// # let _ = store;
/// ```
#[derive(Clone, Default)]
pub struct InMemoryRepository {
    rows: Arc<Mutex<HashMap<String, Row>>>,
}

struct Row {
    data: Vec<u8>,
    expires_at: OffsetDateTime,
    user_key: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    saved_at: OffsetDateTime,
    listed_values: Option<String>,
    long_lived: bool,
}

impl Row {
    fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }

    /// Live at `now` for a read with `born_after` and `long_born_after` (see the port's
    /// contract).
    fn is_live(
        &self,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> bool {
        !self.is_expired_at(now) && self.is_young(born_after, long_born_after)
    }

    /// Within its absolute lifetime: its own, when it is long-lived and there is one.
    fn is_young(&self, born_after: Option<OffsetDateTime>, long: Option<OffsetDateTime>) -> bool {
        born_after.is_none_or(|born| {
            self.created_at > born
                || (self.long_lived && long.is_some_and(|long| self.created_at > long))
        })
    }

    fn of_user(&self, user_key: &str) -> bool {
        self.user_key.as_deref() == Some(user_key)
    }
}

impl From<SessionRow> for Row {
    fn from(row: SessionRow) -> Self {
        Self {
            data: row.data,
            expires_at: row.expires_at,
            user_key: row.user_key,
            version: 0,
            created_at: row.created_at,
            saved_at: row.saved_at,
            listed_values: row.listed_values,
            long_lived: row.long_lived,
        }
    }
}

impl InMemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many rows it holds, expired ones included (as a table would until cleanup).
    pub fn len(&self) -> usize {
        self.rows().len()
    }

    /// Whether it holds no row at all.
    pub fn is_empty(&self) -> bool {
        self.rows().is_empty()
    }

    /// Deletes at most `limit` of the rows `doomed` picks, and returns how many it deleted.
    fn delete_where(&self, limit: u64, doomed: impl Fn(&str, &Row) -> bool) -> u64 {
        let mut deleted = 0;
        self.rows().retain(|id, row| {
            let delete = deleted < limit && doomed(id, row);
            deleted += u64::from(delete);
            !delete
        });
        deleted
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<String, Row>> {
        // No code panics while holding the lock, and a map is never left half-updated by one
        // of these single-step operations, so a poisoned lock still guards consistent rows.
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Inserts `row` unless its id is taken; whether it did.
fn insert(rows: &mut HashMap<String, Row>, row: SessionRow) -> bool {
    if rows.contains_key(&row.id) {
        return false;
    }
    rows.insert(row.id.clone(), row.into());
    true
}

/// `update_if_present` on the locked rows.
fn update(
    rows: &mut HashMap<String, Row>,
    row: SessionRow,
    expected_version: Option<i64>,
    report_user_change: bool,
) -> Option<bool> {
    // Deleted or revoked since it was loaded: it stays gone.
    let stored = rows.get_mut(&row.id)?;
    if expected_version.is_some_and(|version| version != stored.version) {
        // Another save got there first.
        return None;
    }
    let user_changed = report_user_change && stored.user_key != row.user_key;
    // A save never makes a session younger.
    let (created_at, version) = (stored.created_at, stored.version.wrapping_add(1));
    *stored = Row {
        created_at,
        version,
        ..row.into()
    };
    Some(user_changed)
}

/// Whether `row`'s user has `limit` live sessions other than `row` already.
fn at_limit(
    rows: &HashMap<String, Row>,
    row: &SessionRow,
    limit: u64,
    now: OffsetDateTime,
    (born_after, long_born_after): (Option<OffsetDateTime>, Option<OffsetDateTime>),
) -> bool {
    let Some(user_key) = row.user_key.as_deref() else {
        return false;
    };
    let others = rows
        .iter()
        .filter(|(id, other)| {
            **id != row.id
                && other.of_user(user_key)
                && other.is_live(now, born_after, long_born_after)
        })
        .count();
    others as u64 >= limit
}

/// Shows the number of rows only: ids and session data stay out of logs.
impl fmt::Debug for InMemoryRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRepository")
            .field("rows", &self.len())
            .finish()
    }
}

#[async_trait]
impl SessionRepository for InMemoryRepository {
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        Ok(insert(&mut self.rows(), row))
    }

    async fn update_if_present(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        report_user_change: bool,
    ) -> Result<Option<bool>, RepositoryError> {
        Ok(update(
            &mut self.rows(),
            row,
            expected_version,
            report_user_change,
        ))
    }

    async fn insert_within_limit(
        &self,
        row: SessionRow,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        // One lock over the count and the write: logins of one user are serialised.
        let mut rows = self.rows();
        if at_limit(&rows, &row, limit, now, (born_after, long_born_after)) {
            return Ok(None);
        }
        Ok(Some(insert(&mut rows, row)))
    }

    async fn update_within_limit(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        let mut rows = self.rows();
        if at_limit(&rows, &row, limit, now, (born_after, long_born_after)) {
            return Ok(None);
        }
        Ok(Some(
            update(&mut rows, row, expected_version, false).is_some(),
        ))
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        Ok(self
            .rows()
            .get(id)
            .filter(|row| row.is_live(now, born_after, long_born_after))
            .map(|row| FoundRow {
                data: row.data.clone(),
                created_at: Some(row.created_at),
                version: row.version,
                user_key: row.user_key.clone(),
                long_lived: Some(row.long_lived),
            }))
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        self.rows().remove(id);
        Ok(())
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        long_born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        Ok(self.delete_where(limit, |_, row| {
            !row.is_live(now, born_before, long_born_before)
        }))
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        Ok(self
            .rows()
            .iter()
            .filter(|(_, row)| {
                row.of_user(user_key) && row.is_live(now, born_after, long_born_after)
            })
            .map(|(id, row)| UserSessionRow {
                id: id.clone(),
                expires_at: row.expires_at,
                created_at: row.created_at,
                saved_at: row.saved_at,
                listed_values: row.listed_values.clone(),
                long_lived: row.long_lived,
            })
            .collect())
    }

    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let mut rows = self.rows();
        // Dead rows (expired, or outlived) take no slot and are left to the cleanup.
        let mut live: Vec<(OffsetDateTime, String)> = rows
            .iter()
            .filter(|(_, row)| {
                row.of_user(user_key) && row.is_live(now, born_after, long_born_after)
            })
            .map(|(id, row)| (row.saved_at, id.clone()))
            .collect();
        // Most recently saved first, ties by key (the greater first), as the SQL orders them.
        live.sort_by(|a, b| b.cmp(a));
        let excess: Vec<String> = live
            .into_iter()
            .skip(usize::try_from(keep).unwrap_or(usize::MAX))
            .map(|(_, id)| id)
            .collect();
        for id in &excess {
            rows.remove(id);
        }
        Ok(excess.len() as u64)
    }

    async fn delete_by_user<'a>(
        &self,
        user_key: &str,
        except: Option<&'a str>,
    ) -> Result<u64, RepositoryError> {
        Ok(self.delete_where(u64::MAX, |id, row| {
            row.of_user(user_key) && except != Some(id)
        }))
    }

    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError> {
        let mut rows = self.rows();
        if rows.get(id).is_some_and(|row| row.of_user(user_key)) {
            rows.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn count_unexpired<'a>(
        &self,
        user_key: Option<&'a str>,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let rows = self.rows();
        let live = rows.values().filter(|row| {
            row.is_live(now, born_after, long_born_after)
                && user_key.is_none_or(|user| row.of_user(user))
        });
        Ok(u64::try_from(live.count()).unwrap_or(u64::MAX))
    }

    async fn delete_created_before_batch<'a>(
        &self,
        before: OffsetDateTime,
        user_key: Option<&'a str>,
        limit: u64,
    ) -> Result<(u64, u64), RepositoryError> {
        let deleted = self.delete_where(limit, |_, row| {
            row.created_at < before && user_key.is_none_or(|user| row.of_user(user))
        });
        Ok((deleted, deleted))
    }
}
