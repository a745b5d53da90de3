//! The repository contract on PostgreSQL (`DATABASE_URL`), operation by operation: the
//! reference the in-memory repository is held to.

mod common;

repository_contract!(common::PgFixture::new());
