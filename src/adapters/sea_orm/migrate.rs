//! `migrate()`: the migration crate's migrations, recorded in the store's own history table and
//! safe when many replicas run it at once.

use std::time::Duration;

use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, OnConflict, Query, Table, TableRef},
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait,
};
use sea_orm_migration::SchemaManager;
use tower_sessions_seaorm_migration as migration;

use super::{
    dialect::Dialect,
    errors::{is_array_type_name_exhausted, is_duplicate_object, lost_a_migration_race},
    SeaOrmRepository,
};

pub use migration::HISTORY_TABLE as MIGRATION_HISTORY_TABLE;

/// How often `migrate` starts over after losing a race to a concurrent migration.
const MAX_ATTEMPTS: u32 = 12;

/// The outcome of a failed `migrate`.
pub(crate) struct MigrateFailure {
    pub attempts: u32,
    pub error: DbErr,
}

impl SeaOrmRepository {
    /// Brings the session table up to date; see `RepositoryStore::migrate`.
    pub(crate) async fn migrate(&self, eviction_triggers: bool) -> Result<(), MigrateFailure> {
        let mut backoff = Duration::from_millis(10);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.migrate_once(eviction_triggers).await {
                Ok(()) => return Ok(()),
                Err(error)
                    if attempt < MAX_ATTEMPTS && lost_a_migration_race(self.dialect(), &error) =>
                {
                    if is_duplicate_object(self.dialect(), &error) {
                        if let Some(error) = self.type_in_the_way().await {
                            return Err(MigrateFailure {
                                attempts: attempt,
                                error,
                            });
                        }
                    }
                    tracing::debug!(attempt, "session table migration raced another; retrying");
                    tokio::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(error) => {
                    return Err(MigrateFailure {
                        attempts: attempt,
                        error: self.explained(error),
                    })
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn migrate_once(&self, eviction_triggers: bool) -> Result<(), DbErr> {
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
            let version = migration::history_version(table, step.name());
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
        if self.table().unlogged() && dialect == Dialect::Postgres {
            // Only a logged table is altered (a rewrite under an exclusive lock, once); replicas
            // racing here find it unlogged and do nothing.
            let target = format!("{}.{}", quote(schema), quote(table));
            conn.execute_unprepared(&format!(
                "DO $unlogged$ BEGIN \
                 IF (SELECT relpersistence FROM pg_catalog.pg_class \
                     WHERE oid = '{target}'::regclass) = 'p' THEN \
                 ALTER TABLE {target} SET UNLOGGED; \
                 END IF; END $unlogged$"
            ))
            .await?;
        }
        #[cfg(all(feature = "cache", feature = "postgres"))]
        if eviction_triggers && dialect == Dialect::Postgres {
            conn.execute_unprepared(&crate::adapters::sql::eviction::install_sql(self.table()))
                .await?;
        }
        #[cfg(not(all(feature = "cache", feature = "postgres")))]
        let _ = eviction_triggers;
        Ok(())
    }
}

impl SeaOrmRepository {
    /// After a duplicate_object (42710): a type that is not a table's, named like one of the
    /// tables `migrate` creates, as an error; `None` when there is none (a lost race: the
    /// winner's row type and table committed together) or the catalog cannot be read.
    async fn type_in_the_way(&self) -> Option<DbErr> {
        let table = self.table();
        let mut names = vec![table.table().to_owned(), MIGRATION_HISTORY_TABLE.to_owned()];
        names.extend(
            (0..table.hash_partitions().unwrap_or(0))
                .map(|k| migration::partition_name(table.table(), k)),
        );
        // The names are validated identifiers: no comma in any.
        let row = self
            .connection()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT t.typname::text FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE n.nspname = $1 AND t.typname::text = ANY (string_to_array($2, ',')) \
                 AND NOT EXISTS (SELECT 1 FROM pg_class c \
                                 WHERE c.relnamespace = n.oid AND c.relname = t.typname) \
                 LIMIT 1",
                [table.schema().to_owned().into(), names.join(",").into()],
            ))
            .await
            .ok()??;
        let name: String = row.try_get_by_index(0).ok()?;
        Some(DbErr::Migration(format!(
            "a type named \"{name}\" that is not a table's is in schema \"{}\": PostgreSQL gives \
             every table a type of its own name, so drop or rename that type, or choose another \
             table name",
            table.schema()
        )))
    }

    /// `error` with what to do, when PostgreSQL's message alone does not say.
    fn explained(&self, error: DbErr) -> DbErr {
        if !is_array_type_name_exhausted(self.dialect(), &error) {
            return error;
        }
        DbErr::Migration(format!(
            "{error}: PostgreSQL names each table's array type `_<table>` cut to 63 bytes, and \
             objects in schema \"{}\" whose names begin like the table's hold every name it \
             tries; shorten the table name",
            self.table().schema()
        ))
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
