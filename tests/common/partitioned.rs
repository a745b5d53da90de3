//! A store on a hash-partitioned session table in a schema of its own, created by the migration
//! crate's `CreatePartitionedSessionTable`, `AddUserIndex`, `AddSessionTimes`,
//! `InsertInstantDefaults`, `AddVersion` and `AddLongLived` the way an application's own `Migrator` would run
//! them.

use tower_sessions_seaorm_store::{
    migration::{
        sea_orm_migration::{MigrationTrait, SchemaManager},
        AddLongLived, AddSessionTimes, AddUserIndex, AddVersion, CreatePartitionedSessionTable,
        InsertInstantDefaults,
    },
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value},
    PostgresStore,
};

use super::{connect_postgres, database_url, unique_name};

/// How many partitions the suite's table has.
pub const PARTITIONS: u16 = 4;

pub struct PartitionedFixture {
    pub store: PostgresStore,
    pub conn: DatabaseConnection,
    pub schema: String,
    pub migration: CreatePartitionedSessionTable,
}

impl PartitionedFixture {
    /// A store on `"<fresh schema>"."session"` in [`PARTITIONS`] hash partitions.
    pub async fn new() -> Self {
        Self::with_partitions(PARTITIONS).await
    }

    /// A store on `"<fresh schema>"."session"` in `partitions` hash partitions.
    pub async fn with_partitions(partitions: u16) -> Self {
        let conn = connect_postgres(&database_url()).await;
        let schema = unique_name("ts_part");
        let migration = CreatePartitionedSessionTable::new(&schema, "session", partitions);
        migration
            .up(&SchemaManager::new(&conn))
            .await
            .expect("create the partitioned session table");
        AddUserIndex::new(&schema, "session")
            .up(&SchemaManager::new(&conn))
            .await
            .expect("add the user index to the partitioned table");
        AddSessionTimes::new(&schema, "session")
            .up(&SchemaManager::new(&conn))
            .await
            .expect("add the session times to the partitioned table");
        InsertInstantDefaults::new(&schema, "session")
            .up(&SchemaManager::new(&conn))
            .await
            .expect("the insert instant defaults (a no-op on PostgreSQL)");
        AddVersion::new(&schema, "session")
            .up(&SchemaManager::new(&conn))
            .await
            .expect("add the row version to the partitioned table");
        AddLongLived::new(&schema, "session")
            .up(&SchemaManager::new(&conn))
            .await
            .expect("add the long-lived marker to the partitioned table");
        let store = PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .expect("a valid schema name");
        Self {
            store,
            conn,
            schema,
            migration,
        }
    }

    /// Runs the partitioned migrations again, as a second deploy would.
    pub async fn migrate_again(&self) -> Result<(), String> {
        let manager = SchemaManager::new(&self.conn);
        self.migration
            .up(&manager)
            .await
            .map_err(|e| e.to_string())?;
        AddUserIndex::new(&self.schema, "session")
            .up(&manager)
            .await
            .map_err(|e| e.to_string())?;
        AddSessionTimes::new(&self.schema, "session")
            .up(&manager)
            .await
            .map_err(|e| e.to_string())?;
        InsertInstantDefaults::new(&self.schema, "session")
            .up(&manager)
            .await
            .map_err(|e| e.to_string())?;
        AddVersion::new(&self.schema, "session")
            .up(&manager)
            .await
            .map_err(|e| e.to_string())?;
        AddLongLived::new(&self.schema, "session")
            .up(&manager)
            .await
            .map_err(|e| e.to_string())
    }

    /// How many rows each partition holds, by partition name.
    pub async fn rows_per_partition(&self) -> Vec<(String, i64)> {
        self.counts(&format!(
            "SELECT tableoid::regclass::text, count(*) FROM \"{}\".\"session\" GROUP BY 1 ORDER BY 1",
            self.schema
        ))
        .await
    }

    /// How many expired rows each partition holds, by partition name.
    pub async fn expired_rows_per_partition(&self) -> Vec<(String, i64)> {
        self.counts(&format!(
            "SELECT tableoid::regclass::text, count(*) FROM \"{}\".\"session\" \
             WHERE expiry_date <= now() GROUP BY 1 ORDER BY 1",
            self.schema
        ))
        .await
    }

    /// The partitions attached to the session table, as PostgreSQL lists them.
    pub async fn attached_partitions(&self) -> Vec<String> {
        self.conn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT c.relname::text FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = to_regclass($1) ORDER BY 1",
                [Value::from(format!("\"{}\".\"session\"", self.schema))],
            ))
            .await
            .expect("list the partitions")
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).expect("a name"))
            .collect()
    }

    async fn counts(&self, sql: &str) -> Vec<(String, i64)> {
        self.conn
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect("count rows per partition")
            .iter()
            .map(|row| {
                (
                    row.try_get_by_index::<String>(0).expect("a partition"),
                    row.try_get_by_index::<i64>(1).expect("a count"),
                )
            })
            .collect()
    }

    /// Drops the test's schema.
    pub async fn finish(self) {
        super::drop_schema(self.conn, &self.schema).await;
    }
}
