//! The behavioural suite on PostgreSQL (`DATABASE_URL`).

mod common;

behaviour_suite!(common::PgFixture::new());
