//! The features beyond the tower-sessions contract, written once against the store's public
//! API and run on each backend by `features_suite!`: the per-user index, write avoidance, ids
//! hashed at rest.

use std::{collections::HashSet, fmt::Debug, time::Duration as StdDuration};

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::{SessionRepository, SessionRow},
    session_store,
    testing::ManualClock,
    Id, Record, RepositoryStore, SeaOrmStoreError, SessionHandle, SessionStore,
};

use super::replicas::Replicas;

#[allow(unused_imports)] // Only the suites that run `features_suite!` name them.
pub use super::long_lived::{
    a_long_lived_session_outlives_the_absolute_lifetime_to_its_own,
    a_save_that_marks_a_session_lengthens_it_and_one_that_unmarks_it_shortens_it,
    cleanups_racing_saves_that_mark_sessions_never_delete_a_long_lived_one,
    long_lived_sessions_need_an_absolute_lifetime_no_longer_than_theirs,
    the_per_user_limit_counts_a_long_lived_session_past_the_short_lifetime,
};
#[allow(unused_imports)] // Only the suites that run `features_suite!` name them.
pub use super::operators::{
    ending_sessions_created_before_racing_creates_and_saves_fails_nothing,
    ending_sessions_created_before_racing_logins_and_logouts_fails_nothing,
    operators_count_the_live_sessions_all_and_per_user,
    operators_end_every_session_only_when_the_table_is_named,
    operators_end_the_sessions_created_before_an_instant_only,
    operators_per_user_calls_need_the_index,
};
#[allow(unused_imports)]
pub use super::refuse::{
    a_logout_frees_a_slot_of_the_refusing_limit,
    a_session_of_the_user_saves_as_before_at_the_limit,
    dead_sessions_take_no_slot_when_refusing_at_the_limit,
    logins_of_one_user_through_several_pools_stop_at_the_refusing_limit,
    refusing_at_the_limit_fails_a_login_with_its_own_error_and_writes_nothing,
};

/// A whole second, so instants survive every backend's precision.
fn soon(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::minutes(minutes)
}

fn session(values: &[(&str, Value)], expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: values
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        expiry_date,
    }
}

async fn created<S: SessionStore>(store: &S, values: &[(&str, Value)]) -> Record {
    let mut record = session(values, soon(60));
    store.create(&mut record).await.unwrap();
    record
}

fn indexed<R, C>(store: &RepositoryStore<R, C>) -> RepositoryStore<R, C>
where
    R: SessionRepository,
    C: Codec,
{
    store.clone().with_user_key("user_id").unwrap()
}

/// A user id no other test (sharing a table) uses.
fn user() -> String {
    format!("user-{}", Id::default())
}

pub async fn a_users_live_sessions_are_listed_by_handle_most_recently_active_first<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::new();
    let store = indexed(store).with_clock(clock.reader());
    let (ada, bob) = (user(), user());
    let now = soon(0); // one instant for the whole test: a second may tick over meanwhile
    let mut records = Vec::new();
    for minutes in [30, 10, 20] {
        let mut record = session(&[("user_id", json!(ada))], now + Duration::minutes(minutes));
        store.create(&mut record).await.unwrap();
        records.push(record);
        clock.advance(StdDuration::from_secs(1));
    }
    // The first becomes the most recently active.
    records[0].data.insert("seen".into(), json!(true));
    store.save(&records[0]).await.unwrap();
    let mut expired = session(&[("user_id", json!(ada))], now - Duration::minutes(5));
    store.create(&mut expired).await.unwrap();
    created(&store, &[("user_id", json!(bob))]).await;
    created(&store, &[("cart", json!([1, 2]))]).await; // anonymous

    let listed = store.user_sessions(&ada).await.unwrap();

    assert_eq!(
        listed.len(),
        3,
        "three live sessions; the expired one is not listed"
    );
    let handles: Vec<_> = listed.iter().map(|s| s.handle.clone()).collect();
    let expected: Vec<_> = [0, 2, 1]
        .iter()
        .map(|i| store.session_handle(records[*i].id))
        .collect();
    assert_eq!(handles, expected, "most recently active first");
    let expiries: Vec<_> = listed.iter().map(|s| s.expiry_date).collect();
    let minutes = |m| now + Duration::minutes(m);
    assert_eq!(expiries, [minutes(30), minutes(20), minutes(10)]);
    assert!(
        listed[0].last_active > listed[0].created_at,
        "saved since created"
    );
    assert!(listed[1].last_active > listed[2].last_active);
    for handle in &handles {
        for record in &records {
            assert!(
                !handle.as_str().contains(&record.id.to_string()),
                "a handle is not an id"
            );
        }
    }
    assert_eq!(store.user_sessions(&bob).await.unwrap().len(), 1);
    assert!(store.user_sessions(&user()).await.unwrap().is_empty());
}

