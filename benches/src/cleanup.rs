//! Cleanup at scale: a backlog of expired rows beside live ones, deleted by the store's batched
//! cleanup while clients keep loading live sessions.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use deadpool_postgres::Pool;
use store::{Id, PostgresStore, Record, SessionStore};
use time::OffsetDateTime;

use crate::stacks::BoxError;

pub struct CleanupReport {
    pub expired: u64,
    pub live: u64,
    pub deleted: u64,
    pub seconds: f64,
    pub idle: Latency,
    pub during: Latency,
}

pub struct Latency {
    pub loads: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

// Enough clients to keep a connection busy without saturating a 2-core machine, where a p99 would
// measure the run queue rather than the cleanup.
const LOADERS: usize = 4;

/// Fills `store`'s table (through `pool`, in bulk), then measures loads alone for `idle`, then
/// loads during `delete_expired_sessions`.
pub async fn run(
    store: &PostgresStore,
    pool: &Pool,
    schema: &str,
    template: &Record,
    expired: u64,
    live: u64,
) -> Result<CleanupReport, BoxError> {
    let table = format!(r#""{schema}"."session""#);
    let data = rmp_serde::to_vec(template)?;
    let client = pool.get().await?;
    let in_a_day = OffsetDateTime::now_utc() + time::Duration::days(1);
    let yesterday = OffsetDateTime::now_utc() - time::Duration::days(1);
    eprintln!("bench: cleanup: inserting {expired} expired and {live} live rows");
    client
        .execute(
            &format!(
                "INSERT INTO {table} SELECT 'expired-' || g, $1, $2::timestamptz - g * interval '1 second' \
                 FROM generate_series(1, $3::int8) g"
            ),
            &[&data, &yesterday, &(expired as i64)],
        )
        .await?;
    let ids: Vec<Id> = (0..live).map(|_| Id::default()).collect();
    // Each live row holds its own session's record: a load refuses a row whose record names
    // another id (a row copied from another session).
    for chunk in ids.chunks(10_000) {
        let texts: Vec<String> = chunk.iter().map(Id::to_string).collect();
        let records = chunk
            .iter()
            .map(|id| {
                rmp_serde::to_vec(&Record {
                    id: *id,
                    ..template.clone()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .execute(
                &format!("INSERT INTO {table} SELECT unnest($1::text[]), unnest($2::bytea[]), $3"),
                &[&texts, &records, &in_a_day],
            )
            .await?;
    }
    client
        .execute(&format!("VACUUM ANALYZE {table}"), &[])
        .await?;
    drop(client);
    let ids = Arc::new(ids);

    let (idle, ()) = loads_while(store, &ids, tokio::time::sleep(Duration::from_secs(3))).await?;
    eprintln!("bench: cleanup: deleting the expired rows under load");
    let started = Instant::now();
    let (during, deleted) = loads_while(store, &ids, async {
        let deleted = store.delete_expired_sessions().await;
        (deleted, started.elapsed())
    })
    .await?;
    let (deleted, took) = deleted;
    let deleted = deleted?;
    let seconds = took.as_secs_f64();
    Ok(CleanupReport {
        expired,
        live,
        deleted,
        seconds,
        idle,
        during,
    })
}

/// Runs `LOADERS` clients loading random live sessions until `until` finishes.
async fn loads_while<F, T>(
    store: &PostgresStore,
    ids: &Arc<Vec<Id>>,
    until: F,
) -> Result<(Latency, T), BoxError>
where
    F: std::future::Future<Output = T>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..LOADERS)
        .map(|n| {
            let store = store.clone();
            let ids = Arc::clone(ids);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = n * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 104_729) % ids.len();
                    let started = Instant::now();
                    let found = store.load(&ids[i]).await?;
                    latencies.push(started.elapsed());
                    if found.is_none() {
                        return Err::<_, BoxError>("a live session did not load".into());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let output = until.await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for loader in loaders {
        all.extend(loader.await??);
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(all[((all.len() - 1) as f64 * q) as usize]);
    let max_ms = ms(*all.last().ok_or("no load finished")?);
    Ok((
        Latency {
            loads: all.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms,
        },
        output,
    ))
}
