//! Long-lived sessions ("remember me"), written once against the store's public API and run on
//! each backend by `features_suite!`: a session the application marks lives to its own absolute
//! lifetime, every other to the store's, in loads, lists, counts, the per-user limit and the
//! cleanup. Time is the stores' manual clock.

use std::{fmt::Debug, time::Duration as StdDuration};

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec, repository::SessionRepository, testing::ManualClock, Id, Record, RepositoryStore,
    SeaOrmStoreError, SessionStore,
};

use super::replicas::Replicas;

const HOUR: StdDuration = StdDuration::from_secs(60 * 60);
/// The store's absolute lifetime.
const SHORT: StdDuration = HOUR;
/// The long-lived sessions' lifetime.
const LONG: StdDuration = StdDuration::from_secs(24 * 60 * 60);

fn user() -> String {
    format!("user-{}", Id::default())
}

fn whole_second() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// `store` with the per-user index, an hour's absolute lifetime, a day's for the sessions whose
/// `remember_me` is `true`, and `clock`.
fn remembering<R, C>(store: &RepositoryStore<R, C>, clock: &ManualClock) -> RepositoryStore<R, C>
where
    R: SessionRepository,
    C: Codec,
{
    store
        .clone()
        .with_clock(clock.reader())
        .with_user_key("user_id")
        .unwrap()
        .with_absolute_lifetime(SHORT)
        .with_long_lived_sessions("remember_me", LONG)
        .unwrap()
}

/// A session of `user` holding `remember_me` (absent when `None`), idle expiry a month away,
/// so only the lifetimes end it.
async fn created<S: SessionStore>(store: &S, user: &str, remember_me: Option<Value>) -> Record {
    let mut data = std::collections::HashMap::from([("user_id".to_owned(), json!(user))]);
    if let Some(remember_me) = remember_me {
        data.insert("remember_me".to_owned(), remember_me);
    }
    let mut record = Record {
        id: Id::default(),
        data,
        expiry_date: whole_second() + Duration::days(30),
    };
    store.create(&mut record).await.unwrap();
    record
}

pub async fn a_long_lived_session_outlives_the_absolute_lifetime_to_its_own<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::at(whole_second());
    let store = remembering(store, &clock);
    let ada = user();
    let remembered = created(&store, &ada, Some(json!(true))).await;
    // Only JSON `true` marks a session: not a string, not a number, not its absence.
    let mut short = Vec::new();
    for mark in [
        None,
        Some(json!("true")),
        Some(json!(1)),
        Some(json!(false)),
    ] {
        short.push(created(&store, &ada, mark).await);
    }
    let created_at = clock.now();
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 5);

    clock.advance(SHORT + StdDuration::from_secs(1));
    assert!(store.load(&remembered.id).await.unwrap().is_some());
    for record in &short {
        assert_eq!(
            store.load(&record.id).await.unwrap(),
            None,
            "{:?}",
            record.data
        );
    }
    let listed = store.user_sessions(&ada).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, store.session_handle(remembered.id));
    assert_eq!(
        listed[0].expiry_date,
        created_at + LONG,
        "ends with its own lifetime"
    );
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 1);
    assert_eq!(store.count_sessions().await.unwrap(), 1);

    // The cleanup past the short lifetime deletes the short sessions only.
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 4);
    assert!(store.load(&remembered.id).await.unwrap().is_some());

    // Up to its own lifetime, not past it.
    clock.set(created_at + LONG - Duration::seconds(1));
    assert!(store.load(&remembered.id).await.unwrap().is_some());
    clock.set(created_at + LONG);
    assert_eq!(store.load(&remembered.id).await.unwrap(), None);
    assert!(store.user_sessions(&ada).await.unwrap().is_empty());
    assert_eq!(store.count_sessions().await.unwrap(), 0);
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 1);
}

pub async fn a_save_that_marks_a_session_lengthens_it_and_one_that_unmarks_it_shortens_it<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::at(whole_second());
    let store = remembering(store, &clock);
    let ada = user();
    let plain = created(&store, &ada, None).await;
    clock.advance(HOUR / 2);
    // The application decides, at a later request: "remember me" ticked after sign-in.
    let mut loaded = store.load(&plain.id).await.unwrap().unwrap();
    loaded.data.insert("remember_me".into(), json!(true));
    store.save(&loaded).await.unwrap();

    clock.advance(HOUR);
    let mut loaded = store
        .load(&plain.id)
        .await
        .unwrap()
        .expect("marked: lives on");
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 0);

    // Unticked: the short lifetime again, counted from its creation, so it has ended.
    loaded.data.remove("remember_me");
    store.save(&loaded).await.unwrap();
    assert_eq!(store.load(&plain.id).await.unwrap(), None);
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 0);
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 1);
}