pub async fn a_device_list_shows_when_each_session_began_was_active_and_its_listed_values<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::new();
    let store = indexed(store)
        .with_listed_values(["device", "/prefs/lang"])
        .unwrap()
        .with_clock(clock.reader());
    let ada = user();
    let before = clock.now();
    let mut phone = created(
        &store,
        &[
            ("user_id", json!(ada)),
            ("device", json!("Firefox on Android")),
            ("prefs", json!({"lang": "fr", "theme": "dark"})),
            ("secret", json!("not listed")),
        ],
    )
    .await;
    let laptop = created(&store, &[("user_id", json!(ada))]).await;
    let listed = store.user_sessions(&ada).await.unwrap();
    let of = |record: &Record| {
        let handle = store.session_handle(record.id);
        listed.iter().find(|s| s.handle == handle).unwrap().clone()
    };
    let listed_phone = of(&phone);
    assert_eq!(
        Value::Object(listed_phone.listed.clone()),
        json!({"device": "Firefox on Android", "/prefs/lang": "fr"}),
        "the chosen values, keyed by their path, and nothing else"
    );
    assert!(
        of(&laptop).listed.is_empty(),
        "a session without them lists none"
    );
    // Stored to the microsecond.
    assert!(listed_phone.created_at > before - Duration::microseconds(1));
    assert!(listed_phone.created_at <= listed_phone.last_active);

    clock.advance(StdDuration::from_secs(1));
    phone
        .data
        .insert("device".into(), json!("Firefox on Android 15"));
    store.save(&phone).await.unwrap();
    let listed = store.user_sessions(&ada).await.unwrap();
    let handle = store.session_handle(phone.id);
    let saved = listed.iter().find(|s| s.handle == handle).unwrap();
    assert_eq!(
        saved.created_at, listed_phone.created_at,
        "a save keeps the creation instant"
    );
    assert!(
        saved.last_active > listed_phone.last_active,
        "and moves the last activity"
    );
    assert_eq!(saved.listed["device"], json!("Firefox on Android 15"));
    assert_eq!(listed[0].handle, handle, "now the most recently active");

    let huge = "x".repeat(5000);
    phone.data.insert("device".into(), json!(huge));
    let err = store.save(&phone).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Encode(m) if m.contains("listed values")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("xxxx"));
}

pub async fn an_absolute_lifetime_ends_a_session_however_active<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::new();
    // Sessions expire an hour after their last save; the lifetime is half that.
    let lifetime = StdDuration::from_secs(30 * 60);
    let store = indexed(store)
        .with_absolute_lifetime(lifetime)
        .with_clock(clock.reader());
    let ada = user();
    let mut active = created(&store, &[("user_id", json!(ada))]).await;
    for step in 0..2 {
        clock.advance(StdDuration::from_secs(12 * 60));
        assert!(
            store.load(&active.id).await.unwrap().is_some(),
            "still within it"
        );
        active.data.insert("step".into(), json!(step));
        store.save(&active).await.unwrap(); // activity: does not make it younger
    }
    let young = created(&store, &[("user_id", json!(ada))]).await;
    clock.advance(StdDuration::from_secs(6 * 60) + StdDuration::from_micros(1));

    assert_eq!(
        store.load(&active.id).await.unwrap(),
        None,
        "just past 30 minutes old, active 6 minutes ago"
    );
    assert_eq!(
        crate::common::without_base(store.load(&young.id).await.unwrap()).as_ref(),
        Some(&young)
    );
    let listed = store.user_sessions(&ada).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, store.session_handle(young.id));
    assert_eq!(
        listed[0].expiry_date,
        listed[0].created_at + lifetime,
        "listed as ending with its lifetime, before its idle expiry"
    );

    // The cleanup deletes it: a store without the lifetime no longer finds it either.
    let unbounded = indexed(&store.clone().with_absolute_lifetime(StdDuration::MAX));
    assert!(store.delete_expired_sessions().await.unwrap() >= 1);
    assert_eq!(unbounded.load(&active.id).await.unwrap(), None);
    assert!(unbounded.load(&young.id).await.unwrap().is_some());
}

pub async fn the_per_user_limit_ends_the_least_recently_active_sessions<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::new();
    let unlimited = indexed(store).with_clock(clock.reader());
    let store = unlimited.clone().with_max_sessions_per_user(2).unwrap();
    let (ada, bob) = (user(), user());
    let bobs = created(&store, &[("user_id", json!(bob))]).await;
    let mut adas = Vec::new();
    for _ in 0..3 {
        adas.push(created(&store, &[("user_id", json!(ada))]).await);
        clock.advance(StdDuration::from_secs(1));
    }
    assert_eq!(
        store.load(&adas[0].id).await.unwrap(),
        None,
        "the oldest login ended"
    );
    assert!(store.load(&adas[1].id).await.unwrap().is_some());
    assert!(store.load(&adas[2].id).await.unwrap().is_some());
    assert!(
        store.load(&bobs.id).await.unwrap().is_some(),
        "other users untouched"
    );

    // Activity counts: the older of the two saves, then a third device logs in by a save that
    // gives an anonymous session to ada.
    let mut older = adas[1].clone();
    older.data.insert("seen".into(), json!(1));
    store.save(&older).await.unwrap();
    clock.advance(StdDuration::from_secs(1));
    let mut anonymous = created(&store, &[("cart", json!([]))]).await;
    anonymous.data.insert("user_id".into(), json!(ada));
    store.save(&anonymous).await.unwrap();

    assert_eq!(
        store.load(&adas[2].id).await.unwrap(),
        None,
        "now the least recently active"
    );
    assert!(store.load(&older.id).await.unwrap().is_some());
    assert!(store.load(&anonymous.id).await.unwrap().is_some());
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), 2);

    // A save that keeps the user ends nothing, even over the limit (set by a store without it),
    // where the save can tell that it kept the user. SQLite's cannot, and trims after every
    // save it writes with a user: down to the limit, never one of the most recent.
    let extra = created(&unlimited, &[("user_id", json!(ada))]).await;
    assert_eq!(unlimited.user_sessions(&ada).await.unwrap().len(), 3);
    let mut same_user = anonymous.clone();
    same_user.data.insert("cart".into(), json!([1]));
    store.save(&same_user).await.unwrap();
    let left = if trims_after_every_written_save(store.repository()) {
        2
    } else {
        3
    };
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), left);
    assert!(store.load(&extra.id).await.unwrap().is_some());
    assert!(store.load(&same_user.id).await.unwrap().is_some());

    let err = indexed(&store).with_max_sessions_per_user(0).unwrap_err();
    assert!(matches!(err, SeaOrmStoreError::InvalidConfiguration(_)));
}

