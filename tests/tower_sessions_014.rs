//! The store through tower-sessions 0.14's traits (feature `tower-sessions-014`), on PostgreSQL:
//! the same rules as through 0.15's, and the same rows.

mod common;

use common::PgFixture;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_core_014::{
    session::{Id, Record},
    session_store, ExpiredDeletion, SessionStore,
};

/// What `load` returned, without the base it adds (see `common::without_base`).
fn loaded(record: Option<Record>) -> Option<Record> {
    record.map(|mut record| {
        assert!(record.data.remove(common::BASE_KEY).is_some());
        record
    })
}

fn record(expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: [("user_id".to_owned(), json!(7))].into_iter().collect(),
        expiry_date,
    }
}

fn in_a_day() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(1)
}

#[tokio::test]
async fn a_session_round_trips_through_the_0_14_traits() {
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    let mut rec = record(in_a_day());
    SessionStore::create(store, &mut rec).await.unwrap();
    assert_eq!(
        loaded(SessionStore::load(store, &rec.id).await.unwrap()),
        Some(rec.clone())
    );
    rec.data.insert("name".into(), json!("Ada"));
    SessionStore::save(store, &rec).await.unwrap();
    assert_eq!(
        loaded(SessionStore::load(store, &rec.id).await.unwrap()),
        Some(rec.clone())
    );
    SessionStore::delete(store, &rec.id).await.unwrap();
    SessionStore::delete(store, &rec.id).await.unwrap();
    assert_eq!(SessionStore::load(store, &rec.id).await.unwrap(), None);
    fixture.finish().await;
}

#[tokio::test]
async fn create_with_a_taken_id_keeps_the_old_session_and_moves_the_record_to_a_fresh_id() {
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    let mut first = record(in_a_day());
    SessionStore::create(store, &mut first).await.unwrap();
    let mut second = record(in_a_day());
    second.id = first.id;
    second.data.insert("user_id".into(), json!(666));
    SessionStore::create(store, &mut second).await.unwrap();

    assert_ne!(second.id, first.id);
    assert_eq!(
        loaded(SessionStore::load(store, &first.id).await.unwrap()),
        Some(first)
    );
    assert_eq!(
        loaded(SessionStore::load(store, &second.id).await.unwrap()),
        Some(second)
    );
    fixture.finish().await;
}

#[tokio::test]
async fn an_expired_session_is_never_loaded_and_expired_deletion_removes_it() {
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    let mut expired = record(OffsetDateTime::now_utc() - Duration::seconds(1));
    let mut live = record(in_a_day());
    SessionStore::create(store, &mut expired).await.unwrap();
    SessionStore::create(store, &mut live).await.unwrap();
    assert_eq!(SessionStore::load(store, &expired.id).await.unwrap(), None);

    ExpiredDeletion::delete_expired(store).await.unwrap();
    assert_eq!(
        store.delete_expired_sessions().await.unwrap(),
        0,
        "nothing expired is left"
    );
    assert_eq!(
        loaded(SessionStore::load(store, &live.id).await.unwrap()),
        Some(live)
    );
    fixture.finish().await;
}

#[tokio::test]
async fn both_versions_read_each_others_sessions() {
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    let mut old = record(in_a_day());
    SessionStore::create(store, &mut old).await.unwrap();
    let seen_by_015 = tower_sessions_seaorm_store::SessionStore::load(
        store,
        &tower_sessions_seaorm_store::Id(old.id.0),
    )
    .await
    .unwrap()
    .expect("0.15 sees the session 0.14 wrote");
    let seen_by_015 = common::without_base(Some(seen_by_015)).unwrap();
    assert_eq!(seen_by_015.data, old.data);
    assert_eq!(seen_by_015.expiry_date, old.expiry_date);
    // The same bytes either way: MessagePack of the same fields.
    let encoded_014 = rmp_serde::to_vec(&old).unwrap();
    let encoded_015 = rmp_serde::to_vec(&seen_by_015).unwrap();
    assert_eq!(encoded_014, encoded_015);
    fixture.finish().await;
}

#[tokio::test]
async fn a_corrupt_row_is_a_0_14_decode_error() {
    let fixture = PgFixture::new().await;
    let id = Id::default();
    tower_sessions_seaorm_store::repository::SessionRepository::insert_if_absent(
        fixture.store.repository(),
        common::row(&id.to_string(), b"\xc1 nope", in_a_day()),
    )
    .await
    .unwrap();
    let err = SessionStore::load(&fixture.store, &id).await.unwrap_err();
    assert!(matches!(err, session_store::Error::Decode(_)), "{err:?}");
    fixture.finish().await;
}

#[tokio::test]
async fn a_database_failure_is_a_0_14_backend_error() {
    let conn = common::connect_postgres(&common::database_url()).await;
    let store = tower_sessions_seaorm_store::PostgresStore::new(conn)
        .with_schema_name(&common::unique_name("ts_missing"))
        .unwrap();
    let err = SessionStore::load(&store, &Id::default())
        .await
        .unwrap_err();
    assert!(matches!(err, session_store::Error::Backend(_)), "{err:?}");
}

/// The whole behavioural suite, driven through tower-sessions 0.14's `SessionStore`.
mod behaviour_through_0_14 {
    crate::behaviour_suite!(
        crate::common::PgFixture::new(),
        through crate::common::suite::Through014
    );
}
