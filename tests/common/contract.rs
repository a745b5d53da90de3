//! The `SessionRepository` contract, operation by operation: what every repository must do,
//! run by `repository_contract!` on each backend (and on the in-memory repository, so that it
//! cannot drift from the SQL ones).

use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    ports::{SessionRepository, SessionRow, Unchanged},
    Id,
};

use super::row;

/// A whole second, so the boundary survives a database's sub-second precision.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn fresh_id() -> String {
    Id::default().to_string()
}

pub async fn insert_if_absent_inserts_a_free_id<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    assert!(repo
        .insert_if_absent(row(&id, b"first", now + Duration::hours(1)))
        .await
        .unwrap());
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
}

pub async fn insert_if_absent_never_overwrites_a_taken_id<R: SessionRepository>(repo: &R) {
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
        repo.find_unexpired(&id, now + Duration::minutes(90))
            .await
            .unwrap(),
        None,
        "the expiry was not replaced either"
    );
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
}

pub async fn insert_if_absent_reports_an_expired_row_as_taken<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.upsert(row(&id, b"stale", now - Duration::hours(1)))
        .await
        .unwrap();
    let inserted = repo
        .insert_if_absent(row(&id, b"fresh", now + Duration::hours(1)))
        .await
        .unwrap();
    assert!(!inserted, "an expired row still holds its id until cleanup");
    assert_eq!(repo.find_unexpired(&id, now).await.unwrap(), None);
}

pub async fn find_unexpired_hides_a_row_expiring_at_or_before_now<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.upsert(row(&id, b"data", now)).await.unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now - Duration::seconds(1))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"data"[..])
    );
    assert_eq!(repo.find_unexpired(&id, now).await.unwrap(), None);
    assert_eq!(
        repo.find_unexpired(&id, now + Duration::seconds(1))
            .await
            .unwrap(),
        None
    );
}

pub async fn find_unexpired_of_an_unknown_id_is_none<R: SessionRepository>(repo: &R) {
    assert_eq!(repo.find_unexpired(&fresh_id(), now()).await.unwrap(), None);
}

pub async fn upsert_replaces_the_data_and_the_expiry<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.upsert(row(&id, b"old", now - Duration::hours(1)))
        .await
        .unwrap();
    repo.upsert(row(&id, b"new", now + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

pub async fn delete_by_id_is_idempotent<R: SessionRepository>(repo: &R) {
    let (id, now) = (fresh_id(), now());
    repo.upsert(row(&id, b"data", now + Duration::hours(1)))
        .await
        .unwrap();
    repo.delete_by_id(&id).await.unwrap();
    repo.delete_by_id(&id).await.unwrap();
    repo.delete_by_id(&fresh_id()).await.unwrap();
    assert_eq!(repo.find_unexpired(&id, now).await.unwrap(), None);
    assert!(
        repo.insert_if_absent(row(&id, b"again", now + Duration::hours(1)))
            .await
            .unwrap(),
        "a deleted id is free again"
    );
}

pub async fn delete_expired_batch_deletes_at_most_limit_rows_expired_at_or_before_now<
    R: SessionRepository,
>(
    repo: &R,
) {
    let now = now();
    // Five expired rows, one of them expiring exactly now; three live rows.
    for age in [0, 1, 2, 3, 4] {
        repo.upsert(row(&fresh_id(), b"expired", now - Duration::seconds(age)))
            .await
            .unwrap();
    }
    let live: Vec<String> = (1..=3).map(|_| fresh_id()).collect();
    for (n, id) in live.iter().enumerate() {
        repo.upsert(row(id, b"live", now + Duration::seconds(n as i64 + 1)))
            .await
            .unwrap();
    }

    assert_eq!(repo.delete_expired_batch(now, 3).await.unwrap(), 3);
    assert_eq!(repo.delete_expired_batch(now, 3).await.unwrap(), 2);
    assert_eq!(repo.delete_expired_batch(now, 3).await.unwrap(), 0);
    for id in &live {
        assert!(
            repo.find_unexpired(id, now).await.unwrap().is_some(),
            "a live row survives cleanup"
        );
    }
    // Live rows expire later and only then become cleanup's business.
    let later = now + Duration::seconds(3);
    assert_eq!(repo.delete_expired_batch(later, 100).await.unwrap(), 3);
}

fn user_row(id: &str, user: Option<&str>, expires_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        user_key: user.map(str::to_owned),
        ..row(id, b"data", expires_at)
    }
}

pub async fn the_user_index_lists_and_deletes_a_users_rows_only<R: SessionRepository>(repo: &R) {
    let now = now();
    let (ada, bob) = (fresh_id(), fresh_id()); // unique user keys
    let adas: Vec<String> = (0..3).map(|_| fresh_id()).collect();
    for id in &adas {
        repo.upsert(user_row(id, Some(&ada), now + Duration::hours(1)))
            .await
            .unwrap();
    }
    let expired = fresh_id();
    repo.upsert(user_row(&expired, Some(&ada), now - Duration::seconds(1)))
        .await
        .unwrap();
    let bobs = fresh_id();
    repo.upsert(user_row(&bobs, Some(&bob), now + Duration::hours(1)))
        .await
        .unwrap();

    let mut listed: Vec<String> = repo
        .find_unexpired_by_user(&ada, now)
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
        repo.delete_by_user_except(&ada, &adas[0]).await.unwrap(),
        3,
        "two live rows and the expired one"
    );
    assert!(repo.find_unexpired(&adas[0], now).await.unwrap().is_some());
    assert_eq!(repo.delete_by_user(&ada).await.unwrap(), 1);
    assert!(repo.find_unexpired(&adas[0], now).await.unwrap().is_none());
    assert!(repo.find_unexpired(&bobs, now).await.unwrap().is_some());
}

