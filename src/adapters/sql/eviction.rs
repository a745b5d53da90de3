//! The read cache's evictions on PostgreSQL: the trigger that announces every change of the
//! session table with `pg_notify`, the channel it announces on, and the listener's heartbeat.
//!
//! Announcing from the database itself means no write goes unannounced (this store's, another
//! replica's, a manual `DELETE`, another tool's) and each store operation stays one statement.
//! The triggers are statement-level with a transition table, so a cleanup batch of 10,000 rows
//! runs the function once; `pg_notify` folds duplicate payloads within a transaction. Inserts
//! announce nothing: a new row has no cached entry.
//!
//! Payloads: the row's `id` column (the session id's text, or its SHA-256 with hashed ids:
//! never an id then) and `*` for a `TRUNCATE` (evict everything). Heartbeats, on each
//! listener's own channel, start with `~`, a character no stored key holds, and end with a
//! fingerprint of the catalog rows the announcements depend on ([`HEARTBEAT_SQL`]). Any
//! notification on [`CLEAR_CHANNEL`] clears every listening cache of the database.

use sha2::{Digest, Sha256};

use super::{Dialect, SessionTable};

/// The names of the triggers on the session table (trigger names are per table; the
/// `installed!` check below spells them out too).
#[cfg(any(test, feature = "migration"))]
pub(crate) const TRIGGER_NAMES: [&str; 3] = [
    "tower_sessions_evict_on_update",
    "tower_sessions_evict_on_delete",
    "tower_sessions_evict_on_truncate",
];

/// What a `TRUNCATE` announces: every entry goes.
pub(crate) const EVICT_ALL: &str = "*";

/// The first character of a heartbeat's payload.
pub(crate) const HEARTBEAT_MARK: char = '~';

/// The channel every listening cache also listens on, whatever its table: any notification on
/// it clears the cache. For operators after surgery on a session table, and what
/// `clear_cache_everywhere()` sends: [`CLEAR_SQL`].
pub(crate) const CLEAR_CHANNEL: &str = "tower_sessions_clear_caches";

/// Clears every listening cache of the database, on every replica.
pub(crate) const CLEAR_SQL: &str = "NOTIFY tower_sessions_clear_caches";

/// How many characters a listener's heartbeat channel adds to the table's channel: `_` and 16
/// hex digits (see `pg_listener`). The heartbeat statement strips them to find the table's.
#[cfg(test)]
pub(crate) const HEARTBEAT_CHANNEL_SUFFIX: usize = 17;

