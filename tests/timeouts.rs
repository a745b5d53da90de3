//! Honest timeouts, against real databases: a save that failed while its session's row was
//! locked by another transaction is never applied later, and the timed-out statements neither
//! hold nor poison the pool, so other sessions' loads and creates keep working.
//!
//! The tokio-postgres store (`LeanPostgresStore`) cancels a timed-out statement on the server and
//! discards its connection; the SeaORM stores rely on the server bounding the statement
//! (`lock_timeout` and `statement_timeout` on PostgreSQL, `innodb_lock_wait_timeout` on
//! MySQL/MariaDB), with the connect options the README recommends.

mod common;

use std::time::{Duration, Instant};

use common::{database_url, mysql::mysql_url, scalar_strings, suite::in_a_day, PgFixture};
use serde_json::json;
use tower_sessions_seaorm_store::{
    sea_orm::{
        sqlx, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
        Statement, TransactionTrait, Value,
    },
    session_store, MySqlStore, PostgresStore, Record, SessionStore,
};

/// Saves of the locked session fired at once: twice the pool.
const SAVES: usize = 8;
/// The pool every store under test gets.
const POOL: u32 = 4;
/// How long a test waits for the server to be done with the session table.
const SETTLED: Duration = Duration::from_secs(5);

/// A session stored with `n = 0`.
async fn stored_session<S: SessionStore>(store: &S) -> Record {
    let mut rec = common::suite::record(in_a_day());
    rec.data.insert("n".into(), json!(0));
    store.create(&mut rec).await.expect("create the session");
    rec
}

/// Locks `rec`'s row in a transaction of its own on `conn`, as a long request or a migration
/// might; the lock is held until the transaction is rolled back.
async fn lock_row(conn: &DatabaseConnection, lock_sql: &str, rec: &Record) -> DatabaseTransaction {
    let txn = conn.begin().await.expect("begin the locking transaction");
    let locked = txn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            lock_sql,
            [Value::from(rec.id.to_string())],
        ))
        .await
        .expect("lock the session's row");
    assert_eq!(locked.len(), 1, "the session's row is locked");
    txn
}

/// Fires [`SAVES`] saves of `rec` at once, save `k` writing `n = k`, and returns their errors
/// once all have answered; panics if one succeeds.
async fn saves_that_all_fail<S>(store: &S, rec: &Record) -> Vec<session_store::Error>
where
    S: SessionStore + Clone,
{
    let saves: Vec<_> = (1..=SAVES)
        .map(|k| {
            let store = store.clone();
            let mut rec = rec.clone();
            rec.data.insert("n".into(), json!(k));
            tokio::spawn(async move { store.save(&rec).await })
        })
        .collect();
    let mut errors = Vec::new();
    for save in saves {
        match save.await.expect("no save panicked") {
            Ok(()) => panic!("a save of a locked session succeeded"),
            Err(err) => errors.push(err),
        }
    }
    errors
}

/// Loads `other` and creates fresh sessions, concurrently; every one must succeed, that is,
/// answer within the store's operation timeout.
async fn other_sessions_work<S>(store: &S, other: &Record)
where
    S: SessionStore + Clone,
{
    let loads = (0..SAVES).map(|_| {
        let store = store.clone();
        let other = other.clone();
        tokio::spawn(async move {
            let loaded = store.load(&other.id).await.expect("load another session");
            assert_eq!(
                crate::common::without_base(loaded),
                Some(other),
                "another session loads intact"
            );
        })
    });
    let creates = (0..POOL).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            stored_session(&store).await;
        })
    });
    for task in loads.chain(creates).collect::<Vec<_>>() {
        task.await
            .expect("loads and creates of other sessions work");
    }
}

/// How many statements other than this one run on the server with `needle` in their text.
async fn statements_mentioning(conn: &DatabaseConnection, count_sql: &str, needle: &str) -> u64 {
    scalar_strings(conn, count_sql, vec![Value::from(format!("%{needle}%"))])
        .await
        .first()
        .and_then(|count| count.parse().ok())
        .expect("a count")
}

