//! The SQL each repository operation sends, per dialect, rendered once per table and reused for
//! every call: by sea-query (which quotes the identifiers) here, and by hand, with the validated
//! names quoted there, for the saves (`update.rs`) and the per-user deletes (`per_user.rs`).

use sea_orm::{
    sea_query::{
        Alias, Cond, DeleteStatement, Expr, ExprTrait, Func, LockBehavior, LockType,
        MysqlQueryBuilder, OnConflict, PostgresQueryBuilder, Query, QueryStatementWriter,
        SqliteQueryBuilder, TableRef,
    },
    Value,
};

use super::{
    columns::{Column, RowStatement, ROW_COLUMNS},
    dialect::{Dialect, POSTGRES_EARLIEST_SQL, POSTGRES_LATEST_SQL},
    ending::Ending,
    per_user::PerUser,
    SessionTable,
};

/// The rendered statements. Each is one round trip; the placeholders are bound in the order the
/// repository passes the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statements {
    dialect: Dialect,
    /// The row's values ([`ROW_COLUMNS`]). PostgreSQL and SQLite: affects 0 rows when the id
    /// is taken. MySQL: a plain insert that fails with a duplicate-key error when the id is
    /// taken.
    pub insert_if_absent: String,
    /// A save: the update of an existing row, never an insert. Every column is written,
    /// `user_key` too (`NULL` when the store keeps no index), so that a user key is never left
    /// stale by a store configured otherwise; the version goes up by one.
    pub update_if_present: RowStatement,
    /// The same update, only of a row that still holds the expected version: a save that
    /// merges (see [`super::update`]).
    pub update_if_version: RowStatement,
    /// [`Statements::update_if_present`], also telling whether it gave the row another user
    /// key (see [`super::update`]).
    pub update_if_present_reporting: RowStatement,
    /// [`Statements::update_if_version`], also telling whether it gave the row another user
    /// key.
    pub update_if_version_reporting: RowStatement,
    /// `user_key, now, born_after, long_born_after`; returns `id, expiry_date, created_at,
    /// updated_at, listed_values, long_lived` (the instants on PostgreSQL clamped to years 1 to
    /// 9999).
    pub find_unexpired_by_user: String,
    /// The deletes of several rows of one user: the per-user limit's trim, "log out
    /// everywhere", "log out my other devices" (see [`super::per_user`]).
    pub per_user: PerUser,
    /// `user_key, id`.
    pub delete_by_user_and_id: String,
    /// `id, now, born_after, long_born_after`; returns `data, created_at` (clamped like a
    /// listing's), `version, user_key, long_lived`.
    pub find_unexpired: String,
    /// `id, now`; returns `data, version, user_key`: [`Statements::find_unexpired`] for a
    /// store without an absolute lifetime, which neither checks nor reads a row's age (two
    /// columns fewer to send: about 6 % of the server's work on a load at 16 clients,
    /// BENCHMARKS.md).
    pub find_unexpired_any_age: String,
    /// `id`.
    pub delete_by_id: String,
    /// The values of [`Statements::delete_expired_values`].
    pub delete_expired_batch: String,
    /// The same, deleting also the rows created at or before an instant (an absolute
    /// lifetime); the values of [`Statements::delete_outlived_values`].
    pub delete_outlived_batch: String,
    /// The operators' counts and their batches ending the sessions created before an instant
    /// (see [`super::ending`]); they log in the history themselves.
    pub ending: Ending,
    /// With the login history (PostgreSQL): its own statements. Every write above then also
    /// logs, in the same statement, and returns rows (see [`super::history::wrap`]).
    pub history: Option<super::history::HistoryStatements>,
}

impl Statements {
    /// The same statements, with saves that have the eviction triggers log their keys instead
    /// of announcing them (see [`super::update::render`]): a store with a listening cache
    /// announces its own saves once they return.
    #[cfg(all(feature = "cache", feature = "postgres"))]
    pub(crate) fn with_quiet_saves(mut self, table: &SessionTable) -> Self {
        [
            self.update_if_present,
            self.update_if_version,
            self.update_if_present_reporting,
            self.update_if_version_reporting,
        ] = saves(self.dialect, table, true);
        if self.history.is_some() {
            return super::history::wrap_saves(self, table, true);
        }
        self
    }

