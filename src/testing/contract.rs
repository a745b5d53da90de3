//! The [`SessionRepository`] contract, operation by operation: what every repository must
//! do, checked by [`check_repository_contract`] (the crate runs it on each of its repositories,
//! the in-memory one included, so that none can drift from the others).

use time::{Duration, OffsetDateTime};

use crate::ports::{SessionId, SessionRepository, SessionRow};

/// A row with no user, created and saved now.
fn row(id: &str, data: &[u8], expires_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        id: id.to_owned(),
        data: data.to_vec(),
        expires_at,
        user_key: None,
        created_at: OffsetDateTime::now_utc(),
        saved_at: OffsetDateTime::now_utc(),
        listed_values: None,
        long_lived: false,
    }
}

/// The data of the live row with `id`, as `find_unexpired` returns it.
async fn data_of<R: SessionRepository>(repo: &R, id: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
    let found = repo.find_unexpired(id, now, None, None).await.unwrap();
    found.map(|found| found.data)
}

/// A whole second, so the boundary survives a database's sub-second precision.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// 2001-02-03 04:05:06 UTC: an instant before every row the other checks write.
fn long_ago() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(981_173_106).expect("an instant")
}

fn fresh_id() -> String {
    SessionId::random().to_string()
}

async fn insert_if_absent_inserts_a_free_id<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    assert!(repo
        .insert_if_absent(row(&id, b"first", now + Duration::hours(1)))
        .await
        .unwrap());
    assert_eq!(
        data_of(repo, &id, now).await.as_deref(),
        Some(&b"first"[..])
    );
}

async fn insert_if_absent_never_overwrites_a_taken_id<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.insert_if_absent(row(&id, b"first", now + Duration::hours(1)))
        .await
        .unwrap();
    let inserted = repo
        .insert_if_absent(row(&id, b"second", now + Duration::hours(2)))
        .await
        .unwrap();
    assert!(!inserted, "the id is taken");
    assert_eq!(
        repo.find_unexpired(&id, now + Duration::minutes(90), None, None)
            .await
            .unwrap(),
        None,
        "the expiry was not replaced either"
    );
    assert_eq!(
        data_of(repo, &id, now).await.as_deref(),
        Some(&b"first"[..])
    );
}

async fn insert_if_absent_reports_an_expired_row_as_taken<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.insert_if_absent(row(&id, b"stale", now - Duration::hours(1)))
        .await
        .unwrap();
    let inserted = repo
        .insert_if_absent(row(&id, b"fresh", now + Duration::hours(1)))
        .await
        .unwrap();
    assert!(!inserted, "an expired row still holds its id until cleanup");
    assert_eq!(
        repo.find_unexpired(&id, now, None, None).await.unwrap(),
        None
    );
}

async fn find_unexpired_hides_a_row_expiring_at_or_before_now<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.insert_if_absent(row(&id, b"data", now)).await.unwrap();
    assert_eq!(
        data_of(repo, &id, now - Duration::seconds(1))
            .await
            .as_deref(),
        Some(&b"data"[..])
    );
    assert_eq!(
        repo.find_unexpired(&id, now, None, None).await.unwrap(),
        None
    );
    assert_eq!(
        repo.find_unexpired(&id, now + Duration::seconds(1), None, None)
            .await
            .unwrap(),
        None
    );
}

async fn find_unexpired_of_an_unknown_id_is_none<R: SessionRepository>(repo: &R) {
    assert_eq!(
        repo.find_unexpired(&fresh_id(), now(), None, None)
            .await
            .unwrap(),
        None
    );
}

async fn update_if_present_replaces_the_data_and_the_expiry<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.insert_if_absent(row(&id, b"old", now - Duration::hours(1)))
        .await
        .unwrap();
    repo.update_if_present(row(&id, b"new", now + Duration::hours(1)), None, false)
        .await
        .unwrap();
    assert_eq!(data_of(repo, &id, now).await.as_deref(), Some(&b"new"[..]));
}

async fn update_if_present_never_inserts_a_missing_row<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.update_if_present(row(&id, b"ghost", now + Duration::hours(1)), None, false)
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now, None, None).await.unwrap(),
        None
    );
    assert!(
        repo.insert_if_absent(row(&id, b"fresh", now + Duration::hours(1)))
            .await
            .unwrap(),
        "the id is still free"
    );
}

