//! The login history (`with_login_history`) on PostgreSQL, SQLite and MySQL/MariaDB: each
//! committed change appends its entry with it (PostgreSQL: in the same statement; SQLite and
//! MySQL: in the same transaction), exactly once and with its reason; a change that did not
//! commit appends nothing; no entry holds a session id; `user_history` lists newest first; the
//! cleanup applies the retention.
//!
//! Each scenario is a function generic over the [`Backend`], run as one test per backend
//! (`postgres::…`, `sqlite::…`, `mysql::…`); what only one backend has (the lean store, a
//! hash-partitioned table, PgBouncer, MySQL's indexes) is tested after them.

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    time::Duration as StdDuration,
};

use common::{
    connect_postgres_with, database_url, drop_schema,
    mysql::{connect_mysql_with, drop_table, mysql_url},
    scalar_strings,
    sqlite::{connect_sqlite, file_url, remove_db_files, temp_db_path},
    unique_name,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    repository::{SessionRepository, SessionRow},
    sea_orm::{ConnectionTrait, DatabaseConnection},
    testing::ManualClock,
    Id, PostgresStore, Record, SeaOrmStoreError, SessionEvent, SessionHandle, SessionStore,
};

/// The store on every backend: `PostgresStore`, `SqliteStore` and `MySqlStore` are one type.
type Store = PostgresStore;

const DAY: StdDuration = StdDuration::from_secs(24 * 3600);

/// SQL and placeholders of every backend, quotes of every dialect, a bidi override, a character
/// outside the BMP and a control character: stored and returned as they are.
const HOSTILE: &str = "'); DROP TABLE x; -- \"\\ $1 ?1 %s ` \u{202e}𝔘 \u{1}";

/// Where one test's tables live on one backend, and what differs there: how to reach them, the
/// SQL that reads every history cell, how to make the history refuse sign-ins, the clean-up.
trait Backend: Sized {
    /// A fresh place: a schema, a table name or a file of its own; nothing created yet.
    fn fresh() -> Self;

    /// A new pool of `connections` on the backend.
    async fn connect(&self, connections: u32) -> DatabaseConnection;

    /// `store` on this place's tables.
    fn place(&self, store: Store) -> Store;

    /// Every history row of the place, each column as text.
    async fn every_cell(&self, conn: &DatabaseConnection) -> Vec<String>;

    /// Makes every insert of a `signed_in` entry fail, as a constraint or trigger added by hand
    /// would.
    async fn refuse_sign_ins(&self, conn: &DatabaseConnection);

    /// Drops what the test created.
    async fn finish(self, conn: DatabaseConnection);
}

/// A schema of its own in the `DATABASE_URL` database.
struct Postgres {
    schema: String,
}

impl Backend for Postgres {
    fn fresh() -> Self {
        Self {
            schema: unique_name("ts_history"),
        }
    }

    async fn connect(&self, connections: u32) -> DatabaseConnection {
        connect_postgres_with(&database_url(), connections).await
    }

    fn place(&self, store: Store) -> Store {
        store.with_schema_name(&self.schema).unwrap()
    }

    async fn every_cell(&self, conn: &DatabaseConnection) -> Vec<String> {
        let schema = &self.schema;
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

    async fn refuse_sign_ins(&self, conn: &DatabaseConnection) {
        conn.execute_unprepared(&format!(
            "ALTER TABLE \"{}\".\"session_history\" ADD CONSTRAINT \"no_more\" \
             CHECK (\"kind\" <> 'signed_in') NOT VALID",
            self.schema
        ))
        .await
        .unwrap();
    }

    async fn finish(self, conn: DatabaseConnection) {
        drop_schema(conn, &self.schema).await;
    }
}

/// A temporary file of its own.
struct Sqlite {
    path: PathBuf,
}

impl Backend for Sqlite {
    fn fresh() -> Self {
        Self {
            path: temp_db_path(),
        }
    }

