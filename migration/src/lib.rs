//! SeaORM migrations for the session table of `tower-sessions-seaorm-store`.
//!
//! Three ways to run them, all creating the same table:
//!
//! 1. **The store does it**: `migrate()` (on `PostgresStore`, `SqliteStore` or `MySqlStore`) runs
//!    [`migrations`] for its own table with this crate's [`Runner`], which records them in
//!    `seaql_migrations_tower_sessions` (in the session table's schema on PostgreSQL; never the
//!    application's `seaql_migrations`) and is safe when many replicas run it at once. A
//!    program of your own can run the [`Runner`] too, on any session table.
//! 2. **Your own `Migrator`**: add [`CreateSessionTable`] to your application's list, so the
//!    session table is created with the rest of your schema:
//!
//!    ```
//!    use sea_orm_migration::prelude::*;
//!    use tower_sessions_seaorm_migration::{
//!        AddLoginHistory, AddLongLived, AddSessionTimes, AddUserIndex, AddVersion,
//!        CreateSessionTable, ExactKeys, InsertInstantDefaults,
//!    };
//!
//!    pub struct Migrator;
//!
//!    impl MigratorTrait for Migrator {
//!        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!            vec![
//!                // ... your migrations ...
//!                Box::new(CreateSessionTable::new("tower_sessions", "session")),
//!                // The per-user index (and a digest column unused since store 0.3).
//!                Box::new(AddUserIndex::new("tower_sessions", "session")),
//!                // Keys compared byte for byte on MySQL/MariaDB (a no-op elsewhere).
//!                Box::new(ExactKeys::new("tower_sessions", "session")),
//!                // Creation and last-save instants, listed values (store 0.3+).
//!                Box::new(AddSessionTimes::new("tower_sessions", "session")),
//!                // Those instants default to the insert's (SQLite, MySQL/MariaDB).
//!                Box::new(InsertInstantDefaults::new("tower_sessions", "session")),
//!                // The row version concurrent saves merge by (store 0.3+).
//!                Box::new(AddVersion::new("tower_sessions", "session")),
//!                // The long-lived ("remember me") marker (store 0.3+).
//!                Box::new(AddLongLived::new("tower_sessions", "session")),
//!                // Only with the store's `with_login_history`: the history table.
//!                Box::new(AddLoginHistory::new("tower_sessions", "session")),
//!            ]
//!        }
//!    }
//!    ```
//! 3. **The command line** (feature `cli`, every backend), from any directory:
//!    `cargo install tower-sessions-seaorm-migration --features cli`, then
//!    `DATABASE_URL=postgres://… tower-sessions-seaorm-migration up`. Its commands:
//!
//!    | command | what it does |
//!    |---|---|
//!    | `up [-n N]` | applies the pending migrations (all, or `N`), creating the table if missing |
//!    | `up --login-history` | the same, then creates the login history beside the table if missing (`AddLoginHistory`: the store's `with_login_history` needs it) |
//!    | `down [-n N]` | rolls back the last `N` applied migrations (1 by default); rolling back the first drops the table |
//!    | `status` | lists the migrations, applied or pending; changes nothing |
//!    | `reset` | rolls back every migration: drops the table and removes its history rows |
//!    | `refresh` | `reset`, then `up` |
//!
//!    It acts on the session table alone: its columns, indexes and triggers (and, on
//!    PostgreSQL, the read cache's eviction function), and its own rows of the history table.
//!    The application's tables, its `seaql_migrations` and other session tables' rows are
//!    never touched; a table of another kind under the session table's name is refused, not
//!    altered. SeaORM's `fresh` (which drops every table of the database), `init` and
//!    `generate` are not offered, and are refused with what to do instead. `--table` and
//!    `--schema` (PostgreSQL) name another table than `"tower_sessions"."session"`, as the
//!    store's `with_table_name` and `with_schema_name` do. It runs the same [`Runner`] as
//!    `migrate()`, so it records the same history (`<table>/<migration>` in
//!    `seaql_migrations_tower_sessions`, on PostgreSQL in the table's schema) and the two can
//!    be mixed.
//!
//! The table's column types depend on the connection's backend (PostgreSQL, SQLite, MySQL or
//! MariaDB); see [`CreateSessionTable`]. Only PostgreSQL has schemas: elsewhere the schema name
//! is ignored and the table is created in the connection's database.
//!
//! Every migration here is idempotent (`IF NOT EXISTS`, or a check of the catalog first), so
//! the paths can be mixed: a table created by one is left as it is by another.

