//! The read cache (`Cache`, feature `cache`) on real databases.
//!
//! PostgreSQL: two stores on two pools are two replicas, each with its own listening cache on
//! the same table. What one writes (or a manual SQL statement writes) must stop the other from
//! serving its cached copy within the staleness bound, also across a lost listening
//! connection. That a load came from the cache is shown by loading while another connection
//! holds the table's `ACCESS EXCLUSIVE` lock: a cached load returns at once, a database load
//! waits for the lock and fails after the replicas' `lock_timeout`. (No write can change the
//! row unannounced any more: disabling a trigger, even for one transaction, clears the caches.)
//!
//! SQLite and MariaDB: the single-replica cache evicts on the store's own writes, and a
//! listening cache is refused.
#![cfg(feature = "cache")]

mod common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use common::{
    connect_postgres, database_url, mysql::MySqlFixture, sqlite::SqliteFixture, unique_name,
    wait_until_serving,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::SessionRepository,
    sea_orm::{
        sqlx::{self, postgres::PgListener, AssertSqlSafe, Connection},
        ConnectionTrait, DatabaseConnection,
    },
    testing::ManualClock,
    Cache, ExpiredDeletion, Id, PostgresStore, Record, RepositoryStore, SeaOrmStoreError,
    SessionStore,
};

/// The staleness bound the replicas run with: short, so that the tests are quick.
const BOUND: StdDuration = StdDuration::from_millis(400);

fn record(values: serde_json::Value) -> Record {
    let data: HashMap<String, serde_json::Value> = serde_json::from_value(values).unwrap();
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    }
}

/// `DATABASE_URL` with one more connection parameter.
fn database_url_with(parameter: &str) -> String {
    let url = database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// How long a replica's statement waits for a lock before it fails: long beside any lock the
/// tests' own operations wait for, short enough that [`Replicas::serves_from_memory`] tells a database
/// load quickly.
const LOCK_TIMEOUT_MS: u32 = 500;

/// `DATABASE_URL` with a `lock_timeout` of [`LOCK_TIMEOUT_MS`]: the replicas' pools.
fn locking_url() -> String {
    database_url_with(&format!("options=-clock_timeout%3D{LOCK_TIMEOUT_MS}"))
}

/// `DATABASE_URL` with an `application_name`, so a test can find (and end) a replica's
/// listener connections.
fn listening_url(application: &str) -> String {
    database_url_with(&format!("application_name={application}"))
}

/// A schema of the test's own, migrated by a store with a listening cache (which installs the
/// eviction triggers).
struct Replicas {
    schema: String,
    admin: DatabaseConnection,
}

impl Replicas {
    async fn new() -> Self {
        Self::with_table(|store| store).await
    }

    /// Replicas of a table that `options` shapes (partitions).
    async fn with_table(options: impl FnOnce(PostgresStore) -> PostgresStore) -> Self {
        let admin = connect_postgres(&database_url()).await;
        let schema = unique_name("ts_cache");
        let replicas = Self { schema, admin };
        replicas.migrate(options).await;
        replicas
    }

    /// `migrate()` by a store with a listening cache, which installs the eviction triggers.
    async fn migrate(&self, options: impl FnOnce(PostgresStore) -> PostgresStore) {
        options(Self::plain_store(&self.admin, &self.schema))
            .with_cache(Cache::listening(database_url()))
            .unwrap()
            .migrate()
            .await
            .expect("migrate with the eviction triggers");
    }

    fn plain_store(conn: &DatabaseConnection, schema: &str) -> PostgresStore {
        PostgresStore::new(conn.clone())
            .with_schema_name(schema)
            .unwrap()
            .with_user_key("user_id")
            .unwrap()
    }

    /// A replica: a store on a pool of its own, with a listening cache named `name`, once it
    /// serves.
    async fn replica(&self, name: &str) -> PostgresStore {
        self.replica_with(name, |store| store).await
    }

    async fn replica_with(
        &self,
        name: &str,
        configure: impl FnOnce(PostgresStore) -> PostgresStore,
    ) -> PostgresStore {
        let conn = connect_postgres(&locking_url()).await;
        let store = configure(Self::plain_store(&conn, &self.schema))
            .with_cache(
                Cache::listening(listening_url(&self.application(name))).max_staleness(BOUND),
            )
            .unwrap();
        wait_until_serving(&store, name).await;
        store
    }

    fn application(&self, name: &str) -> String {
        format!("{}_{name}", self.schema)
    }

    fn table(&self) -> String {
        format!("\"{}\".\"session\"", self.schema)
    }

    /// Whether `store` serves session `id` from memory: it loads it while another connection
    /// holds the table's `ACCESS EXCLUSIVE` lock, which any read of the table waits for (and the
    /// replicas' `lock_timeout` then fails). A cached load leaves the session cached; a load
    /// that went to the database caches nothing.
    async fn serves_from_memory(&self, store: &impl SessionStore, id: Id) -> bool {
        let mut locker = sqlx::PgConnection::connect(&database_url()).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            self.table()
        )))
        .execute(&mut locker)
        .await
        .unwrap();
        let loaded = store.load(&id).await;
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut locker)
            .await
            .unwrap();
        match loaded {
            Ok(Some(_)) => true,
            Ok(None) => panic!("the session is not in the table: nothing to tell apart"),
            Err(err) => {
                assert!(
                    err.to_string().contains("lock timeout"),
                    "a load under the lock failed otherwise: {err}"
                );
                false
            }
        }
    }

    /// A listener of our own on the channel the table's triggers announce on.
    async fn listen(&self) -> PgListener {
        let mut raw = sqlx::PgConnection::connect(&database_url()).await.unwrap();
        let sql = "SELECT tgargs FROM pg_trigger WHERE tgrelid = to_regclass($1) LIMIT 1";
        let args: Vec<u8> = sqlx::query_scalar(sql)
            .bind(self.table())
            .fetch_one(&mut raw)
            .await
            .unwrap();
        let channel = String::from_utf8(args).unwrap();
        let mut listener = PgListener::connect(&database_url()).await.unwrap();
        listener
            .listen(channel.trim_end_matches('\0'))
            .await
            .unwrap();
        listener
    }

    /// The partition that holds session `id`, qualified and quoted as needed.
    async fn partition_of(&self, id: Id) -> String {
        let rows = self
            .admin
            .query_all_raw(
                tower_sessions_seaorm_store::sea_orm::Statement::from_string(
                    self.admin.get_database_backend(),
                    format!(
                        "SELECT tableoid::regclass::text FROM {} WHERE id = '{id}'",
                        self.table()
                    ),
                ),
            )
            .await
            .unwrap();
        rows[0].try_get_by_index::<String>(0).unwrap()
    }

    async fn execute(&self, sql: &str) {
        self.admin.execute_unprepared(sql).await.unwrap();
    }

    /// How many connections replica `name`'s listener has on the server.
    async fn listener_connections(&self, name: &str) -> i64 {
        self.count_of_listener(name, "count(*)").await
    }

    /// Ends the listener connection of replica `name`.
    async fn cut_listener(&self, name: &str) -> u64 {
        self.count_of_listener(name, "count(pg_terminate_backend(pid))")
            .await as u64
    }

    /// `count`, an aggregate over replica `name`'s listener connections.
    async fn count_of_listener(&self, name: &str, count: &str) -> i64 {
        let sql = format!(
            "SELECT {count} FROM pg_stat_activity WHERE application_name = '{}'",
            self.application(name)
        );
        let rows = self
            .admin
            .query_all_raw(
                tower_sessions_seaorm_store::sea_orm::Statement::from_string(
                    self.admin.get_database_backend(),
                    sql,
                ),
            )
            .await
            .unwrap();
        rows[0].try_get_by_index::<i64>(0).unwrap()
    }

    async fn finish(self) {
        self.execute(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ))
        .await;
    }
}

