//! The statements that delete several rows of one user: the per-user limit's trim ("end the
//! sessions beyond the `n` most recently saved"), "log out everywhere" and "log out my other
//! devices".
//!
//! **Why they look like this: no deadlock, with each other or with a save.** A `DELETE … WHERE
//! user_key = …` locks its rows in whatever order its plan reads them, and a trim written as one
//! `DELETE … IN (SELECT … ORDER BY … OFFSET …)` locks the rows it ranks as well. Two logins of
//! one user then lock the same rows in different orders and deadlock (PostgreSQL, 40P01); on
//! MySQL/MariaDB the ranking read takes shared next-key locks on the indexes it scans, and the
//! unrelated saves that must insert into those gaps become the deadlock's victims. So:
//!
//! - the rows to delete are decided by a **read that locks nothing**: a subquery without a
//!   locking clause on PostgreSQL, a plain consistent read on MySQL;
//! - they are then **locked by key, in key order**, with the user (and, for the trim, the
//!   row's liveness) checked again on the row as it is when locked, so a row that changed
//!   hands meanwhile is left alone. PostgreSQL does both in one
//!   statement (`… ORDER BY "id" FOR UPDATE` in a CTE, then the `DELETE` of what it locked);
//!   MySQL in a second statement, a `DELETE` by primary key (`FORCE INDEX (PRIMARY)`: a range
//!   of the primary key locks its rows in key order, and no secondary index first).
//!
//! Every other statement of the store locks at most one row (`update_if_present`,
//! `delete_by_id`, `delete_by_user_and_id`), locks only a row it creates (`insert_if_absent`),
//! or skips locked rows (the cleanup's `SKIP LOCKED` on PostgreSQL), so none can close a cycle
//! with these. SQLite runs one writing statement at a time, each taking the database's write
//! lock before it reads: one statement each, with nothing to order.
//!
//! On a table distributed by Citus, PostgreSQL takes MySQL's two steps (Citus refuses `FOR
//! UPDATE` across shards): a plain read of the keys, then deletes by key, which Citus routes to
//! the shards holding them.
//!
//! The names in these statements are validated identifiers, quoted here.

use sha2::{Digest, Sha256};

use super::{columns::born_live, dialect::Dialect, driver::Param, identifier::quote, SessionTable};

/// The most keys one MySQL delete by key names; more are deleted in several statements.
pub(crate) const MAX_KEYS_PER_DELETE: usize = 64;

/// The numbers of keys a MySQL delete by key is rendered for: a delete of fewer keys repeats
/// its last key, so the server prepares four statements, not sixty-four.
const KEY_COUNTS: [usize; 4] = [1, 4, 16, MAX_KEYS_PER_DELETE];

/// The per-user deletes of one dialect, for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PerUser {
    /// The per-user limit, bound by [`PerUser::trim_values`]. PostgreSQL and SQLite: the
    /// `DELETE` of the user's live rows beyond the `keep` most recently saved. MySQL and a
    /// table distributed by Citus: the `SELECT` of their keys, which
    /// [`PerUser::delete_live_keys`] then deletes.
    pub trim: String,
    /// `user_key`. PostgreSQL and SQLite: the `DELETE` of every row of the user. MySQL and
    /// Citus: the `SELECT` of their keys, which [`PerUser::delete_keys`] then deletes.
    pub delete_by_user: String,
    /// `user_key, id`: as [`PerUser::delete_by_user`], but the row with this id.
    pub delete_by_user_except: String,
    /// MySQL and Citus: `DELETE … WHERE id IN (keys) AND user_key = ? AND <live at now, born
    /// after>`; empty elsewhere.
    pub delete_live_keys: KeyedDeletes,
    /// MySQL and Citus: `DELETE … WHERE id IN (keys) AND user_key = ?`; empty elsewhere.
    pub delete_keys: KeyedDeletes,
    /// The per-user limit that refuses logins (see [`Refusing`]).
    pub refusing: Refusing,
}

