//! The login history (opt-in, `with_login_history`): an append-only table beside the session
//! table, written **in the same statement** as the change it records (SQLite: in the same
//! transaction), so a history row exists exactly when its change committed.
//!
//! PostgreSQL: each writing statement becomes a data-modifying CTE, the
//! statement itself with a `RETURNING` of the row's user key, key and listed values, then an
//! `INSERT` into the history of what it returned, then a `SELECT` of what the repository reads
//! (the rows written, or a save's report). One statement, one round trip, one transaction;
//! PgBouncer in transaction mode and hash partitions see nothing new. Without the history the
//! statements are untouched: [`wrap`] is not called.
//!
//! SQLite: see [`RETURNING`] and `wrap_sqlite`. MySQL/MariaDB: each write in a transaction
//! that reads its rows `FOR UPDATE` first (see `mysql_history.rs`).
//!
//! A history row never holds the session's key (its id, or its hash in hashed mode): it holds
//! the session's handle, the one-way hash the device list shows ([`HANDLE_CONTEXT`]), computed
//! by the statement from the key it wrote (on SQLite, by the repository).

use super::{
    columns::RowStatement,
    dialect::{Dialect, POSTGRES_EARLIEST_SQL, POSTGRES_LATEST_SQL, POSTGRES_SNAPSHOT_SQL},
    driver::{Param, SqlDriver, SqlRow},
    identifier::quote,
    per_user::KeyedDeletes,
    SessionTable, Statements,
};
use crate::{
    domain::{HistoryRow, SessionError},
    ports::RepositoryError,
};

/// What [`SessionHandle::of_key`](crate::SessionHandle) hashes before the key: the handle the
/// statement computes is the one the device list shows.
pub(crate) const HANDLE_CONTEXT: &[u8] = b"tower-sessions-seaorm-store/session-handle/v1\0";

/// The history table's name: the session table's, with this suffix, in its schema.
pub(crate) const SUFFIX: &str = "_history";

/// The longest session table name a history fits beside: its index names
/// (`<table>_history_user_idx`) stay within PostgreSQL's 63 bytes.
pub(crate) const MAX_TABLE_LEN: usize = 63 - "_history_user_idx".len();

/// The kinds a history row records, as the `kind` column holds them.
pub(crate) mod kind {
    pub(crate) const SIGNED_IN: &str = "signed_in";
    pub(crate) const SIGNED_OUT: &str = "signed_out";
    pub(crate) const DELETED: &str = "deleted";
    pub(crate) const REVOKED: &str = "revoked";
    pub(crate) const TRIMMED: &str = "trimmed";
    pub(crate) const LIFETIME: &str = "lifetime";
    pub(crate) const EXPIRED: &str = "expired";
}

/// The history table, quoted: `"schema"."<table>_history"` on PostgreSQL, `"<table>_history"`
/// on SQLite.
pub(crate) fn quoted(table: &SessionTable, dialect: Dialect) -> String {
    let name = quote(dialect, &format!("{}{SUFFIX}", table.table()));
    match dialect {
        Dialect::Postgres => format!("{}.{name}", quote(dialect, table.schema())),
        Dialect::Sqlite | Dialect::MySql => name,
    }
}

/// What SQLite's writes return for the history: `user_key, id, listed_values, created_at`.
pub(crate) const RETURNING: &str =
    "RETURNING \"user_key\", \"id\", \"listed_values\", \"created_at\", \"long_lived\"";