/// Waits until `store` serves session `id` from memory: loads it (which caches it) while the
/// cache serves, then checks under the lock ([`Replicas::serves_from_memory`]), again until that holds
/// (a heartbeat late on a loaded machine pauses the serving for a moment).
async fn served_from_memory<R, C>(
    replicas: &Replicas,
    store: &RepositoryStore<R, C>,
    id: Id,
    what: &str,
) where
    R: SessionRepository,
    C: Codec,
    RepositoryStore<R, C>: SessionStore,
{
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        wait_until_serving(store, what).await;
        assert!(store.load(&id).await.unwrap().is_some(), "{what}: gone");
        if replicas.serves_from_memory(store, id).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not served from memory after 10 s"
        );
    }
}

/// Polls `check` until it holds, and returns how long that took; panics past `within`.
async fn within<F, Fut>(within: StdDuration, what: &str, mut check: F) -> StdDuration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        // A check that began within the bound may end past it having been rightly served
        // the old value: only one asked past the bound must see the new.
        let asked = started.elapsed();
        if check().await {
            return started.elapsed();
        }
        assert!(asked <= within, "{what}: still not after {within:?}");
        // Real time: evictions and heartbeats travel through PostgreSQL; poll until the deadline.
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_cached_load_asks_nothing_of_the_database() {
    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert_eq!(a.load(&session.id).await.unwrap().unwrap().data["n"], 1);
    served_from_memory(&replicas, &a, session.id, "the second load").await;

    // A store without a cache reads the database: under the lock, its load waits and fails.
    let conn = connect_postgres(&locking_url()).await;
    let uncached = Replicas::plain_store(&conn, &replicas.schema);
    assert!(!replicas.serves_from_memory(&uncached, session.id).await);
    replicas.finish().await;
}

#[tokio::test]
async fn a_delete_on_one_replica_is_honoured_by_the_other_within_the_bound() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let mut session = record(json!({"user_id": "u1"}));
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some(), "b caches it");

    a.delete(&session.id).await.unwrap();
    let took = within(BOUND, "b still loads the deleted session", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    eprintln!("b stopped serving the deleted session after {took:?}");
    // And it stays gone: nothing re-inserts it.
    for _ in 0..50 {
        assert!(b.load(&session.id).await.unwrap().is_none());
    }
    replicas.finish().await;
}

#[tokio::test]
async fn ending_sessions_created_before_on_one_replica_is_honoured_by_the_other_within_the_bound() {
    let replicas = Replicas::new().await;
    let indexed = |store: PostgresStore| store.with_user_key("user_id").unwrap();
    let a = replicas.replica_with("a", indexed).await;
    let b = replicas.replica_with("b", indexed).await;
    let mut adas = record(json!({"user_id": "u1"}));
    let mut anonymous = record(json!({"n": 1}));
    a.create(&mut adas).await.unwrap();
    a.create(&mut anonymous).await.unwrap();
    for id in [adas.id, anonymous.id] {
        assert!(a.load(&id).await.unwrap().is_some(), "a caches it");
        assert!(b.load(&id).await.unwrap().is_some(), "b caches it");
    }
    // An instant after both sessions' creation (none is created after it here).
    let now = OffsetDateTime::now_utc() + Duration::minutes(1);

    let ended = a.delete_user_sessions_created_before("u1", now);
    assert_eq!(ended.await.unwrap(), 1);
    assert!(
        a.load(&adas.id).await.unwrap().is_none(),
        "a evicted its own"
    );
    within(BOUND, "b still serves a revoked session", || async {
        b.load(&adas.id).await.unwrap().is_none()
    })
    .await;
    assert!(b.load(&anonymous.id).await.unwrap().is_some());

    assert_eq!(a.delete_sessions_created_before(now).await.unwrap(), 1);
    assert!(a.load(&anonymous.id).await.unwrap().is_none());
    within(BOUND, "b still serves a revoked session", || async {
        b.load(&anonymous.id).await.unwrap().is_none()
    })
    .await;
    // And they stay gone: nothing re-inserts them.
    for _ in 0..20 {
        assert!(b.load(&adas.id).await.unwrap().is_none());
        assert!(b.load(&anonymous.id).await.unwrap().is_none());
    }
    replicas.finish().await;
}

#[tokio::test]
async fn a_save_on_one_replica_replaces_the_others_cached_copy() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert_eq!(b.load(&session.id).await.unwrap().unwrap().data["n"], 1);

    session.data.insert("n".into(), json!(2));
    a.save(&session).await.unwrap();
    within(BOUND, "b still serves the old value", || async {
        b.load(&session.id).await.unwrap().unwrap().data["n"] == 2
    })
    .await;
    replicas.finish().await;
}

#[tokio::test]
async fn revocations_and_the_per_user_limit_on_one_replica_evict_on_the_other() {
    let replicas = Replicas::new().await;
    let clock = ManualClock::new();
    let reader = clock.reader();
    let a = replicas
        .replica_with("a", move |store| {
            store
                .with_max_sessions_per_user(2)
                .unwrap()
                .with_clock(reader)
        })
        .await;
    let b = replicas.replica("b").await;

    // "Log out everywhere" on a.
    let mut phone = record(json!({"user_id": "u1"}));
    let mut laptop = record(json!({"user_id": "u1"}));
    a.create(&mut phone).await.unwrap();
    a.create(&mut laptop).await.unwrap();
    assert!(b.load(&phone.id).await.unwrap().is_some());
    assert!(b.load(&laptop.id).await.unwrap().is_some());
    assert_eq!(a.delete_user_sessions("u1").await.unwrap(), 2);
    within(BOUND, "b still serves a revoked session", || async {
        b.load(&phone.id).await.unwrap().is_none() && b.load(&laptop.id).await.unwrap().is_none()
    })
    .await;

    // The per-user limit ends the oldest of three logins.
    let mut first = record(json!({"user_id": "u2"}));
    a.create(&mut first).await.unwrap();
    assert!(b.load(&first.id).await.unwrap().is_some());
    for _ in 0..2 {
        clock.advance(StdDuration::from_secs(1));
        a.create(&mut record(json!({"user_id": "u2"})))
            .await
            .unwrap();
    }
    within(
        BOUND,
        "b still serves a session the limit ended",
        || async { b.load(&first.id).await.unwrap().is_none() },
    )
    .await;
    replicas.finish().await;
}

