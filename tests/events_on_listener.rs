//! Live events on a replica with a listening read cache (PostgreSQL): its cache's listener reads
//! them, on its own connection, so one listener per replica serves both. Each kind arrives on
//! the other replica once (SeaORM and lean stores, a pool behind PgBouncer); they arrive while
//! the replica's whole pool is held by someone else (so the pool carries no event reads), for
//! a later subscription and a clone's too; none is lost or repeated across a listener killed
//! mid-stream; and a listening URL naming another database delivers none of that database's
//! entries.
#![cfg(all(feature = "cache", feature = "tokio-postgres"))]

mod common;

use std::time::Duration;

use common::{
    connect_postgres, connect_postgres_with, database_url, drop_schema,
    events::{
        configured, every_kind_arrives_once_with_its_reason, expect, next, postgres, record,
        summary, DAY,
    },
    unique_name, wait_until_serving,
};
use tokio::sync::broadcast::{error::TryRecvError, Receiver};
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, TransactionTrait},
    testing::ManualClock,
    Cache, LeanPostgresStore, PostgresStore, RepositoryStore, SessionEvent, SessionStore,
};

/// `DATABASE_URL` with `parameter` added.
fn database_url_with(parameter: &str) -> String {
    let url = database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// `DATABASE_URL` naming the database `name` instead.
fn database_url_on(name: &str) -> String {
    let url = database_url();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    match query {
        "" => format!("{server}/{name}"),
        query => format!("{server}/{name}?{query}"),
    }
}

/// A listening URL whose connection the test can find by `application_name`.
fn listening_url(application: &str) -> String {
    database_url_with(&format!("application_name={application}"))
}

/// A SeaORM replica with the history and a listening cache on `listening`, in `schema`.
async fn cached(schema: &str, clock: &ManualClock, listening: Cache) -> PostgresStore {
    postgres(schema, clock).await.with_cache(listening).unwrap()
}

/// A lean replica on `pool` with the history and a listening cache on `listening`.
fn lean(
    pool: tower_sessions_seaorm_store::deadpool_postgres::Pool,
    schema: &str,
    clock: &ManualClock,
    listening: Cache,
) -> LeanPostgresStore {
    let store = LeanPostgresStore::new(pool)
        .with_schema_name(schema)
        .unwrap();
    configured(store, clock)
        .with_login_history(DAY)
        .unwrap()
        .with_cache(listening)
        .unwrap()
}

/// Waits until `store`'s cache serves: its listener has proven it hears the store's database,
/// and so reads the events. `within` bounds a failing test only.
async fn wait_until_proven<R: SessionRepository, C: Codec>(
    store: &RepositoryStore<R, C>,
    within: Duration,
) {
    let deadline = std::time::Instant::now() + within;
    while !store.is_cache_serving() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener did not prove itself within {within:?}"
        );
        // Real time: the listener connects and a heartbeat comes back over the network.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nothing more arrives: no event came twice.
fn nothing_more(events: &mut Receiver<SessionEvent>) {
    assert!(
        matches!(events.try_recv(), Err(TryRecvError::Empty)),
        "an event arrived twice"
    );
}

#[tokio::test]
async fn every_kind_arrives_once_on_a_replica_whose_listener_reads_them() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let a = cached(&schema, &clock, Cache::listening(database_url())).await;
    a.migrate().await.unwrap();
    let b = cached(&schema, &clock, Cache::listening(database_url())).await;
    wait_until_serving(&a, "a").await;
    wait_until_serving(&b, "b").await;
    every_kind_arrives_once_with_its_reason(&a, &b, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[tokio::test]
async fn every_kind_arrives_once_on_a_lean_replica_whose_listener_reads_them() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let a = cached(&schema, &clock, Cache::listening(database_url())).await;
    a.migrate().await.unwrap();
    let pool = common::lean::lean_pool(&database_url());
    let b = lean(pool, &schema, &clock, Cache::listening(database_url()));
    wait_until_serving(&b, "the lean b").await;
    every_kind_arrives_once_with_its_reason(&a, &b, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// The store's pool through PgBouncer in transaction mode, its listener on a direct URL (as
/// docs/cache.md says): the heartbeats prove the listener through PgBouncer, and it reads the
/// events.
#[tokio::test]
async fn every_kind_arrives_once_on_a_replica_behind_pgbouncer_whose_listener_reads_them() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let a = cached(&schema, &clock, Cache::listening(database_url())).await;
    a.migrate().await.unwrap();
    let pooled = common::pgbouncer::connect_through_pgbouncer().await;
    let b = configured(
        PostgresStore::new(pooled)
            .with_schema_name(&schema)
            .unwrap(),
        &clock,
    )
    .with_login_history(DAY)
    .unwrap()
    .with_cache(Cache::listening(database_url()))
    .unwrap();
    wait_until_serving(&b, "b, behind PgBouncer").await;
    every_kind_arrives_once_with_its_reason(&a, &b, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// The staleness bound of a replica whose pool the test holds: its heartbeats cannot go
/// through the pool meanwhile, and its listener reconnects after hearing nothing for twice the
/// bound, so the bound is long beside the test's wait (`ARRIVAL`, 10 s).
const HELD_BOUND: Duration = Duration::from_secs(20);

/// With `listener`'s one pooled connection held by `held` (in an open transaction),
/// `writer`'s sign-ins still arrive on `listener`: its listener reads them, not its pool.
async fn writes_arrive_while_the_pool_is_held<R, C, H>(
    writer: &PostgresStore,
    listener: &RepositoryStore<R, C>,
    clock: &ManualClock,
    hold: impl std::future::Future<Output = H>,
) where
    R: SessionRepository,
    C: Codec,
{
    // The first heartbeat goes as the store is built, maybe before the listener listens; the
    // next a quarter of the bound later.
    wait_until_proven(listener, HELD_BOUND).await;
    let mut events = listener.events().await.unwrap();
    let held = hold.await;
    // Real time is the point: the pool has no connection to give within it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.health())
            .await
            .is_err(),
        "the listener's pool is not exhausted"
    );
    let mut handles = Vec::new();
    for n in 0..10 {
        let mut rec = record(Some(&format!("user{n}")), clock.now());
        writer.create(&mut rec).await.unwrap();
        handles.push((format!("user{n}"), writer.session_handle(rec.id)));
    }
    let heard = next(&mut events, handles.len()).await;
    let want: Vec<_> = handles
        .iter()
        .map(|(user, handle)| ("signed_in", user.as_str(), handle))
        .collect();
    assert_eq!(summary(&heard), expect(&want));
    drop(held);
    // The pool serves again; the events go on.
    let mut last = record(Some("last"), clock.now());
    writer.create(&mut last).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 1).await),
        expect(&[("signed_in", "last", &writer.session_handle(last.id))])
    );
    nothing_more(&mut events);
}