/// A stable 64-bit digest of the table's qualified name, in hex: channel and function names
/// must fit 63 bytes whatever the schema and table are called.
fn table_digest(table: &SessionTable) -> String {
    let digest = Sha256::digest(format!("{}.{}", table.schema(), table.table()).as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The channel the table's changes are announced on: `tower_sessions_<16 hex digits>`.
pub(crate) fn channel(table: &SessionTable) -> String {
    format!("tower_sessions_{}", table_digest(table))
}

fn quote(name: &str) -> String {
    super::identifier::quote(Dialect::Postgres, name)
}

/// The longest `id` the triggers announce. Stored keys are 22 characters (an id) or 64 (its
/// hash); a longer id, written by another tool, is no session a cache can hold, and announcing
/// it could fail the statement that touched it (`pg_notify` takes 8,000 bytes at most): a
/// cleanup batch would then fail on it for ever. (Spelled out in [`FUNCTION_TEMPLATE`].)
#[cfg(test)]
const LONGEST_ANNOUNCED_ID: usize = 255;

/// The body of the announcing function, with `{log}` standing for the table's eviction log
/// ([`log_table`]): [`EVICT_ALL`], [`HEARTBEAT_MARK`] and [`LONGEST_ANNOUNCED_ID`] spelled
/// out, which a test checks.
///
/// A save by a store with a listening cache sets [`QUIET_SETTING`](super::update::QUIET_SETTING) for its own
/// transaction (inside its one statement): the trigger then appends the changed keys to the log
/// instead of announcing them, and every listener reads the log every few milliseconds
/// ([`log_read_sql`]). So such a save takes no part in PostgreSQL's notify lock, which a
/// notifying transaction holds through its commit's WAL flush (serialising every notifying
/// commit), and wakes no listening backend. Every other write (a delete, cleanup, another
/// tool's `UPDATE`) is announced here, within its transaction, as before.
const FUNCTION_TEMPLATE: &str = r#"
  BEGIN
    IF TG_OP = 'TRUNCATE' THEN
      PERFORM pg_notify(TG_ARGV[0], '*');
    ELSIF TG_OP = 'UPDATE' AND current_setting('tower_sessions.quiet', true) = 'on' THEN
      -- A save by a store with a listening cache: logged in its own transaction; every
      -- listener reads the log every few milliseconds.
      INSERT INTO {log} ("key") SELECT changed."id" FROM changed
        WHERE octet_length(changed."id") <= 255
          AND left(changed."id", 1) NOT IN ('~', '*');
    ELSE
      -- Only ids that can be stored keys: never too long for a notification, never taken for
      -- a heartbeat or for "evict everything".
      PERFORM pg_notify(TG_ARGV[0], changed."id") FROM changed
        WHERE octet_length(changed."id") <= 255
          AND left(changed."id", 1) NOT IN ('~', '*');
    END IF;
    RETURN NULL;
  END
  "#;

/// The announcing function's text for `table`.
pub(crate) fn function_body(table: &SessionTable) -> String {
    FUNCTION_TEMPLATE.replace("{log}", &log_table(table))
}

/// The table's eviction log, qualified and quoted: `"<schema>"."tower_sessions_log_<16 hex
/// digits>"`, an `UNLOGGED` table of `(xid bigint, key text)` that the quiet saves' triggers
/// append to (`xid`: the writing transaction's, `txid_current()`). Unlogged, so appending
/// writes no WAL: a crash or a failover empties it, and also ends every listener's connection,
/// which clears every cache.
pub(crate) fn log_table(table: &SessionTable) -> String {
    format!(
        "{}.{}",
        quote(table.schema()),
        quote(&format!("tower_sessions_log_{}", table_digest(table)))
    )
}

/// What a listener reads from the log at each poll: the keys written by the transactions its
/// previous read's snapshot (`$1`, as text) could not see, and this read's snapshot and
/// horizon (the oldest transaction still running, `txid_snapshot_xmin`, for pruning). Every
/// row this read sees was committed by a transaction visible in its snapshot; one the previous
/// snapshot could not see has not been read before, and one it could see has: so each
/// committed save is read exactly once, whatever order the saves commit in, and a long
/// transaction left open elsewhere makes no poll read again what an earlier one read. The
/// range on `xid` (from the previous snapshot's oldest running transaction) uses the log's
/// index.
pub(crate) fn log_read_sql(table: &SessionTable) -> String {
    format!(
        "SELECT now.s::text AS snapshot, txid_snapshot_xmin(now.s) AS horizon, \
         ARRAY(SELECT DISTINCT \"key\" FROM {} \
           WHERE \"xid\" >= txid_snapshot_xmin($1::txid_snapshot) \
             AND NOT txid_visible_in_snapshot(\"xid\", $1::txid_snapshot)) AS keys \
         FROM (SELECT txid_current_snapshot() AS s) AS now",
        log_table(table)
    )
}

/// The snapshot a listener starts from (see [`log_read_sql`]), as text.
pub(crate) const SNAPSHOT_SQL: &str = super::dialect::POSTGRES_SNAPSHOT_SQL;

/// Removes the log rows of transactions older than `$1`, a horizon read long enough ago that
/// every listener has read past it.
pub(crate) fn log_prune_sql(table: &SessionTable) -> String {
    format!("DELETE FROM {} WHERE \"xid\" < $1", log_table(table))
}

/// Whether the trigger row `t` announces as this release installs it: one of the three
/// ([`TRIGGER_NAMES`]) with its event (`tgtype`: 16 `AFTER UPDATE`, 8 `AFTER DELETE`, 32 `AFTER
/// TRUNCATE`, each `FOR EACH STATEMENT`), enabled to fire always, with no `WHEN` condition and
/// no column list (either would let statements by), its arguments being the channel (`$args`:
/// an SQL expression of the `tgargs` bytes, the channel and a NUL). A macro, so the statements
/// below are `&'static str`.
macro_rules! announces {
    ($args:literal) => {
        concat!(
            "t.tgenabled = 'A' AND t.tgqual IS NULL AND t.tgattr = ''::int2vector \
             AND t.tgtype = CASE t.tgname WHEN 'tower_sessions_evict_on_update' THEN 16 \
               WHEN 'tower_sessions_evict_on_delete' THEN 8 \
               WHEN 'tower_sessions_evict_on_truncate' THEN 32 END \
             AND t.tgargs = ",
            $args
        )
    };
}

/// One statement that installs the announcing function and the triggers wherever they are
/// missing, taking a transaction-scoped advisory lock first so that replicas migrating at once
/// do not race on the catalog. Idempotent: the function is replaced only when its text differs
/// (so a newer version reaches an installed table, and a role that does not own an up-to-date
/// function can still migrate), and the triggers are created only on a table that lacks them,
/// so once installed it takes no lock on the session table.
///
/// A hash-partitioned table gets them on every partition too: PostgreSQL fires the parent's
/// statement-level triggers only for statements on the parent, and a `DELETE` or `TRUNCATE`
/// aimed at one partition must be announced as well.
#[cfg(feature = "migration")]
pub(crate) fn install_sql(table: &SessionTable) -> String {
    let schema = quote(table.schema());
    let target = format!("{schema}.{}", quote(table.table()));
    let function = format!(
        "{schema}.{}",
        quote(&format!("tower_sessions_evict_{}", table_digest(table)))
    );
    let body = function_body(table);
    let log = log_table(table);
    let log_index = quote(&format!("tower_sessions_log_{}_xid", table_digest(table)));
    let channel = channel(table);
    let [on_update, on_delete, on_truncate] = TRIGGER_NAMES.map(quote);
    let names = TRIGGER_NAMES.map(|name| format!("'{name}'")).join(", ");
    let count = TRIGGER_NAMES.len();
    let announces = announces!("convert_to(channel, 'UTF8') || '\\x00'::bytea");
    format!(
        r#"DO $install$
DECLARE
  part regclass;
  channel text := '{channel}';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(channel));
  IF to_regclass('{log}') IS NULL THEN
    CREATE UNLOGGED TABLE {log} ("xid" bigint NOT NULL DEFAULT txid_current(),
      "key" text NOT NULL);
    CREATE INDEX {log_index} ON {log} ("xid");
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc
      WHERE oid = to_regprocedure('{function}()') AND prosrc = $evict${body}$evict$) THEN
    CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
      AS $evict${body}$evict$;
  END IF;
  -- The table, and its partitions when it has some (none for a plain table).
  FOR part IN SELECT '{target}'::regclass
      UNION SELECT relid FROM pg_catalog.pg_partition_tree('{target}'::regclass) LOOP
    -- Installed already, as this release installs them: nothing to lock this table for.
    CONTINUE WHEN (SELECT count(*) FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = part
      AND t.tgname IN ({names}) AND t.tgfoid = to_regprocedure('{function}()')
      AND {announces}) = {count};
    EXECUTE format('DROP TRIGGER IF EXISTS {on_update} ON %s', part);
    EXECUTE format('CREATE TRIGGER {on_update} AFTER UPDATE ON %s '
      'REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {function}(%L)',
      part, '{channel}');
    EXECUTE format('DROP TRIGGER IF EXISTS {on_delete} ON %s', part);
    EXECUTE format('CREATE TRIGGER {on_delete} AFTER DELETE ON %s '
      'REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {function}(%L)',
      part, '{channel}');
    EXECUTE format('DROP TRIGGER IF EXISTS {on_truncate} ON %s', part);
    EXECUTE format('CREATE TRIGGER {on_truncate} AFTER TRUNCATE ON %s '
      'FOR EACH STATEMENT EXECUTE FUNCTION {function}(%L)', part, '{channel}');
    -- Also in `session_replication_role = replica` (logical replication's apply workers,
    -- bulk loads that skip triggers): every write evicts.
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER {on_update}', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER {on_delete}', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER {on_truncate}', part);
  END LOOP;
END
$install$"#
    )
}