#[tokio::test]
async fn writes_outside_the_store_evict_too() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    let mut one = record(json!({"n": 1}));
    let mut two = record(json!({"n": 2}));
    b.create(&mut one).await.unwrap();
    b.create(&mut two).await.unwrap();
    assert!(b.load(&one.id).await.unwrap().is_some());
    assert!(b.load(&two.id).await.unwrap().is_some());

    replicas
        .execute(&format!(
            "DELETE FROM {} WHERE id = '{}'",
            replicas.table(),
            one.id
        ))
        .await;
    within(BOUND, "a manual DELETE did not evict", || async {
        b.load(&one.id).await.unwrap().is_none()
    })
    .await;

    replicas
        .execute(&format!("TRUNCATE {}", replicas.table()))
        .await;
    within(BOUND, "a TRUNCATE did not evict", || async {
        b.load(&two.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

/// A row written by someone else whose id no notification can carry (over 8,000 bytes; a
/// compressible text fits PostgreSQL's index) must not make the statements that touch it fail:
/// the cleanup would be stuck on it for ever. Nor may an id shaped like a heartbeat count as
/// one. Neither can be a session this store caches (its keys are 22 or 64 characters).
#[tokio::test]
async fn foreign_ids_no_notification_can_carry_block_no_statement() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    let table = replicas.table();
    replicas
        .execute(&format!(
            "INSERT INTO {table} (id, data, expiry_date, created_at, updated_at) VALUES \
             (repeat('x', 100000), '\\x00', now() - interval '1 hour', now(), now()), \
             ('~forged:1', '\\x00', now() + interval '1 hour', now(), now()), \
             ('*', '\\x00', now() + interval '1 hour', now(), now())"
        ))
        .await;
    let mut live = record(json!({"n": 1}));
    b.create(&mut live).await.unwrap();
    assert!(b.load(&live.id).await.unwrap().is_some());

    // The cleanup deletes the expired foreign row.
    let deleted = b
        .delete_expired_sessions()
        .await
        .unwrap_or_else(|e| panic!("the cleanup failed on a foreign row: {e}"));
    assert_eq!(deleted, 1);
    let rows = replicas
        .admin
        .query_all_raw(
            tower_sessions_seaorm_store::sea_orm::Statement::from_string(
                replicas.admin.get_database_backend(),
                format!("SELECT count(*) FROM {table} WHERE length(id) > 64"),
            ),
        )
        .await
        .unwrap();
    let left = rows[0].try_get_by_index::<i64>(0).unwrap();
    assert_eq!(
        left, 0,
        "the cleanup did not delete the expired foreign row"
    );
    // The other foreign rows are updated and deleted like any row, announcing neither a
    // heartbeat nor "evict everything".
    let mut listener = replicas.listen().await;
    replicas
        .execute(&format!(
            "UPDATE {table} SET expiry_date = now() + interval '2 hours' \
             WHERE id IN ('~forged:1', '*')"
        ))
        .await;
    replicas
        .execute(&format!(
            "DELETE FROM {table} WHERE id IN ('~forged:1', '*')"
        ))
        .await;
    // The store's own session still evicts as always, announced after the foreign rows.
    b.delete(&live.id).await.unwrap();
    loop {
        let notification = tokio::time::timeout(StdDuration::from_secs(5), listener.recv())
            .await
            .expect("the store's delete was announced")
            .unwrap();
        let payload = notification.payload();
        assert!(
            payload != "*" && payload != "~forged:1",
            "a foreign row's id was announced as {payload:?}"
        );
        if payload == live.id.to_string() {
            break;
        }
    }
    assert!(b.load(&live.id).await.unwrap().is_none());
    replicas.finish().await;
}

/// The name, row version (`xmin`) and text of the function the table's triggers call.
async fn eviction_function(raw: &mut sqlx::PgConnection, table: &str) -> (String, String, String) {
    let sql = "SELECT p.oid::regprocedure::text, p.xmin::text, p.prosrc \
               FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
               WHERE t.tgrelid = to_regclass($1) LIMIT 1";
    sqlx::query_as(sql)
        .bind(table)
        .fetch_one(raw)
        .await
        .unwrap()
}

/// `migrate()` replaces an installed eviction function whose text is not the current one (a
/// table migrated by an older version), and otherwise leaves the catalog alone.
#[tokio::test]
async fn migrate_brings_the_eviction_function_up_to_date_and_otherwise_touches_nothing() {
    let replicas = Replicas::new().await;
    let mut raw = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let migrate = || replicas.migrate(|store| store);
    let (name, installed, body) = eviction_function(&mut raw, &replicas.table()).await;
    migrate().await;
    assert_eq!(
        eviction_function(&mut raw, &replicas.table()).await.1,
        installed,
        "an up-to-date function was replaced"
    );

    // An older version's function, announcing every id.
    replicas
        .execute(&format!(
            "CREATE OR REPLACE FUNCTION {name} RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_notify(TG_ARGV[0], changed.id) FROM changed; RETURN NULL; END $$"
        ))
        .await;
    assert_ne!(eviction_function(&mut raw, &replicas.table()).await.2, body);
    migrate().await;
    assert_eq!(
        eviction_function(&mut raw, &replicas.table()).await.2,
        body,
        "the old function was kept"
    );
    replicas.finish().await;
}

/// Logical replication's apply workers and bulk loads run with `session_replication_role =
/// replica`, where ordinary triggers do not fire: the eviction triggers fire always.
#[tokio::test]
async fn writes_in_replica_mode_evict_too() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    let mut session = record(json!({"n": 1}));
    b.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());

    let url = database_url_with("options=-csession_replication_role%3Dreplica");
    let applier = Replicas::plain_store(&connect_postgres(&url).await, &replicas.schema);
    applier.delete(&session.id).await.unwrap();
    within(BOUND, "a delete in replica mode did not evict", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

/// A trigger dropped or disabled while the replicas run (by hand, by a tool) stops the
/// heartbeats' proofs, so the caches stop serving within their bound, not at the next
/// reconnection; `migrate()` brings the triggers and the serving back, and what was deleted
/// unannounced meanwhile is not served then (the trigger rows changed: the cache is cleared).
#[tokio::test]
async fn a_disabled_trigger_stops_the_serving_within_the_bound() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    let table = replicas.table();
    let mut stale = record(json!({"n": 0}));
    b.create(&mut stale).await.unwrap();
    assert!(b.load(&stale.id).await.unwrap().is_some(), "b caches it");
    replicas
        .execute(&format!(
            "ALTER TABLE {table} DISABLE TRIGGER tower_sessions_evict_on_delete"
        ))
        .await;
    let stopped = within(BOUND * 2, "b still serves without its trigger", || async {
        !b.is_cache_serving()
    })
    .await;
    assert!(
        stopped <= BOUND + StdDuration::from_millis(200),
        "{stopped:?}"
    );
    replicas
        .execute(&format!("DELETE FROM {table} WHERE id = '{}'", stale.id))
        .await;

    replicas.migrate(|store| store).await;
    wait_until_serving(&b, "b").await;
    assert!(
        b.load(&stale.id).await.unwrap().is_none(),
        "b served a session deleted while its trigger was disabled"
    );
    let mut session = record(json!({"n": 1}));
    b.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());
    replicas
        .execute(&format!("DELETE FROM {table} WHERE id = '{}'", session.id))
        .await;
    within(BOUND, "the restored trigger did not evict", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

/// A hash-partitioned table: PostgreSQL fires a parent's statement triggers only for statements
/// on the parent, so `migrate()` puts the triggers on every partition too, and a `DELETE`, an
/// `UPDATE` or a `TRUNCATE` aimed at one partition evicts like one on the table.
#[tokio::test]
async fn writes_aimed_at_one_partition_evict_too() {
    let replicas = Replicas::with_table(|store| store.with_hash_partitions(4).unwrap()).await;
    let b = replicas.replica("b").await;
    let mut sessions = Vec::new();
    for n in 0..12 {
        let mut session = record(json!({ "n": n }));
        b.create(&mut session).await.unwrap();
        assert!(b.load(&session.id).await.unwrap().is_some());
        sessions.push(session);
    }
    let partition_of = |id: Id| replicas.partition_of(id);

    let deleted = sessions[0].id;
    let partition = partition_of(deleted).await;
    assert_ne!(partition, replicas.table(), "rows live in the partitions");
    replicas
        .execute(&format!("DELETE FROM {partition} WHERE id = '{deleted}'"))
        .await;
    within(BOUND, "a DELETE on a partition did not evict", || async {
        b.load(&deleted).await.unwrap().is_none()
    })
    .await;

    let expired = sessions[1].id;
    let partition = partition_of(expired).await;
    replicas
        .execute(&format!(
            "UPDATE {partition} SET expiry_date = now() - interval '1 minute' \
             WHERE id = '{expired}'"
        ))
        .await;
    within(BOUND, "an UPDATE on a partition did not evict", || async {
        b.load(&expired).await.unwrap().is_none()
    })
    .await;

    let truncated = sessions[2].id;
    let partition = partition_of(truncated).await;
    let mut in_it = Vec::new();
    for session in &sessions[2..] {
        if partition_of(session.id).await == partition {
            in_it.push(session.id);
        }
    }
    replicas.execute(&format!("TRUNCATE {partition}")).await;
    for id in in_it {
        within(BOUND, "a TRUNCATE of a partition did not evict", || async {
            b.load(&id).await.unwrap().is_none()
        })
        .await;
    }
    replicas.finish().await;
}

/// Each replica's heartbeats go on a channel of its own: a listener on the table's channel
/// (another replica) hears evictions only, however many replicas beat.
#[tokio::test]
async fn heartbeats_stay_off_the_tables_channel() {
    let replicas = Replicas::new().await;
    let mut listener = replicas.listen().await;
    let b = replicas.replica("b").await;
    assert!(b.is_cache_serving(), "b's own heartbeats came back");
    let mut session = record(json!({"n": 1}));
    b.create(&mut session).await.unwrap();
    // Four heartbeat periods (a quarter of the bound each), then one eviction.
    tokio::time::sleep(BOUND).await;
    b.delete(&session.id).await.unwrap();
    let first = tokio::time::timeout(StdDuration::from_secs(5), listener.recv())
        .await
        .expect("the delete was announced")
        .unwrap();
    assert_eq!(
        first.payload(),
        session.id.to_string(),
        "something else came first on the table's channel"
    );
    replicas.finish().await;
}

/// The environment variable that makes [`killed_writer`] the writer of
/// [`a_writer_killed_right_after_its_commit_is_not_served_past_the_bound`]: the schema and the
/// session id, separated by a space.
const KILLED_WRITER: &str = "TOWER_SESSIONS_KILLED_WRITER";

/// A replica's save is not announced: its trigger appends it to the eviction log, which every
/// listener reads every few milliseconds. A writer killed right after its commit has nothing
/// left to do for the others: the other replica stops serving the old value within the bound,
/// and nothing was announced.
#[tokio::test]
async fn a_writer_killed_right_after_its_commit_is_not_served_past_the_bound() {
    let replicas = Replicas::new().await;
    let mut channel = replicas.listen().await;
    let b = replicas.replica("b").await;
    let mut session = record(json!({"n": 1}));
    b.create(&mut session).await.unwrap();
    served_from_memory(&replicas, &b, session.id, "b").await;

    let writer = std::process::Command::new(std::env::current_exe().expect("the test's path"))
        .args(["--exact", "killed_writer", "--ignored", "--nocapture"])
        .env(KILLED_WRITER, format!("{} {}", replicas.schema, session.id))
        .output()
        .expect("the writer starts");
    let stdout = String::from_utf8_lossy(&writer.stdout);
    assert!(
        writer.status.code().is_none() && stdout.contains("saved; aborting"),
        "the writer was to save and then die by its own abort: {}\n{stdout}\n{}",
        writer.status,
        String::from_utf8_lossy(&writer.stderr)
    );
    let in_table = Replicas::plain_store(&replicas.admin, &replicas.schema);
    let saved = in_table.load(&session.id).await.unwrap().expect("the row");
    assert_eq!(
        saved.data["n"],
        json!(2),
        "the killed writer's save committed"
    );

    let took = within(BOUND, "b serves the killed writer's save", || async {
        b.load(&session.id)
            .await
            .unwrap()
            .expect("the session")
            .data["n"]
            == json!(2)
    })
    .await;
    println!("b served the killed writer's save {took:?} after the writer died");
    served_from_memory(&replicas, &b, session.id, "b, again").await;
    // The trigger did not announce it (the save was quiet): the log alone evicted it.
    let heard = tokio::time::timeout(StdDuration::from_millis(50), channel.recv()).await;
    assert!(heard.is_err(), "something was announced: {heard:?}");
    replicas.finish().await;
}

/// A transaction left open elsewhere (an `idle in transaction` session) holds back the oldest
/// running transaction, but each read of the eviction log takes only what the previous read's
/// snapshot could not see: a save is evicted once, and the saved value stays in memory however
/// many polls and heartbeats follow, instead of being evicted again at every one.
#[tokio::test]
async fn a_long_transaction_elsewhere_does_not_evict_a_save_again_at_every_poll() {
    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let b = replicas.replica("b").await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    served_from_memory(&replicas, &b, session.id, "b").await;

    let mut open = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut open).await.unwrap();
    let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut open)
        .await
        .unwrap();
    session.data.insert("n".to_owned(), json!(2));
    a.save(&session).await.unwrap();
    within(BOUND, "b serves a's save", || async {
        b.load(&session.id).await.unwrap().unwrap().data["n"] == 2
    })
    .await;
    served_from_memory(&replicas, &b, session.id, "b, after a's save").await;
    let mut other = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let oldest: i64 = sqlx::query_scalar("SELECT txid_snapshot_xmin(txid_current_snapshot())")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(
        oldest <= xid,
        "the open transaction ({xid}) holds the horizon ({oldest})"
    );
    // Real time is the point: the listener polls and beats on its own clock. Across several
    // heartbeats (a quarter of the bound each) and dozens of polls, the entry stays.
    for _ in 0..4 {
        tokio::time::sleep(BOUND / 4).await;
        assert!(
            replicas.serves_from_memory(&b, session.id).await,
            "b evicted a's save again while the other transaction stayed open"
        );
    }
    sqlx::raw_sql("ROLLBACK").execute(&mut open).await.unwrap();
    replicas.finish().await;
}