async fn update_if_present_of_a_deleted_row_leaves_it_deleted<R: SessionRepository>(repo: &R) {
    // With and without a version: the compare-and-swap must not insert either.
    for expected_version in [None, Some(0)] {
        let (id, now) = (fresh_id(), now());
        repo.insert_if_absent(row(&id, b"live", now + Duration::hours(1)))
            .await
            .unwrap();
        repo.delete_by_id(&id).await.unwrap();
        let save = row(&id, b"revived?", now + Duration::hours(2));
        let written = repo
            .update_if_present(save, expected_version, false)
            .await
            .unwrap();
        assert_eq!(written, None, "nothing written");
        assert_eq!(
            repo.find_unexpired(&id, now, None, None).await.unwrap(),
            None,
            "a revoked row stays revoked (expected version: {expected_version:?})"
        );
    }
}

async fn delete_by_id_is_idempotent<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.insert_if_absent(row(&id, b"data", now + Duration::hours(1)))
        .await
        .unwrap();
    repo.delete_by_id(&id).await.unwrap();
    repo.delete_by_id(&id).await.unwrap();
    repo.delete_by_id(&fresh_id()).await.unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now, None, None).await.unwrap(),
        None
    );
    assert!(
        repo.insert_if_absent(row(&id, b"again", now + Duration::hours(1)))
            .await
            .unwrap(),
        "a deleted id is free again"
    );
}

async fn delete_expired_batch_deletes_at_most_limit_rows_expired_at_or_before_now<
    R: SessionRepository,
>(
    repo: &R,
) {
    // Long ago: every other check's rows are live and young then, so a cleanup at that
    // instant can only find this check's.
    let now = long_ago();
    // Five expired rows, one of them expiring exactly now; three live rows.
    for age in [0, 1, 2, 3, 4] {
        repo.insert_if_absent(row(&fresh_id(), b"expired", now - Duration::seconds(age)))
            .await
            .unwrap();
    }
    let live: Vec<String> = (1..=3).map(|_| fresh_id()).collect();
    for (n, id) in live.iter().enumerate() {
        repo.insert_if_absent(row(id, b"live", now + Duration::seconds(n as i64 + 1)))
            .await
            .unwrap();
    }

    assert_eq!(
        repo.delete_expired_batch(now, None, None, 3).await.unwrap(),
        3
    );
    assert_eq!(
        repo.delete_expired_batch(now, None, None, 3).await.unwrap(),
        2
    );
    assert_eq!(
        repo.delete_expired_batch(now, None, None, 3).await.unwrap(),
        0
    );
    for id in &live {
        assert!(
            repo.find_unexpired(id, now, None, None)
                .await
                .unwrap()
                .is_some(),
            "a live row survives cleanup"
        );
    }
    // Live rows expire later and only then become cleanup's business.
    let later = now + Duration::seconds(3);
    assert_eq!(
        repo.delete_expired_batch(later, None, None, 100)
            .await
            .unwrap(),
        3
    );
}

fn user_row(id: &str, user: Option<&str>, expires_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        user_key: user.map(str::to_owned),
        ..row(id, b"data", expires_at)
    }
}

