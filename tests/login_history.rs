//! The login history (`with_login_history`) on PostgreSQL: each committed change appends its
//! entry in the same statement, exactly once and with its reason; a change that did not commit
//! appends nothing; no entry holds a session id; the cleanup applies the retention.

mod common;

use std::{collections::BTreeMap, time::Duration as StdDuration};

use common::{connect_postgres, database_url, drop_schema, scalar_strings, unique_name};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::{SessionRepository, SessionRow},
    sea_orm::DatabaseConnection,
    testing::ManualClock,
    Id, PostgresStore, Record, SeaOrmStoreError, SessionEvent, SessionStore,
};

/// A migrated store with a history in a schema of its own, `edit`ed before the history is
/// added (the user key is set here).
async fn history_store(
    edit: impl FnOnce(PostgresStore) -> PostgresStore,
) -> (PostgresStore, DatabaseConnection, String) {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_history");
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap()
        .with_user_key("user_id")
        .unwrap()
        .with_listed_values(["agent"])
        .unwrap();
    let store = edit(store)
        .with_login_history(StdDuration::from_secs(24 * 3600))
        .unwrap();
    store.migrate().await.unwrap();
    (store, conn, schema)
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

/// Every history row of the schema's table, each column as text.
async fn every_cell(conn: &DatabaseConnection, schema: &str) -> Vec<String> {
    scalar_strings(
        conn,
        &format!(
            "SELECT concat_ws(' | ', \"seq\"::text, \"user_key\", \"kind\", \"at\"::text, \
             \"handle\", \"listed_values\") FROM \"{schema}\".\"session_history\""
        ),
        vec![],
    )
    .await
}

#[tokio::test]
async fn sign_ins_sign_outs_and_endings_each_appear_once_with_their_reason() {
    let (store, conn, schema) = history_store(|store| store).await;
    let now = OffsetDateTime::now_utc();

    // A session that signs in, changes nothing, signs out, signs in again, changes hands, ends.
    let mut rec = record(None, now);
    store.create(&mut rec).await.unwrap();
    assert!(store.user_history("ada", 10).await.unwrap().is_empty());
    rec.data.insert("user_id".into(), json!("ada"));
    store.save(&rec).await.unwrap();
    let handle = store.session_handle(rec.id);
    store.save(&rec).await.unwrap(); // the same user: nothing
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

    // Created signed in; revoked one device, the other devices, everywhere.
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
    let mut counted = BTreeMap::new();
    for event in &cy {
        *counted.entry(event.kind).or_insert(0) += 1;
    }
    assert_eq!(counted, BTreeMap::from([("revoked", 4), ("signed_in", 4)]));
    assert_eq!(
        cy.iter()
            .filter(|event| event.kind == "revoked")
            .map(|event| event.handle.clone())
            .collect::<std::collections::HashSet<_>>(),
        devices
            .iter()
            .map(|rec| store.session_handle(rec.id))
            .collect()
    );
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn the_limit_trims_and_the_cleanup_ends_with_their_reasons() {
    let clock = ManualClock::new();
    let (store, conn, schema) = history_store(|store| {
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
    assert_eq!(
        ada[0].at,
        clock
            .now()
            .replace_nanosecond(clock.now().microsecond() * 1000)
            .unwrap()
    );

    // `second` outlives its hour; `short` expires within its own.
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
    let bob = store.user_history("bob", 10).await.unwrap();
    assert_eq!(kinds(&bob), ["expired", "signed_in"]);
    assert_eq!(bob[0].handle, store.session_handle(short.id));

    // The retention: a day later the cleanup deletes every entry.
    clock.advance(StdDuration::from_secs(25 * 3600));
    store.delete_expired_sessions().await.unwrap();
    assert!(every_cell(&conn, &schema).await.is_empty());
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn a_change_that_did_not_commit_appends_nothing() {
    let (store, conn, schema) = history_store(|store| store).await;
    let now = OffsetDateTime::now_utc();
    let mut rec = record(Some("ada"), now);
    store.create(&mut rec).await.unwrap();
    store.delete_user_sessions("ada").await.unwrap();
    // A save of the revoked session writes nothing, and logs nothing.
    rec.data.insert("user_id".into(), json!("bob"));
    store.save(&rec).await.unwrap();
    assert!(store.user_history("bob", 10).await.unwrap().is_empty());

    // An insert of a taken id inserts nothing, and logs nothing.
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

    // A statement whose history insert fails (a constraint added by hand) rolls back the change with its entry.
    let before = store.user_history("ada", 10).await.unwrap();
    conn.execute_unprepared(&format!(
        "ALTER TABLE \"{schema}\".\"session_history\" ADD CONSTRAINT \"no_more\" CHECK (\"kind\" <> 'signed_in') NOT VALID"
    ))
    .await
    .unwrap();
    let mut refused = record(Some("ada"), now);
    assert!(store.create(&mut refused).await.is_err());
    assert!(store.load(&refused.id).await.unwrap().is_none());
    assert_eq!(store.user_history("ada", 10).await.unwrap(), before);
    drop_schema(conn, &schema).await;
}

use tower_sessions_seaorm_store::sea_orm::ConnectionTrait;

#[tokio::test]
async fn concurrent_logins_from_several_pools_leave_a_history_matching_the_sessions() {
    let (store, conn, schema) =
        history_store(|store| store.with_max_sessions_per_user(3).unwrap()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let replica = PostgresStore::new(connect_postgres(&database_url()).await)
            .with_schema_name(&schema)
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
    let history = store.user_history("ada", 1000).await.unwrap();
    let signed_in: std::collections::HashSet<_> = history
        .iter()
        .filter(|event| event.kind == "signed_in")
        .map(|event| event.handle.clone())
        .collect();
    let ended: std::collections::HashSet<_> = history
        .iter()
        .filter(|event| event.kind == "trimmed")
        .map(|event| event.handle.clone())
        .collect();
    assert_eq!(signed_in.len(), 24);
    assert_eq!(ended.len(), 21, "each trimmed session once");
    assert_eq!(history.len(), 45);
    let live: std::collections::HashSet<_> = store
        .user_sessions("ada")
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.handle)
        .collect();
    assert_eq!(live, signed_in.difference(&ended).cloned().collect());
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn hostile_user_keys_and_listed_values_round_trip_and_no_entry_holds_a_session_id() {
    for hashed in [false, true] {
        let (store, conn, schema) = history_store(|store| {
            if hashed {
                store.with_hashed_ids()
            } else {
                store
            }
        })
        .await;
        let hostile = "'); DROP TABLE x; -- \"\\ $1 %s \u{202e}𝔘 \u{1}";
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
        let key = scalar_strings(
            &conn,
            "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
            vec![id.clone().into()],
        )
        .await
        .remove(0);
        let cells = every_cell(&conn, &schema).await;
        assert_eq!(cells.len(), 2);
        for cell in cells {
            assert!(
                !cell.contains(&id) && !cell.contains(&key),
                "{hashed}: {cell}"
            );
        }
        drop_schema(conn, &schema).await;
    }
}

#[tokio::test]
async fn the_history_needs_the_user_key_and_is_off_by_default() {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn.clone());
    let refused = store
        .clone()
        .with_login_history(StdDuration::from_secs(60))
        .unwrap_err();
    assert!(matches!(refused, SeaOrmStoreError::InvalidConfiguration(_)));
    assert!(refused.to_string().contains("with_user_key"));
    let mysql = tower_sessions_seaorm_store::MySqlStore::new(
        common::mysql::connect_mysql(&common::mysql::mysql_url()).await,
    )
    .with_login_history(StdDuration::from_secs(60))
    .unwrap_err();
    assert!(mysql.to_string().contains("with_user_key"), "{mysql}");
    let indexed = store.with_user_key("user_id").unwrap();
    assert!(matches!(
        indexed.user_history("ada", 10).await,
        Err(SeaOrmStoreError::InvalidConfiguration(_))
    ));
}

/// Sign in, sign out, sign in, delete on `store`: the four entries, newest first.
async fn a_short_life<S: SessionStore>(store: &S, user: &str) -> Id {
    let mut rec = record(Some(user), OffsetDateTime::now_utc());
    store.create(&mut rec).await.unwrap();
    rec.data.remove("user_id");
    store.save(&rec).await.unwrap();
    rec.data.insert("user_id".into(), json!(user));
    store.save(&rec).await.unwrap();
    store.delete(&rec.id).await.unwrap();
    rec.id
}

const A_SHORT_LIFE: [&str; 4] = ["deleted", "signed_in", "signed_out", "signed_in"];

#[tokio::test]
async fn the_lean_store_on_a_hash_partitioned_table_logs_the_same() {
    let (store, conn, schema) = history_store(|store| store.with_hash_partitions(4).unwrap()).await;
    let lean = tower_sessions_seaorm_store::LeanPostgresStore::new(common::lean::lean_pool(
        &database_url(),
    ))
    .with_schema_name(&schema)
    .unwrap()
    .with_user_key("user_id")
    .unwrap()
    .with_listed_values(["agent"])
    .unwrap()
    .with_login_history(StdDuration::from_secs(3600))
    .unwrap();
    let id = a_short_life(&lean, "ada").await;
    let events = lean.user_history("ada", 10).await.unwrap();
    assert_eq!(kinds(&events), A_SHORT_LIFE);
    assert!(events
        .iter()
        .all(|event| event.handle == store.session_handle(id)));
    assert_eq!(store.user_history("ada", 10).await.unwrap(), events);
    let partitions = scalar_strings(
        &conn,
        "SELECT count(*)::text FROM pg_catalog.pg_inherits WHERE inhparent = $1::regclass",
        vec![format!("\"{schema}\".\"session\"").into()],
    )
    .await;
    assert_eq!(partitions, ["4"]);
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn through_pgbouncer_in_transaction_mode_each_entry_is_written_once() {
    let (store, conn, schema) = history_store(|store| store).await;
    let bounced = PostgresStore::new(common::pgbouncer::connect_through_pgbouncer().await)
        .with_schema_name(&schema)
        .unwrap()
        .with_user_key("user_id")
        .unwrap()
        .with_login_history(StdDuration::from_secs(3600))
        .unwrap();
    for _ in 0..8 {
        a_short_life(&bounced, "ada").await;
    }
    let events = store.user_history("ada", 100).await.unwrap();
    assert_eq!(events.len(), 32);
    assert_eq!(kinds(&events[..4]), A_SHORT_LIFE);
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn replicas_migrating_at_once_all_find_the_history_table() {
    let conn = connect_postgres(&database_url()).await;
    let schema = unique_name("ts_history");
    let build = || {
        PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .unwrap()
            .with_user_key("user_id")
            .unwrap()
            .with_login_history(StdDuration::from_secs(60))
            .unwrap()
    };
    common::migrate_concurrently(8, build, "the login history").await;
    let store = build();
    a_short_life(&store, "ada").await;
    assert_eq!(
        kinds(&store.user_history("ada", 10).await.unwrap()),
        A_SHORT_LIFE
    );
    drop_schema(conn, &schema).await;
}

#[tokio::test]
async fn the_operators_calls_log_each_session_they_end_as_revoked() {
    let clock = ManualClock::new();
    let (store, conn, schema) =
        history_store(|store| store.with_clock(clock.reader()).with_cleanup_batch_size(1)).await;
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

    clock.advance(StdDuration::from_secs(1));
    let ended = store.delete_user_sessions_created_before("bob", clock.now());
    assert_eq!(ended.await.unwrap(), 1);
    let table = store.table_name().to_owned();
    assert_eq!(store.delete_all_sessions(&table).await.unwrap(), 0);
    let (kinds_of_bob, handles) = revoked(store.user_history("bob", 10).await.unwrap());
    assert_eq!(kinds_of_bob, ["revoked", "signed_in"]);
    assert_eq!(handles, [store.session_handle(bobs.id)]);
    drop_schema(conn, &schema).await;
}