/// The eviction log dropped by hand: the store's saves fail, so none goes unannounced, until
/// `migrate()` puts the log back.
#[tokio::test]
async fn without_its_eviction_log_a_save_fails_until_migrate_restores_it() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    let mut session = record(json!({"n": 1}));
    b.create(&mut session).await.unwrap();
    let mut loaded = b.load(&session.id).await.unwrap().expect("the session");
    loaded.data.insert("n".to_owned(), json!(2));

    let mut raw = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let sql = "SELECT relname::text FROM pg_class WHERE relnamespace = to_regnamespace($1) \
               AND relkind = 'r' AND relname::text LIKE 'tower_sessions_log_%'";
    let logs: Vec<String> = sqlx::query_scalar(sql)
        .bind(&replicas.schema)
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert_eq!(logs.len(), 1, "one eviction log beside the table: {logs:?}");
    replicas
        .execute(&format!(
            "DROP TABLE \"{}\".\"{}\"",
            replicas.schema, logs[0]
        ))
        .await;
    let refused = b.save(&loaded).await;
    assert!(refused.is_err(), "a save without the log succeeded");

    replicas.migrate(|store| store).await;
    b.save(&loaded)
        .await
        .expect("the save, once the log is back");
    let in_table = Replicas::plain_store(&replicas.admin, &replicas.schema);
    let saved = in_table.load(&session.id).await.unwrap().expect("the row");
    assert_eq!(saved.data["n"], json!(2));
    replicas.finish().await;
}

/// The writer of [`a_writer_killed_right_after_its_commit_is_not_served_past_the_bound`], in a
/// process of its own: on a single-threaded runtime it saves and aborts before yielding, so no
/// task of its store runs after the commit.
#[tokio::test(flavor = "current_thread")]
#[ignore = "the writer of a_writer_killed_right_after_its_commit_is_not_served_past_the_bound, \
            which runs it in a process of its own"]
