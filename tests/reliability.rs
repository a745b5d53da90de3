//! Reliability under faults and bad input, against real PostgreSQL: restarts under traffic, an
//! exhausted pool, contention, corrupt rows, oversized sessions, and logs free of secrets.
//! RELIABILITY.md maps each figure to the test here that proves it.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{suite::record, throwaway_pg::ThrowawayPostgres, PgFixture};
use serde_json::json;
use time::OffsetDateTime;
use tower_sessions_seaorm_store::{
    repository::SessionRepository,
    sea_orm::{ConnectOptions, ConnectionTrait, Database},
    session_store, Id, PostgresStore, Record, SessionStore,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_traffic_loses_no_acknowledged_save_and_needs_no_application_restart() {
    let pg = ThrowawayPostgres::start();
    let mut options = ConnectOptions::new(pg.url());
    options
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .sqlx_logging(false);
    let store = PostgresStore::new(Database::connect(options).await.unwrap())
        .with_operation_timeout(Some(Duration::from_secs(2)));
    store.migrate().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let stop = Arc::clone(&stop);
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                let mut rec = record(common::suite::in_a_day());
                rec.data.insert("n".into(), json!(0));
                store
                    .create(&mut rec)
                    .await
                    .expect("the first save, before the outage");
                let mut acknowledged = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    rec.data.insert("n".into(), json!(n));
                    match store.save(&rec).await {
                        Ok(()) => acknowledged = n,
                        Err(session_store::Error::Backend(_)) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            // Real time: a client backing off while the database restarts.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(other) => panic!("an outage is a Backend error, not {other:?}"),
                    }
                    let _ = store.load(&rec.id).await;
                }
                (rec.id, acknowledged)
            })
        })
        .collect();

    // Real time is the point: traffic runs before, during and after a real restart.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.resume();
    let resumed = Instant::now();
    // Traffic goes on after the restart until every worker has been acknowledged again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut results = Vec::new();
    for worker in workers {
        results.push(worker.await.expect("no worker panicked"));
    }
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "the outage was seen by the traffic"
    );
    for (id, acknowledged) in results {
        let stored = store
            .load(&id)
            .await
            .expect("the store recovered by itself")
            .expect("the session survived the restart");
        assert_eq!(
            stored.data["n"],
            json!(acknowledged),
            "the last acknowledged save is the one stored"
        );
    }
    eprintln!(
        "restart under traffic: {} failed saves during the outage; checked {:?} after resume",
        failures.load(Ordering::Relaxed),
        resumed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_gives_clear_timeouts_without_deadlock_or_panic() {
    let fixture = PgFixture::new().await;
    let mut options = ConnectOptions::new(common::database_url());
    options.max_connections(1).sqlx_logging(false);
    let conn = Database::connect(options).await.unwrap();
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&fixture.schema)
        .unwrap()
        .with_operation_timeout(Some(Duration::from_millis(500)));
    let mut rec = record(common::suite::in_a_day());
    store.create(&mut rec).await.unwrap();

    // A slow statement holds the only connection.
    let hog = tokio::spawn(async move { conn.execute_unprepared("SELECT pg_sleep(2)").await });
    // Real time: the slow statement must hold the connection before the loads start.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let requests: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            let id = rec.id;
            tokio::spawn(async move { store.load(&id).await })
        })
        .collect();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        let mut errors = Vec::new();
        for request in requests {
            if let Err(err) = request.await.expect("no request panicked") {
                errors.push(err);
            }
        }
        errors
    })
    .await
    .expect("no deadlock: every request answered");
    assert_eq!(outcome.len(), 32, "every request waited on the busy pool");
    for err in &outcome {
        let message = err.to_string();
        assert!(message.contains("load timed out after 500 ms"), "{message}");
    }

    hog.await.unwrap().unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_writers_on_one_session_all_succeed() {
    let fixture = PgFixture::new().await;
    let mut base = record(common::suite::in_a_day());
    fixture.store.create(&mut base).await.unwrap();
    let writers: Vec<_> = (0..64)
        .map(|n| {
            let store = fixture.store.clone();
            let mut rec = base.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    rec.data.insert("writer".into(), json!(n));
                    rec.data.insert("round".into(), json!(round));
                    store.save(&rec).await?;
                }
                Ok::<_, session_store::Error>(())
            })
        })
        .collect();
    let mut errors = 0;
    for writer in writers {
        if writer.await.unwrap().is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, 0);
    let stored = fixture.store.load(&base.id).await.unwrap().unwrap();
    assert_eq!(
        stored.data["round"],
        json!(9),
        "some writer's last round won"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_creates_on_taken_ids_overwrite_nothing() {
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    // 100 existing sessions whose ids every create below will ask for.
    let mut existing = Vec::new();
    for n in 0..100 {
        let mut rec = record(common::suite::in_a_day());
        rec.data.insert("original".into(), json!(n));
        store.create(&mut rec).await.unwrap();
        existing.push(rec);
    }
    let taken: Arc<Vec<Id>> = Arc::new(existing.iter().map(|r| r.id).collect());

    let workers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            let taken = Arc::clone(&taken);
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(625);
                for n in 0..625 {
                    let mut rec = record(common::suite::in_a_day());
                    rec.id = taken[(w * 625 + n) % taken.len()];
                    rec.data.insert("intruder".into(), json!(true));
                    store.create(&mut rec).await.unwrap();
                    ids.push(rec.id);
                }
                ids
            })
        })
        .collect();
    let mut created = std::collections::HashSet::new();
    for worker in workers {
        created.extend(worker.await.unwrap());
    }

    assert_eq!(created.len(), 10_000, "10,000 creates, 10,000 fresh ids");
    assert!(created.iter().all(|id| !taken.contains(id)));
    for rec in &existing {
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec),
            "0 overwrites"
        );
    }
    fixture.finish().await;
}