#[tokio::test]
async fn a_replica_whose_pool_is_held_hears_the_others_through_its_listener() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let writer = postgres(&schema, &clock).await;
    let conn = connect_postgres_with(&database_url(), 1).await;
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    let listener = configured(store, &clock)
        .with_login_history(DAY)
        .unwrap()
        .with_cache(Cache::listening(database_url()).max_staleness(HELD_BOUND))
        .unwrap();
    listener.migrate().await.unwrap();
    let hold = async {
        let held = conn.begin().await.unwrap();
        held.execute_unprepared("SELECT 1").await.unwrap();
        held
    };
    writes_arrive_while_the_pool_is_held(&writer, &listener, &clock, hold).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[tokio::test]
async fn a_lean_replica_whose_pool_is_held_hears_the_others_through_its_listener() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let writer = cached(&schema, &clock, Cache::listening(database_url())).await;
    writer.migrate().await.unwrap();
    let pool = common::lean::lean_pool_of(&database_url(), 1);
    let listener = lean(
        pool.clone(),
        &schema,
        &clock,
        Cache::listening(database_url()).max_staleness(HELD_BOUND),
    );
    let hold = async {
        let held = pool.get().await.unwrap();
        held.batch_execute("BEGIN; SELECT 1").await.unwrap();
        held
    };
    writes_arrive_while_the_pool_is_held(&writer, &listener, &clock, hold).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// Ends the connections named `application`; how many.