async fn killed_writer() {
    let spec = std::env::var(KILLED_WRITER).unwrap_or_else(|_| {
        panic!(
            "run by a_writer_killed_right_after_its_commit_is_not_served_past_the_bound, with \
             {KILLED_WRITER} set"
        )
    });
    let (schema, id) = spec.split_once(' ').expect("schema and id");
    let id: Id = id.parse().expect("a session id");
    let conn = connect_postgres(&database_url()).await;
    let store = Replicas::plain_store(&conn, schema)
        .with_cache(Cache::listening(listening_url("killed_writer")).max_staleness(BOUND))
        .unwrap();
    let mut session = store.load(&id).await.unwrap().expect("the session");
    session.data.insert("n".to_owned(), json!(2));
    store.save(&session).await.unwrap();
    println!("saved; aborting");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::process::abort();
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

/// A listening URL that names another database by mistake, one with the same table and its
/// triggers, must not make the cache serve: the heartbeats go through the store's own
/// connections, so none comes back to a listener on the wrong database (before, its own
/// heartbeats did, and the cache served sessions no eviction would ever reach).
#[tokio::test]
async fn a_listener_on_another_database_never_serves() {
    let replicas = Replicas::new().await;
    let elsewhere = unique_name("ts_cache_elsewhere");
    replicas
        .execute(&format!("CREATE DATABASE \"{elsewhere}\""))
        .await;
    let elsewhere_url = database_url_on(&elsewhere);
    let other = connect_postgres(&elsewhere_url).await;
    Replicas::plain_store(&other, &replicas.schema)
        .with_cache(Cache::listening(elsewhere_url.clone()))
        .unwrap()
        .migrate()
        .await
        .expect("the same table and triggers in the other database");

    let conn = connect_postgres(&database_url()).await;
    let store = Replicas::plain_store(&conn, &replicas.schema)
        .with_cache(Cache::listening(elsewhere_url).max_staleness(BOUND))
        .unwrap();
    // Real time is the point: a proof would have come back within three bounds.
    tokio::time::sleep(BOUND * 3).await;
    assert!(
        !store.is_cache_serving(),
        "a listener on another database proved the cache fresh"
    );
    let mut session = record(json!({"n": 1}));
    store.create(&mut session).await.unwrap();
    assert!(store.load(&session.id).await.unwrap().is_some());
    replicas
        .execute(&format!(
            "DELETE FROM {} WHERE id = '{}'",
            replicas.table(),
            session.id
        ))
        .await;
    assert!(
        store.load(&session.id).await.unwrap().is_none(),
        "a session deleted in the store's database was served"
    );

    drop(store);
    other.close().await.unwrap();
    replicas
        .execute(&format!("DROP DATABASE \"{elsewhere}\" WITH (FORCE)"))
        .await;
    replicas.finish().await;
}

/// The store's pool through PgBouncer in transaction pooling mode, the listener on a direct
/// URL, as docs/cache.md says: the heartbeats go through PgBouncer (a `NOTIFY` works there),
/// and the cache serves and is evicted.
#[tokio::test]
async fn a_store_behind_pgbouncer_listens_on_a_direct_url() {
    let replicas = Replicas::new().await;
    let pooled = common::pgbouncer::connect_through_pgbouncer().await;
    let b = Replicas::plain_store(&pooled, &replicas.schema)
        .with_cache(
            Cache::listening(listening_url(&replicas.application("b"))).max_staleness(BOUND),
        )
        .unwrap();
    wait_until_serving(&b, "b, behind PgBouncer").await;
    let a = replicas.replica("a").await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());
    a.delete(&session.id).await.unwrap();
    within(BOUND, "b, behind PgBouncer, still serves it", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

/// A read of the eviction log that never ends (here it waits for a lock another connection
/// holds; in production, a server gone without a word, after a failover) does not hold the
/// listener until the kernel gives up on the connection: the listener abandons it after its
/// silence bound (twice the staleness bound), connects again, and serves again once it can
/// read the log.
#[tokio::test]
async fn a_read_of_the_eviction_log_that_hangs_is_abandoned_for_a_new_connection() {
    let replicas = Replicas::new().await;
    let b = replicas.replica("b").await;
    assert_eq!(
        replicas.listener_connections("b").await,
        1,
        "b's one listener connection"
    );
    let mut raw = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let log: String = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = to_regnamespace($1) \
         AND relkind = 'r' AND relname::text LIKE 'tower_sessions_log_%'",
    )
    .bind(&replicas.schema)
    .fetch_one(&mut raw)
    .await
    .unwrap();

    let mut locker = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "BEGIN; LOCK TABLE \"{}\".\"{log}\" IN ACCESS EXCLUSIVE MODE",
        replicas.schema
    )))
    .execute(&mut locker)
    .await
    .unwrap();
    // Its next poll waits for the lock; after the silence bound (twice `BOUND`) it connects
    // again (and that connection's poll waits too). The waiting connection stays until the
    // lock is gone: PostgreSQL notices a client gone only when it next talks to it.
    within(
        BOUND * 2 * 4,
        "b's listener still waits on its read of the eviction log (no second connection)",
        || async { replicas.listener_connections("b").await >= 2 },
    )
    .await;
    assert!(
        !b.is_cache_serving(),
        "b serves while it cannot read its log"
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    wait_until_serving(&b, "b, once its log can be read again").await;
    let a = replicas.replica("a").await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some(), "b caches it");
    a.delete(&session.id).await.unwrap();
    within(BOUND, "b does not evict after reconnecting", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

#[tokio::test]
async fn no_stale_read_after_the_listener_reconnects() {
    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let b = replicas.replica("b").await;
    let mut session = record(json!({"user_id": "u1"}));
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some(), "b caches it");

    // The listener's connection (heartbeats go through b's own pool).
    assert_eq!(replicas.cut_listener("b").await, 1, "b's listener");
    within(BOUND, "b kept serving without its listener", || async {
        !b.is_cache_serving()
    })
    .await;
    // Deleted while b hears nothing: b's copy must not come back once it listens again.
    a.delete(&session.id).await.unwrap();
    wait_until_serving(&b, "b (reconnected)").await;
    assert!(
        b.load(&session.id).await.unwrap().is_none(),
        "b served a session deleted while its listener was away"
    );
    // Still evicting after the reconnection.
    let mut next = record(json!({"n": 1}));
    a.create(&mut next).await.unwrap();
    assert!(b.load(&next.id).await.unwrap().is_some());
    a.delete(&next.id).await.unwrap();
    within(BOUND, "b does not evict after reconnecting", || async {
        b.load(&next.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

#[tokio::test]
async fn loads_racing_saves_on_another_replica_end_on_the_last_save() {
    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let b = Arc::new(replicas.replica("b").await);
    let mut session = record(json!({"n": 0}));
    a.create(&mut session).await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (b, stop, id) = (Arc::clone(&b), Arc::clone(&stop), session.id);
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    b.load(&id)
                        .await
                        .unwrap()
                        .expect("the session exists throughout");
                }
            })
        })
        .collect();
    for n in 1..=40 {
        session.data.insert("n".into(), json!(n));
        a.save(&session).await.unwrap();
    }
    within(BOUND, "b never reached the last save", || async {
        b.load(&session.id).await.unwrap().unwrap().data["n"] == 40
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    for _ in 0..100 {
        assert_eq!(
            b.load(&session.id).await.unwrap().unwrap().data["n"],
            40,
            "an older copy came back"
        );
    }
    replicas.finish().await;
}

#[tokio::test]
async fn hashed_ids_announce_the_hash_never_the_id() {
    let replicas = Replicas::new().await;
    let a = replicas
        .replica_with("a", PostgresStore::with_hashed_ids)
        .await;
    let b = replicas
        .replica_with("b", PostgresStore::with_hashed_ids)
        .await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());

    let mut listener = replicas.listen().await;

    a.delete(&session.id).await.unwrap();
    let payload = loop {
        let notification = tokio::time::timeout(StdDuration::from_secs(5), listener.recv())
            .await
            .expect("the delete was announced")
            .unwrap();
        if !notification.payload().starts_with('~') {
            break notification.payload().to_owned();
        }
    };
    assert_eq!(payload, hex::encode(Sha256::digest(session.id.to_string())));
    assert!(!payload.contains(&session.id.to_string()));
    within(BOUND, "b still serves it", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

#[tokio::test]
async fn a_cached_session_ends_with_its_absolute_lifetime_and_its_expiry() {
    let replicas = Replicas::new().await;
    let clock = ManualClock::new();
    let reader = clock.reader();
    let a = replicas
        .replica_with("a", move |store| {
            store
                .with_absolute_lifetime(StdDuration::from_secs(30 * 60))
                .with_clock(reader)
        })
        .await;
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert!(a.load(&session.id).await.unwrap().is_some());
    let mut short = record(json!({"n": 2}));
    short.expiry_date = clock.now() + Duration::minutes(10);
    a.create(&mut short).await.unwrap();
    assert!(a.load(&short.id).await.unwrap().is_some());

    clock.advance(StdDuration::from_secs(11 * 60));
    assert!(
        a.load(&short.id).await.unwrap().is_none(),
        "served past its expiry"
    );
    assert!(a.load(&session.id).await.unwrap().is_some());
    clock.advance(StdDuration::from_secs(20 * 60));
    assert!(
        a.load(&session.id).await.unwrap().is_none(),
        "served past its absolute lifetime"
    );
    // Cleanup deletes both; nothing is served after it either.
    a.delete_expired().await.unwrap();
    assert!(a.load(&session.id).await.unwrap().is_none());
    replicas.finish().await;
}

#[tokio::test]
async fn a_cached_long_lived_session_ends_with_its_own_lifetime() {
    let replicas = Replicas::new().await;
    let clock = ManualClock::new();
    let reader = clock.reader();
    let a = replicas
        .replica_with("a", move |store| {
            store
                .with_absolute_lifetime(StdDuration::from_secs(30 * 60))
                .with_long_lived_sessions("remember_me", StdDuration::from_secs(2 * 60 * 60))
                .unwrap()
                .with_clock(reader)
        })
        .await;
    let mut remembered = record(json!({"remember_me": true}));
    remembered.expiry_date = clock.now() + Duration::days(1);
    a.create(&mut remembered).await.unwrap();
    let mut plain = record(json!({"remember_me": "true"}));
    plain.expiry_date = clock.now() + Duration::days(1);
    a.create(&mut plain).await.unwrap();
    // Both cached now.
    assert!(a.load(&remembered.id).await.unwrap().is_some());
    assert!(a.load(&plain.id).await.unwrap().is_some());

    clock.advance(StdDuration::from_secs(31 * 60));
    assert!(
        a.load(&plain.id).await.unwrap().is_none(),
        "served past the absolute lifetime"
    );
    assert!(
        a.load(&remembered.id).await.unwrap().is_some(),
        "a long-lived session ended at the short lifetime"
    );
    clock.advance(StdDuration::from_secs(90 * 60));
    assert!(
        a.load(&remembered.id).await.unwrap().is_none(),
        "served past its own lifetime"
    );
    replicas.finish().await;
}

#[tokio::test]
async fn without_its_triggers_a_listening_cache_never_serves() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_cache");
    let plain = Replicas::plain_store(&conn, &schema);
    plain.migrate().await.unwrap(); // no cache: no triggers
    let cached = plain
        .clone()
        .with_cache(Cache::listening(database_url()).max_staleness(BOUND))
        .unwrap();
    let mut session = record(json!({"n": 1}));
    cached.create(&mut session).await.unwrap();
    // Real time is the point: without heartbeats the proof ages past the bound.
    tokio::time::sleep(BOUND * 2).await;
    assert!(!cached.is_cache_serving());
    assert!(cached.load(&session.id).await.unwrap().is_some());
    plain.delete(&session.id).await.unwrap();
    assert!(cached.load(&session.id).await.unwrap().is_none());

    // Its migrate() installs them; then it serves.
    cached.migrate().await.unwrap();
    wait_until_serving(&cached, "the cached store, after migrate").await;
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn table_options_after_the_cache_and_two_caches_are_refused() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn)
        .with_cache(Cache::single_replica())
        .unwrap();
    for err in [
        store.clone().with_table_name("other").unwrap_err(),
        store.clone().with_schema_name("other").unwrap_err(),
        store
            .clone()
            .with_cache(Cache::single_replica())
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, SeaOrmStoreError::InvalidConfiguration(m) if m.contains("with_cache")),
            "{err}"
        );
    }
}

