//! The SQL each repository operation sends, per dialect, rendered once per table by sea-query
//! (which quotes the identifiers) and reused for every call.

use sea_orm::{
    sea_query::{
        Alias, Expr, ExprTrait, LockBehavior, LockType, MysqlQueryBuilder, OnConflict,
        PostgresQueryBuilder, Query, QueryStatementWriter, SqliteQueryBuilder, TableRef,
    },
    Value,
};

use super::{dialect::Dialect, SessionTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Id,
    Data,
    ExpiryDate,
    UserKey,
    DataDigest,
}

impl sea_orm::sea_query::Iden for Column {
    fn unquoted(&self) -> &str {
        match self {
            Self::Id => "id",
            Self::Data => "data",
            Self::ExpiryDate => "expiry_date",
            Self::UserKey => "user_key",
            Self::DataDigest => "data_digest",
        }
    }
}

/// The rendered statements. Each is one round trip; the placeholders are bound in the order the
/// repository passes the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statements {
    dialect: Dialect,
    /// The row's values ([`ROW_COLUMNS`]). PostgreSQL and SQLite: affects 0 rows when the id
    /// is taken. MySQL: a plain insert that fails with a duplicate-key error when the id is
    /// taken.
    pub insert_if_absent: String,
    /// The row's values. Every column is written, `user_key` and `data_digest` too (`NULL`
    /// when the store keeps no index or avoids no writes), so that a digest or a user key is
    /// never left stale by a store configured otherwise.
    pub upsert: String,
    /// The row's values, then the "keep if expiring after" instant
    /// [`Statements::keep_after_repeats`] times. Leaves a stored row alone when its digest is
    /// the same and its expiry lies between that instant and the new expiry.
    pub upsert_unless_unchanged: String,
    /// How many times `upsert_unless_unchanged` takes the "keep if expiring after" instant.
    pub keep_after_repeats: usize,
    /// `user_key, now`; returns `id, expiry_date`.
    pub find_unexpired_by_user: String,
    /// `user_key`.
    pub delete_by_user: String,
    /// `user_key, id`.
    pub delete_by_user_except: String,
    /// `id, now`; returns `data`.
    pub find_unexpired: String,
    /// `id`.
    pub delete_by_id: String,
    /// The values of [`Statements::delete_expired_values`].
    pub delete_expired_batch: String,
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
        Column::Data | Column::DataDigest => data(),
        Column::ExpiryDate => instant(),
    }
}