    async fn connect(&self, connections: u32) -> DatabaseConnection {
        connect_sqlite(&file_url(&self.path), connections).await
    }

    fn place(&self, store: Store) -> Store {
        store
    }

    async fn every_cell(&self, conn: &DatabaseConnection) -> Vec<String> {
        scalar_strings(
            conn,
            "SELECT \"seq\" || ' | ' || \"user_key\" || ' | ' || \"kind\" || ' | ' || \"at\" \
             || ' | ' || \"handle\" || ' | ' || coalesce(\"listed_values\", '') \
             FROM \"session_history\"",
            vec![],
        )
        .await
    }

    async fn refuse_sign_ins(&self, conn: &DatabaseConnection) {
        conn.execute_unprepared(
            "CREATE TRIGGER \"no_more\" BEFORE INSERT ON \"session_history\" WHEN NEW.\"kind\" = \
             'signed_in' BEGIN SELECT RAISE(ABORT, 'no more sign-ins'); END",
        )
        .await
        .unwrap();
    }

    async fn finish(self, conn: DatabaseConnection) {
        let _ = conn.close().await;
        remove_db_files(&self.path);
    }
}

/// A table of its own (and its `_history`) in the `MYSQL_URL` database.
struct MySql {
    table: String,
}

impl Backend for MySql {
    fn fresh() -> Self {
        Self {
            table: unique_name("ts_hist"),
        }
    }

    async fn connect(&self, connections: u32) -> DatabaseConnection {
        connect_mysql_with(&mysql_url(), connections).await
    }

    fn place(&self, store: Store) -> Store {
        store.with_table_name(&self.table).unwrap()
    }

    async fn every_cell(&self, conn: &DatabaseConnection) -> Vec<String> {
        scalar_strings(
            conn,
            &format!(
                "SELECT CONCAT_WS(' | ', `seq`, CAST(`user_key` AS CHAR), CAST(`kind` AS CHAR), \
                 `at`, CAST(`handle` AS CHAR), coalesce(`listed_values`, '')) FROM `{}_history`",
                self.table
            ),
            vec![],
        )
        .await
    }

    async fn refuse_sign_ins(&self, conn: &DatabaseConnection) {
        conn.execute_unprepared(&format!(
            "CREATE TRIGGER `{0}_no_more` BEFORE INSERT ON `{0}_history` FOR EACH ROW \
             IF NEW.`kind` = 'signed_in' THEN SIGNAL SQLSTATE '45000' \
             SET MESSAGE_TEXT = 'no more sign-ins'; END IF",
            self.table
        ))
        .await
        .unwrap();
    }

    async fn finish(self, conn: DatabaseConnection) {
        conn.execute_unprepared(&format!("DROP TABLE IF EXISTS `{}_history`", self.table))
            .await
            .unwrap();
        drop_table(&conn, &self.table).await;
        let _ = conn.close().await;
    }
}

/// A migrated store with a history (the user key and a listed value set) on a fresh place of
/// backend `B`.
struct History<B> {
    backend: B,
    conn: DatabaseConnection,
    store: Store,
}

impl<B: Backend> History<B> {
    /// The store, `edit`ed before the history is added.
    async fn new(edit: impl FnOnce(Store) -> Store) -> Self {
        let backend = B::fresh();
        let conn = backend.connect(4).await;
        let store = backend
            .place(Store::new(conn.clone()))
            .with_user_key("user_id")
            .unwrap()
            .with_listed_values(["agent"])
            .unwrap();
        let store = edit(store).with_login_history(DAY).unwrap();
        store.migrate().await.unwrap();
        Self {
            backend,
            conn,
            store,
        }
    }

    async fn every_cell(&self) -> Vec<String> {
        self.backend.every_cell(&self.conn).await
    }

