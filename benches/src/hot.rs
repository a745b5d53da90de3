//! The hot path against Redis (issue: "Faster than Redis on the hot path"): this crate's stores
//! with and without the read cache, `CachingSessionStore` with moka, tower-sessions-redis-store
//! 0.16 on the loopback Redis, the in-process memory store, and the two relaxed-durability
//! choices (`synchronous_commit = off`, an `UNLOGGED` table), interleaved round by round at 1
//! and 16 clients. Then the eviction delay between two replicas.
//!
//! Every PostgreSQL stack here runs with `synchronous_commit = on` (PostgreSQL's default, set
//! per connection: the bench cluster's own default is off) unless its name says otherwise. A
//! round per stack and concurrency: create `ops` sessions, save each, load each once untimed
//! (the cache's fill), load each twice timed, delete each.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use store::{
    session_store::CachingSessionStore, Cache, Id, LeanPostgresStore, PostgresStore, Record,
    SessionStore,
};

use crate::{
    measure::{median, phase},
    setup,
    stacks::{BoxError, Op, Sample, Stack, Store14, Store15},
};

/// A listening cache on `url`, reading its eviction log every `BENCH_POLL_MS` milliseconds
/// when that is set (the crate's default otherwise).
fn listening(url: impl Into<String>) -> Cache {
    let cache = Cache::listening(url);
    match std::env::var("BENCH_POLL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        Some(ms) => cache.poll_every(Duration::from_millis(ms)),
        None => cache,
    }
}