/// SQLite: each write `RETURNING` what its entries need ([`RETURNING`]), for the repository
/// to insert them in the same transaction (`SqlDriver::logged`). SQLite has no data-modifying
/// CTE, and a trigger cannot name the session by its handle (SQLite has no SHA-256) nor know
/// why a row was deleted; the transaction costs nothing extra in a database with one writer
/// at a time.
fn wrap_sqlite(mut statements: Statements, table: &SessionTable) -> Statements {
    let returning = |sql: &mut String| {
        sql.push(' ');
        sql.push_str(RETURNING);
    };
    returning(&mut statements.insert_if_absent);
    // `update_if_version` stays plain: see `wrap_saves`.
    for save in [
        &mut statements.update_if_present,
        &mut statements.update_if_present_reporting,
        &mut statements.update_if_version_reporting,
    ] {
        returning(&mut save.sql);
    }
    returning(&mut statements.delete_by_id);
    returning(&mut statements.delete_by_user_and_id);
    returning(&mut statements.per_user.trim);
    returning(&mut statements.per_user.delete_by_user);
    returning(&mut statements.per_user.delete_by_user_except);
    returning(&mut statements.delete_expired_batch);
    returning(&mut statements.delete_outlived_batch);
    statements.history = Some(HistoryStatements::new(table, Dialect::Sqlite));
    statements
}

/// The handle of the session stored under the key `key` (a column expression), in SQL: the
/// first 16 bytes of SHA-256(context ‖ key), in hex, as `SessionHandle::of_key` computes it.
fn handle(key: &str) -> String {
    let context: String = HANDLE_CONTEXT.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "left(encode(sha256(decode('{context}', 'hex') || convert_to({key}, 'UTF8')), 'hex'), 32)"
    )
}

/// `INSERT INTO <history> (…) SELECT <user>, <kind>, <at>, handle(<key>), <listed> FROM <from>
/// WHERE <user> IS NOT NULL<and>`.
pub(crate) fn log(
    history: &str,
    from: &str,
    [user, kind, at, key, listed]: [&str; 5],
    and: &str,
) -> String {
    format!(
        "INSERT INTO {history} (\"user_key\", \"kind\", \"at\", \"handle\", \"listed_values\") \
         SELECT {user}, {kind}, {at}, {}, {listed} FROM \"{from}\" WHERE {user} IS NOT NULL{and}",
        handle(key)
    )
}

/// A delete, ending what it deletes with `kind` (a SQL expression) at `at`: returns the count
/// of rows it deleted, as one row.
fn ended(history: &str, delete: &str, kind: &str, at: &str) -> String {
    let returning =
        "RETURNING \"user_key\", \"id\", \"listed_values\", \"created_at\", \"long_lived\"";
    format!(
        "WITH \"ended\" AS ({delete} {returning}), \"logged\" AS ({}) SELECT count(*) FROM \"ended\"",
        log(
            history,
            "ended",
            ["\"user_key\"", kind, at, "\"id\"", "\"listed_values\""],
            ""
        )
    )
}

/// A save with the history: the reporting form (which reads the row's previous user key `FOR
/// UPDATE`), also reading its previous listed values, logging a sign-in when it gave the row a
/// user it did not have and a sign-out when it took one away (both when the user changed),
/// and returning the report as one row (none when nothing was written).
fn save(history: &str, reporting: RowStatement, target: &str) -> RowStatement {
    let (update, _report) = reporting
        .sql
        .rsplit_once(" RETURNING ")
        .expect("a reporting save on PostgreSQL returns its report");
    let update = update.replacen(
        "AS \"previous_user_key\" FROM",
        "AS \"previous_user_key\", \"listed_values\" AS \"previous_listed\" FROM",
        1,
    );
    let returning = format!(
        "RETURNING \"previous\".\"previous_user_key\" AS \"before\", \"previous\".\"previous_listed\", \
         {target}.\"user_key\" AS \"after\", {target}.\"id\", {target}.\"listed_values\", \
         {target}.\"updated_at\""
    );
    let signed_in = log(
        history,
        "written",
        [
            "\"after\"",
            &format!("'{}'", kind::SIGNED_IN),
            "\"updated_at\"",
            "\"id\"",
            "\"listed_values\"",
        ],
        " AND \"after\" IS DISTINCT FROM \"before\"",
    );
    let signed_out = log(
        history,
        "written",
        [
            "\"before\"",
            &format!("'{}'", kind::SIGNED_OUT),
            "\"updated_at\"",
            "\"id\"",
            "\"previous_listed\"",
        ],
        " AND \"before\" IS DISTINCT FROM \"after\"",
    );
    // Two inserts, two CTEs: each `INSERT … SELECT` reads the one `RETURNING`.
    RowStatement {
        sql: format!(
            "WITH \"written\" AS ({update} {returning}), \"signed_in\" AS ({signed_in}), \
             \"signed_out\" AS ({signed_out}) SELECT \"before\" IS DISTINCT FROM \"after\" FROM \
             \"written\""
        ),
        binds: reporting.binds,
    }
}

