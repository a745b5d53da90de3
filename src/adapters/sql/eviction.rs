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
//! listener's own channel, start with `~`, a character no stored key holds.

use sha2::{Digest, Sha256};

use super::SessionTable;

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
    // Names are validated identifiers (letters, digits, underscores): quoting cannot be broken.
    format!("\"{name}\"")
}

/// The longest `id` the triggers announce. Stored keys are 22 characters (an id) or 64 (its
/// hash); a longer id, written by another tool, is no session a cache can hold, and announcing
/// it could fail the statement that touched it (`pg_notify` takes 8,000 bytes at most): a
/// cleanup batch would then fail on it for ever.
#[cfg(any(test, feature = "migration"))]
const LONGEST_ANNOUNCED_ID: usize = 255;

/// The body of the announcing function.
#[cfg(any(test, feature = "migration"))]
fn function_body() -> String {
    format!(
        r#"
  BEGIN
    IF TG_OP = 'TRUNCATE' THEN
      PERFORM pg_notify(TG_ARGV[0], '{EVICT_ALL}');
    ELSE
      -- Only ids that can be stored keys: never too long for a notification, never taken for
      -- a heartbeat or for "evict everything".
      PERFORM pg_notify(TG_ARGV[0], changed."id") FROM changed
        WHERE octet_length(changed."id") <= {LONGEST_ANNOUNCED_ID}
          AND left(changed."id", 1) NOT IN ('{HEARTBEAT_MARK}', '{EVICT_ALL}');
    END IF;
    RETURN NULL;
  END
  "#
    )
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
    let body = function_body();
    let channel = channel(table);
    let [on_update, on_delete, on_truncate] = TRIGGER_NAMES.map(quote);
    let names = TRIGGER_NAMES.map(|name| format!("'{name}'")).join(", ");
    let count = TRIGGER_NAMES.len();
    format!(
        r#"DO $install$
DECLARE
  part regclass;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('{channel}'));
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc
      WHERE oid = to_regprocedure('{function}()') AND prosrc = $evict${body}$evict$) THEN
    CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
      AS $evict${body}$evict$;
  END IF;
  -- The table, and its partitions when it has some (none for a plain table).
  FOR part IN SELECT '{target}'::regclass
      UNION SELECT relid FROM pg_catalog.pg_partition_tree('{target}'::regclass) LOOP
    -- Installed already: nothing to lock this table for.
    CONTINUE WHEN (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = part
      AND tgname IN ({names}) AND tgenabled = 'A') = {count};
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

/// Whether the triggers are all in place, `$1` being the table's qualified, quoted name: true
/// when the table exists and it and each of its partitions have all three triggers
/// ([`TRIGGER_NAMES`]), enabled to fire always. (A macro, so the statements below are
/// `&'static str`.)
macro_rules! installed {
    () => {
        "to_regclass($1) IS NOT NULL AND NOT EXISTS (SELECT 1 \
         FROM (SELECT to_regclass($1) AS relid \
         UNION SELECT relid FROM pg_catalog.pg_partition_tree(to_regclass($1))) AS part \
         WHERE (SELECT count(*) FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = part.relid \
         AND t.tgenabled = 'A' AND t.tgname IN ('tower_sessions_evict_on_update', \
         'tower_sessions_evict_on_delete', 'tower_sessions_evict_on_truncate')) <> 3)"
    };
}

/// Whether the triggers are installed (`$1` as above): one boolean.
pub(crate) const INSTALLED_SQL: &str = concat!("SELECT ", installed!());

/// A heartbeat, sent through the store's own connections: `pg_notify($2, $3)`, only while the
/// triggers are installed (`$1` as above); returns a row when it was sent. Sent there, a
/// heartbeat that comes back proves that the listener hears the store's database (not another
/// one its URL names by mistake) and that the triggers are in place there: a trigger dropped
/// or disabled while the listener runs stops the proofs, so the cache stops serving within its
/// bound.
pub(crate) const HEARTBEAT_SQL: &str = concat!("SELECT pg_notify($2, $3) WHERE ", installed!());

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
        assert!(INSTALLED_SQL.contains(&format!("<> {})", TRIGGER_NAMES.len())));
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
