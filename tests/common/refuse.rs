//! The per-user limit that refuses logins (`refusing_logins_at_the_limit`), written once
//! against the store's public API and run on each backend by `features_suite!`: a login beyond
//! the limit fails with the distinct error and writes nothing, a session the user has saves as
//! before, dead sessions take no slot, a logout frees one, and concurrent logins of one user
//! through several pools end with exactly the limit, the others refused, none failing
//! otherwise.

use std::{fmt::Debug, time::Duration as StdDuration};

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::{SessionRepository, SessionRow},
    session_store, Id, Record, RepositoryStore, SeaOrmStoreError, SessionStore,
};

use super::replicas::Replicas;

/// A whole second, so instants survive every backend's precision.
fn soon(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::minutes(minutes)
}

fn session(values: &[(&str, Value)]) -> Record {
    Record {
        id: Id::default(),
        data: values
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        expiry_date: soon(60),
    }
}

/// A user id no other test (sharing a table) uses.
fn user() -> String {
    format!("refused-{}", Id::default())
}

/// `store` refusing logins beyond `limit` sessions per user.
fn refusing<R, C>(store: &RepositoryStore<R, C>, limit: u64) -> RepositoryStore<R, C>
where
    R: SessionRepository,
    C: Codec,
{
    store
        .clone()
        .with_user_key("user_id")
        .unwrap()
        .with_max_sessions_per_user(limit)
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap()
}

/// A login by `create`: its result.
async fn log_in<R, C>(store: &RepositoryStore<R, C>, user: &str) -> session_store::Result<Record>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let mut record = session(&[("user_id", json!(user))]);
    store.create(&mut record).await.map(|()| record)
}

fn is_refused(err: &session_store::Error) -> bool {
    SeaOrmStoreError::is_too_many_sessions(err)
}

/// A login beyond the limit, by `create` or by a save that gives an anonymous session the
/// user, fails with the distinct error and writes nothing; the user's sessions are untouched.
pub async fn refusing_at_the_limit_fails_a_login_with_its_own_error_and_writes_nothing<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let err = store
        .clone()
        .with_user_key("user_id")
        .unwrap()
        .refusing_logins_at_the_limit()
        .unwrap_err();
    assert!(matches!(err, SeaOrmStoreError::InvalidConfiguration(_)));

    let store = refusing(store, 2);
    let ada = user();
    let first = log_in(&store, &ada).await.unwrap();
    let second = log_in(&store, &ada).await.unwrap();

    let mut third = session(&[("user_id", json!(ada))]);
    let err = store.create(&mut third).await.unwrap_err();
    assert!(is_refused(&err), "the distinct error: {err:?}");
    let text = err.to_string();
    assert!(
        !text.contains(&ada) && !text.contains(&third.id.to_string()),
        "no user key, no session id: {text}"
    );
    assert_eq!(store.load(&third.id).await.unwrap(), None, "no row");
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 2);

    // A save that logs an anonymous session in is refused too, and leaves it anonymous.
    let mut anonymous = session(&[("cart", json!([1]))]);
    store.create(&mut anonymous).await.unwrap();
    let mut loaded = store.load(&anonymous.id).await.unwrap().unwrap();
    loaded.data.insert("user_id".into(), json!(ada));
    let err = store.save(&loaded).await.unwrap_err();
    assert!(is_refused(&err), "{err:?}");
    let still = store.load(&anonymous.id).await.unwrap().unwrap();
    assert_eq!(still.data.get("user_id"), None, "still anonymous");
    assert_eq!(still.data.get("cart"), Some(&json!([1])));

    for kept in [&first, &second] {
        assert!(store.load(&kept.id).await.unwrap().is_some(), "untouched");
    }
    // A session deleted since its load (logged out in another tab) saves as any save of it
    // does, refused or not: writing nothing, without an error.
    let mut gone = session(&[("cart", json!([]))]);
    store.create(&mut gone).await.unwrap();
    let mut loaded = store.load(&gone.id).await.unwrap().unwrap();
    store.delete(&gone.id).await.unwrap();
    loaded.data.insert("user_id".into(), json!(ada));
    store.save(&loaded).await.unwrap();
    assert_eq!(store.load(&gone.id).await.unwrap(), None, "stays deleted");
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 2);

    // Another user is not limited by ada's sessions.
    log_in(&store, &user()).await.unwrap();
}

/// At the limit, a session that already belongs to the user saves as before: it does not
/// count against itself.
pub async fn a_session_of_the_user_saves_as_before_at_the_limit<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = refusing(store, 1);
    let ada = user();
    let login = log_in(&store, &ada).await.unwrap();
    let mut loaded = store.load(&login.id).await.unwrap().unwrap();
    loaded.data.insert("theme".into(), json!("dark"));
    store.save(&loaded).await.unwrap();
    // Saved without a load (no version to keep): it writes under the user's lock, and the
    // session is not counted against itself.
    let mut whole = login.clone();
    whole.data.insert("theme".into(), json!("light"));
    store.save(&whole).await.unwrap();
    let stored = store.load(&login.id).await.unwrap().unwrap();
    assert_eq!(stored.data.get("theme"), Some(&json!("light")));
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 1);
}

/// A session of `user` written straight through the repository.
fn row_of(user: &str, created_at: OffsetDateTime, expires_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        id: format!("written-{}", Id::default()),
        data: b"never loaded".to_vec(),
        expires_at,
        user_key: Some(user.to_owned()),
        created_at,
        saved_at: created_at,
        listed_values: None,
        long_lived: false,
    }
}