    /// The dialect these statements are written in.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// The four saves (see [`super::update::render`]): plain, of an expected version, and both
/// reporting a change of user, in that order.
pub(crate) fn saves(dialect: Dialect, table: &SessionTable, quiet: bool) -> [RowStatement; 4] {
    [(false, false), (true, false), (false, true), (true, true)].map(|(if_version, reporting)| {
        super::update::render(dialect, table, if_version, reporting, quiet)
    })
}

// Placeholder values: only their position matters, the SQL is kept and the values thrown away.
fn id() -> Value {
    Value::String(None)
}
fn data() -> Value {
    Value::Bytes(None)
}
fn instant() -> Value {
    Value::BigInt(None)
}
fn placeholder(column: Column) -> Value {
    match column {
        Column::Id | Column::UserKey => id(),
        Column::Data => data(),
        Column::ExpiryDate | Column::CreatedAt | Column::UpdatedAt | Column::Version => instant(),
        Column::ListedValues => id(),
        Column::LongLived => Value::Bool(None),
    }
}

impl Statements {
    /// The statements of `dialect` for `table`.
    pub(crate) fn new(dialect: Dialect, table: &SessionTable) -> Self {
        let target = || -> TableRef {
            match dialect {
                Dialect::Postgres => (Alias::new(table.schema()), Alias::new(table.table())).into(),
                // No schemas in SQLite; in MySQL a schema is a database, and the sessions live
                // in the connection's own.
                Dialect::Sqlite | Dialect::MySql => Alias::new(table.table()).into(),
            }
        };
        let insert = || {
            Query::insert()
                .into_table(target())
                .columns(ROW_COLUMNS)
                .values_panic(ROW_COLUMNS.iter().map(|column| placeholder(*column).into()))
                .to_owned()
        };

        let insert_if_absent = match dialect {
            // ON CONFLICT DO NOTHING, not a check before the insert: two requests creating the
            // same id cannot both win, and the rows-affected count tells the loser it lost.
            Dialect::Postgres | Dialect::Sqlite => insert()
                .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
                .to_owned(),
            // A plain INSERT: the loser gets a duplicate-key error, which the repository reads
            // as "taken". Not `ON DUPLICATE KEY UPDATE id = id`: sqlx sets CLIENT_FOUND_ROWS, so
            // a duplicate reports 1 row, the same as an insert. Not `INSERT IGNORE`: it would
            // also turn truncation and other errors into warnings.
            Dialect::MySql => insert(),
        };

        let [update_if_present, update_if_version, update_if_present_reporting, update_if_version_reporting] =
            saves(dialect, table, false);
        let find_unexpired_by_user = Query::select()
            .column(Column::Id)
            .expr(read_instant(dialect, Column::ExpiryDate))
            .expr(read_instant(dialect, Column::CreatedAt))
            .expr(read_instant(dialect, Column::UpdatedAt))
            .column(Column::ListedValues)
            .column(Column::LongLived)
            .from(target())
            .and_where(Expr::col(Column::UserKey).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .cond_where(born_live())
            .to_owned();
        // The user is checked again in the delete itself: a session that changed hands since
        // it was listed is not deleted for its former user.
        let delete_by_user_and_id = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::UserKey).eq(id()))
            .and_where(Expr::col(Column::Id).eq(id()))
            .to_owned();

