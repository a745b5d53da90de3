//! The SeaORM driver of the SQL repository: sessions in a SQL table on PostgreSQL, SQLite or
//! MySQL/MariaDB, through the application's own SeaORM connection. What it shares with the
//! tokio-postgres driver (the table, the names, the SQL, the repository itself) is in
//! [`crate::adapters::sql`].

mod dialect;
pub mod entity;
mod errors;
#[cfg(feature = "migration")]
mod migrate;
#[cfg(feature = "postgres")]
mod pg_row;
mod repository;

use crate::adapters::sql::SessionTable;
#[cfg(feature = "postgres")]
pub(crate) use pg_row::PostgresRow;
pub use repository::SeaOrmRepository;