/// A long-lived session past the short lifetime is live: it takes a slot of the per-user limit
/// (and the trim may end it), while a short one past it takes none.
pub async fn the_per_user_limit_counts_a_long_lived_session_past_the_short_lifetime<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let clock = ManualClock::at(whole_second());
    let store = remembering(store, &clock)
        .with_max_sessions_per_user(2)
        .unwrap();
    let ada = user();
    let remembered = created(&store, &ada, Some(json!(true))).await;
    let outlived = created(&store, &ada, None).await;
    clock.advance(SHORT + StdDuration::from_secs(1));

    let first = created(&store, &ada, None).await;
    assert!(
        store.load(&remembered.id).await.unwrap().is_some(),
        "two live sessions: none ended"
    );
    clock.advance(StdDuration::from_secs(1));
    let second = created(&store, &ada, None).await;
    assert_eq!(
        store.load(&remembered.id).await.unwrap(),
        None,
        "three live sessions: the least recently active, the remembered one, ended"
    );
    assert_eq!(store.count_user_sessions(&ada).await.unwrap(), 2);
    for record in [&first, &second] {
        assert!(store.load(&record.id).await.unwrap().is_some());
    }
    assert_eq!(store.load(&outlived.id).await.unwrap(), None);
}

/// The builder refuses a long lifetime without an absolute one, or shorter than it.
pub async fn long_lived_sessions_need_an_absolute_lifetime_no_longer_than_theirs<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let refused = |result: Result<RepositoryStore<R, C>, SeaOrmStoreError>| {
        matches!(result, Err(SeaOrmStoreError::InvalidConfiguration(_)))
    };
    assert!(refused(
        store.clone().with_long_lived_sessions("remember_me", LONG)
    ));
    let short = store.clone().with_absolute_lifetime(LONG);
    assert!(refused(
        short.clone().with_long_lived_sessions("remember_me", SHORT)
    ));
    assert!(refused(short.clone().with_long_lived_sessions("", LONG)));
    assert!(short
        .with_long_lived_sessions("/prefs/remember", LONG)
        .is_ok());
}

/// Saves marking and unmarking sessions on one pool while cleanups past the short lifetime run
/// on another: no save fails, and no session marked when the cleanup ran is deleted by it.
pub async fn cleanups_racing_saves_that_mark_sessions_never_delete_a_long_lived_one<F, R, C>(
    fixture: &F,
) where
    F: Replicas<Store = RepositoryStore<R, C>>,
    R: SessionRepository + Debug + Clone,
    C: Codec + Debug,
{
    let clock = ManualClock::at(whole_second());
    let stores = [
        remembering(fixture.store(), &clock).with_cleanup_batch_size(7),
        remembering(&fixture.replica().await, &clock).with_cleanup_batch_size(7),
    ];
    let tasks = fixture.tasks(60);
    let ada = user();
    let mut remembered = Vec::new();
    let mut flipping = Vec::new();
    for n in 0..tasks {
        remembered.push(created(&stores[n % 2], &ada, Some(json!(true))).await);
        flipping.push(created(&stores[n % 2], &ada, None).await);
    }
    clock.advance(SHORT + StdDuration::from_secs(1));

    let mut saves = Vec::new();
    for (n, record) in remembered.iter().chain(&flipping).enumerate() {
        let store = stores[0].clone();
        let mut record = record.clone();
        saves.push(tokio::spawn(async move {
            // Every remembered session stays marked; the others get marked now.
            record.data.insert("remember_me".into(), json!(true));
            record.data.insert("seen".into(), json!(n));
            store.save(&record).await.map_err(|e| e.to_string())
        }));
    }
    let cleaner = stores[1].clone();
    let cleanups = tokio::spawn(async move {
        let mut deleted = 0;
        for _ in 0..5 {
            deleted += cleaner
                .delete_expired_sessions()
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(deleted)
    });
    let mut failures = Vec::new();
    for save in saves {
        if let Err(err) = save.await.unwrap() {
            failures.push(err);
        }
    }
    let deleted = cleanups.await.unwrap();
    assert!(failures.is_empty(), "failed: {failures:?}");
    for record in &remembered {
        assert!(
            stores[1].load(&record.id).await.unwrap().is_some(),
            "a long-lived session was deleted at the short lifetime"
        );
    }
    // A flipped session either was marked before the cleanup reached it, and lives, or was
    // deleted first, and its save wrote nothing (a save never brings a session back).
    let mut alive = 0;
    for record in &flipping {
        alive += u64::from(stores[1].load(&record.id).await.unwrap().is_some());
    }
    assert_eq!(alive + deleted.unwrap(), flipping.len() as u64);
}