        let find_unexpired = Query::select()
            .column(Column::Data)
            .expr(read_instant(dialect, Column::CreatedAt))
            .column(Column::Version)
            .column(Column::UserKey)
            .column(Column::LongLived)
            .from(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .cond_where(born_live())
            .to_owned();
        let find_unexpired_any_age = Query::select()
            .column(Column::Data)
            .column(Column::Version)
            .column(Column::UserKey)
            .from(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .to_owned();

        let delete_by_id = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .to_owned();

        let locking = !table.distributed();
        let delete_expired_batch = delete_expired(dialect, &target, false, locking);
        let delete_outlived_batch = delete_expired(dialect, &target, true, locking);

        let statements = Self {
            dialect,
            insert_if_absent: render(dialect, &insert_if_absent),
            update_if_present,
            update_if_version,
            update_if_present_reporting,
            update_if_version_reporting,
            find_unexpired_by_user: render(dialect, &find_unexpired_by_user),
            per_user: PerUser::new(dialect, table),
            delete_by_user_and_id: render(dialect, &delete_by_user_and_id),
            find_unexpired: render(dialect, &find_unexpired),
            find_unexpired_any_age: render(dialect, &find_unexpired_any_age),
            delete_by_id: render(dialect, &delete_by_id),
            delete_expired_batch: render(dialect, &delete_expired_batch),
            delete_outlived_batch: render(dialect, &delete_outlived_batch),
            ending: Ending::new(dialect, table),
            history: None,
        };
        if table.history() {
            return super::history::wrap(statements, table);
        }
        statements
    }

    /// The values `delete_expired_batch` takes, in order.
    pub(crate) fn delete_expired_values<V: Clone>(&self, now: V, limit: V) -> Vec<V> {
        match self.dialect {
            Dialect::Postgres => vec![now.clone(), limit, now],
            Dialect::Sqlite | Dialect::MySql => vec![now, limit],
        }
    }

    /// The values `delete_outlived_batch` takes, in order: rows that expired at or before
    /// `now` or were created at or before `born_before` (long-lived: `long_born_before`).
    pub(crate) fn delete_outlived_values<V: Clone>(
        &self,
        now: V,
        [born_before, long_born_before]: [V; 2],
        limit: V,
    ) -> Vec<V> {
        let bounds = [born_before, long_born_before];
        match self.dialect {
            Dialect::Postgres => [vec![now.clone()], bounds.to_vec(), vec![limit, now]]
                .into_iter()
                .flatten()
                .chain(bounds)
                .collect(),
            Dialect::Sqlite | Dialect::MySql => [vec![now], bounds.to_vec(), vec![limit]].concat(),
        }
    }
}

/// A bounded cleanup batch: rows expired at `now` and, with `outlived`, rows created at or
/// before an instant too; on PostgreSQL, with `locking`, skipping rows another cleaner holds.
fn delete_expired(
    dialect: Dialect,
    target: &dyn Fn() -> TableRef,
    outlived: bool,
    locking: bool,
) -> DeleteStatement {
    let gone = || {
        let expired = Expr::col(Column::ExpiryDate).lte(instant());
        if outlived {
            // Not live: the negation of [`born_live`], so a long-lived row outlives only its
            // own lifetime.
            Cond::any().add(expired).add(
                Cond::all()
                    .add(Expr::col(Column::CreatedAt).lte(instant()))
                    .add(
                        Cond::any()
                            .add(Expr::col(Column::LongLived).not())
                            .add(Expr::col(Column::CreatedAt).lte(instant())),
                    ),
            )
        } else {
            Cond::all().add(expired)
        }
    };
    match dialect {
        // A bounded batch: the subquery picks at most `limit` expired ids, skipping rows
        // another cleaner (another replica) holds, so concurrent cleanups do not queue behind
        // each other. The outer condition re-checks the expiry, so a row a concurrent save
        // just extended is never deleted.
        //
        // On a table distributed by Citus, without the lock: Citus refuses `FOR UPDATE` in a
        // statement that reaches more than one shard (SQLSTATE 0A000). It runs the subquery
        // first (every shard in parallel, then the limit), then the delete on each shard with
        // those ids. Citus lets one multi-shard write at a time into a shard
        // (`citus.enable_deadlock_prevention`, on by default), so racing cleaners queue, and
        // the re-check still spares a row a save extended meanwhile.
        Dialect::Postgres => {
            let mut expired_ids = Query::select()
                .column(Column::Id)
                .from(target())
                .cond_where(gone())
                .limit(1)
                .to_owned();
            if locking {
                expired_ids.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            }
            Query::delete()
                .from_table(target())
                .and_where(Expr::col(Column::Id).in_subquery(expired_ids))
                .cond_where(gone())
                .to_owned()
        }
        // SQLite has no DELETE … LIMIT (unless compiled with it) but runs the whole
        // statement under its single write lock, so the subquery needs no re-check.
        Dialect::Sqlite => {
            let expired_ids = Query::select()
                .column(Column::Id)
                .from(target())
                .cond_where(gone())
                .limit(1)
                .to_owned();
            Query::delete()
                .from_table(target())
                .and_where(Expr::col(Column::Id).in_subquery(expired_ids))
                .to_owned()
        }
        // MySQL refuses LIMIT in an IN subquery but has DELETE … LIMIT, one statement
        // that takes its row locks as it goes.
        Dialect::MySql => Query::delete()
            .from_table(target())
            .cond_where(gone())
            .limit(1)
            .to_owned(),
    }
}

/// The creation bound of a live row: created after the absolute lifetime's bound, or marked
/// long-lived and created after the long lifetime's (two placeholders, in that order); the same
/// as `columns::born_live` writes by hand.
fn born_live() -> Cond {
    Cond::any()
        .add(Expr::col(Column::CreatedAt).gt(instant()))
        .add(
            Cond::all()
                .add(Expr::col(Column::LongLived))
                .add(Expr::col(Column::CreatedAt).gt(instant())),
        )
}

/// An instant column (`expiry_date`, `created_at`, `updated_at`) as a listing reads it. PostgreSQL's `timestamptz` holds
/// `'infinity'`, `'-infinity'` and years up to 294276, which sqlx cannot turn into a `time`
/// instant (it panics) and tokio-postgres refuses; clamped to years 1 to 9999 (UTC), the range
/// the store writes, such a row is listed with the bound as its expiry. MySQL's `datetime`
/// holds no other years, and SQLite's integers are checked as they are read.
fn read_instant(dialect: Dialect, column: Column) -> Expr {
    match dialect {
        Dialect::Postgres => Func::least([
            Func::greatest([Expr::col(column), Expr::cust(POSTGRES_EARLIEST_SQL)]).into(),
            Expr::cust(POSTGRES_LATEST_SQL),
        ])
        .into(),
        Dialect::Sqlite | Dialect::MySql => Expr::col(column),
    }
}

fn render<S: QueryStatementWriter>(dialect: Dialect, statement: &S) -> String {
    match dialect {
        Dialect::Postgres => statement.build(PostgresQueryBuilder).0,
        Dialect::Sqlite => statement.build(SqliteQueryBuilder).0,
        Dialect::MySql => statement.build(MysqlQueryBuilder).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::columns::Bind;

    #[test]
    fn postgres_statements_are_one_quoted_statement_each() {
        let s = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            s.insert_if_absent,
            r#"INSERT INTO "tower_sessions"."session" ("id", "data", "expiry_date", "user_key", "created_at", "updated_at", "listed_values", "long_lived") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.update_if_present.sql,
            r#"UPDATE "tower_sessions"."session" SET "data" = $2, "expiry_date" = $3, "user_key" = $4, "updated_at" = $5, "listed_values" = $6, "long_lived" = $7, "version" = "version" + 1 WHERE "id" = $1"#
        );
        assert_eq!(s.update_if_present.binds, row_binds());
        assert_eq!(
            s.find_unexpired,
            r#"SELECT "data", LEAST(GREATEST("created_at", TIMESTAMPTZ '0001-01-01 00:00:00+00'), TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'), "version", "user_key", "long_lived" FROM "tower_sessions"."session" WHERE "id" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4))"#
        );
        assert_eq!(
            s.find_unexpired_any_age,
            r#"SELECT "data", "version", "user_key" FROM "tower_sessions"."session" WHERE "id" = $1 AND "expiry_date" > $2"#
        );
        assert_eq!(
            s.delete_by_id,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" = $1"#
        );
        assert_eq!(
            s.delete_expired_batch,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "tower_sessions"."session" WHERE "expiry_date" <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) AND "expiry_date" <= $3"#
        );
        // $1 and $3 are "now", $2 the limit.
        assert_eq!(
            s.delete_expired_values("now", "limit"),
            ["now", "limit", "now"]
        );
        assert_eq!(
            s.delete_outlived_values("now", ["born", "long"], "limit"),
            ["now", "born", "long", "limit", "now", "born", "long"]
        );
    }