/// The single-replica cache on SQLite and MariaDB: own writes evict before they return.
async fn single_replica_rules(store: PostgresStore, what: &str) {
    let err = store
        .clone()
        .with_cache(Cache::listening(database_url()))
        .unwrap_err();
    assert!(
        matches!(&err, SeaOrmStoreError::InvalidConfiguration(m) if m.contains("single_replica")),
        "{what}: {err}"
    );
    let store = store
        .with_user_key("user_id")
        .unwrap()
        .with_cache(Cache::single_replica())
        .unwrap();
    assert!(store.is_cache_serving());

    let mut session = record(json!({"user_id": "u1", "n": 1}));
    store.create(&mut session).await.unwrap();
    assert_eq!(store.load(&session.id).await.unwrap().unwrap().data["n"], 1);
    session.data.insert("n".into(), json!(2));
    store.save(&session).await.unwrap();
    assert_eq!(
        store.load(&session.id).await.unwrap().unwrap().data["n"],
        2,
        "{what}: a save left the old copy"
    );
    store.delete(&session.id).await.unwrap();
    assert!(
        store.load(&session.id).await.unwrap().is_none(),
        "{what}: delete"
    );

    let mut other = record(json!({"user_id": "u1"}));
    store.create(&mut other).await.unwrap();
    assert!(store.load(&other.id).await.unwrap().is_some());
    store.delete_user_sessions("u1").await.unwrap();
    assert!(
        store.load(&other.id).await.unwrap().is_none(),
        "{what}: log out everywhere"
    );

    let mut kept = record(json!({"user_id": "u2"}));
    let mut ended = record(json!({"user_id": "u2"}));
    store.create(&mut kept).await.unwrap();
    store.create(&mut ended).await.unwrap();
    assert!(store.load(&ended.id).await.unwrap().is_some());
    store
        .delete_user_sessions_except("u2", kept.id)
        .await
        .unwrap();
    assert!(
        store.load(&ended.id).await.unwrap().is_none(),
        "{what}: others"
    );
    assert!(store.load(&kept.id).await.unwrap().is_some());
    let handle = store.session_handle(kept.id);
    assert!(store.delete_user_session("u2", &handle).await.unwrap());
    assert!(
        store.load(&kept.id).await.unwrap().is_none(),
        "{what}: one device"
    );

    // The operators' calls: one user's sessions created before an instant, then everyone's.
    let mut adas = record(json!({"user_id": "u3"}));
    let mut anonymous = record(json!({"n": 1}));
    store.create(&mut adas).await.unwrap();
    store.create(&mut anonymous).await.unwrap();
    assert!(store.load(&adas.id).await.unwrap().is_some());
    assert!(store.load(&anonymous.id).await.unwrap().is_some());
    // An instant after both sessions' creation (none is created after it here).
    let now = OffsetDateTime::now_utc() + Duration::minutes(1);
    let ended = store.delete_user_sessions_created_before("u3", now);
    assert_eq!(ended.await.unwrap(), 1);
    assert!(
        store.load(&adas.id).await.unwrap().is_none(),
        "{what}: one user's, created before"
    );
    assert_eq!(store.delete_sessions_created_before(now).await.unwrap(), 1);
    assert!(
        store.load(&anonymous.id).await.unwrap().is_none(),
        "{what}: everyone's, created before"
    );
}

#[tokio::test]
async fn sqlite_single_replica_cache() {
    let fixture = SqliteFixture::file().await;
    single_replica_rules(fixture.store.clone(), "SQLite").await;
    fixture.finish().await;
}

