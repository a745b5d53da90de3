//! `sessions count`, `sessions revoke`, `sessions purge-expired`: the operators' commands, on
//! the session table's rows alone (and, with the login history beside it, its new entries).
//!
//! The same statements as the store's (`src/adapters/sql/ending.rs` there; this crate cannot
//! depend on the store, which depends on it): the rows to end are read without locking, at
//! most a batch at a time, then locked in key order and deleted (PostgreSQL in one statement;
//! MySQL reads the keys, then deletes them by primary key; SQLite deletes in one), so a command
//! never deadlocks with the store's per-user deletes, and never skips a session being saved.
//! None of them involves a session id: they work the same with hashed ids. On PostgreSQL the
//! table's triggers evict every listening read cache of what they delete.

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait, Value,
};
use sha2::{Digest, Sha256};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tower_sessions_seaorm_migration::{
    postgres_handle_sql, quote, Runner, TableState, HANDLE_CONTEXT,
};

use crate::args::SessionsCommand;

/// How many rows one statement ends at most: a huge table is worked through in batches, each
/// a short transaction of its own.
const BATCH: u64 = 1000;

/// The session table, its history (when there is one) and the backend.
struct Table {
    backend: DbBackend,
    name: String,
    history: Option<String>,
}

/// Which rows a command counts or ends, and what the history calls their end.
struct Rows {
    /// The SQL condition, with the user (when given) as its one placeholder.
    condition: String,
    user: Option<String>,
    kind: &'static str,
}

pub async fn run(
    runner: &Runner,
    conn: &DatabaseConnection,
    schema: &str,
    table: &str,
    command: SessionsCommand,
) -> Result<(), String> {
    let backend = conn.get_database_backend();
    let failed = |err: DbErr| format!("{} (in {})", err, runner.describe());
    match runner.status(conn).await.map_err(failed)?.table {
        TableState::SessionTable => {}
        TableState::Missing => {
            return Err(format!(
                "{} does not exist: check --schema and --table (or run `up`). Nothing was done.",
                runner.describe()
            ))
        }
        TableState::NotASessionTable { .. } => {
            return Err(format!(
                "{} is not a session table. Nothing was done.",
                runner.describe()
            ))
        }
    }
    let history_name = format!("{table}_history");
    let history = match backend {
        DbBackend::Postgres => format!(
            "{}.{}",
            quote(backend, schema),
            quote(backend, &history_name)
        ),
        _ => quote(backend, &history_name),
    };
    // The history exists when a query of it succeeds.
    let probe = format!("SELECT 1 FROM {history} WHERE 1 = 0");
    let has_history = conn
        .query_all_raw(Statement::from_string(backend, probe))
        .await
        .is_ok();
    // The table as the store's `table_name()` names it, which `revoke --all` wants confirmed.
    let label = match backend {
        DbBackend::Postgres => format!("{schema}.{table}"),
        _ => table.to_owned(),
    };
    let table = Table {
        backend,
        name: runner.describe(),
        history: has_history.then_some(history),
    };
    let now = OffsetDateTime::now_utc();
    let outcome = match command {
        SessionsCommand::Count { user } => {
            let live = format!(
                "{} > {}",
                quote(backend, "expiry_date"),
                instant(backend, now)
            );
            let rows = table.rows(live, user, "");
            let count = table.count(conn, &rows).await.map_err(failed)?;
            println!("{} in {}", sessions(count, "live session"), table.name);
            return Ok(());
        }
        SessionsCommand::Revoke {
            all: Some(confirm),
            dry_run,
            ..
        } => {
            if confirm != label {
                return Err(format!(
                    "sessions revoke --all was not confirmed: give the session table's name \
                     (--all {label}). Nothing was done."
                ));
            }
            (table.rows("1 = 1".to_owned(), None, "revoked"), dry_run)
        }
        SessionsCommand::Revoke {
            user,
            created_before,
            all: None,
            dry_run,
        } => {
            let mut conditions = Vec::new();
            if let Some(before) = &created_before {
                let before = OffsetDateTime::parse(before, &Rfc3339).map_err(|err| {
                    format!(
                        "--created-before {before}: not an RFC 3339 instant ({err}); e.g. \
                         2026-12-04T14:00:00Z. Nothing was done."
                    )
                })?;
                conditions.push(format!(
                    "{} < {}",
                    quote(backend, "created_at"),
                    instant(backend, before)
                ));
            }
            if user.is_none() && conditions.is_empty() {
                return Err(
                    "sessions revoke needs --user, --created-before (or both), or --all. Nothing was \
                     done."
                        .to_owned(),
                );
            }
            let condition = if conditions.is_empty() {
                "1 = 1".to_owned()
            } else {
                conditions.join(" AND ")
            };
            (table.rows(condition, user, "revoked"), dry_run)
        }
        SessionsCommand::PurgeExpired { dry_run } => {
            let expired = format!(
                "{} <= {}",
                quote(backend, "expiry_date"),
                instant(backend, now)
            );
            (table.rows(expired, None, "expired"), dry_run)
        }
    };
    let (rows, dry_run) = outcome;
    if dry_run {
        let count = table.count(conn, &rows).await.map_err(failed)?;
        println!(
            "would end {} in {} (dry run: nothing was deleted)",
            sessions(count, "session"),
            table.name
        );
        return Ok(());
    }
    let mut ended = 0;
    loop {
        let (deleted, found) = table.end_batch(conn, &rows, now).await.map_err(|err| {
            format!(
                "{} after ending {}",
                failed(err),
                sessions(ended, "session")
            )
        })?;
        ended += deleted;
        if found < BATCH {
            break;
        }
    }
    println!("ended {} in {}", sessions(ended, "session"), table.name);
    Ok(())
}

