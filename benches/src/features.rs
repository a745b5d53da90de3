//! What the features beyond the contract cost or save, on `PostgresStore`: a save that changes
//! nothing (what `with_always_save(true)` or a sliding expiry sends on every request) with and
//! without `with_touch_after`, and load/save with `with_hashed_ids`. Time per operation and WAL
//! bytes per operation (what a write costs the server, its replicas and its backups).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use store::{PostgresStore, Record, SessionStore};

use crate::{measure::median, stacks::BoxError};

/// One configuration's figures.
pub struct Row {
    pub label: &'static str,
    pub operation: &'static str,
    /// Median µs per operation over the rounds.
    pub micros: f64,
    /// WAL bytes written per operation (median over the rounds).
    pub wal_bytes: f64,
}

const SESSIONS: usize = 100;

async fn wal_lsn(conn: &DatabaseConnection) -> Result<String, BoxError> {
    let row = conn
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_current_wal_insert_lsn()::text",
        ))
        .await?
        .ok_or("no LSN")?;
    Ok(row.try_get_by_index::<String>(0)?)
}

async fn wal_since(conn: &DatabaseConnection, lsn: &str) -> Result<f64, BoxError> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8",
            [lsn.into()],
        ))
        .await?
        .ok_or("no LSN")?;
    Ok(row.try_get_by_index::<f64>(0)?)
}

/// Runs `rounds` rounds of `ops` operations for each configuration, one client.
pub async fn run(
    conn: &DatabaseConnection,
    template: &Record,
    rounds: usize,
    ops: usize,
) -> Result<Vec<Row>, BoxError> {
    let schema = "features";
    conn.execute_unprepared(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
        .await?;
    let plain = PostgresStore::new(conn.clone()).with_schema_name(schema)?;
    plain.migrate().await?;
    let indexed = plain.clone().with_user_key("user_id")?;
    let configurations: [(&'static str, PostgresStore); 7] = [
        ("plain", plain.clone()),
        (
            "with_touch_after(60 s)",
            plain.clone().with_touch_after(Duration::from_secs(60)),
        ),
        ("with_hashed_ids()", plain.clone().with_hashed_ids()),
        ("with_user_key", indexed.clone()),
        (
            "with_user_key + with_max_sessions_per_user(5)",
            indexed.clone().with_max_sessions_per_user(5)?,
        ),
        (
            "with_absolute_lifetime(12 h)",
            plain
                .clone()
                .with_absolute_lifetime(Duration::from_secs(12 * 3600)),
        ),
        (
            "with_listed_values([device])",
            plain.clone().with_listed_values(["device"])?,
        ),
    ];

    let mut rows = Vec::new();
    for (label, store) in &configurations {
        let mut sessions = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let mut record = template.clone();
            record
                .data
                .insert("user_id".into(), serde_json::json!(sessions.len()));
            record
                .data
                .insert("device".into(), serde_json::json!("Firefox on Linux"));
            store.create(&mut record).await?;
            sessions.push(record);
        }
        let operations: &[&'static str] = match *label {
            "with_hashed_ids()" => &["save", "load"],
            "with_user_key" | "with_user_key + with_max_sessions_per_user(5)" => {
                &["login (create)", "save"]
            }
            "with_absolute_lifetime(12 h)" => &["load"],
            "with_listed_values([device])" => &["save"],
            _ => &["unchanged save", "save", "load"],
        };
        for operation in operations {
            let (mut micros, mut wal) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let lsn = wal_lsn(conn).await?;
                let started = Instant::now();
                for n in 0..ops {
                    let record = &mut sessions[n % SESSIONS];
                    match *operation {
                        "load" => {
                            store.load(&record.id).await?;
                        }
                        "login (create)" => {
                            // A new session for one of the users, each of whom keeps logging
                            // in: with the limit, each login ends the user's oldest session.
                            let mut login = record.clone();
                            store.create(&mut login).await?;
                        }
                        "save" => {
                            record.data.insert("n".into(), serde_json::json!(n));
                            store.save(record).await?;
                        }
                        _ => {
                            // A sliding expiry moves a little on every request.
                            record.expiry_date += time::Duration::milliseconds(10);
                            store.save(record).await?;
                        }
                    }
                }
                let elapsed = started.elapsed();
                micros.push(elapsed.as_secs_f64() * 1e6 / ops as f64);
                wal.push(wal_since(conn, &lsn).await? / ops as f64);
            }
            rows.push(Row {
                label,
                operation,
                micros: median(micros),
                wal_bytes: median(wal),
            });
        }
    }
    conn.execute_unprepared(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
        .await?;
    Ok(rows)
}