pub async fn an_upsert_without_a_user_key_takes_the_row_out_of_the_index<R: SessionRepository>(
    repo: &R,
) {
    let (id, user, now) = (fresh_id(), fresh_id(), now());
    repo.upsert(user_row(&id, Some(&user), now + Duration::hours(1)))
        .await
        .unwrap();
    repo.upsert(user_row(&id, None, now + Duration::hours(1)))
        .await
        .unwrap();
    assert!(repo
        .find_unexpired_by_user(&user, now)
        .await
        .unwrap()
        .is_empty());
}

pub async fn an_unchanged_upsert_in_the_window_leaves_the_row_alone<R: SessionRepository>(
    repo: &R,
) {
    let (id, now) = (fresh_id(), now());
    let expiry = now + Duration::hours(1);
    let digest = [7; 32];
    let write = |data: &[u8], digest: [u8; 32], expires_at: OffsetDateTime| SessionRow {
        unchanged: Some(Unchanged {
            digest,
            keep_if_expiring_after: expires_at - Duration::minutes(1),
        }),
        ..row(&id, data, expires_at)
    };
    repo.insert_if_absent(write(b"first", digest, expiry))
        .await
        .unwrap();

    // Same digest, 30 s later: kept (the data would have been replaced otherwise).
    repo.upsert(write(b"second", digest, expiry + Duration::seconds(30)))
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // Another digest: written.
    repo.upsert(write(b"third", [8; 32], expiry + Duration::seconds(30)))
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
    // The same digest past the window: written.
    repo.upsert(write(b"fourth", [8; 32], expiry + Duration::minutes(2)))
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, expiry + Duration::seconds(90))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"fourth"[..])
    );
    // A plain upsert clears the digest: the next conditional one writes.
    repo.upsert(row(&id, b"fifth", expiry + Duration::minutes(2)))
        .await
        .unwrap();
    repo.upsert(write(b"sixth", [8; 32], expiry + Duration::minutes(2)))
        .await
        .unwrap();
    assert_eq!(
        repo.find_unexpired(&id, now).await.unwrap().as_deref(),
        Some(&b"sixth"[..])
    );
}

/// Runs every contract test against the repository of the stores `$fixture` makes.
///
/// `$fixture` is an async fn returning a value with a `store` field and an async `finish`.
#[macro_export]
macro_rules! repository_contract {
    ($fixture:expr) => {
        $crate::repository_contract!(@tests $fixture;
            insert_if_absent_inserts_a_free_id,
            insert_if_absent_never_overwrites_a_taken_id,
            insert_if_absent_reports_an_expired_row_as_taken,
            find_unexpired_hides_a_row_expiring_at_or_before_now,
            find_unexpired_of_an_unknown_id_is_none,
            upsert_replaces_the_data_and_the_expiry,
            delete_by_id_is_idempotent,
            delete_expired_batch_deletes_at_most_limit_rows_expired_at_or_before_now,
            the_user_index_lists_and_deletes_a_users_rows_only,
            an_upsert_without_a_user_key_takes_the_row_out_of_the_index,
            an_unchanged_upsert_in_the_window_leaves_the_row_alone,
        );
    };
    (@tests $fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = $fixture.await;
                $crate::common::contract::$name(fixture.store.repository()).await;
                fixture.finish().await;
            }
        )*
    };
}