/// Whether `repository` reports every save it writes with a user as a possible login (the
/// port allows it of a repository that cannot see the previous user in its one statement):
/// SQLite's. Told by its `Debug`, which names the dialect.
fn trims_after_every_written_save<R: Debug>(repository: &R) -> bool {
    format!("{repository:?}").contains("Sqlite")
}

pub async fn concurrent_logins_of_one_user_leave_exactly_the_limit<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    let store = indexed(store).with_max_sessions_per_user(3).unwrap();
    let ada = user();
    let logins: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            let ada = ada.clone();
            tokio::spawn(async move {
                let mut record = session(&[("user_id", json!(ada))], soon(60));
                store.create(&mut record).await.map(|()| record.id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for login in logins {
        ids.push(login.await.unwrap().expect("every login succeeds"));
    }

    let listed = store.user_sessions(&ada).await.unwrap();
    assert_eq!(
        listed.len(),
        3,
        "the user has exactly the limit: {listed:?}"
    );
    let mut loadable = 0;
    for id in &ids {
        loadable += usize::from(store.load(id).await.unwrap().is_some());
    }
    assert_eq!(loadable, 3);
}

/// How many live sessions each user may keep in the load tests below.
const LOAD_LIMIT: u64 = 3;

/// Logins of one user through three pools at once (three replicas of an application), round
/// after round: not one login fails, and every round leaves the user exactly the limit.
///
/// 3 pools × 8 tasks × 125 rounds = 3,000 logins, each a trim racing 23 others of the same
/// user: a failure once in 1,000 logins (a deadlock, a lost row) fails this test with a
/// probability of 95% (on SQLite, fewer: see [`Replicas::rounds`]).
pub async fn logins_of_one_user_through_several_pools_never_fail_and_leave_exactly_the_limit<
    F,
    R,
    C,
>(
    fixture: &F,
) where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    const POOLS: usize = 3;
    let (tasks_per_pool, rounds) = (fixture.tasks(8), fixture.rounds(125));
    let limited = |store: &RepositoryStore<R, C>| {
        indexed(store)
            .with_max_sessions_per_user(LOAD_LIMIT)
            .unwrap()
    };
    let mut stores = vec![limited(fixture.store())];
    for _ in 1..POOLS {
        stores.push(limited(&fixture.replica().await));
    }
    let started = std::time::Instant::now();
    let (mut logins, mut failures, mut wrong_rounds) = (0, Vec::new(), Vec::new());
    for round in 0..rounds {
        let ada = user();
        let tasks: Vec<_> = stores
            .iter()
            .flat_map(|store| std::iter::repeat_n(store, tasks_per_pool))
            .map(|store| {
                let (store, ada) = (store.clone(), ada.clone());
                tokio::spawn(async move {
                    let mut record = session(&[("user_id", json!(ada))], soon(60));
                    store.create(&mut record).await
                })
            })
            .collect();
        for task in tasks {
            logins += 1;
            if let Err(err) = task.await.unwrap() {
                failures.push(err.to_string());
            }
        }
        let left = stores[0].user_sessions(&ada).await.unwrap().len();
        if left as u64 != LOAD_LIMIT {
            wrong_rounds.push((round, left));
        }
    }
    eprintln!(
        "{logins} logins of one user through {POOLS} pools in {:.1?}: {} failed",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {logins} logins failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        wrong_rounds.is_empty(),
        "rounds (index, sessions left) that did not leave exactly {LOAD_LIMIT}: {wrong_rounds:?}"
    );
}

/// With a limit of one, 8 tasks log two users in by `create` while 8 others save 200
/// anonymous sessions of nobody's: the trims never make a save fail (on MariaDB they did, as
/// deadlock victims), nor a login.
///
/// 800 logins (each trimming) and 2,000 saves.
pub async fn logins_racing_unrelated_saves_fail_no_operation<F, R, C>(fixture: &F)
where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    const SESSIONS: usize = 200;
    let (login_tasks, save_tasks) = (fixture.tasks(8), fixture.tasks(8));
    let logins_per_task = fixture.rounds(800) / login_tasks;
    let passes = fixture.rounds(10);
    let store = indexed(fixture.store())
        .with_max_sessions_per_user(1)
        .unwrap();
    let users = [user(), user()];
    let mut anonymous = Vec::new();
    for _ in 0..SESSIONS {
        anonymous.push(created(&store, &[("cart", json!([]))]).await);
    }
    let started = std::time::Instant::now();
    let logins: Vec<_> = (0..login_tasks)
        .map(|task| {
            let (store, users) = (store.clone(), users.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for login in 0..logins_per_task {
                    let user = &users[(task + login) % 2];
                    let mut record = session(&[("user_id", json!(user))], soon(60));
                    if let Err(err) = store.create(&mut record).await {
                        failures.push(err.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let saves: Vec<_> = anonymous
        .chunks(SESSIONS.div_ceil(save_tasks))
        .map(|sessions| {
            let (store, mut sessions) = (store.clone(), sessions.to_vec());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for pass in 0..passes {
                    for record in &mut sessions {
                        record.data.insert("cart".into(), json!([pass]));
                        if let Err(err) = store.save(record).await {
                            failures.push(err.to_string());
                        }
                    }
                }
                (sessions, failures)
            })
        })
        .collect();
    let mut login_failures = Vec::new();
    for task in logins {
        login_failures.extend(task.await.unwrap());
    }
    let (mut saved, mut save_failures) = (Vec::new(), Vec::new());
    for task in saves {
        let (sessions, failures) = task.await.unwrap();
        saved.extend(sessions);
        save_failures.extend(failures);
    }
    let (login_count, save_count) = (login_tasks * logins_per_task, saved.len() * passes);
    eprintln!(
        "{login_count} logins and {save_count} unrelated saves in {:.1?}: {} and {} failed",
        started.elapsed(),
        login_failures.len(),
        save_failures.len()
    );
    assert!(
        save_failures.is_empty(),
        "{} of {save_count} unrelated saves failed, e.g. {:?}",
        save_failures.len(),
        &save_failures[..save_failures.len().min(3)]
    );
    assert!(
        login_failures.is_empty(),
        "{} of {login_count} logins failed, e.g. {:?}",
        login_failures.len(),
        &login_failures[..login_failures.len().min(3)]
    );
    for user in &users {
        assert_eq!(store.user_sessions(user).await.unwrap().len(), 1);
    }
    for record in &saved {
        assert_eq!(
            crate::common::without_base(store.load(&record.id).await.unwrap()).as_ref(),
            Some(record),
            "every save is stored"
        );
    }
}

/// "Log out everywhere" and "log out my other devices" racing logins of the same user through
/// two pools: not one operation fails (each deletes a user's rows, as the trims do), and once
/// all have returned the user has at most the limit.
///
/// 40 rounds of 12 logins, 2 "everywhere" and 2 "other devices": 640 operations (on SQLite,
/// fewer: see [`Replicas::rounds`]).
pub async fn logging_out_everywhere_racing_logins_fails_no_operation<F, R, C>(fixture: &F)
where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    let (logins, logouts) = (fixture.tasks(12), fixture.tasks(2));
    let limited = |store: &RepositoryStore<R, C>| {
        indexed(store)
            .with_max_sessions_per_user(LOAD_LIMIT)
            .unwrap()
    };
    let stores = [limited(fixture.store()), limited(&fixture.replica().await)];
    let started = std::time::Instant::now();
    let (mut operations, mut failures) = (0, Vec::new());
    for _ in 0..fixture.rounds(40) {
        let ada = user();
        let current = created(&stores[0], &[("user_id", json!(ada))]).await;
        let mut tasks = Vec::new();
        for login in 0..logins {
            let (store, user) = (stores[login % 2].clone(), ada.clone());
            tasks.push(tokio::spawn(async move {
                let mut record = session(&[("user_id", json!(user))], soon(60));
                store.create(&mut record).await.map_err(|e| e.to_string())
            }));
        }
        for logout in 0..logouts {
            let (store, user) = (stores[logout % 2].clone(), ada.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .delete_user_sessions(&user)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }));
            let (store, user) = (stores[(logout + 1) % 2].clone(), ada.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .delete_user_sessions_except(&user, current.id)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }));
        }
        for task in tasks {
            operations += 1;
            if let Err(err) = task.await.unwrap() {
                failures.push(err);
            }
        }
        let left = stores[0].user_sessions(&ada).await.unwrap().len();
        assert!(left as u64 <= LOAD_LIMIT, "{left} sessions left");
    }
    eprintln!(
        "{operations} logins and logouts of one user in {:.1?}: {} failed",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {operations} operations failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

/// A session of `user` written straight through the repository, created and last saved when
/// the test says: what the service's clock cannot be made to do.
fn row_of(
    user: &str,
    created_at: OffsetDateTime,
    saved_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> SessionRow {
    SessionRow {
        id: format!("written-{}", Id::default()),
        data: b"never loaded".to_vec(),
        expires_at,
        user_key: Some(user.to_owned()),
        created_at,
        saved_at,
        listed_values: None,
        long_lived: false,
    }
}

/// A session past its absolute lifetime, or past its expiry, takes no slot of the per-user
/// limit, however recently it was saved: a login ends none of the user's live sessions for it.
pub async fn dead_sessions_take_no_slot_of_the_per_user_limit<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store)
        .with_absolute_lifetime(StdDuration::from_secs(3600))
        .with_max_sessions_per_user(2)
        .unwrap();
    let ada = user();
    let live = created(&store, &[("user_id", json!(ada))]).await;
    // Saved after `live`, so ranked before it by their last activity, but dead: one created
    // two hours ago (past the lifetime), one whose expiry has passed.
    let now = OffsetDateTime::now_utc();
    let outlived = row_of(
        &ada,
        now - Duration::hours(2),
        now + Duration::seconds(1),
        now + Duration::hours(1),
    );
    let expired = row_of(
        &ada,
        now,
        now + Duration::seconds(1),
        now - Duration::seconds(1),
    );
    for row in [outlived.clone(), expired.clone()] {
        assert!(store.repository().insert_if_absent(row).await.unwrap());
    }
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), 1);

    let new_device = created(&store, &[("user_id", json!(ada))]).await;

    assert_eq!(
        crate::common::without_base(store.load(&live.id).await.unwrap()).as_ref(),
        Some(&live),
        "two live sessions, within the limit of two: neither is ended"
    );
    assert!(store.load(&new_device.id).await.unwrap().is_some());
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), 2);
}