async fn the_user_index_lists_and_deletes_a_users_rows_only<R: SessionRepository>(repo: &R) {
    let now = now();
    let (ada, bob) = (fresh_id(), fresh_id()); // unique user keys
    let adas: Vec<String> = (0..3).map(|_| fresh_id()).collect();
    for id in &adas {
        repo.insert_if_absent(user_row(id, Some(&ada), now + Duration::hours(1)))
            .await
            .unwrap();
    }
    let expired = fresh_id();
    repo.insert_if_absent(user_row(&expired, Some(&ada), now - Duration::seconds(1)))
        .await
        .unwrap();
    let bobs = fresh_id();
    repo.insert_if_absent(user_row(&bobs, Some(&bob), now + Duration::hours(1)))
        .await
        .unwrap();

    let mut listed: Vec<String> = repo
        .find_unexpired_by_user(&ada, now, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    listed.sort();
    let mut expected = adas.clone();
    expected.sort();
    assert_eq!(listed, expected, "live rows only, of this user only");

    assert_eq!(
        repo.delete_by_user(&ada, Some(&adas[0])).await.unwrap(),
        3,
        "two live rows and the expired one"
    );
    assert!(repo
        .find_unexpired(&adas[0], now, None, None)
        .await
        .unwrap()
        .is_some());
    assert_eq!(repo.delete_by_user(&ada, None).await.unwrap(), 1);
    assert!(repo
        .find_unexpired(&adas[0], now, None, None)
        .await
        .unwrap()
        .is_none());
    assert!(repo
        .find_unexpired(&bobs, now, None, None)
        .await
        .unwrap()
        .is_some());
}

async fn delete_by_user_and_id_deletes_only_a_row_still_of_that_user<R: SessionRepository>(
    repo: &R,
) {
    let (id, ada, bob, now) = (fresh_id(), fresh_id(), fresh_id(), now());
    repo.insert_if_absent(user_row(&id, Some(&ada), now + Duration::hours(1)))
        .await
        .unwrap();
    // The session changed hands (ada logged out, bob logged in on that browser).
    repo.update_if_present(
        user_row(&id, Some(&bob), now + Duration::hours(1)),
        None,
        false,
    )
    .await
    .unwrap();
    assert!(!repo.delete_by_user_and_id(&ada, &id).await.unwrap());
    assert!(repo
        .find_unexpired(&id, now, None, None)
        .await
        .unwrap()
        .is_some());
    assert!(repo.delete_by_user_and_id(&bob, &id).await.unwrap());
    assert!(repo
        .find_unexpired(&id, now, None, None)
        .await
        .unwrap()
        .is_none());
    assert!(!repo.delete_by_user_and_id(&bob, &id).await.unwrap());
}

async fn an_update_without_a_user_key_takes_the_row_out_of_the_index<R: SessionRepository>(
    repo: &R,
) {
    let (id, user, now) = (fresh_id(), fresh_id(), now());
    repo.insert_if_absent(user_row(&id, Some(&user), now + Duration::hours(1)))
        .await
        .unwrap();
    repo.update_if_present(user_row(&id, None, now + Duration::hours(1)), None, false)
        .await
        .unwrap();
    assert!(repo
        .find_unexpired_by_user(&user, now, None, None)
        .await
        .unwrap()
        .is_empty());
}

async fn an_update_with_a_version_writes_only_over_that_version<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    let expiry = now + Duration::hours(1);
    let version = || async {
        let found = repo.find_unexpired(&id, now, None, None).await.unwrap();
        found.expect("a live row").version
    };
    repo.insert_if_absent(row(&id, b"first", expiry))
        .await
        .unwrap();
    assert_eq!(version().await, 0, "a row is inserted at version 0");

    // A plain update writes whatever the version, and adds one.
    let written = repo.update_if_present(row(&id, b"second", expiry), None, false);
    assert_eq!(written.await.unwrap(), Some(false));
    assert_eq!(version().await, 1);

    // Another save came first: a save of what was loaded at version 0 writes nothing.
    let stale = repo.update_if_present(row(&id, b"stale", expiry), Some(0), false);
    assert_eq!(stale.await.unwrap(), None);
    assert_eq!(
        data_of(repo, &id, now).await.as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(version().await, 1, "not written, not counted");

    // The version the row holds: written.
    let current = repo.update_if_present(row(&id, b"third", expiry), Some(1), false);
    assert_eq!(current.await.unwrap(), Some(false));
    assert_eq!(
        data_of(repo, &id, now).await.as_deref(),
        Some(&b"third"[..])
    );
    assert_eq!(version().await, 2);
}

async fn an_update_with_another_user_key_re_indexes_the_row<R: SessionRepository>(repo: &R) {
    let (id, ada, bob, now) = (fresh_id(), fresh_id(), fresh_id(), now());
    let expiry = now + Duration::hours(1);
    // Stored by a store without the index: no user key.
    repo.insert_if_absent(user_row(&id, None, expiry))
        .await
        .unwrap();
    let listed = |user: String| async move {
        repo.find_unexpired_by_user(&user, now, None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect::<Vec<_>>()
    };
    for (user, version) in [(Some(&ada), 0), (Some(&bob), 1), (None, 2)] {
        let save = user_row(&id, user.map(String::as_str), expiry);
        let written = repo.update_if_present(save, Some(version), false);
        assert_eq!(written.await.unwrap(), Some(false));
        let found = repo.find_unexpired(&id, now, None, None).await.unwrap();
        assert_eq!(found.expect("a live row").user_key.as_ref(), user);
        if let Some(user) = user {
            assert_eq!(listed(user.clone()).await, std::slice::from_ref(&id));
        }
    }
    assert!(listed(ada).await.is_empty());
    assert!(listed(bob).await.is_empty());
}

/// A row of `user` created, last saved and expiring when the test says, with listed values.
fn timed_row(
    id: &str,
    user: Option<&str>,
    created_at: OffsetDateTime,
    saved_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> SessionRow {
    SessionRow {
        created_at,
        saved_at,
        listed_values: Some(format!(r#"{{"device":"{id}"}}"#)),
        ..user_row(id, user, expires_at)
    }
}

async fn find_unexpired_returns_the_data_and_the_creation_instant<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    let created = now - Duration::minutes(10);
    repo.insert_if_absent(timed_row(
        &id,
        None,
        created,
        created,
        now + Duration::hours(1),
    ))
    .await
    .unwrap();
    let found = repo
        .find_unexpired(&id, now, None, None)
        .await
        .unwrap()
        .expect("a live row");
    assert_eq!(found.data, b"data");
    // Without an absolute lifetime the row's age need not be read; if it is, it is right.
    assert!(found.created_at.is_none_or(|at| at == created));
    assert!(found.long_lived.is_none_or(|long| !long));
    assert_eq!((found.version, found.user_key), (0, None));
    // With one, it is read.
    let found = repo
        .find_unexpired(&id, now, Some(created - Duration::minutes(1)), None)
        .await
        .unwrap()
        .expect("a live row, created after the lifetime's bound");
    assert_eq!(
        (found.created_at, found.long_lived),
        (Some(created), Some(false))
    );
    // Expiry, and the absolute lifetime's bound.
    assert_eq!(
        repo.find_unexpired(&id, now + Duration::hours(1), None, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.find_unexpired(&id, now, Some(created), None)
            .await
            .unwrap(),
        None,
        "created at the bound: outlived"
    );
    assert!(repo
        .find_unexpired(&id, now, Some(created - Duration::seconds(1)), None)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        repo.find_unexpired(&fresh_id(), now, None, None)
            .await
            .unwrap(),
        None
    );
}

async fn born_after_hides_rows_created_at_or_before_it<R: SessionRepository>(repo: &R) {
    let (id, user, now) = (fresh_id(), fresh_id(), now());
    let created = now - Duration::hours(2);
    repo.insert_if_absent(timed_row(
        &id,
        Some(&user),
        created,
        now,
        now + Duration::hours(1),
    ))
    .await
    .unwrap();
    for (born_after, visible) in [
        (None, true),
        (Some(created - Duration::seconds(1)), true),
        (Some(created), false),
        (Some(created + Duration::seconds(1)), false),
    ] {
        let found = repo
            .find_unexpired(&id, now, born_after, None)
            .await
            .unwrap();
        assert_eq!(found.is_some(), visible, "find_unexpired, {born_after:?}");
        let listed = repo
            .find_unexpired_by_user(&user, now, born_after, None)
            .await
            .unwrap();
        assert_eq!(listed.len(), usize::from(visible), "listed, {born_after:?}");
    }
}

/// A long-lived row outlives `born_after` up to `long_born_after`, in every read, the count
/// and the cleanup; `long_born_after` alone changes nothing for a row that is not marked.
async fn a_long_lived_row_lives_to_long_born_after<R: SessionRepository>(repo: &R) {
    let (now, user) = (now(), fresh_id());
    let created = now - Duration::hours(2);
    let (long, short) = (fresh_id(), fresh_id());
    let expires = now + Duration::hours(1);
    let marked = SessionRow {
        long_lived: true,
        ..timed_row(&long, Some(&user), created, now, expires)
    };
    repo.insert_if_absent(marked).await.unwrap();
    repo.insert_if_absent(timed_row(&short, Some(&user), created, now, expires))
        .await
        .unwrap();
    let born = Some(created + Duration::seconds(1));
    for (long_born, visible) in [
        (None, false),
        (Some(created - Duration::seconds(1)), true),
        (Some(created), false),
    ] {
        let found = repo
            .find_unexpired(&long, now, born, long_born)
            .await
            .unwrap();
        assert_eq!(found.is_some(), visible, "find_unexpired, {long_born:?}");
        assert!(found.is_none_or(|found| found.long_lived == Some(true)));
        let listed = repo
            .find_unexpired_by_user(&user, now, born, long_born)
            .await
            .unwrap();
        assert_eq!(listed.len(), usize::from(visible), "listed, {long_born:?}");
        assert!(listed.iter().all(|row| row.id == long && row.long_lived));
        if let Ok(count) = repo
            .count_unexpired(Some(&user), now, born, long_born)
            .await
        {
            assert_eq!(count, u64::from(visible), "counted, {long_born:?}");
        }
    }
    let long_born = Some(created - Duration::seconds(1));
    assert!(repo
        .find_unexpired(&short, now, born, long_born)
        .await
        .unwrap()
        .is_none());
    repo.delete_expired_batch(now, born, long_born, 1_000)
        .await
        .unwrap();
    assert!(
        repo.find_unexpired(&long, now, None, None)
            .await
            .unwrap()
            .is_some(),
        "the cleanup deleted a long-lived row within its lifetime"
    );
    assert!(repo
        .find_unexpired(&short, now, None, None)
        .await
        .unwrap()
        .is_none());
}

async fn a_users_rows_are_listed_with_their_instants_and_listed_values<R: SessionRepository>(
    repo: &R,
) {
    let (id, user, now) = (fresh_id(), fresh_id(), now());
    let (created, saved, expires) = (
        now - Duration::hours(3),
        now - Duration::minutes(5),
        now + Duration::hours(1),
    );
    repo.insert_if_absent(timed_row(&id, Some(&user), created, saved, expires))
        .await
        .unwrap();
    let listed = repo
        .find_unexpired_by_user(&user, now, None, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let row = &listed[0];
    assert_eq!(row.id, id);
    assert_eq!(
        (row.created_at, row.saved_at, row.expires_at),
        (created, saved, expires)
    );
    assert_eq!(
        row.listed_values.as_deref(),
        Some(format!(r#"{{"device":"{id}"}}"#).as_str())
    );
}

async fn an_update_never_writes_created_at_and_writes_the_rest<R: SessionRepository>(repo: &R) {
    let (id, user, now) = (fresh_id(), fresh_id(), now());
    let created = now - Duration::hours(3);
    repo.insert_if_absent(timed_row(
        &id,
        Some(&user),
        created,
        created,
        now + Duration::hours(1),
    ))
    .await
    .unwrap();
    let update = SessionRow {
        listed_values: Some(r#"{"device":"moved"}"#.to_owned()),
        ..timed_row(&id, Some(&user), now, now, now + Duration::hours(2))
    };
    repo.update_if_present(update, None, false).await.unwrap();
    let listed = repo
        .find_unexpired_by_user(&user, now, None, None)
        .await
        .unwrap();
    assert_eq!(
        listed[0].created_at, created,
        "a save does not make it younger"
    );
    assert_eq!(listed[0].saved_at, now);
    assert_eq!(listed[0].expires_at, now + Duration::hours(2));
    assert_eq!(
        listed[0].listed_values.as_deref(),
        Some(r#"{"device":"moved"}"#)
    );
}

async fn delete_expired_batch_with_born_before_deletes_outlived_rows_too<R: SessionRepository>(
    repo: &R,
) {
    // Long ago: every other check's rows are live and young then, so a cleanup at that
    // instant can only find this check's.
    let now = long_ago();
    let born_before = now - Duration::hours(1);
    let outlived = fresh_id();
    let at_the_bound = fresh_id();
    let young = fresh_id();
    let later = now + Duration::hours(1);
    for (id, created) in [
        (&outlived, born_before - Duration::seconds(1)),
        (&at_the_bound, born_before),
        (&young, born_before + Duration::seconds(1)),
    ] {
        repo.insert_if_absent(timed_row(id, None, created, created, later))
            .await
            .unwrap();
    }
    assert_eq!(
        repo.delete_expired_batch(now, None, None, 100)
            .await
            .unwrap(),
        0,
        "without the bound, only expiry counts"
    );
    let mut deleted = 0;
    loop {
        let batch = repo
            .delete_expired_batch(now, Some(born_before), None, 1)
            .await
            .unwrap();
        assert!(batch <= 1, "at most the limit");
        if batch == 0 {
            break;
        }
        deleted += batch;
    }
    assert_eq!(deleted, 2);
    assert!(repo
        .find_unexpired(&young, now, None, None)
        .await
        .unwrap()
        .is_some());
    for id in [&outlived, &at_the_bound] {
        assert!(repo
            .find_unexpired(id, now, None, None)
            .await
            .unwrap()
            .is_none());
    }
}

async fn trim_user_sessions_keeps_the_most_recently_saved_live_rows_only<R: SessionRepository>(
    repo: &R,
) {
    let now = now();
    let (ada, bob) = (fresh_id(), fresh_id());
    let later = now + Duration::hours(1);
    let born_after = now - Duration::hours(1);
    // Saved 1 to 4 minutes ago; two more saved at the same instant, told apart by key.
    let mut live: Vec<(String, OffsetDateTime)> = (1..=4)
        .map(|minutes| (fresh_id(), now - Duration::minutes(minutes)))
        .collect();
    let tied = now - Duration::seconds(30);
    // Keys that order alike byte for byte and in any collation PostgreSQL may use.
    let (first, second) = (format!("tie1{}", fresh_id()), format!("tie0{}", fresh_id()));
    live.push((first.clone(), tied));
    live.push((second.clone(), tied));
    for (id, saved) in &live {
        repo.insert_if_absent(timed_row(id, Some(&ada), now, *saved, later))
            .await
            .unwrap();
    }
    // Saved most recently, but dead: expired, or created at the lifetime's bound.
    let expired = fresh_id();
    let outlived = fresh_id();
    repo.insert_if_absent(timed_row(&expired, Some(&ada), now, now, now))
        .await
        .unwrap();
    repo.insert_if_absent(timed_row(&outlived, Some(&ada), born_after, now, later))
        .await
        .unwrap();
    let bobs = fresh_id();
    repo.insert_if_absent(timed_row(
        &bobs,
        Some(&bob),
        now,
        now - Duration::hours(2),
        later,
    ))
    .await
    .unwrap();

    // Keeps the two saved 30 s ago and the one saved a minute ago.
    let ended = repo
        .trim_user_sessions(&ada, 3, now, Some(born_after), None)
        .await
        .unwrap();

    assert_eq!(ended, 3, "the live rows beyond three");
    let mut kept: Vec<String> = repo
        .find_unexpired_by_user(&ada, now, Some(born_after), None)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    kept.sort();
    let mut expected = vec![first.clone(), second, live[0].0.clone()];
    expected.sort();
    assert_eq!(kept, expected);
    assert!(
        repo.find_unexpired(&outlived, now, None, None)
            .await
            .unwrap()
            .is_some(),
        "a dead row takes no slot and is left to the cleanup"
    );
    assert!(repo
        .find_unexpired(&expired, now - Duration::seconds(1), None, None)
        .await
        .unwrap()
        .is_some());
    assert!(
        repo.find_unexpired(&bobs, now, None, None)
            .await
            .unwrap()
            .is_some(),
        "another user's rows are untouched"
    );
    assert_eq!(
        repo.trim_user_sessions(&ada, 3, now, Some(born_after), None)
            .await
            .unwrap(),
        0
    );
    // A tie at the cut: the greater key is kept.
    assert_eq!(
        repo.trim_user_sessions(&ada, 1, now, Some(born_after), None)
            .await
            .unwrap(),
        2
    );
    let kept = repo
        .find_unexpired_by_user(&ada, now, Some(born_after), None)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].id.starts_with("tie1"), "{:?}", kept[0].id);
    // Without the bound, the outlived row is live, and the most recently saved.
    assert_eq!(
        repo.trim_user_sessions(&ada, 1, now, None, None)
            .await
            .unwrap(),
        1
    );
    let left = repo
        .find_unexpired_by_user(&ada, now, None, None)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, outlived);
}

async fn a_reporting_update_tells_when_it_gave_the_row_another_user<R: SessionRepository>(
    repo: &R,
) {
    let (id, ada, bob, now) = (fresh_id(), fresh_id(), fresh_id(), now());
    let expiry = now + Duration::hours(1);
    let save = |user: Option<&str>| user_row(&id, user, expiry);
    repo.insert_if_absent(save(None)).await.unwrap();
    assert_eq!(
        repo.update_if_present(save(Some(&ada)), None, true)
            .await
            .unwrap(),
        Some(true),
        "anonymous to ada: a login"
    );
    assert_eq!(
        repo.update_if_present(save(Some(&bob)), Some(1), true)
            .await
            .unwrap(),
        Some(true),
        "ada to bob, over the version it read"
    );
    assert_eq!(
        repo.update_if_present(save(Some(&ada)), None, false)
            .await
            .unwrap(),
        Some(false),
        "not asked: false, though it changed"
    );
    // The same user again: `false`, or `true` from a repository that cannot tell (SQLite); the
    // contract lets either be.
    let again = repo.update_if_present(save(Some(&ada)), None, true);
    assert!(again.await.unwrap().is_some());
    // Not written (another version, a missing row): `None`.
    let stale = repo.update_if_present(save(Some(&bob)), Some(0), true);
    assert_eq!(stale.await.unwrap(), None, "a stale version is not written");
    let ghost = user_row(&fresh_id(), Some(&ada), expiry);
    assert_eq!(
        repo.update_if_present(ghost, None, true).await.unwrap(),
        None
    );
}

/// 1971-01-01 UTC: an era no other check writes rows in, so the global deletes below find
/// exactly the rows written here.
fn era() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(31_536_000).expect("an instant")
}

/// A row of `user`, created at `created_at`, expiring at `expires_at`.
fn born_row(
    user: Option<&str>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> (String, SessionRow) {
    let id = fresh_id();
    let row = SessionRow {
        created_at,
        saved_at: created_at,
        ..user_row(&id, user, expires_at)
    };
    (id, row)
}

async fn count_unexpired_counts_the_live_rows_all_and_per_user<R: SessionRepository>(repo: &R) {
    let (ada, now) = (fresh_id(), now());
    let (live, dead) = (now + Duration::hours(1), now - Duration::hours(1));
    let before = repo.count_unexpired(None, now, None, None).await.unwrap();
    for (user, created_at, expires_at) in [
        (Some(&ada), now, live),
        (Some(&ada), long_ago(), live),
        (Some(&ada), now, dead),
        (None, now, live),
    ] {
        let (_, row) = born_row(user.map(String::as_str), created_at, expires_at);
        assert!(repo.insert_if_absent(row).await.unwrap());
    }
    assert_eq!(
        repo.count_unexpired(None, now, None, None).await.unwrap(),
        before + 3
    );
    let adas = repo.count_unexpired(Some(&ada), now, None, None);
    assert_eq!(adas.await.unwrap(), 2, "the expired row is not live");
    let within_lifetime = repo.count_unexpired(Some(&ada), now, Some(long_ago()), None);
    assert_eq!(
        within_lifetime.await.unwrap(),
        1,
        "a row created at or before born_after is not live"
    );
    let nobody = fresh_id();
    let nobodys = repo.count_unexpired(Some(&nobody), now, None, None);
    assert_eq!(nobodys.await.unwrap(), 0);
}

async fn delete_created_before_batch_deletes_only_rows_created_before_the_instant<
    R: SessionRepository,
>(
    repo: &R,
) {
    let (ada, bob, now) = (fresh_id(), fresh_id(), now());
    let (live, dead) = (now + Duration::hours(1), now - Duration::hours(1));
    let at = |seconds: i64| era() + Duration::seconds(seconds);
    let mut rows = Vec::new();
    for (user, created_at, expires_at) in [
        (Some(&ada), at(0), live),
        (Some(&ada), at(1), dead),
        (Some(&ada), now, live),
        (Some(&bob), at(2), live),
        (None, at(3), live),
        (None, at(10), live),
    ] {
        let (id, row) = born_row(user.map(String::as_str), created_at, expires_at);
        assert!(repo.insert_if_absent(row).await.unwrap());
        rows.push(id);
    }
    // At `long_ago()` every row here is unexpired: a row is found exactly when it exists.
    let exists = |id: &str| {
        let id = id.to_owned();
        async move {
            let found = repo
                .find_unexpired(&id, long_ago(), None, None)
                .await
                .unwrap();
            found.is_some()
        }
    };
    // One user's: their rows created before the instant, expired or not; not later ones.
    let adas = repo.delete_created_before_batch(at(5), Some(&ada), 10);
    assert_eq!(adas.await.unwrap(), (2, 2));
    assert!(!exists(&rows[0]).await && !exists(&rows[1]).await);
    assert!(
        exists(&rows[2]).await,
        "a row created after the instant stays"
    );
    assert!(exists(&rows[3]).await, "another user's row stays");
    // Everyone's, in batches of one: a batch that found fewer than its limit was the last.
    let first = repo.delete_created_before_batch(at(10), None, 1);
    assert_eq!(first.await.unwrap(), (1, 1));
    let second = repo.delete_created_before_batch(at(10), None, 1);
    assert_eq!(second.await.unwrap(), (1, 1));
    let last = repo.delete_created_before_batch(at(10), None, 1);
    assert_eq!(last.await.unwrap(), (0, 0));
    assert!(!exists(&rows[3]).await && !exists(&rows[4]).await);
    assert!(
        exists(&rows[5]).await,
        "a row created at the instant itself stays (strictly before)"
    );
}

/// Checks `repository` against the [`SessionRepository`] contract: every method, with every
/// option, one check after another; panics at the first broken promise, with what was expected
/// (the panic's location names the check).
///
/// Run it against a **repository of its own** (a scratch table, an empty in-memory store): it
/// writes rows, and its cleanup checks delete every expired row they find. Each check draws
/// fresh ids and user keys, so the checks do not see each other's rows.
///
/// ```
/// use tower_sessions_seaorm_store::testing::{check_repository_contract, InMemoryRepository};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// check_repository_contract(&InMemoryRepository::new()).await;
/// # }
/// ```
pub async fn check_repository_contract<R: SessionRepository>(repository: &R) {
    insert_if_absent_inserts_a_free_id(repository).await;
    insert_if_absent_never_overwrites_a_taken_id(repository).await;
    insert_if_absent_reports_an_expired_row_as_taken(repository).await;
    find_unexpired_hides_a_row_expiring_at_or_before_now(repository).await;
    find_unexpired_of_an_unknown_id_is_none(repository).await;
    update_if_present_replaces_the_data_and_the_expiry(repository).await;
    update_if_present_never_inserts_a_missing_row(repository).await;
    update_if_present_of_a_deleted_row_leaves_it_deleted(repository).await;
    delete_by_id_is_idempotent(repository).await;
    delete_expired_batch_deletes_at_most_limit_rows_expired_at_or_before_now(repository).await;
    the_user_index_lists_and_deletes_a_users_rows_only(repository).await;
    delete_by_user_and_id_deletes_only_a_row_still_of_that_user(repository).await;
    an_update_without_a_user_key_takes_the_row_out_of_the_index(repository).await;
    an_update_with_a_version_writes_only_over_that_version(repository).await;
    an_update_with_another_user_key_re_indexes_the_row(repository).await;
    find_unexpired_returns_the_data_and_the_creation_instant(repository).await;
    born_after_hides_rows_created_at_or_before_it(repository).await;
    a_long_lived_row_lives_to_long_born_after(repository).await;
    a_users_rows_are_listed_with_their_instants_and_listed_values(repository).await;
    an_update_never_writes_created_at_and_writes_the_rest(repository).await;
    delete_expired_batch_with_born_before_deletes_outlived_rows_too(repository).await;
    trim_user_sessions_keeps_the_most_recently_saved_live_rows_only(repository).await;
    a_reporting_update_tells_when_it_gave_the_row_another_user(repository).await;
    count_unexpired_counts_the_live_rows_all_and_per_user(repository).await;
    delete_created_before_batch_deletes_only_rows_created_before_the_instant(repository).await;
}