/// The columns a row is written to, in the order its values are bound.
pub(crate) const ROW_COLUMNS: [Column; 5] = [
    Column::Id,
    Column::Data,
    Column::ExpiryDate,
    Column::UserKey,
    Column::DataDigest,
];

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

        // MySQL renders `ON DUPLICATE KEY UPDATE "data" = VALUES("data"), …`: VALUES() works on
        // MySQL 5.7, 8 and MariaDB alike (the `AS new` alias is MySQL 8.0.19+ only).
        let upsert = insert()
            .on_conflict(
                OnConflict::column(Column::Id)
                    .update_columns(ROW_COLUMNS[1..].to_vec())
                    .to_owned(),
            )
            .to_owned();
        let upsert_unless_unchanged = super::conditional_upsert::render(dialect, table);
        let keep_after_repeats = match dialect {
            Dialect::Postgres | Dialect::Sqlite => 1,
            // One condition per conditional assignment: data, user_key and expiry_date.
            Dialect::MySql => 3,
        };

        let find_unexpired_by_user = Query::select()
            .columns([Column::Id, Column::ExpiryDate])
            .from(target())
            .and_where(Expr::col(Column::UserKey).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .to_owned();
        let delete_by_user = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::UserKey).eq(id()))
            .to_owned();
        let delete_by_user_except = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::UserKey).eq(id()))
            .and_where(Expr::col(Column::Id).ne(id()))
            .to_owned();

        let find_unexpired = Query::select()
            .column(Column::Data)
            .from(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .to_owned();

        let delete_by_id = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .to_owned();

        let delete_expired_batch = match dialect {
            // A bounded batch: the subquery picks at most `limit` expired ids, skipping rows
            // another cleaner (another replica) holds, so concurrent cleanups do not queue behind
            // each other. The outer condition re-checks the expiry, so a row a concurrent save
            // just extended is never deleted.
            Dialect::Postgres => {
                let expired_ids = Query::select()
                    .column(Column::Id)
                    .from(target())
                    .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
                    .limit(1)
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                    .to_owned();
                Query::delete()
                    .from_table(target())
                    .and_where(Expr::col(Column::Id).in_subquery(expired_ids))
                    .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
                    .to_owned()
            }
            // SQLite has no DELETE … LIMIT (unless compiled with it) but runs the whole
            // statement under its single write lock, so the subquery needs no re-check.
            Dialect::Sqlite => {
                let expired_ids = Query::select()
                    .column(Column::Id)
                    .from(target())
                    .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
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
                .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
                .limit(1)
                .to_owned(),
        };

        Self {
            dialect,
            insert_if_absent: render(dialect, &insert_if_absent),
            upsert: render(dialect, &upsert),
            upsert_unless_unchanged,
            keep_after_repeats,
            find_unexpired_by_user: render(dialect, &find_unexpired_by_user),
            delete_by_user: render(dialect, &delete_by_user),
            delete_by_user_except: render(dialect, &delete_by_user_except),
            find_unexpired: render(dialect, &find_unexpired),
            delete_by_id: render(dialect, &delete_by_id),
            delete_expired_batch: render(dialect, &delete_expired_batch),
        }
    }

    /// The values `delete_expired_batch` takes, in order.
    pub(crate) fn delete_expired_values(&self, now: Value, limit: Value) -> Vec<Value> {
        match self.dialect {
            Dialect::Postgres => vec![now.clone(), limit, now],
            Dialect::Sqlite | Dialect::MySql => vec![now, limit],
        }
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

    #[test]
    fn postgres_statements_are_one_quoted_statement_each() {
        let s = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            s.insert_if_absent,
            r#"INSERT INTO "tower_sessions"."session" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.upsert,
            r#"INSERT INTO "tower_sessions"."session" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date", "user_key" = "excluded"."user_key", "data_digest" = "excluded"."data_digest""#
        );
        assert_eq!(
            s.find_unexpired,
            r#"SELECT "data" FROM "tower_sessions"."session" WHERE "id" = $1 AND "expiry_date" > $2"#
        );
        assert_eq!(
            s.delete_by_id,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" = $1"#
        );
        assert_eq!(
            s.delete_expired_batch,
            r#"DELETE FROM "tower_sessions"."session" WHERE "id" IN (SELECT "id" FROM "tower_sessions"."session" WHERE "expiry_date" <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) AND "expiry_date" <= $3"#
        );
        let values = s.delete_expired_values(Value::BigInt(Some(1)), Value::BigInt(Some(2)));
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn sqlite_statements_ignore_the_schema_and_use_on_conflict() {
        let s = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            s.insert_if_absent,
            r#"INSERT INTO "session" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES (?, ?, ?, ?, ?) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.upsert,
            r#"INSERT INTO "session" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES (?, ?, ?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date", "user_key" = "excluded"."user_key", "data_digest" = "excluded"."data_digest""#
        );
        assert_eq!(
            s.find_unexpired,
            r#"SELECT "data" FROM "session" WHERE "id" = ? AND "expiry_date" > ?"#
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
            "INSERT INTO `session` (`id`, `data`, `expiry_date`, `user_key`, `data_digest`) VALUES (?, ?, ?, ?, ?)"
        );
        assert_eq!(
            s.upsert,
            "INSERT INTO `session` (`id`, `data`, `expiry_date`, `user_key`, `data_digest`) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expiry_date` = VALUES(`expiry_date`), `user_key` = VALUES(`user_key`), `data_digest` = VALUES(`data_digest`)"
        );
        assert_eq!(
            s.find_unexpired,
            "SELECT `data` FROM `session` WHERE `id` = ? AND `expiry_date` > ?"
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

    #[test]
    fn postgres_write_avoidance_and_user_index_statements() {
        let s = Statements::new(Dialect::Postgres, &SessionTable::default());
        assert_eq!(
            s.upsert_unless_unchanged,
            r#"INSERT INTO "tower_sessions"."session" AS "stored" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date", "user_key" = "excluded"."user_key", "data_digest" = "excluded"."data_digest" WHERE "stored"."data_digest" IS DISTINCT FROM "excluded"."data_digest" OR "stored"."expiry_date" < $6 OR "stored"."expiry_date" > "excluded"."expiry_date""#
        );
        assert_eq!(s.keep_after_repeats, 1);
        assert_eq!(
            s.find_unexpired_by_user,
            r#"SELECT "id", "expiry_date" FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "expiry_date" > $2"#
        );
        assert_eq!(
            s.delete_by_user,
            r#"DELETE FROM "tower_sessions"."session" WHERE "user_key" = $1"#
        );
        assert_eq!(
            s.delete_by_user_except,
            r#"DELETE FROM "tower_sessions"."session" WHERE "user_key" = $1 AND "id" <> $2"#
        );
    }

    #[test]
    fn sqlite_write_avoidance_names_the_table_and_is_null_safe() {
        let s = Statements::new(Dialect::Sqlite, &SessionTable::default());
        assert_eq!(
            s.upsert_unless_unchanged,
            r#"INSERT INTO "session" ("id", "data", "expiry_date", "user_key", "data_digest") VALUES (?, ?, ?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date", "user_key" = "excluded"."user_key", "data_digest" = "excluded"."data_digest" WHERE "session"."data_digest" IS NOT "excluded"."data_digest" OR "session"."expiry_date" < ? OR "session"."expiry_date" > "excluded"."expiry_date""#
        );
        assert_eq!(s.keep_after_repeats, 1);
    }

    #[test]
    fn mysql_write_avoidance_assigns_the_expiry_after_what_its_condition_guards() {
        let s = Statements::new(Dialect::MySql, &SessionTable::default());
        let changed = "(NOT (`data_digest` <=> VALUES(`data_digest`)) OR `expiry_date` < ? OR `expiry_date` > VALUES(`expiry_date`))";
        assert_eq!(
            s.upsert_unless_unchanged,
            format!(
                "INSERT INTO `session` (`id`, `data`, `expiry_date`, `user_key`, `data_digest`) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                 `data` = IF({changed}, VALUES(`data`), `data`), \
                 `user_key` = IF({changed}, VALUES(`user_key`), `user_key`), \
                 `expiry_date` = IF({changed}, VALUES(`expiry_date`), `expiry_date`), \
                 `data_digest` = VALUES(`data_digest`)"
            )
        );
        assert_eq!(
            s.keep_after_repeats,
            s.upsert_unless_unchanged.matches('?').count() - 5
        );
    }
}
