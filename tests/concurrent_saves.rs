//! Concurrent requests on one session never lose each other's changes (#26).
//!
//! Real requests through axum and `SessionManagerLayer`, on one cookie, against real databases.
//! A racing request loads the session, makes its change and then waits at a barrier that opens
//! only once every request of the race has loaded: they truly overlap between their load and
//! their save. A request told to `hold` also waits, after the barrier, until the test lets it go,
//! so that a test can fix the order of the saves (the first request's response, and so its save,
//! is complete before the held one is released). Half of a race's requests go through one store,
//! half through a replica on a pool of its own (the in-memory repository: the same rows).
//!
//! What each scenario asserts is in its doc comment. Scenario 1 prints how long each backend
//! took (`--nocapture`); [`RACES`] sets its scale.

mod common;

use std::{
    collections::BTreeMap,
    fmt::Debug,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::Response,
    Router,
};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Barrier};
use tower::ServiceExt;
use tower_sessions_seaorm_store::{
    codec::{Codec, CodecError, MessagePackCodec, SessionRecord},
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement},
    PostgresStore, RepositoryStore, SessionStore,
};

use common::replicas::Replicas;

/// The key under which the store keeps, in a loaded record's data, what the request loaded.
/// Never stored, never encoded.
const RESERVED: &str = "tower-sessions-seaorm-store:base";

/// Scenario 1's scale on every backend: this many races of this many concurrent requests.
/// Over 1,000 races per backend in all.
const RACES: &[Races] = &[
    Races {
        races: 700,
        requests: 2,
    },
    Races {
        races: 260,
        requests: 16,
    },
    Races {
        races: 60,
        requests: 64,
    },
];

/// Scenario 1's scale on SQLite: as many races, fewer of them wide. SQLite writes one statement
/// at a time and its writers poll for the write lock (see `common::replicas`), so on main the
/// full [`RACES`] took 228 s there (20 s on the servers), 174 s of it the 16-request races.
const SQLITE_RACES: &[Races] = &[
    Races {
        races: 1000,
        requests: 2,
    },
    Races {
        races: 52,
        requests: 16,
    },
    Races {
        races: 12,
        requests: 64,
    },
];

/// Scenario 1 at a smaller scale: every option on, tower-sessions 0.14, the spy codec.
const FEW_RACES: &[Races] = &[
    Races {
        races: 40,
        requests: 2,
    },
    Races {
        races: 12,
        requests: 16,
    },
    Races {
        races: 3,
        requests: 64,
    },
];

/// How long one race may take before the test fails instead of hanging (a request that died
/// before the barrier leaves the others waiting there).
const RACE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Races {
    races: usize,
    requests: usize,
}

// ---------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------

/// One race: every racing request has loaded the session when `loaded` opens; a held request
/// then waits for `released`.
struct Race {
    loaded: Barrier,
    released: watch::Sender<bool>,
}

impl Race {
    fn new(requests: usize) -> Arc<Self> {
        Arc::new(Self {
            loaded: Barrier::new(requests),
            released: watch::channel(false).0,
        })
    }

    /// Called by a racing handler once it has loaded the session and made its change.
    async fn join(&self, hold: bool) {
        self.loaded.wait().await;
        if hold {
            let mut released = self.released.subscribe();
            released
                .wait_for(|released| *released)
                .await
                .map(|_| ())
                .expect("the race outlives its requests");
        }
    }

    fn release(&self) {
        self.released.send_replace(true);
    }
}

/// What a request asks of its handler (a JSON body).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Op {
    key: String,
    value: Value,
    /// Wait after the barrier until the test releases the race.
    hold: bool,
    /// `/clear-set`: load the session before clearing it.
    load_first: bool,
    /// `/get`: the keys to read.
    keys: Vec<String>,
}

struct AppState<S> {
    store: S,
    race: Arc<Race>,
}

/// The user every session of these tests belongs to (for "log out everywhere" and the
/// per-user limit).
const USER: &str = "ada";

