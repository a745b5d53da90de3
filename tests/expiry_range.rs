//! Expiries and "now"s anywhere in `time`'s range, in any offset, on every backend (PostgreSQL,
//! SQLite, MariaDB, and PostgreSQL through tokio-postgres): a session is stored and loaded back,
//! or refused with an `Encode` error; an instant handed to the repository is clamped to what its
//! column stores; nothing panics.
//!
//! Each operation runs in a task of its own, so that a panic in a driver fails the test with the
//! instant that caused it instead of tearing the runtime down.

mod common;

use std::{fmt::Debug, future::Future};

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::json;
use time::{macros::datetime, Date, Month, OffsetDateTime, Time, UtcOffset};
use tokio::runtime::Runtime;
use tower_sessions_seaorm_store::{
    codec::Codec,
    repository::{SessionRepository, SessionRow},
    session_store, Id, Record, RepositoryStore, SessionStore,
};

/// Whether the domain stores `expiry`: years 1 to 9999 in UTC.
fn storable(expiry: OffsetDateTime) -> bool {
    expiry
        .checked_to_offset(UtcOffset::UTC)
        .is_some_and(|utc| (1..=9999).contains(&utc.year()))
}

/// `at` as a column keeps it: in UTC, truncated toward the past to microseconds.
fn as_stored(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(UtcOffset::UTC);
    utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
        .unwrap()
}

/// Any instant `time` holds, in any offset, with more cases near the edges: of `time`'s range,
/// of years 1 and 1000 (where the domain's and MySQL's ranges begin), and of today.
fn any_instant() -> impl Strategy<Value = OffsetDateTime> {
    let first = Date::MIN.to_julian_day();
    let last = Date::MAX.to_julian_day();
    let new_year = |year| {
        Date::from_calendar_date(year, Month::January, 1)
            .unwrap()
            .to_julian_day()
    };
    let today = OffsetDateTime::now_utc().date().to_julian_day();
    let day = prop_oneof![
        first..=last,
        first..=first + 1,
        last - 1..=last,
        new_year(1) - 1..=new_year(1) + 1,
        new_year(1000) - 1..=new_year(1000) + 1,
        today - 3650..=today + 3650,
    ];
    let offset = prop_oneof![
        -86_399i32..=86_399,
        Just(0),
        Just(-86_399),
        Just(86_399),
        Just(-3_600),
        Just(3_600),
    ];
    (day, 0..86_400_000_000_000i64, offset).prop_map(|(day, nanos, offset)| {
        OffsetDateTime::new_in_offset(
            Date::from_julian_day(day).unwrap(),
            Time::MIDNIGHT + time::Duration::nanoseconds(nanos),
            UtcOffset::from_whole_seconds(offset).unwrap(),
        )
    })
}

/// Runs `work` in a task of its own: its output, or what failed if it panicked.
async fn isolated<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(work)
        .await
        .map_err(|err| match err.is_panic() {
            true => "panicked".to_owned(),
            false => format!("was cancelled: {err}"),
        })
}

fn record(user: &str, expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: [("user_id".to_owned(), json!(user))].into(),
        expiry_date,
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// Through the store (tower-sessions' `create` and `save`, and the listing): an expiry in years
/// 1 to 9999 (UTC) is stored and loaded back exactly, or not loaded once expired; any other is
/// refused with an `Encode` error.
async fn store_create_and_save<R, C>(
    store: RepositoryStore<R, C>,
    expiry: OffsetDateTime,
) -> Result<(), String>
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let user = Id::default().to_string();
    let mut rec = record(&user, expiry);
    let created = store.create(&mut rec).await;
    let saved = store.save(&rec).await;
    if !storable(expiry) {
        for (operation, result) in [("create", created), ("save", saved)] {
            if !matches!(result, Err(session_store::Error::Encode(_))) {
                return Err(format!("{operation}: not an Encode error: {result:?}"));
            }
        }
        return Ok(());
    }
    created.map_err(|err| format!("create: {err}"))?;
    saved.map_err(|err| format!("save: {err}"))?;
    let now = OffsetDateTime::now_utc();
    let loaded = crate::common::without_base(
        store
            .load(&rec.id)
            .await
            .map_err(|e| format!("load: {e}"))?,
    );
    let listed = store
        .user_sessions(&user)
        .await
        .map_err(|e| format!("user_sessions: {e}"))?;
    // A second either way: the session may expire between the writes and the reads.
    if expiry > now + time::Duration::seconds(1) {
        if loaded.as_ref() != Some(&rec) {
            return Err(format!("load: {loaded:?}, not the stored record"));
        }
        let expiries: Vec<_> = listed.iter().map(|s| s.expiry_date).collect();
        if expiries != [as_stored(expiry)] {
            return Err(format!("user_sessions: {expiries:?}"));
        }
    } else if expiry < now - time::Duration::seconds(1) && (loaded.is_some() || !listed.is_empty())
    {
        return Err("an expired session was loaded or listed".to_owned());
    }
    Ok(())
}

