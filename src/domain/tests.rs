//! The store's rules, specified against a mocked repository.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use super::{merge::BASE_KEY, Policy, RepositoryStore, SessionError};
use crate::{
    adapters::{
        faulty::{Fault, FaultyRepository},
        memory::InMemoryRepository,
    },
    codec::MessagePackCodec,
    ports::{
        Codec, FoundRow, MockSessionRepository, RepositoryError, SessionId, SessionRecord,
        SessionRow, UserSessionRow,
    },
};
use mockall::{predicate::eq, Sequence};
use serde_json::json;
use time::{Duration, OffsetDateTime};

fn record(id: i128, expiry_date: OffsetDateTime) -> SessionRecord<'static> {
    SessionRecord::owned(
        SessionId(id),
        [("user".to_owned(), json!("ada"))].into_iter().collect(),
        expiry_date,
    )
}

/// A live row holding `data`, created a minute ago.
fn found(data: Vec<u8>) -> FoundRow {
    FoundRow {
        data,
        created_at: Some(OffsetDateTime::now_utc() - Duration::minutes(1)),
        version: 0,
        user_key: None,
        long_lived: Some(false),
    }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

fn service(
    repo: MockSessionRepository,
) -> RepositoryStore<MockSessionRepository, MessagePackCodec> {
    RepositoryStore::from_parts(repo, MessagePackCodec)
}

#[tokio::test]
async fn create_inserts_once_when_the_id_is_free() {
    let mut rec = record(42, in_an_hour());
    let expected_id = rec.id.to_string();
    let expected_data = MessagePackCodec.encode(&rec).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent()
        .withf(move |row| row.id == expected_id && row.data == expected_data)
        .times(1)
        .returning(|_| Ok(true));

    service(repo).create_session(&mut rec).await.unwrap();
    assert_eq!(rec.id, SessionId(42));
}

#[tokio::test]
async fn create_takes_a_fresh_id_when_the_id_is_taken() {
    let mut rec = record(42, in_an_hour());
    let tried = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let mut repo = MockSessionRepository::new();
    let log = Arc::clone(&tried);
    repo.expect_insert_if_absent()
        .times(2)
        .returning(move |row| {
            let mut log = log.lock().unwrap();
            log.push((row.id, row.data));
            // The first id is taken, the second is free.
            Ok(log.len() == 2)
        });
    // No expectation on update_if_present: touching the existing session would fail the test.

    service(repo).create_session(&mut rec).await.unwrap();

    let tried = tried.lock().unwrap();
    assert_eq!(tried[0].0, SessionId(42).to_string());
    assert_ne!(rec.id, SessionId(42), "the record must carry the fresh id");
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
    repo.expect_insert_if_absent().returning(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(false)
    });
    let service = service(repo).with_policy(|policy| {
        policy.max_create_attempts = 3;
    });

    let err = service
        .create_session(&mut record(1, in_an_hour()))
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
        .returning(|_| Err(RepositoryError::Unavailable("connection refused".into())));

    let err = service(repo)
        .create_session(&mut record(1, in_an_hour()))
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        SessionError::Database(RepositoryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn save_is_one_update_of_the_stored_row_and_never_an_insert() {
    let rec = record(7, in_an_hour());
    let expected = MessagePackCodec.encode(&rec).unwrap();
    let expiry = rec.expiry_date;
    // No expectation on insert_if_absent: a save that inserts fails the test.
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .withf(move |row, _, _| {
            row.id == SessionId(7).to_string()
                && row.data == expected
                && row.expires_at == expiry
                && row.user_key.is_none()
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));

    service(repo).save_session(&rec).await.unwrap();
}

#[tokio::test]
async fn load_asks_for_rows_unexpired_at_now() {
    let now = OffsetDateTime::now_utc();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .with(eq(SessionId(9).to_string()), eq(now), eq(None), eq(None))
        .times(1)
        .returning(|_, _, _, _| Ok(None));

    assert_eq!(
        service(repo)
            .with_clock(move || now)
            .load_session(SessionId(9))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn load_returns_the_decoded_record() {
    let rec = record(9, in_an_hour());
    let bytes = MessagePackCodec.encode(&rec).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _, _, _| Ok(Some(found(bytes.clone()))));

    let mut loaded = service(repo)
        .load_session(SessionId(9))
        .await
        .unwrap()
        .unwrap();
    // With the base its save measures changes against, and nothing else.
    assert!(loaded.data.to_mut().remove(BASE_KEY).is_some());
    assert_eq!(loaded, rec);
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
        .returning(move |_, _, _, _| Ok(Some(found(bytes.clone()))));

    assert_eq!(
        service(repo)
            .with_clock(move || now)
            .load_session(SessionId(9))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn load_treats_an_expiry_equal_to_now_as_expired() {
    let now = OffsetDateTime::now_utc();
    let bytes = MessagePackCodec.encode(&record(9, now)).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _, _, _| Ok(Some(found(bytes.clone()))));

    assert_eq!(
        service(repo)
            .with_clock(move || now)
            .load_session(SessionId(9))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn load_of_undecodable_bytes_is_a_decode_error() {
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(|_, _, _, _| Ok(Some(found(vec![0xc1, 0x00, 0xff]))));

    let err = service(repo).load_session(SessionId(9)).await.unwrap_err();
    assert!(matches!(err, SessionError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn delete_passes_the_id_through() {
    let mut repo = MockSessionRepository::new();
    repo.expect_delete_by_id()
        .with(eq(SessionId(5).to_string()))
        .times(1)
        .returning(|_| Ok(()));

    service(repo).delete_session(SessionId(5)).await.unwrap();
}

#[tokio::test]
async fn delete_expired_runs_batches_until_a_short_one() {
    let now = OffsetDateTime::now_utc();
    let mut seq = Sequence::new();
    let mut repo = MockSessionRepository::new();
    for deleted in [10, 10, 3] {
        repo.expect_delete_expired_batch()
            .with(eq(now), eq(None), eq(None), eq(10))
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _, _| Ok(deleted));
    }
    let service = service(repo).with_policy(|policy| {
        policy.cleanup_batch_size = 10;
    });

    assert_eq!(
        service
            .with_clock(move || now)
            .delete_expired_sessions()
            .await
            .unwrap(),
        23
    );
}

#[tokio::test]
async fn delete_expired_stops_at_the_first_error() {
    let mut repo = MockSessionRepository::new();
    repo.expect_delete_expired_batch()
        .times(1)
        .returning(|_, _, _, _| Err(RepositoryError::Statement("relation does not exist".into())));

    let err = service(repo).delete_expired_sessions().await.unwrap_err();
    assert!(matches!(
        err,
        SessionError::Database(RepositoryError::Statement(_))
    ));
}

#[test]
fn a_policy_below_one_is_raised_to_one() {
    let service = service(MockSessionRepository::new())
        .with_create_attempts(0)
        .with_cleanup_batch_size(0);
    assert_eq!(
        *service.policy,
        Policy {
            max_create_attempts: 1,
            cleanup_batch_size: 1,
            ..Policy::default()
        }
    );
}

/// A store over a repository whose every call takes `delay_secs` (on Tokio's clock) and then
/// answers, with an operation timeout of `timeout_secs`.
fn slow_service(
    delay_secs: u64,
    timeout_secs: Option<u64>,
) -> RepositoryStore<FaultyRepository<InMemoryRepository>, MessagePackCodec> {
    let repository = FaultyRepository::new(InMemoryRepository::new());
    let delay = std::time::Duration::from_secs(delay_secs);
    repository.controller().inject(Fault::latency(delay));
    RepositoryStore::from_parts(repository, MessagePackCodec)
        .with_operation_timeout(timeout_secs.map(std::time::Duration::from_secs))
}

fn timed_out_as(result: Result<impl std::fmt::Debug, SessionError>, expected: super::Operation) {
    match result {
        Err(SessionError::TimedOut { operation, after }) => {
            assert_eq!(operation, expected);
            assert_eq!(after, std::time::Duration::from_secs(5));
        }
        other => panic!("expected {expected} to time out, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_operation_slower_than_the_timeout_times_out_and_names_itself() {
    use super::Operation;
    let service = slow_service(60, Some(5));
    let mut rec = record(1, in_an_hour());
    timed_out_as(service.create_session(&mut rec).await, Operation::Create);
    timed_out_as(service.save_session(&rec).await, Operation::Save);
    timed_out_as(service.load_session(rec.id).await, Operation::Load);
    timed_out_as(service.delete_session(rec.id).await, Operation::Delete);
    timed_out_as(
        service.delete_expired_sessions().await,
        Operation::DeleteExpired,
    );
    timed_out_as(service.health().await, Operation::Health);
}

#[tokio::test(start_paused = true)]
async fn an_operation_within_the_timeout_succeeds() {
    let service = slow_service(4, Some(5));
    service
        .save_session(&record(1, in_an_hour()))
        .await
        .unwrap();
    service.health().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_a_timeout_an_operation_waits_as_long_as_the_repository() {
    let service = slow_service(600, None);
    service
        .save_session(&record(1, in_an_hour()))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn by_default_an_operation_times_out_after_five_seconds() {
    let repository = FaultyRepository::new(InMemoryRepository::new());
    repository.controller().inject(Fault::hang());
    let service = RepositoryStore::from_parts(repository, MessagePackCodec);
    let started = tokio::time::Instant::now();
    let err = service.load_session(SessionId(1)).await.unwrap_err();
    assert!(matches!(err, SessionError::TimedOut { .. }), "{err:?}");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn health_reports_what_the_repository_says() {
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .times(1)
        .returning(|_, _, _, _| {
            Err(RepositoryError::MissingTable(
                "relation does not exist".into(),
            ))
        });

    let err = service(repo).health().await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Database(RepositoryError::MissingTable(_))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn health_probes_an_id_no_session_can_have() {
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .withf(|id, _, _, _| id.parse::<SessionId>().is_err())
        .times(1)
        .returning(|_, _, _, _| Ok(None));

    service(repo).health().await.unwrap();
}

#[tokio::test]
async fn a_session_over_the_size_limit_is_refused_before_the_repository() {
    // No expectation: any repository call fails the test.
    let service = service(MockSessionRepository::new()).with_policy(|policy| {
        policy.max_encoded_size = Some(16);
    });
    let mut rec = record(1, in_an_hour());
    let size = MessagePackCodec.encode(&rec).unwrap().len();

    for result in [
        service.save_session(&rec).await,
        service.create_session(&mut rec).await,
    ] {
        match result {
            Err(SessionError::TooLarge { size: s, limit: 16 }) => assert_eq!(s, size),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_at_the_size_limit_is_stored() {
    let rec = record(1, in_an_hour());
    let size = MessagePackCodec.encode(&rec).unwrap().len();
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let service = service(repo).with_policy(|policy| {
        policy.max_encoded_size = Some(size);
    });

    service.save_session(&rec).await.unwrap();
}

#[tokio::test]
async fn an_undecodable_row_is_absent_when_the_policy_says_so() {
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(|_, _, _, _| Ok(Some(found(b"\xc1garbage".to_vec()))));
    let service = service(repo).with_policy(|policy| {
        policy.undecodable_as_absent = true;
    });

    assert_eq!(service.load_session(SessionId(3)).await.unwrap(), None);
}

fn indexed(
    repo: MockSessionRepository,
) -> RepositoryStore<MockSessionRepository, MessagePackCodec> {
    service(repo).with_policy(|policy| {
        policy.user_key = Some(super::UserKeyPath::new("user").unwrap());
    })
}

#[tokio::test]
async fn with_a_user_key_every_write_carries_the_sessions_user() {
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent()
        .withf(|row| row.user_key.as_deref() == Some("ada"))
        .times(1)
        .returning(|_| Ok(true));
    repo.expect_update_if_present()
        .withf(|row, _, _| row.user_key.is_none())
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let service = indexed(repo);
    let mut rec = record(1, in_an_hour()); // {"user": "ada"}
    service.create_session(&mut rec).await.unwrap();

    rec.data.to_mut().remove("user");
    service.save_session(&rec).await.unwrap();
}

#[tokio::test]
async fn per_user_operations_without_a_user_key_touch_nothing() {
    // No expectation: any repository call fails the test.
    let service = service(MockSessionRepository::new());
    assert!(matches!(
        service.user_sessions("ada").await,
        Err(SessionError::InvalidConfiguration(_))
    ));
    assert!(matches!(
        service.delete_user_sessions("ada").await,
        Err(SessionError::InvalidConfiguration(_))
    ));
}

#[tokio::test]
async fn a_user_key_over_the_limit_is_refused_before_the_repository() {
    let service = indexed(MockSessionRepository::new());
    let mut rec = record(1, in_an_hour());
    rec.data.to_mut().insert(
        "user".into(),
        json!("x".repeat(super::MAX_USER_KEY_LEN + 1)),
    );
    assert!(matches!(
        service.save_session(&rec).await,
        Err(SessionError::UserKeyTooLong {
            len: 256,
            limit: 255
        })
    ));
}

#[tokio::test]
async fn deleting_by_handle_deletes_only_the_listed_row_it_names() {
    let ids = [SessionId(1), SessionId(2)];
    let rows: Vec<_> = ids
        .iter()
        .map(|id| crate::ports::UserSessionRow {
            id: id.to_string(),
            expires_at: in_an_hour(),
            created_at: OffsetDateTime::now_utc(),
            saved_at: OffsetDateTime::now_utc(),
            listed_values: None,
            long_lived: false,
        })
        .collect();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired_by_user()
        .with(
            eq("ada".to_owned()),
            mockall::predicate::always(),
            mockall::predicate::always(),
            eq(None),
        )
        .returning(move |_, _, _, _| Ok(rows.clone()));
    // The delete names the user again, so a row that changed hands since the list is left.
    repo.expect_delete_by_user_and_id()
        .with(eq("ada"), eq(SessionId(2).to_string()))
        .times(1)
        .returning(|_, _| Ok(true));
    let service = indexed(repo);

    let handle = service.session_handle(SessionId(2));
    assert!(service.delete_user_session("ada", &handle).await.unwrap());
    let unknown = service.session_handle(SessionId(3));
    assert!(!service.delete_user_session("ada", &unknown).await.unwrap());
}

#[tokio::test]
async fn with_hashed_ids_the_repository_only_sees_hashes() {
    let hashed = super::IdStorage::Hashed.key(SessionId(5));
    let mut repo = MockSessionRepository::new();
    let expected = hashed.clone();
    repo.expect_update_if_present()
        .withf(move |row, _, _| row.id == expected)
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    repo.expect_find_unexpired()
        .with(
            eq(hashed.clone()),
            mockall::predicate::always(),
            mockall::predicate::always(),
            eq(None),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(None));
    repo.expect_delete_by_id()
        .with(eq(hashed.clone()))
        .times(1)
        .returning(|_| Ok(()));
    repo.expect_delete_by_user()
        .withf(move |user, except| user == "ada" && *except == Some(hashed.as_str()))
        .times(1)
        .returning(|_, _| Ok(0));
    let service = indexed(repo).with_policy(|policy| {
        policy.id_storage = super::IdStorage::Hashed;
        policy.user_key = Some(super::UserKeyPath::new("user").unwrap());
    });

    service
        .save_session(&record(5, in_an_hour()))
        .await
        .unwrap();
    assert_eq!(service.load_session(SessionId(5)).await.unwrap(), None);
    service.delete_session(SessionId(5)).await.unwrap();
    service
        .delete_user_sessions_except("ada", SessionId(5))
        .await
        .unwrap();
}

/// A store over `repo` whose loads find `stored` at `version`, and the record it loads.
async fn loaded(
    mut repo: MockSessionRepository,
    stored: &SessionRecord<'_>,
    version: i64,
) -> (
    RepositoryStore<MockSessionRepository, MessagePackCodec>,
    SessionRecord<'static>,
) {
    let bytes = MessagePackCodec.encode(stored).unwrap();
    repo.expect_find_unexpired()
        .times(1)
        .returning(move |_, _, _, _| {
            Ok(Some(FoundRow {
                version,
                ..found(bytes.clone())
            }))
        });
    let service = service(repo);
    let record = service.load_session(stored.id).await.unwrap().unwrap();
    (service, record)
}

#[tokio::test]
async fn a_loaded_session_is_saved_over_the_version_it_was_loaded_at() {
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .withf(|row, version, _| {
            let saved = MessagePackCodec.decode(&row.data).unwrap();
            *version == Some(3)
                && saved.data.get(BASE_KEY).is_none()
                && saved.data["cart"] == json!(["book"])
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let (service, mut record) = loaded(repo, &record(7, in_an_hour()), 3).await;
    assert!(record.data.contains_key(BASE_KEY), "the load adds its base");
    record.data.to_mut().insert("cart".into(), json!(["book"]));

    service.save_session(&record).await.unwrap();
}

#[tokio::test]
async fn an_overtaken_save_applies_its_changes_to_what_the_row_holds_now() {
    let mine = record(7, in_an_hour());
    let mut theirs = mine.clone();
    theirs.data.to_mut().insert("theirs".into(), json!(1));
    theirs.data.to_mut().insert("user".into(), json!("bob"));
    let theirs_bytes = MessagePackCodec.encode(&theirs).unwrap();
    let mut repo = MockSessionRepository::new();
    let mut order = Sequence::new();
    repo.expect_update_if_present()
        .withf(|_, version, _| *version == Some(0))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(None));
    repo.expect_find_unexpired()
        .times(1)
        .in_sequence(&mut order)
        .returning(move |_, _, _, _| {
            Ok(Some(FoundRow {
                version: 1,
                ..found(theirs_bytes.clone())
            }))
        });
    repo.expect_update_if_present()
        .withf(|row, version, _| {
            let merged = MessagePackCodec.decode(&row.data).unwrap();
            // Theirs kept, mine added, what both changed: mine (the later save).
            *version == Some(1)
                && merged.data.len() == 3
                && merged.data["theirs"] == json!(1)
                && merged.data["mine"] == json!(2)
                && merged.data["user"] == json!("eve")
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(Some(false)));
    // The load's own expectation comes first.
    let (service, mut record) = loaded(MockSessionRepository::new(), &mine, 0).await;
    let service = RepositoryStore {
        repository: Arc::new(repo),
        ..service
    };
    record.data.to_mut().insert("mine".into(), json!(2));
    record.data.to_mut().insert("user".into(), json!("eve"));

    service.save_session(&record).await.unwrap();
}

#[tokio::test]
async fn a_save_overtaken_by_a_logout_writes_nothing() {
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .times(1)
        .returning(|_, _, _| Ok(None));
    repo.expect_find_unexpired()
        .times(1)
        .returning(|_, _, _, _| Ok(None));
    let (service, mut record) =
        loaded(MockSessionRepository::new(), &record(7, in_an_hour()), 0).await;
    let service = RepositoryStore {
        repository: Arc::new(repo),
        ..service
    };
    record.data.to_mut().insert("mine".into(), json!(2));

    service.save_session(&record).await.unwrap();
}

#[tokio::test]
async fn an_overtaken_save_onto_a_hostile_row_writes_nothing() {
    // Between the load and the save, the row was overwritten: with bytes no codec reads, and
    // with another session's record. The merge reads it as a load would, and writes nothing.
    let other = MessagePackCodec.encode(&record(8, in_an_hour())).unwrap();
    for (stored, as_absent) in [
        (b"\xc1 not a session".to_vec(), false),
        (b"\xc1 not a session".to_vec(), true),
        (other.clone(), false),
        (other, true),
    ] {
        let mut repo = MockSessionRepository::new();
        repo.expect_update_if_present()
            .times(1)
            .returning(|_, _, _| Ok(None));
        repo.expect_find_unexpired()
            .times(1)
            .returning(move |_, _, _, _| Ok(Some(found(stored.clone()))));
        let (service, mut record) =
            loaded(MockSessionRepository::new(), &record(7, in_an_hour()), 0).await;
        let service = RepositoryStore {
            repository: Arc::new(repo),
            ..service
        }
        .with_policy(|policy| policy.undecodable_as_absent = as_absent);
        record.data.to_mut().insert("mine".into(), json!(2));

        let saved = service.save_session(&record).await;
        if as_absent {
            saved.unwrap();
        } else {
            let err = saved.unwrap_err();
            assert!(
                matches!(err, SessionError::Decode(_) | SessionError::Unreadable(_)),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn a_save_overtaken_again_and_again_gives_up_having_written_nothing() {
    let stored = MessagePackCodec.encode(&record(7, in_an_hour())).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .times(257)
        .returning(|_, _, _| Ok(None));
    repo.expect_find_unexpired()
        .times(256)
        .returning(move |_, _, _, _| Ok(Some(found(stored.clone()))));
    let (service, mut record) =
        loaded(MockSessionRepository::new(), &record(7, in_an_hour()), 0).await;
    let service = RepositoryStore {
        repository: Arc::new(repo),
        ..service
    };
    record.data.to_mut().insert("mine".into(), json!(2));

    let err = service.save_session(&record).await.unwrap_err();
    assert!(
        matches!(err, SessionError::Contended { attempts: 256 }),
        "{err}"
    );
}

#[tokio::test]
async fn a_forged_base_is_refused_before_anything_is_sent() {
    // No expectation: any repository call fails the test.
    let (service, genuine) =
        loaded(MockSessionRepository::new(), &record(7, in_an_hour()), 5).await;
    let mut forged = genuine.clone();
    // One word of the entry changed: its last, a loaded value's hash.
    let mut entry = forged.data[BASE_KEY].as_array().unwrap().clone();
    let last = entry.last().and_then(serde_json::Value::as_u64).unwrap();
    *entry.last_mut().unwrap() = json!(last ^ 1);
    forged.data.to_mut().insert(BASE_KEY.into(), json!(entry));
    let mut made_up = record(7, in_an_hour());
    made_up
        .data
        .to_mut()
        .insert(BASE_KEY.into(), json!({"v": 0, "k": {}}));
    for record in [forged, made_up] {
        let err = service.save_session(&record).await.unwrap_err();
        assert!(matches!(err, SessionError::Unstorable(_)), "{err}");
        assert!(!err.to_string().contains("ada"));
    }
}

#[tokio::test]
async fn a_cleared_session_replaces_the_row_whatever_its_version() {
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .withf(|row, version, _| {
            version.is_none() && MessagePackCodec.decode(&row.data).unwrap().data.is_empty()
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let (service, mut record) = loaded(repo, &record(7, in_an_hour()), 9).await;
    record.data.to_mut().clear();

    service.save_session(&record).await.unwrap();
}

#[tokio::test]
async fn write_avoidance_sends_nothing_for_an_unchanged_session_within_the_window() {
    let stored = record(5, in_an_hour());
    let mut repo = MockSessionRepository::new();
    // Only the save past the window writes, over the loaded version.
    repo.expect_update_if_present()
        .withf(|_, version, _| *version == Some(2))
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let (service, record) = loaded(repo, &stored, 2).await;
    let service = service.with_policy(|policy| {
        policy.touch_after = Some(std::time::Duration::from_secs(60));
    });
    let mut within = record.clone();
    within.expiry_date += Duration::seconds(59);
    service.save_session(&within).await.unwrap();
    let mut past = record.clone();
    past.expiry_date += Duration::seconds(60);
    service.save_session(&past).await.unwrap();
}

#[tokio::test]
async fn write_avoidance_writes_a_change_of_value_of_user_or_a_shorter_expiry() {
    let stored = record(5, in_an_hour());
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .times(3)
        .returning(|_, _, _| Ok(Some(false)));
    let (service, record) = loaded(repo, &stored, 0).await;
    let service = service.with_policy(|policy| {
        policy.touch_after = Some(std::time::Duration::from_secs(60));
        policy.user_key = Some(super::UserKeyPath::new("user").unwrap());
    });
    let mut changed = record.clone();
    changed.data.to_mut().insert("cart".into(), json!([]));
    // Loaded from a row with no user key: indexing it is a change.
    let unchanged_values = record.clone();
    let mut shorter = record.clone();
    shorter.expiry_date -= Duration::seconds(1);
    for record in [changed, unchanged_values, shorter] {
        service.save_session(&record).await.unwrap();
    }
}

#[tokio::test]
async fn deleting_by_handle_reports_a_row_that_changed_hands_in_between_as_not_deleted() {
    let row = crate::ports::UserSessionRow {
        id: SessionId(2).to_string(),
        expires_at: in_an_hour(),
        created_at: OffsetDateTime::now_utc(),
        saved_at: OffsetDateTime::now_utc(),
        listed_values: None,
        long_lived: false,
    };
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired_by_user()
        .returning(move |_, _, _, _| Ok(vec![row.clone()]));
    // Between the list and the delete the session moved to another user: the delete matches
    // no row of "ada".
    repo.expect_delete_by_user_and_id()
        .times(1)
        .returning(|_, _| Ok(false));
    let service = indexed(repo);

    let handle = service.session_handle(SessionId(2));
    assert!(!service.delete_user_session("ada", &handle).await.unwrap());
}

fn hashed(repo: MockSessionRepository) -> RepositoryStore<MockSessionRepository, MessagePackCodec> {
    service(repo).with_policy(|policy| {
        policy.id_storage = super::IdStorage::Hashed;
    })
}

#[tokio::test]
async fn with_hashed_ids_no_stored_byte_holds_the_id() {
    let rec = record(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef, in_an_hour());
    let stored = Arc::new(Mutex::new(Vec::new()));
    let mut repo = MockSessionRepository::new();
    let log = Arc::clone(&stored);
    repo.expect_insert_if_absent()
        .times(1)
        .returning(move |row| {
            log.lock().unwrap().push(row);
            Ok(true)
        });
    let log = Arc::clone(&stored);
    repo.expect_update_if_present()
        .times(1)
        .returning(move |row, _, _| {
            log.lock().unwrap().push(row);
            Ok(Some(false))
        });
    let service = hashed(repo);
    let mut created = rec.clone();
    service.create_session(&mut created).await.unwrap();
    service.save_session(&rec).await.unwrap();

    let id_text = rec.id.to_string();
    let id_bytes = rec.id.0.to_le_bytes();
    for row in stored.lock().unwrap().iter() {
        assert!(!row.id.contains(&id_text));
        let decoded = MessagePackCodec.decode(&row.data).unwrap();
        assert_eq!(decoded.id, SessionId(0), "the encoded record holds no id");
        assert_eq!(decoded.data, rec.data);
        assert!(
            !row.data.windows(id_bytes.len()).any(|w| w == id_bytes),
            "nor do the raw bytes"
        );
    }
}

#[tokio::test]
async fn with_hashed_ids_load_restores_the_id_it_looked_up() {
    let stored = MessagePackCodec.encode(&record(0, in_an_hour())).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .with(
            eq(super::IdStorage::Hashed.key(SessionId(77))),
            mockall::predicate::always(),
            mockall::predicate::always(),
            eq(None),
        )
        .returning(move |_, _, _, _| Ok(Some(found(stored.clone()))));

    let loaded = hashed(repo)
        .load_session(SessionId(77))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.id, SessionId(77));
    assert_eq!(loaded.data.get("user"), Some(&json!("ada")));
}

#[tokio::test]
async fn load_refuses_a_row_that_holds_another_sessions_record() {
    // The row of session 9 holds a copy of session 8's record.
    let copied = MessagePackCodec.encode(&record(8, in_an_hour())).unwrap();
    for id_storage in [super::IdStorage::Plain, super::IdStorage::Hashed] {
        let bytes = copied.clone();
        let mut repo = MockSessionRepository::new();
        repo.expect_find_unexpired()
            .returning(move |_, _, _, _| Ok(Some(found(bytes.clone()))));
        let service = service(repo).with_policy(|policy| {
            policy.id_storage = id_storage;
        });
        let err = service.load_session(SessionId(9)).await.unwrap_err();
        assert!(
            matches!(&err, SessionError::Unreadable(reason) if reason.contains("another session")),
            "{id_storage:?}: {err:?}"
        );
        assert!(!err.to_string().contains(&SessionId(8).to_string()));
    }
}

#[tokio::test]
async fn a_row_of_another_session_is_absent_when_the_policy_says_so() {
    let copied = MessagePackCodec.encode(&record(8, in_an_hour())).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _, _, _| Ok(Some(found(copied.clone()))));
    let service = service(repo).with_policy(|policy| {
        policy.undecodable_as_absent = true;
    });
    assert_eq!(service.load_session(SessionId(9)).await.unwrap(), None);
}

/// A codec that counts its decodes.
#[derive(Debug, Default)]
struct CountingCodec(AtomicUsize);

impl Codec for CountingCodec {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, crate::ports::CodecError> {
        MessagePackCodec.encode(record)
    }
    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, crate::ports::CodecError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        MessagePackCodec.decode(bytes)
    }
}

#[tokio::test]
async fn a_stored_row_over_the_size_limit_is_refused_before_it_is_decoded() {
    let bytes = MessagePackCodec.encode(&record(9, in_an_hour())).unwrap();
    let size = bytes.len();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .returning(move |_, _, _, _| Ok(Some(found(bytes.clone()))));
    let service =
        RepositoryStore::from_parts(repo, CountingCodec::default()).with_policy(|policy| {
            policy.max_encoded_size = Some(size - 1);
        });

    let err = service.load_session(SessionId(9)).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::Unreadable(reason) if reason.contains(&format!("{size} bytes"))),
        "{err:?}"
    );
    assert_eq!(service.codec().0.load(Ordering::SeqCst), 0, "never decoded");
}

/// By default a store writes a session of 1 MiB encoded, and refuses one byte more before
/// anything is sent.
#[tokio::test]
async fn by_default_a_session_over_one_mebibyte_is_refused_and_one_at_it_stored() {
    let overhead = MessagePackCodec
        .encode(&SessionRecord::owned(
            SessionId(3),
            Default::default(),
            in_an_hour(),
        ))
        .unwrap()
        .len();
    let sized = |bytes: usize| {
        // One entry: the key "k" (2 bytes), a string's str32 header (5) and its bytes.
        let text = "x".repeat(bytes - overhead - 2 - 5);
        SessionRecord::owned(
            SessionId(3),
            [("k".to_owned(), json!(text))].into(),
            in_an_hour(),
        )
    };
    let at_the_limit = sized(1024 * 1024);
    assert_eq!(
        MessagePackCodec.encode(&at_the_limit).unwrap().len(),
        1024 * 1024
    );
    let mut repo = MockSessionRepository::new();
    repo.expect_update_if_present()
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let service = service(repo);
    service.save_session(&at_the_limit).await.unwrap();
    let err = service
        .save_session(&sized(1024 * 1024 + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::TooLarge { size, limit: 1_048_576 } if size == 1_048_577),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_user_key_with_a_nul_is_refused_before_the_repository_and_never_looked_up() {
    // No expectation: any repository call fails the test.
    let service = indexed(MockSessionRepository::new());
    let mut rec = record(1, in_an_hour());
    rec.data.to_mut().insert("user".into(), json!("ada\u{0}"));
    for result in [
        service.save_session(&rec).await,
        service.create_session(&mut rec).await,
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, SessionError::Unstorable(reason) if reason.contains("NUL")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("ada"));
    }
    assert!(service.user_sessions("ada\u{0}").await.unwrap().is_empty());
    assert_eq!(service.delete_user_sessions("ada\u{0}").await.unwrap(), 0);
    assert_eq!(
        service
            .delete_user_sessions_except("ada\u{0}", SessionId(1))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn expiries_outside_what_every_backend_stores_are_refused_before_the_repository() {
    use time::macros::{datetime, offset};
    // No expectation: any repository call fails the test.
    let service = service(MockSessionRepository::new());
    for expiry in [
        datetime!(9999-12-31 23:59:59 -01:00),
        OffsetDateTime::new_in_offset(time::Date::MIN, time::Time::MIDNIGHT, offset!(+01:00)),
        datetime!(0000-12-31 23:59:59 UTC),
        datetime!(-0005-06-01 00:00 UTC),
    ] {
        let mut rec = record(1, expiry);
        for result in [
            service.save_session(&rec).await,
            service.create_session(&mut rec).await,
        ] {
            assert!(
                matches!(&result, Err(SessionError::Unstorable(reason)) if reason.contains("expiry")),
                "{expiry}: {result:?}"
            );
        }
    }
}

mod expiry_range {
    use proptest::prelude::*;

    use super::*;

    fn any_offset_date_time() -> impl Strategy<Value = OffsetDateTime> {
        let (min, max) = (
            OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp(),
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT).unix_timestamp(),
        );
        (min..=max, 0u32..1_000_000_000, -86_399i32..=86_399).prop_filter_map(
            "representable in that offset",
            |(seconds, nanos, offset)| {
                let offset = time::UtcOffset::from_whole_seconds(offset).ok()?;
                let utc = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
                utc.replace_nanosecond(nanos)
                    .ok()?
                    .checked_to_offset(offset)
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the instant and the offset, a save either reaches the repository with an
        /// expiry in years 1 to 9999 UTC, or is refused with an `Unstorable` error: no panic.
        #[test]
        fn every_expiry_is_stored_in_range_or_refused(expiry in any_offset_date_time()) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let mut repo = MockSessionRepository::new();
            repo.expect_update_if_present()
                .withf(|row, _, _| {
                    let year = row.expires_at.to_offset(time::UtcOffset::UTC).year();
                    (1..=9999).contains(&year)
                })
                .returning(|_, _, _| Ok(Some(false)));
            let result = runtime.block_on(service(repo).save_session(&record(1, expiry)));
            let in_range = expiry
                .checked_to_offset(time::UtcOffset::UTC)
                .is_some_and(|utc| (1..=9999).contains(&utc.year()));
            if in_range {
                prop_assert!(result.is_ok(), "{:?}", result);
            } else {
                prop_assert!(matches!(result, Err(SessionError::Unstorable(_))), "{:?}", result);
            }
        }
    }
}

/// The read cache's rules at the store, over the in-memory repository and a cache of the
/// test's own (the moka cache has its own tests).
mod read_cache {
    use std::{collections::HashMap, time::Duration as StdDuration};

    use super::*;
    use crate::{
        adapters::{
            faulty::{Fault, FaultyRepository},
            memory::InMemoryRepository,
        },
        domain::Operation,
        ports::{cache::Ticket, CachedSession, Evict, ReadCache},
    };

    /// A cache that always serves, keyed like the store's, evicting on every write.
    #[derive(Default)]
    struct MapCache(std::sync::Mutex<HashMap<String, CachedSession>>);

    impl ReadCache for MapCache {
        fn get(&self, key: &str, now: OffsetDateTime) -> Option<SessionRecord<'static>> {
            let entries = self.0.lock().unwrap();
            let entry = entries.get(key).filter(|entry| entry.valid_until > now)?;
            Some(entry.record.clone())
        }
        fn ticket(&self, _: &str) -> Option<Ticket> {
            Some(Ticket {
                generation: 0,
                stripe: 0,
                evictions: 0,
            })
        }
        fn insert(&self, _: Ticket, key: String, entry: CachedSession) {
            self.0.lock().unwrap().insert(key, entry);
        }
        fn evict(&self, key: &str) {
            self.0.lock().unwrap().remove(key);
        }
        fn evict_user(&self, user_key: &str) {
            let mut entries = self.0.lock().unwrap();
            entries.retain(|_, entry| entry.user_key.as_deref() != Some(user_key));
        }
        fn clear(&self) {
            self.0.lock().unwrap().clear();
        }
        fn evict_later(self: Arc<Self>, what: Evict, settle: StdDuration) {
            tokio::spawn(async move {
                // As the real cache does: after `settle`, on tokio's clock, which the tests
                // that reach this run paused and advance.
                tokio::time::sleep(settle).await;
                self.forget(&what);
            });
        }
        fn is_serving(&self) -> bool {
            true
        }
        fn is_local(&self) -> bool {
            true
        }
    }

    fn cached<R: crate::ports::SessionRepository>(
        store: RepositoryStore<R, MessagePackCodec>,
    ) -> RepositoryStore<R, MessagePackCodec> {
        RepositoryStore {
            cache: Some(Arc::new(MapCache::default())),
            ..store
        }
    }

    fn value(record: &SessionRecord<'_>) -> serde_json::Value {
        record.data["user"].clone()
    }

    /// A save that times out may still commit afterwards (the statement was sent; the
    /// database does not know the client gave up). A load in between caches the old value
    /// again, so the store evicts once more when the write can no longer be running: twice
    /// the operation timeout later.
    #[tokio::test(start_paused = true)]
    async fn a_timed_out_save_is_evicted_again_once_it_can_no_longer_commit() {
        let rows = InMemoryRepository::new();
        let faulty = FaultyRepository::new(rows.clone());
        let faults = faulty.controller();
        let timeout = StdDuration::from_millis(50);
        let cached = cached(
            RepositoryStore::from_parts(faulty, MessagePackCodec)
                .with_operation_timeout(Some(timeout)),
        );
        // The late commit, written by something that bypasses the cached service.
        let late = RepositoryStore::from_parts(rows, MessagePackCodec);

        let mut rec = record(7, in_an_hour());
        cached.create_session(&mut rec).await.unwrap();
        let id = rec.id;
        assert_eq!(
            value(&cached.load_session(id).await.unwrap().unwrap()),
            json!("ada")
        );

        faults.inject(Fault::hang().on(Operation::Save));
        let mut changed = rec.clone();
        changed.data.to_mut().insert("user".into(), json!("grace"));
        assert!(matches!(
            cached.save_session(&changed).await,
            Err(SessionError::TimedOut { .. })
        ));
        faults.clear();

        // Read (and cached) before the abandoned write commits; then it commits.
        assert_eq!(
            value(&cached.load_session(id).await.unwrap().unwrap()),
            json!("ada")
        );
        late.save_session(&changed).await.unwrap();
        assert_eq!(
            value(&cached.load_session(id).await.unwrap().unwrap()),
            json!("ada"),
            "within the settling time the cache still serves what it read"
        );

        tokio::time::sleep(timeout * 2 + StdDuration::from_millis(1)).await;
        assert_eq!(
            value(&cached.load_session(id).await.unwrap().unwrap()),
            json!("grace"),
            "the second eviction, twice the timeout after the first, must drop the stale entry"
        );
    }

    /// A store with an absolute lifetime caches a session only as long as its lifetime lasts,
    /// so it must know the row's age: a repository that did not read it (allowed only without
    /// a lifetime) gets its session loaded but never served from the cache. `reads` is how
    /// many times two loads reach the repository.
    async fn two_cached_loads_with_a_lifetime(created_at: Option<OffsetDateTime>, reads: usize) {
        let stored = record(9, in_an_hour());
        let bytes = MessagePackCodec.encode(&stored).unwrap();
        let mut repo = MockSessionRepository::new();
        repo.expect_find_unexpired()
            .times(reads)
            .returning(move |_, _, born_after, _| {
                assert!(born_after.is_some(), "the lifetime's bound is asked for");
                Ok(Some(FoundRow {
                    created_at,
                    long_lived: created_at.map(|_| false),
                    ..found(bytes.clone())
                }))
            });
        let store = cached(service(repo).with_policy(|policy| {
            policy.absolute_lifetime = Some(StdDuration::from_secs(3600));
        }));
        for _ in 0..2 {
            let loaded = store.load_session(stored.id).await.unwrap().unwrap();
            assert_eq!(value(&loaded), json!("ada"));
        }
    }

    #[tokio::test]
    async fn a_session_whose_age_is_read_is_served_from_the_cache_within_its_lifetime() {
        two_cached_loads_with_a_lifetime(Some(OffsetDateTime::now_utc()), 1).await;
    }

    #[tokio::test]
    async fn a_session_whose_age_was_not_read_is_never_served_from_the_cache_under_a_lifetime() {
        two_cached_loads_with_a_lifetime(None, 2).await;
    }

    /// A save that returned evicts once, at once: the next load reads the database.
    #[tokio::test]
    async fn a_save_evicts_before_it_returns() {
        let rows = InMemoryRepository::new();
        let cached = cached(RepositoryStore::from_parts(rows.clone(), MessagePackCodec));
        let mut rec = record(8, in_an_hour());
        cached.create_session(&mut rec).await.unwrap();
        assert_eq!(
            value(&cached.load_session(rec.id).await.unwrap().unwrap()),
            json!("ada")
        );
        rec.data.to_mut().insert("user".into(), json!("grace"));
        cached.save_session(&rec).await.unwrap();
        assert_eq!(
            value(&cached.load_session(rec.id).await.unwrap().unwrap()),
            json!("grace")
        );
    }
}

fn limited(
    repo: MockSessionRepository,
) -> RepositoryStore<MockSessionRepository, MessagePackCodec> {
    service(repo).with_policy(|policy| {
        policy.user_key = Some(super::UserKeyPath::new("user").unwrap());
        policy.max_sessions_per_user = Some(2);
        policy.absolute_lifetime = Some(std::time::Duration::from_secs(3600));
    })
}

#[tokio::test]
async fn a_login_trims_its_users_live_sessions_at_the_instant_it_wrote() {
    let mut repo = MockSessionRepository::new();
    let written = Arc::new(Mutex::new(None));
    let saved_at = Arc::clone(&written);
    repo.expect_insert_if_absent()
        .times(1)
        .returning(move |row| {
            *saved_at.lock().unwrap() = Some(row.saved_at);
            Ok(true)
        });
    let at = Arc::clone(&written);
    repo.expect_trim_user_sessions()
        .withf(move |user, keep, now, born_after, _| {
            let written = at.lock().unwrap().expect("the insert came first");
            user == "ada"
                && *keep == 2
                && *now == written
                && *born_after == Some(written - Duration::hours(1))
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(1));

    limited(repo)
        .create_session(&mut record(1, in_an_hour()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_trim_never_fails_the_login_it_follows() {
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_if_absent().returning(|_| Ok(true));
    repo.expect_update_if_present()
        .returning(|_, _, _| Ok(Some(true)));
    repo.expect_trim_user_sessions()
        .times(2)
        .returning(|_, _, _, _, _| {
            Err(RepositoryError::Statement(
                "deadlock detected (SQLSTATE 40P01)".to_owned(),
            ))
        });
    let service = limited(repo);
    let mut rec = record(1, in_an_hour());

    service.create_session(&mut rec).await.unwrap();
    service.save_session(&rec).await.unwrap();
}

/// A trim that hangs: the login waits for it no longer than one operation timeout, and stands.
#[derive(Debug)]
struct HangingTrim;

#[async_trait::async_trait]
impl crate::ports::SessionRepository for HangingTrim {
    async fn insert_if_absent(&self, _: SessionRow) -> Result<bool, RepositoryError> {
        Ok(true)
    }
    async fn update_if_present(
        &self,
        _: SessionRow,
        _: Option<i64>,
        _: bool,
    ) -> Result<Option<bool>, RepositoryError> {
        Ok(Some(true))
    }
    async fn find_unexpired(
        &self,
        _: &str,
        _: OffsetDateTime,
        _: Option<OffsetDateTime>,
        _: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        Ok(None)
    }
    async fn delete_by_id(&self, _: &str) -> Result<(), RepositoryError> {
        Ok(())
    }
    async fn delete_expired_batch(
        &self,
        _: OffsetDateTime,
        _: Option<OffsetDateTime>,
        _: Option<OffsetDateTime>,
        _: u64,
    ) -> Result<u64, RepositoryError> {
        Ok(0)
    }
    async fn find_unexpired_by_user(
        &self,
        _: &str,
        _: OffsetDateTime,
        _: Option<OffsetDateTime>,
        _: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        Ok(Vec::new())
    }
    async fn trim_user_sessions(
        &self,
        _: &str,
        _: u64,
        _: OffsetDateTime,
        _: Option<OffsetDateTime>,
        _: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        std::future::pending().await
    }
    async fn delete_by_user<'a>(
        &self,
        _: &str,
        _: Option<&'a str>,
    ) -> Result<u64, RepositoryError> {
        Ok(0)
    }
    async fn delete_by_user_and_id(&self, _: &str, _: &str) -> Result<bool, RepositoryError> {
        Ok(false)
    }
}

#[tokio::test(start_paused = true)]
async fn a_trim_that_times_out_never_fails_the_login_it_follows() {
    let service =
        RepositoryStore::from_parts(HangingTrim, MessagePackCodec).with_policy(|policy| {
            policy.user_key = Some(super::UserKeyPath::new("user").unwrap());
            policy.max_sessions_per_user = Some(2);
            policy.operation_timeout = Some(std::time::Duration::from_secs(5));
        });
    let mut rec = record(1, in_an_hour());
    let started = tokio::time::Instant::now();

    service.create_session(&mut rec).await.unwrap();
    service.save_session(&rec).await.unwrap();

    assert_eq!(started.elapsed(), std::time::Duration::from_secs(10));
}

/// Refusing logins at the per-user limit, a save of a session that keeps the user it was
/// loaded with is the ordinary one statement: no count, no lock, no trim (the mock fails on
/// any other call).
#[tokio::test]
async fn refusing_at_the_limit_a_save_that_keeps_its_user_is_one_statement() {
    let rec = record(11, in_an_hour());
    let stored = MessagePackCodec.encode(&rec).unwrap();
    let mut repo = MockSessionRepository::new();
    repo.expect_find_unexpired()
        .times(1)
        .returning(move |_, _, _, _| {
            Ok(Some(FoundRow {
                version: 3,
                user_key: Some("ada".to_owned()),
                ..found(stored.clone())
            }))
        });
    repo.expect_update_if_present()
        .withf(|row, version, report| {
            row.user_key.as_deref() == Some("ada") && *version == Some(3) && !report
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(false)));
    let store = service(repo)
        .with_user_key("user")
        .unwrap()
        .with_max_sessions_per_user(1)
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap();

    let mut loaded = store.load_session(SessionId(11)).await.unwrap().unwrap();
    loaded
        .data
        .to_mut()
        .insert("theme".to_owned(), json!("dark"));
    store.save_session(&loaded).await.unwrap();
}

/// Refusing logins at the limit, a login the repository refuses is
/// [`SessionError::TooManySessions`], and a save that gives a session its user goes through
/// the guarded write; refused, it fails too, unless the session is gone (a save of a deleted
/// session writes nothing and succeeds, refused or not).
#[tokio::test]
async fn refusing_at_the_limit_a_refused_login_is_too_many_sessions() {
    let mut repo = MockSessionRepository::new();
    repo.expect_insert_within_limit()
        .withf(|row, limit, _, _, _| row.user_key.as_deref() == Some("ada") && *limit == 2)
        .times(1)
        .returning(|_, _, _, _, _| Ok(None));
    repo.expect_update_within_limit()
        .withf(|row, version, limit, _, _, _| {
            row.user_key.as_deref() == Some("ada") && version.is_none() && *limit == 2
        })
        .times(2)
        .returning(|_, _, _, _, _, _| Ok(None));
    // Refused: the row is there (the first save), or gone (the second: nothing to write).
    let mut rows = vec![None, Some(found(Vec::new()))];
    repo.expect_find_unexpired()
        .times(2)
        .returning(move |_, _, _, _| Ok(rows.pop().flatten()));
    let store = service(repo)
        .with_user_key("user")
        .unwrap()
        .with_max_sessions_per_user(2)
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap();

    let mut rec = record(12, in_an_hour());
    let err = store.create_session(&mut rec).await.unwrap_err();
    assert!(
        matches!(err, SessionError::TooManySessions { limit: 2 }),
        "{err:?}"
    );
    assert!(SessionError::is_too_many_sessions(&err));
    let err = store.save_session(&rec).await.unwrap_err();
    assert!(
        matches!(err, SessionError::TooManySessions { limit: 2 }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("ada"));
    store.save_session(&rec).await.unwrap();
}
