//! Side-by-side benchmarks of session stores on one PostgreSQL: this crate's two stores, the two
//! driver floors and the peer stores, interleaved round by round; and the controls: a twin of
//! each floor (two identical stacks' ratio is the measure's noise) and the lean store without
//! its operation time-out. Run with `scripts/bench`.
//!
//! Environment: `BENCH_URL` (server, no database; default `postgres://postgres@127.0.0.1:55433`,
//! the cluster `scripts/bench` starts), `BENCH_ROUNDS` (15), `BENCH_OPS` (operations per stack,
//! operation and round; 600), `BENCH_PARTS` (`ops,counts,merge,cache,hot,cleanup,payload,features,history`; also
//! `history-mysql`, on `BENCH_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`),
//! `BENCH_CLEANUP_EXPIRED` (1000000), `BENCH_CLEANUP_LIVE` (100000), `BENCH_OUT` (`target/bench`),
//! `BENCH_STACKS` (comma-separated parts of stack names to keep; all by default, e.g. for a
//! profile), `BENCH_POLL_MS` (how often the hot part's listening caches read their eviction
//! log; the crate's default), `BENCH_EVICTION_CLIENTS` (the clients replica B serves while the
//! eviction delay is measured; 16).

mod cache;
mod chart;
mod cleanup;
mod counts;
mod features;
mod floors;
mod history;
mod hot;
mod measure;
mod merge;
mod payload;
mod report;
mod setup;
mod stacks;

use std::{fmt::Write, time::Duration};

use serde_json::json;
use store::{Id, PostgresStore, Record};
use time::OffsetDateTime;

use crate::stacks::{BoxError, Store14, Store15};

pub const CONCURRENCIES: [usize; 2] = [1, 16];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The session every stack stores: what a typical login session holds.
fn template() -> Record {
    Record {
        id: Id::default(),
        data: [
            ("user_id".to_owned(), json!(42)),
            ("name".to_owned(), json!("Ada Lovelace")),
            ("roles".to_owned(), json!(["admin", "ops"])),
            (
                "csrf".to_owned(),
                json!("r4nd0m-t0k3n-0f-f0rty-thr33-ch4r4ct3rs-xyz"),
            ),
        ]
        .into_iter()
        .collect(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::days(1),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let base: String = env(
        "BENCH_URL",
        "postgres://postgres@127.0.0.1:55433".to_owned(),
    );
    let rounds: usize = env("BENCH_ROUNDS", 15);
    let ops: usize = env("BENCH_OPS", 600);
    let parts: String = env(
        "BENCH_PARTS",
        "ops,counts,merge,cache,hot,cleanup,payload,features,history".to_owned(),
    );
    let out: String = env("BENCH_OUT", "target/bench".to_owned());
    std::fs::create_dir_all(&out)?;
    let has = |part: &str| parts.split(',').any(|p| p == part);
    let template = template();

    setup::ensure_database(&base, setup::BENCH_DB).await?;
    let bench_url = setup::url(&base, setup::BENCH_DB);
    let admin = setup::seaorm(&bench_url, true).await?;
    let only: String = env("BENCH_STACKS", String::new());
    let stacks: Vec<_> = setup::stacks(&base)
        .await?
        .into_iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| s.name.contains(o)))
        .collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Pool size {} per stack; {rounds} rounds of {ops} operations per stack, operation and \
         concurrency; median µs/op of the rounds.\n",
        setup::POOL_SIZE
    );

    if has("ops") {
        eprintln!(
            "bench: {} stacks, {rounds} rounds of {ops} operations",
            stacks.len()
        );
        let timings = measure::run(&stacks, &template, &CONCURRENCIES, rounds, ops).await?;
        report::timings(&mut md, &stacks, &timings);
        report::ratios(&mut md, &stacks, &timings);
        if let Err(err) = report::table_scans(&mut md, &admin).await {
            let _ = writeln!(md, "## Table scans\n\nNot read: {err}\n");
        }
        let svg = report::chart(&stacks, &timings);
        std::fs::write(format!("{out}/chart.svg"), svg)?;
    }

    let save = |md: &String| std::fs::write(format!("{out}/results.md"), md);
    save(&md)?;

    if has("counts") {
        eprintln!("bench: counting statements");
        match counts::count(&admin, &stacks, &template).await {
            Ok((counts, drifted)) => {
                report::counts(&mut md, &counts);
                if !drifted.is_empty() {
                    // The timings above compare each store with a floor that no longer does
                    // what it does: say so in the report, and fail.
                    let _ = writeln!(
                        md,
                        "**The floors no longer send their stores' statements** (benches/src/floors.rs):\n\n- {}\n",
                        drifted.join("\n- ")
                    );
                    save(&md)?;
                    for drift in &drifted {
                        eprintln!("bench: {drift}");
                    }
                    return Err("the floors no longer send their stores' statements: \
                                benches/src/floors.rs must send what the stores do"
                        .into());
                }
            }
            Err(err) => {
                let _ = writeln!(md, "## Statements per operation\n\nNot counted: {err}\n");
            }
        }
    }

    // The side-by-side stacks' pools (16 connections each, up to 13 stacks) close before the parts
    // that open pools of their own: together they would pass the cluster's `max_connections`.
    drop(stacks);
    settle_connections(&admin).await;

    save(&md)?;
    if has("merge") {
        eprintln!("bench: overtaken saves");
        let costs = merge::run(&base, &template, rounds, ops).await?;
        merge::report(&mut md, &costs, rounds, ops);
    }

    save(&md)?;
    if has("cache") {
        eprintln!("bench: CachingSessionStore + moka");
        report::cache(&mut md, &cache_runs(&base, &template, rounds, ops).await?);
    }

    save(&md)?;
    if has("hot") {
        eprintln!("bench: the hot path (read cache, Redis, durability)");
        let results = hot::run(&base, &template, &CONCURRENCIES, rounds, ops).await?;
        hot::report(&mut md, &results, &CONCURRENCIES);
    }

    save(&md)?;
    if has("cleanup") {
        let expired = env("BENCH_CLEANUP_EXPIRED", 1_000_000);
        let live = env("BENCH_CLEANUP_LIVE", 100_000);
        let conn = setup::seaorm(&bench_url, true).await?;
        let schema = "cleanup_scale";
        sea_orm::ConnectionTrait::execute_unprepared(
            &conn,
            &format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#),
        )
        .await?;
        let store = PostgresStore::new(conn).with_schema_name(schema)?;
        store.migrate().await?;
        let pool = setup::lean_pool(&bench_url)?;
        let result = cleanup::run(&store, &pool, schema, &template, expired, live).await?;
        report::cleanup(&mut md, &result);
    }

    save(&md)?;
    if has("features") {
        eprintln!("bench: write avoidance and hashed ids");
        let conn = setup::seaorm(&bench_url, true).await?;
        report::features(
            &mut md,
            &features::run(&conn, &template, rounds, ops).await?,
        );
    }

    save(&md)?;
    if has("history") {
        eprintln!("bench: the login history and its events");
        let conn = setup::seaorm(&bench_url, true).await?;
        let rows = history::run(&conn, &template, &CONCURRENCIES, rounds, ops).await?;
        history::report(&mut md, "PostgresStore", &rows);
    }

    save(&md)?;
    if has("history-mysql") {
        let url = std::env::var("BENCH_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        eprintln!("bench: the login history and its events on MySQL/MariaDB at {url}");
        let conn = setup::seaorm(&url, true).await?;
        let rows = history::run(&conn, &template, &CONCURRENCIES, rounds, ops).await?;
        history::report(&mut md, "MySqlStore", &rows);
    }

    save(&md)?;
    if has("payload") {
        report::payload(&mut md, &payload::measure(&template)?);
    }

    std::fs::write(format!("{out}/results.md"), &md)?;
    println!("{md}");
    eprintln!("bench: wrote {out}/results.md and {out}/chart.svg");
    Ok(())
}

