//! The login history (`with_login_history`) on MySQL/MariaDB: each write and its entries in one
//! transaction, after a locking read of the rows it changes; each committed change logged once
//! with its reason, nothing for a change that did not commit, no session id in any entry,
//! user_history newest first, the retention in the cleanup.

mod common;

use std::{collections::HashSet, time::Duration as StdDuration};

use common::{
    mysql::{connect_mysql, drop_table, mysql_url},
    scalar_strings, unique_name,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::{SessionRepository, SessionRow},
    sea_orm::{ConnectionTrait, DatabaseConnection},
    testing::ManualClock,
    Id, MySqlStore, Record, SessionEvent, SessionStore,
};

/// A migrated store with a history in a table of its own, `edit`ed before the history is added.
struct Fixture {
    store: MySqlStore,
    conn: DatabaseConnection,
    table: String,
}

impl Fixture {
    async fn new(edit: impl FnOnce(MySqlStore) -> MySqlStore) -> Self {
        let conn = connect_mysql(&mysql_url()).await;
        let table = unique_name("ts_hist");
        let store = MySqlStore::new(conn.clone())
            .with_table_name(&table)
            .unwrap()
            .with_user_key("user_id")
            .unwrap()
            .with_listed_values(["agent"])
            .unwrap();
        let store = edit(store)
            .with_login_history(StdDuration::from_secs(24 * 3600))
            .unwrap();
        store.migrate().await.unwrap();
        Self { store, conn, table }
    }

    async fn every_cell(&self) -> Vec<String> {
        scalar_strings(
            &self.conn,
            &format!(
                "SELECT CONCAT_WS(' | ', `seq`, CAST(`user_key` AS CHAR), CAST(`kind` AS CHAR), \
                 `at`, CAST(`handle` AS CHAR), coalesce(`listed_values`, '')) FROM `{}_history`",
                self.table
            ),
            vec![],
        )
        .await
    }

    async fn finish(self) {
        self.conn
            .execute_unprepared(&format!("DROP TABLE IF EXISTS `{}_history`", self.table))
            .await
            .unwrap();
        drop_table(&self.conn, &self.table).await;
    }
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

#[tokio::test]
async fn sign_ins_sign_outs_and_endings_each_appear_once_with_their_reason() {
    let fixture = Fixture::new(|store| store).await;
    let store = &fixture.store;
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
    assert_eq!(
        kinds(&store.user_history("bob", 1).await.unwrap()),
        ["deleted"]
    );

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
    fixture.finish().await;
}

#[tokio::test]
async fn the_limit_trims_and_the_cleanup_ends_with_their_reasons() {
    let clock = ManualClock::new();
    let fixture = Fixture::new(|store| {
        store
            .with_clock(clock.reader())
            .with_absolute_lifetime(StdDuration::from_secs(3600))
            .with_max_sessions_per_user(1)
            .unwrap()
    })
    .await;
    let store = &fixture.store;
    let mut first = record(Some("ada"), clock.now());
    store.create(&mut first).await.unwrap();
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
    // Many expired sessions in one cleanup batch: each is deleted by key and logged once
    // (87 entries: inserts of 64, 16, 4 and 1).
    let mut many = Vec::new();
    for n in 0..85 {
        let user = format!("many{n}");
        let mut rec = record(Some(&user), clock.now());
        rec.expiry_date = clock.now() + Duration::minutes(5);
        store.create(&mut rec).await.unwrap();
        many.push((user, store.session_handle(rec.id)));
    }
    clock.advance(StdDuration::from_secs(20 * 60));
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 87);
    assert_eq!(
        kinds(&store.user_history("ada", 1).await.unwrap()),
        ["lifetime"]
    );
    assert_eq!(
        kinds(&store.user_history("bob", 10).await.unwrap()),
        ["expired", "signed_in"]
    );
    for (user, handle) in many {
        let history = store.user_history(&user, 10).await.unwrap();
        assert_eq!(kinds(&history), ["expired", "signed_in"], "{user}");
        assert_eq!(history[0].handle, handle);
    }

    clock.advance(StdDuration::from_secs(25 * 3600));
    store.delete_expired_sessions().await.unwrap();
    assert!(fixture.every_cell().await.is_empty());
    fixture.finish().await;
}