/// The same application for tower-sessions 0.15 (`v015`) and 0.14 (`v014`): their `Session`s
/// have the same methods.
macro_rules! session_app {
    ($version:ident, $tower_sessions:ident) => {
        mod $version {
            use super::*;
            use axum::{
                extract::{Path, State},
                routing::post,
                Json,
            };
            use $tower_sessions::{Expiry, Session, SessionManagerLayer};

            type Shared<R, C> = Arc<AppState<RepositoryStore<R, C>>>;

            pub(crate) fn app<R, C>(store: RepositoryStore<R, C>, race: Arc<Race>) -> Router
            where
                R: SessionRepository + Debug,
                C: Codec + Debug,
            {
                let layer = SessionManagerLayer::new(store.clone())
                    .with_secure(false)
                    .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
                Router::new()
                    .route(
                        "/start",
                        post(|session: Session| async move {
                            session.insert("started", true).await.unwrap();
                            session.insert("user_id", USER).await.unwrap();
                            session.insert("device", "laptop").await.unwrap();
                        }),
                    )
                    .route(
                        "/seed",
                        post(|session: Session, Json(op): Json<Op>| async move {
                            session.insert(&op.key, op.value).await.unwrap();
                        }),
                    )
                    .route(
                        "/set",
                        post(
                            |State(state): State<Shared<R, C>>,
                             session: Session,
                             Json(op): Json<Op>| async move {
                                session.insert(&op.key, op.value).await.unwrap();
                                state.race.join(op.hold).await;
                            },
                        ),
                    )
                    .route(
                        "/remove",
                        post(
                            |State(state): State<Shared<R, C>>,
                             session: Session,
                             Json(op): Json<Op>| async move {
                                session.remove::<Value>(&op.key).await.unwrap();
                                state.race.join(op.hold).await;
                            },
                        ),
                    )
                    .route(
                        "/clear-set",
                        post(
                            |State(state): State<Shared<R, C>>,
                             session: Session,
                             Json(op): Json<Op>| async move {
                                if op.load_first {
                                    session.get::<Value>("started").await.unwrap();
                                }
                                session.clear().await;
                                session.insert(&op.key, op.value).await.unwrap();
                                state.race.join(op.hold).await;
                            },
                        ),
                    )
                    .route(
                        // A logout, by `delete()`, `flush()` or "log out everywhere".
                        "/end/{how}",
                        post(
                            |State(state): State<Shared<R, C>>,
                             Path(how): Path<String>,
                             session: Session,
                             Json(op): Json<Op>| async move {
                                session.get::<Value>("user_id").await.unwrap();
                                state.race.join(op.hold).await;
                                match how.as_str() {
                                    "delete" => session.delete().await.unwrap(),
                                    "flush" => session.flush().await.unwrap(),
                                    "everywhere" => {
                                        state.store.delete_user_sessions(USER).await.unwrap();
                                    }
                                    other => panic!("no logout named {other}"),
                                }
                            },
                        ),
                    )
                    .route(
                        "/get",
                        post(|session: Session, Json(op): Json<Op>| async move {
                            let mut found = Map::new();
                            for key in op.keys {
                                if let Some(value) = session.get::<Value>(&key).await.unwrap() {
                                    found.insert(key, value);
                                }
                            }
                            Json(Value::Object(found))
                        }),
                    )
                    .route(
                        "/cycle",
                        post(|session: Session, Json(op): Json<Op>| async move {
                            // A login as axum-login does it, then a second save in the same
                            // request: the record `cycle_id` carried over saves again.
                            session.get::<Value>("started").await.unwrap();
                            session.cycle_id().await.unwrap();
                            session.insert(&op.key, op.value).await.unwrap();
                            session.save().await.unwrap();
                            session.insert("after_save", true).await.unwrap();
                        }),
                    )
                    .route(
                        "/forge",
                        post(|session: Session, Json(op): Json<Op>| async move {
                            // An application that lets a request choose a key name, and a
                            // request that chose the reserved one, with a change beside it.
                            session.insert(RESERVED, op.value).await.unwrap();
                            session.insert(&op.key, "forged").await.unwrap();
                        }),
                    )
                    .layer(layer)
                    .with_state(Arc::new(AppState { store, race }))
            }
        }
    };
}

session_app!(v015, tower_sessions);
#[cfg(feature = "tower-sessions-014")]
session_app!(v014, tower_sessions_014);

/// Builds the application of one tower-sessions version over a store, for one race.
type AppFn<S> = fn(S, Arc<Race>) -> Router;

async fn call(app: &Router, path: &str, cookie: Option<&str>, op: Value) -> Response {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::from(op.to_string())).unwrap())
        .await
        .unwrap()
}

fn session_cookie(response: &Response) -> String {
    common::demo_app::session_cookie(response).expect("a session cookie")
}

fn session_id(cookie: &str) -> tower_sessions::session::Id {
    common::demo_app::session_id(cookie)
        .parse()
        .expect("a session id")
}

