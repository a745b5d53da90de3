//! The behavioural suite: what every repository must do, written once against the store's
//! public API and run on each backend by `behaviour_suite!`.

use std::{collections::HashSet, fmt::Debug};

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    ports::{Codec, SessionRepository},
    Id, Record, RepositoryStore, SessionStore,
};

pub fn record(expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: [
            ("user_id".to_owned(), json!(42)),
            ("name".to_owned(), json!("Ada Lovelace")),
            ("roles".to_owned(), json!(["admin", "ops"])),
        ]
        .into_iter()
        .collect(),
        expiry_date,
    }
}

pub fn in_a_day() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(1)
}

pub async fn round_trip<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));

    rec.data.insert("name".into(), json!("Grace Hopper"));
    store.save(&rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));

    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

pub async fn load_of_an_unknown_id_is_none<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);
}

pub async fn create_with_a_taken_id_keeps_the_old_session_and_takes_a_new_id<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let mut first = record(in_a_day());
    store.create(&mut first).await.unwrap();

    let mut second = record(in_a_day());
    second.id = first.id;
    second.data.insert("name".into(), json!("Mallory"));
    store.create(&mut second).await.unwrap();

    assert_ne!(
        second.id, first.id,
        "create must move the new session to a fresh id"
    );
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first));
    assert_eq!(store.load(&second.id).await.unwrap(), Some(second));
}

pub async fn concurrent_creates_with_one_preset_id_all_survive_with_distinct_ids<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let preset = Id::default();
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rec = record(in_a_day());
                rec.id = preset;
                rec.data.insert("n".into(), json!(n));
                store.create(&mut rec).await.map(|()| rec)
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.unwrap().expect("every create succeeds"));
    }

    let ids: HashSet<Id> = created.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 32, "every create ends with an id of its own");
    assert!(
        ids.contains(&preset),
        "exactly one create keeps the preset id"
    );
    for rec in &created {
        assert_eq!(store.load(&rec.id).await.unwrap().as_ref(), Some(rec));
    }
}

pub async fn save_of_an_unseen_id_inserts<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let rec = record(in_a_day());
    store.save(&rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec));
}

pub async fn concurrent_saves_of_one_id_all_succeed<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let base = record(in_a_day());
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let store = store.clone();
            let mut rec = base.clone();
            rec.data.insert("n".into(), json!(n));
            tokio::spawn(async move { store.save(&rec).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every save succeeds");
    }

    let stored = store
        .load(&base.id)
        .await
        .unwrap()
        .expect("the session exists");
    let n = stored.data["n"].as_u64().expect("one of the saves won");
    assert!(n < 40);
    assert_eq!(stored.data["name"], json!("Ada Lovelace"));
}

pub async fn an_expired_session_is_never_loaded<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let expired = record(OffsetDateTime::now_utc() - Duration::seconds(1));
    store.save(&expired).await.unwrap();
    assert_eq!(store.load(&expired.id).await.unwrap(), None);

    // Still in the table (nothing cleaned it up), but not loadable.
    let later = record(OffsetDateTime::now_utc() + Duration::minutes(5));
    store.save(&later).await.unwrap();
    let service = store.service();
    assert!(service.load(&later.id).await.unwrap().is_some());
    let after_expiry = later.expiry_date + Duration::seconds(1);
    assert_eq!(
        service.load_at(&later.id, after_expiry).await.unwrap(),
        None
    );
    assert_eq!(
        service.load_at(&later.id, later.expiry_date).await.unwrap(),
        None
    );
}

pub async fn delete_is_idempotent<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    store.delete(&Id::default()).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

pub async fn delete_expired_removes_only_expired_sessions_in_batches<R, C>(
    store: &RepositoryStore<R, C>,
) where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let store = store.clone().with_cleanup_batch_size(7);
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for n in 0..25 {
        store
            .save(&record(now - Duration::minutes(n + 1)))
            .await
            .unwrap();
    }
    for n in 0..5 {
        let rec = record(now + Duration::minutes(n + 1));
        store.save(&rec).await.unwrap();
        live.push(rec);
    }

    let deleted = store.delete_expired_sessions().await.unwrap();

    assert_eq!(deleted, 25, "every expired row, over several batches of 7");
    for rec in &live {
        assert_eq!(store.load(&rec.id).await.unwrap().as_ref(), Some(rec));
    }
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 0);
}

pub async fn an_undecodable_row_is_a_decode_error<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let id = Id::default();
    store
        .repository()
        .upsert(&id.to_string(), b"\xc1 not a session", in_a_day())
        .await
        .unwrap();
    let err = store.load(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            tower_sessions_seaorm_store::session_store::Error::Decode(_)
        ),
        "{err:?}"
    );

    // A truncated but otherwise genuine row.
    let rec = record(in_a_day());
    let bytes = store.codec().encode(&rec).unwrap();
    store
        .repository()
        .upsert(&rec.id.to_string(), &bytes[..bytes.len() / 2], in_a_day())
        .await
        .unwrap();
    assert!(matches!(
        store.load(&rec.id).await,
        Err(tower_sessions_seaorm_store::session_store::Error::Decode(_))
    ));
}

pub async fn a_one_mib_session_round_trips<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let mut rec = record(in_a_day());
    let blob: String = (0..1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    rec.data.insert("blob".into(), json!(blob));
    store.create(&mut rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec));
}

pub async fn expiry_round_trips_to_the_nanosecond<R, C>(store: &RepositoryStore<R, C>)
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    let expiry = in_a_day().replace_nanosecond(123_456_789).unwrap();
    let mut rec = record(expiry);
    store.create(&mut rec).await.unwrap();
    let loaded = store.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(loaded.expiry_date, expiry);
}

/// Runs every test of the suite against the stores `$fixture` makes.
///
/// `$fixture` is an async fn returning a value with a `store` field and an async `finish`.
#[macro_export]
macro_rules! behaviour_suite {
    ($fixture:expr) => {
        $crate::behaviour_suite!(@tests $fixture;
            round_trip,
            load_of_an_unknown_id_is_none,
            create_with_a_taken_id_keeps_the_old_session_and_takes_a_new_id,
            concurrent_creates_with_one_preset_id_all_survive_with_distinct_ids,
            save_of_an_unseen_id_inserts,
            concurrent_saves_of_one_id_all_succeed,
            an_expired_session_is_never_loaded,
            delete_is_idempotent,
            delete_expired_removes_only_expired_sessions_in_batches,
            an_undecodable_row_is_a_decode_error,
            a_one_mib_session_round_trips,
            expiry_round_trips_to_the_nanosecond,
        );
    };
    (@tests $fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture.await;
                $crate::common::suite::$name(&fixture.store).await;
                fixture.finish().await;
            }
        )*
    };
}