#[tokio::test]
async fn a_change_that_did_not_commit_appends_nothing() {
    let fixture = Fixture::new(|store| store).await;
    let store = &fixture.store;
    let now = OffsetDateTime::now_utc();
    let mut rec = record(Some("ada"), now);
    store.create(&mut rec).await.unwrap();
    store.delete_user_sessions("ada").await.unwrap();
    // A save of a session revoked since its load: nothing written, nothing logged.
    rec.data.insert("user_id".into(), json!("bob"));
    store.save(&rec).await.unwrap();
    assert!(store.user_history("bob", 10).await.unwrap().is_empty());
    assert_eq!(
        kinds(&store.user_history("ada", 10).await.unwrap()),
        ["revoked", "signed_in"]
    );
    store.delete(&rec.id).await.unwrap(); // gone already: nothing
    assert_eq!(store.user_history("ada", 10).await.unwrap().len(), 2);

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
    fixture
        .conn
        .execute_unprepared(&format!(
            "CREATE TRIGGER `{0}_no_more` BEFORE INSERT ON `{0}_history` FOR EACH ROW \
             IF NEW.`kind` = 'signed_in' THEN SIGNAL SQLSTATE '45000' \
             SET MESSAGE_TEXT = 'no more sign-ins'; END IF",
            fixture.table
        ))
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
    fixture.finish().await;
}

#[tokio::test]
async fn concurrent_logins_from_several_pools_leave_a_history_matching_the_sessions() {
    let fixture = Fixture::new(|store| store.with_max_sessions_per_user(3).unwrap()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let replica = MySqlStore::new(common::mysql::connect_mysql_with(&mysql_url(), 2).await)
            .with_table_name(&fixture.table)
            .unwrap()
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
    let store = &fixture.store;
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
    fixture.finish().await;
}

#[tokio::test]
async fn hostile_user_keys_and_listed_values_round_trip_and_no_entry_holds_a_session_id() {
    for hashed in [false, true] {
        let fixture = Fixture::new(|store| {
            if hashed {
                store.with_hashed_ids()
            } else {
                store
            }
        })
        .await;
        let store = &fixture.store;
        let hostile = "'); DROP TABLE x; -- \"\\ ?1 %s ` \u{202e}𝔘 \u{1}";
        let mut rec = record(Some(hostile), OffsetDateTime::now_utc());
        rec.data.insert("agent".into(), json!(hostile));
        store.create(&mut rec).await.unwrap();
        rec.data.remove("user_id");
        store.save(&rec).await.unwrap();
        let events = store.user_history(hostile, 10).await.unwrap();
        assert_eq!(kinds(&events), ["signed_out", "signed_in"]);
        assert!(events.iter().all(|event| event.user == hostile));
        assert!(events
            .iter()
            .all(|event| event.listed["agent"] == json!(hostile)));
        // Byte for byte: a user key that differs by a trailing space or case is another user.
        assert!(store
            .user_history(&format!("{hostile} "), 10)
            .await
            .unwrap()
            .is_empty());
        let id = rec.id.to_string();
        let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
        let cells = fixture.every_cell().await;
        assert_eq!(cells.len(), 2);
        for cell in cells {
            assert!(
                !cell.contains(&id) && !cell.contains(&key),
                "{hashed}: {cell}"
            );
        }
        fixture.finish().await;
    }
}

#[tokio::test]
async fn migrate_creates_the_history_once_even_when_replicas_race() {
    let table = unique_name("ts_hist");
    let mut migrations = Vec::new();
    for _ in 0..4 {
        let store = MySqlStore::new(connect_mysql(&mysql_url()).await)
            .with_table_name(&table)
            .unwrap()
            .with_user_key("user_id")
            .unwrap()
            .with_login_history(StdDuration::from_secs(60))
            .unwrap();
        migrations.push(tokio::spawn(async move { store.migrate().await }));
    }
    for migration in migrations {
        migration.await.unwrap().unwrap();
    }
    let conn = connect_mysql(&mysql_url()).await;
    let indexes = scalar_strings(
        &conn,
        &format!(
            "SELECT DISTINCT index_name FROM information_schema.statistics WHERE \
             table_schema = DATABASE() AND table_name = '{table}_history' ORDER BY index_name"
        ),
        vec![],
    )
    .await;
    assert_eq!(
        indexes,
        [
            "PRIMARY".to_owned(),
            format!("{table}_history_at_idx"),
            format!("{table}_history_user_idx")
        ]
    );
    conn.execute_unprepared(&format!("DROP TABLE IF EXISTS `{table}_history`"))
        .await
        .unwrap();
    drop_table(&conn, &table).await;
}
