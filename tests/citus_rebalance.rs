//! Adding a worker to the Citus cluster and rebalancing while clients create, save and load
//! sessions: no session is lost and no operation fails. The spare worker (`CITUS_SPARE_WORKER`)
//! is one `scripts/lib/citus.sh` started and left out of the cluster; this test adds it, moves
//! shards onto it with `citus_rebalance_start()` (a shard move copies a shard, then follows its
//! writes by logical replication, and blocks writes only for the switch-over), then drains it and
//! takes it out again, so the cluster is as it found it. SCALING.md quotes what it prints.
//!
//! Built without `CITUS_URL` this file has no tests: `citus_suite` says loudly that the Citus
//! tests did not run.
#![cfg(citus_cluster)]

mod common;

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    citus::{distributed_store, CitusFixture},
    connect_postgres, scalar_strings,
    suite::{in_a_day, record},
    without_base,
};
use serde_json::json;
use tower_sessions_seaorm_store::{sea_orm::ConnectionTrait, Record, SessionStore};

const CLIENTS: usize = 16;
/// Sessions the clients must have created before the worker is added, and again after the
/// rebalance, so that traffic runs before, during and after it.
const WARM_UP: usize = 200;

/// The spare worker's host and port.
fn spare_worker() -> (String, u16) {
    let spare = std::env::var("CITUS_SPARE_WORKER")
        .unwrap_or_else(|_| panic!("CITUS_SPARE_WORKER is unset: {}", common::citus::HOW_TO_RUN));
    let (host, port) = spare.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("a port"))
}

/// Waits until the clients have created `target` sessions; panics after a minute (a client
/// failed, or all of them stalled).
async fn until(count: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "the clients stalled short of {target} sessions"
        );
        // Real time: the clients make progress on their own.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_worker_and_rebalancing_under_load_loses_no_session() {
    let fixture = CitusFixture::new().await;
    let (host, port) = spare_worker();
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let pool = distributed_store(connect_postgres(&fixture.url).await, &fixture.schema);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (store, stop, created) = (pool.clone(), stop.clone(), created.clone());
            tokio::spawn(async move {
                let mut sessions: Vec<Record> = Vec::new();
                let mut slowest = Duration::ZERO;
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let started = Instant::now();
                    let mut rec = record(in_a_day());
                    rec.data.insert("client".into(), json!(client));
                    store.create(&mut rec).await.expect("a create");
                    // Each round also saves and loads one earlier session.
                    let earlier = round as usize % sessions.len().max(1);
                    if let Some(earlier) = sessions.get_mut(earlier) {
                        earlier.data.insert("round".into(), json!(round));
                        store.save(earlier).await.expect("a save");
                        assert_eq!(
                            without_base(store.load(&earlier.id).await.expect("a load")).as_ref(),
                            Some(&*earlier)
                        );
                    }
                    sessions.push(rec);
                    created.fetch_add(1, Ordering::Relaxed);
                    slowest = slowest.max(started.elapsed());
                }
                (sessions, slowest)
            })
        })
        .collect();

    until(&created, WARM_UP).await;
    let conn = &fixture.conn;
    conn.execute_unprepared(&format!("SELECT citus_add_node('{host}', {port})"))
        .await
        .expect("add the spare worker");
    let rebalance_started = Instant::now();
    conn.execute_unprepared("SELECT citus_rebalance_start()")
        .await
        .expect("start the rebalance");
    conn.execute_unprepared("SELECT citus_rebalance_wait()")
        .await
        .expect("the rebalance finishes");
    let rebalance_took = rebalance_started.elapsed();
    let during = created.load(Ordering::Relaxed);
    until(&created, during + WARM_UP).await;
    stop.store(true, Ordering::Relaxed);

    let mut sessions = Vec::new();
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (mine, slow) = client.await.expect("no client failed an operation");
        sessions.extend(mine);
        slowest = slowest.max(slow);
    }
    let shards = fixture.shards_per_worker().await;
    let state = scalar_strings(
        conn,
        "SELECT state::text FROM citus_rebalance_status() ORDER BY job_id DESC LIMIT 1",
        vec![],
    )
    .await;

    let mut lost = 0;
    for session in &sessions {
        if without_base(fixture.store.load(&session.id).await.unwrap()).as_ref() != Some(session) {
            lost += 1;
        }
    }
    // Straight to stderr, past the harness's capture: CI's log keeps the figures.
    let _ = writeln!(
        std::io::stderr(),
        "rebalance under load: {} sessions created by {CLIENTS} clients ({during} before the \
         rebalance finished); rebalance took {rebalance_took:?} ({state:?}); shards per \
         worker after: {shards:?}; slowest client round {slowest:?}; lost {lost}",
        sessions.len()
    );

    // Back as it was: the spare drained and out of the cluster.
    conn.execute_unprepared(&format!("SELECT citus_drain_node('{host}', {port})"))
        .await
        .expect("drain the spare worker");
    conn.execute_unprepared(&format!("SELECT citus_remove_node('{host}', {port})"))
        .await
        .expect("remove the spare worker");

    assert_eq!(state, ["finished"]);
    assert_eq!(shards.len(), 3, "the new worker holds shards: {shards:?}");
    assert!(
        shards.iter().any(|(p, _)| i32::from(port) == *p),
        "{shards:?}"
    );
    assert_eq!(lost, 0, "of {} sessions", sessions.len());
    fixture.finish().await;
}