async fn json_body(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// A session table read past the store: raw SQL on the `data` column.
#[derive(Clone)]
struct Table {
    conn: DatabaseConnection,
    /// The table's name, quoted as its backend needs.
    name: String,
    /// Whether the `id` column holds the SHA-256 of the id (`with_hashed_ids`).
    hashed_ids: bool,
}

impl Table {
    fn new(conn: &DatabaseConnection, name: String) -> Self {
        Self {
            conn: conn.clone(),
            name,
            hashed_ids: false,
        }
    }

    /// The stored `data` bytes of the session with `cookie`, if it has a row.
    async fn data_of(&self, cookie: &str) -> Option<Vec<u8>> {
        let id = session_id(cookie).to_string();
        let key = if self.hashed_ids {
            hex::encode(Sha256::digest(id.as_bytes()))
        } else {
            id
        };
        let backend = self.conn.get_database_backend();
        let placeholder = match backend {
            DbBackend::Postgres => "$1",
            _ => "?",
        };
        let statement = Statement::from_sql_and_values(
            backend,
            format!("SELECT data FROM {} WHERE id = {placeholder}", self.name),
            [key.into()],
        );
        self.conn
            .query_one_raw(statement)
            .await
            .expect("read the session table")
            .map(|row| row.try_get_by_index::<Vec<u8>>(0).expect("the data column"))
    }
}

type Cleanup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Two stores on one session table (through two pools), and how to read that table directly.
struct Backend<S> {
    name: String,
    a: S,
    b: S,
    /// `None` for the in-memory repository: its rows are read through the store.
    table: Option<Table>,
    app: AppFn<S>,
    /// Scenario 1's scale here.
    races: &'static [Races],
    cleanup: Cleanup,
}

impl<R, C> Backend<RepositoryStore<R, C>>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    /// The same backend with both stores changed by `options`.
    fn with<C2>(
        self,
        name: &str,
        options: impl Fn(RepositoryStore<R, C>) -> RepositoryStore<R, C2>,
        app: AppFn<RepositoryStore<R, C2>>,
    ) -> Backend<RepositoryStore<R, C2>> {
        Backend {
            name: format!("{} {name}", self.name),
            a: options(self.a),
            b: options(self.b),
            table: self.table,
            app,
            races: self.races,
            cleanup: self.cleanup,
        }
    }

    /// Both apps of a race: `apps[i % 2]` serves request `i`.
    fn apps(&self, race: &Arc<Race>) -> [Router; 2] {
        [
            (self.app)(self.a.clone(), Arc::clone(race)),
            (self.app)(self.b.clone(), Arc::clone(race)),
        ]
    }

    fn outside_a_race(&self) -> Router {
        (self.app)(self.a.clone(), Race::new(1))
    }

    /// A new session (`started`, `user_id`, `device`) and its cookie.
    async fn start(&self) -> String {
        let response = call(&self.outside_a_race(), "/start", None, json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "{}: /start", self.name);
        session_cookie(&response)
    }

    async fn seed(&self, cookie: &str, key: &str, value: Value) {
        let response = call(
            &self.outside_a_race(),
            "/seed",
            Some(cookie),
            json!({ "key": key, "value": value }),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{}: /seed", self.name);
    }

    /// The values of `keys` a request with `cookie` sees, through the replica's store.
    async fn get(&self, cookie: &str, keys: &[&str]) -> Map<String, Value> {
        let app = (self.app)(self.b.clone(), Race::new(1));
        match json_body(call(&app, "/get", Some(cookie), json!({ "keys": keys })).await).await {
            Value::Object(found) => found,
            other => panic!("/get answered {other}"),
        }
    }

    /// The session's row as it is stored (`None`: no row), bytes for a table, the record for
    /// the in-memory repository.
    async fn stored(&self, cookie: &str) -> Option<Vec<u8>> {
        match &self.table {
            Some(table) => table.data_of(cookie).await,
            None => self
                .a
                .load(&session_id(cookie))
                .await
                .unwrap()
                .map(|mut record| {
                    // What the store's load adds is not stored: leave it out.
                    record.data.remove(RESERVED);
                    let data: BTreeMap<_, _> = record.data.into_iter().collect();
                    format!("{data:?} until {}", record.expiry_date).into_bytes()
                }),
        }
    }

    /// Runs `requests` (path and body) as one race, request `i` through store `i % 2`; each
    /// body may ask to `hold`. `first` requests are awaited before the race is released; their
    /// statuses come first.
    async fn race(
        &self,
        cookie: &str,
        requests: Vec<(&'static str, Value)>,
        first: usize,
    ) -> Vec<StatusCode> {
        let race = Race::new(requests.len());
        let apps = self.apps(&race);
        let tasks: Vec<_> = requests
            .into_iter()
            .enumerate()
            .map(|(i, (path, op))| {
                let app = apps[i % 2].clone();
                let cookie = cookie.to_owned();
                tokio::spawn(async move { call(&app, path, Some(&cookie), op).await.status() })
            })
            .collect();
        let run = async {
            let mut statuses = Vec::new();
            for (i, task) in tasks.into_iter().enumerate() {
                if i == first {
                    race.release();
                }
                statuses.push(task.await.expect("a racing request panicked"));
            }
            statuses
        };
        tokio::time::timeout(RACE_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("{}: a race took over {RACE_TIMEOUT:?}", self.name))
    }

    async fn finish(self) {
        (self.cleanup)().await;
    }
}

fn cleanup<F: Future<Output = ()> + Send + 'static>(finish: F) -> Cleanup {
    Box::new(move || Box::pin(finish))
}

fn quoted_pg_table(schema: &str) -> String {
    format!("\"{schema}\".\"session\"")
}

async fn on_pg_fixture(fixture: common::PgFixture, name: &str) -> Backend<PostgresStore> {
    let b = fixture.replica().await;
    Backend {
        name: name.to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, fixture.table())),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

async fn postgres() -> Backend<PostgresStore> {
    on_pg_fixture(common::PgFixture::new().await, "PostgreSQL").await
}

async fn pgbouncer() -> Backend<PostgresStore> {
    on_pg_fixture(
        common::pgbouncer::pgbouncer_fixture().await,
        "PostgreSQL through PgBouncer",
    )
    .await
}

async fn sqlite() -> Backend<PostgresStore> {
    let fixture = common::sqlite::SqliteFixture::file().await;
    let b = fixture.replica().await;
    Backend {
        name: "SQLite".to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, "\"session\"".to_owned())),
        app: v015::app,
        races: SQLITE_RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

async fn mysql() -> Backend<PostgresStore> {
    let fixture = common::mysql::MySqlFixture::new().await;
    let b = fixture.replica().await;
    Backend {
        name: "MySQL/MariaDB".to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, format!("`{}`", fixture.table))),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

async fn partitioned() -> Backend<PostgresStore> {
    let fixture = common::partitioned::PartitionedFixture::new().await;
    let b = fixture.replica().await;
    Backend {
        name: "PostgreSQL hash partitions".to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, quoted_pg_table(&fixture.schema))),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

async fn memory() -> Backend<common::memory::MemoryStore> {
    let fixture = common::memory::MemoryFixture::new().await;
    let b = fixture.replica().await;
    Backend {
        name: "in-memory repository".to_owned(),
        a: fixture.store.clone(),
        b,
        table: None,
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

/// A table distributed by Citus over two workers (`scripts/test` with `CITUS_SOURCE`; without
/// a cluster, tests/citus_suite.rs says loudly that the Citus tests did not run).
#[cfg(citus_cluster)]
async fn citus() -> Backend<PostgresStore> {
    let fixture = common::citus::CitusFixture::new().await;
    let b = fixture.replica().await;
    Backend {
        name: "Citus, a distributed table".to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, fixture.table())),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

#[cfg(feature = "tokio-postgres")]
async fn lean() -> Backend<tower_sessions_seaorm_store::LeanPostgresStore> {
    let fixture = common::lean::LeanFixture::new().await;
    let b = fixture.replica().await;
    Backend {
        name: "tokio-postgres (lean)".to_owned(),
        a: fixture.store.clone(),
        b,
        table: Some(Table::new(&fixture.conn, quoted_pg_table(&fixture.schema))),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

/// Two replicas on PostgreSQL, each with a listening read cache on a pool of its own: a load
/// may come from memory, stale by the time its request saves.
#[cfg(feature = "cache")]
async fn postgres_with_read_caches() -> Backend<PostgresStore> {
    use tower_sessions_seaorm_store::Cache;

    let url = common::database_url();
    let conn = common::connect_postgres(&url).await;
    let schema = common::unique_name("ts_race_cache");
    let plain = |conn: DatabaseConnection| {
        PostgresStore::new(conn)
            .with_schema_name(&schema)
            .expect("a valid schema name")
    };
    // A store with a listening cache migrates: it installs the eviction triggers.
    plain(conn.clone())
        .with_cache(Cache::listening(url.clone()))
        .unwrap()
        .migrate()
        .await
        .expect("migrate with the eviction triggers");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = plain(common::connect_postgres(&url).await)
            .with_cache(Cache::listening(url.clone()))
            .unwrap();
        // Readiness, not ordering: the listener connects and hears its first heartbeat.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.is_cache_serving() {
            assert!(
                Instant::now() < deadline,
                "a replica's cache did not start serving within 10 s: is PostgreSQL at \
                 DATABASE_URL reachable for LISTEN?"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        replicas.push(store);
    }
    let b = replicas.pop().unwrap();
    let a = replicas.pop().unwrap();
    let fixture = common::PgFixture {
        store: a.clone(),
        conn: conn.clone(),
        url,
        schema: schema.clone(),
    };
    Backend {
        name: "PostgreSQL with two read caches".to_owned(),
        a,
        b,
        table: Some(Table::new(&conn, quoted_pg_table(&schema))),
        app: v015::app,
        races: RACES,
        cleanup: cleanup(fixture.finish()),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Scenario 1. Every race: a new session, then `requests` concurrent requests on its cookie,
/// request `i` setting its own key `k{i}` (all loaded before any saves). Afterwards a request
/// sees every one of the keys, and no request answered an error.
async fn no_request_loses_its_change<R, C>(backend: &Backend<RepositoryStore<R, C>>, plan: &[Races])
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let started = Instant::now();
    let mut summary = Vec::new();
    for &Races { races, requests } in plan {
        let batch_started = Instant::now();
        let keys: Vec<String> = (0..requests).map(|i| format!("k{i}")).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (mut lost, mut worst, mut errors) = (0, 0, 0);
        for _ in 0..races {
            let cookie = backend.start().await;
            let ops = keys
                .iter()
                .enumerate()
                .map(|(i, key)| ("/set", json!({ "key": key, "value": i })))
                .collect();
            let statuses = backend.race(&cookie, ops, requests).await;
            errors += statuses.iter().filter(|s| **s != StatusCode::OK).count();
            let found = backend.get(&cookie, &key_refs).await;
            let lost_here = keys
                .iter()
                .enumerate()
                .filter(|(i, key)| found.get(key.as_str()) != Some(&json!(i)))
                .count();
            lost += lost_here;
            worst = worst.max(lost_here);
        }
        assert!(
            lost == 0 && errors == 0,
            "{}: {races} races of {requests} concurrent requests lost {lost} of {} keys \
             (at worst {worst} of {requests} in one race); {errors} requests answered an error",
            backend.name,
            races * requests,
        );
        summary.push(format!(
            "{races} x {requests} in {:.1?}",
            batch_started.elapsed()
        ));
    }
    eprintln!(
        "{}: no change lost in {} ({:.1?} in all)",
        backend.name,
        summary.join(", "),
        started.elapsed()
    );
}

/// Scenario 2. One request removes `a` while another changes `b`, both loaded before either
/// saves, in both orders of their saves, each through another store: `a` is gone, `b` has the
/// new value, and the rest of the session is as it was.
async fn a_removal_and_a_change_both_survive<R, C>(backend: &Backend<RepositoryStore<R, C>>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let remove = |hold| ("/remove", json!({ "key": "a", "hold": hold }));
    let change = |hold| {
        (
            "/set",
            json!({ "key": "b", "value": "new b", "hold": hold }),
        )
    };
    for (order, requests) in [
        ("removal saved first", vec![remove(false), change(true)]),
        ("change saved first", vec![change(false), remove(true)]),
    ] {
        let cookie = backend.start().await;
        backend.seed(&cookie, "a", json!("old a")).await;
        backend.seed(&cookie, "b", json!("old b")).await;
        let statuses = backend.race(&cookie, requests, 1).await;
        assert_eq!(statuses, [StatusCode::OK; 2], "{}: {order}", backend.name);
        let found = backend.get(&cookie, &["a", "b", "started"]).await;
        assert_eq!(
            Value::Object(found),
            json!({ "b": "new b", "started": true }),
            "{}: {order}: the removal and the change both hold",
            backend.name
        );
    }
}

/// Scenario 3. A logout (`delete()`, `flush()`, or "log out everywhere") while other requests
/// hold the session loaded with a change each: the logout completes first, then they all save.
/// The session stays gone: a request with the cookie sees a new, empty session, and the table
/// has no row for it. (The held requests' statuses are not asserted: a save that finds its
/// session gone may succeed doing nothing or fail.)
async fn a_logout_is_final<R, C>(backend: &Backend<RepositoryStore<R, C>>, holders: usize)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    for logout in ["/end/delete", "/end/flush", "/end/everywhere"] {
        let cookie = backend.start().await;
        let mut requests = vec![(logout, json!({}))];
        requests.extend((0..holders).map(|i| {
            (
                "/set",
                json!({ "key": format!("k{i}"), "value": i, "hold": true }),
            )
        }));
        let statuses = backend.race(&cookie, requests, 1).await;
        assert_eq!(statuses[0], StatusCode::OK, "{}: {logout}", backend.name);

        let found = backend.get(&cookie, &["started", "user_id", "k0"]).await;
        assert!(
            found.is_empty(),
            "{}: after {logout} and {holders} racing saves the cookie still finds {found:?}",
            backend.name
        );
        assert_eq!(
            backend.stored(&cookie).await.map(|_| "a row"),
            None,
            "{}: a save racing {logout} brought the session back",
            backend.name
        );
    }
}

/// Scenario 4. Requests each setting the key `same` to a value of their own: the session ends
/// with one of the written values, whole (never a mix of two, never the original); and when
/// the saves are ordered, the later save's value.
async fn the_same_key_ends_with_one_written_value<R, C>(
    backend: &Backend<RepositoryStore<R, C>>,
    races: usize,
    requests: usize,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let value =
        |writer: usize| json!({ "writer": writer, "payload": format!("written by {writer}") });
    for _ in 0..races {
        let cookie = backend.start().await;
        backend
            .seed(&cookie, "same", json!({ "writer": "original" }))
            .await;
        let ops = (0..requests)
            .map(|i| ("/set", json!({ "key": "same", "value": value(i) })))
            .collect();
        let statuses = backend.race(&cookie, ops, requests).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        let found = backend.get(&cookie, &["same", "started"]).await;
        let written: Vec<Value> = (0..requests).map(value).collect();
        assert!(
            found.get("same").is_some_and(|same| written.contains(same)),
            "{}: `same` ended as {:?}, not one of the written values",
            backend.name,
            found.get("same")
        );
        assert_eq!(found.get("started"), Some(&json!(true)));
    }

    let cookie = backend.start().await;
    let requests = vec![
        ("/set", json!({ "key": "same", "value": value(0) })),
        (
            "/set",
            json!({ "key": "same", "value": value(1), "hold": true }),
        ),
    ];
    backend.race(&cookie, requests, 1).await;
    assert_eq!(
        backend.get(&cookie, &["same"]).await.get("same"),
        Some(&value(1)),
        "{}: the later save wins",
        backend.name
    );
}

/// Scenario 5. A request that clears the session and sets `cleared_by`, racing one that sets
/// `d` (both loaded before either saves; the clearing one with and without loading first).
///
/// What it asserts: afterwards the session holds the clearing request's data plus any change
/// saved after it, and never a key the clear removed that no later request wrote:
/// - change saved first, then the clear: exactly `{cleared_by}` (the clear replaces the
///   whole session, `d` included);
/// - the clear saved first, then the change: exactly `{cleared_by, d}` (the later request
///   wrote `d` only; `started`, `user_id`, `device` and `old` stay removed).
async fn a_clear_replaces_the_session_and_later_changes_apply_on_top<R, C>(
    backend: &Backend<RepositoryStore<R, C>>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let keys = ["cleared_by", "d", "old", "started", "user_id", "device"];
    for load_first in [true, false] {
        let clear = |hold| {
            (
                "/clear-set",
                json!({ "key": "cleared_by", "value": "c", "hold": hold, "load_first": load_first }),
            )
        };
        let change = |hold| ("/set", json!({ "key": "d", "value": "x", "hold": hold }));
        for (order, requests, expected) in [
            (
                "the change saved first",
                vec![change(false), clear(true)],
                json!({ "cleared_by": "c" }),
            ),
            (
                "the clear saved first",
                vec![clear(false), change(true)],
                json!({ "cleared_by": "c", "d": "x" }),
            ),
        ] {
            let cookie = backend.start().await;
            backend
                .seed(&cookie, "old", json!("before the clear"))
                .await;
            let statuses = backend.race(&cookie, requests, 1).await;
            assert_eq!(statuses, [StatusCode::OK; 2]);
            assert_eq!(
                Value::Object(backend.get(&cookie, &keys).await),
                expected,
                "{}: {order} (clearing request loaded first: {load_first})",
                backend.name
            );
        }
    }
}

/// Scenario 6d. Requests that put the reserved key in the session themselves (an application
/// taking a key name from the request), with a change beside it: the save fails (500) and the
/// stored session is exactly as before. Also a reserved entry lifted from another session's
/// load, and a new session created with the key: it never reaches the database.
async fn a_forged_reserved_entry_is_refused<R, C>(backend: &Backend<RepositoryStore<R, C>>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let cookie = backend.start().await;
    backend.seed(&cookie, "a", json!("kept")).await;
    let before = backend.stored(&cookie).await.expect("a stored session");

    for value in [
        json!({ "v": 0 }),
        json!("tower-sessions-seaorm-store:base"),
        json!({ "version": 1, "digests": {}, "tag": "00" }),
        Value::Null,
    ] {
        a_forged_save_changes_nothing(backend, &cookie, &before, value).await;
    }
    // What another session's load put there: genuine, but not this session's.
    let other = backend.start().await;
    let lifted = backend.get(&other, &[RESERVED]).await;
    let lifted = lifted.get(RESERVED).cloned().unwrap_or_else(|| {
        panic!(
            "{}: a loaded session shows no reserved entry to lift",
            backend.name
        )
    });
    a_forged_save_changes_nothing(backend, &cookie, &before, lifted).await;

    // A new session whose first request sets the key: refused, or stored without it.
    let response = call(
        &backend.outside_a_race(),
        "/forge",
        None,
        json!({ "key": "a", "value": { "v": 0 } }),
    )
    .await;
    if response.status() == StatusCode::OK {
        let cookie = session_cookie(&response);
        let stored = backend.stored(&cookie).await.expect("a stored session");
        assert!(
            !contains(&stored, RESERVED.as_bytes()),
            "{}: a created session stored the reserved key",
            backend.name
        );
    } else {
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

/// A `/forge` request on `cookie` with the reserved entry `value` answers 500, and the stored
/// session is still `before`.
async fn a_forged_save_changes_nothing<R, C>(
    backend: &Backend<RepositoryStore<R, C>>,
    cookie: &str,
    before: &[u8],
    value: Value,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let response = call(
        &backend.outside_a_race(),
        "/forge",
        Some(cookie),
        json!({ "key": "a", "value": value }),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}: a save with a reserved entry of {value} must fail",
        backend.name
    );
    assert!(
        backend.stored(cookie).await.as_deref() == Some(before),
        "{}: the failed save with a reserved entry of {value} changed the stored session",
        backend.name
    );
    assert_eq!(
        Value::Object(backend.get(cookie, &["a", "started"]).await),
        json!({ "a": "kept", "started": true })
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Scenario 6c. Application keys of every JSON shape read back exactly as written, before and
/// after a race on other keys: the store's reserved entry changes nothing an application sees.
async fn application_keys_read_back_unchanged<R, C>(backend: &Backend<RepositoryStore<R, C>>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let values = json!({
        "string": "text",
        "number": 42.5,
        "bool": false,
        "null": null,
        "array": [1, "two", { "three": 3 }],
        "object": { "nested": { "deep": [true] } },
    });
    let keys: Vec<&str> = values
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let cookie = backend.start().await;
    for (key, value) in values.as_object().unwrap() {
        backend.seed(&cookie, key, value.clone()).await;
    }
    let expected = values.as_object().unwrap().clone();
    assert_eq!(backend.get(&cookie, &keys).await, expected);
    let ops = (0..4)
        .map(|i| ("/set", json!({ "key": format!("k{i}"), "value": i })))
        .collect();
    backend.race(&cookie, ops, 4).await;
    assert_eq!(backend.get(&cookie, &keys).await, expected);
}

/// A cycled id (a login) saved twice in its request: the new session holds everything, and
/// the old id is gone.
async fn a_cycled_session_saves_again_in_its_request<R, C>(backend: &Backend<RepositoryStore<R, C>>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let old = backend.start().await;
    let response = call(
        &backend.outside_a_race(),
        "/cycle",
        Some(&old),
        json!({ "key": "login", "value": "ada" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "{}", backend.name);
    let new = session_cookie(&response);
    assert_ne!(new, old);
    let keys = ["started", "user_id", "device", "login", "after_save"];
    assert_eq!(
        backend.get(&new, &keys).await.len(),
        keys.len(),
        "{}: the cycled session holds every key",
        backend.name
    );
    assert!(backend.stored(&old).await.is_none(), "{}", backend.name);
}

// ---------------------------------------------------------------------------------------------
// Scenarios 1-5 on every backend
// ---------------------------------------------------------------------------------------------

/// One test per scenario on the backend `$backend` (an async fn returning a `Backend`).
macro_rules! races_on {
    ($module:ident, $backend:expr) => {
        mod $module {

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_request_loses_its_change() {
                let backend = $backend.await;
                super::no_request_loses_its_change(&backend, backend.races).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_removal_and_a_change_both_survive() {
                let backend = $backend.await;
                super::a_removal_and_a_change_both_survive(&backend).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_logout_is_final() {
                let backend = $backend.await;
                let app = backend.app;
                let backend = backend.with(
                    "(per-user index)",
                    |store| store.with_user_key("user_id").unwrap(),
                    app,
                );
                super::a_logout_is_final(&backend, 1).await;
                super::a_logout_is_final(&backend, 8).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_same_key_ends_with_one_written_value() {
                let backend = $backend.await;
                super::the_same_key_ends_with_one_written_value(&backend, 20, 8).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_clear_replaces_the_session_and_later_changes_apply_on_top() {
                let backend = $backend.await;
                super::a_clear_replaces_the_session_and_later_changes_apply_on_top(&backend).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forged_reserved_entry_is_refused() {
                let backend = $backend.await;
                super::a_forged_reserved_entry_is_refused(&backend).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_cycled_session_saves_again_in_its_request() {
                let backend = $backend.await;
                super::a_cycled_session_saves_again_in_its_request(&backend).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn application_keys_read_back_unchanged() {
                let backend = $backend.await;
                super::application_keys_read_back_unchanged(&backend).await;
                backend.finish().await;
            }
        }
    };
}

races_on!(postgres, super::postgres());
races_on!(sqlite, super::sqlite());
races_on!(mysql, super::mysql());
races_on!(in_memory, super::memory());
races_on!(partitioned, super::partitioned());
races_on!(pgbouncer, super::pgbouncer());
#[cfg(citus_cluster)]
races_on!(citus, super::citus());
#[cfg(feature = "tokio-postgres")]
races_on!(lean, super::lean());
#[cfg(feature = "cache")]
races_on!(read_caches, super::postgres_with_read_caches());

// ---------------------------------------------------------------------------------------------
// Scenario 6: the reserved entry never reaches the database nor the codec
// ---------------------------------------------------------------------------------------------

/// Scenario 6a. With the JSON codec, the stored `data` of a session after saves and a race
/// holds no reserved key: neither in its bytes nor in the record the codec decodes from them.
#[cfg(feature = "json")]
async fn the_reserved_entry_never_reaches_the_database(backend: Backend<PostgresStore>) {
    use tower_sessions_seaorm_store::codec::JsonCodec;

    let backend = backend.with("(JSON)", |store| store.with_codec(JsonCodec), v015::app);
    let table = backend.table.clone().expect("a table");
    let cookie = backend.start().await;
    backend.seed(&cookie, "a", json!("seeded")).await;
    let ops = (0..4)
        .map(|i| ("/set", json!({ "key": format!("k{i}"), "value": i })))
        .collect();
    backend.race(&cookie, ops, 4).await;

    let bytes = table.data_of(&cookie).await.expect("a stored row");
    let record = JsonCodec.decode(&bytes).expect("JSON the codec reads");
    assert!(
        record.data.contains_key("a") && record.data.contains_key("started"),
        "{}: the row holds the session: {:?}",
        backend.name,
        record.data.keys().collect::<Vec<_>>()
    );
    assert!(
        !record.data.contains_key(RESERVED) && !contains(&bytes, RESERVED.as_bytes()),
        "{}: the reserved entry reached the database: {}",
        backend.name,
        String::from_utf8_lossy(&bytes)
    );
    backend.finish().await;
}

#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_reserved_entry_never_reaches_the_database() {
    the_reserved_entry_never_reaches_the_database(postgres().await).await;
}

#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_reserved_entry_never_reaches_the_database() {
    the_reserved_entry_never_reaches_the_database(sqlite().await).await;
}

#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_the_reserved_entry_never_reaches_the_database() {
    the_reserved_entry_never_reaches_the_database(mysql().await).await;
}

/// MessagePack, noting every record it is given to encode: how many, and how many of them held
/// the reserved key.
#[derive(Debug, Clone, Default)]
struct Spy {
    encoded: Arc<AtomicUsize>,
    with_reserved_key: Arc<AtomicUsize>,
}

impl Codec for Spy {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        self.encoded.fetch_add(1, Ordering::Relaxed);
        if record.data.contains_key(RESERVED) {
            self.with_reserved_key.fetch_add(1, Ordering::Relaxed);
        }
        MessagePackCodec.encode(record)
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        MessagePackCodec.decode(bytes)
    }
}

/// Scenario 6b. A codec never sees the reserved entry: over creates, saves, races, a clear and
/// a logout, no record it encodes holds the key.
async fn the_codec_never_sees_the_reserved_entry<R>(
    backend: Backend<RepositoryStore<R, MessagePackCodec>>,
) where
    R: SessionRepository + Debug,
{
    let spy = Spy::default();
    let backend = backend.with(
        "(spy codec)",
        |store| store.with_codec(spy.clone()),
        v015::app,
    );
    no_request_loses_its_change(&backend, &FEW_RACES[..2]).await;
    a_clear_replaces_the_session_and_later_changes_apply_on_top(&backend).await;
    let cookie = backend.start().await;
    backend.seed(&cookie, "a", json!(1)).await;
    backend
        .race(&cookie, vec![("/end/flush", json!({}))], 1)
        .await;

    let encoded = spy.encoded.load(Ordering::Relaxed);
    assert!(
        encoded > 100,
        "{}: the spy encoded {encoded} records",
        backend.name
    );
    assert_eq!(
        spy.with_reserved_key.load(Ordering::Relaxed),
        0,
        "{}: of {encoded} records encoded, some held the reserved key",
        backend.name
    );
    backend.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_codec_never_sees_the_reserved_entry() {
    the_codec_never_sees_the_reserved_entry(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_the_codec_never_sees_the_reserved_entry() {
    the_codec_never_sees_the_reserved_entry(memory().await).await;
}

// ---------------------------------------------------------------------------------------------
// Scenario 7: every option on; scenario 8: tower-sessions 0.14
// ---------------------------------------------------------------------------------------------

/// Scenario 7. Scenario 1 (smaller) and 2 on a store with every option on: hashed ids, write
/// avoidance, an absolute lifetime, the per-user index with a limit of 3 sessions (every race's
/// session is the same user's: each new one ends an older one), a listed value, and
/// encryption.
#[cfg(feature = "encryption")]
async fn every_option_on(backend: Backend<PostgresStore>) {
    use tower_sessions_seaorm_store::codec::{Encrypted, KeyRing};

    let mut backend = backend.with(
        "(every option on)",
        |store| {
            store
                .with_hashed_ids()
                .with_touch_after(Duration::from_secs(60))
                .with_absolute_lifetime(Duration::from_secs(12 * 60 * 60))
                .with_user_key("user_id")
                .unwrap()
                .with_max_sessions_per_user(3)
                .unwrap()
                .with_listed_values(["device"])
                .unwrap()
                .with_codec(Encrypted::new(MessagePackCodec, KeyRing::new(1, [7; 32])))
        },
        v015::app,
    );
    if let Some(table) = &mut backend.table {
        table.hashed_ids = true;
    }
    no_request_loses_its_change(&backend, FEW_RACES).await;
    a_removal_and_a_change_both_survive(&backend).await;
    let cookie = backend.start().await;
    assert!(
        backend.stored(&cookie).await.is_some(),
        "{}: the rows are found under the hashed id",
        backend.name
    );
    assert!(
        backend.a.user_sessions(USER).await.unwrap().len() <= 3,
        "{}: the per-user limit holds",
        backend.name
    );
    backend.finish().await;
}

#[cfg(feature = "encryption")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_option_on() {
    every_option_on(postgres().await).await;
}

#[cfg(feature = "encryption")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_option_on() {
    every_option_on(sqlite().await).await;
}

#[cfg(feature = "encryption")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_option_on() {
    every_option_on(mysql().await).await;
}

/// Scenario 8. Scenario 1 (smaller), 2 and 5 through tower-sessions 0.14's `SessionManagerLayer`
/// and `SessionStore` on PostgreSQL.
#[cfg(feature = "tower-sessions-014")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_tower_sessions_0_14() {
    let backend = postgres()
        .await
        .with("(tower-sessions 0.14)", |store| store, v014::app);
    no_request_loses_its_change(&backend, FEW_RACES).await;
    a_removal_and_a_change_both_survive(&backend).await;
    a_clear_replaces_the_session_and_later_changes_apply_on_top(&backend).await;
    backend.finish().await;
}
