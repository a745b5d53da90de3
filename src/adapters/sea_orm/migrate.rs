//! `migrate()`: the migration crate's [`Runner`] on the store's table, then what only the store
//! knows to want: an `UNLOGGED` table, a table distributed by Citus, the read cache's eviction
//! triggers.

use sea_orm::DbErr;
use tower_sessions_seaorm_migration::{qualified, RunError, Runner};

use super::{dialect::Dialect, SeaOrmRepository};

/// The outcome of a failed `migrate`.
pub(crate) struct MigrateFailure {
    pub attempts: u32,
    pub error: DbErr,
}

impl SeaOrmRepository {
    /// Brings the session table up to date; see `RepositoryStore::migrate`.
    pub(crate) async fn migrate(&self, eviction_triggers: bool) -> Result<(), MigrateFailure> {
        let table = self.table();
        let backend = self.connection().get_database_backend();
        let mut runner = Runner::new(backend, table.schema(), table.table())
            .with_hash_partitions(table.hash_partitions());
        if table.unlogged() && self.dialect() == Dialect::Postgres {
            // Only a logged table is altered (a rewrite under an exclusive lock, once); replicas
            // racing here find it unlogged and do nothing.
            let target = qualified(backend, table.schema(), table.table());
            runner = runner.then_execute(format!(
                "DO $unlogged$ BEGIN \
                 IF (SELECT relpersistence FROM pg_catalog.pg_class \
                     WHERE oid = '{target}'::regclass) = 'p' THEN \
                 ALTER TABLE {target} SET UNLOGGED; \
                 END IF; END $unlogged$"
            ));
        }
        if table.distributed() && self.dialect() == Dialect::Postgres {
            runner = runner.then_execute(distribute_sql(&qualified(
                backend,
                table.schema(),
                table.table(),
            )));
        }
        if table.history() {
            for sql in crate::adapters::sql::history::create_sql(table, self.dialect()) {
                runner = runner.then_execute(sql);
            }
        }
        #[cfg(all(feature = "cache", feature = "postgres"))]
        if eviction_triggers && self.dialect() == Dialect::Postgres {
            runner = runner.then_execute(crate::adapters::sql::eviction::install_sql(table));
        }
        #[cfg(not(all(feature = "cache", feature = "postgres")))]
        let _ = eviction_triggers;
        match runner.up(self.connection(), None).await {
            Ok(_) => Ok(()),
            Err(RunError::Refused(message)) => Err(MigrateFailure {
                attempts: 1,
                error: DbErr::Migration(message),
            }),
            Err(RunError::Failed { attempts, error }) => Err(MigrateFailure { attempts, error }),
        }
    }
}

/// Distributes `target` by id over the Citus cluster, unless it is already.
///
/// Last, after every step: the table is created and altered as a plain table on the
/// coordinator, and Citus copies it (indexes and rows) to its shards. Replicas racing here queue
/// on the table's lock and find it distributed; without the lock, the second
/// `create_distributed_table` would fail as "already distributed". Citus propagates later
/// steps' DDL (a new column, a new index) to every shard.
fn distribute_sql(target: &str) -> String {
    format!(
        "DO $distribute$ BEGIN \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN \
         RAISE EXCEPTION 'a distributed session table needs the Citus extension in this \
         database (CREATE EXTENSION citus), and the store connected to its coordinator'; \
         END IF; \
         LOCK TABLE {target} IN EXCLUSIVE MODE; \
         IF NOT EXISTS (SELECT 1 FROM pg_dist_partition \
                        WHERE logicalrelid = '{target}'::regclass) THEN \
         PERFORM create_distributed_table('{target}', 'id'); \
         END IF; END $distribute$"
    )
}