pub async fn the_lifetime_limit_and_device_list_hold_with_hashed_ids_and_write_avoidance<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::new();
    let store = indexed(store)
        .with_hashed_ids()
        .with_touch_after(StdDuration::from_secs(60))
        .with_absolute_lifetime(StdDuration::from_secs(3600))
        .with_max_sessions_per_user(2)
        .unwrap()
        .with_listed_values(["device"])
        .unwrap()
        .with_clock(clock.reader());
    let ada = user();
    let first = created(&store, &[("user_id", json!(ada)), ("device", json!("a"))]).await;
    clock.advance(StdDuration::from_secs(1));
    let second = created(&store, &[("user_id", json!(ada)), ("device", json!("b"))]).await;
    clock.advance(StdDuration::from_secs(1));

    // A login by a save, through write avoidance's conditional update.
    let mut third = created(&store, &[("device", json!("c"))]).await;
    third.data.insert("user_id".into(), json!(ada));
    store.save(&third).await.unwrap();
    assert_eq!(store.load(&first.id).await.unwrap(), None, "the limit held");
    let listed = store.user_sessions(&ada).await.unwrap();
    let devices: Vec<_> = listed.iter().map(|s| s.listed["device"].clone()).collect();
    assert_eq!(devices, [json!("c"), json!("b")]);
    assert_eq!(listed[0].handle, store.session_handle(third.id));

    // An unchanged save within the window writes nothing: its last activity stays.
    clock.advance(StdDuration::from_secs(1));
    let mut touched = store.load(&second.id).await.unwrap().expect("live");
    touched.expiry_date += Duration::seconds(1);
    store.save(&touched).await.unwrap();
    let again = store.user_sessions(&ada).await.unwrap();
    assert_eq!(
        again[1].last_active, listed[1].last_active,
        "nothing written"
    );
    assert_eq!(
        crate::common::without_base(store.load(&second.id).await.unwrap()).as_ref(),
        Some(&second)
    );
}