/// A row written by some other codec: a JSON document of the record.
fn foreign_row(rec: &Record) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": rec.id.to_string(),
        "data": rec.data,
        "expiry_date": rec.expiry_date.unix_timestamp(),
    }))
    .unwrap()
}

#[tokio::test]
async fn corrupt_truncated_and_foreign_rows_are_decode_errors_or_absent_by_choice() {
    let fixture = PgFixture::new().await;
    let strict = fixture.store.clone();
    let lenient = fixture.store.clone().with_undecodable_as_absent(true);
    let repo = strict.repository();

    let genuine = record(common::suite::in_a_day());
    let encoded = rmp_serde::to_vec(&genuine).unwrap();
    let rows: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"\xc1\xc1\xc1 definitely not a record".to_vec()),
        ("truncated", encoded[..encoded.len() - 3].to_vec()),
        ("bit-flipped", {
            let mut b = encoded.clone();
            b[0] ^= 0xff;
            b
        }),
        ("foreign", foreign_row(&genuine)),
    ];
    for (what, bytes) in rows {
        let id = Id::default();
        repo.insert_if_absent(common::row(
            &id.to_string(),
            &bytes,
            common::suite::in_a_day(),
        ))
        .await
        .unwrap();
        let err = strict.load(&id).await.expect_err(what);
        assert!(
            matches!(err, session_store::Error::Decode(_)),
            "{what}: {err:?}"
        );
        assert_eq!(lenient.load(&id).await.unwrap(), None, "{what}");
    }
    fixture.finish().await;
}

#[tokio::test]
async fn a_session_over_the_size_limit_is_an_encode_error_that_gives_the_size() {
    let fixture = PgFixture::new().await;
    let store = fixture.store.clone().with_max_session_size(Some(4096));
    let mut small = record(common::suite::in_a_day());
    store.create(&mut small).await.unwrap();

    let mut big = record(common::suite::in_a_day());
    big.data.insert("blob".into(), json!("x".repeat(10_000)));
    let size = rmp_serde::to_vec(&big).unwrap().len();
    for result in [store.save(&big).await, store.create(&mut big.clone()).await] {
        match result {
            Err(session_store::Error::Encode(message)) => {
                assert!(message.contains(&format!("{size} bytes")), "{message}");
                assert!(message.contains("4096"), "{message}");
            }
            other => panic!("expected an Encode error, got {other:?}"),
        }
    }
    assert_eq!(
        store.load(&big.id).await.unwrap(),
        None,
        "nothing was written"
    );
    assert_eq!(
        crate::common::without_base(store.load(&small.id).await.unwrap()),
        Some(small)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_racing_saves_never_deletes_a_live_session() {
    let fixture = PgFixture::new().await;
    let store = fixture.store.clone().with_cleanup_batch_size(5);
    let stop = Arc::new(AtomicBool::new(false));
    let cleaner = {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut deleted = 0;
            while !stop.load(Ordering::Relaxed) {
                deleted += store.delete_expired_sessions().await.unwrap();
            }
            deleted
        })
    };
    let savers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                // A live session saved again and again, next to an expired one created each
                // round for the cleaner to delete (saves never revive an expired row, so the
                // expired rows are fresh ones).
                let mut rec = record(common::suite::in_a_day());
                store.create(&mut rec).await.unwrap();
                for round in 0..25 {
                    let expired = OffsetDateTime::now_utc() - time::Duration::seconds(1);
                    store.create(&mut record(expired)).await.unwrap();
                    rec.data.insert("round".into(), json!(round));
                    rec.expiry_date = OffsetDateTime::now_utc() + time::Duration::hours(1);
                    store.save(&rec).await.unwrap();
                }
                rec
            })
        })
        .collect();
    let mut live = Vec::new();
    for saver in savers {
        live.push(saver.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let deleted = cleaner.await.unwrap();

    for rec in &live {
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec)
        );
    }
    assert!(
        deleted > 0,
        "the cleaner deleted expired rows while the saves ran"
    );
    eprintln!("cleanup racing saves: {deleted} expired rows deleted, 0 live sessions lost");
    fixture.finish().await;
}