/// `statements` with the history written by each of their writes (PostgreSQL; `statements`
/// unchanged elsewhere). Every write then returns rows, read with `query`:
/// - `insert_if_absent`, the deletes: one row, the count of rows written;
/// - the saves: one boolean when the row was written (whether it changed hands), none when not.
pub(crate) fn wrap(mut statements: Statements, table: &SessionTable) -> Statements {
    match statements.dialect() {
        Dialect::Postgres => {}
        Dialect::Sqlite => return wrap_sqlite(statements, table),
        Dialect::MySql => {
            // The writes stay as they are: the repository sends each that logs in a
            // transaction, after the locking read of its rows (`mysql_history.rs`).
            statements.history = Some(super::mysql_history::statements(table));
            return statements;
        }
    }
    let history = quoted(table, Dialect::Postgres);
    statements.insert_if_absent = format!(
        "WITH \"written\" AS ({} RETURNING \"user_key\", \"id\", \"listed_values\", \
         \"updated_at\"), \"logged\" AS ({}) SELECT count(*) FROM \"written\"",
        statements.insert_if_absent,
        log(
            &history,
            "written",
            [
                "\"user_key\"",
                &format!("'{}'", kind::SIGNED_IN),
                "\"updated_at\"",
                "\"id\"",
                "\"listed_values\"",
            ],
            ""
        )
    );
    statements = wrap_saves(statements, table, false);

    // The deletes without a "now" in the port record the statement's own instant.
    let now = "statement_timestamp()";
    let deleted = format!("'{}'", kind::DELETED);
    let revoked = format!("'{}'", kind::REVOKED);
    statements.delete_by_id = ended(&history, &statements.delete_by_id, &deleted, now);
    statements.delete_by_user_and_id =
        ended(&history, &statements.delete_by_user_and_id, &revoked, now);
    let per_user = &mut statements.per_user;
    per_user.delete_by_user = ended(&history, &per_user.delete_by_user, &revoked, now);
    per_user.delete_by_user_except =
        ended(&history, &per_user.delete_by_user_except, &revoked, now);
    // The trim's `$2` is "now"; the cleanup's `$1` is "now" and, outliving, `$2` the instant
    // at or before which a session was created too long ago, `$3` the same for a long-lived
    // one: a long-lived session deleted for its idle expiry past `$2` (but not `$3`) expired.
    per_user.trim = ended(
        &history,
        &per_user.trim,
        &format!("'{}'", kind::TRIMMED),
        "$2",
    );
    statements.delete_expired_batch = ended(
        &history,
        &statements.delete_expired_batch,
        &format!("'{}'", kind::EXPIRED),
        "$1",
    );
    statements.delete_outlived_batch = ended(
        &history,
        &statements.delete_outlived_batch,
        &format!(
            "CASE WHEN \"created_at\" <= $2 AND (NOT \"long_lived\" OR \"created_at\" <= $3) \
             THEN '{}' ELSE '{}' END",
            kind::LIFETIME,
            kind::EXPIRED
        ),
        "$1",
    );
    statements.history = Some(HistoryStatements::new(table, Dialect::Postgres));
    statements
}