pub async fn logging_out_everywhere_deletes_every_session_of_the_user_only<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let (ada, bob) = (user(), user());
    let mut adas = Vec::new();
    for _ in 0..3 {
        adas.push(created(&store, &[("user_id", json!(ada))]).await);
    }
    let bobs = created(&store, &[("user_id", json!(bob))]).await;

    assert_eq!(store.delete_user_sessions(&ada).await.unwrap(), 3);

    for record in &adas {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    assert_eq!(
        crate::common::without_base(store.load(&bobs.id).await.unwrap()).as_ref(),
        Some(&bobs)
    );
    assert_eq!(store.delete_user_sessions(&ada).await.unwrap(), 0);
}

pub async fn logging_out_other_devices_keeps_the_current_session<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let ada = user();
    let current = created(&store, &[("user_id", json!(ada))]).await;
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(created(&store, &[("user_id", json!(ada))]).await);
    }

    let deleted = store
        .delete_user_sessions_except(&ada, current.id)
        .await
        .unwrap();

    assert_eq!(deleted, 2);
    assert_eq!(
        crate::common::without_base(store.load(&current.id).await.unwrap()).as_ref(),
        Some(&current)
    );
    for record in &others {
        assert_eq!(store.load(&record.id).await.unwrap(), None);
    }
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), 1);
}