/// The cache's memory budget reaches the store: within it a session is served from memory
/// (its row deleted behind the cache's back, it still loads), a session over an eighth of the
/// budget is read from the database every time.
#[tokio::test]
async fn a_session_over_an_eighth_of_the_cache_budget_is_read_not_cached() {
    let fixture = SqliteFixture::file().await;
    let store = fixture
        .store
        .clone()
        .with_cache(Cache::single_replica().max_memory(64 << 10))
        .unwrap();
    let mut small = record(json!({"n": 1}));
    let mut large = record(json!({"draft": "x".repeat(100_000)}));
    store.create(&mut small).await.unwrap();
    store.create(&mut large).await.unwrap();
    assert!(store.load(&small.id).await.unwrap().is_some());
    assert!(store.load(&large.id).await.unwrap().is_some());

    // Unannounced: a single-replica cache sees only its own store's writes.
    fixture
        .conn
        .execute_unprepared("DELETE FROM session")
        .await
        .unwrap();
    assert!(
        store.load(&small.id).await.unwrap().is_some(),
        "the small session was not served from the cache"
    );
    assert!(
        store.load(&large.id).await.unwrap().is_none(),
        "a session over the budget was cached"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn mariadb_single_replica_cache() {
    let fixture = MySqlFixture::new().await;
    single_replica_rules(fixture.store.clone(), "MariaDB").await;
    fixture.finish().await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test]
async fn the_lean_store_listens_too() {
    use tower_sessions_seaorm_store::LeanPostgresStore;

    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let lean = LeanPostgresStore::new(common::lean::lean_pool(&database_url()))
        .with_schema_name(&replicas.schema)
        .unwrap()
        .with_cache(
            Cache::listening(listening_url(&replicas.application("lean"))).max_staleness(BOUND),
        )
        .unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while !lean.is_cache_serving() {
        assert!(
            Instant::now() < deadline,
            "the lean store's cache never served"
        );
        // Real time: the listener connects and its first heartbeat comes back over the network.
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    let mut session = record(json!({"n": 1}));
    a.create(&mut session).await.unwrap();
    assert!(lean.load(&session.id).await.unwrap().is_some());
    a.delete(&session.id).await.unwrap();
    within(BOUND, "the lean store still serves it", || async {
        lean.load(&session.id).await.unwrap().is_none()
    })
    .await;
    replicas.finish().await;
}

// Catalog changes: anything that could hide a write from the triggers clears every replica's
// cache within the bound (each heartbeat carries a fingerprint of the table, its partitions,
// its trigger rows and the eviction function, and a listener that sees it change clears its
// cache), and one statement clears them all by hand.

/// How much later than the bound a poll may see what the bound promises: the poll's own load
/// (a round trip, when it goes to the database) and a loaded machine's scheduling. The bound
/// itself is exact: a replica serves only with a heartbeat sent at most `BOUND` ago, and a
/// heartbeat sent after a change carries the changed fingerprint.
const MARGIN: StdDuration = StdDuration::from_millis(200);

/// After a catalog change has cleared `b`'s cache, `b` tells the truth: it serves again, from
/// memory, and the triggers in place now still evict there what `a` deletes.
async fn serves_truthfully(replicas: &Replicas, a: &PostgresStore, b: &PostgresStore, id: Id) {
    served_from_memory(replicas, b, id, "b, the kept session").await;
    a.delete(&id).await.unwrap();
    within(
        BOUND,
        "b still serves a session deleted after the change",
        || async { b.load(&id).await.unwrap().is_none() },
    )
    .await;
}

/// Creates `sessions` on `a` and has `b` cache each.
async fn cached_on(a: &PostgresStore, b: &PostgresStore, sessions: &mut [&mut Record]) {
    for session in sessions.iter_mut() {
        a.create(session).await.unwrap();
        assert!(b.load(&session.id).await.unwrap().is_some(), "b caches it");
    }
}

/// A `DELETE` run with its trigger disabled and re-enabled inside one transaction: nothing
/// announces it, and no other session ever sees the trigger off. The trigger's row version
/// moved, so the next heartbeat's fingerprint differs and the cache is cleared. Five rounds,
/// so that the surgery falls at different phases of the heartbeats.
#[tokio::test]
async fn a_delete_with_its_trigger_disabled_inside_one_transaction_is_not_served_past_the_bound() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let table = replicas.table();
    for round in 0..5 {
        let mut gone = record(json!({"user_id": "u1"}));
        let mut kept = record(json!({"user_id": "u2"}));
        cached_on(&a, &b, &mut [&mut gone, &mut kept]).await;
        served_from_memory(&replicas, &b, gone.id, "b").await;
        replicas
            .execute(&format!(
                "BEGIN; \
                 ALTER TABLE {table} DISABLE TRIGGER tower_sessions_evict_on_delete; \
                 DELETE FROM {table} WHERE id = '{}'; \
                 ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_delete; \
                 COMMIT",
                gone.id
            ))
            .await;
        let took = within(
            BOUND + MARGIN,
            "b still serves a session deleted with its trigger disabled",
            || async { b.load(&gone.id).await.unwrap().is_none() },
        )
        .await;
        eprintln!("round {round}: b stopped serving it after {took:?}");
        serves_truthfully(&replicas, &a, &b, kept.id).await;
    }
    replicas.finish().await;
}

/// The table swapped in one transaction: renamed away, a copy created with the same triggers
/// and every row but one user's, the old one dropped. No trigger saw the user's rows go; the
/// table's OID changed, and with it the fingerprint.
#[tokio::test]
async fn a_table_swapped_in_one_transaction_clears_the_caches() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let mut phone = record(json!({"user_id": "u1"}));
    let mut laptop = record(json!({"user_id": "u1"}));
    let mut kept = record(json!({"user_id": "u2"}));
    cached_on(&a, &b, &mut [&mut phone, &mut laptop, &mut kept]).await;

    let table = replicas.table();
    let old = format!("\"{}\".\"session_swapped\"", replicas.schema);
    let enable: String = ["update", "delete", "truncate"]
        .map(|on| {
            format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_{on}; ")
        })
        .concat();
    replicas
        .execute(&format!(
            "BEGIN; \
             ALTER TABLE {table} RENAME TO session_swapped; \
             CREATE TABLE {table} (LIKE {old} INCLUDING ALL); \
             DO $copy$ DECLARE definition text; BEGIN \
               FOR definition IN SELECT replace(pg_get_triggerdef(oid), 'session_swapped', \
                   'session') FROM pg_trigger WHERE tgrelid = '{old}'::regclass LOOP \
                 EXECUTE definition; \
               END LOOP; \
             END $copy$; \
             {enable} \
             INSERT INTO {table} SELECT * FROM {old} WHERE id NOT IN ('{}', '{}'); \
             DROP TABLE {old}; \
             COMMIT",
            phone.id, laptop.id
        ))
        .await;
    for gone in [phone.id, laptop.id] {
        let took = within(
            BOUND + MARGIN,
            "b still serves a session the swap left out",
            || async { b.load(&gone).await.unwrap().is_none() },
        )
        .await;
        eprintln!("b stopped serving it after {took:?}");
    }
    serves_truthfully(&replicas, &a, &b, kept.id).await;
    replicas.finish().await;
}

/// Hash partitions detached (plainly, then `CONCURRENTLY`) and dropped: their rows leave the
/// table without a `DELETE`. The partition list changed, and with it the fingerprint.
#[tokio::test]
async fn a_partition_detached_and_dropped_clears_the_caches() {
    let replicas = Replicas::with_table(|store| store.with_hash_partitions(4).unwrap()).await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let mut sessions: Vec<Record> = (0..16).map(|n| record(json!({ "n": n }))).collect();
    let mut by_partition: HashMap<String, Vec<Id>> = HashMap::new();
    for session in &mut sessions {
        cached_on(&a, &b, &mut [session]).await;
        let partition = replicas.partition_of(session.id).await;
        by_partition.entry(partition).or_default().push(session.id);
    }
    let mut partitions: Vec<_> = by_partition.into_iter().collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(partitions.len() >= 3, "16 sessions fill 3 of 4 partitions");
    let table = replicas.table();

    for (how, (partition, ids)) in ["", " CONCURRENTLY"].into_iter().zip(&partitions) {
        replicas
            .execute(&format!(
                "ALTER TABLE {table} DETACH PARTITION {partition}{how}"
            ))
            .await;
        for id in ids {
            let took = within(
                BOUND + MARGIN,
                "b still serves a session of a detached partition",
                || async { b.load(id).await.unwrap().is_none() },
            )
            .await;
            eprintln!("DETACH PARTITION{how}: b stopped serving it after {took:?}");
        }
        replicas.execute(&format!("DROP TABLE {partition}")).await;
    }
    let kept = partitions[2].1[0];
    serves_truthfully(&replicas, &a, &b, kept).await;
    replicas.finish().await;
}

/// The eviction function replaced by one that announces nothing: for one transaction's
/// `DELETE` and back (its row version moved: the caches are cleared), or for good (no heartbeat
/// is sent while the triggers call a function that is not this release's: the caches stop
/// serving; `migrate()` brings the function and the serving back, cleared).
#[tokio::test]
async fn the_eviction_function_replaced_clears_the_caches() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let table = replicas.table();
    let mut raw = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let (function, _, body) = eviction_function(&mut raw, &table).await;
    let blind = format!(
        "CREATE OR REPLACE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql \
         AS $blind$ BEGIN RETURN NULL; END $blind$"
    );
    let restore = format!(
        "CREATE OR REPLACE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql \
         AS $evict${body}$evict$"
    );

    let mut gone = record(json!({"n": 1}));
    let mut kept = record(json!({"n": 2}));
    cached_on(&a, &b, &mut [&mut gone, &mut kept]).await;
    replicas
        .execute(&format!(
            "BEGIN; {blind}; DELETE FROM {table} WHERE id = '{}'; {restore}; COMMIT",
            gone.id
        ))
        .await;
    let took = within(
        BOUND + MARGIN,
        "b still serves a session deleted while the function announced nothing",
        || async { b.load(&gone.id).await.unwrap().is_none() },
    )
    .await;
    eprintln!("replaced and restored: b stopped serving it after {took:?}");
    serves_truthfully(&replicas, &a, &b, kept.id).await;

    let mut stale = record(json!({"n": 3}));
    let mut kept = record(json!({"n": 4}));
    cached_on(&a, &b, &mut [&mut stale, &mut kept]).await;
    replicas.execute(&blind).await;
    within(
        BOUND + MARGIN,
        "b still serves while the function announces nothing",
        || async { !b.is_cache_serving() },
    )
    .await;
    replicas
        .execute(&format!("DELETE FROM {table} WHERE id = '{}'", stale.id))
        .await;
    replicas.migrate(|store| store).await;
    wait_until_serving(&b, "b, after migrate").await;
    assert!(
        b.load(&stale.id).await.unwrap().is_none(),
        "b served a session deleted while the function announced nothing"
    );
    serves_truthfully(&replicas, &a, &b, kept.id).await;
    replicas.finish().await;
}

