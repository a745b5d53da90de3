//! The session table hash-partitioned by id, for PostgreSQL deployments whose session table is
//! hot enough that one heap and one index become the bottleneck (vacuum, index contention).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::{
    expiry_index_name, partition_name, qualified, quote,
    sql::{create_schema, execute_all, rows},
};

/// The most partitions [`CreatePartitionedSessionTable`] creates. PostgreSQL has no hard limit,
/// but planning and locking cost grows with the count, and sessions gain nothing past a few dozen.
pub const MAX_HASH_PARTITIONS: u16 = 1024;

/// Creates the session table hash-partitioned by `id` into `partitions` partitions, if it does
/// not exist (PostgreSQL 11 or later).
///
/// The same columns as [`CreateSessionTable`](crate::CreateSessionTable) — `id text primary key`,
/// `data bytea not null`, `expiry_date timestamptz not null` — on a parent
/// `PARTITION BY HASH ("id")`, with partitions `"<table>_p0"` … `"<table>_p<n-1>"` in the same
/// schema (shortened past 62 bytes, see [`partition_name`]) and the expiry index on the parent,
/// so every partition has it. The store's statements run unchanged: each `id` lookup is pruned
/// to one partition, and cleanup's batched `DELETE` spans them all.
///
/// Idempotent: every statement is `IF NOT EXISTS`, and a remainder that already has a partition
/// is left alone whatever that partition's name (earlier versions cut long names at 63 bytes,
/// not 62). It refuses to run when `"<schema>"."<table>"` already exists as an ordinary table,
/// rather than leave it half-converted; see SCALING.md for moving the rows of an existing table.
/// Names PostgreSQL would cut or confuse are refused first ([`check_names`](crate::check_names)).
///
/// Run it before (or instead of) the store's `migrate()`: `migrate()` then finds the table and
/// its index in place and only records its history.
///
/// ```
/// use sea_orm_migration::prelude::*;
/// use tower_sessions_seaorm_migration::{
///     AddLongLived, AddSessionTimes, AddUserIndex, AddVersion, CreatePartitionedSessionTable,
///     ExactKeys, InsertInstantDefaults,
/// };
///
/// pub struct Migrator;
///
/// impl MigratorTrait for Migrator {
///     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
///         vec![
///             Box::new(CreatePartitionedSessionTable::new("tower_sessions", "session", 16)),
///             // The later columns, as for an unpartitioned table.
///             Box::new(AddUserIndex::new("tower_sessions", "session")),
///             Box::new(ExactKeys::new("tower_sessions", "session")),
///             Box::new(AddSessionTimes::new("tower_sessions", "session")),
///             Box::new(InsertInstantDefaults::new("tower_sessions", "session")),
///             Box::new(AddVersion::new("tower_sessions", "session")),
///             Box::new(AddLongLived::new("tower_sessions", "session")),
///         ]
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePartitionedSessionTable {
    schema: String,
    table: String,
    partitions: u16,
}

impl CreatePartitionedSessionTable {
    /// The migration for `"<schema>"."<table>"` in `partitions` hash partitions (1 to
    /// [`MAX_HASH_PARTITIONS`]; anything else fails when the migration runs).
    pub fn new(schema: impl Into<String>, table: impl Into<String>, partitions: u16) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            partitions,
        }
    }

    /// The names of the partitions, in remainder order.
    pub fn partition_names(&self) -> Vec<String> {
        (0..self.partitions)
            .map(|k| partition_name(&self.table, k))
            .collect()
    }

    /// The first column of the rows of catalog query `sql`, whose parameters are the schema's
    /// and the table's names.
    async fn catalog(&self, manager: &SchemaManager<'_>, sql: &str) -> Result<Vec<String>, DbErr> {
        let names = vec![self.schema.clone().into(), self.table.clone().into()];
        rows(manager.get_connection(), DbBackend::Postgres, sql, names).await
    }

    fn in_schema(&self, name: &str) -> String {
        qualified(DbBackend::Postgres, &self.schema, name)
    }

    /// The bound PostgreSQL shows (`pg_get_expr(relpartbound)`) for the partition of remainder
    /// `k`.
    fn bound(&self, k: usize) -> String {
        format!(
            "FOR VALUES WITH (modulus {}, remainder {k})",
            self.partitions
        )
    }

    /// The DDL, in order: schema, parent, the partitions whose bound is not among `attached`,
    /// index.
    fn statements(&self, attached: &[String]) -> Vec<String> {
        let parent = self.in_schema(&self.table);
        let mut sql = vec![
            create_schema(&self.schema),
            format!(
                "CREATE TABLE IF NOT EXISTS {parent} (\
                 \"id\" text NOT NULL PRIMARY KEY, \
                 \"data\" bytea NOT NULL, \
                 \"expiry_date\" timestamptz NOT NULL\
                 ) PARTITION BY HASH (\"id\")"
            ),
        ];
        for (k, name) in self.partition_names().iter().enumerate() {
            if attached.contains(&self.bound(k)) {
                continue;
            }
            sql.push(format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {parent} \
                 FOR VALUES WITH (MODULUS {}, REMAINDER {k})",
                self.in_schema(name),
                self.partitions
            ));
        }
        // On the parent, so PostgreSQL creates it on every partition, present and future.
        sql.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {parent} (\"expiry_date\")",
            quote(DbBackend::Postgres, &expiry_index_name(&self.table))
        ));
        sql
    }

    /// The bounds of the partitions attached to `"<schema>"."<table>"`, as PostgreSQL shows them.
    async fn attached_bounds(&self, manager: &SchemaManager<'_>) -> Result<Vec<String>, DbErr> {
        let sql = "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
                   JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
                   JOIN pg_namespace n ON n.oid = p.relnamespace \
                   WHERE n.nspname = $1 AND p.relname = $2";
        self.catalog(manager, sql).await
    }

    /// Whether `"<schema>"."<table>"` exists as something other than a partitioned table.
    async fn existing_unpartitioned(&self, manager: &SchemaManager<'_>) -> Result<bool, DbErr> {
        let sql = "SELECT c.relkind::text FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND c.relname = $2";
        let kinds = self.catalog(manager, sql).await?;
        Ok(kinds.first().is_some_and(|kind| kind != "p"))
    }
}