/// Load throughput with a moka cache in front, against the same stores without it.
async fn cache_runs(
    base: &str,
    template: &Record,
    rounds: usize,
    ops: usize,
) -> Result<Vec<(String, usize, f64)>, BoxError> {
    use store::session_store::CachingSessionStore;
    let bench = setup::url(base, setup::BENCH_DB);
    let conn = setup::seaorm(&bench, true).await?;
    let ours = PostgresStore::new(conn).with_schema_name("store_tuned")?;
    let lean =
        store::LeanPostgresStore::new(setup::lean_pool(&bench)?).with_schema_name("lean_store")?;
    let pool = sqlx08::postgres::PgPoolOptions::new()
        .max_connections(setup::POOL_SIZE)
        .test_before_acquire(false)
        .connect(&bench)
        .await?;
    let peer = sqlx_store::PostgresStore::new(pool)
        .with_schema_name("sqlx_store_tuned")?
        .with_table_name("session")?;
    let capacity = (ops * 4) as u64;
    let cached: Vec<(String, std::sync::Arc<dyn stacks::Stack>)> = vec![
        (
            "moka + PostgresStore (SeaORM)".into(),
            std::sync::Arc::new(Store15(CachingSessionStore::new(
                cache::MokaCache::new(capacity),
                ours,
            ))),
        ),
        (
            "moka + LeanPostgresStore".into(),
            std::sync::Arc::new(Store15(CachingSessionStore::new(
                cache::MokaCache::new(capacity),
                lean,
            ))),
        ),
        (
            "moka-store 0.15 + tower-sessions-sqlx-store 0.15".into(),
            std::sync::Arc::new(Store14(core014::session_store::CachingSessionStore::new(
                moka_store::MokaStore::new(Some(capacity)),
                peer,
            ))),
        ),
    ];
    let mut results = Vec::new();
    for (name, stack) in cached {
        for concurrency in CONCURRENCIES {
            let mut micros = Vec::new();
            for _ in 0..rounds {
                micros.push(measure::load_only(&stack, template, concurrency, ops).await?);
            }
            micros.sort_by(f64::total_cmp);
            results.push((name.clone(), concurrency, micros[micros.len() / 2]));
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(results)
}

/// Waits while the server's count of client connections keeps falling (read every 100 ms, for
/// at most 5 s): the backends of the pools just dropped end as they read their closed sockets,
/// a few milliseconds later. Returns at the first read that is not lower than the one before.
async fn settle_connections(admin: &sea_orm::DatabaseConnection) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let count = Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    );
    let mut last = i64::MAX;
    for _ in 0..50 {
        let now = match admin.query_one_raw(count.clone()).await {
            Ok(Some(row)) => row.try_get_by_index::<i64>(0).unwrap_or(0),
            _ => return,
        };
        if now >= last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
