//! The service's rules, specified against a mocked repository.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use mockall::{predicate::eq, Sequence};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_core::session::{Id, Record};

use super::{ServicePolicy, SessionError, SessionService};
use crate::{
    codec::MessagePackCodec,
    ports::{Codec, MockSessionRepository, RepositoryError},
};

fn record(id: i128, expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id(id),
        data: [("user".to_owned(), json!("ada"))].into_iter().collect(),
        expiry_date,
    }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

fn service(repo: MockSessionRepository) -> SessionService<MockSessionRepository, MessagePackCodec> {
    SessionService::new(repo, MessagePackCodec)
}

#[tokio::test]
async fn create_inserts_once_when_the_id_is_free() {
    let mut rec = record(42, in_an_hour());
    let expected_id = rec.id.to_string();
    let expected_data = MessagePackCodec.encode(&rec).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent()
        .withf(move |id, data, _| id == expected_id && data == expected_data.as_slice())
        .times(1)
        .returning(|_, _, _| Ok(true));

    service(repo).create(&mut rec).await.unwrap();
    assert_eq!(rec.id, Id(42));
}

#[tokio::test]
async fn create_takes_a_fresh_id_when_the_id_is_taken() {
    let mut rec = record(42, in_an_hour());
    let tried = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let mut repo = MockSessionRepository::new();
    let log = Arc::clone(&tried);
    repo.expect_insert_if_absent()
        .times(2)
        .returning(move |id, data, _| {
            let mut log = log.lock().unwrap();
            log.push((id.to_owned(), data.to_vec()));
            // The first id is taken, the second is free.
            Ok(log.len() == 2)
        });
    // No expectation on upsert: overwriting the existing session would fail the test.

    service(repo).create(&mut rec).await.unwrap();

    let tried = tried.lock().unwrap();
    assert_eq!(tried[0].0, Id(42).to_string());
    assert_ne!(rec.id, Id(42), "the record must carry the fresh id");
    assert_eq!(tried[1].0, rec.id.to_string());
    // The second attempt stored the record under its new id, not the old bytes.
    let stored = MessagePackCodec.decode(&tried[1].1).unwrap();
    assert_eq!(stored, rec);
}

#[tokio::test]
async fn create_gives_up_after_the_configured_attempts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent().returning(move |_, _, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(false)
    });
    let service = service(repo).with_policy(ServicePolicy {
        max_create_attempts: 3,
        ..ServicePolicy::default()
    });

    let err = service
        .create(&mut record(1, in_an_hour()))
        .await
        .unwrap_err();

    assert!(
        matches!(err, SessionError::IdsExhausted { attempts: 3 }),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn create_reports_a_repository_failure_without_retrying() {
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent()
        .times(1)
        .returning(|_, _, _| Err(RepositoryError::Unavailable("connection refused".into())));

    let err = service(repo)
        .create(&mut record(1, in_an_hour()))
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        SessionError::Repository(RepositoryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn save_is_one_upsert_of_the_encoded_record() {
    let rec = record(7, in_an_hour());
    let expected = MessagePackCodec.encode(&rec).unwrap();
    let expiry = rec.expiry_date;
    let mut repo = MockSessionRepository::new();
    repo.expect_upsert()
        .withf(move |id, data, at| {
            id == Id(7).to_string() && data == expected.as_slice() && *at == expiry
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    service(repo).save(&rec).await.unwrap();
}

#[tokio::test]
async fn load_asks_for_rows_unexpired_at_now() {
    let now = OffsetDateTime::now_utc();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .with(eq(Id(9).to_string()), eq(now))
        .times(1)
        .returning(|_, _| Ok(None));

    assert_eq!(service(repo).load_at(&Id(9), now).await.unwrap(), None);
}

#[tokio::test]
async fn load_returns_the_decoded_record() {
    let rec = record(9, in_an_hour());
    let bytes = MessagePackCodec.encode(&rec).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _| Ok(Some(bytes.clone())));

    assert_eq!(service(repo).load(&Id(9)).await.unwrap(), Some(rec));
}

#[tokio::test]
async fn load_never_returns_a_record_whose_own_expiry_has_passed() {
    // A row whose expiry column says "live" but whose encoded record expired (say, edited by
    // hand) is treated as expired.
    let now = OffsetDateTime::now_utc();
    let bytes = MessagePackCodec
        .encode(&record(9, now - Duration::seconds(1)))
        .unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _| Ok(Some(bytes.clone())));

    assert_eq!(service(repo).load_at(&Id(9), now).await.unwrap(), None);
}

#[tokio::test]
async fn load_treats_an_expiry_equal_to_now_as_expired() {
    let now = OffsetDateTime::now_utc();
    let bytes = MessagePackCodec.encode(&record(9, now)).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _| Ok(Some(bytes.clone())));

    assert_eq!(service(repo).load_at(&Id(9), now).await.unwrap(), None);
}

#[tokio::test]
async fn load_of_undecodable_bytes_is_a_decode_error() {
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(|_, _| Ok(Some(vec![0xc1, 0x00, 0xff])));

    let err = service(repo).load(&Id(9)).await.unwrap_err();
    assert!(matches!(err, SessionError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn delete_passes_the_id_through() {
    let mut repo = MockSessionRepository::new();
    repo.expect_delete_by_id()
        .with(eq(Id(5).to_string()))
        .times(1)
        .returning(|_| Ok(()));

    service(repo).delete(&Id(5)).await.unwrap();
}

#[tokio::test]
async fn delete_expired_runs_batches_until_a_short_one() {
    let now = OffsetDateTime::now_utc();
    let mut seq = Sequence::new();
    let mut repo = MockSessionRepository::new();
    for deleted in [10, 10, 3] {
        repo.expect_delete_expired_batch()
            .with(eq(now), eq(10))
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| Ok(deleted));
    }
    let service = service(repo).with_policy(ServicePolicy {
        cleanup_batch_size: 10,
        ..ServicePolicy::default()
    });

    assert_eq!(service.delete_expired_at(now).await.unwrap(), 23);
}

#[tokio::test]
async fn delete_expired_stops_at_the_first_error() {
    let mut repo = MockSessionRepository::new();
    repo.expect_delete_expired_batch()
        .times(1)
        .returning(|_, _| Err(RepositoryError::Statement("relation does not exist".into())));

    let err = service(repo).delete_expired().await.unwrap_err();
    assert!(matches!(
        err,
        SessionError::Repository(RepositoryError::Statement(_))
    ));
}

#[test]
fn a_policy_below_one_is_raised_to_one() {
    let service = service(MockSessionRepository::new()).with_policy(ServicePolicy {
        max_create_attempts: 0,
        cleanup_batch_size: 0,
    });
    assert_eq!(
        service.policy(),
        ServicePolicy {
            max_create_attempts: 1,
            cleanup_batch_size: 1
        }
    );
}