migration_name!(
    CreatePartitionedSessionTable = "m20261125_000001_create_partitioned_session_table"
);

#[async_trait::async_trait]
impl MigrationTrait for CreatePartitionedSessionTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Err(DbErr::Migration(format!(
                "hash-partitioned session tables are a PostgreSQL feature, not {:?}'s; \
                 use CreateSessionTable there",
                manager.get_database_backend()
            )));
        }
        if !(1..=MAX_HASH_PARTITIONS).contains(&self.partitions) {
            return Err(DbErr::Migration(format!(
                "a partitioned session table needs 1 to {MAX_HASH_PARTITIONS} partitions, not {}",
                self.partitions
            )));
        }
        crate::check_names(&self.table, Some(self.partitions))
            .map_err(|err| DbErr::Migration(err.to_string()))?;
        if self.existing_unpartitioned(manager).await? {
            return Err(DbErr::Migration(format!(
                "{} exists and is not partitioned; create the partitioned table under another \
                 name and move the rows (SCALING.md, \"Partitioning\"), or keep it unpartitioned",
                self.in_schema(&self.table)
            )));
        }
        let attached = self.attached_bounds(manager).await?;
        execute_all(manager.get_connection(), self.statements(&attached)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the parent drops its partitions.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DROP TABLE IF EXISTS {}",
                self.in_schema(&self.table)
            ))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_after_the_table() {
        let m = CreatePartitionedSessionTable::new("tower_sessions", "session", 3);
        assert_eq!(
            m.partition_names(),
            ["session_p0", "session_p1", "session_p2"]
        );
    }

    #[test]
    fn long_table_names_give_distinct_partition_names_within_62_bytes() {
        let a = format!("{}a", "x".repeat(62));
        let b = format!("{}b", "x".repeat(62));
        for k in [0, 9, 1023] {
            let (pa, pb) = (partition_name(&a, k), partition_name(&b, k));
            assert!(pa.len() <= 62 && pb.len() <= 62, "{pa} / {pb}");
            assert_ne!(pa, pb);
            assert!(pa.ends_with(&format!("_p{k}")));
        }
    }

    #[test]
    fn the_ddl_is_idempotent_and_quoted() {
        let sql = CreatePartitionedSessionTable::new("app", "web_session", 2).statements(&[]);
        assert_eq!(sql.len(), 5);
        assert!(sql.iter().all(|s| s.contains("IF NOT EXISTS")));
        assert!(sql[1].ends_with(r#"PARTITION BY HASH ("id")"#));
        assert_eq!(
            sql[3],
            r#"CREATE TABLE IF NOT EXISTS "app"."web_session_p1" PARTITION OF "app"."web_session" FOR VALUES WITH (MODULUS 2, REMAINDER 1)"#
        );
        assert_eq!(
            sql[4],
            r#"CREATE INDEX IF NOT EXISTS "web_session_expiry_date_idx" ON "app"."web_session" ("expiry_date")"#
        );
    }

    #[test]
    fn a_remainder_that_has_a_partition_gets_no_second_one() {
        let migration = CreatePartitionedSessionTable::new("app", "web_session", 3);
        let sql = migration.statements(&[migration.bound(1)]);
        assert_eq!(sql.len(), 5, "{sql:?}");
        assert!(sql[2].contains("REMAINDER 0") && sql[3].contains("REMAINDER 2"));
    }
}