#[tokio::test]
async fn logs_and_errors_carry_no_session_data_and_no_session_id() {
    let (subscriber, captured) = common::log_capture::capture_everything();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = PgFixture::new().await;
    let secret = "hunter2-correct-horse-battery-staple";
    let mut rec = record(common::suite::in_a_day());
    rec.data.insert("password".into(), json!(secret));
    // SeaORM's default options: the driver logs every statement.
    let store = PostgresStore::new(Database::connect(common::database_url()).await.unwrap())
        .with_schema_name(&fixture.schema)
        .unwrap();
    store.create(&mut rec).await.unwrap();
    store.save(&rec).await.unwrap();
    store.load(&rec.id).await.unwrap();

    // A collision, a corrupt row read leniently and strictly, a size refusal, a missing table.
    let mut twin = rec.clone();
    store.create(&mut twin).await.unwrap();
    let corrupt_id = Id::default();
    let mut corrupt = rmp_serde::to_vec(&rec).unwrap();
    corrupt.truncate(corrupt.len() - 1);
    store
        .repository()
        .insert_if_absent(common::row(
            &corrupt_id.to_string(),
            &corrupt,
            common::suite::in_a_day(),
        ))
        .await
        .unwrap();
    let mut errors = vec![store.load(&corrupt_id).await.unwrap_err().to_string()];
    store
        .clone()
        .with_undecodable_as_absent(true)
        .load(&corrupt_id)
        .await
        .unwrap();
    errors.push(
        store
            .clone()
            .with_max_session_size(Some(8))
            .save(&rec)
            .await
            .unwrap_err()
            .to_string(),
    );
    let missing = PostgresStore::new(fixture.conn.clone())
        .with_schema_name(&common::unique_name("ts_nowhere"))
        .unwrap();
    errors.push(missing.save(&rec).await.unwrap_err().to_string());
    errors.push(missing.load(&rec.id).await.unwrap_err().to_string());
    store.delete(&rec.id).await.unwrap();
    store.delete_expired_sessions().await.unwrap();
    fixture.finish().await;

    let logs = captured.text();
    assert!(
        logs.contains("treating it as absent"),
        "the lenient load logged a warning"
    );
    assert!(
        logs.contains("ON CONFLICT"),
        "the driver's statement logs were captured too"
    );
    let ids: Vec<String> = [rec.id, twin.id, corrupt_id]
        .iter()
        .map(Id::to_string)
        .collect();
    for text in errors.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(secret), "session data leaked: {text}");
        for id in &ids {
            assert!(!text.contains(id.as_str()), "a session id leaked: {text}");
        }
    }
}

#[tokio::test]
async fn every_name_outside_the_safe_alphabet_is_refused() {
    let conn = common::connect_postgres(&common::database_url()).await;
    let store = PostgresStore::new(conn);
    let mut refused = 0;
    // Every single-character insertion of a non-[A-Za-z0-9_] character from a broad sample of
    // ASCII and Unicode (quotes, separators, look-alikes, controls, zero-width and RTL marks).
    let hostile: Vec<char> = (0u32..0x80)
        .filter_map(char::from_u32)
        .filter(|c| !c.is_ascii_alphanumeric() && *c != '_')
        .chain([
            'а', 'е', 'о', 'ѕ', 'і', 'ℓ', 'ｓ', '\u{200b}', '\u{200d}', '\u{202e}', '\u{feff}',
            'ß', 'é', '＂', '；',
        ])
        .collect();
    for c in hostile {
        for name in [
            format!("{c}session"),
            format!("ses{c}sion"),
            format!("session{c}"),
        ] {
            assert!(store.clone().with_table_name(&name).is_err(), "{name:?}");
            assert!(store.clone().with_schema_name(&name).is_err(), "{name:?}");
            refused += 1;
        }
    }
    assert!(store.clone().with_table_name(&"s".repeat(64)).is_err());
    assert!(store.clone().with_table_name(&"s".repeat(63)).is_ok());
    assert_eq!(
        refused,
        (65 + 15) * 3,
        "every hostile character in every position"
    );
}