/// The statements of a login checked against the per-user limit, in a transaction of its own:
/// [`Refusing::lock`], [`Refusing::count`], the write only below the limit, the commit, then
/// [`Refusing::release`].
///
/// **Why a lock, and why this one.** A count and an insert in one statement cannot hold the
/// limit under READ COMMITTED: the statement's snapshot is taken before it waits for any lock,
/// so two logins of one user each count the other's row out. Locking the user's rows does not
/// help when there are none yet (and on MySQL, gap locks over an index make two inserts
/// deadlock). So each login takes a lock named after the table and the user, held until its
/// transaction ends, and counts after it has the lock, when every earlier login of the user
/// has committed:
///
/// - PostgreSQL: `pg_advisory_xact_lock` on a 64-bit hash of the table and the user, released
///   by the commit or the rollback (transaction-scoped, so it works through PgBouncer's
///   transaction pooling, and on partitioned and distributed tables: it locks no row).
/// - SQLite: a write that takes the database's write lock (an `UPDATE` of no column), as the
///   login history's saves do: SQLite runs one writing transaction at a time, and a deferred
///   transaction that read first could not then write (`SQLITE_BUSY`).
/// - MySQL/MariaDB: `GET_LOCK` on a name hashed from the table and the user (44 characters),
///   waiting at most [`LOCK_WAIT_SECONDS`]. It belongs to the connection, not the transaction,
///   so it is released after the commit (or the rollback), on the same connection, also when
///   the login is abandoned midway (a time-out): the driver's transaction does it when dropped.
///   The count is the transaction's first read of a table, so its REPEATABLE READ snapshot is
///   taken once the lock is held, after the previous holder committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusing {
    /// What names the lock, with the user: the table as spans show it.
    scope: String,
    /// The lock, bound by [`Refusing::lock_values`].
    pub lock: String,
    /// `user_key, id, now, born_after, long_born_after`: how many live sessions the user has
    /// but this one.
    pub count: String,
    /// MySQL: `RELEASE_LOCK` of the name; empty elsewhere.
    pub release: String,
}

/// How long a MySQL login waits for another login of the same user to commit: far beyond
/// what one takes, short enough that a stuck one fails the next rather than piling them up.
pub(crate) const LOCK_WAIT_SECONDS: i64 = 10;

impl Refusing {
    fn new(dialect: Dialect, table: &SessionTable) -> Self {
        let target = table.quoted(dialect);
        let [id, user_key, expiry] =
            ["id", "user_key", "expiry_date"].map(|column| quote(dialect, column));
        let (lock, count, release) = match dialect {
            Dialect::Postgres => (
                "SELECT pg_advisory_xact_lock($1)".to_owned(),
                format!(
                    "SELECT count(*) FROM {target} WHERE {user_key} = $1 AND {id} <> $2 AND \
                     {expiry} > $3 AND {}",
                    born_live(dialect, "$4", "$5")
                ),
                String::new(),
            ),
            Dialect::Sqlite => (
                format!("UPDATE {target} SET {id} = {id} WHERE {id} = ?"),
                format!(
                    "SELECT count(*) FROM {target} WHERE {user_key} = ? AND {id} <> ? AND \
                     {expiry} > ? AND {}",
                    born_live(dialect, "?", "?")
                ),
                String::new(),
            ),
            // `CAST`: both answers as `BIGINT`, whatever the server's integer type.
            Dialect::MySql => (
                "SELECT CAST(GET_LOCK(?, ?) AS SIGNED)".to_owned(),
                format!(
                    "SELECT CAST(count(*) AS SIGNED) FROM {target} WHERE {user_key} = ? AND \
                     {id} <> ? AND {expiry} > ? AND {}",
                    born_live(dialect, "?", "?")
                ),
                "SELECT RELEASE_LOCK(?)".to_owned(),
            ),
        };
        Self {
            scope: table.label(dialect),
            lock,
            count,
            release,
        }
    }

    /// What [`Refusing::lock`] binds for `user_key` (the row's `id` on SQLite: any key will
    /// do), and what [`Refusing::release`] binds (MySQL's lock name).
    pub(crate) fn lock_values(
        &self,
        dialect: Dialect,
        user_key: &str,
        id: &str,
    ) -> (Vec<Param>, Vec<Param>) {
        let mut hasher = Sha256::new();
        hasher.update(b"tower-sessions-seaorm-store/per-user-limit/v1\0");
        hasher.update(self.scope.as_bytes());
        hasher.update(b"\0");
        hasher.update(user_key.as_bytes());
        let digest = hasher.finalize();
        match dialect {
            Dialect::Postgres => {
                let mut first = [0; 8];
                first.copy_from_slice(&digest[..8]);
                (vec![Param::Integer(i64::from_be_bytes(first))], Vec::new())
            }
            Dialect::Sqlite => (vec![Param::text(id)], Vec::new()),
            Dialect::MySql => {
                let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
                let name = format!("tss:{hex}");
                (
                    vec![
                        Param::Text(Some(name.clone())),
                        Param::Integer(LOCK_WAIT_SECONDS),
                    ],
                    vec![Param::Text(Some(name))],
                )
            }
        }
    }
}

