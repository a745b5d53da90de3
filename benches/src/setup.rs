//! The databases, pools and tables each stack runs on: one PostgreSQL, one pool of `POOL_SIZE`
//! connections per stack, one table of the same shape (with the expiry index) per stack.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use store::{LeanPostgresStore, PostgresStore};

use crate::{
    floors::{LeanFloor, Sql, SqlxFloor},
    stacks::{BoxError, Kind, Named, Store14, Store15},
};

pub const POOL_SIZE: u32 = 16;
/// The database the 0.1.1 store gets to itself: it hard-codes `"tower_sessions"."session"`.
pub const SEAORM01_DB: &str = "bench_seaorm01";
pub const BENCH_DB: &str = "bench";

pub fn url(base: &str, db: &str) -> String {
    format!("{base}/{db}")
}

/// Creates `db` on the server at `base` unless it exists.
pub async fn ensure_database(base: &str, db: &str) -> Result<(), BoxError> {
    let admin = Database::connect(url(base, "postgres")).await?;
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"),
        ))
        .await?
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{db}""#))
            .await?;
    }
    admin.close().await?;
    Ok(())
}

pub fn lean_pool(url: &str) -> Result<Pool, BoxError> {
    let manager = Manager::from_config(
        url.parse()?,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE as usize)
        .build()?)
}

/// SeaORM 2 with the pool size alone (`tuned == false`), or with the README's options.
pub async fn seaorm(url: &str, tuned: bool) -> Result<DatabaseConnection, BoxError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(POOL_SIZE);
    if tuned {
        options
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .sqlx_logging(false);
    }
    Ok(Database::connect(options).await?)
}