/// The eviction triggers' state, as one row: `$1` is the table's qualified, quoted name, `$2`
/// a listener's heartbeat channel (the table's channel and [`HEARTBEAT_CHANNEL_SUFFIX`]
/// characters).
///
/// - `relations`: the table and its partitions (0 when there is no such table);
/// - `announcing`: the triggers on them that announce as this release installs them
///   ([`announces!`]) through a function whose text is this release's (`$body`, [`function_body`]);
///   every trigger is in place when it is 3 × `relations`;
/// - `fingerprint`: a SHA-256 of every catalog row the announcements depend on, as their OIDs
///   and row versions (`xmin`): the table's and its partitions' `pg_class` rows, the
///   `pg_inherits` rows of their partitions (a `DETACH … CONCURRENTLY` first marks one), the
///   eviction triggers' rows (with `tgenabled`) and the functions they call. A change that
///   could hide a write from the triggers (a trigger disabled, even for one transaction and
///   enabled again; the table or a partition replaced, attached, detached or dropped; the
///   function replaced) writes a new version of one of those rows or removes it, so the
///   fingerprint differs from then on: a new row version has a new `xmin`, never an earlier
///   one. A few harmless changes move it too (a `GRANT`, an `ALTER TABLE … SET`, a `VACUUM
///   FULL`): the caches are then cleared for nothing, once. Statistics and vacuum update
///   `pg_class` in place and do not.
///
/// Every catalog read here sees at least what was committed when the statement started, so a
/// heartbeat sent after a change carries the changed fingerprint; DDL racing the statement may
/// show in part of it, which only changes it sooner. The lookups go through the catalogs'
/// indexes (`= ANY` of the relations' OIDs), whatever the number of tables in the database.
macro_rules! trigger_state {
    ($body:literal) => {
        concat!(
            "(WITH tree AS (\
               SELECT ARRAY(SELECT to_regclass($1)::oid UNION SELECT relid::oid \
                   FROM pg_catalog.pg_partition_tree(to_regclass($1))) AS oids, \
                 convert_to(left($2::text, -17), 'UTF8') || '\\x00'::bytea AS args\
             ), part AS (\
               SELECT c.oid, c.xmin FROM tree, pg_catalog.pg_class AS c \
               WHERE c.oid = ANY (tree.oids)\
             ), evicting AS (\
               SELECT t.oid, t.xmin, t.tgenabled, t.tgfoid, ",
            announces!("tree.args"),
            " AS announces \
               FROM tree, pg_catalog.pg_trigger AS t \
               WHERE t.tgrelid = ANY (tree.oids) \
                 AND t.tgname IN ('tower_sessions_evict_on_update', \
                   'tower_sessions_evict_on_delete', 'tower_sessions_evict_on_truncate')\
             ), function AS (\
               SELECT p.oid, p.xmin, p.prosrc = ",
            $body,
            " AS ours \
               FROM pg_catalog.pg_proc AS p \
               WHERE p.oid = ANY (ARRAY(SELECT DISTINCT tgfoid FROM evicting))\
             ) \
             SELECT (SELECT count(*) FROM part) AS relations, \
               (SELECT count(*) FROM evicting JOIN function ON function.oid = evicting.tgfoid \
                 WHERE evicting.announces AND function.ours) AS announcing, \
               encode(sha256(convert_to(concat(\
                 (SELECT string_agg(concat_ws('.', oid, xmin), ',' ORDER BY oid) FROM part), \
                 '|', \
                 (SELECT string_agg(concat_ws('.', i.inhrelid, i.xmin, i.inhdetachpending), \
                     ',' ORDER BY i.inhrelid) \
                   FROM tree, pg_catalog.pg_inherits AS i WHERE i.inhparent = ANY (tree.oids)), \
                 '|', \
                 (SELECT string_agg(concat_ws('.', oid, xmin, tgenabled, tgfoid), ',' \
                   ORDER BY oid) FROM evicting), \
                 '|', \
                 (SELECT string_agg(concat_ws('.', oid, xmin), ',' ORDER BY oid) FROM function)\
               ), 'UTF8')), 'hex') AS fingerprint\
             ) AS state"
        )
    };
}

