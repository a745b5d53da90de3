//! Failover: a primary killed (SIGKILL) under traffic and its hot standby promoted, on a pair of
//! servers of the test's own (`tests/common/failover.rs`). The tokio-postgres store reaches the
//! new primary through a multi-host URL with `target_session_attrs=read-write`; the SeaORM store
//! through a PgBouncer that the failover re-points (`RELOAD`). SCALING.md ("High availability")
//! quotes the figures these tests print.
#![cfg(feature = "tokio-postgres")]

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    failover::{connect_with, FailoverBouncer, Kill, ReplicatedPair, Replication},
    suite::{in_a_day, record},
};
use serde_json::json;
use tokio::task::JoinHandle;
use tower_sessions_seaorm_store::{
    deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod},
    sea_orm::{ConnectOptions, Database},
    Id, LeanPostgresStore, PostgresStore, Record, SessionStore,
};

/// Clients per store; each creates a session, saves it a few times, then starts another.
const CLIENTS: usize = 8;
const SAVES_PER_SESSION: u64 = 4;
/// How long a client waits after an error before its next request, as a user retrying would.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(20);
/// Each operation's timeout, so that a write stuck on a dead connection gives up.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the harness leaves the dead primary before promoting, as a failure detector would.
const DETECTION: Duration = Duration::from_secs(1);
/// A generous bound on how long, after the promotion, every client may take to be served again.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

/// One write (a create or a save) and what the store answered.
#[derive(Debug, Clone)]
struct Write {
    /// 0 for the create, then 1, 2, … for the saves: the session's `"seq"` value it wrote.
    seq: u64,
    started: Instant,
    finished: Instant,
    error: Option<String>,
}

impl Write {
    fn acknowledged(&self) -> bool {
        self.error.is_none()
    }
}

/// A session a client created (or tried to), and every write it made to it, in order.
#[derive(Debug)]
struct SessionLog {
    client: usize,
    id: Id,
    writes: Vec<Write>,
}

impl SessionLog {
    fn last_acknowledged(&self) -> Option<&Write> {
        self.writes.iter().rev().find(|w| w.acknowledged())
    }

    fn write(&self, seq: u64) -> Option<&Write> {
        self.writes.iter().find(|w| w.seq == seq)
    }
}

/// When each client last had a write acknowledged, in nanoseconds since `base`.
struct Progress {
    base: Instant,
    last_ack: Vec<AtomicU64>,
}

impl Progress {
    fn new(clients: usize) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last_ack: (0..clients).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn acknowledged(&self, client: usize, at: Instant) {
        let nanos = at.duration_since(self.base).as_nanos() as u64;
        self.last_ack[client].fetch_max(nanos, Ordering::Relaxed);
    }

    /// Whether every client has had a write acknowledged after `instant`.
    fn all_acknowledged_after(&self, instant: Instant) -> bool {
        let since = instant.duration_since(self.base).as_nanos() as u64;
        self.last_ack
            .iter()
            .all(|t| t.load(Ordering::Relaxed) > since)
    }
}

/// `CLIENTS` clients writing through `store` until `stop`.
struct Traffic {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    clients: Vec<JoinHandle<Vec<SessionLog>>>,
}

impl Traffic {
    fn start<S: SessionStore + Clone>(store: S) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Progress::new(CLIENTS);
        let clients = (0..CLIENTS)
            .map(|client| {
                let store = store.clone();
                let stop = Arc::clone(&stop);
                let progress = Arc::clone(&progress);
                tokio::spawn(async move { write_sessions(&store, client, &stop, &progress).await })
            })
            .collect();
        Self {
            stop,
            progress,
            clients,
        }
    }

    async fn stop(self) -> Vec<SessionLog> {
        self.stop.store(true, Ordering::Relaxed);
        let mut sessions = Vec::new();
        for client in self.clients {
            sessions.extend(client.await.expect("no client panicked"));
        }
        sessions
    }
}