/// `statements` with saves that log (PostgreSQL), `quiet` as [`Statements::with_quiet_saves`]
/// makes them: every save takes the reporting form, which reads the row's previous user key.
pub(crate) fn wrap_saves(
    mut statements: Statements,
    table: &SessionTable,
    quiet: bool,
) -> Statements {
    let (history, target) = (
        quoted(table, Dialect::Postgres),
        table.quoted(Dialect::Postgres),
    );
    let [_, plain_version, present, version] =
        super::statements::saves(Dialect::Postgres, table, quiet);
    statements.update_if_present = save(&history, present.clone(), &target);
    statements.update_if_present_reporting = save(&history, present, &target);
    // A save checked against a version whose user key it keeps cannot sign anyone in or out
    // (every write moves the version): the store sends those unreported, and they log nothing.
    statements.update_if_version = plain_version;
    statements.update_if_version_reporting = save(&history, version, &target);
    statements
}

/// The history's own statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryStatements {
    /// `user_key, limit`: `kind, at, handle, listed_values`, newest first.
    pub find_by_user: String,
    /// `before, limit`: deletes at most `limit` rows recorded before `before`.
    pub delete_before: String,
    /// SQLite: `user_key, kind, at, handle, listed_values`, one entry.
    pub insert: String,
    /// SQLite: `id`: a write of the row that changes nothing, so a save's transaction holds
    /// the write lock before it reads the row's previous user key.
    pub lock: String,
    /// SQLite: `id`: the row's `user_key, listed_values` before the save.
    pub previous: String,
    /// The events' reader ([`since`]): a cursor where it starts, with nothing to read yet.
    pub feed_start: String,
    /// The events' reader ([`since`]): `cursor`: the entries committed after it, oldest first,
    /// as `cursor', user_key, kind, at, handle, listed_values` (PostgreSQL: one row with nulls
    /// when there are none).
    pub feed_read: String,
    /// MySQL: the entries with these `seq`s (the cursor's gaps), as `feed_read`'s rows.
    pub feed_gaps: KeyedDeletes,
    /// MySQL: the rows with these keys, deleted (the cleanup's, after its locking read).
    pub delete_keys: KeyedDeletes,
    /// MySQL: several entries in one insert, as `insert`'s values one after the other.
    pub insert_rows: KeyedDeletes,
}

impl HistoryStatements {
    fn new(table: &SessionTable, dialect: Dialect) -> Self {
        let history = quoted(table, dialect);
        if dialect != Dialect::Postgres {
            let target = table.quoted(dialect);
            return Self {
                find_by_user: format!(
                    "SELECT \"kind\", \"at\", \"handle\", \"listed_values\" FROM {history} \
                     WHERE \"user_key\" = ? ORDER BY \"at\" DESC, \"seq\" DESC LIMIT ?"
                ),
                delete_before: format!(
                    "DELETE FROM {history} WHERE \"seq\" IN (SELECT \"seq\" FROM {history} \
                     WHERE \"at\" < ? LIMIT ?)"
                ),
                insert: format!(
                    "INSERT INTO {history} (\"user_key\", \"kind\", \"at\", \"handle\", \
                     \"listed_values\") VALUES (?, ?, ?, ?, ?)"
                ),
                lock: format!("UPDATE {target} SET \"id\" = \"id\" WHERE \"id\" = ?"),
                previous: format!(
                    "SELECT \"user_key\", \"listed_values\" FROM {target} WHERE \"id\" = ?"
                ),
                // One writer at a time: the entries commit in `seq` order (AUTOINCREMENT never
                // reuses one), so "after the last `seq` read" is exactly "not read yet".
                feed_start: format!(
                    "SELECT CAST(coalesce(max(\"seq\"), 0) AS text) FROM {history}"
                ),
                feed_read: format!(
                    "SELECT CAST(\"seq\" AS text), \"user_key\", \"kind\", \"at\", \"handle\", \
                     \"listed_values\" FROM {history} WHERE \"seq\" > CAST(? AS integer) \
                     ORDER BY \"seq\" LIMIT {FEED_PAGE}"
                ),
                feed_gaps: KeyedDeletes::default(),
                delete_keys: KeyedDeletes::default(),
                insert_rows: KeyedDeletes::default(),
            };
        }
        Self {
            insert: String::new(),
            lock: String::new(),
            previous: String::new(),
            find_by_user: format!(
                "SELECT \"kind\", least(greatest(\"at\", {POSTGRES_EARLIEST_SQL}), \
                 {POSTGRES_LATEST_SQL}), \"handle\", \"listed_values\" FROM {history} WHERE \
                 \"user_key\" = $1 ORDER BY \"at\" DESC, \"seq\" DESC LIMIT $2"
            ),
            delete_before: format!(
                "DELETE FROM {history} WHERE \"seq\" IN (SELECT \"seq\" FROM {history} WHERE \
                 \"at\" < $1 LIMIT $2)"
            ),
            feed_start: POSTGRES_SNAPSHOT_SQL.to_owned(),
            // The entries of the transactions the previous read's snapshot (`$1`) could not
            // see and this one's can: each committed entry is read exactly once, whatever order
            // the writes commit in and however long a transaction stays open elsewhere (the
            // read cache's eviction log is read the same way: `eviction::log_read_sql`). The
            // range on `xid` uses its index. (`$1` is text: tokio-postgres binds a string to
            // a text parameter only.)
            feed_read: format!(
                "WITH \"now\" AS (SELECT txid_current_snapshot() AS \"s\") \
                 SELECT \"now\".\"s\"::text, h.\"user_key\", h.\"kind\", \
                 least(greatest(h.\"at\", {POSTGRES_EARLIEST_SQL}), {POSTGRES_LATEST_SQL}), \
                 h.\"handle\", h.\"listed_values\" FROM \"now\" LEFT JOIN {history} AS h \
                 ON h.\"xid\" >= txid_snapshot_xmin($1::text::txid_snapshot) \
                 AND NOT txid_visible_in_snapshot(h.\"xid\", $1::text::txid_snapshot) \
                 ORDER BY h.\"seq\""
            ),
            feed_gaps: KeyedDeletes::default(),
            delete_keys: KeyedDeletes::default(),
            insert_rows: KeyedDeletes::default(),
        }
    }
}