    #[test]
    fn sqlite_statements_ignore_the_schema_and_use_on_conflict() {
        let s = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            s.insert_if_absent,
            r#"INSERT INTO "session" ("id", "data", "expiry_date", "user_key", "created_at", "updated_at", "listed_values", "long_lived") VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.update_if_present.sql,
            r#"UPDATE "session" SET "data" = ?, "expiry_date" = ?, "user_key" = ?, "updated_at" = ?, "listed_values" = ?, "long_lived" = ?, "version" = "version" + 1 WHERE "id" = ?"#
        );
        assert_eq!(s.update_if_present.binds, set_then_id_binds());
        assert_eq!(
            s.find_unexpired,
            r#"SELECT "data", "created_at", "version", "user_key", "long_lived" FROM "session" WHERE "id" = ? AND "expiry_date" > ? AND ("created_at" > ? OR ("long_lived" AND "created_at" > ?))"#
        );
        assert_eq!(
            s.find_unexpired_any_age,
            r#"SELECT "data", "version", "user_key" FROM "session" WHERE "id" = ? AND "expiry_date" > ?"#
        );
        assert_eq!(s.delete_by_id, r#"DELETE FROM "session" WHERE "id" = ?"#);
        assert_eq!(
            s.delete_expired_batch,
            r#"DELETE FROM "session" WHERE "id" IN (SELECT "id" FROM "session" WHERE "expiry_date" <= ? LIMIT ?)"#
        );
        let values = s.delete_expired_values(Value::BigInt(Some(1)), Value::BigInt(Some(2)));
        assert_eq!(values, [Value::BigInt(Some(1)), Value::BigInt(Some(2))]);
    }

