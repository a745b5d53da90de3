//! The behavioural suite: what every repository must do, written once against the store's
//! public API and run on each backend by `behaviour_suite!`, through tower-sessions 0.15's traits
//! or (with `through Through014`) 0.14's.

use std::{collections::HashSet, fmt::Debug};

use async_trait::async_trait;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec, repository::SessionRepository, session_store, Id, Record, RepositoryStore,
};

/// A store as the suite drives it: the four tower-sessions operations, through one version's
/// trait, in 0.15's types; and the store underneath for what the traits do not cover.
#[async_trait]
pub trait SuiteStore: Clone + Send + Sync + 'static {
    type R: SessionRepository + Debug;
    type C: Codec + Debug;
    fn inner(&self) -> &RepositoryStore<Self::R, Self::C>;
    fn with_inner(&self, inner: RepositoryStore<Self::R, Self::C>) -> Self;
    async fn create(&self, record: &mut Record) -> session_store::Result<()>;
    async fn save(&self, record: &Record) -> session_store::Result<()>;
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>>;
    async fn delete(&self, id: &Id) -> session_store::Result<()>;
}

/// Through tower-sessions 0.15's `SessionStore`.
#[async_trait]
impl<R, C> SuiteStore for RepositoryStore<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    type R = R;
    type C = C;
    fn inner(&self) -> &RepositoryStore<R, C> {
        self
    }
    fn with_inner(&self, inner: RepositoryStore<R, C>) -> Self {
        inner
    }
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        tower_sessions_seaorm_store::SessionStore::create(self, record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        tower_sessions_seaorm_store::SessionStore::save(self, record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        tower_sessions_seaorm_store::SessionStore::load(self, id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        tower_sessions_seaorm_store::SessionStore::delete(self, id).await
    }
}

/// The same store driven through tower-sessions 0.14's `SessionStore` (feature
/// `tower-sessions-014`), converting records and errors at the test's edge.
#[cfg(feature = "tower-sessions-014")]
pub struct Through014<R, C>(pub RepositoryStore<R, C>);

#[cfg(feature = "tower-sessions-014")]
impl<R, C> Clone for Through014<R, C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[cfg(feature = "tower-sessions-014")]
mod via_014 {
    use tower_sessions_core_014::{session, session_store as store_014};

    use super::*;

    pub fn record(r: &Record) -> session::Record {
        session::Record {
            id: session::Id(r.id.0),
            data: r.data.clone(),
            expiry_date: r.expiry_date,
        }
    }

    pub fn back(r: session::Record) -> Record {
        Record {
            id: Id(r.id.0),
            data: r.data,
            expiry_date: r.expiry_date,
        }
    }

    pub fn error(e: store_014::Error) -> session_store::Error {
        match e {
            store_014::Error::Encode(m) => session_store::Error::Encode(m),
            store_014::Error::Decode(m) => session_store::Error::Decode(m),
            store_014::Error::Backend(m) => session_store::Error::Backend(m),
        }
    }
}

#[cfg(feature = "tower-sessions-014")]
#[async_trait]
impl<R, C> SuiteStore for Through014<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    type R = R;
    type C = C;
    fn inner(&self) -> &RepositoryStore<R, C> {
        &self.0
    }
    fn with_inner(&self, inner: RepositoryStore<R, C>) -> Self {
        Self(inner)
    }
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        use tower_sessions_core_014::SessionStore;
        let mut old = via_014::record(record);
        SessionStore::create(&self.0, &mut old)
            .await
            .map_err(via_014::error)?;
        *record = via_014::back(old);
        Ok(())
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        use tower_sessions_core_014::SessionStore;
        SessionStore::save(&self.0, &via_014::record(record))
            .await
            .map_err(via_014::error)
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        use tower_sessions_core_014::{session, SessionStore};
        let loaded = SessionStore::load(&self.0, &session::Id(id.0))
            .await
            .map_err(via_014::error)?;
        Ok(loaded.map(via_014::back))
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        use tower_sessions_core_014::{session, SessionStore};
        SessionStore::delete(&self.0, &session::Id(id.0))
            .await
            .map_err(via_014::error)
    }
}

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

pub async fn round_trip<S: SuiteStore>(store: &S) {
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );

    rec.data.insert("name".into(), json!("Grace Hopper"));
    store.save(&rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec.clone())
    );

    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