/// Whether every trigger is in place (`$1`, `$2` as in [`trigger_state!`], `$3` the
/// function's text, [`function_body`]): one boolean.
pub(crate) const INSTALLED_SQL: &str = concat!(
    "SELECT state.relations > 0 AND state.announcing = 3 * state.relations FROM ",
    trigger_state!("$3::text")
);

/// A heartbeat, sent through the store's own connections: `pg_notify($2, $3 || ':' ||
/// fingerprint)` (see [`trigger_state!`]; `$4` is the function's text, [`function_body`]), only while every trigger is in place; returns a row
/// when it was sent. Sent there, a heartbeat that comes back proves that the listener hears the
/// store's database (not another one its URL names by mistake) and that the triggers are in
/// place there: a trigger dropped or disabled, or a function not this release's, stops the
/// proofs, so the cache stops serving within its bound. Its fingerprint tells the listener
/// whether anything could have hidden a write since the previous heartbeat.
pub(crate) const HEARTBEAT_SQL: &str = concat!(
    "SELECT pg_notify($2::text, $3::text || ':' || state.fingerprint) FROM ",
    trigger_state!("$4::text"),
    " WHERE state.relations > 0 AND state.announcing = 3 * state.relations"
);

/// The table's qualified, quoted name, as `to_regclass` takes it.
pub(crate) fn regclass(table: &SessionTable) -> String {
    format!("{}.{}", quote(table.schema()), quote(table.table()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_check_names_every_trigger() {
        for name in TRIGGER_NAMES {
            assert!(INSTALLED_SQL.contains(&format!("'{name}'")), "{name}");
            assert!(HEARTBEAT_SQL.contains(&format!("'{name}'")), "{name}");
        }
        let count = format!("= {} * state.relations", TRIGGER_NAMES.len());
        assert!(INSTALLED_SQL.contains(&count));
        assert!(HEARTBEAT_SQL.contains(&count));
        let table_channel = format!("left($2::text, -{HEARTBEAT_CHANNEL_SUFFIX})");
        assert!(HEARTBEAT_SQL.contains(&table_channel));
        assert!(HEARTBEAT_SQL.contains("p.prosrc = $4::text"));
        assert!(INSTALLED_SQL.contains("p.prosrc = $3::text"));
    }

    /// The body spells out the constants, and names the table's own log.
    #[test]
    fn the_function_body_spells_out_the_constants_and_its_log() {
        let body = function_body(&SessionTable::default());
        let filter = format!(
            "octet_length(changed.\"id\") <= {LONGEST_ANNOUNCED_ID}\n          \
             AND left(changed.\"id\", 1) NOT IN ('{HEARTBEAT_MARK}', '{EVICT_ALL}')"
        );
        assert_eq!(body.matches(&filter).count(), 2, "{body}");
        assert!(body.contains(&format!("pg_notify(TG_ARGV[0], '{EVICT_ALL}')")));
        let quiet = super::super::update::QUIET_SETTING;
        assert!(body.contains(&format!("current_setting('{quiet}', true) = 'on'")));
        assert!(body.contains(&format!(
            "INSERT INTO {} (\"key\")",
            log_table(&SessionTable::default())
        )));
        let other = SessionTable::default().with_table("other").unwrap();
        assert_ne!(log_table(&other), log_table(&SessionTable::default()));
    }

    #[test]
    fn channels_are_short_stable_and_distinct_per_table() {
        let a = SessionTable::default();
        let b = SessionTable::default().with_table("other").unwrap();
        let c = SessionTable::default().with_schema("other").unwrap();
        assert_eq!(channel(&a), channel(&SessionTable::default()));
        assert_ne!(channel(&a), channel(&b));
        assert_ne!(channel(&a), channel(&c));
        let long = SessionTable::default()
            .with_schema(&"s".repeat(63))
            .unwrap()
            .with_table(&"t".repeat(63))
            .unwrap();
        assert!(channel(&long).len() <= 63);
        #[cfg(feature = "migration")]
        assert!(install_sql(&long).contains(&channel(&long)));
    }
}
