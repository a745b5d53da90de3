//! The one SQL repository: every operation of the port, in the dialect of the driver's
//! connection, for every [`SqlDriver`] (SeaORM's, tokio-postgres'). One statement per
//! operation, prepared and cached by the driver; the per-user deletes as `per_user.rs`
//! explains.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    columns::{Bind, Column, ROW_COLUMNS},
    dialect::EARLIEST,
    driver::{Before, Logged, Param, SqlDriver, SqlError, SqlRow},
    history, mysql_history,
    per_user::{padded, KeyedDeletes, PerUser, MAX_KEYS_PER_DELETE},
    server_error::DELETE_ATTEMPTS,
    Dialect,
};
use crate::{
    domain::SessionHandle,
    ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow},
};

/// The values `binds` names for `row`, in order (`version` for the version a save expects).
/// Every statement binds the data once (the statements' tests check it), so the encoded bytes
/// are moved into the statement, not copied.
fn row_params(binds: &[Bind], row: SessionRow, version: Option<i64>) -> Vec<Param> {
    let mut data = Some(row.data);
    binds
        .iter()
        .map(|bind| match bind {
            Bind::Column(Column::Id) => Param::text(&row.id),
            Bind::Column(Column::Data) => Param::Bytes(data.take()),
            Bind::Column(Column::ExpiryDate) => Param::Instant(row.expires_at),
            Bind::Column(Column::UserKey) => Param::Text(row.user_key.clone()),
            Bind::Column(Column::CreatedAt) => Param::Instant(row.created_at),
            Bind::Column(Column::UpdatedAt) => Param::Instant(row.saved_at),
            Bind::Column(Column::ListedValues) => Param::Text(row.listed_values.clone()),
            Bind::Column(Column::LongLived) => Param::Boolean(row.long_lived),
            Bind::Column(Column::Version) | Bind::ExpectedVersion => {
                Param::Integer(version.unwrap_or_default())
            }
        })
        .collect()
}

/// The lower bounds on `created_at` of the rows a read returns, short then long-lived: without
/// an absolute lifetime, the earliest instant a row holds, so every row passes; without a long
/// lifetime, the short bound for both, so a marked row lives no longer than another.
fn born_after(born_after: Option<OffsetDateTime>, long: Option<OffsetDateTime>) -> [Param; 2] {
    let short = born_after.unwrap_or(EARLIEST);
    let long = born_after.map_or(EARLIEST, |short| long.unwrap_or(short));
    [Param::Instant(short), Param::Instant(long)]
}