async fn recreate_schema(conn: &DatabaseConnection, schema: &str) -> Result<(), BoxError> {
    conn.execute_unprepared(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
        .await?;
    Ok(())
}

/// A fresh schema with this crate's table and expiry index.
pub async fn migrated(conn: &DatabaseConnection, schema: &str) -> Result<PostgresStore, BoxError> {
    recreate_schema(conn, schema).await?;
    let store = PostgresStore::new(conn.clone()).with_schema_name(schema)?;
    store.migrate().await?;
    Ok(store)
}

fn named(name: &str, kind: Kind, tuned: bool, stack: impl crate::stacks::Stack + 'static) -> Named {
    Named {
        name: name.to_owned(),
        kind,
        tuned,
        stack: Arc::new(stack),
    }
}

/// Every stack, on fresh tables.
pub async fn stacks(base: &str) -> Result<Vec<Named>, BoxError> {
    let bench = url(base, BENCH_DB);
    let admin = seaorm(&bench, true).await?;
    let mut all = Vec::new();

    migrated(&admin, "lean_floor").await?;
    all.push(named(
        "lean floor (tokio-postgres)",
        Kind::LeanFloor,
        true,
        LeanFloor {
            pool: lean_pool(&bench)?,
            sql: Sql::new("lean_floor"),
        },
    ));

    // The control: the same floor again, on a pool and a table of its own. Its ratio to the
    // first is what two identical stacks read on this machine (named so that no filter
    // naming the floors selects it).
    migrated(&admin, "floor_twin_lean").await?;
    all.push(named(
        "floor twin (tokio-postgres)",
        Kind::LeanFloorTwin,
        true,
        LeanFloor {
            pool: lean_pool(&bench)?,
            sql: Sql::new("floor_twin_lean"),
        },
    ));

    migrated(&admin, "lean_store").await?;
    all.push(named(
        "LeanPostgresStore",
        Kind::LeanStore,
        true,
        Store15(LeanPostgresStore::new(lean_pool(&bench)?).with_schema_name("lean_store")?),
    ));

    // The same store without its operation time-out: what the time-out costs (a tokio timer
    // per operation). Named so that no filter naming `LeanPostgresStore` selects it.
    migrated(&admin, "lean_store_untimed").await?;
    all.push(named(
        "lean store, no time-out",
        Kind::LeanStoreUntimed,
        true,
        Store15(
            LeanPostgresStore::new(lean_pool(&bench)?)
                .with_schema_name("lean_store_untimed")?
                .with_operation_timeout(None),
        ),
    ));

    for tuned in [true, false] {
        let suffix = if tuned { "" } else { " [defaults]" };
        let tag = if tuned { "tuned" } else { "defaults" };

        let conn = seaorm(&bench, tuned).await?;
        let schema = format!("sqlx_floor_{tag}");
        migrated(&admin, &schema).await?;
        all.push(named(
            &format!("sqlx floor (SeaORM pool){suffix}"),
            Kind::SqlxFloor,
            tuned,
            SqlxFloor {
                pool: conn.get_postgres_connection_pool().clone(),
                sql: Sql::new(&schema),
            },
        ));

        if tuned {
            let conn = seaorm(&bench, tuned).await?;
            migrated(&admin, "floor_twin_sqlx").await?;
            all.push(named(
                "floor twin (SeaORM pool)",
                Kind::SqlxFloorTwin,
                tuned,
                SqlxFloor {
                    pool: conn.get_postgres_connection_pool().clone(),
                    sql: Sql::new("floor_twin_sqlx"),
                },
            ));
        }

        let conn = seaorm(&bench, tuned).await?;
        let schema = format!("store_{tag}");
        migrated(&admin, &schema).await?;
        all.push(named(
            &format!("PostgresStore (SeaORM){suffix}"),
            Kind::SeaOrmStore,
            tuned,
            Store15(PostgresStore::new(conn).with_schema_name(&schema)?),
        ));

        all.push(named(
            &format!("tower-sessions-sqlx-store 0.15{suffix}"),
            Kind::SqlxStorePeer,
            tuned,
            Store14(sqlx_store_peer(&bench, &admin, tuned).await?),
        ));

        all.push(named(
            &format!("tower-sessions-seaorm-store 0.1.1{suffix}"),
            Kind::SeaOrm01Peer,
            tuned,
            Store14(seaorm01_peer(base, tuned).await?),
        ));
    }
    admin.close().await?;
    Ok(all)
}

/// tower-sessions-sqlx-store on its own sqlx 0.8 pool, its table given the expiry index the
/// other stacks have (its `migrate` creates none).
async fn sqlx_store_peer(
    url: &str,
    admin: &DatabaseConnection,
    tuned: bool,
) -> Result<sqlx_store::PostgresStore, BoxError> {
    let schema = format!("sqlx_store_{}", if tuned { "tuned" } else { "defaults" });
    recreate_schema(admin, &schema).await?;
    let pool = sqlx08::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .test_before_acquire(!tuned)
        .connect(url)
        .await?;
    let store = sqlx_store::PostgresStore::new(pool)
        .with_schema_name(&schema)?
        .with_table_name("session")?;
    store.migrate().await?;
    admin
        .execute_unprepared(&format!(
            r#"CREATE INDEX IF NOT EXISTS "session_expiry_idx" ON "{schema}"."session" ("expiry_date")"#
        ))
        .await?;
    Ok(store)
}

/// tower-sessions-seaorm-store 0.1.1 on SeaORM 1.1, in a database of its own (one per
/// configuration, since its table name is fixed).
async fn seaorm01_peer(base: &str, tuned: bool) -> Result<seaorm01::PostgresStore, BoxError> {
    let db = format!("{SEAORM01_DB}_{}", if tuned { "tuned" } else { "defaults" });
    ensure_database(base, &db).await?;
    let url = url(base, &db);
    let admin = seaorm(&url, true).await?;
    admin
        .execute_unprepared(r#"DROP SCHEMA IF EXISTS "tower_sessions" CASCADE; DROP TABLE IF EXISTS "tower_sessions_seaorm_migrations""#)
        .await?;
    admin.close().await?;
    let mut options = sea_orm_1::ConnectOptions::new(url);
    options.max_connections(POOL_SIZE);
    if tuned {
        options.test_before_acquire(false).sqlx_logging(false);
    }
    let store = seaorm01::PostgresStore::new(sea_orm_1::Database::connect(options).await?);
    store.migrate().await?;
    Ok(store)
}