pub async fn signing_out_one_device_by_its_handle<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let (ada, bob) = (user(), user());
    let laptop = created(&store, &[("user_id", json!(ada))]).await;
    let phone = created(&store, &[("user_id", json!(ada))]).await;
    let bobs = created(&store, &[("user_id", json!(bob))]).await;

    let phone_handle = store.session_handle(phone.id);
    assert!(store
        .delete_user_session(&ada, &phone_handle)
        .await
        .unwrap());

    assert_eq!(store.load(&phone.id).await.unwrap(), None);
    assert!(store.load(&laptop.id).await.unwrap().is_some());
    assert!(!store
        .delete_user_session(&ada, &phone_handle)
        .await
        .unwrap());
    // Another user's handle, or a made-up one, deletes nothing.
    let bobs_handle = store.session_handle(bobs.id);
    assert!(!store.delete_user_session(&ada, &bobs_handle).await.unwrap());
    let forged = SessionHandle::new("00000000000000000000000000000000");
    assert!(!store.delete_user_session(&ada, &forged).await.unwrap());
    assert!(store.load(&bobs.id).await.unwrap().is_some());
}

pub async fn a_session_follows_its_user_across_log_in_and_log_out<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let (ada, bob) = (user(), user());
    let mut record = created(&store, &[("cart", json!(["tea"]))]).await;
    assert!(store.user_sessions(&ada).await.unwrap().is_empty());

    record.data.insert("user_id".into(), json!(ada));
    store.save(&record).await.unwrap();
    assert_eq!(store.user_sessions(&ada).await.unwrap().len(), 1);

    record.data.insert("user_id".into(), json!(bob));
    store.save(&record).await.unwrap();
    assert!(store.user_sessions(&ada).await.unwrap().is_empty());
    assert_eq!(store.user_sessions(&bob).await.unwrap().len(), 1);

    record.data.remove("user_id");
    store.save(&record).await.unwrap();
    assert!(store.user_sessions(&bob).await.unwrap().is_empty());
    assert_eq!(store.delete_user_sessions(&bob).await.unwrap(), 0);
    assert!(store.load(&record.id).await.unwrap().is_some());
}

pub async fn the_user_can_be_found_by_json_pointer_and_number<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    // axum-login 0.18 keeps its user id inside its own session value.
    let store = store
        .clone()
        .with_user_key("/axum-login.data/user_id")
        .unwrap();
    let number = i64::from(rand_u32());
    created(
        &store,
        &[(
            "axum-login.data",
            json!({"user_id": number, "auth_hash": [1, 2, 3]}),
        )],
    )
    .await;

    let listed = store.user_sessions(&number.to_string()).await.unwrap();
    assert_eq!(listed.len(), 1, "a number is indexed in decimal");
}

fn rand_u32() -> u32 {
    (Id::default().0 as u32) | 1
}

pub async fn per_user_operations_need_the_index<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let err = store.user_sessions("42").await.unwrap_err();
    assert!(
        matches!(&err, SeaOrmStoreError::InvalidConfiguration(m) if m.contains("with_user_key")),
        "{err}"
    );
    assert!(store.delete_user_sessions("42").await.is_err());
    assert!(store
        .delete_user_sessions_except("42", Id::default())
        .await
        .is_err());
    assert!(store.clone().with_user_key("").is_err());
}

pub async fn an_overlong_user_key_is_an_encode_error_and_nothing_is_written<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let mut record = session(&[("user_id", json!("u".repeat(256)))], soon(60));
    let err = store.create(&mut record).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Encode(m) if m.contains("256 bytes")),
        "{err:?}"
    );
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    record.data.insert("user_id".into(), json!("u".repeat(255)));
    store.create(&mut record).await.unwrap();
    assert_eq!(
        store.user_sessions(&"u".repeat(255)).await.unwrap().len(),
        1
    );
}

pub async fn a_save_within_the_touch_window_changing_nothing_keeps_the_stored_row<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = store.clone().with_touch_after(StdDuration::from_secs(60));
    let mut record = session(&[("user_id", json!(7))], soon(60));
    store.create(&mut record).await.unwrap();
    let (id, first_expiry) = (record.id, record.expiry_date);
    // Write avoidance measures a save against what its request loaded.
    let loaded = || async { store.load(&id).await.unwrap().expect("a live session") };

    // The same values, 30 s later: nothing is written, the stored expiry stays.
    let mut save = loaded().await;
    save.expiry_date = first_expiry + Duration::seconds(30);
    store.save(&save).await.unwrap();
    assert_eq!(stored_expiry(&store, &id).await, first_expiry);

    // Past the window: written.
    let mut save = loaded().await;
    save.expiry_date = first_expiry + Duration::seconds(90);
    store.save(&save).await.unwrap();
    assert_eq!(stored_expiry(&store, &id).await, save.expiry_date);

    // A changed value is always written, however close the expiry.
    let mut save = loaded().await;
    save.data.insert("cart".into(), json!(["tea"]));
    save.expiry_date += Duration::seconds(1);
    store.save(&save).await.unwrap();
    record.data.insert("cart".into(), json!(["tea"]));
    record.expiry_date = save.expiry_date;
    assert_eq!(
        crate::common::without_base(store.load(&id).await.unwrap()).as_ref(),
        Some(&record)
    );

    // A shorter expiry is always written.
    let mut save = loaded().await;
    save.expiry_date -= Duration::seconds(30);
    store.save(&save).await.unwrap();
    assert_eq!(stored_expiry(&store, &id).await, save.expiry_date);

    // A record this store did not load (no base: cleared in its request, or handed to the
    // store directly) is always written.
    record.expiry_date = save.expiry_date + Duration::seconds(1);
    store.save(&record).await.unwrap();
    assert_eq!(stored_expiry(&store, &id).await, record.expiry_date);
}

