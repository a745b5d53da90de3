//! The outside world behind the ports: codecs, the SQL repository and its two drivers (SeaORM,
//! tokio-postgres), the read cache, and the testing kit's repositories.

#[cfg(feature = "cache")]
pub(crate) mod cache;
pub mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod sea_orm;
pub(crate) mod sql;
#[cfg(feature = "tokio-postgres")]
pub mod tokio_postgres;
