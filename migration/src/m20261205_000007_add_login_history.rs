use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::sql::{execute_all, qualified, quote};

session_migration! {
    /// The login history (the store's opt-in `with_login_history`): the append-only table
    /// `"<schema>"."<table>_history"` beside the session table, its indexes and, on PostgreSQL,
    /// the trigger that logs a `DELETE` the store did not make. The store's `migrate()` runs
    /// the same statements ([`statements`](Self::statements)) when the store keeps the history;
    /// an application's own `Migrator` adds this migration after
    /// [`AddVersion`](crate::AddVersion) to create it with the rest of its schema, and the
    /// command line's `up --login-history` runs it too.
    ///
    /// | backend | `seq` | `user_key`, `kind`, `handle` | `at` | `listed_values` | also |
    /// |---|---|---|---|---|---|
    /// | PostgreSQL | `bigint` identity | `text` | `timestamptz` | `text` | `xid bigint DEFAULT txid_current()` (indexed): what the events read |
    /// | SQLite | `integer` autoincrement | `text` | `integer` (µs since the epoch) | `text` | |
    /// | MySQL, MariaDB | `bigint AUTO_INCREMENT` | `varbinary` | `datetime(6)` (UTC) | `longtext` utf8mb4 | InnoDB |
    ///
    /// Indexes: `(user_key, at DESC, seq DESC)` for a user's history, `(at)` for the retention.
    /// On PostgreSQL a statement-level `AFTER DELETE` trigger on the session table and on each of
    /// its hash partitions (`tower_sessions_history_removed`, calling
    /// `"<schema>"."<table>_history_removed"()`) logs as `removed` every row with a user that a
    /// `DELETE` ended without logging it itself. An entry names its session by its handle,
    /// never its id.
    ///
    /// Idempotent (`IF NOT EXISTS`, catalog checks; the trigger installed under a
    /// transaction-scoped advisory lock), so racing replicas are fine; on PostgreSQL a history
    /// table from before the events gets its `xid` column. `down` drops the history table (and
    /// on PostgreSQL the trigger function, with its triggers): the history's entries are lost.
    AddLoginHistory = "m20261205_000007_add_login_history"
}

/// The trigger the PostgreSQL statements install on the session table and its partitions.
pub const REMOVED_TRIGGER: &str = "tower_sessions_history_removed";

/// What the store's session handles hash before the key (`SessionHandle::of_key`): a history
/// entry names its session by the first 16 bytes of SHA-256(context ‖ key), in hex.
pub const HANDLE_CONTEXT: &[u8] = b"tower-sessions-seaorm-store/session-handle/v1\0";

/// PostgreSQL's entries hold their writing transaction's id.
const XID_COLUMN: &str = ", \"xid\" bigint NOT NULL DEFAULT txid_current()";

/// The handle of the session stored under the key `key` (a column expression), in PostgreSQL's
/// SQL: as `SessionHandle::of_key` computes it.
pub fn postgres_handle_sql(key: &str) -> String {
    let context: String = HANDLE_CONTEXT.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "left(encode(sha256(decode('{context}', 'hex') || convert_to({key}, 'UTF8')), 'hex'), 32)"
    )
}

impl AddLoginHistory {
    /// The history table's name, quoted and (on PostgreSQL) in the session table's schema.
    pub fn history_table(&self, backend: DbBackend) -> String {
        qualified(backend, &self.schema, &format!("{}_history", self.table))
    }

    fn index(&self, backend: DbBackend, suffix: &str) -> String {
        quote(backend, &format!("{}_history_{suffix}", self.table))
    }

