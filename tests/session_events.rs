//! Live session events (`events()`): each committed change arrives on another replica (another
//! pool, another store type, through PgBouncer), exactly once and with its reason, on
//! PostgreSQL, SQLite and MariaDB (whose entries may commit out of their `seq` order); a stalled subscriber loses the oldest and is told how many; a writer
//! killed mid-way leaves a history, and events, that match the sessions it committed.

mod common;

use std::{collections::HashMap, time::Duration as StdDuration};

use common::{
    connect_postgres, database_url, drop_schema,
    events::{
        configured, every_kind_arrives_once_with_its_reason, expect, next, postgres, record,
        summary, ARRIVAL, DAY, HOSTILE,
    },
    unique_name,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use tower_sessions_seaorm_store::{
    sea_orm::ConnectionTrait, testing::ManualClock, MySqlStore, PostgresStore, SeaOrmStoreError,
    SessionEvent, SessionStore, SqliteStore,
};

/// Two replicas of one migrated store with the history, each on a pool of its own, on one
/// manual clock, in a `place` of their own: a PostgreSQL schema or a MariaDB table.
/// (`MySqlStore` is `PostgresStore`: one store type speaks every backend's SQL.)
struct Replicas {
    place: String,
    clock: ManualClock,
    writer: PostgresStore,
    listener: PostgresStore,
}

impl Replicas {
    /// On PostgreSQL, in a schema of their own.
    async fn postgres() -> Self {
        let (schema, clock) = (unique_name("ts_events"), ManualClock::new());
        let (writer, listener) = (
            postgres(&schema, &clock).await,
            postgres(&schema, &clock).await,
        );
        Self::migrated(schema, clock, writer, listener).await
    }

    /// On MariaDB, on a table of their own; [`drop_mariadb_tables`] drops it.
    async fn mariadb() -> Self {
        let (table, clock) = (unique_name("ts_events"), ManualClock::new());
        let (writer, listener) = (mariadb(&table, &clock).await, mariadb(&table, &clock).await);
        Self::migrated(table, clock, writer, listener).await
    }

    async fn migrated(
        place: String,
        clock: ManualClock,
        writer: PostgresStore,
        listener: PostgresStore,
    ) -> Self {
        writer.migrate().await.unwrap();
        Self {
            place,
            clock,
            writer,
            listener,
        }
    }
}

#[tokio::test]
async fn postgres_every_kind_arrives_on_another_replica_once_with_its_reason() {
    let Replicas {
        place: schema,
        clock,
        writer,
        listener,
    } = Replicas::postgres().await;
    every_kind_arrives_once_with_its_reason(&writer, &listener, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test]
async fn the_lean_store_hears_a_seaorm_store_on_a_hash_partitioned_table() {
    use tower_sessions_seaorm_store::LeanPostgresStore;
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let conn = connect_postgres(&database_url()).await;
    let writer = PostgresStore::new(conn)
        .with_schema_name(&schema)
        .unwrap()
        .with_hash_partitions(4)
        .unwrap();
    let writer = configured(writer, &clock).with_login_history(DAY).unwrap();
    writer.migrate().await.unwrap();
    let lean = LeanPostgresStore::new(common::lean::lean_pool(&database_url()))
        .with_schema_name(&schema)
        .unwrap();
    let lean = configured(lean, &clock).with_login_history(DAY).unwrap();
    every_kind_arrives_once_with_its_reason(&writer, &lean, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[tokio::test]
async fn through_pgbouncer_in_transaction_mode_every_kind_arrives_once() {
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let writer = postgres(&schema, &clock).await;
    writer.migrate().await.unwrap();
    // Both replicas through PgBouncer: each read of the history is a transaction of its own,
    // on whichever server connection PgBouncer gives it.
    let bounced = |clock: &ManualClock| {
        let schema = schema.clone();
        let clock = clock.clone();
        async move {
            let conn = common::pgbouncer::connect_through_pgbouncer().await;
            let store = PostgresStore::new(conn).with_schema_name(&schema).unwrap();
            configured(store, &clock).with_login_history(DAY).unwrap()
        }
    };
    let (writer, listener) = (bounced(&clock).await, bounced(&clock).await);
    every_kind_arrives_once_with_its_reason(&writer, &listener, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[tokio::test]
async fn sqlite_every_kind_arrives_on_another_pool_once_with_its_reason() {
    let path = common::sqlite::temp_db_path();
    let url = common::sqlite::file_url(&path);
    let clock = ManualClock::new();
    let on_pool = |clock: &ManualClock| {
        let (url, clock) = (url.clone(), clock.clone());
        async move {
            let conn = common::sqlite::connect_sqlite(&url, 4).await;
            configured(SqliteStore::new(conn), &clock)
                .with_login_history(DAY)
                .unwrap()
        }
    };
    let writer = on_pool(&clock).await;
    writer.migrate().await.unwrap();
    let listener = on_pool(&clock).await;
    every_kind_arrives_once_with_its_reason(&writer, &listener, &clock).await;
    common::sqlite::remove_db_files(&path);
}

/// Concurrent sign-ins and logouts from several pools: every subscriber on every replica hears
/// each committed change once, whatever order the transactions commit in.
#[tokio::test]
async fn concurrent_writers_on_several_pools_are_each_heard_once_by_every_replica() {
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let first = postgres(&schema, &clock).await;
    first.migrate().await.unwrap();
    let mut replicas = vec![first];
    for _ in 0..3 {
        replicas.push(postgres(&schema, &clock).await);
    }
    each_writer_is_heard_once_by_every_replica(&replicas, &clock).await;
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// 24 clients over `replicas` (each on a pool of its own), each signing a user in and logging
/// out ten times: every replica's subscriber hears each change once.
async fn each_writer_is_heard_once_by_every_replica(
    replicas: &[PostgresStore],
    clock: &ManualClock,
) {
    let mut subscribers = Vec::new();
    for replica in replicas {
        subscribers.push(replica.events().await.unwrap());
    }
    const CLIENTS: usize = 24;
    const LIVES: usize = 10;
    let mut writers = Vec::new();
    for client in 0..CLIENTS {
        let store = replicas[client % replicas.len()].clone();
        let clock = clock.clone();
        writers.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for _ in 0..LIVES {
                let user = format!("user{client}");
                let mut rec = record(Some(&user), clock.now());
                store.create(&mut rec).await.unwrap();
                store.delete(&rec.id).await.unwrap();
                handles.push((user, store.session_handle(rec.id)));
            }
            handles
        }));
    }
    let mut expected = Vec::new();
    for writer in writers {
        for (user, handle) in writer.await.unwrap() {
            expected.push(("signed_in", user.clone(), handle.to_string()));
            expected.push(("deleted", user, handle.to_string()));
        }
    }
    expected.sort();
    for mut events in subscribers {
        let heard = next(&mut events, CLIENTS * LIVES * 2).await;
        assert_eq!(summary(&heard), expected);
        assert!(events.try_recv().is_err(), "nothing more");
    }
}

/// A subscriber that never reads loses the oldest events beyond the buffer (1,024) and is told
/// exactly how many; another subscriber hears everything; every login completed meanwhile
/// (a store operation never waits for a subscriber).
#[tokio::test]
async fn a_stalled_subscriber_loses_the_oldest_and_is_told_how_many() {
    let Replicas {
        place: schema,
        clock,
        writer,
        listener,
    } = Replicas::postgres().await;
    let mut stalled = listener.events().await.unwrap();
    let mut reading = listener.events().await.unwrap();
    const LOGINS: usize = 1024 + 100;
    let reader = tokio::spawn(async move { next(&mut reading, LOGINS).await });
    let mut handles = Vec::new();
    for login in 0..LOGINS {
        let mut rec = record(Some(&format!("user{login}")), clock.now());
        writer.create(&mut rec).await.unwrap();
        handles.push(writer.session_handle(rec.id));
    }
    let heard = reader.await.unwrap();
    assert_eq!(
        heard.iter().map(|e| e.handle.clone()).collect::<Vec<_>>(),
        handles,
        "one writer's logins arrive in commit order"
    );
    assert!(matches!(stalled.recv().await, Err(RecvError::Lagged(100))));
    let rest = next(&mut stalled, 1024).await;
    assert_eq!(rest[0].handle, handles[100]);
    assert_eq!(rest[1023].handle, handles[LOGINS - 1]);
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// Subscribers come and go: a later subscriber hears what commits after it subscribed, and
/// nothing an earlier read delivered.
#[tokio::test]
async fn a_later_subscriber_hears_only_what_commits_after_it_subscribed() {
    let Replicas {
        place: schema,
        clock,
        writer,
        listener,
    } = Replicas::postgres().await;
    let mut first = listener.events().await.unwrap();
    let mut before = record(Some("ada"), clock.now());
    writer.create(&mut before).await.unwrap();
    assert_eq!(
        next(&mut first, 1).await[0].handle,
        writer.session_handle(before.id)
    );
    drop(first);
    let mut unheard = record(Some("bob"), clock.now());
    writer.create(&mut unheard).await.unwrap();
    let mut second = listener.clone().events().await.unwrap();
    let mut after = record(Some("cy"), clock.now());
    writer.create(&mut after).await.unwrap();
    // What committed after `events()` returned arrives; what committed within a poll before it
    // may too (the reader, still running for `first`, had not read it yet); what an earlier
    // read delivered never comes again.
    let (unheard, after) = (
        writer.session_handle(unheard.id),
        writer.session_handle(after.id),
    );
    loop {
        let heard = next(&mut second, 1).await.remove(0);
        if heard.handle == after {
            break;
        }
        assert_eq!(
            heard.handle, unheard,
            "only a change from within a poll before"
        );
    }
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

#[tokio::test]
async fn events_need_the_login_history() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn).with_user_key("user_id").unwrap();
    let refused = store.events().await.unwrap_err();
    assert!(
        matches!(refused, SeaOrmStoreError::InvalidConfiguration(_)),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("with_login_history"),
        "{refused}"
    );
}

/// The environment variables that make [`killed_writer_child`] a writer.
const CHILD_URL: &str = "SESSION_EVENTS_CHILD_URL";
const CHILD_SCHEMA: &str = "SESSION_EVENTS_CHILD_SCHEMA";

/// The store the crash test's writer and reader share: on PostgreSQL in the schema `name`, on
/// MySQL/MariaDB (a `mysql://` URL) on the table `name`.
async fn crash_store(url: &str, name: &str) -> PostgresStore {
    let store = if url.starts_with("mysql:") {
        let conn = common::mysql::connect_mysql_with(url, 8).await;
        MySqlStore::new(conn).with_table_name(name).unwrap()
    } else {
        PostgresStore::new(connect_postgres(url).await)
            .with_schema_name(name)
            .unwrap()
    };
    store
        .with_user_key("user_id")
        .unwrap()
        .with_login_history(DAY)
        .unwrap()
}

/// Not a test on its own: the writer process [`a_writer_killed_mid_way_leaves_history_and_events_matching_its_sessions`]
/// starts and kills. It signs users in, out and logs them out on 8 connections until killed.
#[tokio::test]
#[ignore = "the crash test's writer process: run by that test, which kills it"]
async fn killed_writer_child() {
    let (Ok(url), Ok(schema)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SCHEMA)) else {
        panic!("run by the crash test only, with {CHILD_URL} and {CHILD_SCHEMA} set");
    };
    let store = crash_store(&url, &schema).await;
    let mut tasks = Vec::new();
    for client in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for life in 0u64.. {
                let user = format!("user{}", client % 4);
                let mut rec = record(Some(&user), OffsetDateTime::now_utc());
                store.create(&mut rec).await.unwrap();
                if life % 3 != 0 {
                    rec.data.remove("user_id");
                    store.save(&rec).await.unwrap();
                    rec.data.insert("user_id".into(), json!(user));
                    store.save(&rec).await.unwrap();
                }
                if life % 2 == 0 {
                    store.delete(&rec.id).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Starts the crash test's writer process on `url` and `name`, lets it write until `events`
/// has heard 400 entries, and kills it (SIGKILL) wherever it is; returns what was heard.
async fn kill_a_writer_mid_way(
    url: &str,
    name: &str,
    events: &mut Receiver<SessionEvent>,
) -> Vec<SessionEvent> {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_writer_child", "--ignored", "--nocapture"])
        .env(CHILD_URL, url)
        .env(CHILD_SCHEMA, name)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut heard = Vec::new();
    while heard.len() < 400 {
        match tokio::time::timeout(ARRIVAL, events.recv()).await {
            Ok(Ok(event)) => heard.push(event),
            other => {
                let _ = child.kill();
                panic!("the writer process wrote nothing more: {other:?}");
            }
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "it was killed: {status}");
    heard
}

/// Once the killed writer can commit nothing more: every session it left signed in has
/// "signed in" as its handle's last entry, every other handle's last entry ends it, and the
/// events heard (`heard`, then the rest) are exactly the `committed` entries.
async fn the_history_matches_the_sessions(
    store: &PostgresStore,
    mut heard: Vec<SessionEvent>,
    events: &mut Receiver<SessionEvent>,
    committed: usize,
) {
    for user in (0..4).map(|n| format!("user{n}")) {
        let history = store.user_history(&user, u64::MAX).await.unwrap();
        let mut last: HashMap<String, &'static str> = HashMap::new();
        for event in history.iter().rev() {
            last.insert(event.handle.to_string(), event.kind);
        }
        let mut signed_in: Vec<_> = last
            .iter()
            .filter(|(_, kind)| **kind == "signed_in")
            .map(|(handle, _)| handle.clone())
            .collect();
        signed_in.sort();
        let mut live: Vec<_> = store
            .user_sessions(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|session| session.handle.to_string())
            .collect();
        live.sort();
        assert_eq!(signed_in, live, "{user}: history against sessions");
    }
    let rest = next(events, committed - heard.len()).await;
    heard.extend(rest);
    let mut from_history = Vec::new();
    for user in (0..4).map(|n| format!("user{n}")) {
        from_history.extend(store.user_history(&user, u64::MAX).await.unwrap());
    }
    assert_eq!(summary(&heard), summary(&from_history));
    assert!(events.try_recv().is_err(), "nothing more");
}

/// A writer process killed (SIGKILL) while its statements are in flight: every session it
/// left signed in has "signed in" as its handle's last entry, every other handle's last entry
/// ends it, and a subscriber heard exactly the entries that committed.
#[tokio::test]
async fn a_writer_killed_mid_way_leaves_history_and_events_matching_its_sessions() {
    let schema = unique_name("ts_events");
    let conn = connect_postgres(&database_url()).await;
    let store = crash_store(&database_url(), &schema).await;
    store.migrate().await.unwrap();
    let mut events = store.events().await.unwrap();
    let heard = kill_a_writer_mid_way(&database_url(), &schema, &mut events).await;

    // Its connections are gone once the server has noticed: then nothing more can commit.
    let quiet = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND query LIKE '%{schema}%' AND state <> 'idle'"
    );
    for waited in 0.. {
        if common::scalar_strings(&conn, &quiet, vec![]).await == ["0"] {
            break;
        }
        assert!(
            waited < 500,
            "the killed writer's statements still run after 10 s"
        );
        // Real time: the server's noticing the killed process's sockets.
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let committed: usize = common::scalar_strings(
        &conn,
        &format!("SELECT count(*)::text FROM \"{schema}\".\"session_history\""),
        vec![],
    )
    .await[0]
        .parse()
        .unwrap();
    the_history_matches_the_sessions(&store, heard, &mut events, committed).await;
    drop_schema(conn, &schema).await;
}

/// The same on MariaDB, where each write and its entries are several statements in one
/// transaction: a writer killed between them leaves neither.
#[tokio::test]
async fn mariadb_a_writer_killed_mid_way_leaves_history_and_events_matching_its_sessions() {
    let table = unique_name("ts_events");
    let url = common::mysql::mysql_url();
    let store = crash_store(&url, &table).await;
    store.migrate().await.unwrap();
    let mut events = store.events().await.unwrap();
    let heard = kill_a_writer_mid_way(&url, &table, &mut events).await;

    // The killed writer's transactions hold the tables' metadata locks until the server has
    // noticed its sockets and rolled them back: once this lock is granted, nothing more of
    // its can commit.
    let conn = common::mysql::connect_mysql_with(&url, 1).await;
    conn.execute_unprepared(&format!(
        "LOCK TABLES `{table}` WRITE, `{table}_history` WRITE"
    ))
    .await
    .unwrap();
    conn.execute_unprepared("UNLOCK TABLES").await.unwrap();
    let committed: usize = common::scalar_strings(
        &conn,
        &format!("SELECT CAST(count(*) AS CHAR) FROM `{table}_history`"),
        vec![],
    )
    .await[0]
        .parse()
        .unwrap();
    the_history_matches_the_sessions(&store, heard, &mut events, committed).await;
    drop_mariadb_tables(&table).await;
}

/// A history table made before the events (no `xid` column) gets one from `migrate()`, and
/// its entries from then on are heard; replicas migrating at once all succeed.
#[tokio::test]
async fn migrate_gives_an_older_history_table_what_the_events_read() {
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let writer = postgres(&schema, &clock).await;
    writer.migrate().await.unwrap();
    let conn = connect_postgres(&database_url()).await;
    conn.execute_unprepared(&format!(
        "ALTER TABLE \"{schema}\".\"session_history\" DROP COLUMN \"xid\""
    ))
    .await
    .unwrap();
    let mut migrations = Vec::new();
    for _ in 0..4 {
        let store = postgres(&schema, &clock).await;
        migrations.push(tokio::spawn(async move { store.migrate().await }));
    }
    for migration in migrations {
        migration.await.unwrap().unwrap();
    }
    let mut events = writer.events().await.unwrap();
    let mut rec = record(Some("ada"), clock.now());
    writer.create(&mut rec).await.unwrap();
    assert_eq!(
        next(&mut events, 1).await[0].handle,
        writer.session_handle(rec.id)
    );
    drop_schema(conn, &schema).await;
}

/// Two requests on one session, on two replicas: a save that keeps the user logs nothing even
/// when another request signed the session out meanwhile (its save merges; the sign-out is
/// logged once, by the request that made it); a save that signs in after being overtaken
/// logs its sign-in.
#[tokio::test]
async fn overtaken_saves_log_exactly_the_sign_ins_and_outs_they_make() {
    let Replicas {
        place: schema,
        clock,
        writer: a,
        listener: b,
    } = Replicas::postgres().await;
    let mut events = a.events().await.unwrap();

    let mut rec = record(Some("ada"), clock.now());
    a.create(&mut rec).await.unwrap();
    let handle = a.session_handle(rec.id);
    assert_eq!(next(&mut events, 1).await[0].kind, "signed_in");
    let mut on_a = a.load(&rec.id).await.unwrap().unwrap();
    let mut on_b = b.load(&rec.id).await.unwrap().unwrap();
    on_b.data.remove("user_id");
    b.save(&on_b).await.unwrap();
    on_a.data.insert("cart".into(), json!(["book"]));
    a.save(&on_a).await.unwrap(); // overtaken: merged, keeps no user, logs nothing
    let stored = a.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(stored.data.get("user_id"), None);
    assert_eq!(stored.data["cart"], json!(["book"]));

    // Overtaken again, this time signing in.
    let mut on_a = a.load(&rec.id).await.unwrap().unwrap();
    let mut on_b = b.load(&rec.id).await.unwrap().unwrap();
    on_b.data.insert("theme".into(), json!("dark"));
    b.save(&on_b).await.unwrap();
    on_a.data.insert("user_id".into(), json!("bob"));
    a.save(&on_a).await.unwrap();
    let mut last = record(Some("eve"), clock.now());
    a.create(&mut last).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 3).await),
        expect(&[
            ("signed_out", "ada", &handle),
            ("signed_in", "bob", &handle),
            ("signed_in", "eve", &a.session_handle(last.id)),
        ])
    );
    assert!(events.try_recv().is_err(), "nothing more");
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// The history and a listening read cache together: the cache's quiet saves log what they
/// should (a sign-out) and nothing else, events arrive once, and the other replica's cache is
/// evicted by every save, logged or not.
#[cfg(feature = "cache")]
#[tokio::test]
async fn with_a_listening_cache_saves_log_once_and_evict_every_replica() {
    use common::wait_until_serving;
    use tower_sessions_seaorm_store::Cache;
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let cached = |clock: &ManualClock| {
        let (schema, clock) = (schema.clone(), clock.clone());
        async move {
            postgres(&schema, &clock)
                .await
                .with_cache(Cache::listening(database_url()))
                .unwrap()
        }
    };
    let a = cached(&clock).await;
    a.migrate().await.unwrap();
    let b = cached(&clock).await;
    for (store, name) in [(&a, "a"), (&b, "b")] {
        wait_until_serving(store, name).await;
    }
    let mut events = b.events().await.unwrap();
    let mut rec = record(Some("ada"), clock.now());
    a.create(&mut rec).await.unwrap();
    let handle = a.session_handle(rec.id);

    // B caches the session; A changes a value (a quiet save that logs nothing), then signs out.
    let seen_by_b = |want: serde_json::Value| {
        let (b, id) = (b.clone(), rec.id);
        async move {
            let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
            loop {
                let loaded = b.load(&id).await.unwrap().unwrap();
                if loaded.data.get("cart") == Some(&want) {
                    return loaded;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "B still serves the old value"
                );
                // Real time: the eviction reaches B within the cache's staleness bound.
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        }
    };
    assert!(b.load(&rec.id).await.unwrap().is_some());
    let mut on_a = a.load(&rec.id).await.unwrap().unwrap();
    on_a.data.insert("cart".into(), json!(["book"]));
    a.save(&on_a).await.unwrap();
    seen_by_b(json!(["book"])).await;
    let mut on_a = a.load(&rec.id).await.unwrap().unwrap();
    on_a.data.remove("user_id");
    on_a.data.insert("cart".into(), json!([]));
    a.save(&on_a).await.unwrap();
    assert_eq!(seen_by_b(json!([])).await.data.get("user_id"), None);

    let mut last = record(Some("eve"), clock.now());
    a.create(&mut last).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 3).await),
        expect(&[
            ("signed_in", "ada", &handle),
            ("signed_out", "ada", &handle),
            ("signed_in", "eve", &a.session_handle(last.id)),
        ])
    );
    assert!(events.try_recv().is_err(), "nothing more");
    drop_schema(connect_postgres(&database_url()).await, &schema).await;
}

/// What an operator's `DELETE` (not the store's) ends is heard as `removed`, once per session
/// with a user, with its handle and listed values; the store's own deletes are heard with
/// their own reason only (`every_kind_arrives_once_with_its_reason` runs beside the trigger
/// too). On a hash-partitioned table, a `DELETE` aimed at one partition is heard as well.
async fn deletes_outside_the_store_are_heard_as_removed(partitions: Option<u16>) {
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let store = |clock: &ManualClock| {
        let (schema, clock) = (schema.clone(), clock.clone());
        async move {
            let conn = connect_postgres(&database_url()).await;
            let store = PostgresStore::new(conn).with_schema_name(&schema).unwrap();
            let store = match partitions {
                Some(n) => store.with_hash_partitions(n).unwrap(),
                None => store,
            };
            configured(store, &clock).with_login_history(DAY).unwrap()
        }
    };
    let writer = store(&clock).await;
    writer.migrate().await.unwrap();
    let listener = store(&clock).await;
    let mut events = listener.events().await.unwrap();
    let mut handles = HashMap::new();
    for user in [Some("ada"), Some("ada"), Some(HOSTILE), None] {
        let mut rec = record(user, clock.now());
        writer.create(&mut rec).await.unwrap();
        handles
            .entry(user)
            .or_insert_with(Vec::new)
            .push(writer.session_handle(rec.id));
    }
    assert_eq!(next(&mut events, 3).await.len(), 3, "the sign-ins");

    let operator = connect_postgres(&database_url()).await;
    let removed = operator
        .execute_unprepared(&format!(
            "DELETE FROM \"{schema}\".\"session\" WHERE \"user_key\" = 'ada'"
        ))
        .await
        .unwrap();
    assert_eq!(removed.rows_affected(), 2);
    let ada = &handles[&Some("ada")];
    let heard = next(&mut events, 2).await;
    assert_eq!(
        summary(&heard),
        expect(&[("removed", "ada", &ada[0]), ("removed", "ada", &ada[1])])
    );
    assert_eq!(
        heard[0].listed["agent"],
        json!(format!("Firefox {HOSTILE}"))
    );

    // Every partition (or the table), deleted from directly: the hostile user's session once;
    // the anonymous session, no one's, is not logged.
    // (A plain table has no partition tree: it is its own one leaf.)
    let leaves = common::scalar_strings(
        &operator,
        &format!(
            "SELECT '\"{schema}\".\"session\"' WHERE NOT EXISTS (SELECT 1 FROM \
             pg_catalog.pg_partition_tree('\"{schema}\".\"session\"')) UNION ALL \
             SELECT relid::regclass::text FROM pg_catalog.pg_partition_tree('\"{schema}\".\"session\"') \
             WHERE isleaf"
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(leaves.len(), partitions.map_or(1, usize::from));
    for leaf in &leaves {
        operator
            .execute_unprepared(&format!("DELETE FROM {leaf}"))
            .await
            .unwrap();
    }
    assert_eq!(
        summary(&next(&mut events, 1).await),
        expect(&[("removed", HOSTILE, &handles[&Some(HOSTILE)][0])])
    );
    assert_eq!(
        writer.user_history(HOSTILE, 10).await.unwrap()[0].kind,
        "removed"
    );

    // The store's own delete right after: heard as `deleted`, and nothing else came.
    let mut last = record(Some("bob"), clock.now());
    writer.create(&mut last).await.unwrap();
    writer.delete(&last.id).await.unwrap();
    let bob = writer.session_handle(last.id);
    assert_eq!(
        summary(&next(&mut events, 2).await),
        expect(&[("signed_in", "bob", &bob), ("deleted", "bob", &bob)])
    );
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
    drop(events);
    drop_schema(operator, &schema).await;
}

#[tokio::test]
async fn an_operators_delete_is_heard_as_removed() {
    deletes_outside_the_store_are_heard_as_removed(None).await;
}

#[tokio::test]
async fn an_operators_delete_of_a_partition_is_heard_as_removed() {
    deletes_outside_the_store_are_heard_as_removed(Some(4)).await;
}

/// An operator deletes a user's sessions while the store deletes, revokes and trims them on
/// several pools: each session ends exactly once in the history, with the reason of
/// whichever delete took it, never twice, never with none.
#[tokio::test]
async fn an_operators_delete_racing_the_stores_ends_each_session_once() {
    const SESSIONS: usize = 120;
    const POOLS: usize = 4;
    let schema = unique_name("ts_events");
    let clock = ManualClock::new();
    let writer = postgres(&schema, &clock).await;
    writer.migrate().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..SESSIONS {
        // Many users, so the per-user limit of two trims nothing.
        let mut rec = record(Some(&format!("u{}", n % 60)), clock.now());
        writer.create(&mut rec).await.unwrap();
        ids.push(rec.id);
    }
    let mut tasks = Vec::new();
    for pool in 0..POOLS {
        let store = postgres(&schema, &clock).await;
        let mine: Vec<_> = ids.iter().copied().skip(pool).step_by(POOLS).collect();
        tasks.push(tokio::spawn(async move {
            for id in mine {
                store.delete(&id).await.unwrap();
            }
        }));
    }
    let operator = connect_postgres(&database_url()).await;
    for n in 0..60 {
        operator
            .execute_unprepared(&format!(
                "DELETE FROM \"{schema}\".\"session\" WHERE \"user_key\" = 'u{n}'"
            ))
            .await
            .unwrap();
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut ended = HashMap::new();
    for n in 0..60 {
        for entry in writer.user_history(&format!("u{n}"), 100).await.unwrap() {
            if entry.kind != "signed_in" {
                assert!(matches!(entry.kind, "deleted" | "removed"), "{entry:?}");
                *ended.entry(entry.handle.to_string()).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(ended.len(), SESSIONS, "every session ended in the history");
    assert!(
        ended.values().all(|&n| n == 1),
        "none ended twice: {ended:?}"
    );
    drop_schema(operator, &schema).await;
}

/// A MySQL/MariaDB store with the history on `table`, on a pool of its own.
async fn mariadb(table: &str, clock: &ManualClock) -> MySqlStore {
    let conn = common::mysql::connect_mysql_with(&common::mysql::mysql_url(), 4).await;
    let store = MySqlStore::new(conn).with_table_name(table).unwrap();
    configured(store, clock).with_login_history(DAY).unwrap()
}

/// Drops the MariaDB session table `table` and its history.
async fn drop_mariadb_tables(table: &str) {
    let conn = common::mysql::connect_mysql_with(&common::mysql::mysql_url(), 1).await;
    conn.execute_unprepared(&format!("DROP TABLE IF EXISTS `{table}_history`"))
        .await
        .unwrap();
    common::mysql::drop_table(&conn, table).await;
}

#[tokio::test]
async fn mariadb_every_kind_arrives_on_another_pool_once_with_its_reason() {
    let Replicas {
        place: table,
        clock,
        writer,
        listener,
    } = Replicas::mariadb().await;
    every_kind_arrives_once_with_its_reason(&writer, &listener, &clock).await;
    drop_mariadb_tables(&table).await;
}

/// MySQL's `AUTO_INCREMENT` hands out `seq` at the insert, not the commit: writers on four
/// pools commit out of order, and every replica still hears each change once.
#[tokio::test]
async fn mariadb_concurrent_writers_on_several_pools_are_each_heard_once_by_every_replica() {
    let Replicas {
        place: table,
        clock,
        writer,
        listener,
    } = Replicas::mariadb().await;
    let mut replicas = vec![writer, listener];
    for _ in 0..2 {
        replicas.push(mariadb(&table, &clock).await);
    }
    each_writer_is_heard_once_by_every_replica(&replicas, &clock).await;
    drop_mariadb_tables(&table).await;
}

/// The insert of a history entry on a connection of its own, in a transaction left open.
async fn open_entry(
    table: &str,
    user: &str,
) -> tower_sessions_seaorm_store::sea_orm::DatabaseTransaction {
    use tower_sessions_seaorm_store::sea_orm::TransactionTrait;
    let conn = common::mysql::connect_mysql_with(&common::mysql::mysql_url(), 1).await;
    let open = conn.begin().await.unwrap();
    open.execute_unprepared(&format!(
        "INSERT INTO `{table}_history` (`user_key`, `kind`, `at`, `handle`, `listed_values`) \
         VALUES ('{user}', 'signed_in', UTC_TIMESTAMP(6), 'ffffffffffffffffffffffffffffffff', \
         NULL)"
    ))
    .await
    .unwrap();
    open
}

/// An entry whose transaction commits after later entries were read arrives once, when it
/// commits; one rolled back never arrives and holds nothing up; one that commits after the
/// horizon (twice the operation timeout, on the store's clock) is given up: at most once.
#[tokio::test]
async fn mariadb_an_entry_committed_after_later_ones_arrives_once() {
    let Replicas {
        place: table,
        clock,
        writer,
        listener,
    } = Replicas::mariadb().await;
    let mut events = listener.events().await.unwrap();
    let login = |user: &'static str| {
        let (writer, clock) = (writer.clone(), clock.clone());
        async move {
            let mut rec = record(Some(user), clock.now());
            writer.create(&mut rec).await.unwrap();
            writer.session_handle(rec.id)
        }
    };

    let late = open_entry(&table, "late").await;
    let rolled_back = open_entry(&table, "rolled_back").await;
    let ada = login("ada").await;
    assert_eq!(next(&mut events, 1).await[0].handle, ada);
    rolled_back.rollback().await.unwrap();
    let bob = login("bob").await;
    assert_eq!(next(&mut events, 1).await[0].handle, bob);
    late.commit().await.unwrap();
    let cy = login("cy").await;
    // In either order: a read may look for the missing entry just before it commits, and
    // find the later one after.
    let mut heard = next(&mut events, 2).await;
    heard.sort_by(|a, b| a.user.cmp(&b.user));
    assert_eq!(
        heard.iter().map(|e| e.user.as_str()).collect::<Vec<_>>(),
        ["cy", "late"]
    );
    assert_eq!(heard[0].handle, cy);

    // Past the horizon, a missing entry is given up: the operation timeout is 5 s, the
    // horizon 10 s of the store's clock.
    let given_up = open_entry(&table, "given_up").await;
    let dee = login("dee").await;
    assert_eq!(next(&mut events, 1).await[0].handle, dee);
    clock.advance(StdDuration::from_secs(11));
    // The read that hears eve may have read the clock before it moved; the one that hears
    // gus began after that one ended, so after the move: it gave the missing entry up.
    let eve = login("eve").await;
    assert_eq!(next(&mut events, 1).await[0].handle, eve);
    let gus = login("gus").await;
    assert_eq!(next(&mut events, 1).await[0].handle, gus);
    given_up.commit().await.unwrap();
    let fay = login("fay").await;
    assert_eq!(next(&mut events, 1).await[0].handle, fay);
    assert!(events.try_recv().is_err(), "nothing more");
    drop_mariadb_tables(&table).await;
}

/// A save of a session revoked since its load writes nothing and logs nothing; neither does a
/// delete of a session already gone.
#[tokio::test]
async fn mariadb_a_change_that_did_not_commit_is_not_heard() {
    let Replicas {
        place: table,
        clock,
        writer,
        listener,
    } = Replicas::mariadb().await;
    let mut events = listener.events().await.unwrap();
    let mut rec = record(Some("ada"), clock.now());
    writer.create(&mut rec).await.unwrap();
    let handle = writer.session_handle(rec.id);
    let loaded = writer.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(listener.delete_user_sessions("ada").await.unwrap(), 1);
    let mut signed_out = loaded.clone();
    signed_out.data.remove("user_id");
    writer.save(&signed_out).await.unwrap();
    writer.delete(&rec.id).await.unwrap();
    assert!(writer.load(&rec.id).await.unwrap().is_none());
    let mut last = record(Some("eve"), clock.now());
    writer.create(&mut last).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 3).await),
        expect(&[
            ("signed_in", "ada", &handle),
            ("revoked", "ada", &handle),
            ("signed_in", "eve", &writer.session_handle(last.id)),
        ])
    );
    assert!(events.try_recv().is_err(), "nothing more");
    drop_mariadb_tables(&table).await;
}