    async fn finish(self) {
        self.backend.finish(self.conn).await;
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

/// The handles of `events` of `kind`.
fn handles_of(events: &[SessionEvent], kind: &str) -> HashSet<SessionHandle> {
    events
        .iter()
        .filter(|event| event.kind == kind)
        .map(|event| event.handle.clone())
        .collect()
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

// The scenarios, each run on every backend.

async fn sign_ins_sign_outs_and_endings_each_appear_once_with_their_reason<B: Backend>() {
    let history = History::<B>::new(|store| store).await;
    let store = &history.store;
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
    // On PostgreSQL the statement computes the handle in SQL: the one `session_handle` computes.
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
    assert_eq!(cy.len(), 8);
    let mut counted = BTreeMap::new();
    for event in &cy {
        *counted.entry(event.kind).or_insert(0) += 1;
    }
    assert_eq!(counted, BTreeMap::from([("revoked", 4), ("signed_in", 4)]));
    assert_eq!(
        handles_of(&cy, "revoked"),
        devices
            .iter()
            .map(|rec| store.session_handle(rec.id))
            .collect()
    );
    history.finish().await;
}

async fn the_limit_trims_and_the_cleanup_ends_with_their_reasons<B: Backend>() {
    let clock = ManualClock::new();
    let history = History::<B>::new(|store| {
        store
            .with_clock(clock.reader())
            .with_absolute_lifetime(StdDuration::from_secs(3600))
            .with_max_sessions_per_user(1)
            .unwrap()
    })
    .await;
    let store = &history.store;
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
    // Many expired sessions in one cleanup batch: each is deleted and logged once (on MySQL,
    // the 87 entries are inserts of 64, 16, 4 and 1).
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
    let bob = store.user_history("bob", 10).await.unwrap();
    assert_eq!(kinds(&bob), ["expired", "signed_in"]);
    assert_eq!(bob[0].handle, store.session_handle(short.id));
    for (user, handle) in many {
        let events = store.user_history(&user, 10).await.unwrap();
        assert_eq!(kinds(&events), ["expired", "signed_in"], "{user}");
        assert_eq!(events[0].handle, handle);
    }

    // The retention: a day later the cleanup deletes every entry.
    clock.advance(StdDuration::from_secs(25 * 3600));
    store.delete_expired_sessions().await.unwrap();
    assert!(history.every_cell().await.is_empty());
    history.finish().await;
}

/// The cleanup's reason applies each session's own lifetime: a long-lived session deleted for
/// its idle expiry past the short lifetime (not its own) `expired`; past its own, `lifetime`;
/// a short one past the short lifetime, `lifetime`.
async fn the_cleanup_gives_long_lived_sessions_their_own_reason<B: Backend>() {
    let clock = ManualClock::new();
    let history = History::<B>::new(|store| {
        store
            .with_clock(clock.reader())
            .with_absolute_lifetime(StdDuration::from_secs(3600))
            .with_long_lived_sessions("remember_me", StdDuration::from_secs(10 * 3600))
            .unwrap()
    })
    .await;
    let store = &history.store;
    let session = |user: &str, long: bool, idle: Duration| {
        let mut rec = record(Some(user), clock.now());
        rec.expiry_date = clock.now().replace_nanosecond(0).unwrap() + idle;
        if long {
            rec.data.insert("remember_me".to_owned(), json!(true));
        }
        rec
    };
    let mut idle = session("idle", true, Duration::hours(2));
    let mut remembered = session("remembered", true, Duration::days(1));
    let mut short = session("short", false, Duration::days(1));
    for rec in [&mut idle, &mut remembered, &mut short] {
        store.create(rec).await.unwrap();
    }
    clock.advance(StdDuration::from_secs(3 * 3600));
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 2);
    let reason =
        |user: &'static str| async move { kinds(&store.user_history(user, 1).await.unwrap()) };
    assert_eq!(
        reason("idle").await,
        ["expired"],
        "idle past its own expiry"
    );
    assert_eq!(reason("short").await, ["lifetime"]);
    assert_eq!(reason("remembered").await, ["signed_in"], "still live");
    clock.advance(StdDuration::from_secs(8 * 3600));
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 1);
    assert_eq!(
        reason("remembered").await,
        ["lifetime"],
        "past its own lifetime"
    );
    history.finish().await;
}

/// Refusing logins at the limit: each admitted login signs in once (by a create, or by a
/// save that gives a session its user, in the guarded transaction); a refused one appends
/// nothing, so it reaches no live event either.
async fn refusing_at_the_limit_logs_the_admitted_logins_only<B: Backend>() {
    let history = History::<B>::new(|store| {
        store
            .with_max_sessions_per_user(1)
            .unwrap()
            .refusing_logins_at_the_limit()
            .unwrap()
    })
    .await;
    let store = &history.store;
    let now = OffsetDateTime::now_utc();
    let mut first = record(Some("ada"), now);
    store.create(&mut first).await.unwrap();
    let mut refused = record(Some("ada"), now);
    let err = store.create(&mut refused).await.unwrap_err();
    assert!(SeaOrmStoreError::is_too_many_sessions(&err), "{err:?}");
    let mut anonymous = record(None, now);
    store.create(&mut anonymous).await.unwrap();
    anonymous.data.insert("user_id".into(), json!("ada"));
    let err = store.save(&anonymous).await.unwrap_err();
    assert!(SeaOrmStoreError::is_too_many_sessions(&err), "{err:?}");
    assert_eq!(
        kinds(&store.user_history("ada", 10).await.unwrap()),
        ["signed_in"]
    );

    // A logout frees the slot: the save is admitted, and signs in.
    store.delete(&first.id).await.unwrap();
    store.save(&anonymous).await.unwrap();
    let ada = store.user_history("ada", 10).await.unwrap();
    assert_eq!(kinds(&ada), ["signed_in", "deleted", "signed_in"]);
    assert_eq!(ada[0].handle, store.session_handle(anonymous.id));
    history.finish().await;
}

async fn a_change_that_did_not_commit_appends_nothing<B: Backend>() {
    let history = History::<B>::new(|store| store).await;
    let store = &history.store;
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

    // An insert of a taken id inserts nothing, and logs nothing.
    let row = SessionRow {
        id: "taken".to_owned(),
        data: vec![1],
        expires_at: now + Duration::hours(1),
        user_key: Some("cy".to_owned()),
        created_at: now,
        saved_at: now,
        listed_values: None,
        long_lived: false,
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

    // A history insert that fails rolls the change back with it: a create, and a save.
    let before = store.user_history("ada", 10).await.unwrap();
    history.backend.refuse_sign_ins(&history.conn).await;
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
    history.finish().await;
}

async fn concurrent_logins_from_several_pools_leave_a_history_matching_the_sessions<B: Backend>() {
    let history = History::<B>::new(|store| store.with_max_sessions_per_user(3).unwrap()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let replica = history
            .backend
            .place(Store::new(history.backend.connect(2).await))
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
    let store = &history.store;
    let events = store.user_history("ada", 1000).await.unwrap();
    let (signed_in, ended) = (
        handles_of(&events, "signed_in"),
        handles_of(&events, "trimmed"),
    );
    assert_eq!(signed_in.len(), 24);
    assert_eq!(ended.len(), 21, "each trimmed session once");
    assert_eq!(events.len(), 45);
    let live: HashSet<_> = store
        .user_sessions("ada")
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.handle)
        .collect();
    assert_eq!(live, signed_in.difference(&ended).cloned().collect());
    history.finish().await;
}

async fn hostile_user_keys_and_listed_values_round_trip_and_no_entry_holds_a_session_id<
    B: Backend,
>() {
    for hashed in [false, true] {
        let history = History::<B>::new(|store| {
            if hashed {
                store.with_hashed_ids()
            } else {
                store
            }
        })
        .await;
        let store = &history.store;
        let mut rec = record(Some(HOSTILE), OffsetDateTime::now_utc());
        rec.data.insert("agent".into(), json!(HOSTILE));
        store.create(&mut rec).await.unwrap();
        rec.data.remove("user_id");
        store.save(&rec).await.unwrap();
        let events = store.user_history(HOSTILE, 10).await.unwrap();
        assert_eq!(kinds(&events), ["signed_out", "signed_in"]);
        assert!(events.iter().all(|event| event.user == HOSTILE));
        assert!(events
            .iter()
            .all(|event| event.listed["agent"] == json!(HOSTILE)));
        // Byte for byte: a user key that differs by a trailing space is another user.
        assert!(store
            .user_history(&format!("{HOSTILE} "), 10)
            .await
            .unwrap()
            .is_empty());

        let id = rec.id.to_string();
        let key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
        let cells = history.every_cell().await;
        assert_eq!(cells.len(), 2);
        for cell in cells {
            assert!(
                !cell.contains(&id) && !cell.contains(&key),
                "{hashed}: {cell}"
            );
        }
        history.finish().await;
    }
}

async fn the_history_needs_the_user_key_and_is_off_by_default<B: Backend>() {
    let backend = B::fresh();
    let conn = backend.connect(1).await;
    let store = backend.place(Store::new(conn.clone()));
    let refused = store
        .clone()
        .with_login_history(StdDuration::from_secs(60))
        .unwrap_err();
    assert!(
        matches!(refused, SeaOrmStoreError::InvalidConfiguration(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("with_user_key"), "{refused}");
    let indexed = store.with_user_key("user_id").unwrap();
    indexed.migrate().await.unwrap();
    assert!(matches!(
        indexed.user_history("ada", 10).await,
        Err(SeaOrmStoreError::InvalidConfiguration(_))
    ));
    backend.finish(conn).await;
}

async fn the_operators_calls_log_each_session_they_end_as_revoked<B: Backend>() {
    let clock = ManualClock::new();
    let history =
        History::<B>::new(|store| store.with_clock(clock.reader()).with_cleanup_batch_size(1))
            .await;
    let store = &history.store;
    let mut old = [record(Some("ada"), clock.now()), record(None, clock.now())];
    for record in &mut old {
        store.create(record).await.unwrap();
    }
    clock.advance(StdDuration::from_secs(60));
    let mut bobs = record(Some("bob"), clock.now());
    store.create(&mut bobs).await.unwrap();
    let mut cys = record(Some("cy"), clock.now());
    store.create(&mut cys).await.unwrap();

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

    // One user's: bob's ends, cy's stays.
    clock.advance(StdDuration::from_secs(1));
    let ended = store.delete_user_sessions_created_before("bob", clock.now());
    assert_eq!(ended.await.unwrap(), 1);
    let (kinds_of_bob, handles) = revoked(store.user_history("bob", 10).await.unwrap());
    assert_eq!(kinds_of_bob, ["revoked", "signed_in"]);
    assert_eq!(handles, [store.session_handle(bobs.id)]);

    // Every session: cy's, then none.
    let table = store.table_name().to_owned();
    assert_eq!(store.delete_all_sessions(&table).await.unwrap(), 1);
    let (kinds_of_cy, handles) = revoked(store.user_history("cy", 10).await.unwrap());
    assert_eq!(kinds_of_cy, ["revoked", "signed_in"]);
    assert_eq!(handles, [store.session_handle(cys.id)]);
    assert_eq!(store.delete_all_sessions(&table).await.unwrap(), 0);
    history.finish().await;
}

/// Migrates 8 stores with the history on `backend`'s place at once, as replicas starting
/// together would; returns one of them.
async fn migrated_by_racing_replicas<B: Backend>(backend: &B, conn: &DatabaseConnection) -> Store {
    let build = || {
        backend
            .place(Store::new(conn.clone()))
            .with_user_key("user_id")
            .unwrap()
            .with_login_history(StdDuration::from_secs(60))
            .unwrap()
    };
    common::migrate_concurrently(8, build, "the login history").await;
    build()
}

async fn replicas_migrating_at_once_all_find_the_history_table<B: Backend>() {
    let backend = B::fresh();
    let conn = backend.connect(8).await;
    let store = migrated_by_racing_replicas(&backend, &conn).await;
    a_short_life(&store, "ada").await;
    assert_eq!(
        kinds(&store.user_history("ada", 10).await.unwrap()),
        A_SHORT_LIFE
    );
    backend.finish(conn).await;
}

/// One test per backend for each scenario: `postgres::<scenario>`, `sqlite::<scenario>`,
/// `mysql::<scenario>`.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        on_every_backend!(@on postgres Postgres: $($scenario),*);
        on_every_backend!(@on sqlite Sqlite: $($scenario),*);
        on_every_backend!(@on mysql MySql: $($scenario),*);
    };
    (@on $module:ident $backend:ident: $($scenario:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario::<super::$backend>().await;
                }
            )*
        }
    };
}

on_every_backend!(
    sign_ins_sign_outs_and_endings_each_appear_once_with_their_reason,
    the_limit_trims_and_the_cleanup_ends_with_their_reasons,
    a_change_that_did_not_commit_appends_nothing,
    concurrent_logins_from_several_pools_leave_a_history_matching_the_sessions,
    hostile_user_keys_and_listed_values_round_trip_and_no_entry_holds_a_session_id,
    the_history_needs_the_user_key_and_is_off_by_default,
    replicas_migrating_at_once_all_find_the_history_table,
    the_operators_calls_log_each_session_they_end_as_revoked,
    refusing_at_the_limit_logs_the_admitted_logins_only,
    the_cleanup_gives_long_lived_sessions_their_own_reason,
);

// What only one backend has.

#[cfg(feature = "tokio-postgres")]
#[tokio::test]
async fn postgres_the_lean_store_on_a_hash_partitioned_table_logs_the_same() {
    let history = History::<Postgres>::new(|store| store.with_hash_partitions(4).unwrap()).await;
    let schema = &history.backend.schema;
    let lean = tower_sessions_seaorm_store::LeanPostgresStore::new(common::lean::lean_pool(
        &database_url(),
    ))
    .with_schema_name(schema)
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
        .all(|event| event.handle == history.store.session_handle(id)));
    assert_eq!(history.store.user_history("ada", 10).await.unwrap(), events);
    let partitions = scalar_strings(
        &history.conn,
        "SELECT count(*)::text FROM pg_catalog.pg_inherits WHERE inhparent = $1::regclass",
        vec![format!("\"{schema}\".\"session\"").into()],
    )
    .await;
    assert_eq!(partitions, ["4"]);
    history.finish().await;
}

#[tokio::test]
async fn postgres_through_pgbouncer_in_transaction_mode_each_entry_is_written_once() {
    let history = History::<Postgres>::new(|store| store).await;
    let bounced = PostgresStore::new(common::pgbouncer::connect_through_pgbouncer().await)
        .with_schema_name(&history.backend.schema)
        .unwrap()
        .with_user_key("user_id")
        .unwrap()
        .with_login_history(StdDuration::from_secs(3600))
        .unwrap();
    for _ in 0..8 {
        a_short_life(&bounced, "ada").await;
    }
    let events = history.store.user_history("ada", 100).await.unwrap();
    assert_eq!(events.len(), 32);
    assert_eq!(kinds(&events[..4]), A_SHORT_LIFE);
    history.finish().await;
}

#[tokio::test]
async fn mysql_replicas_migrating_at_once_create_the_history_and_its_indexes_once() {
    let backend = MySql::fresh();
    let conn = backend.connect(8).await;
    migrated_by_racing_replicas(&backend, &conn).await;
    let table = &backend.table;
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
    backend.finish(conn).await;
}
