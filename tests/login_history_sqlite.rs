//! The login history (`with_login_history`) on SQLite: each write and its entries in one
//! transaction; each committed change logged once with its reason, nothing for a change that
//! did not commit, no session id in any entry, the retention in the cleanup.

mod common;

use std::{collections::HashSet, path::Path, time::Duration as StdDuration};

use common::{
    scalar_strings,
    sqlite::{connect_sqlite, file_url, temp_db_path},
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::{SessionRepository, SessionRow},
    sea_orm::{ConnectionTrait, DatabaseConnection},
    testing::ManualClock,
    Id, Record, SessionEvent, SessionStore, SqliteStore,
};

/// A store with a history on the SQLite file at `path`, `edit`ed before the history is added.
async fn on_file(
    path: &Path,
    edit: impl FnOnce(SqliteStore) -> SqliteStore,
) -> (SqliteStore, DatabaseConnection) {
    let conn = connect_sqlite(&file_url(path), 4).await;
    let store = SqliteStore::new(conn.clone())
        .with_user_key("user_id")
        .unwrap()
        .with_listed_values(["agent"])
        .unwrap();
    let store = edit(store)
        .with_login_history(StdDuration::from_secs(24 * 3600))
        .unwrap();
    store.migrate().await.unwrap();
    (store, conn)
}

fn record(user: Option<&str>, now: OffsetDateTime) -> Record {
    let mut data = std::collections::HashMap::new();
    if let Some(user) = user {
        data.insert("user_id".to_owned(), json!(user));
    }
    data.insert("agent".to_owned(), json!("Firefox on Linux"));
    Record {
        id: Id::default(),
        data,
        expiry_date: now.replace_nanosecond(0).unwrap() + Duration::days(1),
    }
}

fn kinds(events: &[SessionEvent]) -> Vec<&'static str> {
    events.iter().map(|event| event.kind).collect()
}

async fn every_cell(conn: &DatabaseConnection) -> Vec<String> {
    scalar_strings(
        conn,
        "SELECT \"seq\" || ' | ' || \"user_key\" || ' | ' || \"kind\" || ' | ' || \"at\" || ' | ' \
         || \"handle\" || ' | ' || coalesce(\"listed_values\", '') FROM \"session_history\"",
        vec![],
    )
    .await
}