    #[test]
    fn mysql_statements_use_backticks_a_plain_insert_and_delete_limit() {
        let s = Statements::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            s.insert_if_absent,
            "INSERT INTO `session` (`id`, `data`, `expiry_date`, `user_key`, `created_at`, `updated_at`, `listed_values`, `long_lived`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert_eq!(
            s.update_if_present.sql,
            "UPDATE `session` SET `data` = ?, `expiry_date` = ?, `user_key` = ?, `updated_at` = ?, `listed_values` = ?, `long_lived` = ?, `version` = `version` + 1 WHERE `id` = ?"
        );
        assert_eq!(s.update_if_present.binds, set_then_id_binds());
        assert_eq!(
            s.find_unexpired,
            "SELECT `data`, `created_at`, `version`, `user_key`, `long_lived` FROM `session` WHERE `id` = ? AND `expiry_date` > ? AND (`created_at` > ? OR (`long_lived` AND `created_at` > ?))"
        );
        assert_eq!(
            s.find_unexpired_any_age,
            "SELECT `data`, `version`, `user_key` FROM `session` WHERE `id` = ? AND `expiry_date` > ?"
        );
        assert_eq!(s.delete_by_id, "DELETE FROM `session` WHERE `id` = ?");
        assert_eq!(
            s.delete_expired_batch,
            "DELETE FROM `session` WHERE `expiry_date` <= ? LIMIT ?"
        );
        let values = s.delete_expired_values(Value::BigInt(Some(1)), Value::BigInt(Some(2)));
        assert_eq!(values, [Value::BigInt(Some(1)), Value::BigInt(Some(2))]);
    }

