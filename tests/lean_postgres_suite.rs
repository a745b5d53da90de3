//! The behavioural suite (and the features suite: per-user index, write avoidance, hashed ids) on the tokio-postgres repository (`LeanPostgresStore`, feature
//! `tokio-postgres`) against PostgreSQL at `DATABASE_URL`.
#![cfg(feature = "tokio-postgres")]

mod common;

behaviour_suite!(common::lean::LeanFixture::new());
features_suite!(crate::common::lean::LeanFixture::new());

mod contract {
    crate::repository_contract!(crate::common::lean::LeanFixture::new());
}

use tower_sessions_seaorm_store::{LeanPostgresStore, SessionStore};

/// Rows one adapter writes, the other reads: both run the same statements on the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_and_the_seaorm_store_share_a_table() {
    let fixture = common::lean::LeanFixture::new().await;
    let seaorm = tower_sessions_seaorm_store::PostgresStore::new(fixture.conn.clone())
        .with_schema_name(&fixture.schema)
        .unwrap();
    let lean: &LeanPostgresStore = &fixture.store;

    let mut written_by_lean = common::suite::record(common::suite::in_a_day());
    lean.create(&mut written_by_lean).await.unwrap();
    assert_eq!(
        crate::common::without_base(seaorm.load(&written_by_lean.id).await.unwrap()),
        Some(written_by_lean.clone())
    );

    let mut written_by_seaorm = common::suite::record(common::suite::in_a_day());
    seaorm.create(&mut written_by_seaorm).await.unwrap();
    assert_eq!(
        crate::common::without_base(lean.load(&written_by_seaorm.id).await.unwrap()),
        Some(written_by_seaorm)
    );
    fixture.finish().await;
}

#[tokio::test]
async fn a_missing_table_is_a_backend_error_that_names_the_relation() {
    let pool = common::lean::lean_pool(&common::database_url());
    let store = LeanPostgresStore::new(pool)
        .with_schema_name(&common::unique_name("ts_lean_missing"))
        .unwrap();
    let err = store
        .load(&tower_sessions_seaorm_store::Id::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            tower_sessions_seaorm_store::session_store::Error::Backend(_)
        ),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("42P01"), "{message}");
}