use sea_orm_migration::prelude::*;

/// A migration's type, named `$name`, recorded as `$version`: `migration_name!` gives it its
/// name; `session_migration!` declares it too, on session table `"<schema>"."<table>"`, and with
/// `adds columns` runs the columns of its `added()` ([`added_columns`]).
macro_rules! migration_name {
    ($name:ident = $version:literal) => {
        impl MigrationName for $name {
            fn name(&self) -> &str {
                $version
            }
        }
    };
}

macro_rules! session_migration {
    ($(#[$doc:meta])* $name:ident = $version:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            schema: String,
            table: String,
        }

        impl $name {
            /// The migration for `"<schema>"."<table>"`.
            pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
                Self {
                    schema: schema.into(),
                    table: table.into(),
                }
            }
        }

        migration_name!($name = $version);
    };
    ($(#[$doc:meta])* $name:ident = $version:literal, adds columns) => {
        session_migration!($(#[$doc])* $name = $version);

        impl $name {
            /// The PostgreSQL statements: `IF NOT EXISTS` on every part.
            pub fn postgres_statements(&self) -> Vec<String> {
                self.added().postgres_statements()
            }
        }

        #[async_trait::async_trait]
        impl MigrationTrait for $name {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                self.added().up(manager).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                self.added().down(manager).await
            }
        }
    };
}

mod added_columns;
mod m20261125_000001_create_session_table;
mod m20261125_000002_add_user_index;
mod m20261201_000003_exact_keys;
mod m20261202_000004_add_session_times;
mod m20261203_000005_insert_instant_defaults;
mod m20261204_000006_add_version;
mod m20261205_000007_add_login_history;
mod m20261206_000008_add_long_lived;
mod names;
mod partitioned;
mod runner;
mod sql;

pub use m20261125_000001_create_session_table::CreateSessionTable;
pub use m20261125_000002_add_user_index::AddUserIndex;
pub use m20261201_000003_exact_keys::ExactKeys;
pub use m20261202_000004_add_session_times::AddSessionTimes;
pub use m20261203_000005_insert_instant_defaults::InsertInstantDefaults;
pub use m20261204_000006_add_version::AddVersion;
pub use m20261205_000007_add_login_history::{
    postgres_handle_sql, AddLoginHistory, HANDLE_CONTEXT, REMOVED_TRIGGER,
};
pub use m20261206_000008_add_long_lived::AddLongLived;
pub use names::{
    check_names, created_at_index_name, expiry_index_name, partition_name, user_key_index_name,
    NameError, MAX_NAME_LEN,
};
pub use partitioned::{CreatePartitionedSessionTable, MAX_HASH_PARTITIONS};
pub use runner::{RunError, Runner, Status, TableState, Undone};
pub use sea_orm_migration;
pub use sql::{qualified, quote};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

/// The default schema of the session table.
pub const DEFAULT_SCHEMA: &str = "tower_sessions";
/// The default name of the session table.
pub const DEFAULT_TABLE: &str = "session";
/// The history table the store's migrations are recorded in, apart from the application's
/// `seaql_migrations`.
pub const HISTORY_TABLE: &str = "seaql_migrations_tower_sessions";

/// Every migration of the session table `"<schema>"."<table>"`, oldest first.
///
/// The names are not validated here; they are quoted in every statement. The store validates
/// them before it gets here.
pub fn migrations(schema: &str, table: &str) -> Vec<Box<dyn MigrationTrait>> {
    migrations_with_partitions(schema, table, None)
}

/// Every migration of the session table, oldest first, creating it hash-partitioned by id into
/// `hash_partitions` partitions when given (PostgreSQL; see [`CreatePartitionedSessionTable`]).
pub fn migrations_with_partitions(
    schema: &str,
    table: &str,
    hash_partitions: Option<u16>,
) -> Vec<Box<dyn MigrationTrait>> {
    let create: Box<dyn MigrationTrait> = match hash_partitions {
        Some(partitions) => Box::new(CreatePartitionedSessionTable::new(
            schema, table, partitions,
        )),
        None => Box::new(CreateSessionTable::new(schema, table)),
    };
    vec![
        create,
        Box::new(AddUserIndex::new(schema, table)),
        Box::new(ExactKeys::new(schema, table)),
        Box::new(AddSessionTimes::new(schema, table)),
        Box::new(InsertInstantDefaults::new(schema, table)),
        Box::new(AddVersion::new(schema, table)),
        Box::new(AddLongLived::new(schema, table)),
    ]
}

/// sea-orm-migration's static migrator for the default table, `"tower_sessions"."session"`,
/// with its history in `seaql_migrations_tower_sessions`: the steps the CLI runs for that
/// table, for a program of your own.
///
/// Each step is recorded as `session/<migration>`, the name `migrate()` records it under (one
/// schema can hold several session tables). But sea-orm-migration runs it: on PostgreSQL its
/// history is in the connection's current schema, not beside the table where `migrate()` and
/// the CLI keep it, and it neither retries a race lost to a concurrent run nor refuses another
/// table under the session table's name. [`Runner`] does all that, for any table.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations(DEFAULT_SCHEMA, DEFAULT_TABLE)
            .into_iter()
            .map(|step| {
                let name = history_version(DEFAULT_TABLE, step.name());
                Box::new(Recorded { name, step }) as Box<dyn MigrationTrait>
            })
            .collect()
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new(HISTORY_TABLE).into_iden()
    }
}