/// The newest `limit` history rows of `user`: one indexed query.
pub(crate) async fn find<D: SqlDriver>(
    driver: &D,
    user: &str,
    limit: u64,
) -> Result<Vec<HistoryRow>, RepositoryError> {
    let Some(history) = &driver.statements().history else {
        return Ok(Vec::new());
    };
    let params = vec![Param::text(user), Param::count(limit)];
    let rows = driver.query(&history.find_by_user, params).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.key(0)?,
                row.instant(1)?,
                row.key(2)?,
                row.optional_text(3)?,
            ))
        })
        .collect()
}

/// The most entries one read of SQLite's history returns: a reader far behind catches up over
/// several reads.
const FEED_PAGE: u32 = 1000;

/// Where the events' reader starts: a cursor past every entry committed so far.
pub(crate) async fn feed_start<D: SqlDriver>(driver: &D) -> Result<String, RepositoryError> {
    let history = history_statements(driver)?;
    if driver.dialect() == Dialect::MySql {
        return super::mysql_history::feed_start(driver, history).await;
    }
    let rows = driver.query(&history.feed_start, Vec::new()).await?;
    match rows.first() {
        Some(row) => row.key(0),
        None => Err(RepositoryError::CorruptRow(
            "the login history's cursor statement returned no row".to_owned(),
        )),
    }
}

/// The entries committed after `cursor`, oldest first, and the cursor after them. On MySQL,
/// `now` and `settle` bound how long a missing entry is waited for (see `mysql_history.rs`).
pub(crate) async fn since<D: SqlDriver>(
    driver: &D,
    cursor: &str,
    now: time::OffsetDateTime,
    settle: std::time::Duration,
) -> Result<(String, Vec<FeedRow>), RepositoryError> {
    let history = history_statements(driver)?;
    if driver.dialect() == Dialect::MySql {
        return super::mysql_history::since(driver, history, cursor, now, settle).await;
    }
    let rows = driver
        .query(&history.feed_read, vec![Param::text(cursor)])
        .await?;
    feed_rows(cursor, &rows)
}