/// What a write's rows log in the login history on SQLite and MySQL (PostgreSQL's statements
/// say it themselves, see `history.rs`).
#[derive(Clone, Copy)]
enum Log {
    /// An insert: a sign-in, when the row has a user.
    SignIn(OffsetDateTime),
    /// The end of each row written: why, and when.
    Ended(&'static str, OffsetDateTime),
    /// The cleanup's: `lifetime` for a row created at or before the first instant (at or
    /// before the second when it is long-lived), else `expired`.
    Cleanup(OffsetDateTime, Option<(OffsetDateTime, OffsetDateTime)>),
}

/// The entry `log` makes of the row a write returned (`history::RETURNING`), or MySQL's write
/// locked (the same columns).
fn entries<R: SqlRow>(log: Log, row: &R) -> Result<Vec<Vec<Param>>, RepositoryError> {
    let Some(user) = row.optional_text(0)? else {
        return Ok(Vec::new());
    };
    let (kind, at) = match log {
        Log::SignIn(at) => (history::kind::SIGNED_IN, at),
        Log::Ended(kind, at) => (kind, at),
        Log::Cleanup(at, outlived) => {
            let created = row.instant(3)?;
            let outlived = match outlived {
                Some((short, long)) => created <= short && (!row.boolean(4)? || created <= long),
                None => false,
            };
            let kind = match outlived {
                true => history::kind::LIFETIME,
                false => history::kind::EXPIRED,
            };
            (kind, at)
        }
    };
    Ok(vec![entry(
        user,
        kind,
        at,
        &row.key(1)?,
        row.optional_text(2)?,
    )])
}

/// The values of one history insert.
fn entry(
    user: String,
    kind: &str,
    at: OffsetDateTime,
    key: &str,
    listed: Option<String>,
) -> Vec<Param> {
    vec![
        Param::Text(Some(user)),
        Param::text(kind),
        Param::Instant(at),
        Param::text(SessionHandle::of_key(key).as_str()),
        Param::Text(listed),
    ]
}

/// Runs a write and returns how many rows it wrote: with the login history its statement
/// returns that count as one row on PostgreSQL, and its rows on SQLite, which `log` then logs
/// in the same transaction (see `history.rs`); on MySQL the rows it changes are read `FOR
/// UPDATE` first, in that transaction, and logged (`mysql_history.rs`); else the driver
/// reports it.
async fn written<D: SqlDriver>(
    driver: &D,
    sql: &str,
    params: Vec<Param>,
    log: Log,
) -> Result<u64, SqlError> {
    let Some(history) = &driver.statements().history else {
        return Ok(driver.execute(sql, params).await?.rows);
    };
    let logged = move |before: Option<&D::Row>, row: Option<&D::Row>| match row.or(before) {
        Some(row) => entries(log, row),
        None => Ok(Vec::new()),
    };
    match driver.dialect() {
        Dialect::Sqlite => {
            return driver
                .logged(Logged {
                    before: Before::Nothing,
                    sql,
                    params,
                    by_key: None,
                    history,
                    log: &logged,
                })
                .await;
        }
        Dialect::MySql => {
            let (read, read_params) =
                mysql_history::locking_read(sql, &params).ok_or_else(|| {
                    RepositoryError::Statement(
                        "a logged write on MySQL is a DELETE or an UPDATE".to_owned(),
                    )
                })?;
            // The cleanup's `DELETE … LIMIT` need not pick the rows its read locked: those
            // are deleted by key.
            let by_key = matches!(log, Log::Cleanup(..)).then_some(&history.delete_keys);
            return driver
                .logged(Logged {
                    before: Before::ForUpdate(read, read_params),
                    sql,
                    params,
                    by_key,
                    history,
                    log: &logged,
                })
                .await;
        }
        Dialect::Postgres => {}
    }
    match driver.query(sql, params).await?.first() {
        Some(row) => Ok(u64::try_from(row.integer(0)?).unwrap_or_default()),
        None => Ok(0),
    }
}

#[async_trait]
impl<D: SqlDriver> SessionRepository for D {
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        let statements = self.statements();
        let row_saved_at = row.saved_at;
        // MySQL: the insert and its sign-in, made of the row, in one transaction.
        let sign_in = match (&statements.history, self.dialect(), &row.user_key) {
            (Some(history), Dialect::MySql, Some(user)) => Some((
                history,
                entry(
                    user.clone(),
                    history::kind::SIGNED_IN,
                    row_saved_at,
                    &row.id,
                    row.listed_values.clone(),
                ),
            )),
            _ => None,
        };
        // The insert binds the row's columns, in their order.
        let params = row_params(&ROW_COLUMNS.map(Bind::Column), row, None);
        let result = match sign_in {
            Some((history, sign_in)) => {
                let log = move |_: Option<&D::Row>, _: Option<&D::Row>| Ok(vec![sign_in.clone()]);
                self.logged(Logged {
                    before: Before::Nothing,
                    sql: &statements.insert_if_absent,
                    params,
                    by_key: None,
                    history,
                    log: &log,
                })
                .await
            }
            // Without a user, MySQL's insert logs nothing: no transaction.
            None if self.dialect() == Dialect::MySql => self
                .execute(&statements.insert_if_absent, params)
                .await
                .map(|executed| executed.rows),
            None => {
                let log = Log::SignIn(row_saved_at);
                written(self, &statements.insert_if_absent, params, log).await
            }
        };
        match result {
            Ok(rows) => Ok(rows == 1),
            // MySQL's plain INSERT: the primary key refused the id, nothing was written.
            Err(err) if err.duplicate => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    async fn update_if_present(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        report_user_change: bool,
    ) -> Result<Option<bool>, RepositoryError> {
        let statements = self.statements();
        let statement = match (expected_version.is_some(), report_user_change) {
            (true, false) => &statements.update_if_version,
            (false, false) => &statements.update_if_present,
            (true, true) => &statements.update_if_version_reporting,
            (false, true) => &statements.update_if_present_reporting,
        };
        let has_user = row.user_key.is_some();
        let (key, saved_at) = (row.id.clone(), row.saved_at);
        let written = |rows: u64, user_changed: bool| (rows > 0).then_some(user_changed);
        // With the history, every save logs but the unreported version-checked one, which
        // keeps the user key the row has at that version (the port's contract).
        let logs = expected_version.is_none() || report_user_change;
        let history = statements.history.as_ref().filter(|_| logs);
        if let (Some(history), Dialect::MySql) = (history, self.dialect()) {
            // The plain save, after the locking read of the row it writes, which tells the
            // previous user key: its report is exact.
            let statement = match expected_version {
                Some(_) => &statements.update_if_version,
                None => &statements.update_if_present,
            };
            let (user, listed) = (row.user_key.clone(), row.listed_values.clone());
            let params = row_params(&statement.binds, row, expected_version);
            let (read, read_params) = mysql_history::locking_read(&statement.sql, &params)
                .ok_or_else(|| RepositoryError::Statement("a save is an UPDATE".to_owned()))?;
            let changed = std::sync::atomic::AtomicBool::new(false);
            let log = |before: Option<&D::Row>, _: Option<&D::Row>| {
                let Some(before) = before else {
                    return Ok(Vec::new());
                };
                let previous = (before.optional_text(0)?, before.optional_text(2)?);
                changed.store(previous.0 != user, std::sync::atomic::Ordering::Relaxed);
                Ok(save_entries(
                    previous,
                    (user.clone(), &key, listed.clone()),
                    saved_at,
                ))
            };
            let rows = self
                .logged(Logged {
                    before: Before::ForUpdate(read, read_params),
                    sql: &statement.sql,
                    params,
                    by_key: None,
                    history,
                    log: &log,
                })
                .await?;
            let changed = changed.load(std::sync::atomic::Ordering::Relaxed);
            return Ok(written(rows, report_user_change && changed));
        }
        let params = row_params(&statement.binds, row, expected_version);
        if let (Some(history), Dialect::Sqlite) = (history, self.dialect()) {
            // The row's previous user key, read once the transaction holds the write lock.
            let log = move |before: Option<&D::Row>, after: Option<&D::Row>| {
                let Some(after) = after else {
                    return Ok(Vec::new());
                };
                let previous = match before {
                    Some(before) => (before.optional_text(0)?, before.optional_text(1)?),
                    None => (None, None),
                };
                let key = after.key(1)?;
                let after = (
                    after.optional_text(0)?,
                    key.as_str(),
                    after.optional_text(2)?,
                );
                Ok(save_entries(previous, after, saved_at))
            };
            let rows = self
                .logged(Logged {
                    before: Before::Locked([
                        (&history.lock, vec![Param::text(&key)]),
                        (&history.previous, vec![Param::text(&key)]),
                    ]),
                    sql: &statement.sql,
                    params,
                    by_key: None,
                    history,
                    log: &log,
                })
                .await?;
            return Ok(written(rows, has_user && report_user_change));
        }
        if history.is_some() {
            // The history's saves all report, as one row when they wrote.
            return match self.query(&statement.sql, params).await?.first() {
                Some(row) => Ok(Some(row.boolean(0)? && report_user_change)),
                None => Ok(None),
            };
        }
        if !report_user_change {
            let executed = self.execute(&statement.sql, params).await?;
            return Ok(written(executed.rows, false));
        }
        match self.dialect() {
            // `RETURNING` one boolean when the row was written.
            Dialect::Postgres => match self.query(&statement.sql, params).await?.first() {
                Some(row) => row.boolean(0).map(Some),
                None => Ok(None),
            },
            // `LAST_INSERT_ID(IF(same, 1, 2))`, reported with the result; stale when not written.
            Dialect::MySql => {
                let executed = self.execute(&statement.sql, params).await?;
                Ok(written(executed.rows, executed.last_insert_id == 2))
            }
            // No statement of SQLite's returns a row's previous value (`RETURNING` sees the new
            // one), and a read first would race other connections' saves: every row written
            // with a user is reported, and the trim that follows ends nothing unless the user
            // is over the limit (one more statement, in process, for such saves only).
            Dialect::Sqlite => {
                let executed = self.execute(&statement.sql, params).await?;
                Ok(written(executed.rows, has_user))
            }
        }
    }

    async fn insert_within_limit(
        &self,
        row: SessionRow,
        limit: u64,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        let Some(guarded) = below_limit(self, &row, limit, now, born, long_born).await? else {
            return Ok(None);
        };
        // An error drops `guarded`: rolled back, nothing written.
        let inserted = guarded.insert_if_absent(row).await?;
        guarded.end_guarded(true).await?;
        Ok(Some(inserted))
    }

    async fn update_within_limit(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        limit: u64,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        let Some(guarded) = below_limit(self, &row, limit, now, born, long_born).await? else {
            return Ok(None);
        };
        // With the history, the save that may sign someone in reports, and so logs.
        let logged = self.statements().history.is_some();
        let written = guarded
            .update_if_present(row, expected_version, logged)
            .await?;
        guarded.end_guarded(true).await?;
        Ok(Some(written.is_some()))
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        let mut params = vec![Param::text(id), Param::Instant(now)];
        // Without an absolute lifetime, the row's age is neither checked nor read.
        if born.is_none() {
            let Some(row) = self
                .query_first(&self.statements().find_unexpired_any_age, params)
                .await?
            else {
                return Ok(None);
            };
            return Ok(Some(FoundRow {
                data: row.bytes(0)?,
                created_at: None,
                version: row.integer(1)?,
                user_key: row.optional_text(2)?,
                long_lived: None,
            }));
        }
        params.extend(born_after(born, long_born));
        let Some(row) = self
            .query_first(&self.statements().find_unexpired, params)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(FoundRow {
            data: row.bytes(0)?,
            created_at: Some(row.instant(1)?),
            version: row.integer(2)?,
            user_key: row.optional_text(3)?,
            long_lived: Some(row.boolean(4)?),
        }))
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        let params = vec![Param::text(id)];
        let log = Log::Ended(history::kind::DELETED, OffsetDateTime::now_utc());
        written(self, &self.statements().delete_by_id, params, log).await?;
        Ok(())
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        long_born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let statements = self.statements();
        let outlived = born_before.map(|short| (short, long_born_before.unwrap_or(short)));
        let log = Log::Cleanup(now, outlived);
        let (now, limit) = (Param::Instant(now), Param::count(limit));
        let (sql, params) = match born_before {
            None => (
                &statements.delete_expired_batch,
                statements.delete_expired_values(now, limit),
            ),
            Some(born_before) => (
                &statements.delete_outlived_batch,
                statements.delete_outlived_values(
                    now,
                    born_after(Some(born_before), long_born_before),
                    limit,
                ),
            ),
        };
        Ok(written(self, sql, params, log).await?)
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        let mut params = vec![Param::text(user_key), Param::Instant(now)];
        params.extend(born_after(born, long_born));
        let rows = self
            .query(&self.statements().find_unexpired_by_user, params)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UserSessionRow {
                    id: row.key(0)?,
                    expires_at: row.instant(1)?,
                    created_at: row.instant(2)?,
                    saved_at: row.instant(3)?,
                    listed_values: row.optional_text(4)?,
                    long_lived: row.boolean(5)?,
                })
            })
            .collect()
    }

    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let per_user = &self.statements().per_user;
        let log = Log::Ended(history::kind::TRIMMED, now);
        let (user, now, born) = (
            Param::text(user_key),
            Param::Instant(now),
            born_after(born, long_born),
        );
        let params = PerUser::trim_values(
            self.dialect(),
            user.clone(),
            now.clone(),
            born.clone(),
            Param::count(keep),
        );
        let mut checks = vec![user, now];
        checks.extend(born);
        let deletes = &per_user.delete_live_keys;
        delete_per_user(self, &per_user.trim, params, deletes, checks, log).await
    }

    async fn delete_by_user<'a>(
        &self,
        user_key: &str,
        except: Option<&'a str>,
    ) -> Result<u64, RepositoryError> {
        let per_user = &self.statements().per_user;
        let user = Param::text(user_key);
        let (sql, params) = match except {
            None => (&per_user.delete_by_user, vec![user.clone()]),
            Some(keep) => (
                &per_user.delete_by_user_except,
                vec![user.clone(), Param::text(keep)],
            ),
        };
        let log = Log::Ended(history::kind::REVOKED, OffsetDateTime::now_utc());
        delete_per_user(self, sql, params, &per_user.delete_keys, vec![user], log).await
    }

    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError> {
        let params = vec![Param::text(user_key), Param::text(id)];
        let sql = &self.statements().delete_by_user_and_id;
        let log = Log::Ended(history::kind::REVOKED, OffsetDateTime::now_utc());
        Ok(written(self, sql, params, log).await? > 0)
    }

    async fn count_unexpired<'a>(
        &self,
        user_key: Option<&'a str>,
        now: OffsetDateTime,
        born: Option<OffsetDateTime>,
        long_born: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        let ending = &self.statements().ending;
        let (sql, mut params) = match user_key {
            None => (&ending.count, Vec::new()),
            Some(user) => (&ending.count_by_user, vec![Param::text(user)]),
        };
        params.push(Param::Instant(now));
        params.extend(born_after(born, long_born));
        let rows = self.query(sql, params).await?;
        let count = match rows.first() {
            Some(row) => row.integer(0)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn delete_created_before_batch<'a>(
        &self,
        before: OffsetDateTime,
        user_key: Option<&'a str>,
        limit: u64,
    ) -> Result<(u64, u64), RepositoryError> {
        let ending = &self.statements().ending;
        let (sql, deletes, mut params) = match user_key {
            None => (
                &ending.created_before,
                &ending.delete_keys,
                vec![Param::Instant(before)],
            ),
            Some(user) => (
                &ending.created_before_by_user,
                &ending.delete_user_keys,
                vec![Param::Instant(before), Param::text(user)],
            ),
        };
        params.push(Param::count(limit));
        let log = Log::Ended(history::kind::REVOKED, OffsetDateTime::now_utc());
        if !deletes.is_empty() {
            // MySQL and Citus: the keys, then deletes by key that check the instant (and the
            // user) again.
            let mut checks = vec![Param::Instant(before)];
            checks.extend(user_key.map(Param::text));
            return delete_keys_read_by(self, sql, params, deletes, checks, log).await;
        }
        match self.dialect() {
            // One writing statement at a time: what it found, it deleted.
            Dialect::Sqlite => {
                let deleted = delete_retrying(self, sql, params, log).await?;
                Ok((deleted, deleted))
            }
            // The batch returns `deleted, found` (with the history, logged in it).
            Dialect::Postgres | Dialect::MySql => {
                let mut attempt = 1;
                loop {
                    match self.query(sql, params.clone()).await {
                        Ok(rows) => {
                            let Some(row) = rows.first() else {
                                return Ok((0, 0));
                            };
                            let count = |index| {
                                row.integer(index)
                                    .map(|n| u64::try_from(n).unwrap_or_default())
                            };
                            return Ok((count(0)?, count(1)?));
                        }
                        Err(err) if attempt < DELETE_ATTEMPTS && err.conflict => attempt += 1,
                        Err(err) => return Err(err.into()),
                    }
                }
            }
        }
    }

    async fn delete_history_before(
        &self,
        before: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        let Some(history) = &self.statements().history else {
            return Ok(0);
        };
        let params = vec![Param::Instant(before), Param::count(limit)];
        Ok(self.execute(&history.delete_before, params).await?.rows)
    }

    async fn history_cursor(&self) -> Result<String, RepositoryError> {
        history::feed_start(self).await
    }

    async fn history_since(
        &self,
        cursor: &str,
        now: OffsetDateTime,
        settle: std::time::Duration,
    ) -> Result<(String, Vec<history::FeedRow>), RepositoryError> {
        history::since(self, cursor, now, settle).await
    }
}