/// Polls until no statement mentioning `needle` runs on the server and returns how long that
/// took, or `None` after [`SETTLED`].
async fn until_none_runs(
    conn: &DatabaseConnection,
    count_sql: &str,
    needle: &str,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < SETTLED {
        if statements_mentioning(conn, count_sql, needle).await == 0 {
            return Some(started.elapsed());
        }
        // Real time: polling the server until the cancelled statements are gone.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Active PostgreSQL statements whose text matches `$1`, this one excluded (the locking
/// transaction is `idle in transaction`, not active).
const PG_RUNNING: &str = "SELECT count(*)::text FROM pg_stat_activity \
     WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE $1";

/// Running MySQL/MariaDB statements whose text matches `?`, this one excluded.
const MYSQL_RUNNING: &str = "SELECT CAST(count(*) AS CHAR) FROM information_schema.processlist \
     WHERE command <> 'Sleep' AND id <> connection_id() AND info LIKE ?";

/// Releases the lock, waits until the server is done with the table, and checks that `rec`'s
/// row still holds what it held before the failed saves.
async fn after_the_lock_the_row_is_unchanged<S: SessionStore>(
    store: &S,
    lock: DatabaseTransaction,
    conn: &DatabaseConnection,
    count_sql: &str,
    table: &str,
    rec: &Record,
) {
    lock.rollback().await.expect("release the lock");
    until_none_runs(conn, count_sql, table)
        .await
        .expect("the server is done with the session table");
    let stored = store
        .load(&rec.id)
        .await
        .expect("load the formerly locked session")
        .expect("the session is still stored");
    assert_eq!(
        stored.data["n"],
        json!(0),
        "a save reported as failed was applied after the lock was released"
    );
}

#[cfg(feature = "tokio-postgres")]
mod lean {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use tokio_postgres::{
        tls::{MakeTlsConnect, NoTlsError, NoTlsStream},
        NoTls, Socket,
    };
    use tower_sessions_seaorm_store::{
        deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod},
        Id, LeanPostgresStore,
    };

    use super::*;
    use crate::common::unique_name;

    /// The store's operation timeout in these tests.
    const TIMEOUT: Duration = Duration::from_millis(300);

    /// A deadpool of [`POOL`] connections on `DATABASE_URL`.
    fn small_pool() -> Pool {
        let config: tokio_postgres::Config = database_url().parse().expect("a PostgreSQL URL");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(POOL as usize)
            .build()
            .expect("a deadpool")
    }

    /// A lean store on a pool of [`POOL`] in the fixture's schema.
    fn lean_store(fixture: &PgFixture) -> LeanPostgresStore {
        LeanPostgresStore::new(small_pool())
            .with_schema_name(&fixture.schema)
            .expect("a valid schema name")
            .with_operation_timeout(Some(TIMEOUT))
    }

    fn lock_sql(fixture: &PgFixture) -> String {
        format!("SELECT 1 FROM {} WHERE id = $1 FOR UPDATE", fixture.table())
    }

    fn assert_timed_out(errors: &[session_store::Error]) {
        for err in errors {
            let message = err.to_string();
            assert!(
                message.contains("save timed out after 300 ms")
                    && message.contains("whether it took effect is unknown"),
                "{message}"
            );
        }
    }

    /// Eight saves of a locked session time out; their statements end on the server while the
    /// lock is held, and none is applied once it is released.
    async fn saves_are_cancelled_and_never_applied(fixture: &PgFixture, store: &LeanPostgresStore) {
        let rec = stored_session(store).await;
        let lock = lock_row(&fixture.conn, &lock_sql(fixture), &rec).await;

        assert_timed_out(&saves_that_all_fail(store, &rec).await);
        // The lock is still held: only a cancel can have ended the waiting statements.
        let cancelled = until_none_runs(&fixture.conn, PG_RUNNING, &fixture.schema)
            .await
            .expect("the timed-out statements end on the server while the lock is held");
        eprintln!(
            "lean store: the timed-out saves ended on the server {} ms after they timed out",
            cancelled.as_millis()
        );

        after_the_lock_the_row_is_unchanged(
            store,
            lock,
            &fixture.conn,
            PG_RUNNING,
            &fixture.schema,
            &rec,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_save_timed_out_on_a_locked_row_is_cancelled_on_the_server_and_never_applied() {
        let fixture = PgFixture::new().await;
        let store = lean_store(&fixture);
        saves_are_cancelled_and_never_applied(&fixture, &store).await;
        store.repository().pool().close();
        fixture.finish().await;
    }

    /// A cancel connector that counts the cancels it makes, in plain text like `NoTls`.
    #[derive(Clone, Default)]
    struct CountingConnector(Arc<AtomicUsize>);

    impl MakeTlsConnect<Socket> for CountingConnector {
        type Stream = NoTlsStream;
        type TlsConnect = NoTls;
        type Error = NoTlsError;

        fn make_tls_connect(&mut self, _domain: &str) -> Result<NoTls, NoTlsError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(NoTls)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_given_a_cancel_connector_cancels_through_it() {
        let fixture = PgFixture::new().await;
        let connector = CountingConnector::default();
        // Given before the schema: naming the table keeps the connector.
        let store = LeanPostgresStore::new(small_pool())
            .with_cancel_tls(connector.clone())
            .with_schema_name(&fixture.schema)
            .expect("a valid schema name")
            .with_operation_timeout(Some(TIMEOUT));
        saves_are_cancelled_and_never_applied(&fixture, &store).await;
        assert!(
            connector.0.load(Ordering::Relaxed) > 0,
            "the cancels went through the connector"
        );
        store.repository().pool().close();
        fixture.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saves_timed_out_on_a_locked_row_leave_the_pool_to_other_sessions() {
        let fixture = PgFixture::new().await;
        let store = lean_store(&fixture);
        let rec = stored_session(&store).await;
        let other = stored_session(&store).await;
        let lock = lock_row(&fixture.conn, &lock_sql(&fixture), &rec).await;

        assert_timed_out(&saves_that_all_fail(&store, &rec).await);
        // The lock is still held; no connection busy with a timed-out save is handed out.
        other_sessions_work(&store, &other).await;

        lock.rollback().await.expect("release the lock");
        store.repository().pool().close();
        fixture.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_that_end_give_their_connection_back_to_the_pool() {
        let fixture = PgFixture::new().await;
        let store = lean_store(&fixture);
        let pool = store.repository().pool().clone();
        let rec = stored_session(&store).await;
        for _ in 0..20 {
            store.load(&rec.id).await.expect("a load");
            store.save(&rec).await.expect("a save");
        }
        // A statement that fails ends too: a missing table is an error, not a timeout.
        let unmigrated = LeanPostgresStore::new(pool.clone())
            .with_schema_name(&unique_name("ts_unmigrated"))
            .expect("a valid schema name");
        unmigrated
            .load(&Id::default())
            .await
            .expect_err("no such table");
        let status = pool.status();
        assert_eq!(
            (status.size, status.available),
            (1, 1),
            "one connection did it all and is idle in the pool"
        );
        pool.close();
        fixture.finish().await;
    }
}

mod seaorm_postgres {
    use super::*;

    /// The store's operation timeout in these tests, and the bounds below it as the README
    /// recommends: waiting for a connection and then running a statement ends before the store
    /// gives up; a lock wait ends before the statement bound.
    const TIMEOUT: Duration = Duration::from_millis(1000);
    const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
    const LOCK_TIMEOUT: Duration = Duration::from_millis(150);
    const STATEMENT_TIMEOUT: Duration = Duration::from_millis(400);

    /// A SeaORM store on a pool of [`POOL`] with the README's recommended bounds, in the
    /// fixture's schema.
    async fn bounded_store(fixture: &PgFixture) -> PostgresStore {
        let mut options = ConnectOptions::new(database_url());
        options
            .max_connections(POOL)
            .sqlx_logging(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .statement_timeout(STATEMENT_TIMEOUT)
            .map_sqlx_postgres_opts(|pg| {
                pg.options([("lock_timeout", LOCK_TIMEOUT.as_millis().to_string())])
            });
        let conn = Database::connect(options).await.expect("connect");
        PostgresStore::new(conn)
            .with_schema_name(&fixture.schema)
            .expect("a valid schema name")
            .with_operation_timeout(Some(TIMEOUT))
    }

    fn lock_sql(fixture: &PgFixture) -> String {
        format!("SELECT 1 FROM {} WHERE id = $1 FOR UPDATE", fixture.table())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_recommended_options_a_save_failed_on_a_locked_row_is_never_applied() {
        let fixture = PgFixture::new().await;
        let store = bounded_store(&fixture).await;
        let rec = stored_session(&store).await;
        let lock = lock_row(&fixture.conn, &lock_sql(&fixture), &rec).await;

        let started = Instant::now();
        for err in saves_that_all_fail(&store, &rec).await {
            let message = err.to_string();
            assert!(
                message.contains("lock timeout") && message.contains("55P03"),
                "the server's lock_timeout ends the save: {message}"
            );
        }
        eprintln!(
            "SeaORM store, lock_timeout {} ms: {SAVES} saves on a pool of {POOL} all failed \
             within {} ms",
            LOCK_TIMEOUT.as_millis(),
            started.elapsed().as_millis()
        );

        after_the_lock_the_row_is_unchanged(
            &store,
            lock,
            &fixture.conn,
            PG_RUNNING,
            &fixture.schema,
            &rec,
        )
        .await;
        fixture.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_recommended_options_saves_on_a_locked_row_leave_the_pool_to_other_sessions() {
        let fixture = PgFixture::new().await;
        let store = bounded_store(&fixture).await;
        let rec = stored_session(&store).await;
        let other = stored_session(&store).await;
        let lock = lock_row(&fixture.conn, &lock_sql(&fixture), &rec).await;

        // While the saves wait on the lock, and after they failed.
        let saves = {
            let store = store.clone();
            let rec = rec.clone();
            tokio::spawn(async move { saves_that_all_fail(&store, &rec).await })
        };
        // Real time: the saves must reach the locked row before the other sessions are tried.
        tokio::time::sleep(Duration::from_millis(20)).await;
        other_sessions_work(&store, &other).await;
        saves.await.expect("no save panicked");
        other_sessions_work(&store, &other).await;

        lock.rollback().await.expect("release the lock");
        fixture.finish().await;
    }

    /// The statement bound: a statement that is slow for any reason (here a trigger that sleeps)
    /// ends at `statement_timeout`, before the store gives up on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_recommended_options_a_save_slowed_by_a_trigger_fails_and_is_never_applied() {
        let fixture = PgFixture::new().await;
        let store = bounded_store(&fixture).await;
        let rec = stored_session(&store).await;
        fixture
            .conn
            .execute_unprepared(&format!(
                "CREATE FUNCTION \"{schema}\".slow() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
                 CREATE TRIGGER slow BEFORE UPDATE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION \"{schema}\".slow()",
                schema = fixture.schema,
                table = fixture.table(),
            ))
            .await
            .expect("create a slow trigger");

        let mut changed = rec.clone();
        changed.data.insert("n".into(), json!(1));
        let message = store
            .save(&changed)
            .await
            .expect_err("the slow save fails")
            .to_string();
        assert!(
            message.contains("statement timeout") && message.contains("57014"),
            "the server's statement_timeout ends the save: {message}"
        );
        until_none_runs(&fixture.conn, PG_RUNNING, &fixture.schema)
            .await
            .expect("the slow statement ended on the server");
        let stored = store.load(&rec.id).await.unwrap().unwrap();
        assert_eq!(
            stored.data["n"],
            json!(0),
            "the failed save was not applied"
        );
        fixture.finish().await;
    }
}

mod seaorm_mysql {
    use super::*;

    /// The store's operation timeout, and InnoDB's lock wait bound below it (whole seconds).
    const TIMEOUT: Duration = Duration::from_secs(3);
    const LOCK_WAIT: &str = "SET SESSION innodb_lock_wait_timeout = 1";

    /// A MySQL/MariaDB store on a pool of [`POOL`] whose every connection runs [`LOCK_WAIT`]
    /// when it opens, as the README recommends, in a table of its own.
    async fn bounded_store(table: &str) -> MySqlStore {
        let mut options = ConnectOptions::new(mysql_url());
        options
            .max_connections(POOL)
            .sqlx_logging(false)
            .map_sqlx_mysql_pool_opts(|pool| {
                pool.after_connect(|conn, _| {
                    Box::pin(
                        async move { sqlx::Executor::execute(conn, LOCK_WAIT).await.map(drop) },
                    )
                })
            });
        let conn = Database::connect(options).await.expect("connect");
        MySqlStore::new(conn)
            .with_table_name(table)
            .expect("a valid table name")
            .with_operation_timeout(Some(TIMEOUT))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_lock_wait_bound_a_save_failed_on_a_locked_row_is_never_applied_and_the_pool_stays_free(
    ) {
        let fixture = common::mysql::MySqlFixture::new().await;
        let store = bounded_store(&fixture.table).await;
        let rec = stored_session(&store).await;
        let other = stored_session(&store).await;
        let lock_sql = format!("SELECT 1 FROM `{}` WHERE id = ? FOR UPDATE", fixture.table);
        let lock = lock_row(&fixture.conn, &lock_sql, &rec).await;

        let saves = {
            let store = store.clone();
            let rec = rec.clone();
            tokio::spawn(async move { saves_that_all_fail(&store, &rec).await })
        };
        // Real time: the saves must reach the locked row before the other sessions are tried.
        tokio::time::sleep(Duration::from_millis(20)).await;
        other_sessions_work(&store, &other).await;
        for err in saves.await.expect("no save panicked") {
            let message = err.to_string();
            assert!(
                message.contains("Lock wait timeout"),
                "InnoDB's lock wait timeout ({LOCK_WAIT}) ends the save: {message}"
            );
        }

        after_the_lock_the_row_is_unchanged(
            &store,
            lock,
            &fixture.conn,
            MYSQL_RUNNING,
            &fixture.table,
            &rec,
        )
        .await;
        fixture.finish().await;
    }
}