    /// The statements that create the history on `backend`, each idempotent.
    pub fn statements(&self, backend: DbBackend) -> Vec<String> {
        let history = self.history_table(backend);
        if backend == DbBackend::MySql {
            return vec![format!(
                "CREATE TABLE IF NOT EXISTS {history} (`seq` bigint NOT NULL AUTO_INCREMENT \
                 PRIMARY KEY, `user_key` varbinary(255) NOT NULL, `kind` varbinary(16) NOT NULL, \
                 `at` datetime(6) NOT NULL, `handle` varbinary(64) NOT NULL, \
                 `listed_values` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, \
                 KEY {} (`user_key`, `at` DESC, `seq` DESC), KEY {} (`at`)) ENGINE=InnoDB",
                self.index(backend, "user_idx"),
                self.index(backend, "at_idx"),
            )];
        }
        // SQLite's instants are integer microseconds since the epoch, as the session
        // table's.
        let (seq, at, xid) = if backend == DbBackend::Postgres {
            (
                "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "timestamptz",
                XID_COLUMN,
            )
        } else {
            ("integer PRIMARY KEY AUTOINCREMENT", "integer", "")
        };
        let mut sql = vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {history} (\"seq\" {seq}, \"user_key\" text \
                 NOT NULL, \"kind\" text NOT NULL, \"at\" {at} NOT NULL, \"handle\" text \
                 NOT NULL, \"listed_values\" text NULL{xid})"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {history} (\"user_key\", \"at\" DESC, \
                 \"seq\" DESC)",
                self.index(backend, "user_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {history} (\"at\")",
                self.index(backend, "at_idx")
            ),
        ];
        if backend == DbBackend::Postgres {
            // Added where missing (a table created before the events), under the lock
            // only then.
            let regclass = history.replace('\'', "''");
            sql.push(format!(
                "DO $xid$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
                 WHERE attrelid = to_regclass('{regclass}') AND attname = 'xid' \
                 AND NOT attisdropped) THEN ALTER TABLE {history} ADD COLUMN IF NOT \
                 EXISTS{}; END IF; END $xid$",
                XID_COLUMN.trim_start_matches(',')
            ));
            sql.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {history} (\"xid\")",
                self.index(backend, "xid_idx")
            ));
            sql.push(self.removed_trigger_sql());
        }
        sql
    }

    /// The trigger function's name, quoted, in the session table's schema.
    fn removed_function(&self) -> String {
        qualified(
            DbBackend::Postgres,
            &self.schema,
            &format!("{}_history_removed", self.table),
        )
    }

    /// PostgreSQL: the trigger that logs a `DELETE` the store did not make, as `removed`. Each
    /// `DELETE` statement on the table (and, when hash-partitioned, on any of its partitions:
    /// PostgreSQL fires a parent's statement-level triggers only for statements on the parent)
    /// logs every row it deleted that had a user and that the statement did not log itself:
    /// the store's own deletes log their rows in the same statement, with their reason, and the
    /// trigger (which runs at the statement's end and sees those entries) reads the handles its
    /// transaction logged once, on the `xid` index, into a hash (`NOT IN`: `handle` is never
    /// null) and logs the rows not among them: linear in the rows deleted (a correlated `NOT
    /// EXISTS` probed every entry of the transaction per row, twice the cost on a cleanup
    /// batch). A `TRUNCATE` names no rows and logs nothing.
    ///
    /// Installed under a transaction-scoped advisory lock (replicas migrating at once), the
    /// function replaced only when its text differs and the triggers created only where
    /// missing, so once installed a migration takes no lock on the session table.
    fn removed_trigger_sql(&self) -> String {
        let backend = DbBackend::Postgres;
        let target = qualified(backend, &self.schema, &self.table);
        let history = self.history_table(backend);
        let function = self.removed_function();
        let trigger = quote(backend, REMOVED_TRIGGER);
        let gone = postgres_handle_sql("g.\"id\"");
        let body = format!(
            "BEGIN INSERT INTO {history} (\"user_key\", \"kind\", \"at\", \"handle\", \
             \"listed_values\") SELECT g.\"user_key\", 'removed', statement_timestamp(), {gone}, \
             g.\"listed_values\" FROM \"gone\" AS g WHERE g.\"user_key\" IS NOT NULL AND {gone} NOT IN \
             (SELECT h.\"handle\" FROM {history} AS h WHERE h.\"xid\" = txid_current()); \
             RETURN NULL; END",
        );
        // Literals inside the DO block's `EXECUTE format(…)`: quotes doubled.
        let literal = |text: &str| text.replace('\'', "''");
        format!(
            "DO $removed$ DECLARE part regclass; BEGIN \
             PERFORM pg_advisory_xact_lock(hashtext('{lock}')); \
             IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE oid = \
             to_regprocedure('{function_literal}()') AND prosrc = $body${body}$body$) THEN \
             CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql \
             AS $body${body}$body$; END IF; \
             FOR part IN SELECT '{target_literal}'::regclass UNION SELECT relid FROM \
             pg_catalog.pg_partition_tree('{target_literal}'::regclass) LOOP \
             CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = part \
             AND t.tgname = '{REMOVED_TRIGGER}' AND t.tgfoid = to_regprocedure('{function_literal}()')); \
             EXECUTE format('DROP TRIGGER IF EXISTS {trigger} ON %s', part); \
             EXECUTE format('CREATE TRIGGER {trigger} AFTER DELETE ON %s REFERENCING OLD TABLE AS \
             \"gone\" FOR EACH STATEMENT EXECUTE FUNCTION {function_in_format}()', part); \
             END LOOP; END $removed$",
            lock = literal(&format!("{history}/removed")),
            function_literal = literal(&function),
            target_literal = literal(&target),
            function_in_format = literal(&function).replace('%', "%%"),
        )
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddLoginHistory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        execute_all(conn, self.statements(conn.get_database_backend())).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = conn.get_database_backend();
        let mut sql = vec![format!(
            "DROP TABLE IF EXISTS {}",
            self.history_table(backend)
        )];
        if backend == DbBackend::Postgres {
            // Its triggers go with it.
            sql.push(format!(
                "DROP FUNCTION IF EXISTS {}() CASCADE",
                self.removed_function()
            ));
        }
        execute_all(conn, sql).await
    }
}
