//! What the throughput examples share (`pgbouncer_throughput`, `citus_throughput`): the
//! connection, the sample session, the seeding, and one measured point, where every client
//! loops a step for `SECONDS_PER_POINT` after `WARM_UP`.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tower_sessions_seaorm_store::{
    sea_orm::{ConnectOptions, Database, DatabaseConnection},
    Id, PostgresStore, Record, SessionStore,
};

pub const SESSIONS: usize = 2_000;
pub const WARM_UP: Duration = Duration::from_millis(500);
pub const SECONDS_PER_POINT: Duration = Duration::from_secs(3);

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A pool of exactly `pool` connections to `url`.
pub async fn connect(url: &str, pool: u32) -> Result<DatabaseConnection, Error> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool)
        .min_connections(pool)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// The sample session, under `id`.
pub fn session(id: Id) -> Record {
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

/// Migrates `store`'s table and creates `SESSIONS` sessions in it.
pub async fn seed(store: &PostgresStore) -> Result<Arc<Vec<Id>>, Error> {
    store.migrate().await?;
    let mut ids = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut record = session(Id::default());
        store.create(&mut record).await?;
        ids.push(record.id);
    }
    Ok(Arc::new(ids))
}

/// One measured point.
pub struct Point {
    pub ops_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

/// What one step of a client did: how long each of its operations took, and whether one
/// failed.
pub type Step = (Vec<Duration>, bool);

/// `clients` clients, each looping `step` (given a random number of its own) until the point
/// ends; the operations of the steps that began after the warm-up count.
pub async fn measure<F, Fut>(clients: usize, step: F) -> Point
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Step> + Send,
{
    let start = Instant::now() + WARM_UP;
    let end = start + SECONDS_PER_POINT;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (client as u64 + 1);
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < end {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let began = Instant::now();
                    let (took, failed) = step(rng).await;
                    errors += usize::from(failed);
                    if began >= start {
                        latencies.extend(took);
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

/// A `load` then a `save` of a random one of `ids` (a `create` if it is gone): two operations.
pub async fn load_then_save(store: &PostgresStore, ids: &[Id], rng: u64) -> Step {
    let id = ids[(rng % ids.len() as u64) as usize];
    let began = Instant::now();
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
    let took = vec![loaded_at - began, loaded_at.elapsed()];
    (took, saved.is_err())
}
