//! A second PostgreSQL repository, on tokio-postgres and deadpool-postgres (feature
//! `tokio-postgres`): the same table, the same statements, a leaner driver.
//!
//! SeaORM's sqlx pool costs more per statement than tokio-postgres with prepared statements
//! (see BENCHMARKS.md). Applications whose hottest path is the session lookup can keep SeaORM for
//! everything else and give the store a small deadpool of its own; the rows are the same, so the
//! two adapters can even share one table.
//!
//! This adapter creates no tables: create the table with
//! [`PostgresStore::migrate`](crate::PostgresStore::migrate) on a SeaORM connection, or add every
//! step of the migration crate's `migrations()` to your own `Migrator` (`CreateSessionTable`,
//! `AddUserIndex`, `ExactKeys`, `AddSessionTimes`, `InsertInstantDefaults`, `AddVersion`,
//! `AddLongLived`): its writes need the columns of all of them.

mod cancel;
mod errors;
mod repository;

pub(crate) use cancel::CancelTls;
pub use repository::TokioPostgresRepository;