async fn terminate(application: &str) -> i64 {
    let admin = connect_postgres(&database_url()).await;
    let row = admin
        .query_one_raw(
            tower_sessions_seaorm_store::sea_orm::Statement::from_string(
                admin.get_database_backend(),
                format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = '{application}'"
                ),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    let ended = row.try_get_by_index::<i64>(0).unwrap();
    admin.close().await.unwrap();
    ended
}

/// The listener's connection killed while 24 clients sign in and log out: every change
/// arrives once, whether the listener read it before the kill, the pool while the listener
/// reconnected, or the listener again once its new connection had proven itself.
#[tokio::test]
async fn a_listener_killed_mid_stream_loses_and_repeats_no_event() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let application = unique_name("ts_ev_listener");
    let writer = cached(&schema, &clock, Cache::listening(database_url())).await;
    writer.migrate().await.unwrap();
    let listener = cached(
        &schema,
        &clock,
        Cache::listening(listening_url(&application)),
    )
    .await;
    wait_until_serving(&listener, "the listener").await;
    let mut events = listener.events().await.unwrap();

    const CLIENTS: usize = 24;
    const LIVES: usize = 4;
    let mut writers = Vec::new();
    for client in 0..CLIENTS {
        let (store, clock) = (writer.clone(), clock.clone());
        writers.push(tokio::spawn(async move {
            let mut lives = Vec::new();
            for _ in 0..LIVES {
                let user = format!("user{client}");
                let mut rec = record(Some(&user), clock.now());
                store.create(&mut rec).await.unwrap();
                store.delete(&rec.id).await.unwrap();
                lives.push((user, store.session_handle(rec.id)));
            }
            lives
        }));
    }
    let mut heard = next(&mut events, 20).await;
    assert!(
        terminate(&application).await >= 1,
        "no listener connection to end"
    );
    let mut expected = Vec::new();
    for writer in writers {
        for (user, handle) in writer.await.unwrap() {
            expected.push(("signed_in", user.clone(), handle.clone()));
            expected.push(("deleted", user, handle));
        }
    }
    heard.extend(next(&mut events, expected.len() - heard.len()).await);

    // A last change arrives after every earlier one, so one heard twice would have come by
    // now.
    wait_until_serving(&listener, "the listener, reconnected").await;
    let mut last = record(Some("last"), clock.now());
    writer.create(&mut last).await.unwrap();
    let last = writer.session_handle(last.id);
    heard.extend(next(&mut events, 1).await);
    expected.push(("signed_in", "last".to_owned(), last));
    let want: Vec<_> = expected
        .iter()
        .map(|(kind, user, handle)| (*kind, user.as_str(), handle))
        .collect();
    assert_eq!(summary(&heard), expect(&want));
    nothing_more(&mut events);
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// A listening URL naming another database (with the same tables, triggers and history, and
/// writes of its own) by mistake: its listener never proves itself, so it never reads that
/// database's history; the store's events come through its pool, from its own database only.
#[tokio::test]
async fn a_listener_on_another_database_delivers_none_of_its_events() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let admin = connect_postgres(&database_url()).await;
    let elsewhere = unique_name("ts_ev_elsewhere");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{elsewhere}\""))
        .await
        .unwrap();
    let elsewhere_url = database_url_on(&elsewhere);
    let other_conn = connect_postgres(&elsewhere_url).await;
    let other = configured(
        PostgresStore::new(other_conn.clone())
            .with_schema_name(&schema)
            .unwrap(),
        &clock,
    )
    .with_login_history(DAY)
    .unwrap()
    .with_cache(Cache::listening(elsewhere_url.clone()))
    .unwrap();
    other.migrate().await.unwrap();

    let writer = postgres(&schema, &clock).await;
    writer.migrate().await.unwrap();
    let listener = cached(&schema, &clock, Cache::listening(elsewhere_url)).await;
    let mut events = listener.events().await.unwrap();
    let mut want = Vec::new();
    for n in 0..5 {
        let mut there = record(Some(&format!("elsewhere{n}")), clock.now());
        other.create(&mut there).await.unwrap();
        let mut here = record(Some(&format!("here{n}")), clock.now());
        writer.create(&mut here).await.unwrap();
        want.push((format!("here{n}"), writer.session_handle(here.id)));
    }
    let heard = next(&mut events, want.len()).await;
    let want: Vec<_> = want
        .iter()
        .map(|(user, handle)| ("signed_in", user.as_str(), handle))
        .collect();
    assert_eq!(summary(&heard), expect(&want));
    // One more from each: the store's own arrives after everything read before it.
    let mut there = record(Some("elsewhere_last"), clock.now());
    other.create(&mut there).await.unwrap();
    let mut here = record(Some("here_last"), clock.now());
    writer.create(&mut here).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 1).await),
        expect(&[("signed_in", "here_last", &writer.session_handle(here.id))])
    );
    nothing_more(&mut events);
    assert!(
        !listener.is_cache_serving(),
        "a listener on another database proved itself"
    );

    drop((listener, other));
    other_conn.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{elsewhere}\" WITH (FORCE)"))
        .await
        .unwrap();
    drop_schema(admin, &schema).await;
}