/// Redis for the peer: `BENCH_REDIS_URL`, by default the machine's loopback Redis.
fn redis_url() -> String {
    std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `url` with a server setting for every connection of its pool.
fn with_setting(url: &str, setting: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c{}", setting.replace('=', "%3D"))
}

/// The operations one row reports.
pub const OPS: [Op; 3] = [Op::Create, Op::Save, Op::Load];

pub struct HotStack {
    pub name: String,
    pub stack: Arc<dyn Stack>,
}

pub struct HotResults {
    pub names: Vec<String>,
    /// (stack, op, concurrency) → median µs/op over the rounds.
    pub medians: std::collections::HashMap<(usize, Op, usize), f64>,
    /// (stack, op, concurrency) → µs/op of each round, in round order.
    pub rounds: std::collections::HashMap<(usize, Op, usize), Vec<f64>>,
    pub eviction: Option<EvictionDelay>,
}

pub struct EvictionDelay {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

async fn fresh(admin: &sea_orm::DatabaseConnection, schema: &str) -> Result<(), BoxError> {
    sea_orm::ConnectionTrait::execute_unprepared(
        admin,
        &format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#),
    )
    .await?;
    Ok(())
}

async fn serving<R, C>(store: &store::RepositoryStore<R, C>) -> Result<(), BoxError>
where
    R: store::repository::SessionRepository,
    C: store::codec::Codec,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_cache_serving() {
        if Instant::now() > deadline {
            return Err("a cached stack's listener never started serving".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A SeaORM store on `url` with a cache listening on `listen`, migrated (which installs the
/// triggers) and serving.
async fn seaorm_cached(url: &str, listen: &str, schema: &str) -> Result<PostgresStore, BoxError> {
    let store = PostgresStore::new(setup::seaorm(url, true).await?)
        .with_schema_name(schema)?
        .with_cache(listening(listen))?;
    store.migrate().await?;
    serving(&store).await?;
    Ok(store)
}

/// A lean store on `url` with a cache listening on `listen`, serving. The triggers come from a
/// SeaORM store's migrate with a listening cache, on `admin`.
async fn lean_cached(
    admin: &sea_orm::DatabaseConnection,
    url: &str,
    listen: &str,
    schema: &str,
) -> Result<LeanPostgresStore, BoxError> {
    PostgresStore::new(admin.clone())
        .with_schema_name(schema)?
        .with_cache(listening(listen))?
        .migrate()
        .await?;
    let store = LeanPostgresStore::new(setup::lean_pool(url)?)
        .with_schema_name(schema)?
        .with_cache(listening(listen))?;
    serving(&store).await?;
    Ok(store)
}

async fn stacks(base: &str, ops: usize) -> Result<Vec<HotStack>, BoxError> {
    let bench = setup::url(base, setup::BENCH_DB);
    let durable = with_setting(&bench, "synchronous_commit=on");
    let relaxed = with_setting(&bench, "synchronous_commit=off");
    let admin = setup::seaorm(&bench, true).await?;
    let capacity = (ops * 4) as u64;
    let mut all: Vec<HotStack> = Vec::new();
    let mut push = |name: &str, stack: Arc<dyn Stack>| {
        all.push(HotStack {
            name: name.to_owned(),
            stack,
        })
    };

    let seaorm = |url: String, schema: &'static str| async move {
        let store =
            PostgresStore::new(setup::seaorm(&url, true).await?).with_schema_name(schema)?;
        Ok::<_, BoxError>(store)
    };
    let lean = |url: &str, schema: &str| -> Result<LeanPostgresStore, BoxError> {
        Ok(LeanPostgresStore::new(setup::lean_pool(url)?).with_schema_name(schema)?)
    };

    for schema in [
        "hot_seaorm",
        "hot_seaorm_cached",
        "hot_lean",
        "hot_lean_cached",
        "hot_moka",
        "hot_seaorm_async",
        "hot_seaorm_unlogged",
        "hot_lean_async",
        "hot_lean_unlogged",
    ] {
        fresh(&admin, schema).await?;
    }

    let plain = seaorm(durable.clone(), "hot_seaorm").await?;
    plain.migrate().await?;
    push("PostgresStore (SeaORM)", Arc::new(Store15(plain)));

    let cached = seaorm_cached(&durable, &bench, "hot_seaorm_cached").await?;
    push(
        "PostgresStore + Cache::listening",
        Arc::new(Store15(cached)),
    );

    let migrate_lean = |schema: &'static str, unlogged: bool| {
        let admin = admin.clone();
        async move {
            let mut store = PostgresStore::new(admin).with_schema_name(schema)?;
            if unlogged {
                store = store.with_unlogged_table()?;
            }
            store.migrate().await?;
            Ok::<_, BoxError>(())
        }
    };
    migrate_lean("hot_lean", false).await?;
    push(
        "LeanPostgresStore",
        Arc::new(Store15(lean(&durable, "hot_lean")?)),
    );

    let lean_listening = lean_cached(&admin, &durable, &bench, "hot_lean_cached").await?;
    push(
        "LeanPostgresStore + Cache::listening",
        Arc::new(Store15(lean_listening)),
    );

    let behind = seaorm(durable.clone(), "hot_moka").await?;
    behind.migrate().await?;
    push(
        "CachingSessionStore(moka, PostgresStore)",
        Arc::new(Store15(CachingSessionStore::new(
            crate::cache::MokaCache::new(capacity),
            behind,
        ))),
    );

    let async_commit = seaorm(relaxed.clone(), "hot_seaorm_async").await?;
    async_commit.migrate().await?;
    push(
        "PostgresStore, synchronous_commit=off",
        Arc::new(Store15(async_commit)),
    );
    let unlogged = seaorm(durable.clone(), "hot_seaorm_unlogged")
        .await?
        .with_unlogged_table()?;
    unlogged.migrate().await?;
    push("PostgresStore, UNLOGGED table", Arc::new(Store15(unlogged)));

    migrate_lean("hot_lean_async", false).await?;
    push(
        "LeanPostgresStore, synchronous_commit=off",
        Arc::new(Store15(lean(&relaxed, "hot_lean_async")?)),
    );
    migrate_lean("hot_lean_unlogged", true).await?;
    push(
        "LeanPostgresStore, UNLOGGED table",
        Arc::new(Store15(lean(&durable, "hot_lean_unlogged")?)),
    );

    use redis_store::fred::prelude::{ClientLike, Config, Pool};
    let pool = Pool::new(
        Config::from_url(&redis_url())?,
        None,
        None,
        None,
        setup::POOL_SIZE as usize,
    )?;
    pool.init().await?;
    push(
        "tower-sessions-redis-store 0.16 (Redis)",
        Arc::new(Store14(redis_store::RedisStore::new(pool))),
    );

    push(
        "tower-sessions-memory-store 0.15 (in process)",
        Arc::new(Store15(memory_store::MemoryStore::default())),
    );
    Ok(all)
}

/// One round of one stack at one concurrency: µs/op of create, save and (warm) load.
async fn round(
    stack: &Arc<dyn Stack>,
    template: &Record,
    concurrency: usize,
    ops: usize,
) -> Result<[f64; 3], BoxError> {
    let samples = Arc::new((0..ops).map(|_| Sample::new(template)).collect::<Vec<_>>());
    let per_op = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    let create = phase(stack, Op::Create, &samples, concurrency).await?;
    crate::measure::prepare_saves(stack, &samples, concurrency).await?;
    let save = phase(stack, Op::Save, &samples, concurrency).await?;
    phase(stack, Op::Load, &samples, concurrency).await?;
    let mut load = Duration::ZERO;
    for _ in 0..2 {
        load += phase(stack, Op::Load, &samples, concurrency).await?;
    }
    phase(stack, Op::Delete, &samples, concurrency).await?;
    Ok([
        per_op(create, ops),
        per_op(save, ops),
        per_op(load, 2 * ops),
    ])
}

pub async fn run(
    base: &str,
    template: &Record,
    concurrencies: &[usize],
    rounds: usize,
    ops: usize,
) -> Result<HotResults, BoxError> {
    // `BENCH_STACKS` keeps some stacks (dropping a cached one ends its listener).
    let only = std::env::var("BENCH_STACKS").unwrap_or_default();
    let stacks: Vec<HotStack> = stacks(base, ops)
        .await?
        .into_iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| s.name.contains(o)))
        .collect();
    let mut values: std::collections::HashMap<(usize, Op, usize), Vec<f64>> = Default::default();
    for &concurrency in concurrencies {
        for stack in &stacks {
            round(&stack.stack, template, concurrency, ops.min(200)).await?;
        }
    }
    for r in 0..rounds {
        for &concurrency in concurrencies {
            for k in 0..stacks.len() {
                let i = (k + r) % stacks.len();
                let timings = round(&stacks[i].stack, template, concurrency, ops)
                    .await
                    .map_err(|e| format!("{}: {e}", stacks[i].name))?;
                for (op, value) in OPS.into_iter().zip(timings) {
                    values.entry((i, op, concurrency)).or_default().push(value);
                }
            }
        }
        eprintln!("bench: hot path round {}/{rounds} done", r + 1);
    }
    let medians = values
        .iter()
        .map(|(key, v)| (*key, median(v.iter().copied())))
        .collect();
    let eviction = Some(eviction_delay(base, template).await?);
    Ok(HotResults {
        names: stacks.into_iter().map(|s| s.name).collect(),
        medians,
        rounds: values,
        eviction,
    })
}

/// Two replicas (two stores, two pools, two listeners) on one table: replica B serves 16
/// clients from its cache all along, while replica A saves; each sample is the time from A's
/// save returning (committed) to B's first load that returns the saved value.
async fn eviction_delay(base: &str, template: &Record) -> Result<EvictionDelay, BoxError> {
    let bench = setup::url(base, setup::BENCH_DB);
    let durable = with_setting(&bench, "synchronous_commit=on");
    let admin = setup::seaorm(&bench, true).await?;
    fresh(&admin, "hot_eviction").await?;
    let replica = || async {
        let store = PostgresStore::new(setup::seaorm(&durable, true).await?)
            .with_schema_name("hot_eviction")?
            .with_cache(listening(bench.clone()))?;
        Ok::<_, BoxError>(store)
    };
    let a = replica().await?;
    a.migrate().await?;
    let b = Arc::new(replica().await?);
    serving(&a).await?;
    serving(&*b).await?;

    // B's background: 16 clients loading 64 other sessions, cached.
    let mut others = Vec::new();
    for _ in 0..64 {
        let mut record = template.clone();
        record.id = Id::default();
        a.create(&mut record).await?;
        others.push(record.id);
    }
    let others = Arc::new(others);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: usize = std::env::var("BENCH_EVICTION_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let background: Vec<_> = (0..clients)
        .map(|k| {
            let (b, others, stop) = (Arc::clone(&b), Arc::clone(&others), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut i = k;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = b.load(&others[i % others.len()]).await;
                    i += 1;
                    // A cache hit never waits: without a yield these clients would hold both
                    // worker threads and starve the listener.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let mut session = template.clone();
    session.id = Id::default();
    a.create(&mut session).await?;
    let samples = 400;
    let mut delays = Vec::with_capacity(samples);
    for n in 0..samples {
        // B holds the current value in its cache before A writes.
        while b.load(&session.id).await?.is_none() {}
        session.data.insert("n".into(), json!(n));
        a.save(&session).await?;
        let saved = Instant::now();
        loop {
            let seen = b.load(&session.id).await?.ok_or("the session vanished")?;
            if seen.data.get("n") == Some(&json!(n)) {
                break;
            }
            if saved.elapsed() > Duration::from_secs(5) {
                return Err("replica B never saw a save".into());
            }
        }
        delays.push(saved.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in background {
        task.await?;
    }
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    Ok(EvictionDelay {
        samples,
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: at(1.0),
    })
}

/// The report's section.
pub fn report(md: &mut String, results: &HotResults, concurrencies: &[usize]) {
    use std::fmt::Write;
    let _ = writeln!(
        md,
        "## The hot path: read cache, Redis, durability\n\nMedian µs/op over the rounds \
         (create / save / warm load), {} clients. PostgreSQL stacks run with \
         `synchronous_commit = on` unless named otherwise.\n",
        concurrencies
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let mut header = "| stack |".to_owned();
    let mut rule = "|---|".to_owned();
    for c in concurrencies {
        for op in OPS {
            let _ = write!(header, " {} ×{c} |", op.name());
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for (i, name) in results.names.iter().enumerate() {
        let mut line = format!("| {name} |");
        for &c in concurrencies {
            for op in OPS {
                match results.medians.get(&(i, op, c)) {
                    Some(v) => {
                        let _ = write!(line, " {v:.1} |");
                    }
                    None => line.push_str(" – |"),
                }
            }
        }
        let _ = writeln!(md, "{line}");
    }
    cache_cost(md, results, concurrencies);
    cached_loads_against_redis(md, results, concurrencies);
    if let Some(e) = &results.eviction {
        let _ = writeln!(
            md,
            "\nEviction delay, replica A's save returning → replica B's first load of the new \
             value (B serving 16 clients from its cache meanwhile), {} samples: p50 {:.0} µs, \
             p99 {:.0} µs, max {:.0} µs.\n",
            e.samples, e.p50_us, e.p99_us, e.max_us
        );
    }
}

/// What the listening cache costs a save: each cached stack's save against the same stack
/// without the cache, round by round (the two run in the same round, one after the other), as
/// the median of the rounds' ratios and of their differences.
fn cache_cost(md: &mut String, results: &HotResults, concurrencies: &[usize]) {
    let position = |name: &str| results.names.iter().position(|n| n == name);
    let rows: Vec<_> = [
        ("PostgresStore + Cache::listening", "PostgresStore (SeaORM)"),
        ("LeanPostgresStore + Cache::listening", "LeanPostgresStore"),
    ]
    .into_iter()
    .filter_map(|(name, plain)| Some((name, position(name)?, position(plain)?)))
    .collect();
    paired_table(
        md,
        results,
        concurrencies,
        "What the listening cache costs a save: the median of the rounds' ratios and \
         differences, each round's save with the cache against the same store's without.",
        |c| format!(" save ×{c} ratio | save ×{c} more |"),
        (&rows, Op::Save),
        |with, without| {
            let pairs = || with.iter().zip(without);
            let ratio = median(pairs().map(|(w, o)| w / o));
            let more = median(pairs().map(|(w, o)| w - o));
            format!(" {ratio:.2}× | {more:+.1} µs |")
        },
    );
}

/// What a cached load is worth against Redis: each cached stack's warm load against Redis's,
/// round by round (both measured in the same round), as the median of the rounds' ratios, with
/// the cached load's median µs to two decimals (the table above rounds it to one).
fn cached_loads_against_redis(md: &mut String, results: &HotResults, concurrencies: &[usize]) {
    let position = |name: &str| results.names.iter().position(|n| n == name);
    let Some(redis) = results.names.iter().position(|n| n.contains("(Redis)")) else {
        return;
    };
    let rows: Vec<_> = [
        "PostgresStore + Cache::listening",
        "LeanPostgresStore + Cache::listening",
    ]
    .into_iter()
    .filter_map(|name| Some((name, position(name)?, redis)))
    .collect();
    paired_table(
        md,
        results,
        concurrencies,
        "Cached loads against Redis: the cached load's median µs, and the median of the \
         rounds' ratios of Redis's load time to the cached load's (both measured in the same \
         round).",
        |c| format!(" load ×{c} | ÷ Redis ×{c} |"),
        (&rows, Op::Load),
        |ours, theirs| {
            let ratio = median(ours.iter().zip(theirs).map(|(o, t)| t / o));
            let micros = median(ours.iter().copied());
            format!(" {micros:.2} µs | {ratio:.1}× |")
        },
    );
}

/// A table with a row per `(name, stack, against)` of `rows`, and two cells per concurrency
/// (their headers from `columns`), which `cells` makes of the two stacks' figures for `op`,
/// round by round. Nothing when no row has both stacks.
fn paired_table(
    md: &mut String,
    results: &HotResults,
    concurrencies: &[usize],
    intro: &str,
    columns: impl Fn(usize) -> String,
    (rows, op): (&[(&str, usize, usize)], Op),
    cells: impl Fn(&[f64], &[f64]) -> String,
) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    let mut header = "| stack |".to_owned();
    for &c in concurrencies {
        header.push_str(&columns(c));
    }
    let _ = writeln!(
        md,
        "\n{intro}\n\n{header}\n|---|{}",
        "---:|".repeat(2 * concurrencies.len())
    );
    for &(name, stack, against) in rows {
        let _ = write!(md, "| {name} |");
        for &c in concurrencies {
            match (
                results.rounds.get(&(stack, op, c)),
                results.rounds.get(&(against, op, c)),
            ) {
                (Some(ours), Some(theirs)) => md.push_str(&cells(ours, theirs)),
                _ => md.push_str(" – | – |"),
            }
        }
        md.push('\n');
    }
}