/// One client: creates a session, saves it `SAVES_PER_SESSION` times with a growing `"seq"`,
/// starts the next; a save only ever follows an acknowledged create (a save never inserts).
async fn write_sessions<S: SessionStore>(
    store: &S,
    client: usize,
    stop: &AtomicBool,
    progress: &Progress,
) -> Vec<SessionLog> {
    let mut sessions: Vec<SessionLog> = Vec::new();
    let mut current: Option<Record> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let (result, seq, rec) = match current.take() {
            None => {
                let mut rec = record(in_a_day());
                rec.data.insert("client".into(), json!(client));
                rec.data.insert("seq".into(), json!(0));
                let result = store.create(&mut rec).await;
                sessions.push(SessionLog {
                    client,
                    id: rec.id,
                    writes: Vec::new(),
                });
                (result, 0, rec)
            }
            Some(mut rec) => {
                let seq = sessions.last().map_or(0, |s| s.writes.len() as u64);
                rec.data.insert("seq".into(), json!(seq));
                (store.save(&rec).await, seq, rec)
            }
        };
        let finished = Instant::now();
        let log = sessions.last_mut().expect("the session being written");
        let created = log.writes.first().is_some_and(Write::acknowledged) || result.is_ok();
        log.writes.push(Write {
            seq,
            started,
            finished,
            error: result.as_ref().err().map(ToString::to_string),
        });
        match result {
            Ok(()) => progress.acknowledged(client, finished),
            Err(_) => tokio::time::sleep(PAUSE_AFTER_ERROR).await,
        }
        // A failed create's session is dropped; a failed save's session is saved again.
        if created && seq < SAVES_PER_SESSION {
            current = Some(rec);
        }
    }
    sessions
}

/// The acknowledged writes a server lacks, after a failover.
#[derive(Debug, Default)]
struct Loss {
    acknowledged: usize,
    lost: Vec<Write>,
    sessions_missing: usize,
    sessions_stale: usize,
}

/// Reads every session that had a write acknowledged through `reader` and collects the
/// acknowledged writes it does not reflect: the session is missing, or holds an older `"seq"`.
async fn acknowledged_writes_missing<S: SessionStore>(reader: &S, sessions: &[SessionLog]) -> Loss {
    let mut loss = Loss::default();
    for session in sessions {
        let acknowledged: Vec<&Write> =
            session.writes.iter().filter(|w| w.acknowledged()).collect();
        loss.acknowledged += acknowledged.len();
        let Some(last) = session.last_acknowledged() else {
            continue;
        };
        let stored = reader
            .load(&session.id)
            .await
            .expect("read the new primary")
            .map(|rec| rec.data["seq"].as_u64().expect("a seq"));
        match stored {
            None => {
                loss.sessions_missing += 1;
                loss.lost.extend(acknowledged.into_iter().cloned());
            }
            Some(seq) => {
                assert!(
                    session.write(seq).is_some(),
                    "the stored seq {seq} was written by this session's client"
                );
                if seq < last.seq {
                    loss.sessions_stale += 1;
                    loss.lost
                        .extend(acknowledged.into_iter().filter(|w| w.seq > seq).cloned());
                }
            }
        }
    }
    loss
}

/// How a store's clients lived through the failover.
struct Recovery {
    first_error: Option<(Duration, String)>,
    /// Each distinct error message: how many writes failed with it, first and last seen.
    errors: Vec<(String, usize, Duration, Duration)>,
    /// The first acknowledged write started after the fence, since the kill.
    first_ack: Option<Duration>,
    /// By when every client had a write started after the fence acknowledged, since the kill.
    every_client: Option<Duration>,
    /// The longest a write was held during the failover: from the kill, or from its start if it
    /// began later, to its end. A write PgBouncer held (no server to send it to) until it was
    /// re-pointed ends without an error, after the failover. Writes begun after the kill count:
    /// when no statement was in flight at the kill (each write takes milliseconds, so that
    /// happens), the first writes to be held are the ones the clients send next.
    held: Option<Duration>,
}

