//! `migrate()`: the migration crate's migrations, recorded in the store's own history table and
//! safe when many replicas run it at once.

use std::time::Duration;

use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, OnConflict, PostgresQueryBuilder, Query, Table, TableRef},
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait, Value,
};
use sea_orm_migration::SchemaManager;
use tower_sessions_seaorm_migration as migration;

use super::{errors::sqlstate, SeaOrmRepository};

pub use migration::HISTORY_TABLE as MIGRATION_HISTORY_TABLE;

/// How often `migrate` starts over after losing a race to a concurrent migration.
const MAX_ATTEMPTS: u32 = 12;

/// The SQLSTATEs a concurrent `CREATE … IF NOT EXISTS` or history insert can raise in the loser
/// of a race: `IF NOT EXISTS` checks the catalog before the insert into it, so two transactions
/// can both pass the check and one then trips the catalog's unique index. Starting over is
/// correct: the winner's objects are then visible and the `IF NOT EXISTS` holds.
const RACE_SQLSTATES: &[&str] = &[
    "23505", // unique_violation (pg_type, pg_class, pg_namespace, the history table)
    "42P07", // duplicate_table
    "42P06", // duplicate_schema
    "42710", // duplicate_object (the index)
    "40P01", // deadlock_detected
    "40001", // serialization_failure
];

/// The outcome of a failed `migrate`.
pub(crate) struct MigrateFailure {
    pub attempts: u32,
    pub error: DbErr,
}

impl SeaOrmRepository {
    /// Brings the session table up to date; see `PostgresStore::migrate`.
    pub(crate) async fn migrate(&self) -> Result<(), MigrateFailure> {
        let mut backoff = Duration::from_millis(10);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.migrate_once().await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < MAX_ATTEMPTS && lost_a_race(&error) => {
                    tracing::debug!(attempt, "session table migration raced another; retrying");
                    tokio::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(error) => {
                    return Err(MigrateFailure {
                        attempts: attempt,
                        error,
                    })
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn migrate_once(&self) -> Result<(), DbErr> {
        let conn = self.connection();
        if conn.get_database_backend() != DbBackend::Postgres {
            return Err(DbErr::Migration(format!(
                "migrate() supports PostgreSQL only in this release, not {:?}",
                conn.get_database_backend()
            )));
        }
        let schema = self.table().schema();
        let table = self.table().table();

        // The history table lives beside the session table, in its schema, so the schema must
        // exist first. The migration creates it again, harmlessly.
        conn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
            .await?;
        let history: TableRef = (Alias::new(schema), Alias::new(MIGRATION_HISTORY_TABLE)).into();
        conn.execute(
            &Table::create()
                .table(history.clone())
                .if_not_exists()
                .col(
                    ColumnDef::new(Alias::new("version"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Alias::new("applied_at"))
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;

        let applied: Vec<String> = conn
            .query_all(
                &Query::select()
                    .column(Alias::new("version"))
                    .from(history.clone())
                    .to_owned(),
            )
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?;

        for step in migration::migrations(schema, table) {
            // One schema can hold several session tables, so the version names the table.
            let version = format!("{table}/{}", step.name());
            if applied.contains(&version) {
                continue;
            }
            let txn = conn.begin().await?;
            step.up(&SchemaManager::new(&txn)).await?;
            let (sql, values) = Query::insert()
                .into_table(history.clone())
                .columns([Alias::new("version"), Alias::new("applied_at")])
                .values_panic([
                    Expr::val(version.clone()),
                    Expr::val(time::OffsetDateTime::now_utc().unix_timestamp()),
                ])
                .on_conflict(
                    OnConflict::column(Alias::new("version"))
                        .do_nothing()
                        .to_owned(),
                )
                .to_owned()
                .build(PostgresQueryBuilder);
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values.into_iter().collect::<Vec<Value>>(),
            ))
            .await?;
            txn.commit().await?;
            tracing::info!(migration = %step.name(), "migrated the session table");
        }
        Ok(())
    }
}

fn lost_a_race(error: &DbErr) -> bool {
    sqlstate(error).is_some_and(|code| RACE_SQLSTATES.contains(&code.as_str()))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Up to `backoff` of jitter, so racing replicas do not retry in lock step.
fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let max = backoff.as_nanos().max(1);
    Duration::from_nanos((u128::from(nanos) % max) as u64)
}