/// Through the repository and its "now"s: an instant in any offset is clamped to the
/// column's range; a session is loaded at `now` only if it expires after it.
async fn repository_and_now<R, C>(
    store: RepositoryStore<R, C>,
    expiry: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), String>
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let user = Id::default().to_string();
    let rec = record(&user, expiry);
    // The codec's row, as the domain would write it, but with any expiry.
    let data = tower_sessions_seaorm_store::codec::MessagePackCodec
        .encode(&(&rec).into())
        .map_err(|e| format!("encode: {e}"))?;
    let row = SessionRow {
        created_at: time::OffsetDateTime::now_utc(),
        saved_at: time::OffsetDateTime::now_utc(),
        listed_values: None,
        id: rec.id.to_string(),
        data,
        expires_at: expiry,
        user_key: Some(user.clone()),
        long_lived: false,
    };
    let repository = store.repository();
    let inserted = repository.insert_if_absent(row.clone()).await;
    if !matches!(inserted, Ok(true)) {
        return Err(format!("insert_if_absent: {inserted:?}"));
    }
    let conditional = SessionRow {
        created_at: time::OffsetDateTime::now_utc(),
        saved_at: time::OffsetDateTime::now_utc(),
        listed_values: None,
        ..row
    };
    repository
        .update_if_present(conditional, Some(0), false)
        .await
        .map_err(|e| format!("update_if_present: {e}"))?;

    let key = rec.id.to_string();
    let loaded = repository
        .find_unexpired(&key, now, None, None)
        .await
        .map_err(|e| format!("find_unexpired: {e}"))?;
    if loaded.is_some() && expiry <= now {
        return Err("find_unexpired: a session expired at `now` was found".to_owned());
    }
    // Clamping may merge instants beyond the column's range, and truncating to microseconds
    // instants closer than that: elsewhere a live session is found.
    let mysql_range = datetime!(1000-01-01 00:00 UTC)..=datetime!(9999-12-31 23:59:59.999_999 UTC);
    let comparable = [expiry, now].iter().all(|at| mysql_range.contains(at));
    if comparable && expiry - now >= time::Duration::MICROSECOND && loaded.is_none() {
        return Err("find_unexpired: a session live at `now` was not found".to_owned());
    }
    repository
        .find_unexpired_by_user(&user, now, None, None)
        .await
        .map_err(|e| format!("find_unexpired_by_user: {e}"))?;
    repository
        .delete_expired_batch(now, None, None, 10_000)
        .await
        .map_err(|e| format!("delete_expired_batch: {e}"))?;
    Ok(())
}