/// The per-user limit that refuses logins (`per_user::Refusing`): a driver in a transaction
/// of its own holding the user's lock, when the user has fewer than `limit` live sessions
/// but `row`; `None`, rolled back, when they have `limit` already.
async fn below_limit<D: SqlDriver>(
    driver: &D,
    row: &SessionRow,
    limit: u64,
    now: OffsetDateTime,
    born: Option<OffsetDateTime>,
    long_born: Option<OffsetDateTime>,
) -> Result<Option<D>, RepositoryError> {
    let Some(user) = row.user_key.as_deref() else {
        return Err(RepositoryError::Statement(
            "a login checked against the per-user limit needs a user".to_owned(),
        ));
    };
    let refusing = &driver.statements().per_user.refusing;
    let dialect = driver.dialect();
    let (lock, release) = refusing.lock_values(dialect, user, &row.id);
    let release = (!refusing.release.is_empty()).then(|| (refusing.release.clone(), release));
    let guarded = driver.begin_guarded(release).await?;
    match dialect {
        // 1 when locked; 0 when another login of the user held it too long.
        Dialect::MySql => {
            let locked = guarded.query(&refusing.lock, lock).await?;
            if locked.first().map(|row| row.integer(0)).transpose()? != Some(1) {
                return Err(RepositoryError::Unavailable(format!(
                    "another login of the same user held the per-user limit's lock for {} s",
                    super::per_user::LOCK_WAIT_SECONDS
                )));
            }
        }
        Dialect::Postgres | Dialect::Sqlite => {
            guarded.execute(&refusing.lock, lock).await?;
        }
    }
    let mut params = vec![Param::text(user), Param::text(&row.id), Param::Instant(now)];
    params.extend(born_after(born, long_born));
    let counted = guarded.query(&refusing.count, params).await?;
    let others = match counted.first() {
        Some(row) => u64::try_from(row.integer(0)?).unwrap_or_default(),
        None => 0,
    };
    if others >= limit {
        guarded.end_guarded(false).await?;
        return Ok(None);
    }
    Ok(Some(guarded))
}