/// What [`HistoryStatements::feed_read`] returned after `cursor`: the entries, oldest first,
/// and the cursor after them. (The read cache's listener reads the same statement over its
/// own connection, `cache/pg_events.rs`.)
pub(crate) fn feed_rows<R: SqlRow>(
    cursor: &str,
    rows: &[R],
) -> Result<(String, Vec<FeedRow>), RepositoryError> {
    let mut next = cursor.to_owned();
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        next = row.key(0)?;
        // PostgreSQL's one row when nothing is new: the snapshot and nulls.
        let Some(user) = row.optional_text(1)? else {
            continue;
        };
        entries.push((
            user,
            row.key(2)?,
            row.instant(3)?,
            row.key(4)?,
            row.optional_text(5)?,
        ));
    }
    Ok((next, entries))
}

/// An entry as the events' reader returns it: `user_key, kind, at, handle, listed_values`.
pub(crate) type FeedRow = crate::ports::HistoryEntry;

fn history_statements<D: SqlDriver>(driver: &D) -> Result<&HistoryStatements, RepositoryError> {
    driver.statements().history.as_ref().ok_or_else(|| {
        RepositoryError::Statement("this store keeps no login history to read".to_owned())
    })
}

/// Checks that `table` can have a history (on any dialect), for a store whose user key is
/// `has_user_key`, and returns it with one.
pub(crate) fn checked(
    table: &SessionTable,
    has_user_key: bool,
) -> Result<SessionTable, SessionError> {
    let refuse = |why: &str| Err(SessionError::InvalidConfiguration(why.to_owned()));
    if !has_user_key {
        return refuse(
            "the login history records a user's sign-ins: call `.with_user_key(…)` before \
             `.with_login_history(…)`",
        );
    }
    if table.distributed() {
        return refuse(
            "the login history on a table distributed by Citus was not tried; choose one",
        );
    }
    if table.table().len() > MAX_TABLE_LEN {
        return refuse(&format!(
            "the login history's names (`<table>_history_user_idx`) need a table name of at \
             most {MAX_TABLE_LEN} bytes; shorten it"
        ));
    }
    Ok(table.clone().with_history())
}

