//! The outside world behind the ports: codecs and the SeaORM repository.

pub mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
#[cfg(all(feature = "cache", feature = "postgres"))]
pub(crate) mod pg_listener;
pub mod sea_orm;
pub(crate) mod sql;
#[cfg(feature = "tokio-postgres")]
pub mod tokio_postgres;