/// A save's entries on SQLite and MySQL, from the row's `(user_key, listed_values)` before
/// and its `(user_key, key, listed_values)` after: a sign-in when it gave the row a user it
/// did not have, a sign-out when it took one away (with the listed values it had), both when
/// the user changed.
fn save_entries(
    (previous, previous_listed): (Option<String>, Option<String>),
    (user, key, listed): (Option<String>, &str, Option<String>),
    at: OffsetDateTime,
) -> Vec<Vec<Param>> {
    let mut entries = Vec::new();
    if user != previous {
        if let Some(user) = user {
            entries.push(entry(user, history::kind::SIGNED_IN, at, key, listed));
        }
        if let Some(previous) = previous {
            entries.push(entry(
                previous,
                history::kind::SIGNED_OUT,
                at,
                key,
                previous_listed,
            ));
        }
    }
    entries
}

/// Runs the delete `sql` with `params` and returns how many rows it deleted, running it again
/// when it loses a conflict ([`DELETE_ATTEMPTS`]): for the per-user deletes only, which decide
/// anew what to delete each time.
async fn delete_retrying<D: SqlDriver>(
    driver: &D,
    sql: &str,
    params: Vec<Param>,
    log: Log,
) -> Result<u64, RepositoryError> {
    let mut attempt = 1;
    loop {
        match written(driver, sql, params.clone(), log).await {
            Ok(rows) => return Ok(rows),
            Err(err) if attempt < DELETE_ATTEMPTS && err.conflict => {
                tracing::debug!(
                    attempt,
                    "a per-user delete lost a conflict; running it again"
                );
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// A per-user delete. PostgreSQL and SQLite: `sql` with `params`, [retried](delete_retrying).
/// MySQL and a table distributed by Citus (where `deletes` are given): the keys `sql` returns (a
/// plain read, which locks nothing), deleted by key with `deletes`, each also binding `checks`
/// (the user, and for the trim the row's liveness) to re-check every row as it is once locked.
async fn delete_per_user<D: SqlDriver>(
    driver: &D,
    sql: &str,
    params: Vec<Param>,
    deletes: &KeyedDeletes,
    checks: Vec<Param>,
    log: Log,
) -> Result<u64, RepositoryError> {
    if deletes.is_empty() {
        return delete_retrying(driver, sql, params, log).await;
    }
    let (deleted, _found) = delete_keys_read_by(driver, sql, params, deletes, checks, log).await?;
    Ok(deleted)
}

/// MySQL and Citus: the keys `sql` returns (a plain read, which locks nothing), deleted by key
/// with `deletes`, each also binding `checks`; returns how many were deleted, and read.
async fn delete_keys_read_by<D: SqlDriver>(
    driver: &D,
    sql: &str,
    params: Vec<Param>,
    deletes: &KeyedDeletes,
    checks: Vec<Param>,
    log: Log,
) -> Result<(u64, u64), RepositoryError> {
    // MySQL's as bytes, bound back as bytes: a key another tool wrote need not be UTF-8.
    // PostgreSQL's are `text`, UTF-8 by the database's encoding.
    let keys = driver
        .query(sql, params)
        .await?
        .iter()
        .map(|row| match driver.dialect() {
            Dialect::MySql => row.bytes(0).map(|key| Param::Bytes(Some(key))),
            Dialect::Postgres | Dialect::Sqlite => row.key(0).map(|key| Param::Text(Some(key))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A key read here may be gone by its delete (another trim or logout got there first): the
    // delete then finds nothing. Each delete is retried on its own.
    let mut deleted = 0;
    for chunk in keys.chunks(MAX_KEYS_PER_DELETE) {
        let Some((count, sql)) = deletes.for_keys(chunk.len()) else {
            continue;
        };
        let mut params = padded(chunk, count);
        params.extend(checks.iter().cloned());
        deleted += delete_retrying(driver, sql, params, log).await?;
    }
    Ok((deleted, u64::try_from(keys.len()).unwrap_or(u64::MAX)))
}