pub async fn hashed_ids_keep_every_operation_working<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let hashed = indexed(store).with_hashed_ids();
    let ada = user();
    let mut record = created(&hashed, &[("user_id", json!(ada))]).await;
    let other = created(&hashed, &[("user_id", json!(ada))]).await;

    assert_eq!(
        crate::common::without_base(hashed.load(&record.id).await.unwrap()).as_ref(),
        Some(&record)
    );
    assert_eq!(
        hashed
            .repository()
            .find_unexpired(
                &record.id.to_string(),
                OffsetDateTime::now_utc(),
                None,
                None
            )
            .await
            .unwrap(),
        None,
        "no row is stored under the plain id"
    );
    record.data.insert("cart".into(), json!([1]));
    hashed.save(&record).await.unwrap();
    assert_eq!(
        crate::common::without_base(hashed.load(&record.id).await.unwrap()).as_ref(),
        Some(&record)
    );

    let listed: HashSet<_> = hashed
        .user_sessions(&ada)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.handle)
        .collect();
    assert_eq!(
        listed,
        [
            hashed.session_handle(record.id),
            hashed.session_handle(other.id)
        ]
        .into()
    );
    assert_eq!(
        hashed
            .delete_user_sessions_except(&ada, record.id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(hashed.load(&other.id).await.unwrap(), None);

    // The documented trade-off: a store without hashing does not find these rows.
    let plain = indexed(store);
    assert_eq!(plain.load(&record.id).await.unwrap(), None);

    hashed.delete(&record.id).await.unwrap();
    assert_eq!(hashed.load(&record.id).await.unwrap(), None);
}

pub async fn write_avoidance_re_indexes_an_unchanged_session_when_the_index_changes<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let window = StdDuration::from_secs(60);
    let unindexed = store.clone().with_touch_after(window);
    let by_id = unindexed.clone().with_user_key("user_id").unwrap();
    let by_email = unindexed.clone().with_user_key("email").unwrap();
    let (ada, email) = (user(), user());
    let mut record = session(
        &[("user_id", json!(ada)), ("email", json!(email))],
        soon(60),
    );
    unindexed.create(&mut record).await.unwrap();
    assert!(by_id.user_sessions(&ada).await.unwrap().is_empty());

    // Each store saves what it loaded, changing no value, within the window.
    async fn touched<R: SessionRepository + Debug, C: Codec + Debug>(
        store: &RepositoryStore<R, C>,
        id: &Id,
    ) -> Record {
        let mut loaded = store.load(id).await.unwrap().expect("a live session");
        loaded.expiry_date += Duration::seconds(10);
        loaded
    }
    // The index is switched on: an unchanged save re-indexes the session.
    by_id
        .save(&touched(&by_id, &record.id).await)
        .await
        .unwrap();
    assert_eq!(
        by_id.user_sessions(&ada).await.unwrap().len(),
        1,
        "an unchanged save re-indexes the session"
    );
    // The index moves to another value: the same session now belongs to that key.
    by_email
        .save(&touched(&by_email, &record.id).await)
        .await
        .unwrap();
    assert!(by_id.user_sessions(&ada).await.unwrap().is_empty());
    assert_eq!(by_email.user_sessions(&email).await.unwrap().len(), 1);
    // The index is switched off again: "log out everywhere" of a later store must not find a
    // stale key, so the unchanged save clears it.
    unindexed
        .save(&touched(&unindexed, &record.id).await)
        .await
        .unwrap();
    assert!(by_email.user_sessions(&email).await.unwrap().is_empty());
}

pub async fn a_session_revoked_while_loaded_stays_revoked<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    for store in [
        indexed(store),
        indexed(store).with_touch_after(StdDuration::from_secs(60)),
    ] {
        let ada = user();
        let record = created(&store, &[("user_id", json!(ada))]).await;
        let mut loaded = store.load(&record.id).await.unwrap().unwrap();
        assert_eq!(store.delete_user_sessions(&ada).await.unwrap(), 1);
        // Unchanged, in the window, and changed: neither brings it back.
        store.save(&loaded).await.unwrap();
        loaded.data.insert("cart".into(), json!(["tea"]));
        store.save(&loaded).await.unwrap();
        assert_eq!(store.load(&record.id).await.unwrap(), None);
        assert!(store.user_sessions(&ada).await.unwrap().is_empty());
    }
}

