//! # tower-sessions-seaorm-store
//!
//! A [tower-sessions](https://docs.rs/tower-sessions) 0.15 session store on
//! [SeaORM](https://www.sea-ql.org/SeaORM/) 2, sharing the connection pool your application
//! already has.
//!
//! - **One statement per operation.** `create` is `INSERT … ON CONFLICT (id) DO NOTHING`,
//!   `save` an `UPDATE` of the stored row (never an insert: a session logged out while a
//!   request was in flight stays logged out), `load` one `SELECT` that never returns an expired
//!   session, `delete` one `DELETE`. No transactions, no existence checks.
//! - **Correct under concurrency.** Id collisions are detected by the database, never by a
//!   check-then-insert; `migrate()` is safe when every replica runs it at start-up.
//! - **Independent of the connection's time zone.** Expiry is compared with a bound
//!   `timestamptz`, never with the server's `now()`.
//! - **Compatible.** The default MessagePack codec writes exactly what `tower-sessions-sqlx-store`
//!   writes, into the same `"tower_sessions"."session"` table, so switching stores logs nobody
//!   out.
//!
//! ## Quick start
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use time::Duration;
//! use tower_sessions::{Expiry, Session, SessionManagerLayer};
//! use tower_sessions_seaorm_store::{sea_orm::Database, PostgresStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Database::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let store = PostgresStore::new(conn);
//! store.migrate().await?;
//!
//! // Delete expired sessions every minute; the task survives database errors.
//! let cleanup = store.spawn_cleanup_task(std::time::Duration::from_secs(60));
//!
//! let layer = SessionManagerLayer::new(store).with_expiry(Expiry::OnInactivity(Duration::days(7)));
//! let app: Router = Router::new()
//!     .route("/", get(|session: Session| async move {
//!         let visits: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
//!         session.insert("visits", visits + 1).await.ok();
//!         format!("visit {}", visits + 1)
//!     }))
//!     .layer(layer);
//! # let _ = app;
//! # cleanup.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Where sessions live
//!
//! By default in `"tower_sessions"."session"` (`id text primary key`, `data bytea`,
//! `expiry_date timestamptz`, indexed on `expiry_date`). Choose another place with
//! [`with_schema_name`](RepositoryStore::with_schema_name) and
//! [`with_table_name`](RepositoryStore::with_table_name); names are validated once, there, and
//! quoted in every statement:
//!
//! ```no_run
//! # use tower_sessions_seaorm_store::{sea_orm::DatabaseConnection, PostgresStore, SeaOrmStoreError};
//! # fn build(conn: DatabaseConnection) -> Result<PostgresStore, SeaOrmStoreError> {
//! let store = PostgresStore::new(conn)
//!     .with_schema_name("auth")?
//!     .with_table_name("web_session")?;
//! # Ok(store) }
//! ```
//!
//! ## Backends
//!
//! [`PostgresStore`] (feature `postgres`, default), [`SqliteStore`] (feature `sqlite`) and
//! [`MySqlStore`] (feature `mysql`, MySQL and MariaDB) are one store writing each backend's SQL;
//! see [`adapters::sea_orm::SqlDialect`]. A store given a connection to another backend fails
//! with an error naming both, at `migrate()` and at every operation.
//!
//! | | PostgreSQL | SQLite | MySQL / MariaDB |
//! |---|---|---|---|
//! | `data` | `bytea` | `blob` | `longblob` |
//! | `expiry_date` | `timestamptz` | `integer` µs since the epoch, UTC | `datetime(6)`, UTC |
//! | schema name | a schema | ignored | ignored (the connection's database) |
//!
//! ```no_run
//! use tower_sessions_seaorm_store::{sea_orm::Database, SqliteStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Database::connect("sqlite://sessions.db?mode=rwc").await?;
//! let store = SqliteStore::new(conn).with_table_name("web_session")?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! ## Migrations
//!
//! [`migrate`](RepositoryStore::migrate) (feature `migration`, on by default) creates what is
//! missing and records it in its own history table, `seaql_migrations_tower_sessions`, never in
//! your application's `seaql_migrations`. To manage the table with your own SeaORM `Migrator`
//! instead, add [`migration::CreateSessionTable`] and then [`migration::AddUserIndex`] to it;
//! see the [`migration`] crate.
//!
//! ## Codecs
//!
//! The `data` column holds the session record as the store's [`Codec`](ports::Codec) encodes
//! it: [`MessagePackCodec`](codec::MessagePackCodec) by default (what
//! `tower-sessions-sqlx-store` writes), [`JsonCodec`](codec::JsonCodec) to read sessions in
//! `psql`, `BincodeCodec` (feature `bincode`) if you want bincode, or a codec of your own,
//! say one that wraps another to compress, encrypt or sign its bytes. Choose it before the first
//! session is stored: rows of one codec are a `Decode` error for another.
//!
//! ```no_run
//! # #[cfg(feature = "json")]
//! # fn build(conn: tower_sessions_seaorm_store::sea_orm::DatabaseConnection) {
//! use tower_sessions_seaorm_store::{codec::JsonCodec, PostgresStore};
//!
//! let store = PostgresStore::new(conn).with_codec(JsonCodec);
//! // SELECT convert_from(data, 'UTF8')::jsonb FROM tower_sessions.session;
//! # let _: PostgresStore<JsonCodec> = store;
//! # }
//! ```
//!
//! See the [`codec`] module for the formats, and `examples/custom_codec.rs` for a codec of your
//! own.
//!
//! ## Beyond the tower-sessions contract
//!
//! Three opt-in features no other tower-sessions store has, each one builder call, on every
//! backend:
//!
//! - **A per-user index**, [`with_user_key`](RepositoryStore::with_user_key): list a user's
//!   sessions ([`user_sessions`](RepositoryStore::user_sessions)), log a user out everywhere
//!   ([`delete_user_sessions`](RepositoryStore::delete_user_sessions)), everywhere but here
//!   ([`delete_user_sessions_except`](RepositoryStore::delete_user_sessions_except)) or on one
//!   device ([`delete_user_session`](RepositoryStore::delete_user_session)).
//! - **Write avoidance**, [`with_touch_after`](RepositoryStore::with_touch_after): a save that
//!   changes no value and moves the expiry by less than the window writes nothing, decided in
//!   the save's one statement.
//! - **Ids hashed at rest**, [`with_hashed_ids`](RepositoryStore::with_hashed_ids): the table
//!   holds SHA-256s of the ids, useless to whoever reads a leaked backup.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use tower_sessions::Session;
//! use tower_sessions_seaorm_store::{sea_orm::Database, PostgresStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Database::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let store = PostgresStore::new(conn)
//!     .with_user_key("user_id")? // the session value naming the user
//!     .with_touch_after(std::time::Duration::from_secs(60))
//!     .with_hashed_ids();
//! store.migrate().await?;
//!
//! let sessions = store.clone();
//! let app: Router = Router::new().route(
//!     "/logout-other-devices",
//!     post(move |session: Session| async move {
//!         let user: Option<String> = session.get("user_id").await.ok().flatten();
//!         match (user, session.id()) {
//!             (Some(user), Some(current)) => {
//!                 match sessions.delete_user_sessions_except(&user, current).await {
//!                     Ok(ended) => format!("{ended} other sessions ended"),
//!                     Err(err) => format!("could not end the other sessions: {err}"),
//!                 }
//!             }
//!             _ => "not logged in".to_owned(),
//!         }
//!     }),
//! );
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Every operation also runs in a `debug` [tracing](https://docs.rs/tracing) span,
//! `session_store`, with its `operation`, `table`, `outcome` and `duration_us`, and never a
//! session id or session data.
//!
//! ## Cleanup
//!
//! Expired sessions are never loaded, whether or not they were deleted yet. To reclaim the space,
//! run [`spawn_cleanup_task`](RepositoryStore::spawn_cleanup_task), or call
//! [`ExpiredDeletion::delete_expired`] from your own scheduler. Cleanup deletes in batches
//! (10,000 rows a statement by default) so a large backlog never holds one long lock.
//!
//! ## When the database is away
//!
//! Every operation is bounded by an operation timeout, 5 s by default
//! ([`with_operation_timeout`](RepositoryStore::with_operation_timeout)), so requests fail fast
//! with a `Backend` error instead of waiting 30 s for the pool; the pool recovers by itself when
//! the database returns. [`health`](RepositoryStore::health) serves readiness probes:
//!
//! ```no_run
//! # async fn probe(store: &tower_sessions_seaorm_store::PostgresStore) {
//! match store.health().await {
//!     Ok(()) => println!("ready"),
//!     Err(err) => eprintln!("not ready: {err}"),
//! }
//! # }
//! ```
//!
//! ## Testing your application
//!
//! Test handlers' session behaviour without a database: build the store over an
//! [`InMemoryRepository`](testing::InMemoryRepository) (the SQL semantics, in a `HashMap`), wrap
//! it in a [`FaultyRepository`](testing::FaultyRepository) to make the database fail, slow down
//! or hang on demand, or set per-call expectations on `MockSessionRepository` (feature `mock`).
//! The [`testing`] module shows a whole handler test, and what tower-sessions does with a store
//! error (a failed load reaches the handler; a failed save becomes an empty 500).
//!
//! ```
//! use tower_sessions::SessionManagerLayer;
//! use tower_sessions_seaorm_store::{
//!     testing::{Fault, FaultyRepository, InMemoryRepository, Operation},
//!     RepositoryStore,
//! };
//!
//! let repository = FaultyRepository::new(InMemoryRepository::new());
//! let database = repository.controller();
//! let layer = SessionManagerLayer::new(RepositoryStore::from_repository(repository));
//! // ... build the app with `layer`, call it with `tower::ServiceExt::oneshot` ...
//! database.inject(Fault::unavailable().on(Operation::Save)); // every save fails from now on
//! database.clear(); // healthy again
//! # let _ = layer;
//! ```
//!
//! ## Architecture
//!
//! A small hexagon: [`domain`] holds the session record
//! ([`SessionRecord`](domain::SessionRecord)) and the rules (collision retry, expiry, batched
//! cleanup) and knows no database; [`ports`] are the two traits it needs, [`Codec`](ports::Codec) and
//! [`SessionRepository`](ports::SessionRepository); [`adapters`] implement them with SeaORM and
//! serde codecs. [`RepositoryStore`] composes them, and driving adapters implement tower-sessions' traits
//! on it (0.15's, and 0.14's with feature `tower-sessions-014`), converting each version's
//! `Record` at the edge.
//!
//! ## A leaner driver
//!
//! With feature `tokio-postgres`, `LeanPostgresStore` runs the same statements on the same
//! table through tokio-postgres and a deadpool-postgres pool, which costs less per statement
//! than SeaORM's sqlx pool (see BENCHMARKS.md): for applications whose hottest path is the
//! session lookup.
//!
//! ## Errors
//!
//! Everything fails with a [`SeaOrmStoreError`], which becomes a [`session_store::Error`] at the
//! tower-sessions seam. No error message contains session data or a session id.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
compile_error!(
    "tower-sessions-seaorm-store needs a database driver: enable at least one of the features \
     `postgres` (default), `sqlite` or `mysql`"
);

// The hexagon is the crate's inside: the rules (`domain`), the seams (`ports`) and the outside
// world (`adapters`). What users see is the flat set of names below.
mod adapters;
mod cleanup;
mod compat;
mod domain;
mod error;
mod ports;
pub mod repository;
mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use adapters::{codec, sea_orm::entity};
pub use cleanup::CleanupTask;
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
#[doc(no_inline)]
pub use deadpool_postgres;
pub use domain::{
    Operation, SessionHandle, UserSession, DEFAULT_MAX_SESSION_SIZE, DEFAULT_OPERATION_TIMEOUT,
};
pub use error::SeaOrmStoreError;
#[doc(no_inline)]
pub use sea_orm;
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
pub use store::LeanPostgresStore;
#[cfg(feature = "mysql")]
pub use store::MySqlStore;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
pub use store::RepositoryStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
// tower-sessions' own items, re-exported so that one dependency names them all; documented
// where they live.
#[doc(no_inline)]
pub use tower_sessions_core::{
    session::{Id, Record},
    session_store, ExpiredDeletion, Session, SessionStore,
};
#[cfg(feature = "migration")]
#[cfg_attr(docsrs, doc(cfg(feature = "migration")))]
pub use tower_sessions_seaorm_migration as migration;
