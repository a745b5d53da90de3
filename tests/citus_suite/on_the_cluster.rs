//! What distribution itself promises: the table is spread over the workers, the cleanup is
//! batched across shards, `migrate()` is idempotent and race-safe, many clients are served at
//! once, and the statements of a session's own operations each reach one shard.

use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, DatabaseConnection},
    Id, SessionStore,
};

use crate::common::{
    citus::{citus_url, distributed_store, fresh_schema, CitusFixture},
    connect_postgres, migrate_concurrently, scalar_strings,
    suite::{in_a_day, record},
    without_base,
};

/// Whether `"<schema>"."session"` is distributed by `id`, as Citus's catalog says.
async fn distributed_by_id(conn: &DatabaseConnection, schema: &str) -> bool {
    scalar_strings(
        conn,
        "SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition \
         WHERE logicalrelid = to_regclass($1)",
        vec![format!("\"{schema}\".\"session\"").into()],
    )
    .await
        == ["id"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_distributes_the_table_by_id_over_both_workers() {
    let fixture = CitusFixture::new().await;
    assert!(distributed_by_id(&fixture.conn, &fixture.schema).await);
    let shards = fixture.shards_per_worker().await;
    assert_eq!(shards.len(), 2, "{shards:?}");

    let mut workers = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let mut rec = record(in_a_day());
        fixture.store.create(&mut rec).await.unwrap();
        let worker = scalar_strings(
            &fixture.conn,
            "SELECT nodeport::text FROM pg_dist_shard_placement \
             WHERE shardid = get_shard_id_for_distribution_column($1, $2)",
            vec![fixture.table().into(), rec.id.to_string().into()],
        )
        .await;
        *workers.entry(worker).or_insert(0) += 1;
    }
    // 100 random ids over two workers of 16 shards each: 50 expected on each; 20 is far
    // below any plausible draw.
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.values().all(|n| *n >= 20), "{workers:?}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_again_changes_nothing() {
    let fixture = CitusFixture::new().await;
    let mut rec = record(in_a_day());
    fixture.store.create(&mut rec).await.unwrap();

    fixture
        .store
        .migrate()
        .await
        .expect("a second run succeeds");
    distributed_store(fixture.conn.clone(), &fixture.schema)
        .migrate()
        .await
        .expect("a third, from another store");

    assert!(distributed_by_id(&fixture.conn, &fixture.schema).await);
    assert_eq!(
        without_base(fixture.store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_at_once_distribute_the_table_once() {
    let url = citus_url();
    let conn = connect_postgres(&url).await;
    for round in 0..3 {
        let schema = fresh_schema();
        let replica = || {
            let conn = conn.clone();
            distributed_store(conn, &schema)
        };
        migrate_concurrently(6, replica, &format!("round {round}")).await;
        assert!(distributed_by_id(&conn, &schema).await, "round {round}");
        let store = replica();
        let mut rec = record(in_a_day());
        store.create(&mut rec).await.unwrap();
        assert_eq!(without_base(store.load(&rec.id).await.unwrap()), Some(rec));
        conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cleanup_batch_deletes_up_to_its_limit_across_shards() {
    let fixture = CitusFixture::new().await;
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
    for rec in &live {
        assert_eq!(
            without_base(fixture.store.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec)
        );
    }
    fixture.finish().await;
}

/// Without `SKIP LOCKED`, a cleaner whose batch picked rows another cleaner deleted first gets
/// a short batch and ends its run (the next run finds the rest): racing cleaners fail nothing,
/// delete each row once between them, and leave only what one more run deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanups_racing_on_several_pools_delete_each_expired_row_once() {
    let fixture = CitusFixture::new().await;
    let past = OffsetDateTime::now_utc() - Duration::minutes(1);
    let creates: Vec<_> = (0..400)
        .map(|_| {
            let store = fixture.store.clone();
            tokio::spawn(async move { store.create(&mut record(past)).await })
        })
        .collect();
    for create in creates {
        create.await.unwrap().unwrap();
    }
    let mut live = record(in_a_day());
    fixture.store.create(&mut live).await.unwrap();

    let mut cleaners = Vec::new();
    for _ in 0..4 {
        let store = distributed_store(connect_postgres(&fixture.url).await, &fixture.schema)
            .with_cleanup_batch_size(25);
        cleaners.push(tokio::spawn(async move {
            store.delete_expired_sessions().await
        }));
    }
    let mut deleted = 0;
    for cleaner in cleaners {
        deleted += cleaner.await.unwrap().expect("no cleanup fails");
    }

    let rest = fixture.store.delete_expired_sessions().await.unwrap();
    assert_eq!(
        deleted + rest,
        400,
        "{deleted} by the racing cleaners, then {rest}"
    );
    assert_eq!(
        scalar_strings(
            &fixture.conn,
            &format!("SELECT count(*)::text FROM {}", fixture.table()),
            vec![]
        )
        .await,
        ["1"]
    );
    assert_eq!(
        without_base(fixture.store.load(&live.id).await.unwrap()),
        Some(live)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_removes_expired_sessions() {
    let fixture = CitusFixture::new().await;
    let mut expired = record(OffsetDateTime::now_utc() - Duration::seconds(1));
    fixture.store.create(&mut expired).await.unwrap();
    let mut live = record(in_a_day());
    fixture.store.create(&mut live).await.unwrap();

    let task = fixture
        .store
        .spawn_cleanup_task(StdDuration::from_millis(50));
    let repository = fixture.store.repository().clone();
    let gone = async {
        loop {
            let row = repository
                .find_unexpired(
                    &expired.id.to_string(),
                    OffsetDateTime::UNIX_EPOCH,
                    None,
                    None,
                )
                .await
                .unwrap();
            if row.is_none() {
                break;
            }
            // Real time: the task runs on its own period.
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(StdDuration::from_secs(10), gone)
        .await
        .expect("the task deletes the expired row within 10 s");
    task.shutdown().await;

    assert_eq!(
        without_base(fixture.store.load(&live.id).await.unwrap()),
        Some(live)
    );
    fixture.finish().await;
}

/// 32 clients on two pools at once, each through its own sessions: create, load, save, load,
/// delete, twenty times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_are_each_served_their_own_sessions() {
    let fixture = CitusFixture::new().await;
    let other = distributed_store(connect_postgres(&fixture.url).await, &fixture.schema);
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let store = if client % 2 == 0 {
                fixture.store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                for round in 0..20 {
                    let mut rec = record(in_a_day());
                    store.create(&mut rec).await.unwrap();
                    assert_eq!(
                        without_base(store.load(&rec.id).await.unwrap()).as_ref(),
                        Some(&rec)
                    );
                    rec.data
                        .insert("round".into(), serde_json::json!([client, round]));
                    store.save(&rec).await.unwrap();
                    assert_eq!(
                        without_base(store.load(&rec.id).await.unwrap()).as_ref(),
                        Some(&rec)
                    );
                    store.delete(&rec.id).await.unwrap();
                    assert_eq!(store.load(&rec.id).await.unwrap(), None);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("no client failed");
    }
    fixture.finish().await;
}

/// A connection that refuses every statement Citus would run on more than one shard
/// (`citus.multi_task_query_log_level = error`): what runs through it reaches one shard.
async fn single_shard_only(url: &str) -> DatabaseConnection {
    let separator = if url.contains('?') { '&' } else { '?' };
    connect_postgres(&format!(
        "{url}{separator}options=-c%20citus.multi_task_query_log_level%3Derror"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_own_operations_each_reach_one_shard() {
    let fixture = CitusFixture::new().await;
    let store = distributed_store(single_shard_only(&fixture.url).await, &fixture.schema);

    let mut rec = record(in_a_day());
    store.create(&mut rec).await.expect("create: one shard");
    store.load(&rec.id).await.expect("load: one shard");
    rec.data.insert("seen".into(), serde_json::json!(true));
    store.save(&rec).await.expect("save: one shard");
    let unknown = Id::default();
    store
        .save(&record_with(unknown))
        .await
        .expect("save of a missing id: one shard");
    store.delete(&rec.id).await.expect("delete: one shard");
    store
        .repository()
        .delete_by_user_and_id("42", &rec.id.to_string())
        .await
        .expect("signing out one device, once its id is listed: one shard");

    // A user's sessions and expired rows are found on every shard: refused here.
    let indexed = store.clone().with_user_key("user_id").unwrap();
    let err = indexed.user_sessions("42").await.unwrap_err().to_string();
    assert!(err.contains("multi-task"), "{err}");
    let err = store
        .delete_expired_sessions()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("multi-task"), "{err}");
    fixture.finish().await;
}

fn record_with(id: Id) -> tower_sessions_seaorm_store::Record {
    let mut rec = record(in_a_day());
    rec.id = id;
    rec
}

#[tokio::test]
async fn partitions_and_unlogged_are_refused_with_a_distributed_table() {
    let conn = connect_postgres(&citus_url()).await;
    let distributed = distributed_store(conn.clone(), "ts_refused");
    let err = distributed
        .clone()
        .with_hash_partitions(4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Citus shards the table itself"), "{err}");
    let err = distributed.with_unlogged_table().unwrap_err().to_string();
    assert!(err.contains("UNLOGGED"), "{err}");
    let err = tower_sessions_seaorm_store::PostgresStore::new(conn)
        .with_hash_partitions(4)
        .unwrap()
        .with_distributed_table()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Citus shards the table itself"), "{err}");
}

#[cfg(feature = "cache")]
#[tokio::test]
async fn a_listening_cache_is_refused_saying_why() {
    let url = citus_url();
    let store = distributed_store(connect_postgres(&url).await, "ts_refused");
    let err = store
        .with_cache(tower_sessions_seaorm_store::Cache::listening(url.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NOTIFY never reaches a listener on the coordinator"),
        "{err}"
    );
    #[cfg(feature = "tokio-postgres")]
    {
        let lean = tower_sessions_seaorm_store::LeanPostgresStore::new(
            crate::common::lean::lean_pool(&url),
        )
        .with_distributed_table()
        .unwrap();
        let err = lean
            .with_cache(tower_sessions_seaorm_store::Cache::listening(url))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Citus"), "{err}");
    }
}