/// What `migrate()` runs for the history: the migration crate's
/// [`AddLoginHistory`](tower_sessions_seaorm_migration::AddLoginHistory) statements (the table
/// and its indexes, if missing; on PostgreSQL the `xid` column the events' reader compares
/// with its snapshots, and the trigger that logs a `DELETE` the store did not make as
/// `removed`).
#[cfg(feature = "migration")]
pub(crate) fn create_sql(table: &SessionTable, dialect: Dialect) -> Vec<String> {
    use sea_orm::DbBackend;
    let backend = match dialect {
        Dialect::Postgres => DbBackend::Postgres,
        Dialect::Sqlite => DbBackend::Sqlite,
        Dialect::MySql => DbBackend::MySql,
    };
    tower_sessions_seaorm_migration::AddLoginHistory::new(table.schema(), table.table())
        .statements(backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SessionHandle;

    /// The migration crate computes handles as the store does (its trigger names sessions by
    /// the handle the store's statements log).
    #[cfg(feature = "migration")]
    #[test]
    fn the_migrations_handle_is_the_stores() {
        assert_eq!(
            HANDLE_CONTEXT,
            tower_sessions_seaorm_migration::HANDLE_CONTEXT
        );
        assert_eq!(
            handle("\"id\""),
            tower_sessions_seaorm_migration::postgres_handle_sql("\"id\"")
        );
    }

    #[test]
    fn the_handle_context_is_the_device_lists() {
        // The SQL hashes the same bytes: checked against the database in tests/login_history.rs.
        let handle = SessionHandle::of_key("k");
        assert_eq!(handle.as_str().len(), 32);
        assert!(handle_sql_names_the_context());
    }

    fn handle_sql_names_the_context() -> bool {
        handle("\"id\"").contains("746f7765722d")
    }

    #[test]
    fn without_the_history_nothing_changes() {
        let table = SessionTable::default();
        for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::MySql] {
            assert!(Statements::new(dialect, &table).history.is_none());
        }
        // MySQL's writes stay the same with the history: the repository sends those that log
        // in a transaction, after a locking read (`mysql_history.rs`).
        let mut mysql = Statements::new(Dialect::MySql, &table.clone().with_history());
        assert!(mysql.history.take().is_some());
        assert_eq!(mysql, Statements::new(Dialect::MySql, &table));
    }

    #[test]
    fn sqlite_writes_return_what_their_entries_need() {
        let table = SessionTable::default().with_history();
        let s = Statements::new(Dialect::Sqlite, &table);
        let plain = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            s.delete_by_id,
            format!("{} {RETURNING}", plain.delete_by_id)
        );
        assert_eq!(
            s.update_if_version_reporting.sql,
            format!("{} {RETURNING}", plain.update_if_version_reporting.sql)
        );
        assert_eq!(
            s.update_if_version_reporting.binds,
            plain.update_if_version_reporting.binds
        );
        // Unreported, a version-checked save keeps its user key: nothing to log.
        assert_eq!(s.update_if_version, plain.update_if_version);
        assert_eq!(
            s.history.unwrap().insert,
            r#"INSERT INTO "session_history" ("user_key", "kind", "at", "handle", "listed_values") VALUES (?, ?, ?, ?, ?)"#
        );
    }

    #[test]
    fn every_write_logs_in_the_same_statement() {
        let table = SessionTable::default().with_history();
        let s = Statements::new(Dialect::Postgres, &table);
        for sql in [
            &s.insert_if_absent,
            &s.update_if_present.sql,
            &s.update_if_version_reporting.sql,
            &s.delete_by_id,
            &s.delete_by_user_and_id,
            &s.per_user.trim,
            &s.per_user.delete_by_user,
            &s.per_user.delete_by_user_except,
            &s.delete_expired_batch,
            &s.delete_outlived_batch,
        ] {
            assert!(sql.starts_with("WITH "), "{sql}");
            assert!(
                sql.contains("INSERT INTO \"tower_sessions\".\"session_history\""),
                "{sql}"
            );
        }
        let plain = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            s.update_if_version_reporting.binds,
            plain.update_if_version_reporting.binds
        );
        // Unreported, a version-checked save keeps its user key: nothing to log.
        assert_eq!(s.update_if_version, plain.update_if_version);
    }

    /// The events' read binds its snapshot as text (tokio-postgres binds a string to text
    /// only) and compares it on the indexed `xid` (which the migration crate's
    /// `AddLoginHistory` adds).
    #[test]
    fn postgres_events_read_by_snapshot_on_the_indexed_xid() {
        let table = SessionTable::default().with_history();
        let history = Statements::new(Dialect::Postgres, &table).history.unwrap();
        assert!(history
            .feed_read
            .contains("h.\"xid\" >= txid_snapshot_xmin($1::text::txid_snapshot)"));
        assert!(history
            .feed_read
            .contains("NOT txid_visible_in_snapshot(h.\"xid\", $1::text::txid_snapshot)"));
    }

    #[test]
    fn postgres_delete_logs_its_rows_by_handle_in_a_data_modifying_cte() {
        let table = SessionTable::default().with_history();
        let s = Statements::new(Dialect::Postgres, &table);
        assert_eq!(
            s.delete_by_id,
            r#"WITH "ended" AS (DELETE FROM "tower_sessions"."session" WHERE "id" = $1 RETURNING "user_key", "id", "listed_values", "created_at", "long_lived"), "logged" AS (INSERT INTO "tower_sessions"."session_history" ("user_key", "kind", "at", "handle", "listed_values") SELECT "user_key", 'deleted', statement_timestamp(), left(encode(sha256(decode('746f7765722d73657373696f6e732d7365616f726d2d73746f72652f73657373696f6e2d68616e646c652f763100', 'hex') || convert_to("id", 'UTF8')), 'hex'), 32), "listed_values" FROM "ended" WHERE "user_key" IS NOT NULL) SELECT count(*) FROM "ended""#
        );
    }
}