/// The property on `store`: 64 expiries through the store, and 64 expiries and "now"s through
/// the repository and the service, each in a task of its own.
fn every_instant_is_stored_clamped_or_refused<R, C>(runtime: &Runtime, store: RepositoryStore<R, C>)
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let store = store.with_user_key("user_id").expect("a valid user key");
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(any_instant(), any_instant()), |(expiry, now)| {
        let through_store = isolated(store_create_and_save(store.clone(), expiry));
        runtime
            .block_on(through_store)
            .and_then(|checked| checked)
            .map_err(|e| fail(format!("expiry {expiry} through the store: {e}")))?;
        let through_repository = isolated(repository_and_now(store.clone(), expiry, now));
        runtime
            .block_on(through_repository)
            .and_then(|checked| checked)
            .map_err(|e| fail(format!("expiry {expiry}, now {now}, repository: {e}")))?;
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

#[test]
fn postgres_stores_clamps_or_refuses_every_instant() {
    let runtime = runtime();
    let fixture = runtime.block_on(common::PgFixture::new());
    every_instant_is_stored_clamped_or_refused(&runtime, fixture.store.clone());
    runtime.block_on(fixture.finish());
}

#[test]
fn sqlite_stores_clamps_or_refuses_every_instant() {
    let runtime = runtime();
    let fixture = runtime.block_on(common::sqlite::SqliteFixture::file());
    every_instant_is_stored_clamped_or_refused(&runtime, fixture.store.clone());
    runtime.block_on(fixture.finish());
}

#[test]
fn mysql_stores_clamps_or_refuses_every_instant() {
    let runtime = runtime();
    let fixture = runtime.block_on(common::mysql::MySqlFixture::new());
    every_instant_is_stored_clamped_or_refused(&runtime, fixture.store.clone());
    runtime.block_on(fixture.finish());
}

#[cfg(feature = "tokio-postgres")]
#[test]
fn lean_postgres_stores_clamps_or_refuses_every_instant() {
    let runtime = runtime();
    let fixture = runtime.block_on(common::lean::LeanFixture::new());
    every_instant_is_stored_clamped_or_refused(&runtime, fixture.store.clone());
    runtime.block_on(fixture.finish());
}

/// The instants the issue names, whose UTC form `time` cannot express.
fn beyond_utc() -> [OffsetDateTime; 2] {
    [
        datetime!(9999-12-31 23:59:59 -01:00),
        Date::MIN
            .midnight()
            .assume_offset(time::macros::offset!(+01:00)),
    ]
}

/// The named instants: refused by `create` and `save` with an `Encode` error; clamped, not
/// panicking, as a row's expiry or as a "now".
async fn named_instants<R, C>(store: RepositoryStore<R, C>)
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    for at in beyond_utc() {
        let through_store = isolated(store_create_and_save(store.clone(), at)).await;
        assert_eq!(through_store, Ok(Ok(())), "{at} through the store");
        for now in [OffsetDateTime::now_utc(), at] {
            let through_repository = isolated(repository_and_now(store.clone(), at, now)).await;
            assert_eq!(through_repository, Ok(Ok(())), "{at} at {now}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_or_clamps_the_named_instants() {
    let fixture = common::PgFixture::new().await;
    named_instants(fixture.store.clone().with_user_key("user_id").unwrap()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_or_clamps_the_named_instants() {
    let fixture = common::sqlite::SqliteFixture::file().await;
    named_instants(fixture.store.clone().with_user_key("user_id").unwrap()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_or_clamps_the_named_instants() {
    let fixture = common::mysql::MySqlFixture::new().await;
    named_instants(fixture.store.clone().with_user_key("user_id").unwrap()).await;
    fixture.finish().await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_postgres_refuses_or_clamps_the_named_instants() {
    let fixture = common::lean::LeanFixture::new().await;
    named_instants(fixture.store.clone().with_user_key("user_id").unwrap()).await;
    fixture.finish().await;
}

/// Write avoidance sends "keep if expiring after" = expiry − window: a storable expiry of year 1
/// and a window of ten thousand years give an instant in `time`'s first hour at +01:00, which
/// has no UTC form. The save must not panic.
async fn a_wide_touch_window_before_an_early_expiry<R, C>(store: RepositoryStore<R, C>)
where
    R: SessionRepository + Debug + 'static,
    C: Codec + Debug + 'static,
{
    let offset = time::macros::offset!(+01:00);
    let expiry = datetime!(0001-01-01 01:30 +01:00);
    let keep_after = Date::MIN.with_hms(0, 30, 0).unwrap().assume_offset(offset);
    let window = std::time::Duration::try_from(expiry - keep_after).unwrap();
    let store = store.with_touch_after(window);
    let rec = record("ada", expiry);
    let saved = isolated(async move { store.save(&rec).await.map_err(|e| e.to_string()) }).await;
    assert_eq!(saved, Ok(Ok(())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_write_avoidance_before_an_early_expiry_does_not_panic() {
    let fixture = common::PgFixture::new().await;
    a_wide_touch_window_before_an_early_expiry(fixture.store.clone()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_avoidance_before_an_early_expiry_does_not_panic() {
    let fixture = common::sqlite::SqliteFixture::file().await;
    a_wide_touch_window_before_an_early_expiry(fixture.store.clone()).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_write_avoidance_before_an_early_expiry_does_not_panic() {
    let fixture = common::mysql::MySqlFixture::new().await;
    a_wide_touch_window_before_an_early_expiry(fixture.store.clone()).await;
    fixture.finish().await;
}

#[cfg(feature = "tokio-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_postgres_write_avoidance_before_an_early_expiry_does_not_panic() {
    let fixture = common::lean::LeanFixture::new().await;
    a_wide_touch_window_before_an_early_expiry(fixture.store.clone()).await;
    fixture.finish().await;
}
