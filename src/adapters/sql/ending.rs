//! The operators' statements: count the live sessions (all, or one user's), and end every
//! session created before an instant (all, or one user's), in bounded batches.
//!
//! **Why the batch looks like this.** A table can hold millions of rows, so a batch ends at most
//! `limit` of them, like the cleanup. Unlike the cleanup it may not skip a row another
//! transaction holds (a revocation that leaves a session alive because it was being saved is
//! no revocation), so it waits for it, and it must never deadlock with the per-user deletes,
//! which lock their rows in key order (`per_user.rs`). So, as there:
//!
//! - the rows to end are decided by a **read that locks nothing** (`"candidates"`);
//! - they are **locked in key order**, each re-checked as it is once locked, then deleted.
//!
//! PostgreSQL does both in one statement and returns two counts: the rows it deleted and the
//! candidates it found. The caller runs another batch while a batch **found** `limit`
//! candidates: counting what was deleted instead would stop early when a concurrent logout
//! took a candidate first. MySQL, and PostgreSQL on a table distributed by Citus (which refuses
//! `FOR UPDATE` across shards), read the keys plainly, then delete them by primary key with the
//! conditions checked again; SQLite runs one writing statement at a time and deletes in one.
//!
//! `created_at` is never written by a save, so a row that matched when read still matches when
//! locked unless it is gone; a session created after the instant is never touched. With the
//! login history, each ended row logs `revoked` in the same statement (SQLite: the same
//! transaction, from the rows the delete returns).

use super::{
    columns::born_live, dialect::Dialect, history, identifier::quote, per_user::KeyedDeletes,
    SessionTable,
};

/// The operators' statements of one dialect, for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ending {
    /// `now, born_after, long_born_after`: the number of live rows.
    pub count: String,
    /// `user_key, now, born_after, long_born_after`: the number of the user's live rows.
    pub count_by_user: String,
    /// `before, limit`. PostgreSQL: the batch, returning `deleted, found`. SQLite: the delete
    /// of at most `limit` rows. MySQL and Citus: the read of at most `limit` keys, which
    /// [`Ending::delete_keys`] then deletes.
    pub created_before: String,
    /// `before, user_key, limit`: as [`Ending::created_before`], of the user's rows only.
    pub created_before_by_user: String,
    /// MySQL and Citus: `DELETE … WHERE id IN (keys) AND created_at < ?`; empty elsewhere.
    pub delete_keys: KeyedDeletes,
    /// MySQL and Citus: as [`Ending::delete_keys`], `AND user_key = ?` too; empty elsewhere.
    pub delete_user_keys: KeyedDeletes,
}

