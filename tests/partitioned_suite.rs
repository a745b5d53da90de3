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
    repository::SessionRepository,
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
        let mut rec = record(now - Duration::minutes(n + 1));
        fixture.store.create(&mut rec).await.unwrap();
    }
    let mut live = Vec::new();
    for _ in 0..8 {
        let mut rec = record(in_a_day());
        fixture.store.create(&mut rec).await.unwrap();
        live.push(rec);
    }
    let expired = fixture.expired_rows_per_partition().await;
    assert_eq!(expired.len(), usize::from(PARTITIONS), "{expired:?}");

    let repository = fixture.store.repository();
    let mut batches = Vec::new();
    loop {
        let deleted = repository
            .delete_expired_batch(OffsetDateTime::now_utc(), None, None, 7)
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
            crate::common::without_base(fixture.store.load(&rec.id).await.unwrap()).as_ref(),
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
            .create(&mut record(now - Duration::seconds(n + 1)))
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
    assert_eq!(
        crate::common::without_base(fixture.store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
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
    assert_eq!(history.len(), 7, "every migration recorded, once each");
    let mut rec = record(in_a_day());
    fixture.store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(fixture.store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
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

/// A store on `"<schema>"."<table>"` in `partitions` partitions, made by the store's own
/// `migrate()`.
async fn migrated_by_the_store(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
    schema: &str,
    table: &str,
    partitions: u16,
) -> tower_sessions_seaorm_store::PostgresStore {
    let store = tower_sessions_seaorm_store::PostgresStore::new(conn.clone())
        .with_schema_name(schema)
        .unwrap()
        .with_table_name(table)
        .unwrap()
        .with_hash_partitions(partitions)
        .unwrap();
    store
        .migrate()
        .await
        .unwrap_or_else(|err| panic!("{} bytes, {partitions} partitions: {err}", table.len()));
    store
}

/// The names of the partitions attached to `"<schema>"."<table>"`.
async fn partitions_of(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
    schema: &str,
    table: &str,
) -> Vec<String> {
    common::scalar_strings(
        conn,
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass($1) ORDER BY 1",
        vec![format!("\"{schema}\".\"{table}\"").into()],
    )
    .await
}

/// Creates, loads and deletes sessions on `store`.
async fn serves_sessions(store: &tower_sessions_seaorm_store::PostgresStore) {
    for _ in 0..20 {
        let mut rec = record(in_a_day());
        store.create(&mut rec).await.unwrap();
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
            Some(&rec)
        );
    }
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

/// Drops `schema`, its partitions first, 64 per statement: one `DROP SCHEMA … CASCADE` of 1,024
/// partitions (each with its indexes and TOAST table) takes over 7,000 locks in one
/// transaction, beyond the server's shared lock table (64 × `max_connections` by default) when
/// other tests hold locks too ("out of shared memory").
async fn drop_schema(
    conn: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection,
    schema: &str,
) {
    let partitions = common::scalar_strings(
        conn,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
        vec![schema.to_owned().into()],
    )
    .await;
    for chunk in partitions.chunks(64) {
        conn.execute_unprepared(&format!("DROP TABLE IF EXISTS {}", chunk.join(", ")))
            .await
            .unwrap();
    }
    conn.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_byte_table_name_in_128_partitions_migrates_and_serves_sessions() {
    // Partition names of 63 bytes that differ only in their last byte gave PostgreSQL array
    // type names (`_<name>`, cut to 63 bytes) that collide: "could not form array type name".
    let conn = common::connect_postgres(&common::database_url()).await;
    let schema = common::unique_name("ts_part");
    let table = format!("s{}", "x".repeat(59));
    let store = migrated_by_the_store(&conn, &schema, &table, 128).await;

    let partitions = partitions_of(&conn, &schema, &table).await;
    assert_eq!(partitions.len(), 128);
    assert!(
        partitions.iter().all(|name| name.len() <= 62),
        "{partitions:?}"
    );
    serves_sessions(&store).await;
    drop_schema(&conn, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_allowed_names_work_in_the_most_partitions() {
    let conn = common::connect_postgres(&common::database_url()).await;
    let schema = format!("{}_", common::unique_name("ts_longest"));
    let schema = format!("{schema}{}", "s".repeat(63 - schema.len()));
    let table = "t".repeat(63);
    let store = migrated_by_the_store(
        &conn,
        &schema,
        &table,
        tower_sessions_seaorm_store::migration::MAX_HASH_PARTITIONS,
    )
    .await;

    let partitions = partitions_of(&conn, &schema, &table).await;
    assert_eq!(partitions.len(), 1024);
    serves_sessions(&store.clone().with_user_key("user_id").unwrap()).await;
    drop_schema(&conn, &schema).await;
}

#[tokio::test]
async fn partitions_named_by_an_earlier_release_are_kept_when_the_migration_runs_again() {
    // Earlier releases named a partition `<table>_p<k>` up to 63 bytes; this one shortens
    // names past 62. Running the migration again on such a table must not add a second
    // partition for a remainder (PostgreSQL would refuse it as overlapping).
    let conn = common::connect_postgres(&common::database_url()).await;
    let schema = common::unique_name("ts_part");
    let table = format!("s{}", "x".repeat(59));
    let parent = format!("\"{schema}\".\"{table}\"");
    conn.execute_unprepared(&format!(
        "CREATE SCHEMA \"{schema}\"; \
         CREATE TABLE {parent} (\"id\" text NOT NULL PRIMARY KEY, \"data\" bytea NOT NULL, \
         \"expiry_date\" timestamptz NOT NULL) PARTITION BY HASH (\"id\")"
    ))
    .await
    .unwrap();
    for k in 0..4 {
        conn.execute_unprepared(&format!(
            "CREATE TABLE \"{schema}\".\"{table}_p{k}\" PARTITION OF {parent} \
             FOR VALUES WITH (MODULUS 4, REMAINDER {k})"
        ))
        .await
        .unwrap();
    }
    let before = partitions_of(&conn, &schema, &table).await;

    CreatePartitionedSessionTable::new(&schema, &table, 4)
        .up(&SchemaManager::new(&conn))
        .await
        .expect("the migration runs again on the old names");

    assert_eq!(partitions_of(&conn, &schema, &table).await, before);
    assert!(before.iter().all(|name| name.len() == 63), "{before:?}");
    drop_schema(&conn, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_migrations_of_a_partitioned_table_all_succeed() {
    // The races here raise SQLSTATE 42710 among others ("type … already exists": a
    // partition's row type committed by the winner), which must still count as lost races.
    let conn = common::connect_postgres(&common::database_url()).await;
    for round in 0..3 {
        let schema = common::unique_name("ts_part");
        let table = format!("s{}", "x".repeat(59));
        let replica = || {
            tower_sessions_seaorm_store::PostgresStore::new(conn.clone())
                .with_schema_name(&schema)
                .unwrap()
                .with_table_name(&table)
                .unwrap()
                .with_hash_partitions(16)
                .unwrap()
        };
        common::migrate_concurrently(8, replica, &format!("round {round}")).await;
        assert_eq!(partitions_of(&conn, &schema, &table).await.len(), 16);
        serves_sessions(&replica()).await;
        drop_schema(&conn, &schema).await;
    }
}