pub async fn hashed_rows_hold_no_session_id<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    use sha2::{Digest, Sha256};
    use tower_sessions_seaorm_store::codec::SessionId;
    let hashed = store.clone().with_hashed_ids();
    let mut record = created(&hashed, &[("user_id", json!(user()))]).await;
    record.data.insert("cart".into(), json!([1]));
    hashed.save(&record).await.unwrap();

    // The documented key: the lowercase hex SHA-256 of the id's text.
    let key = hex::encode(Sha256::digest(record.id.to_string().as_bytes()));
    let stored = hashed
        .repository()
        .find_unexpired(&key, OffsetDateTime::now_utc(), None, None)
        .await
        .unwrap()
        .expect("stored under the hash of its id");
    let stored = stored.data;
    let decoded = hashed.codec().decode(&stored).unwrap();
    assert_eq!(decoded.id, SessionId(0), "the stored record holds no id");
    let id_text = record.id.to_string();
    assert!(!stored
        .windows(id_text.len())
        .any(|w| w == id_text.as_bytes()));
    let id_bytes = record.id.0.to_le_bytes();
    assert!(!stored.windows(16).any(|w| w == id_bytes));
    let id_bytes = record.id.0.to_be_bytes();
    assert!(!stored.windows(16).any(|w| w == id_bytes));
    // And yet it loads as the session it is.
    assert_eq!(
        crate::common::without_base(hashed.load(&record.id).await.unwrap()).as_ref(),
        Some(&record)
    );
}

pub async fn a_user_key_with_a_nul_is_an_encode_error_and_nothing_is_written<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = indexed(store);
    let mut record = session(&[("user_id", json!("ada\u{0}lovelace"))], soon(60));
    let err = store.create(&mut record).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Encode(m) if m.contains("NUL") && !m.contains("ada")),
        "{err:?}"
    );
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    assert!(store
        .user_sessions("ada\u{0}lovelace")
        .await
        .unwrap()
        .is_empty());
}

async fn stored_expiry<S: SessionStore>(store: &S, id: &Id) -> OffsetDateTime {
    store.load(id).await.unwrap().unwrap().expiry_date
}

/// Runs every test of this file against the store `$fixture` makes.
#[macro_export]
macro_rules! features_suite {
    ($fixture:expr) => {
        $crate::features_suite!(@tests $fixture;
            a_users_live_sessions_are_listed_by_handle_most_recently_active_first,
            a_device_list_shows_when_each_session_began_was_active_and_its_listed_values,
            an_absolute_lifetime_ends_a_session_however_active,
            the_per_user_limit_ends_the_least_recently_active_sessions,
            concurrent_logins_of_one_user_leave_exactly_the_limit,
            dead_sessions_take_no_slot_of_the_per_user_limit,
            the_lifetime_limit_and_device_list_hold_with_hashed_ids_and_write_avoidance,
            logging_out_everywhere_deletes_every_session_of_the_user_only,
            logging_out_other_devices_keeps_the_current_session,
            signing_out_one_device_by_its_handle,
            a_session_follows_its_user_across_log_in_and_log_out,
            the_user_can_be_found_by_json_pointer_and_number,
            per_user_operations_need_the_index,
            an_overlong_user_key_is_an_encode_error_and_nothing_is_written,
            a_save_within_the_touch_window_changing_nothing_keeps_the_stored_row,
            hashed_ids_keep_every_operation_working,
            write_avoidance_re_indexes_an_unchanged_session_when_the_index_changes,
            a_session_revoked_while_loaded_stays_revoked,
            hashed_rows_hold_no_session_id,
            a_user_key_with_a_nul_is_an_encode_error_and_nothing_is_written,
            operators_count_the_live_sessions_all_and_per_user,
            operators_end_the_sessions_created_before_an_instant_only,
            operators_end_every_session_only_when_the_table_is_named,
            operators_per_user_calls_need_the_index,
            refusing_at_the_limit_fails_a_login_with_its_own_error_and_writes_nothing,
            a_session_of_the_user_saves_as_before_at_the_limit,
            dead_sessions_take_no_slot_when_refusing_at_the_limit,
            a_logout_frees_a_slot_of_the_refusing_limit,
            a_long_lived_session_outlives_the_absolute_lifetime_to_its_own,
            a_save_that_marks_a_session_lengthens_it_and_one_that_unmarks_it_shortens_it,
            the_per_user_limit_counts_a_long_lived_session_past_the_short_lifetime,
            long_lived_sessions_need_an_absolute_lifetime_no_longer_than_theirs,
        );
    };
    (@tests $fixture:expr; $($name:ident),* $(,)?) => {
        mod features {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = $fixture.await;
                    $crate::common::features::$name(&fixture.store).await;
                    fixture.finish().await;
                }
            )*
            $crate::features_suite!(@replicas $fixture;
                logins_of_one_user_through_several_pools_never_fail_and_leave_exactly_the_limit,
                logins_racing_unrelated_saves_fail_no_operation,
                logging_out_everywhere_racing_logins_fails_no_operation,
                ending_sessions_created_before_racing_creates_and_saves_fails_nothing,
                ending_sessions_created_before_racing_logins_and_logouts_fails_nothing,
                logins_of_one_user_through_several_pools_stop_at_the_refusing_limit,
                cleanups_racing_saves_that_mark_sessions_never_delete_a_long_lived_one,
            );
        }
    };
    // Tests that open more pools on the fixture's table (`Replicas`).
    (@replicas $fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture.await;
                $crate::common::features::$name(&fixture).await;
                fixture.finish().await;
            }
        )*
    };
}