/// MySQL deletes by key, rendered for each of [`KEY_COUNTS`] (and, with the login history, its
/// reads by `seq` and inserts of several entries: `mysql_history.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyedDeletes(Vec<(usize, String)>);

impl KeyedDeletes {
    /// One statement per count of [`KEY_COUNTS`], rendered by `sql`.
    pub(crate) fn rendered(sql: impl Fn(usize) -> String) -> Self {
        Self(
            KEY_COUNTS
                .iter()
                .map(|&count| (count, sql(count)))
                .collect(),
        )
    }

    /// Whether there are none: the dialect deletes in one statement.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The statement for `keys` keys (1 to [`MAX_KEYS_PER_DELETE`]) and how many key
    /// placeholders it has: at least `keys`, the rest filled with a repeated key.
    pub(crate) fn for_keys(&self, keys: usize) -> Option<(usize, &str)> {
        self.0
            .iter()
            .find(|(count, _)| *count >= keys)
            .map(|(count, sql)| (*count, sql.as_str()))
    }

    /// The statement for the most rows, at most `rows`, and how many: for statements that
    /// cannot be padded (inserts).
    pub(crate) fn at_most(&self, rows: usize) -> Option<(usize, &str)> {
        self.0
            .iter()
            .rev()
            .find(|(count, _)| *count <= rows)
            .map(|(count, sql)| (*count, sql.as_str()))
    }
}

/// `keys` padded to `count` by repeating the last: what [`KeyedDeletes::for_keys`]' statement
/// binds.
pub(crate) fn padded<T: Clone>(keys: &[T], count: usize) -> Vec<T> {
    let mut padded = keys.to_vec();
    if let Some(last) = keys.last() {
        padded.resize(count.max(keys.len()), last.clone());
    }
    padded
}

