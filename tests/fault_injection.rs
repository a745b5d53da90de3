//! `FaultyRepository` and its `FaultController`: which calls fail, wait or hang, and that they
//! can be switched while a store is in flight. No database: the inner repository is in memory.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tower_sessions_seaorm_store::{
    repository::{FoundRow, RepositoryError, SessionRepository, SessionRow},
    session_store,
    testing::{Fault, FaultController, FaultyRepository, InMemoryRepository},
    Id, Operation, RepositoryStore, SessionStore,
};

fn faulty() -> (FaultyRepository<InMemoryRepository>, FaultController) {
    let repository = FaultyRepository::new(InMemoryRepository::new());
    let controller = repository.controller();
    (repository, controller)
}

fn row(id: &str, data: &[u8], expires_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        created_at: time::OffsetDateTime::now_utc(),
        saved_at: time::OffsetDateTime::now_utc(),
        listed_values: None,
        id: id.to_owned(),
        data: data.to_vec(),
        expires_at,
        user_key: None,
        long_lived: false,
    }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::hours(1)
}

async fn load(repo: &impl SessionRepository) -> Result<Option<FoundRow>, RepositoryError> {
    repo.find_unexpired("some-id", OffsetDateTime::now_utc(), None, None)
        .await
}

#[tokio::test]
async fn with_no_fault_every_call_reaches_the_inner_repository() {
    let (repo, _) = faulty();
    assert!(repo
        .insert_if_absent(row("a", b"data", in_an_hour()))
        .await
        .unwrap());
    assert!(repo
        .insert_if_absent(row("b", b"data", in_an_hour()))
        .await
        .unwrap());
    repo.update_if_present(row("a", b"data", in_an_hour()), None, false)
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired("a", OffsetDateTime::now_utc(), None, None)
            .await
            .unwrap()
            .map(|found| found.data)
            .as_deref(),
        Some(&b"data"[..])
    );
    repo.delete_by_id("a").await.unwrap();
    assert_eq!(
        repo.delete_expired_batch(OffsetDateTime::now_utc(), None, None, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(repo.inner().len(), 1);
}

#[tokio::test]
async fn a_fault_fails_every_call_until_cleared() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable());
    for _ in 0..3 {
        assert!(matches!(
            load(&repo).await,
            Err(RepositoryError::Unavailable(_))
        ));
    }
    assert!(repo.delete_by_id("a").await.is_err());

    faults.clear();
    assert_eq!(load(&repo).await.unwrap(), None);
    assert!(repo.delete_by_id("a").await.is_ok());
}

#[tokio::test]
async fn a_failed_call_never_reaches_the_inner_repository() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable().on(Operation::Create));
    assert!(repo
        .insert_if_absent(row("a", b"data", in_an_hour()))
        .await
        .is_err());
    assert!(repo.inner().is_empty());
}

#[tokio::test]
async fn on_call_fails_only_the_nth_matching_call_once() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable().on(Operation::Load).on_call(3));

    let outcomes: Vec<bool> = [
        load(&repo).await.is_ok(),
        repo.update_if_present(row("a", b"data", in_an_hour()), None, false)
            .await
            .is_ok(), // another operation: not counted
        load(&repo).await.is_ok(),
        load(&repo).await.is_ok(),
        load(&repo).await.is_ok(),
    ]
    .into();

    assert_eq!(outcomes, [true, true, true, false, true]);
}

#[tokio::test]
async fn on_limits_a_fault_to_one_operation() {
    let (repo, faults) = faulty();
    faults.inject(Fault::statement_error().on(Operation::Create));

    assert!(matches!(
        repo.insert_if_absent(row("a", b"data", in_an_hour())).await,
        Err(RepositoryError::Statement(_))
    ));
    repo.update_if_present(row("a", b"data", in_an_hour()), None, false)
        .await
        .unwrap();
    assert!(load(&repo).await.is_ok());
    assert!(repo.delete_by_id("a").await.is_ok());
}