    #[test]
    fn names_are_quoted_by_the_builder() {
        let table = SessionTable::default()
            .with_schema("app_Schema")
            .unwrap()
            .with_table("web_sessions")
            .unwrap();
        let pg = Statements::new(Dialect::Postgres, &table);
        assert!(pg
            .delete_by_id
            .starts_with(r#"DELETE FROM "app_Schema"."web_sessions""#));
        let sqlite = Statements::new(Dialect::Sqlite, &table);
        assert!(sqlite
            .delete_by_id
            .starts_with(r#"DELETE FROM "web_sessions""#));
        let mysql = Statements::new(Dialect::MySql, &table);
        assert!(mysql.delete_by_id.starts_with("DELETE FROM `web_sessions`"));
    }

    /// What a save binds: the row's columns but `created_at`, which only the insert writes.
    fn row_binds() -> Vec<Bind> {
        let mut binds = ROW_COLUMNS.map(Bind::Column).to_vec();
        binds.retain(|bind| *bind != Bind::Column(Column::CreatedAt));
        binds
    }

    #[test]
    fn every_row_statement_binds_the_data_exactly_once() {
        for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::MySql] {
            let s = Statements::new(dialect, &SessionTable::default());
            for statement in [
                &s.update_if_present,
                &s.update_if_version,
                &s.update_if_present_reporting,
                &s.update_if_version_reporting,
            ] {
                let data = Bind::Column(Column::Data);
                assert_eq!(statement.binds.iter().filter(|b| **b == data).count(), 1);
                // Every placeholder has its value, and nothing else is one (the version's
                // `+ 1` is a literal).
                let placeholders = match dialect {
                    Dialect::Postgres => (1..=statement.binds.len())
                        .filter(|n| statement.sql.contains(&format!("${n}")))
                        .count(),
                    Dialect::Sqlite | Dialect::MySql => statement.sql.matches('?').count(),
                };
                assert_eq!(placeholders, statement.binds.len(), "{}", statement.sql);
                assert!(!statement
                    .sql
                    .contains(&format!("${}", statement.binds.len() + 1)));
            }
        }
    }

    fn set_then_id_binds() -> Vec<Bind> {
        let mut binds = row_binds();
        binds.rotate_left(1);
        binds
    }

    #[test]
    fn a_merging_save_updates_only_the_version_it_read() {
        let pg = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            pg.update_if_version.sql,
            r#"UPDATE "tower_sessions"."session" SET "data" = $2, "expiry_date" = $3, "user_key" = $4, "updated_at" = $5, "listed_values" = $6, "long_lived" = $7, "version" = "version" + 1 WHERE "id" = $1 AND "version" = $8"#
        );
        let mut binds = row_binds();
        binds.push(Bind::ExpectedVersion);
        assert_eq!(pg.update_if_version.binds, binds);
        let sqlite = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            sqlite.update_if_version.sql,
            r#"UPDATE "session" SET "data" = ?, "expiry_date" = ?, "user_key" = ?, "updated_at" = ?, "listed_values" = ?, "long_lived" = ?, "version" = "version" + 1 WHERE "id" = ? AND "version" = ?"#
        );
        let mut binds = set_then_id_binds();
        binds.push(Bind::ExpectedVersion);
        assert_eq!(sqlite.update_if_version.binds, binds);
        let mysql = Statements::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.update_if_version.sql,
            "UPDATE `session` SET `data` = ?, `expiry_date` = ?, `user_key` = ?, `updated_at` = ?, `listed_values` = ?, `long_lived` = ?, `version` = `version` + 1 WHERE `id` = ? AND `version` = ?"
        );
        assert_eq!(mysql.update_if_version.binds, binds);
    }