/// A session past its expiry or its absolute lifetime takes no slot: a login beside it is
/// admitted.
pub async fn dead_sessions_take_no_slot_when_refusing_at_the_limit<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = refusing(
        &store
            .clone()
            .with_absolute_lifetime(StdDuration::from_secs(3600)),
        1,
    );
    let ada = user();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let outlived = row_of(&ada, now - Duration::hours(2), now + Duration::hours(1));
    let expired = row_of(&ada, now - Duration::minutes(1), now - Duration::seconds(1));
    for row in [outlived, expired] {
        assert!(store.repository().insert_if_absent(row).await.unwrap());
    }
    let login = log_in(&store, &ada).await.unwrap();
    assert!(store.load(&login.id).await.unwrap().is_some());
    let err = log_in(&store, &ada).await.unwrap_err();
    assert!(
        is_refused(&err),
        "the one live session fills the limit: {err:?}"
    );
}

/// A logout frees a slot: by deleting the session (axum-login's `logout`), or by a save that
/// takes the user away.
pub async fn a_logout_frees_a_slot_of_the_refusing_limit<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = refusing(store, 1);
    let ada = user();
    let first = log_in(&store, &ada).await.unwrap();
    assert!(is_refused(&log_in(&store, &ada).await.unwrap_err()));
    store.delete(&first.id).await.unwrap();

    let second = log_in(&store, &ada).await.unwrap();
    assert!(is_refused(&log_in(&store, &ada).await.unwrap_err()));
    let mut logged_out = store.load(&second.id).await.unwrap().unwrap();
    logged_out.data.remove("user_id");
    store.save(&logged_out).await.unwrap();

    log_in(&store, &ada).await.unwrap();
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 1);
}

/// How many live sessions each user may keep in the load test below.
const LIMIT: u64 = 2;

/// Logins of one user through three pools at once, half by `create`, half by a save that
/// gives an anonymous session the user, round after round, each round from no session: exactly
/// the limit are admitted, every other one fails with the distinct error (none with a deadlock
/// or anything else) and leaves no row of the user, and the user has exactly the limit.
///
/// 3 pools × 8 tasks × 100 rounds = 2,400 logins, 24 at once, each round from no session (on
/// SQLite 3 × 3 × 20 = 180: see `Replicas::rounds`).
pub async fn logins_of_one_user_through_several_pools_stop_at_the_refusing_limit<F, R, C>(
    fixture: &F,
) where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    const POOLS: usize = 3;
    let (tasks_per_pool, rounds) = (fixture.tasks(8).max(3), fixture.rounds(100).max(4));
    let mut stores = vec![refusing(fixture.store(), LIMIT)];
    for _ in 1..POOLS {
        stores.push(refusing(&fixture.replica().await, LIMIT));
    }
    let started = std::time::Instant::now();
    let (mut logins, mut failures, mut wrong_rounds) = (0, Vec::new(), Vec::new());
    for round in 0..rounds {
        let ada = user();
        // The anonymous sessions the saves log in, stored before the race.
        let mut anonymous = Vec::new();
        for store in &stores {
            for task in 0..tasks_per_pool {
                if task % 2 == 1 {
                    let mut record = session(&[("cart", json!([]))]);
                    store.create(&mut record).await.unwrap();
                    anonymous.push(Some(store.load(&record.id).await.unwrap().unwrap()));
                } else {
                    anonymous.push(None);
                }
            }
        }
        let tasks: Vec<_> = stores
            .iter()
            .flat_map(|store| std::iter::repeat_n(store, tasks_per_pool))
            .zip(anonymous)
            .map(|(store, anonymous)| {
                let (store, ada) = (store.clone(), ada.clone());
                tokio::spawn(async move {
                    match anonymous {
                        None => log_in(&store, &ada).await.map(|record| record.id),
                        Some(mut record) => {
                            record.data.insert("user_id".into(), json!(ada));
                            store.save(&record).await.map(|()| record.id)
                        }
                    }
                })
            })
            .collect();
        let (mut admitted, mut refused) = (Vec::new(), Vec::new());
        for task in tasks {
            logins += 1;
            match task.await.unwrap() {
                Ok(id) => admitted.push(id),
                Err(err) if is_refused(&err) => refused.push(()),
                Err(err) => failures.push(err.to_string()),
            }
        }
        let store = &stores[0];
        let listed = store.user_sessions(&ada).await.unwrap().len();
        let mut of_ada = 0;
        for id in &admitted {
            let record = store.load(id).await.unwrap();
            of_ada +=
                usize::from(record.is_some_and(|r| r.data.get("user_id") == Some(&json!(ada))));
        }
        if admitted.len() as u64 != LIMIT || listed as u64 != LIMIT || of_ada as u64 != LIMIT {
            wrong_rounds.push((round, admitted.len(), refused.len(), listed));
        }
    }
    eprintln!(
        "{logins} logins of one user through {POOLS} pools, refusing beyond {LIMIT}, in \
         {:.1?}: {} failed otherwise",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {logins} logins failed with another error than the refusal, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        wrong_rounds.is_empty(),
        "rounds (index, admitted, refused, listed) that did not admit exactly {LIMIT}: \
         {wrong_rounds:?}"
    );
}