/// A subscription after the last one dropped starts a new reader, which the listener carries
/// too (the replica's one pooled connection is held meanwhile); clones share it: each of two
/// subscribers, one on a clone, hears each event once.
#[tokio::test]
async fn a_later_subscription_and_a_clones_are_carried_by_the_listener_too() {
    let (schema, clock) = (unique_name("ts_ev_listen"), ManualClock::new());
    let writer = postgres(&schema, &clock).await;
    let conn = connect_postgres_with(&database_url(), 1).await;
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    let listener = configured(store, &clock)
        .with_login_history(DAY)
        .unwrap()
        .with_cache(Cache::listening(database_url()).max_staleness(HELD_BOUND))
        .unwrap();
    listener.migrate().await.unwrap();
    wait_until_proven(&listener, HELD_BOUND).await;
    let sign_in = |user: &'static str| {
        let (writer, clock) = (writer.clone(), clock.clone());
        async move {
            let mut rec = record(Some(user), clock.now());
            writer.create(&mut rec).await.unwrap();
            writer.session_handle(rec.id)
        }
    };

    let mut first = listener.events().await.unwrap();
    let handle = sign_in("ada").await;
    assert_eq!(
        summary(&next(&mut first, 1).await),
        expect(&[("signed_in", "ada", &handle)])
    );
    drop(first);
    // Real time is the point: the reader ends at its next poll (10 ms) without subscribers.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut second = listener.events().await.unwrap();
    let mut on_a_clone = listener.clone().events().await.unwrap();
    let held = conn.begin().await.unwrap();
    held.execute_unprepared("SELECT 1").await.unwrap();
    let handle = sign_in("bob").await;
    for events in [&mut second, &mut on_a_clone] {
        assert_eq!(
            summary(&next(events, 1).await),
            expect(&[("signed_in", "bob", &handle)])
        );
    }
    drop(held);
    let handle = sign_in("cy").await;
    for events in [&mut second, &mut on_a_clone] {
        assert_eq!(
            summary(&next(events, 1).await),
            expect(&[("signed_in", "cy", &handle)])
        );
        nothing_more(events);
    }
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}