    #[test]
    fn postgres_user_index_statements() {
        let s = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            s.find_unexpired_by_user,
            r#"SELECT "id", LEAST(GREATEST("expiry_date", TIMESTAMPTZ '0001-01-01 00:00:00+00'), TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'), LEAST(GREATEST("created_at", TIMESTAMPTZ '0001-01-01 00:00:00+00'), TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'), LEAST(GREATEST("updated_at", TIMESTAMPTZ '0001-01-01 00:00:00+00'), TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'), "listed_values", "long_lived" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "expiry_date" > $2 AND ("created_at" > $3 OR ("long_lived" AND "created_at" > $4))"#
        );
        assert_eq!(
            s.delete_by_user_and_id,
            r#"DELETE FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "id" = $2"#
        );
    }

    #[test]
    fn only_postgres_clamps_the_expiry_a_listing_reads() {
        let sqlite = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            sqlite.find_unexpired_by_user,
            r#"SELECT "id", "expiry_date", "created_at", "updated_at", "listed_values", "long_lived" FROM "session" WHERE "user_key" = ? AND "expiry_date" > ? AND ("created_at" > ? OR ("long_lived" AND "created_at" > ?))"#
        );
        let mysql = Statements::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.find_unexpired_by_user,
            "SELECT `id`, `expiry_date`, `created_at`, `updated_at`, `listed_values`, `long_lived` FROM `session` WHERE `user_key` = ? AND `expiry_date` > ? AND (`created_at` > ? OR (`long_lived` AND `created_at` > ?))"
        );
    }

    #[test]
    fn a_reporting_save_tells_a_change_of_user_within_its_statement() {
        let pg = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            pg.update_if_present_reporting.sql,
            r#"UPDATE "tower_sessions"."session" SET "data" = $2, "expiry_date" = $3, "user_key" = $4, "updated_at" = $5, "listed_values" = $6, "long_lived" = $7, "version" = "version" + 1 FROM (SELECT "user_key" AS "previous_user_key" FROM "tower_sessions"."session" WHERE "id" = $1 FOR UPDATE) AS "previous" WHERE "tower_sessions"."session"."id" = $1 RETURNING "previous"."previous_user_key" IS DISTINCT FROM $4"#
        );
        assert!(pg.update_if_version_reporting.sql.ends_with(
            r#"AND "version" = $8 RETURNING "previous"."previous_user_key" IS DISTINCT FROM $4"#
        ));
        let mysql = Statements::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.update_if_present_reporting.sql,
            "UPDATE `session` SET `data` = ?, `expiry_date` = ?, `user_key` = IF(LAST_INSERT_ID(IF(`user_key` <=> ?, 1, 2)) > 0, ?, NULL), `updated_at` = ?, `listed_values` = ?, `long_lived` = ?, `version` = `version` + 1 WHERE `id` = ?"
        );
        for statement in [
            &mysql.update_if_present_reporting,
            &mysql.update_if_version_reporting,
        ] {
            assert_eq!(statement.binds.len(), statement.sql.matches('?').count());
        }
        // SQLite reads the previous user first: its reporting save is the plain one.
        let sqlite = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(sqlite.update_if_present_reporting, sqlite.update_if_present);
    }

    #[test]
    fn an_absolute_lifetime_cleans_up_outlived_rows_too() {
        let pg = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            pg.delete_outlived_batch,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "tower_sessions"."session" WHERE "expiry_date" <= $1 OR ("created_at" <= $2 AND ((NOT "long_lived") OR "created_at" <= $3)) LIMIT $4 FOR UPDATE SKIP LOCKED) AND ("expiry_date" <= $5 OR ("created_at" <= $6 AND ((NOT "long_lived") OR "created_at" <= $7)))"#
        );
        let mysql = Statements::new(Dialect::MySql, &SessionTable::default());
        assert_eq!(
            mysql.delete_outlived_batch,
            "DELETE FROM `session` WHERE `expiry_date` <= ? OR (`created_at` <= ? AND ((NOT `long_lived`) OR `created_at` <= ?)) LIMIT ?"
        );
        assert_eq!(
            mysql.delete_outlived_values("now", ["born", "long"], "limit"),
            ["now", "born", "long", "limit"]
        );
    }

    #[test]
    fn a_distributed_tables_cleanup_locks_nothing_and_stays_batched() {
        let table = SessionTable::default().with_distributed();
        let pg = Statements::new(Dialect::Postgres, &table);
        assert_eq!(
            pg.delete_expired_batch,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "tower_sessions"."session" WHERE "expiry_date" <= $1 LIMIT $2) AND "expiry_date" <= $3"#
        );
        assert_eq!(
            pg.delete_outlived_batch,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "tower_sessions"."session" WHERE "expiry_date" <= $1 OR ("created_at" <= $2 AND ((NOT "long_lived") OR "created_at" <= $3)) LIMIT $4) AND ("expiry_date" <= $5 OR ("created_at" <= $6 AND ((NOT "long_lived") OR "created_at" <= $7)))"#
        );
        for sql in [
            &pg.per_user.trim,
            &pg.per_user.delete_by_user,
            &pg.per_user.delete_by_user_except,
        ] {
            assert!(!sql.contains("FOR UPDATE"), "{sql}");
        }
    }
}
