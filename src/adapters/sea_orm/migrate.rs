//! `migrate()`: the migration crate's migrations, recorded in the store's own history table and
//! safe when many replicas run it at once.

use std::time::Duration;

use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, OnConflict, Query, Table, TableRef},
    ConnectionTrait, DbErr, TransactionTrait,
};
use sea_orm_migration::SchemaManager;
use tower_sessions_seaorm_migration as migration;

use super::{dialect::Dialect, errors::lost_a_migration_race, SeaOrmRepository, SqlDialect};

pub use migration::HISTORY_TABLE as MIGRATION_HISTORY_TABLE;

/// How often `migrate` starts over after losing a race to a concurrent migration.
const MAX_ATTEMPTS: u32 = 12;

/// The outcome of a failed `migrate`.
pub(crate) struct MigrateFailure {
    pub attempts: u32,
    pub error: DbErr,
}

impl<B: SqlDialect> SeaOrmRepository<B> {
    /// Brings the session table up to date; see `RepositoryStore::migrate`.
    pub(crate) async fn migrate(&self) -> Result<(), MigrateFailure> {
        let mut backoff = Duration::from_millis(10);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.migrate_once().await {
                Ok(()) => return Ok(()),
                Err(error)
                    if attempt < MAX_ATTEMPTS && lost_a_migration_race(self.dialect(), &error) =>
                {
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
        let dialect = self.dialect();
        let schema = self.table().schema();
        let table = self.table().table();

        // The history table lives beside the session table: in its schema on PostgreSQL (which
        // must exist first; the migration creates it again, harmlessly), in the connection's
        // database on SQLite and MySQL.
        let history: TableRef = match dialect {
            Dialect::Postgres => {
                conn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
                    .await?;
                (Alias::new(schema), Alias::new(MIGRATION_HISTORY_TABLE)).into()
            }
            Dialect::Sqlite | Dialect::MySql => Alias::new(MIGRATION_HISTORY_TABLE).into(),
        };
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

        let steps =
            migration::migrations_with_partitions(schema, table, self.table().hash_partitions());
        for step in steps {
            // One schema can hold several session tables, so the version names the table.
            let version = format!("{table}/{}", step.name());
            if applied.contains(&version) {
                continue;
            }
            // `ON CONFLICT DO NOTHING` here, `ON DUPLICATE KEY UPDATE version = version` on
            // MySQL: a replica that applied the step meanwhile is not an error.
            let record = Query::insert()
                .into_table(history.clone())
                .columns([Alias::new("version"), Alias::new("applied_at")])
                .values_panic([
                    Expr::val(version.clone()),
                    Expr::val(time::OffsetDateTime::now_utc().unix_timestamp()),
                ])
                .on_conflict(
                    OnConflict::column(Alias::new("version"))
                        .do_nothing_on([Alias::new("version")])
                        .to_owned(),
                )
                .to_owned();
            match dialect {
                // Transactional DDL: the step and its history row commit together.
                Dialect::Postgres | Dialect::Sqlite => {
                    let txn = conn.begin().await?;
                    step.up(&SchemaManager::new(&txn)).await?;
                    txn.execute(&record).await?;
                    txn.commit().await?;
                }
                // DDL commits implicitly on MySQL, so a transaction would promise nothing: the
                // step is idempotent instead, and a crash before the history row only means it
                // runs (harmlessly) again.
                Dialect::MySql => {
                    step.up(&SchemaManager::new(conn)).await?;
                    conn.execute(&record).await?;
                }
            }
            tracing::info!(migration = %step.name(), "migrated the session table");
        }
        Ok(())
    }
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
