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

#[derive(Clone, Copy)]
pub(crate) enum Column {
    Id,
    Data,
    ExpiryDate,
}

impl sea_orm::sea_query::Iden for Column {
    fn unquoted(&self) -> &str {
        match self {
            Self::Id => "id",
            Self::Data => "data",
            Self::ExpiryDate => "expiry_date",
        }
    }
}

/// The rendered statements. Each is one round trip; the placeholders are bound in the order the
/// repository passes the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statements {
    dialect: Dialect,
    /// `id, data, expiry_date`. PostgreSQL and SQLite: affects 0 rows when the id is taken.
    /// MySQL: a plain insert that fails with a duplicate-key error when the id is taken.
    pub insert_if_absent: String,
    /// `id, data, expiry_date`.
    pub upsert: String,
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
        let columns = [Column::Id, Column::Data, Column::ExpiryDate];
        let insert = || {
            Query::insert()
                .into_table(target())
                .columns(columns)
                .values_panic([id().into(), data().into(), instant().into()])
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
                    .update_columns([Column::Data, Column::ExpiryDate])
                    .to_owned(),
            )
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
            r#"INSERT INTO "tower_sessions"."session" ("id", "data", "expiry_date") VALUES ($1, $2, $3) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.upsert,
            r#"INSERT INTO "tower_sessions"."session" ("id", "data", "expiry_date") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date""#
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
            r#"INSERT INTO "session" ("id", "data", "expiry_date") VALUES (?, ?, ?) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            s.upsert,
            r#"INSERT INTO "session" ("id", "data", "expiry_date") VALUES (?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date""#
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
            "INSERT INTO `session` (`id`, `data`, `expiry_date`) VALUES (?, ?, ?)"
        );
        assert_eq!(
            s.upsert,
            "INSERT INTO `session` (`id`, `data`, `expiry_date`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expiry_date` = VALUES(`expiry_date`)"
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
}