fn recovery(sessions: &[SessionLog], kill: Kill) -> Recovery {
    let killed = kill.signalled;
    let after: Vec<(usize, &Write)> = sessions
        .iter()
        .flat_map(|s| s.writes.iter().map(move |w| (s.client, w)))
        .filter(|(_, w)| w.finished > killed)
        .collect();
    let first_error = after
        .iter()
        .filter_map(|(_, w)| w.error.as_ref().map(|e| (w.finished - killed, e.clone())))
        .min_by_key(|(at, _)| *at);
    let mut errors: Vec<(String, usize, Duration, Duration)> = Vec::new();
    for (_, w) in &after {
        let Some(message) = &w.error else { continue };
        let at = w.finished - killed;
        match errors.iter_mut().find(|(m, ..)| m == message) {
            Some((_, count, _, last)) => {
                *count += 1;
                *last = (*last).max(at);
            }
            None => errors.push((message.clone(), 1, at, at)),
        }
    }
    errors.sort_by_key(|(_, _, first, _)| *first);
    let mut per_client: HashMap<usize, Duration> = HashMap::new();
    for (client, w) in &after {
        if w.acknowledged() && w.started > kill.fenced {
            let at = w.finished - killed;
            per_client
                .entry(*client)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    let held = after
        .iter()
        .map(|(_, w)| w.finished - w.started.max(killed))
        .max();
    Recovery {
        first_error,
        held,
        errors,
        first_ack: per_client.values().min().copied(),
        every_client: (per_client.len() == CLIENTS)
            .then(|| per_client.values().max().copied())
            .flatten(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A tokio-postgres store on a deadpool of `CLIENTS` connections built from `config`.
fn lean_store(config: tokio_postgres::Config) -> LeanPostgresStore {
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(CLIENTS)
        .build()
        .expect("a deadpool");
    LeanPostgresStore::new(pool).with_operation_timeout(Some(OPERATION_TIMEOUT))
}

fn lean_store_at(url: &str) -> LeanPostgresStore {
    lean_store(url.parse().expect("a PostgreSQL URL"))
}

/// A SeaORM store on a pool of `CLIENTS` connections to `url`.
async fn seaorm_store_at(url: &str) -> PostgresStore {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(CLIENTS as u32)
        .acquire_timeout(OPERATION_TIMEOUT)
        .connect_timeout(OPERATION_TIMEOUT)
        .sqlx_logging(false);
    let conn = Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect the SeaORM store to {url}: {e}"));
    PostgresStore::new(conn).with_operation_timeout(Some(OPERATION_TIMEOUT))
}

/// Creates the session table on `url` (the primary).
async fn migrate(url: &str) {
    seaorm_store_at(url)
        .await
        .migrate()
        .await
        .expect("migrate the primary");
}

/// The ids of every row in the session table behind `client`.
async fn stored_ids(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(r#"SELECT "id" FROM "tower_sessions"."session""#, &[])
        .await
        .expect("read the session table")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn report(store: &str, r: &Recovery, promoted: Duration) {
    let first_error = r.first_error.as_ref().map_or("none".to_owned(), |(at, e)| {
        format!("{} after the kill: {e}", seconds(*at))
    });
    let at = |d: Option<Duration>| {
        d.map_or("never".to_owned(), |d| {
            format!(
                "{} after the kill ({} after the promotion)",
                seconds(d),
                seconds(d.saturating_sub(promoted))
            )
        })
    };
    eprintln!("  {store}:");
    eprintln!("    first error: {first_error}");
    eprintln!(
        "    longest a write was held after the kill: {}",
        r.held.map_or("none".to_owned(), seconds)
    );
    let failed: usize = r.errors.iter().map(|(_, n, ..)| n).sum();
    eprintln!("    failed writes during the failover: {failed}");
    for (message, count, first, last) in &r.errors {
        eprintln!(
            "      {count} × from {} to {}: {message}",
            seconds(*first),
            seconds(*last)
        );
    }
    eprintln!(
        "    first acknowledged write started after the fence: {}",
        at(r.first_ack)
    );
    eprintln!("    every client served again: {}", at(r.every_client));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_under_synchronous_replication_loses_no_acknowledged_write_and_both_stores_recover_by_themselves(
) {
    let began = Instant::now();
    let pair = ReplicatedPair::start(Replication::Synchronous).await;
    migrate(&pair.primary.url()).await;
    let bouncer = FailoverBouncer::start(pair.primary.port);

    let lean = lean_store_at(&pair.multi_host_url());
    let seaorm = seaorm_store_at(&bouncer.url()).await;
    let lean_traffic = Traffic::start(lean);
    let seaorm_traffic = Traffic::start(seaorm);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The harness's blocking calls run beside the clients, not instead of some of them.
    let kill = tokio::task::block_in_place(|| pair.kill_primary());
    let killed = kill.signalled;
    assert!(
        pair.primary_is_fenced(),
        "the old primary is fenced: no process of it runs, its port refuses connections"
    );
    tokio::time::sleep(DETECTION).await;
    let promoted = tokio::task::block_in_place(|| pair.promote_standby());
    let repointed = bouncer.repoint(pair.standby.port).await;

    let deadline = promoted + RECOVERY_BOUND;
    while !(lean_traffic.progress.all_acknowledged_after(promoted)
        && seaorm_traffic.progress.all_acknowledged_after(promoted))
    {
        assert!(
            Instant::now() < deadline,
            "every client of both stores is served again within {RECOVERY_BOUND:?} of the \
             promotion, without being restarted; PgBouncer's log:\n{}",
            bouncer.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A little more traffic on the new primary.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lean_sessions = lean_traffic.stop().await;
    let seaorm_sessions = seaorm_traffic.stop().await;

    // Every acknowledged create and save is on the new primary.
    let new_primary = lean_store_at(&pair.standby.url());
    let lean_loss = acknowledged_writes_missing(&new_primary, &lean_sessions).await;
    let seaorm_loss = acknowledged_writes_missing(&new_primary, &seaorm_sessions).await;
    assert!(
        lean_loss.lost.is_empty(),
        "tokio-postgres store: acknowledged writes missing on the new primary: {lean_loss:?}"
    );
    assert!(
        seaorm_loss.lost.is_empty(),
        "SeaORM store: acknowledged writes missing on the new primary: {seaorm_loss:?}"
    );

    // Nothing reached the old primary once it was fenced: every row it holds was written by a
    // write that started before all its processes were dead.
    let private = pair.reopen_old_primary_privately();
    let old_primary = connect_with(&private).await;
    let old_ids = stored_ids(&old_primary).await;
    let old_reader = lean_store(private);
    let sessions: HashMap<String, &SessionLog> = lean_sessions
        .iter()
        .chain(&seaorm_sessions)
        .map(|s| (s.id.to_string(), s))
        .collect();
    let mut unacknowledged_on_old_only = 0;
    for id in &old_ids {
        let session = sessions
            .get(id)
            .expect("every row on the old primary is one the clients wrote");
        let rec = old_reader
            .load(&session.id)
            .await
            .expect("read the old primary")
            .expect("the row just listed");
        let seq = rec.data["seq"].as_u64().expect("a seq");
        let write = session.write(seq).expect("a write of this session");
        assert!(
            write.started < kill.fenced,
            "the old primary holds a write that started {:?} after it was fenced",
            write.started - kill.fenced
        );
        let on_new = new_primary
            .load(&session.id)
            .await
            .expect("read the new primary")
            .map(|r| r.data["seq"].as_u64().expect("a seq"));
        if on_new.is_none_or(|s| s < seq) {
            assert!(
                !write.acknowledged(),
                "a write only the old primary has was not acknowledged"
            );
            unacknowledged_on_old_only += 1;
        }
    }

    let lean_recovery = recovery(&lean_sessions, kill);
    let seaorm_recovery = recovery(&seaorm_sessions, kill);
    for (store, r) in [
        ("tokio-postgres", &lean_recovery),
        ("SeaORM", &seaorm_recovery),
    ] {
        // Seen as an error (a statement in flight on the killed server), or, through
        // PgBouncer, as a write held until the pool was re-pointed at the new primary: when
        // no statement of the 8 clients was in flight at the kill, none fails. The clients
        // write back to back, so the first held write starts milliseconds after the kill and
        // is held past the promotion, at least `DETECTION` after the kill: half of it leaves
        // room for that start, and a write that was never held ends in milliseconds.
        assert!(
            r.first_error.is_some() || r.held.is_some_and(|held| held >= DETECTION / 2),
            "{store}: the failover was seen by the traffic (an error, or a write held through \
             it): {:?} {:?}",
            r.first_error,
            r.held
        );
        assert!(
            r.every_client.is_some(),
            "{store}: every client was served again"
        );
    }

    let promoted_after = promoted - killed;
    eprintln!(
        "failover under synchronous replication (synchronous_commit = on), {CLIENTS} clients per \
         store; primary killed (SIGKILL), standby promoted {} later (pg_ctl promote took {}), \
         PgBouncer re-pointed {} after the kill:",
        seconds(DETECTION),
        seconds(promoted_after.saturating_sub(DETECTION)),
        seconds(repointed - killed)
    );
    report(
        "tokio-postgres store (multi-host URL, target_session_attrs=read-write)",
        &lean_recovery,
        promoted_after,
    );
    report(
        "SeaORM store (PgBouncer, transaction mode, re-pointed by RELOAD)",
        &seaorm_recovery,
        promoted_after,
    );
    eprintln!(
        "  acknowledged writes: {} (tokio-postgres) + {} (SeaORM), lost: {} + {}",
        lean_loss.acknowledged,
        seaorm_loss.acknowledged,
        lean_loss.lost.len(),
        seaorm_loss.lost.len()
    );
    eprintln!(
        "  old primary: dead {} after the SIGKILL; {} rows, none written after that; \
         {unacknowledged_on_old_only} of them newer than the new primary's, all unacknowledged",
        seconds(kill.fenced - kill.signalled),
        old_ids.len()
    );
    eprintln!("  test took {}", seconds(began.elapsed()));
    if std::env::var_os("FAILOVER_LOGS").is_some() {
        eprintln!("PgBouncer's log:\n{}", bouncer.log());
    }
}

/// Lines of `log` that report a write refused by a read-only server.
fn refused_writes_in(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("ERROR:") && line.contains("in a read-only transaction"))
        .count()
}

fn connections_in(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("connection received:"))
        .count()
}

/// Runs `calls` creates and as many saves of `existing` through `store`, and returns each
/// call's error message and the slowest call's duration.
async fn refused_writes<S: SessionStore>(
    store: &S,
    existing: &Record,
    calls: usize,
) -> (Vec<String>, Duration) {
    let mut messages = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..calls {
        let started = Instant::now();
        let mut rec = record(in_a_day());
        let created = store.create(&mut rec).await;
        let saved = store.save(existing).await;
        slowest = slowest.max(started.elapsed() / 2);
        for result in [created, saved] {
            let err = result.expect_err("a standby refuses every write");
            let message = err.to_string();
            assert!(
                !message.contains(&rec.id.to_string())
                    && !message.contains(&existing.id.to_string()),
                "no session id in an error: {message}"
            );
            messages.push(message);
        }
    }
    (messages, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_as_the_only_host_refuses_every_write_with_one_clear_error_and_no_retries() {
    // remote_apply: what the primary commits is readable on the standby when the commit returns.
    let pair = ReplicatedPair::start(Replication::SynchronousApplied).await;
    migrate(&pair.primary.url()).await;
    let mut existing = record(in_a_day());
    lean_store_at(&pair.primary.url())
        .create(&mut existing)
        .await
        .expect("a session created on the primary");
    const CALLS: usize = 5;

    // Both stores on the standby alone: each create and each save is one statement, refused once.
    let lean = lean_store_at(&pair.standby.url());
    let seaorm = seaorm_store_at(&pair.standby.url()).await;
    let before = refused_writes_in(&pair.standby.log());
    let (lean_errors, lean_slowest) = refused_writes(&lean, &existing, CALLS).await;
    let (seaorm_errors, seaorm_slowest) = refused_writes(&seaorm, &existing, CALLS).await;
    let refused = refused_writes_in(&pair.standby.log()) - before;
    assert_eq!(
        refused,
        4 * CALLS,
        "the standby refused each write once: the stores sent no retries"
    );
    for message in lean_errors.iter().chain(&seaorm_errors) {
        assert!(
            message.starts_with(
                "the session database is unavailable: the server is a standby or read-only and \
                 accepts no writes: cannot execute"
            ) && message.contains("in a read-only transaction (SQLSTATE 25006)")
                && message.contains("connect the store to the primary"),
            "a clear error: {message}"
        );
    }

    // The tokio-postgres store with target_session_attrs=read-write and only the standby: no
    // connection is accepted, one attempt per call.
    let url = format!(
        "{}?target_session_attrs=read-write&connect_timeout=2",
        pair.standby.url()
    );
    let picky = lean_store_at(&url);
    let before = connections_in(&pair.standby.log());
    let mut picky_errors = Vec::new();
    for _ in 0..CALLS {
        let mut rec = record(in_a_day());
        let err = picky
            .create(&mut rec)
            .await
            .expect_err("no writable server among the hosts");
        picky_errors.push(err.to_string());
    }
    let attempts = connections_in(&pair.standby.log()) - before;
    assert_eq!(attempts, CALLS, "one connection attempt per call");
    for message in &picky_errors {
        assert!(
            message.starts_with(
                "the session database is unavailable: no server in the URL accepts writes"
            ) && message.contains("target_session_attrs=read-write"),
            "a clear error: {message}"
        );
    }

    eprintln!("a standby as the only host ({CALLS} creates and {CALLS} saves per store):");
    eprintln!(
        "  tokio-postgres store: slowest call {:?}: {}",
        lean_slowest, lean_errors[0]
    );
    eprintln!(
        "  SeaORM store: slowest call {:?}: {}",
        seaorm_slowest, seaorm_errors[0]
    );
    eprintln!(
        "  tokio-postgres store with target_session_attrs=read-write: {attempts} connection \
         attempts for {CALLS} creates: {}",
        picky_errors[0]
    );
}

/// How far the standby is behind the primary, as the primary sees it.
async fn replication_lag(primary_url: &str) -> String {
    let client = common::failover::connect(primary_url).await;
    let row = client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint, \
                    coalesce(flush_lag::text, 'none'), coalesce(replay_lag::text, 'none') \
             FROM pg_stat_replication",
            &[],
        )
        .await
        .expect("read pg_stat_replication");
    format!(
        "{} bytes of WAL not yet flushed on the standby, flush_lag {}, replay_lag {}",
        row.get::<_, i64>(0),
        row.get::<_, String>(1),
        row.get::<_, String>(2)
    )
}

/// An asynchronous pair under `CLIENTS` clients of the tokio-postgres store: `stall` (if any)
/// before the kill, the kill, the promotion; returns what the clients wrote and the kill.
async fn asynchronous_failover(
    stall: Option<Duration>,
) -> (
    ReplicatedPair,
    Vec<SessionLog>,
    Kill,
    Option<Instant>,
    String,
) {
    let pair = ReplicatedPair::start(Replication::Asynchronous).await;
    migrate(&pair.primary.url()).await;
    let traffic = Traffic::start(lean_store_at(&pair.primary.url()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = match stall {
        Some(window) => {
            let stalled = pair.stall_replication().await;
            tokio::time::sleep(window).await;
            Some(stalled)
        }
        None => None,
    };
    let lag = replication_lag(&pair.primary.url()).await;
    let kill = tokio::task::block_in_place(|| pair.kill_primary());
    let sessions = traffic.stop().await;
    pair.promote_standby();
    (pair, sessions, kill, stalled, lag)
}

fn acknowledged_between(sessions: &[SessionLog], from: Instant, to: Instant) -> usize {
    sessions
        .iter()
        .flat_map(|s| &s.writes)
        .filter(|w| w.acknowledged() && w.finished >= from && w.finished <= to)
        .count()
}

fn report_loss(what: &str, loss: &Loss, kill: Kill, stalled: Option<Instant>, lag: &str) {
    let earliest = loss.lost.iter().map(|w| w.finished).min();
    eprintln!("{what}:");
    eprintln!("  just before the kill: {lag}");
    eprintln!(
        "  acknowledged writes: {}; lost: {} ({} sessions gone, {} sessions with older data)",
        loss.acknowledged,
        loss.lost.len(),
        loss.sessions_missing,
        loss.sessions_stale
    );
    if let Some(earliest) = earliest {
        eprintln!(
            "  the earliest lost write was acknowledged {} before the kill",
            seconds(kill.signalled.saturating_duration_since(earliest))
        );
    }
    if let Some(stalled) = stalled {
        let before = loss.lost.iter().filter(|w| w.finished < stalled).count();
        eprintln!("  lost writes acknowledged before the stall began: {before}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_failover_loses_the_writes_acknowledged_while_replication_lagged() {
    let window = Duration::from_secs(1);
    let (pair, sessions, kill, stalled, lag) = asynchronous_failover(Some(window)).await;
    let stalled = stalled.expect("a stall");
    let loss = acknowledged_writes_missing(&lean_store_at(&pair.standby.url()), &sessions).await;
    let in_window = acknowledged_between(&sessions, stalled, kill.fenced);

    assert!(
        in_window > 0,
        "the clients were acknowledged while the standby received nothing"
    );
    assert!(
        !loss.lost.is_empty(),
        "writes acknowledged in the lag window are lost by the failover"
    );
    // The standby had everything up to the stall, give or take the WAL in flight then.
    let slack = Duration::from_millis(500);
    for write in &loss.lost {
        assert!(
            write.finished + slack > stalled,
            "a write acknowledged {:?} before the lag window began is lost",
            stalled - write.finished
        );
    }
    report_loss(
        &format!(
            "failover under asynchronous replication with the WAL sender stalled (SIGSTOP) for \
             {} before the kill, {CLIENTS} clients; {in_window} writes acknowledged during the \
             stall",
            seconds(window)
        ),
        &loss,
        kill,
        Some(stalled),
        &lag,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_failover_without_a_stall_loses_only_writes_of_its_last_moments() {
    let (pair, sessions, kill, _, lag) = asynchronous_failover(None).await;
    let loss = acknowledged_writes_missing(&lean_store_at(&pair.standby.url()), &sessions).await;
    // On loopback the standby is milliseconds behind; 2 s is a generous bound on that window.
    let window = Duration::from_secs(2);
    for write in &loss.lost {
        assert!(
            write.finished + window > kill.signalled,
            "a write acknowledged {:?} before the kill is lost",
            kill.signalled - write.finished
        );
    }
    report_loss(
        &format!(
            "failover under asynchronous replication, no stall, {CLIENTS} clients on loopback"
        ),
        &loss,
        kill,
        None,
        &lag,
    );
}