#[tokio::test]
async fn sign_ins_sign_outs_and_endings_each_appear_once_with_their_reason() {
    let path = temp_db_path();
    let (store, _conn) = on_file(&path, |store| store).await;
    let now = OffsetDateTime::now_utc();

    let mut rec = record(None, now);
    store.create(&mut rec).await.unwrap();
    rec.data.insert("user_id".into(), json!("ada"));
    store.save(&rec).await.unwrap();
    let handle = store.session_handle(rec.id);
    store.save(&rec).await.unwrap();
    rec.data.remove("user_id");
    store.save(&rec).await.unwrap();
    rec.data.insert("user_id".into(), json!("ada"));
    store.save(&rec).await.unwrap();
    rec.data.insert("user_id".into(), json!("bob"));
    store.save(&rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();

    let ada = store.user_history("ada", 10).await.unwrap();
    assert_eq!(
        kinds(&ada),
        ["signed_out", "signed_in", "signed_out", "signed_in"]
    );
    assert!(ada.iter().all(|event| event.handle == handle));
    assert_eq!(ada[1].listed["agent"], json!("Firefox on Linux"));
    let bob = store.user_history("bob", 10).await.unwrap();
    assert_eq!(kinds(&bob), ["deleted", "signed_in"]);

    let mut devices = Vec::new();
    for _ in 0..4 {
        let mut rec = record(Some("cy"), now);
        store.create(&mut rec).await.unwrap();
        devices.push(rec);
    }
    let listed = store.user_sessions("cy").await.unwrap();
    assert!(store
        .delete_user_session("cy", &listed[0].handle)
        .await
        .unwrap());
    let keep = devices
        .iter()
        .find(|rec| store.session_handle(rec.id) != listed[0].handle)
        .unwrap();
    assert_eq!(
        store
            .delete_user_sessions_except("cy", keep.id)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.delete_user_sessions("cy").await.unwrap(), 1);
    let cy = store.user_history("cy", 100).await.unwrap();
    let revoked: HashSet<_> = cy
        .iter()
        .filter(|event| event.kind == "revoked")
        .map(|event| event.handle.clone())
        .collect();
    assert_eq!(cy.len(), 8);
    assert_eq!(
        revoked,
        devices
            .iter()
            .map(|rec| store.session_handle(rec.id))
            .collect()
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn the_limit_trims_and_the_cleanup_ends_with_their_reasons() {
    let path = temp_db_path();
    let clock = ManualClock::new();
    let (store, conn) = on_file(&path, |store| {
        store
            .with_clock(clock.reader())
            .with_absolute_lifetime(StdDuration::from_secs(3600))
            .with_max_sessions_per_user(1)
            .unwrap()
    })
    .await;
    let mut first = record(Some("ada"), clock.now());
    store.create(&mut first).await.unwrap();
    // A second later: the trim ends the least recently saved, ties broken by key.
    clock.advance(StdDuration::from_secs(1));
    let mut second = record(Some("ada"), clock.now());
    store.create(&mut second).await.unwrap();
    let ada = store.user_history("ada", 10).await.unwrap();
    assert_eq!(kinds(&ada), ["trimmed", "signed_in", "signed_in"]);
    assert_eq!(ada[0].handle, store.session_handle(first.id));

    clock.advance(StdDuration::from_secs(50 * 60));
    let mut short = record(Some("bob"), clock.now());
    short.expiry_date = clock.now() + Duration::minutes(5);
    store.create(&mut short).await.unwrap();
    clock.advance(StdDuration::from_secs(20 * 60));
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 2);
    assert_eq!(
        kinds(&store.user_history("ada", 1).await.unwrap()),
        ["lifetime"]
    );
    assert_eq!(
        kinds(&store.user_history("bob", 10).await.unwrap()),
        ["expired", "signed_in"]
    );

    clock.advance(StdDuration::from_secs(25 * 3600));
    store.delete_expired_sessions().await.unwrap();
    assert!(every_cell(&conn).await.is_empty());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_change_that_did_not_commit_appends_nothing() {
    let path = temp_db_path();
    let (store, conn) = on_file(&path, |store| store).await;
    let now = OffsetDateTime::now_utc();
    let mut rec = record(Some("ada"), now);
    store.create(&mut rec).await.unwrap();
    store.delete_user_sessions("ada").await.unwrap();
    rec.data.insert("user_id".into(), json!("bob"));
    store.save(&rec).await.unwrap();
    assert!(store.user_history("bob", 10).await.unwrap().is_empty());

    let row = SessionRow {
        id: "taken".to_owned(),
        data: vec![1],
        expires_at: now + Duration::hours(1),
        user_key: Some("cy".to_owned()),
        created_at: now,
        saved_at: now,
        listed_values: None,
    };
    assert!(store
        .repository()
        .insert_if_absent(row.clone())
        .await
        .unwrap());
    assert!(!store.repository().insert_if_absent(row).await.unwrap());
    assert_eq!(
        kinds(&store.user_history("cy", 10).await.unwrap()),
        ["signed_in"]
    );

    // A history insert that fails rolls the change back with it.
    let before = store.user_history("ada", 10).await.unwrap();
    conn.execute_unprepared(
        "CREATE TRIGGER \"no_more\" BEFORE INSERT ON \"session_history\" WHEN NEW.\"kind\" = \
         'signed_in' BEGIN SELECT RAISE(ABORT, 'no more sign-ins'); END",
    )
    .await
    .unwrap();
    let mut refused = record(Some("ada"), now);
    assert!(store.create(&mut refused).await.is_err());
    assert!(store.load(&refused.id).await.unwrap().is_none());
    let mut anonymous = record(None, now);
    store.create(&mut anonymous).await.unwrap();
    anonymous.data.insert("user_id".into(), json!("ada"));
    assert!(store.save(&anonymous).await.is_err());
    let loaded = store.load(&anonymous.id).await.unwrap().unwrap();
    assert!(!loaded.data.contains_key("user_id"), "the save rolled back");
    assert_eq!(store.user_history("ada", 10).await.unwrap(), before);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn concurrent_logins_from_several_pools_leave_a_history_matching_the_sessions() {
    let path = temp_db_path();
    let (store, _conn) = on_file(&path, |store| store.with_max_sessions_per_user(3).unwrap()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let replica = SqliteStore::new(connect_sqlite(&file_url(&path), 2).await)
            .with_user_key("user_id")
            .unwrap()
            .with_max_sessions_per_user(3)
            .unwrap()
            .with_login_history(StdDuration::from_secs(3600))
            .unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let mut rec = record(Some("ada"), OffsetDateTime::now_utc());
                replica.create(&mut rec).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let history = store.user_history("ada", 1000).await.unwrap();
    let of = |kind: &str| -> HashSet<_> {
        history
            .iter()
            .filter(|event| event.kind == kind)
            .map(|event| event.handle.clone())
            .collect()
    };
    let (signed_in, ended) = (of("signed_in"), of("trimmed"));
    assert_eq!(signed_in.len(), 24);
    assert_eq!(ended.len(), 21);
    assert_eq!(history.len(), 45);
    let live: HashSet<_> = store
        .user_sessions("ada")
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.handle)
        .collect();
    assert_eq!(live, signed_in.difference(&ended).cloned().collect());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn hostile_user_keys_and_listed_values_round_trip_and_no_entry_holds_a_session_id() {
    for hashed in [false, true] {
        let path = temp_db_path();
        let (store, conn) = on_file(&path, |store| {
            if hashed {
                store.with_hashed_ids()
            } else {
                store
            }
        })
        .await;
        let hostile = "'); DROP TABLE x; -- \"\\ ?1 %s \u{202e}𝔘 \u{1}";
        let mut rec = record(Some(hostile), OffsetDateTime::now_utc());
        rec.data.insert("agent".into(), json!(hostile));
        store.create(&mut rec).await.unwrap();
        rec.data.remove("user_id");
        store.save(&rec).await.unwrap();
        let events = store.user_history(hostile, 10).await.unwrap();
        assert_eq!(kinds(&events), ["signed_out", "signed_in"]);
        assert!(events
            .iter()
            .all(|event| event.listed["agent"] == json!(hostile)));
        let id = rec.id.to_string();
        let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
        let cells = every_cell(&conn).await;
        assert_eq!(cells.len(), 2);
        for cell in cells {
            assert!(
                !cell.contains(&id) && !cell.contains(&key),
                "{hashed}: {cell}"
            );
        }
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn the_operators_calls_log_each_session_they_end_as_revoked() {
    let path = temp_db_path();
    let clock = ManualClock::new();
    let (store, _conn) = on_file(&path, |store| {
        store.with_clock(clock.reader()).with_cleanup_batch_size(1)
    })
    .await;
    let mut old = [record(Some("ada"), clock.now()), record(None, clock.now())];
    for record in &mut old {
        store.create(record).await.unwrap();
    }
    clock.advance(StdDuration::from_secs(60));
    let mut bobs = record(Some("bob"), clock.now());
    store.create(&mut bobs).await.unwrap();

    let ended = store.delete_sessions_created_before(clock.now()).await;
    assert_eq!(ended.unwrap(), 2);
    // (Revocations record the database's instant on PostgreSQL, as "log out everywhere"
    // does, while this store's clock runs ahead: compared as sets.)
    let revoked = |events: Vec<SessionEvent>| {
        let mut kinds = kinds(&events);
        kinds.sort_unstable();
        let handles: Vec<_> = events
            .into_iter()
            .filter(|event| event.kind == "revoked")
            .map(|event| event.handle)
            .collect();
        (kinds, handles)
    };
    let (kinds_of_ada, handles) = revoked(store.user_history("ada", 10).await.unwrap());
    assert_eq!(kinds_of_ada, ["revoked", "signed_in"]);
    assert_eq!(handles, [store.session_handle(old[0].id)]);

    let table = store.table_name().to_owned();
    assert_eq!(store.delete_all_sessions(&table).await.unwrap(), 1);
    let (kinds_of_bob, handles) = revoked(store.user_history("bob", 10).await.unwrap());
    assert_eq!(kinds_of_bob, ["revoked", "signed_in"]);
    assert_eq!(handles, [store.session_handle(bobs.id)]);
    let _ = std::fs::remove_file(path);
}
