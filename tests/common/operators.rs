//! The operators' calls (count the live sessions, end the sessions created before an instant,
//! end them all), written once against the store's public API and run on each backend by
//! `features_suite!`.

use std::{fmt::Debug, time::Duration as StdDuration};

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec, repository::SessionRepository, testing::ManualClock, Id, Record, RepositoryStore,
    SeaOrmStoreError, SessionStore,
};

use super::replicas::Replicas;

/// A whole second from the system's time, so instants survive every backend's precision.
fn whole_second() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn user() -> String {
    format!("user-{}", Id::default())
}

fn session(user: Option<&str>, expiry_date: OffsetDateTime) -> Record {
    let mut data = std::collections::HashMap::new();
    if let Some(user) = user {
        data.insert("user_id".to_owned(), json!(user));
    }
    Record {
        id: Id::default(),
        data,
        expiry_date,
    }
}

async fn created<S: SessionStore>(store: &S, user: Option<&str>) -> Record {
    let mut record = session(user, whole_second() + Duration::hours(1));
    store.create(&mut record).await.unwrap();
    record
}

/// `store` with the per-user index and a clock of its own at a whole second.
fn clocked<R: SessionRepository, C: Codec>(
    store: &RepositoryStore<R, C>,
) -> (RepositoryStore<R, C>, ManualClock) {
    let clock = ManualClock::at(whole_second());
    let store = store
        .clone()
        .with_user_key("user_id")
        .unwrap()
        .with_clock(clock.reader());
    (store, clock)
}

pub async fn operators_count_the_live_sessions_all_and_per_user<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let (store, clock) = clocked(store);
    let (ada, bob) = (user(), user());
    let before = store.count_sessions().await.unwrap();
    for user in [Some(&ada), Some(&ada), Some(&bob), None] {
        created(&store, user.map(String::as_str)).await;
    }
    let mut soon_over = session(Some(&ada), clock.now() + Duration::minutes(5));
    store.create(&mut soon_over).await.unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), before + 5);
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 3);

    clock.advance(StdDuration::from_secs(10 * 60));
    assert_eq!(
        store.count_sessions().await.unwrap(),
        before + 4,
        "an expired session is not counted"
    );
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 2);
    assert_eq!(store.count_user_sessions(&bob).await.unwrap(), 1);
    assert_eq!(store.count_user_sessions(&user()).await.unwrap(), 0);
    // With an absolute lifetime, what `load` would refuse is not counted either.
    let lifetime = store
        .clone()
        .with_absolute_lifetime(StdDuration::from_secs(60));
    assert_eq!(lifetime.count_user_sessions(&ada).await.unwrap(), 0);
}

pub async fn operators_end_the_sessions_created_before_an_instant_only<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    // Batches of one: every call takes several.
    let (store, clock) = clocked(&store.clone().with_cleanup_batch_size(1));
    let (ada, bob) = (user(), user());
    let old = [
        created(&store, Some(&ada)).await,
        created(&store, Some(&bob)).await,
        created(&store, None).await,
    ];
    let mut old_loaded = store.load(&old[0].id).await.unwrap().unwrap();
    clock.advance(StdDuration::from_secs(60));
    let breach_contained = clock.now();
    let new = [
        created(&store, Some(&ada)).await,
        created(&store, None).await,
    ];
    clock.advance(StdDuration::from_secs(60));

    let ended = store.delete_sessions_created_before(breach_contained);
    assert_eq!(ended.await.unwrap(), 3);

    for record in &old {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    for record in &new {
        assert!(store.load(&record.id).await.unwrap().is_some());
    }
    // A device that loaded its session before the revocation cannot save it back.
    old_loaded.data.insert("cart".into(), json!(["tea"]));
    store.save(&old_loaded).await.unwrap();
    assert_eq!(store.load(&old[0].id).await.unwrap(), None);
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 1);

    // One user's: only theirs.
    let bobs = created(&store, Some(&bob)).await;
    clock.advance(StdDuration::from_secs(1));
    let adas = store.delete_user_sessions_created_before(&ada, clock.now());
    assert_eq!(adas.await.unwrap(), 1);
    assert_eq!(store.load(&new[0].id).await.unwrap(), None);
    assert!(store.load(&new[1].id).await.unwrap().is_some());
    assert!(store.load(&bobs.id).await.unwrap().is_some());
    let again = store.delete_user_sessions_created_before(&ada, clock.now());
    assert_eq!(again.await.unwrap(), 0);
}

pub async fn operators_end_every_session_only_when_the_table_is_named<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let (store, _clock) = clocked(store);
    let records = [
        created(&store, Some(&user())).await,
        created(&store, None).await,
    ];
    let refused = store.delete_all_sessions("another_table").await;
    assert!(
        matches!(refused, Err(SeaOrmStoreError::InvalidConfiguration(_))),
        "{refused:?}"
    );
    assert!(store.load(&records[0].id).await.unwrap().is_some());

    let table = store.table_name().to_owned();
    assert!(store.delete_all_sessions(&table).await.unwrap() >= 2);
    for record in &records {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    assert_eq!(store.count_sessions().await.unwrap(), 0);
}

pub async fn operators_per_user_calls_need_the_index<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let unindexed = store.clone();
    let count = unindexed.count_user_sessions("ada").await;
    assert!(matches!(
        count,
        Err(SeaOrmStoreError::InvalidConfiguration(_))
    ));
    let ended = unindexed.delete_user_sessions_created_before("ada", whole_second());
    assert!(matches!(
        ended.await,
        Err(SeaOrmStoreError::InvalidConfiguration(_))
    ));
}