impl PerUser {
    pub(crate) fn new(dialect: Dialect, table: &SessionTable) -> Self {
        let target = table.quoted(dialect);
        let [id, user_key, expiry, updated] =
            ["id", "user_key", "expiry_date", "updated_at"].map(|column| quote(dialect, column));
        let ranking = format!("ORDER BY {updated} DESC, {id} DESC");
        match dialect {
            // On a table distributed by Citus, MySQL's two steps: Citus refuses `FOR UPDATE` in
            // a statement that reaches several shards, and a user's rows are on any of them.
            // The read of the keys runs on every shard at once and locks nothing; the deletes
            // name their keys, so Citus sends each to the shards that hold them (one, for the
            // usual trim of one session), and re-check the user and liveness on each row. A
            // single statement (`DELETE … WHERE "id" IN (SELECT … OFFSET $4)`) works too, but
            // every login with a per-user limit then writes to every shard, and Citus lets one
            // multi-shard write at a time into a shard: 42 logins per second from one client on
            // the test machine, where this does 94 (SCALING.md).
            Dialect::Postgres if table.distributed() => {
                // "Now" at `$first`, the two creation bounds after it.
                let live = |first: usize| {
                    let (short, long) = (format!("${}", first + 1), format!("${}", first + 2));
                    format!(
                        " AND {expiry} > ${first} AND {}",
                        born_live(dialect, &short, &long)
                    )
                };
                let by_key = |live: &dyn Fn(usize) -> String| {
                    KeyedDeletes::rendered(|count| {
                        let keys = (1..=count)
                            .map(|n| format!("${n}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!(
                            "DELETE FROM {target} WHERE {id} IN ({keys}) AND {user_key} = ${}{}",
                            count + 1,
                            live(count + 2)
                        )
                    })
                };
                Self {
                    trim: format!(
                        "SELECT {id} FROM {target} WHERE {user_key} = $1{} {ranking} OFFSET $5",
                        live(2)
                    ),
                    delete_by_user: format!("SELECT {id} FROM {target} WHERE {user_key} = $1"),
                    delete_by_user_except: format!(
                        "SELECT {id} FROM {target} WHERE {user_key} = $1 AND {id} <> $2"
                    ),
                    delete_live_keys: by_key(&live),
                    delete_keys: by_key(&|_| String::new()),
                    refusing: Refusing::new(dialect, table),
                }
            }
            Dialect::Postgres => {
                let live = format!("{expiry} > $2 AND {}", born_live(dialect, "$3", "$4"));
                // Locks what the plain read (`ranked`) chose, in key order, re-checking each
                // row as it is once locked; the DELETE then finds every row locked already.
                let trim = format!(
                    "WITH \"ranked\" AS (SELECT {id} FROM {target} WHERE {user_key} = $1 AND \
                     {live} {ranking} OFFSET $5), \"locked\" AS (SELECT {id} FROM {target} \
                     WHERE {id} IN (SELECT {id} FROM \"ranked\") AND {user_key} = $1 AND {live} \
                     ORDER BY {id} FOR UPDATE) DELETE FROM {target} WHERE {id} IN (SELECT {id} \
                     FROM \"locked\") AND {user_key} = $1"
                );
                let by_user = |except: &str| {
                    format!(
                        "WITH \"locked\" AS (SELECT {id} FROM {target} WHERE {user_key} = $1\
                         {except} ORDER BY {id} FOR UPDATE) DELETE FROM {target} WHERE {id} IN \
                         (SELECT {id} FROM \"locked\") AND {user_key} = $1"
                    )
                };
                Self {
                    trim,
                    delete_by_user: by_user(""),
                    delete_by_user_except: by_user(&format!(" AND {id} <> $2")),
                    delete_live_keys: KeyedDeletes::default(),
                    delete_keys: KeyedDeletes::default(),
                    refusing: Refusing::new(dialect, table),
                }
            }
            // SQLite has no `OFFSET` without a `LIMIT`: -1 is "no limit".
            Dialect::Sqlite => Self {
                trim: format!(
                    "DELETE FROM {target} WHERE {user_key} = ? AND {id} IN (SELECT {id} FROM \
                     {target} WHERE {user_key} = ? AND {expiry} > ? AND {} {ranking} LIMIT -1 \
                     OFFSET ?)",
                    born_live(dialect, "?", "?")
                ),
                delete_by_user: format!("DELETE FROM {target} WHERE {user_key} = ?"),
                delete_by_user_except: format!(
                    "DELETE FROM {target} WHERE {user_key} = ? AND {id} <> ?"
                ),
                delete_live_keys: KeyedDeletes::default(),
                delete_keys: KeyedDeletes::default(),
                refusing: Refusing::new(dialect, table),
            },
            // MySQL has no `OFFSET` without a `LIMIT`: 2⁶⁴ − 1 is "no limit". Index hints need
            // the multiple-table form of `DELETE`.
            Dialect::MySql => {
                let by_key = |live: &str| {
                    KeyedDeletes::rendered(|count| {
                        let keys = vec!["?"; count].join(", ");
                        format!(
                            "DELETE {target} FROM {target} FORCE INDEX (PRIMARY) WHERE {id} IN \
                             ({keys}) AND {user_key} = ?{live}"
                        )
                    })
                };
                Self {
                    trim: format!(
                        "SELECT {id} FROM {target} WHERE {user_key} = ? AND {expiry} > ? AND {} \
                         {ranking} LIMIT 18446744073709551615 OFFSET ?",
                        born_live(dialect, "?", "?")
                    ),
                    delete_by_user: format!(
                        "SELECT {id} FROM {target} WHERE {user_key} = ? ORDER BY {id}"
                    ),
                    delete_by_user_except: format!(
                        "SELECT {id} FROM {target} WHERE {user_key} = ? AND {id} <> ? ORDER BY \
                         {id}"
                    ),
                    delete_live_keys: by_key(&format!(
                        " AND {expiry} > ? AND {}",
                        born_live(dialect, "?", "?")
                    )),
                    delete_keys: by_key(""),
                    refusing: Refusing::new(dialect, table),
                }
            }
        }
    }

    /// The values [`PerUser::trim`] takes, in order, from the user, "now", the lower bounds on
    /// the creation instant of a live row (short, then long-lived), and how many of the most
    /// recently saved to keep.
    pub(crate) fn trim_values<V: Clone>(
        dialect: Dialect,
        user_key: V,
        now: V,
        [born_after, long_born_after]: [V; 2],
        keep: V,
    ) -> Vec<V> {
        match dialect {
            Dialect::Postgres | Dialect::MySql => {
                vec![user_key, now, born_after, long_born_after, keep]
            }
            Dialect::Sqlite => vec![
                user_key.clone(),
                user_key,
                now,
                born_after,
                long_born_after,
                keep,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_locks_what_a_plain_read_ranked_in_key_order_then_deletes_it() {
        let pg = PerUser::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            pg.trim,
            r#"WITH "ranked" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4)) ORDER BY "updated_at" DESC, "id" DESC OFFSET $5), "locked" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "ranked") AND "user_key" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4)) ORDER BY "id" FOR UPDATE) DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "locked") AND "user_key" = $1"#
        );
        assert_eq!(
            pg.delete_by_user,
            r#"WITH "locked" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "user_key" = $1 ORDER BY "id" FOR UPDATE) DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "locked") AND "user_key" = $1"#
        );
        assert_eq!(
            pg.delete_by_user_except,
            r#"WITH "locked" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "id" <> $2 ORDER BY "id" FOR UPDATE) DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "locked") AND "user_key" = $1"#
        );
        assert_eq!(pg.delete_live_keys, KeyedDeletes::default());
    }

    #[test]
    fn postgres_on_a_distributed_table_reads_the_keys_then_deletes_them_by_key() {
        let table = SessionTable::default().with_distributed();
        let pg = PerUser::new(Dialect::Postgres, &table);
        assert_eq!(
            pg.trim,
            r#"SELECT "id" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4)) ORDER BY "updated_at" DESC, "id" DESC OFFSET $5"#
        );
        assert_eq!(
            pg.delete_by_user_except,
            r#"SELECT "id" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "id" <> $2"#
        );
        assert_eq!(
            pg.delete_live_keys.for_keys(1),
            Some((
                1,
                r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN ($1) AND "user_key" = $2 AND "expiry_date" > $3 AND ("created_at" > $4 OR ("long_lived" AND "created_at" > $5))"#
            ))
        );
        assert_eq!(
            pg.delete_keys.for_keys(3),
            Some((
                4,
                r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN ($1, $2, $3, $4) AND "user_key" = $5"#
            ))
        );
    }

    #[test]
    fn sqlite_deletes_in_one_statement() {
        let sqlite = PerUser::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            sqlite.trim,
            r#"DELETE FROM "session" WHERE "user_key" = ? AND "id" IN (SELECT "id" FROM "session" WHERE "user_key" = ? AND "expiry_date" > ? AND ("created_at" > ? OR ("long_lived" AND "created_at" > ?)) ORDER BY "updated_at" DESC, "id" DESC LIMIT -1 OFFSET ?)"#
        );
        let values = PerUser::trim_values(Dialect::Sqlite, 1, 2, [3, 4], 5);
        assert_eq!(values.len(), sqlite.trim.matches('?').count());
    }

    #[test]
    fn mysql_reads_the_keys_plainly_then_deletes_them_by_primary_key() {
        let mysql = PerUser::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.trim,
            "SELECT `id` FROM `session` WHERE `user_key` = ? AND `expiry_date` > ? AND (`created_at` > ? OR (`long_lived` AND `created_at` > ?)) ORDER BY `updated_at` DESC, `id` DESC LIMIT 18446744073709551615 OFFSET ?"
        );
        assert!(!mysql.trim.contains("FOR UPDATE") && !mysql.trim.contains("SHARE"));
        assert_eq!(
            mysql.delete_live_keys.for_keys(3),
            Some((
                4,
                "DELETE `session` FROM `session` FORCE INDEX (PRIMARY) WHERE `id` IN (?, ?, ?, ?) AND `user_key` = ? AND `expiry_date` > ? AND (`created_at` > ? OR (`long_lived` AND `created_at` > ?))"
            ))
        );
        assert_eq!(
            mysql.delete_keys.for_keys(1),
            Some((
                1,
                "DELETE `session` FROM `session` FORCE INDEX (PRIMARY) WHERE `id` IN (?) AND `user_key` = ?"
            ))
        );
        assert_eq!(
            mysql
                .delete_keys
                .for_keys(MAX_KEYS_PER_DELETE)
                .map(|(n, _)| n),
            Some(MAX_KEYS_PER_DELETE)
        );
        assert_eq!(mysql.delete_keys.for_keys(MAX_KEYS_PER_DELETE + 1), None);
        assert_eq!(
            mysql.delete_by_user_except,
            "SELECT `id` FROM `session` WHERE `user_key` = ? AND `id` <> ? ORDER BY `id`"
        );
    }

    #[test]
    fn padding_repeats_the_last_key() {
        assert_eq!(padded(&["a", "b"], 4), ["a", "b", "b", "b"]);
        assert_eq!(padded(&["a"], 1), ["a"]);
        assert!(padded::<&str>(&[], 4).is_empty());
    }
}
