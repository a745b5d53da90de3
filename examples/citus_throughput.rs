//! Load/save throughput at 1 and 16 concurrent clients on one machine: a plain PostgreSQL table
//! against a table distributed by Citus, reached through its coordinator (the cost of the extra
//! hop). The numbers in SCALING.md come from here.
//!
//! ```sh
//! # scripts/lib/citus.sh (sourced by scripts/test with CITUS_SOURCE) starts the cluster
//! CITUS_URL=postgres://postgres@127.0.0.1:9700/test \
//!   cargo run --release --example citus_throughput
//! ```
//!
//! Each point runs for `SECONDS_PER_POINT` (3 s, after a 0.5 s warm-up). "load + save": every
//! client loops `load` then `save` of a random session among `SESSIONS`, and each call counts as
//! one operation. "login": every client loops `create` of a session for one of `USERS` users
//! with `with_max_sessions_per_user(3)`, so each create is followed by the trim of its user's
//! sessions (a statement on every shard on Citus). Each path has a pool of one connection per client. Everything it creates lives in
//! a schema of its own, dropped at the end. Run it on an otherwise idle machine: the coordinator,
//! both workers and the client share its cores.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tower_sessions_seaorm_store::{
    sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection},
    Id, PostgresStore, Record, SessionStore,
};

const CLIENTS: [usize; 2] = [1, 16];
const SESSIONS: usize = 2_000;
const USERS: u64 = 100;
const WARM_UP: Duration = Duration::from_millis(500);
const SECONDS_PER_POINT: Duration = Duration::from_secs(3);

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plain_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let citus_url = std::env::var("CITUS_URL")
        .map_err(|_| "set CITUS_URL to a Citus coordinator (scripts/lib/citus.sh starts one)")?;
    let schema = format!("ts_throughput_{:08x}", Id::default().0 as u32);

    println!("| table | operation | clients | ops/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for clients in CLIENTS {
        for (path, url, distributed) in [
            ("PostgreSQL", &plain_url, false),
            ("Citus, through the coordinator", &citus_url, true),
        ] {
            let conn = connect(url, clients as u32).await?;
            let mut store = PostgresStore::new(conn.clone()).with_schema_name(&schema)?;
            if distributed {
                store = store.with_distributed_table()?;
            }
            let ids = seed(&store).await?;
            let limited = store
                .clone()
                .with_user_key("user_id")?
                .with_max_sessions_per_user(3)?;
            for (operation, logins) in [("load + save", None), ("login", Some(&limited))] {
                let point = measure(&store, logins, &ids, clients).await;
                println!(
                    "| {path} | {operation} | {clients} | {:.0} | {:.2} | {:.2} | {} |",
                    point.ops_per_second, point.p50_ms, point.p99_ms, point.errors
                );
            }
            conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await?;
            conn.close().await?;
        }
    }
    Ok(())
}

async fn connect(url: &str, pool: u32) -> Result<DatabaseConnection, Error> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool)
        .min_connections(pool)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

fn session(id: Id) -> Record {
    Record {
        id,
        data: [
            ("user_id".to_owned(), json!(42)),
            ("csrf".to_owned(), json!("a1b2c3d4e5f6a7b8c9d0")),
            ("roles".to_owned(), json!(["reader", "writer"])),
        ]
        .into_iter()
        .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    }
}

async fn seed(store: &PostgresStore) -> Result<Arc<Vec<Id>>, Error> {
    store.migrate().await?;
    let mut ids = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut record = session(Id::default());
        store.create(&mut record).await?;
        ids.push(record.id);
    }
    Ok(Arc::new(ids))
}

struct Point {
    ops_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

/// One point: load + save on `store`, or logins on `logins` when given.
async fn measure(
    store: &PostgresStore,
    logins: Option<&PostgresStore>,
    ids: &Arc<Vec<Id>>,
    clients: usize,
) -> Point {
    let start = Instant::now() + WARM_UP;
    let end = start + SECONDS_PER_POINT;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let store = store.clone();
            let logins = logins.cloned();
            let ids = Arc::clone(ids);
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (client as u64 + 1);
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let began = Instant::now();
                    if let Some(logins) = &logins {
                        let mut record = session(Id::default());
                        record.data.insert("user_id".to_owned(), json!(rng % USERS));
                        let created = logins.create(&mut record).await;
                        if created.is_err() {
                            errors += 1;
                        }
                        if began >= start {
                            latencies.push(began.elapsed());
                        }
                        continue;
                    }
                    let id = ids[(rng % ids.len() as u64) as usize];
                    let loaded = store.load(&id).await;
                    let loaded_at = Instant::now();
                    let saved = match loaded {
                        Ok(Some(mut record)) => {
                            record.data.insert("n".to_owned(), json!(rng));
                            store.save(&record).await
                        }
                        Ok(None) => store.create(&mut session(id)).await,
                        Err(err) => Err(err),
                    };
                    let saved_at = Instant::now();
                    if saved.is_err() {
                        errors += 1;
                    }
                    if began >= start {
                        latencies.push(loaded_at - began);
                        latencies.push(saved_at - loaded_at);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mine, failed) = task.await.expect("a client task");
        latencies.extend(mine);
        errors += failed;
    }
    latencies.sort();
    let percentile = |p: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Point {
        ops_per_second: latencies.len() as f64 / SECONDS_PER_POINT.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        errors,
    }
}
