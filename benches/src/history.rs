//! What the login history and its live events cost a write, on `PostgresStore` (or
//! `MySqlStore`) with a per-user index and a listed value: without the history, with it, and
//! with it and a subscriber to `events()` that never reads (its reader polls every 10 ms and its
//! buffer overflows). The three run interleaved in every round, at 1 and 16 clients; the mean
//! latency of an operation in each round (a save after its request's untimed load), the median
//! of the rounds reported with its ratio to "without".

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use store::{PostgresStore, Record, SessionStore};

use crate::{measure::median, stacks::BoxError};

/// One configuration's figure for one operation at one concurrency.
pub struct Row {
    pub label: &'static str,
    pub operation: &'static str,
    pub clients: usize,
    /// Median over the rounds of the mean µs one operation takes (its latency).
    pub micros: f64,
}

const SESSIONS: usize = 160;
const LABELS: [&str; 3] = [
    "without the history",
    "with_login_history",
    "with_login_history + a stalled events() subscriber",
];
const OPERATIONS: [&str; 2] = ["save", "login (create)"];

/// Runs `rounds` rounds of `ops` operations of each operation and configuration, interleaved.
pub async fn run(
    conn: &DatabaseConnection,
    template: &Record,
    concurrencies: &[usize],
    rounds: usize,
    ops: usize,
) -> Result<Vec<Row>, BoxError> {
    // `PostgresStore` and `MySqlStore` are one type: the connection decides.
    let mysql = conn.get_database_backend() == DbBackend::MySql;
    let schema = "history_cost";
    drop_tables(conn, mysql).await?;
    let without = PostgresStore::new(conn.clone());
    let without = if mysql {
        without.with_table_name(schema)?
    } else {
        without.with_schema_name(schema)?
    };
    let without = without
        .with_user_key("user_id")?
        .with_listed_values(["device"])?;
    let with = without
        .clone()
        .with_login_history(std::time::Duration::from_secs(24 * 3600))?;
    with.migrate().await?;
    // A store of its own, so that its reader is the only one; the receiver is never read.
    let subscribed = without
        .clone()
        .with_login_history(std::time::Duration::from_secs(24 * 3600))?;
    let _stalled = subscribed.events().await?;
    let stores = [without, with, subscribed];

    let mut sessions = Vec::new();
    for store in &stores {
        let mut own = Vec::with_capacity(SESSIONS);
        for n in 0..SESSIONS {
            let mut record = template.clone();
            record.data.insert("user_id".into(), serde_json::json!(n));
            record
                .data
                .insert("device".into(), serde_json::json!("Firefox on Linux"));
            store.create(&mut record).await?;
            own.push(record);
        }
        sessions.push(own);
    }

    let mut samples = vec![Vec::new(); stores.len() * OPERATIONS.len() * concurrencies.len()];
    for _ in 0..rounds {
        for (c, &clients) in concurrencies.iter().enumerate() {
            for (o, operation) in OPERATIONS.iter().enumerate() {
                for (s, store) in stores.iter().enumerate() {
                    let micros = timed(store, &sessions[s], operation, clients, ops).await?;
                    samples[(c * OPERATIONS.len() + o) * stores.len() + s].push(micros);
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (c, &clients) in concurrencies.iter().enumerate() {
        for (o, operation) in OPERATIONS.iter().enumerate() {
            for (s, label) in LABELS.iter().enumerate() {
                let index = (c * OPERATIONS.len() + o) * stores.len() + s;
                rows.push(Row {
                    label,
                    operation,
                    clients,
                    micros: median(std::mem::take(&mut samples[index])),
                });
            }
        }
    }
    drop(stores);
    drop_tables(conn, mysql).await?;
    Ok(rows)
}

/// Drops what an earlier run left: PostgreSQL's schema, or MySQL's two tables.
async fn drop_tables(conn: &DatabaseConnection, mysql: bool) -> Result<(), BoxError> {
    if mysql {
        conn.execute_unprepared("DROP TABLE IF EXISTS history_cost_history, history_cost")
            .await?;
        // MySQL has no schema to drop: the table's migrations are recorded beside it.
        let forget =
            "DELETE FROM seaql_migrations_tower_sessions WHERE version LIKE 'history_cost/%'";
        if let Err(err) = conn.execute_unprepared(forget).await {
            // None recorded yet: the first run on this database.
            eprintln!("bench: no migrations of history_cost to forget ({err})");
        }
    } else {
        conn.execute_unprepared(r#"DROP SCHEMA IF EXISTS "history_cost" CASCADE"#)
            .await?;
    }
    Ok(())
}

/// `ops` operations by `clients` concurrent clients, each on sessions of its own: µs per op.
async fn timed(
    store: &PostgresStore,
    sessions: &[Record],
    operation: &str,
    clients: usize,
    ops: usize,
) -> Result<f64, BoxError> {
    let per_client = sessions.len() / clients;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let store = store.clone();
        let own: Vec<Record> = sessions[client * per_client..(client + 1) * per_client].to_vec();
        let operation: Arc<str> = Arc::from(operation);
        tasks.push(tokio::spawn(async move {
            let mut spent = Duration::ZERO;
            for n in 0..ops / clients {
                let record = &own[n % per_client];
                if &*operation == "save" {
                    // A request: its load (untimed) leaves the loaded version in the record,
                    // which its save is checked against, as tower-sessions' requests do.
                    let mut loaded = store.load(&record.id).await?.ok_or("session gone")?;
                    loaded.data.insert("n".into(), serde_json::json!(n));
                    let started = Instant::now();
                    store.save(&loaded).await?;
                    spent += started.elapsed();
                } else {
                    // One more session for one of the users (no limit: nothing is trimmed).
                    let mut login = record.clone();
                    let started = Instant::now();
                    store.create(&mut login).await?;
                    spent += started.elapsed();
                }
            }
            Ok::<_, BoxError>(spent)
        }));
    }
    let mut spent = Duration::ZERO;
    for task in tasks {
        spent += task.await??;
    }
    Ok(spent.as_secs_f64() * 1e6 / (ops / clients * clients) as f64)
}

/// The section of results.md; `store` names the store measured.
pub fn report(md: &mut String, store: &str, rows: &[Row]) {
    use std::fmt::Write;
    let _ = writeln!(
        md,
        "## What the login history and its events cost: {store}\n\n\
         `{store}` with `with_user_key` and a listed value; \"save\" changes a value of a \
         signed-in session after its request's load (untimed), \"login (create)\" creates one \
         more session for one of the users. The three configurations interleaved in every \
         round; the median of the rounds' mean latency per operation (µs), and \
         its ratio to the store without the history.\n\n\
         | configuration | operation | clients | µs | ratio |\n|---|---|---:|---:|---:|"
    );
    for chunk in rows.chunks(LABELS.len()) {
        let base = chunk[0].micros;
        for row in chunk {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.2} |",
                row.label,
                row.operation,
                row.clients,
                row.micros,
                row.micros / base
            );
        }
    }
    let _ = writeln!(md);
}