#[tokio::test]
async fn each_failure_is_the_chosen_variant() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable().on_call(1));
    faults.inject(Fault::statement_error().on_call(2));
    faults.inject(Fault::corrupt_row().on_call(3));
    faults.inject(Fault::missing_table().on_call(4));

    assert!(matches!(
        load(&repo).await,
        Err(RepositoryError::Unavailable(_))
    ));
    assert!(matches!(
        load(&repo).await,
        Err(RepositoryError::Statement(_))
    ));
    assert!(matches!(
        load(&repo).await,
        Err(RepositoryError::CorruptRow(_))
    ));
    assert!(matches!(
        load(&repo).await,
        Err(RepositoryError::MissingTable(_))
    ));
    assert!(load(&repo).await.is_ok());
}

#[tokio::test]
async fn an_injected_error_says_it_was_injected() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable());
    let message = load(&repo).await.unwrap_err().to_string();
    assert!(
        message.contains("injected by FaultyRepository"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn for_duration_fails_calls_during_the_duration_only() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable().for_duration(Duration::from_secs(3600)));
    assert!(load(&repo).await.is_err(), "within the hour");

    faults.clear();
    faults.inject(Fault::unavailable().for_duration(Duration::from_millis(1)));
    tokio::time::advance(Duration::from_millis(2)).await;
    assert!(load(&repo).await.is_ok(), "the millisecond is over");
}

#[tokio::test]
async fn latency_delays_a_call_without_failing_it() {
    let (repo, faults) = faulty();
    let delay = Duration::from_millis(30);
    faults.inject(Fault::latency(delay).on(Operation::Load));

    let started = Instant::now();
    assert_eq!(load(&repo).await.unwrap(), None);
    // A lower bound only: the wrapper sleeps at least `delay`, however loaded the machine is.
    assert!(started.elapsed() >= delay);
}

#[tokio::test]
async fn a_hung_call_waits_until_the_faults_are_cleared() {
    let (repo, faults) = faulty();
    faults.inject(Fault::hang().on(Operation::Create));
    let call = tokio::spawn(async move {
        repo.insert_if_absent(row("a", b"data", in_an_hour()))
            .await?;
        Ok::<_, RepositoryError>(repo)
    });
    while faults.calls(Operation::Create) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished(), "the call hangs");

    faults.clear();
    let repo = call.await.unwrap().expect("the released call goes through");
    assert_eq!(repo.inner().len(), 1);
}

#[tokio::test]
async fn calls_are_counted_per_operation_failed_ones_included() {
    let (repo, faults) = faulty();
    faults.inject(Fault::unavailable().on(Operation::Delete));
    load(&repo).await.unwrap();
    load(&repo).await.unwrap();
    repo.delete_by_id("a").await.unwrap_err();

    assert_eq!(faults.calls(Operation::Load), 2);
    assert_eq!(faults.calls(Operation::Delete), 1);
    assert_eq!(faults.calls(Operation::Save), 0);
    assert_eq!(faults.total_calls(), 3);
}

#[tokio::test]
async fn the_controller_changes_a_store_already_in_use() {
    let (repo, faults) = faulty();
    let store = RepositoryStore::from_repository(repo);
    let id = Id::default();

    faults.inject(Fault::unavailable().on(Operation::Load));
    assert!(matches!(
        store.load(&id).await,
        Err(session_store::Error::Backend(_))
    ));

    faults.clear();
    assert_eq!(store.load(&id).await.unwrap(), None);
}

#[tokio::test]
async fn one_controller_can_drive_several_repositories() {
    let faults = FaultController::new();
    let first = FaultyRepository::with_controller(InMemoryRepository::new(), faults.clone());
    let second = FaultyRepository::with_controller(InMemoryRepository::new(), faults.clone());
    faults.inject(Fault::unavailable());
    assert!(load(&first).await.is_err());
    assert!(load(&second).await.is_err());
    assert_eq!(faults.total_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hung_repository_fails_at_the_stores_operation_timeout() {
    let (repo, faults) = faulty();
    let store = RepositoryStore::from_repository(repo);
    faults.inject(Fault::hang());

    // The paused clock jumps to the 5 s timeout as soon as everything waits.
    let err = store.load(&Id::default()).await.unwrap_err();

    assert!(
        matches!(&err, session_store::Error::Backend(m) if m.contains("load timed out")),
        "{err:?}"
    );
}
