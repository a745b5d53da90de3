//! The `SessionRepository` contract, operation by operation: what every repository must do,
//! run by `repository_contract!` on each backend (and on the in-memory repository, so that it
//! cannot drift from the SQL ones).

use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{ports::SessionRepository, Id};

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