/// One statement clears every replica's cache, after surgery or any time: the `NOTIFY`
/// docs/cache.md gives operators. Cleared, not paused: once serving again, the session is not
/// in memory (a load under the lock caches nothing).
#[tokio::test]
async fn one_notify_clears_every_replicas_cache() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let mut session = record(json!({"n": 1}));
    cached_on(&a, &b, &mut [&mut session]).await;
    assert!(a.load(&session.id).await.unwrap().is_some());
    for (name, store) in [("a", &a), ("b", &b)] {
        served_from_memory(&replicas, store, session.id, name).await;
    }

    replicas.execute("NOTIFY tower_sessions_clear_caches").await;
    for (name, store) in [("a", &a), ("b", &b)] {
        let took = within(
            BOUND + MARGIN,
            &format!("{name} still serves from memory after the NOTIFY"),
            || async { !replicas.serves_from_memory(store, session.id).await },
        )
        .await;
        eprintln!("{name} was cleared after {took:?}");
        wait_until_serving(store, name).await;
        assert!(
            !replicas.serves_from_memory(store, session.id).await,
            "{name}"
        );
    }
    replicas.finish().await;
}

/// `clear_cache_everywhere()` sends that `NOTIFY`: its own store's cache is cleared when it
/// returns, every other replica's within the bound; a store without a cache (an
/// administration tool's) clears them too.
#[tokio::test]
async fn clear_cache_everywhere_clears_every_replica() {
    let replicas = Replicas::new().await;
    let (a, b) = (replicas.replica("a").await, replicas.replica("b").await);
    let admin = Replicas::plain_store(&replicas.admin, &replicas.schema);
    for clearing in [&a, &admin] {
        let mut session = record(json!({"n": 1}));
        cached_on(&a, &b, &mut [&mut session]).await;
        assert!(a.load(&session.id).await.unwrap().is_some());
        for (name, store) in [("a", &a), ("b", &b)] {
            served_from_memory(&replicas, store, session.id, name).await;
        }

        clearing.clear_cache_everywhere().await.unwrap();
        if std::ptr::eq(clearing, &a) {
            assert!(
                !replicas.serves_from_memory(&a, session.id).await,
                "a's own cache was not cleared when the call returned"
            );
        }
        for (name, store) in [("a", &a), ("b", &b)] {
            within(
                BOUND + MARGIN,
                &format!("{name} still serves from memory"),
                || async { !replicas.serves_from_memory(store, session.id).await },
            )
            .await;
            wait_until_serving(store, name).await;
            assert!(
                !replicas.serves_from_memory(store, session.id).await,
                "{name}"
            );
        }
    }
    replicas.finish().await;
}

/// The same catalog check through PgBouncer in transaction pooling mode: the heartbeat's
/// fingerprint is computed by its one statement, on whichever server connection runs it.
#[tokio::test]
async fn behind_pgbouncer_a_delete_with_its_trigger_disabled_is_not_served_past_the_bound() {
    let replicas = Replicas::new().await;
    let pooled = common::pgbouncer::connect_through_pgbouncer().await;
    let b = Replicas::plain_store(&pooled, &replicas.schema)
        .with_cache(
            Cache::listening(listening_url(&replicas.application("b"))).max_staleness(BOUND),
        )
        .unwrap();
    wait_until_serving(&b, "b, behind PgBouncer").await;
    let a = replicas.replica("a").await;
    let mut gone = record(json!({"n": 1}));
    cached_on(&a, &b, &mut [&mut gone]).await;
    let table = replicas.table();
    replicas
        .execute(&format!(
            "BEGIN; ALTER TABLE {table} DISABLE TRIGGER USER; \
             DELETE FROM {table} WHERE id = '{}'; \
             ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_update; \
             ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_delete; \
             ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_truncate; \
             COMMIT",
            gone.id
        ))
        .await;
    within(
        BOUND + MARGIN,
        "b, behind PgBouncer, still serves a session deleted with its triggers disabled",
        || async { b.load(&gone.id).await.unwrap().is_none() },
    )
    .await;
    replicas.finish().await;
}

/// The lean store's heartbeats carry the same fingerprint.
#[cfg(feature = "tokio-postgres")]
#[tokio::test]
async fn the_lean_store_clears_its_cache_on_catalog_changes_too() {
    use tower_sessions_seaorm_store::LeanPostgresStore;

    let replicas = Replicas::new().await;
    let a = replicas.replica("a").await;
    let lean = LeanPostgresStore::new(common::lean::lean_pool(&locking_url()))
        .with_schema_name(&replicas.schema)
        .unwrap()
        .with_cache(
            Cache::listening(listening_url(&replicas.application("lean"))).max_staleness(BOUND),
        )
        .unwrap();
    wait_until_serving(&lean, "the lean store").await;
    let mut gone = record(json!({"n": 1}));
    a.create(&mut gone).await.unwrap();
    assert!(lean.load(&gone.id).await.unwrap().is_some());
    served_from_memory(&replicas, &lean, gone.id, "the lean store").await;
    let table = replicas.table();
    replicas
        .execute(&format!(
            "BEGIN; \
             ALTER TABLE {table} DISABLE TRIGGER tower_sessions_evict_on_delete; \
             DELETE FROM {table} WHERE id = '{}'; \
             ALTER TABLE {table} ENABLE ALWAYS TRIGGER tower_sessions_evict_on_delete; \
             COMMIT",
            gone.id
        ))
        .await;
    within(
        BOUND + MARGIN,
        "the lean store still serves a session deleted with its trigger disabled",
        || async { lean.load(&gone.id).await.unwrap().is_none() },
    )
    .await;

    // Its `clear_cache_everywhere()` clears itself at once and the SeaORM replica too.
    let mut session = record(json!({"n": 2}));
    a.create(&mut session).await.unwrap();
    assert!(lean.load(&session.id).await.unwrap().is_some());
    assert!(a.load(&session.id).await.unwrap().is_some());
    served_from_memory(&replicas, &lean, session.id, "the lean store").await;
    served_from_memory(&replicas, &a, session.id, "a").await;
    lean.clear_cache_everywhere().await.unwrap();
    assert!(
        !replicas.serves_from_memory(&lean, session.id).await,
        "the lean store's own cache"
    );
    within(BOUND + MARGIN, "a still serves from memory", || async {
        !replicas.serves_from_memory(&a, session.id).await
    })
    .await;
    replicas.finish().await;
}
