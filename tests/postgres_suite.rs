//! The behavioural suite (and the features suite: per-user index, write avoidance, hashed ids) on PostgreSQL (`DATABASE_URL`).

mod common;

behaviour_suite!(common::PgFixture::new());
features_suite!(crate::common::PgFixture::new());