/// `at` as a SQL literal of the table's instant columns: `timestamptz` on PostgreSQL,
/// `datetime(6)` in UTC on MySQL, microseconds since the epoch on SQLite (as the store writes
/// them). Built from a parsed instant, never from text the user typed.
fn instant(backend: DbBackend, at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    );
    match backend {
        DbBackend::Postgres => format!("TIMESTAMPTZ '{text}+00'"),
        DbBackend::MySql => format!("'{text}'"),
        _ => (at.unix_timestamp_nanos().div_euclid(1_000)).to_string(),
    }
}

/// The handle the device list and the history show for the session stored under `key`.
fn handle(key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(HANDLE_CONTEXT)
        .chain_update(key.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Table {
    fn rows(&self, condition: String, user: Option<String>, kind: &'static str) -> Rows {
        let condition = match &user {
            None => condition,
            Some(_) => {
                let placeholder = match self.backend {
                    DbBackend::Postgres => "$1",
                    _ => "?",
                };
                format!(
                    "{condition} AND {} = {placeholder}",
                    quote(self.backend, "user_key")
                )
            }
        };
        Rows {
            condition,
            user,
            kind,
        }
    }

    fn values(rows: &Rows) -> Vec<Value> {
        rows.user
            .iter()
            .map(|user| Value::from(user.clone()))
            .collect()
    }

    async fn count(&self, conn: &DatabaseConnection, rows: &Rows) -> Result<i64, DbErr> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}",
            self.name, rows.condition
        );
        let statement = Statement::from_sql_and_values(self.backend, sql, Self::values(rows));
        match conn.query_one_raw(statement).await? {
            Some(row) => row.try_get_by_index::<i64>(0),
            None => Ok(0),
        }
    }

    /// One batch: ends at most [`BATCH`] of `rows`, and returns how many it ended and found.
    async fn end_batch(
        &self,
        conn: &DatabaseConnection,
        rows: &Rows,
        now: OffsetDateTime,
    ) -> Result<(u64, u64), DbErr> {
        let (backend, target, condition) = (self.backend, &self.name, &rows.condition);
        let id = quote(backend, "id");
        match backend {
            DbBackend::Postgres => {
                let logged = self.history.as_deref().map_or(String::new(), |history| {
                    format!(
                        ", \"logged\" AS (INSERT INTO {history} (\"user_key\", \"kind\", \"at\", \
                         \"handle\", \"listed_values\") SELECT \"user_key\", '{}', \
                         statement_timestamp(), {}, \"listed_values\" FROM \"ended\" WHERE \
                         \"user_key\" IS NOT NULL)",
                        rows.kind,
                        postgres_handle_sql("\"id\"")
                    )
                });
                let sql = format!(
                    "WITH \"candidates\" AS (SELECT {id} FROM {target} WHERE {condition} LIMIT \
                     {BATCH}), \"locked\" AS (SELECT {id} FROM {target} WHERE {id} IN (SELECT \
                     {id} FROM \"candidates\") AND {condition} ORDER BY {id} FOR UPDATE), \
                     \"ended\" AS (DELETE FROM {target} WHERE {id} IN (SELECT {id} FROM \
                     \"locked\") RETURNING \"user_key\", \"id\", \"listed_values\"){logged} \
                     SELECT (SELECT count(*) FROM \"ended\"), (SELECT count(*) FROM \
                     \"candidates\")"
                );
                let statement = Statement::from_sql_and_values(backend, sql, Self::values(rows));
                let Some(row) = conn.query_one_raw(statement).await? else {
                    return Ok((0, 0));
                };
                let (deleted, found): (i64, i64) = row.try_get_many_by_index()?;
                Ok((count(deleted), count(found)))
            }
            DbBackend::MySql => {
                let read = format!(
                    "SELECT {id} FROM {target} WHERE {condition} ORDER BY {id} LIMIT {BATCH}"
                );
                let statement = Statement::from_sql_and_values(backend, read, Self::values(rows));
                let keys = conn
                    .query_all_raw(statement)
                    .await?
                    .iter()
                    .map(|row| row.try_get_by_index::<Vec<u8>>(0))
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.is_empty() {
                    return Ok((0, 0));
                }
                let placeholders = vec!["?"; keys.len()].join(", ");
                let delete = format!(
                    "DELETE {target} FROM {target} FORCE INDEX (PRIMARY) WHERE {id} IN \
                     ({placeholders}) AND {condition}"
                );
                let mut values: Vec<Value> = keys.iter().cloned().map(Value::from).collect();
                values.extend(Self::values(rows));
                let found = count(keys.len() as i64);
                let Some(history) = &self.history else {
                    let deleted = conn
                        .execute_raw(Statement::from_sql_and_values(backend, delete, values))
                        .await?
                        .rows_affected();
                    return Ok((deleted, found));
                };
                // With the history, as the store logs on MySQL: in one transaction, the rows
                // read `FOR UPDATE` by the delete's own condition (in key order), the delete,
                // then an entry for each row with a user, its handle computed here.
                let [user_key, listed] =
                    ["user_key", "listed_values"].map(|column| quote(backend, column));
                let txn = conn.begin().await?;
                let locked = txn
                    .query_all_raw(Statement::from_sql_and_values(
                        backend,
                        format!(
                            "SELECT {user_key}, {id}, {listed} FROM {target} FORCE INDEX (PRIMARY) \
                             WHERE {id} IN ({placeholders}) AND {condition} ORDER BY {id} FOR UPDATE"
                        ),
                        values.clone(),
                    ))
                    .await?;
                let deleted = txn
                    .execute_raw(Statement::from_sql_and_values(backend, delete, values))
                    .await?
                    .rows_affected();
                let mut ended = Vec::new();
                for row in &locked {
                    let (user, key, listed): (Option<Vec<u8>>, Vec<u8>, Option<String>) =
                        row.try_get_many_by_index()?;
                    if let Some(user) = user {
                        ended.push((
                            Value::from(user),
                            String::from_utf8_lossy(&key).into(),
                            listed,
                        ));
                    }
                }
                self.log(&txn, history, rows.kind, now, ended).await?;
                txn.commit().await?;
                Ok((deleted, found))
            }
            _ => {
                let returning = if self.history.is_some() {
                    " RETURNING \"user_key\", \"id\", \"listed_values\""
                } else {
                    ""
                };
                let sql = format!(
                    "DELETE FROM {target} WHERE {id} IN (SELECT {id} FROM {target} WHERE \
                     {condition} LIMIT {BATCH}){returning}"
                );
                let statement = Statement::from_sql_and_values(backend, sql, Self::values(rows));
                let Some(history) = &self.history else {
                    let deleted = conn.execute_raw(statement).await?.rows_affected();
                    return Ok((deleted, deleted));
                };
                // SQLite has no SHA-256: the handles are computed here, and logged in the
                // delete's transaction.
                let txn = conn.begin().await?;
                let ended = txn.query_all_raw(statement).await?;
                let deleted = count(ended.len() as i64);
                let mut entries = Vec::new();
                for row in &ended {
                    let (user, key, listed): (Option<String>, String, Option<String>) =
                        row.try_get_many_by_index()?;
                    if let Some(user) = user {
                        entries.push((Value::from(user), key, listed));
                    }
                }
                self.log(&txn, history, rows.kind, now, entries).await?;
                txn.commit().await?;
                Ok((deleted, deleted))
            }
        }
    }
    /// SQLite and MySQL: the history entries of the rows a delete ended (each `user, key,
    /// listed values`), `kind` at `now`, in the delete's transaction `txn`; the handles
    /// computed here (SQLite has no SHA-256; MySQL's delete returns nothing).
    async fn log(
        &self,
        txn: &DatabaseTransaction,
        history: &str,
        kind: &'static str,
        now: OffsetDateTime,
        ended: Vec<(Value, String, Option<String>)>,
    ) -> Result<(), DbErr> {
        let backend = self.backend;
        let [user_key, kind_column, at, handle_column, listed] =
            ["user_key", "kind", "at", "handle", "listed_values"]
                .map(|column| quote(backend, column));
        let insert = format!(
            "INSERT INTO {history} ({user_key}, {kind_column}, {at}, {handle_column}, {listed}) \
             VALUES (?, ?, {}, ?, ?)",
            instant(backend, now)
        );
        for (user, key, listed) in ended {
            let values = vec![
                user,
                Value::from(kind),
                Value::from(handle(&key)),
                Value::from(listed),
            ];
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                insert.clone(),
                values,
            ))
            .await?;
        }
        Ok(())
    }
}

fn count(rows: i64) -> u64 {
    u64::try_from(rows).unwrap_or_default()
}

/// `count` of `noun`, in the plural unless there is one: "1 session", "3 live sessions".
fn sessions(count: impl Into<i128>, noun: &str) -> String {
    match count.into() {
        1 => format!("1 {noun}"),
        count => format!("{count} {noun}s"),
    }
}
