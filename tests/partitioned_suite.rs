//! A hash-partitioned session table (`CreatePartitionedSessionTable`) on PostgreSQL: the
//! behavioural suite, then what partitioning itself promises.

mod common;

use common::{
    partitioned::{PartitionedFixture, PARTITIONS},
    suite::{in_a_day, record},
};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        CreatePartitionedSessionTable,
    },
    ports::SessionRepository,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
    SessionStore,
};

behaviour_suite!(common::partitioned::PartitionedFixture::new());
features_suite!(crate::common::partitioned::PartitionedFixture::new());

#[tokio::test]
async fn the_table_is_split_into_the_requested_hash_partitions_named_after_it() {
    let fixture = PartitionedFixture::with_partitions(3).await;
    assert_eq!(
        fixture.attached_partitions().await,
        ["session_p0", "session_p1", "session_p2"]
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_every_partition() {
    let fixture = PartitionedFixture::new().await;
    for _ in 0..200 {
        let mut rec = record(in_a_day());
        fixture.store.create(&mut rec).await.unwrap();
    }

    let counts = fixture.rows_per_partition().await;
    assert_eq!(counts.len(), usize::from(PARTITIONS), "{counts:?}");
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 200);
    // 200 random ids over 4 partitions: 50 expected in each; 20 is far below any plausible draw.
    assert!(counts.iter().all(|(_, n)| *n >= 20), "{counts:?}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cleanup_batch_deletes_up_to_its_limit_across_partitions() {
    let fixture = PartitionedFixture::new().await;
    let now = OffsetDateTime::now_utc();
    for n in 0..60 {
        let rec = record(now - Duration::minutes(n + 1));
        fixture.store.save(&rec).await.unwrap();
    }
    let mut live = Vec::new();
    for _ in 0..8 {
        let rec = record(in_a_day());
        fixture.store.save(&rec).await.unwrap();
        live.push(rec);
    }
    let expired = fixture.expired_rows_per_partition().await;
    assert_eq!(expired.len(), usize::from(PARTITIONS), "{expired:?}");

    let repository = fixture.store.repository();
    let mut batches = Vec::new();
    loop {
        let deleted = repository
            .delete_expired_batch(OffsetDateTime::now_utc(), 7)
            .await
            .unwrap();
        batches.push(deleted);
        if deleted == 0 {
            break;
        }
    }

    assert_eq!(batches, [7, 7, 7, 7, 7, 7, 7, 7, 4, 0]);
    assert!(fixture.expired_rows_per_partition().await.is_empty());
    for rec in &live {
        assert_eq!(
            fixture.store.load(&rec.id).await.unwrap().as_ref(),
            Some(rec)
        );
    }
    fixture.finish().await;
}

#[tokio::test]
async fn the_store_cleanup_empties_every_partition_of_expired_rows() {
    let fixture = PartitionedFixture::new().await;
    let store = fixture.store.clone().with_cleanup_batch_size(5);
    let now = OffsetDateTime::now_utc();
    for n in 0..33 {
        store
            .save(&record(now - Duration::seconds(n + 1)))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 33);
    assert!(fixture.rows_per_partition().await.is_empty());
    fixture.finish().await;
}

#[tokio::test]
async fn migrating_again_changes_nothing() {
    let fixture = PartitionedFixture::new().await;
    let mut rec = record(in_a_day());
    fixture.store.create(&mut rec).await.unwrap();

    fixture
        .migrate_again()
        .await
        .expect("a second run succeeds");

    assert_eq!(fixture.attached_partitions().await.len(), 4);
    assert_eq!(fixture.store.load(&rec.id).await.unwrap(), Some(rec));
    fixture.finish().await;
}

#[tokio::test]
async fn the_stores_migrate_after_it_keeps_the_partitions_and_records_its_history() {
    let fixture = PartitionedFixture::new().await;
    fixture.store.migrate().await.unwrap();

    assert_eq!(fixture.attached_partitions().await.len(), 4);
    let history = fixture
        .conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT version FROM \"{}\".seaql_migrations_tower_sessions",
                fixture.schema
            ),
        ))
        .await
        .unwrap();
    assert_eq!(history.len(), 3, "every migration recorded, once each");
    let mut rec = record(in_a_day());
    fixture.store.create(&mut rec).await.unwrap();
    assert_eq!(fixture.store.load(&rec.id).await.unwrap(), Some(rec));
    fixture.finish().await;
}

#[tokio::test]
async fn an_unpartitioned_table_in_the_way_is_refused_with_what_to_do() {
    let plain = common::PgFixture::new().await;
    let err = CreatePartitionedSessionTable::new(&plain.schema, "session", 4)
        .up(&SchemaManager::new(&plain.conn))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists and is not partitioned"), "{err}");
    assert!(err.contains("SCALING.md"), "{err}");
    plain.finish().await;
}

#[tokio::test]
async fn zero_partitions_are_refused() {
    let conn = common::connect_postgres(&common::database_url()).await;
    let schema = common::unique_name("ts_part");
    let err = CreatePartitionedSessionTable::new(&schema, "session", 0)
        .up(&SchemaManager::new(&conn))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 to 1024 partitions, not 0"), "{err}");
    let _ = conn
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}