impl Ending {
    pub(crate) fn new(dialect: Dialect, table: &SessionTable) -> Self {
        let target = table.quoted(dialect);
        let [id, user_key, expiry, created] =
            ["id", "user_key", "expiry_date", "created_at"].map(|column| quote(dialect, column));
        let count = |user: &str, first: usize| {
            let [now, short, long] = match dialect {
                Dialect::Postgres => [0, 1, 2].map(|n| format!("${}", first + n)),
                Dialect::Sqlite | Dialect::MySql => ["?", "?", "?"].map(str::to_owned),
            };
            let born = born_live(dialect, &short, &long);
            format!("SELECT count(*) FROM {target} WHERE {user}{expiry} > {now} AND {born}")
        };
        let (count_all, count_by_user) = match dialect {
            Dialect::Postgres => (count("", 1), count(&format!("{user_key} = $1 AND "), 2)),
            Dialect::Sqlite | Dialect::MySql => {
                (count("", 1), count(&format!("{user_key} = ? AND "), 1))
            }
        };
        let keyed = |placeholder: &dyn Fn(usize) -> String, by_user: bool| {
            KeyedDeletes::rendered(|count| {
                let keys = (1..=count).map(placeholder).collect::<Vec<_>>().join(", ");
                let user = if by_user {
                    format!(" AND {user_key} = {}", placeholder(count + 2))
                } else {
                    String::new()
                };
                let delete = match dialect {
                    // Index hints need the multiple-table form of `DELETE` (see `per_user.rs`).
                    Dialect::MySql => {
                        format!("DELETE {target} FROM {target} FORCE INDEX (PRIMARY)")
                    }
                    Dialect::Postgres | Dialect::Sqlite => format!("DELETE FROM {target}"),
                };
                format!(
                    "{delete} WHERE {id} IN ({keys}) AND {created} < {}{user}",
                    placeholder(count + 1)
                )
            })
        };
        match dialect {
            Dialect::Postgres if table.distributed() => {
                let read = |user: &str, limit: &str| {
                    format!("SELECT {id} FROM {target} WHERE {created} < $1{user} LIMIT {limit}")
                };
                let dollar = |n: usize| format!("${n}");
                Self {
                    count: count_all,
                    count_by_user,
                    created_before: read("", "$2"),
                    created_before_by_user: read(&format!(" AND {user_key} = $2"), "$3"),
                    delete_keys: keyed(&dollar, false),
                    delete_user_keys: keyed(&dollar, true),
                }
            }
            Dialect::Postgres => {
                let history = table
                    .history()
                    .then(|| history::quoted(table, Dialect::Postgres));
                let batch = |user: &str, limit: &str| {
                    let logged = history.as_deref().map_or(String::new(), |history| {
                        format!(
                            ", \"logged\" AS ({})",
                            history::log(
                                history,
                                "ended",
                                [
                                    "\"user_key\"",
                                    &format!("'{}'", history::kind::REVOKED),
                                    "statement_timestamp()",
                                    "\"id\"",
                                    "\"listed_values\"",
                                ],
                                "",
                            )
                        )
                    });
                    // `"candidates"` is read once (a CTE named twice is materialised), so the
                    // count returned is of the rows the batch considered.
                    format!(
                        "WITH \"candidates\" AS (SELECT {id} FROM {target} WHERE {created} < $1\
                         {user} LIMIT {limit}), \"locked\" AS (SELECT {id} FROM {target} WHERE \
                         {id} IN (SELECT {id} FROM \"candidates\") AND {created} < $1{user} \
                         ORDER BY {id} FOR UPDATE), \"ended\" AS (DELETE FROM {target} WHERE \
                         {id} IN (SELECT {id} FROM \"locked\") RETURNING {user_key}, {id}, \
                         \"listed_values\", {created}){logged} SELECT (SELECT count(*) FROM \
                         \"ended\"), (SELECT count(*) FROM \"candidates\")"
                    )
                };
                Self {
                    count: count_all,
                    count_by_user,
                    created_before: batch("", "$2"),
                    created_before_by_user: batch(&format!(" AND {user_key} = $2"), "$3"),
                    delete_keys: KeyedDeletes::default(),
                    delete_user_keys: KeyedDeletes::default(),
                }
            }
            // One writer at a time, each statement under the write lock: nothing to order.
            Dialect::Sqlite => {
                let returning = if table.history() {
                    format!(" {}", history::RETURNING)
                } else {
                    String::new()
                };
                let delete = |user: &str| {
                    format!(
                        "DELETE FROM {target} WHERE {id} IN (SELECT {id} FROM {target} WHERE \
                         {created} < ?{user} LIMIT ?){returning}"
                    )
                };
                Self {
                    count: count_all,
                    count_by_user,
                    created_before: delete(""),
                    created_before_by_user: delete(&format!(" AND {user_key} = ?")),
                    delete_keys: KeyedDeletes::default(),
                    delete_user_keys: KeyedDeletes::default(),
                }
            }
            // A plain read (a consistent read locks nothing), then deletes by primary key in
            // key order, as the per-user deletes do.
            Dialect::MySql => {
                let read = |user: &str| {
                    format!(
                        "SELECT {id} FROM {target} WHERE {created} < ?{user} ORDER BY {id} LIMIT ?"
                    )
                };
                let question = |_: usize| "?".to_owned();
                Self {
                    count: count_all,
                    count_by_user,
                    created_before: read(""),
                    created_before_by_user: read(&format!(" AND {user_key} = ?")),
                    delete_keys: keyed(&question, false),
                    delete_user_keys: keyed(&question, true),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_reads_candidates_plainly_locks_them_in_key_order_and_counts_both() {
        let pg = Ending::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            pg.created_before_by_user,
            r#"WITH "candidates" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "created_at" < $1 AND "user_key" = $2 LIMIT $3), "locked" AS (SELECT "id" FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "candidates") AND "created_at" < $1 AND "user_key" = $2 ORDER BY "id" FOR UPDATE), "ended" AS (DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "locked") RETURNING "user_key", "id", "listed_values", "created_at") SELECT (SELECT count(*) FROM "ended"), (SELECT count(*) FROM "candidates")"#
        );
        assert_eq!(
            pg.count_by_user,
            r#"SELECT count(*) FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4))"#
        );
        assert!(pg.delete_keys.is_empty());
    }

    #[test]
    fn postgres_with_the_history_logs_each_ended_row_as_revoked() {
        let table = SessionTable::default().with_history();
        let pg = Ending::new(Dialect::Postgres, &table);
        assert!(pg.created_before.contains(
            r#""logged" AS (INSERT INTO "tower_sessions"."session_history" ("user_key", "kind", "at", "handle", "listed_values") SELECT "user_key", 'revoked', statement_timestamp()"#
        ));
    }

    #[test]
    fn sqlite_deletes_in_one_statement_returning_what_the_history_needs() {
        let plain = Ending::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            plain.created_before,
            r#"DELETE FROM "session" WHERE "id" IN (SELECT "id" FROM "session" WHERE "created_at" < ? LIMIT ?)"#
        );
        let logged = Ending::new(Dialect::Sqlite, &SessionTable::default().with_history());
        assert!(logged.created_before_by_user.ends_with(history::RETURNING));
        assert_eq!(
            plain.count,
            r#"SELECT count(*) FROM "session" WHERE "expiry_date" > ? AND ("created_at" > ? OR ("long_lived" AND "created_at" > ?))"#
        );
    }

    #[test]
    fn mysql_and_citus_read_the_keys_then_delete_them_by_key() {
        let mysql = Ending::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.created_before_by_user,
            "SELECT `id` FROM `session` WHERE `created_at` < ? AND `user_key` = ? ORDER BY `id` LIMIT ?"
        );
        assert_eq!(
            mysql.delete_user_keys.for_keys(1),
            Some((
                1,
                "DELETE `session` FROM `session` FORCE INDEX (PRIMARY) WHERE `id` IN (?) AND `created_at` < ? AND `user_key` = ?"
            ))
        );
        let citus = Ending::new(
            Dialect::Postgres,
            &SessionTable::default().with_distributed(),
        );
        assert_eq!(
            citus.delete_user_keys.for_keys(2),
            Some((
                4,
                r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN ($1, $2, $3, $4) AND "created_at" < $5 AND "user_key" = $6"#
            ))
        );
    }
}