/// A revocation "created before T" from one replica, racing creates and saves on two: every
/// session created before T ends (even one being saved), every one created after survives,
/// and no operation fails (no deadlock).
pub async fn ending_sessions_created_before_racing_creates_and_saves_fails_nothing<F, R, C>(
    fixture: &F,
) where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    // One clock for both replicas: the sessions' creation instants are the store's.
    let clock = ManualClock::at(whole_second());
    let indexed = |store: &RepositoryStore<R, C>| {
        store
            .clone()
            .with_clock(clock.reader())
            .with_user_key("user_id")
            .unwrap()
            .with_cleanup_batch_size(7)
    };
    let stores = [indexed(fixture.store()), indexed(&fixture.replica().await)];
    let tasks = fixture.tasks(100);
    let mut old = Vec::new();
    for n in 0..tasks {
        let who = user();
        old.push(created(&stores[n % 2], Some(&who)).await);
    }
    // T a second after the old sessions' creation, and a second before the new ones'.
    clock.advance(StdDuration::from_secs(1));
    let before = clock.now();
    clock.advance(StdDuration::from_secs(1));

    let mut saves = Vec::new();
    let mut creates = Vec::new();
    for (n, record) in old.iter().enumerate() {
        let store = stores[n % 2].clone();
        let mut record = record.clone();
        saves.push(tokio::spawn(async move {
            record.data.insert("cart".into(), json!([n]));
            store.save(&record).await.map_err(|e| e.to_string())
        }));
        let store = stores[(n + 1) % 2].clone();
        creates.push(tokio::spawn(async move {
            let mut record = session(Some(&user()), whole_second() + Duration::hours(1));
            store
                .create(&mut record)
                .await
                .map(|()| record)
                .map_err(|e| e.to_string())
        }));
    }
    let revoker = stores[0].clone();
    let revoked = tokio::spawn(async move { revoker.delete_sessions_created_before(before).await });

    let mut failures = Vec::new();
    for save in saves {
        if let Err(err) = save.await.unwrap() {
            failures.push(err);
        }
    }
    let mut new = Vec::new();
    for create in creates {
        match create.await.unwrap() {
            Ok(record) => new.push(record),
            Err(err) => failures.push(err),
        }
    }
    let ended = revoked.await.unwrap();
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert_eq!(ended.unwrap(), old.len() as u64, "every old session ended");
    for record in &old {
        assert_eq!(stores[1].load(&record.id).await.unwrap(), None);
    }
    for record in &new {
        assert!(
            stores[1].load(&record.id).await.unwrap().is_some(),
            "a session created after the instant survives"
        );
    }
    assert_eq!(stores[0].count_sessions().await.unwrap(), new.len() as u64);
}

/// Revocations "created before T" (everyone's and one user's) from two replicas, racing logins
/// of a few users under a per-user limit (each followed by its trim) and "log out everywhere":
/// no operation fails (no deadlock), and no session created before T survives.
pub async fn ending_sessions_created_before_racing_logins_and_logouts_fails_nothing<F, R, C>(
    fixture: &F,
) where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    let clock = ManualClock::at(whole_second());
    let limited = |store: &RepositoryStore<R, C>| {
        store
            .clone()
            .with_clock(clock.reader())
            .with_user_key("user_id")
            .unwrap()
            .with_max_sessions_per_user(2)
            .unwrap()
            .with_cleanup_batch_size(3)
    };
    let stores = [limited(fixture.store()), limited(&fixture.replica().await)];
    let users: Vec<String> = (0..4).map(|_| user()).collect();
    let mut old = Vec::new();
    for (n, who) in users.iter().enumerate() {
        old.push(created(&stores[n % 2], Some(who)).await);
        old.push(created(&stores[(n + 1) % 2], None).await);
    }
    // T a second after the old sessions' creation, and a second before the new ones'.
    clock.advance(StdDuration::from_secs(1));
    let before = clock.now();
    clock.advance(StdDuration::from_secs(1));

    let mut tasks = Vec::new();
    for n in 0..fixture.tasks(40) {
        let (store, who) = (stores[n % 2].clone(), users[n % users.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut record = session(Some(&who), whole_second() + Duration::hours(1));
            store.create(&mut record).await.map_err(|e| e.to_string())
        }));
        if n % 10 == 0 {
            let (store, who) = (stores[(n + 1) % 2].clone(), users[n % users.len()].clone());
            tasks.push(tokio::spawn(async move {
                store
                    .delete_user_sessions(&who)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }));
        }
        if n % 8 == 0 {
            let (store, who) = (stores[n % 2].clone(), users[(n + 1) % users.len()].clone());
            tasks.push(tokio::spawn(async move {
                let everyone = store.delete_sessions_created_before(before).await;
                let theirs = store
                    .delete_user_sessions_created_before(&who, before)
                    .await;
                everyone.and(theirs).map(drop).map_err(|e| e.to_string())
            }));
        }
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(err) = task.await.unwrap() {
            failures.push(err);
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
    for record in &old {
        assert_eq!(stores[0].load(&record.id).await.unwrap(), None);
    }
    for who in &users {
        assert!(stores[1].count_user_sessions(who).await.unwrap() <= 2);
    }
}