/// A step recorded in the history as `<table>/<migration>`: the name the store's `migrate()`
/// gives it.
struct Recorded {
    name: String,
    step: Box<dyn MigrationTrait>,
}

/// The history's name for migration `migration` of `table`.
pub fn history_version(table: &str, migration: &str) -> String {
    format!("{table}/{migration}")
}

impl MigrationName for Recorded {
    fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Recorded {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.step.up(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.step.down(manager).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_created_in_each_backends_types() {
        use sea_orm_migration::sea_orm::DbBackend;
        let migration = CreateSessionTable::new("tower_sessions", "session");
        let sql = |backend| migration.create_statements(backend).unwrap();
        assert_eq!(
            sql(DbBackend::Sqlite),
            [
                r#"CREATE TABLE IF NOT EXISTS "session" ( "id" text NOT NULL PRIMARY KEY, "data" blob NOT NULL, "expiry_date" integer NOT NULL )"#,
                r#"CREATE INDEX IF NOT EXISTS "session_expiry_date_idx" ON "session" ("expiry_date")"#,
            ]
        );
        assert_eq!(
            sql(DbBackend::MySql),
            ["CREATE TABLE IF NOT EXISTS `session` ( `id` varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, `data` longblob NOT NULL, `expiry_date` datetime(6) NOT NULL, KEY `session_expiry_date_idx` (`expiry_date`) )"]
        );
    }

    #[test]
    fn the_user_index_is_added_if_missing_on_postgres() {
        let statements = AddUserIndex::new("tower_sessions", "session").postgres_statements();
        let [columns, index] = statements.as_slice() else {
            panic!("two statements: {statements:?}")
        };
        assert_eq!(
            columns,
            r#"ALTER TABLE "tower_sessions"."session" ADD COLUMN IF NOT EXISTS "user_key" text, ADD COLUMN IF NOT EXISTS "data_digest" bytea"#
        );
        assert_eq!(
            index,
            r#"CREATE INDEX IF NOT EXISTS "session_user_key_idx" ON "tower_sessions"."session" ("user_key") WHERE "user_key" IS NOT NULL"#
        );
    }

    #[test]
    fn the_session_times_are_added_if_missing_on_postgres() {
        let statements = AddSessionTimes::new("app", "web").postgres_statements();
        let [columns, index] = statements.as_slice() else {
            panic!("two statements: {statements:?}")
        };
        assert_eq!(
            columns,
            r#"ALTER TABLE "app"."web" ADD COLUMN IF NOT EXISTS "created_at" timestamptz NOT NULL DEFAULT now(), ADD COLUMN IF NOT EXISTS "updated_at" timestamptz NOT NULL DEFAULT now(), ADD COLUMN IF NOT EXISTS "listed_values" text"#
        );
        assert_eq!(
            index,
            r#"CREATE INDEX IF NOT EXISTS "web_created_at_idx" ON "app"."web" ("created_at")"#
        );
    }
}