pub async fn load_of_an_unknown_id_is_none<S: SuiteStore>(store: &S) {
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);
}

pub async fn create_with_a_taken_id_keeps_the_old_session_and_takes_a_new_id<S: SuiteStore>(
    store: &S,
) {
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
    assert_eq!(
        crate::common::without_base(store.load(&first.id).await.unwrap()),
        Some(first)
    );
    assert_eq!(
        crate::common::without_base(store.load(&second.id).await.unwrap()),
        Some(second)
    );
}

pub async fn concurrent_creates_with_one_preset_id_all_survive_with_distinct_ids<S: SuiteStore>(
    store: &S,
) {
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
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec)
        );
    }
}

pub async fn save_of_a_missing_session_writes_nothing<S: SuiteStore>(store: &S) {
    let rec = record(in_a_day());
    store.save(&rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);

    // The id is still free: a create keeps it.
    let mut created = rec.clone();
    store.create(&mut created).await.unwrap();
    assert_eq!(created.id, rec.id);
}

pub async fn a_session_deleted_after_it_was_loaded_stays_deleted_when_saved<S: SuiteStore>(
    store: &S,
) {
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    // One request loads the session...
    let mut loaded = store.load(&rec.id).await.unwrap().expect("just created");
    // ...another logs it out...
    store.delete(&rec.id).await.unwrap();
    // ...and the first saves what it changed: the logout must win.
    loaded.data.insert("cart".into(), json!(["book"]));
    store.save(&loaded).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

pub async fn concurrent_saves_of_one_id_all_succeed<S: SuiteStore>(store: &S) {
    let mut base = record(in_a_day());
    store.create(&mut base).await.unwrap();
    let saved: Vec<Record> = (0..40)
        .map(|n| {
            let mut rec = base.clone();
            rec.data.insert("n".into(), json!(n));
            rec
        })
        .collect();
    let tasks: Vec<_> = saved
        .iter()
        .cloned()
        .map(|rec| {
            let store = store.clone();
            tokio::spawn(async move { store.save(&rec).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every save succeeds");
    }

    let stored = crate::common::without_base(store.load(&base.id).await.unwrap())
        .expect("the session exists");
    assert!(
        saved.contains(&stored),
        "the stored session is exactly one of the saves, not a mix: {stored:?}"
    );
}

pub async fn an_expired_session_is_never_loaded<S: SuiteStore>(store: &S) {
    let mut expired = record(OffsetDateTime::now_utc() - Duration::seconds(1));
    store.create(&mut expired).await.unwrap();
    assert_eq!(store.load(&expired.id).await.unwrap(), None);

    // Live, then expired: still in the table (nothing cleaned it up), but not loadable once
    // its expiry has passed on the store's clock, to the microsecond.
    let clock = tower_sessions_seaorm_store::testing::ManualClock::new();
    let store = store.with_inner(store.inner().clone().with_clock(clock.reader()));
    let mut soon = record(clock.now() + Duration::minutes(30));
    store.create(&mut soon).await.unwrap();
    clock.set(soon.expiry_date - Duration::microseconds(1));
    assert!(store.load(&soon.id).await.unwrap().is_some());
    clock.set(soon.expiry_date);
    assert_eq!(store.load(&soon.id).await.unwrap(), None);
}

pub async fn delete_is_idempotent<S: SuiteStore>(store: &S) {
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    store.delete(&Id::default()).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

pub async fn delete_expired_removes_only_expired_sessions_in_batches<S: SuiteStore>(store: &S) {
    let store = store.with_inner(store.inner().clone().with_cleanup_batch_size(7));
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for n in 0..25 {
        store
            .create(&mut record(now - Duration::minutes(n + 1)))
            .await
            .unwrap();
    }
    for n in 0..5 {
        let mut rec = record(now + Duration::minutes(n + 1));
        store.create(&mut rec).await.unwrap();
        live.push(rec);
    }

    let deleted = store.inner().delete_expired_sessions().await.unwrap();

    assert_eq!(deleted, 25, "every expired row, over several batches of 7");
    for rec in &live {
        assert_eq!(
            crate::common::without_base(store.load(&rec.id).await.unwrap()).as_ref(),
            Some(rec)
        );
    }
    assert_eq!(store.inner().delete_expired_sessions().await.unwrap(), 0);
}

pub async fn an_undecodable_row_is_a_decode_error<S: SuiteStore>(store: &S) {
    let id = Id::default();
    store
        .inner()
        .repository()
        .insert_if_absent(crate::common::row(
            &id.to_string(),
            b"\xc1 not a session",
            in_a_day(),
        ))
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
    let bytes = store.inner().codec().encode(&(&rec).into()).unwrap();
    store
        .inner()
        .repository()
        .insert_if_absent(crate::common::row(
            &rec.id.to_string(),
            &bytes[..bytes.len() / 2],
            in_a_day(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        store.load(&rec.id).await,
        Err(tower_sessions_seaorm_store::session_store::Error::Decode(_))
    ));
}

pub async fn a_row_holding_another_sessions_record_is_a_decode_error<S: SuiteStore>(store: &S) {
    let mut victim = record(in_a_day());
    store.create(&mut victim).await.unwrap();
    // Someone with write access copies the victim's data into the row of another id.
    let bytes = store.inner().codec().encode(&(&victim).into()).unwrap();
    let copy = Id::default();
    store
        .inner()
        .repository()
        .insert_if_absent(crate::common::row(&copy.to_string(), &bytes, in_a_day()))
        .await
        .unwrap();
    let err = store.load(&copy).await.unwrap_err();
    assert!(
        matches!(
            &err,
            tower_sessions_seaorm_store::session_store::Error::Decode(m) if m.contains("another session")
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&victim.id.to_string()));
}

pub async fn a_stored_row_over_the_size_limit_is_refused_not_decoded<S: SuiteStore>(store: &S) {
    // A genuine record of 2 MiB of nils (decoding one would take about 80 MiB), written by
    // something other than this store, which refuses to write it.
    let mut rec = record(in_a_day());
    rec.data
        .insert("nils".into(), json!(vec![serde_json::Value::Null; 2 << 20]));
    let bytes = store.inner().codec().encode(&(&rec).into()).unwrap();
    // Over the default limit, 1 MiB.
    assert!(bytes.len() > 1 << 20);
    assert!(matches!(
        store.create(&mut rec.clone()).await,
        Err(tower_sessions_seaorm_store::session_store::Error::Encode(_))
    ));
    store
        .inner()
        .repository()
        .insert_if_absent(crate::common::row(&rec.id.to_string(), &bytes, in_a_day()))
        .await
        .unwrap();
    let err = store.load(&rec.id).await.unwrap_err();
    assert!(
        matches!(
            &err,
            tower_sessions_seaorm_store::session_store::Error::Decode(m) if m.contains("over the store's limit")
        ),
        "{err:?}"
    );
}

pub async fn a_one_mib_session_round_trips_with_a_raised_limit<S: SuiteStore>(store: &S) {
    let store = store.with_inner(
        store
            .inner()
            .clone()
            .with_max_session_size(Some(2 * 1024 * 1024)),
    );
    let mut rec = record(in_a_day());
    let blob: String = (0..1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    rec.data.insert("blob".into(), json!(blob));
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
}

pub async fn expiry_round_trips_to_the_nanosecond<S: SuiteStore>(store: &S) {
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
        $crate::behaviour_suite!($fixture, through ::std::convert::identity);
    };
    ($fixture:expr, through $wrap:expr) => {
        $crate::behaviour_suite!(@tests $fixture; $wrap;
            round_trip,
            load_of_an_unknown_id_is_none,
            create_with_a_taken_id_keeps_the_old_session_and_takes_a_new_id,
            concurrent_creates_with_one_preset_id_all_survive_with_distinct_ids,
            save_of_a_missing_session_writes_nothing,
            a_session_deleted_after_it_was_loaded_stays_deleted_when_saved,
            concurrent_saves_of_one_id_all_succeed,
            an_expired_session_is_never_loaded,
            delete_is_idempotent,
            delete_expired_removes_only_expired_sessions_in_batches,
            an_undecodable_row_is_a_decode_error,
            a_row_holding_another_sessions_record_is_a_decode_error,
            a_stored_row_over_the_size_limit_is_refused_not_decoded,
            a_one_mib_session_round_trips_with_a_raised_limit,
            expiry_round_trips_to_the_nanosecond,
        );
    };
    (@tests $fixture:expr; $wrap:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture.await;
                let store = ($wrap)(fixture.store.clone());
                $crate::common::suite::$name(&store).await;
                fixture.finish().await;
            }
        )*
    };
}
