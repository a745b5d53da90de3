//! The SQL each repository operation sends, rendered once per table by sea-query (which quotes
//! the identifiers) and reused for every call.

use sea_orm::{
    sea_query::{
        Alias, Expr, ExprTrait, LockBehavior, LockType, OnConflict, PostgresQueryBuilder, Query,
        TableRef,
    },
    DbBackend, Value,
};
use time::OffsetDateTime;

use super::SessionTable;

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
    /// `$1 id, $2 data, $3 expiry_date`; affects 0 rows when the id is taken.
    pub insert_if_absent: String,
    /// `$1 id, $2 data, $3 expiry_date`.
    pub upsert: String,
    /// `$1 id, $2 now`; returns `data`.
    pub find_unexpired: String,
    /// `$1 id`.
    pub delete_by_id: String,
    /// `$1 now, $2 limit, $3 now`.
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
    Value::TimeDateTimeWithTimeZone(Some(OffsetDateTime::UNIX_EPOCH))
}

impl Statements {
    /// The statements for `backend`, or `None` if this build has no dialect for it.
    pub(crate) fn new(backend: DbBackend, table: &SessionTable) -> Option<Self> {
        match backend {
            DbBackend::Postgres => Some(Self::postgres(table)),
            _ => None,
        }
    }

    fn postgres(table: &SessionTable) -> Self {
        let target =
            || -> TableRef { (Alias::new(table.schema()), Alias::new(table.table())).into() };
        let columns = [Column::Id, Column::Data, Column::ExpiryDate];

        // ON CONFLICT DO NOTHING, not a check before the insert: two requests creating the same
        // id cannot both win, and the rows-affected count tells the loser it lost.
        let insert_if_absent = Query::insert()
            .into_table(target())
            .columns(columns)
            .values_panic([id().into(), data().into(), instant().into()])
            .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
            .to_owned()
            .build(PostgresQueryBuilder)
            .0;

        let upsert = Query::insert()
            .into_table(target())
            .columns(columns)
            .values_panic([id().into(), data().into(), instant().into()])
            .on_conflict(
                OnConflict::column(Column::Id)
                    .update_columns([Column::Data, Column::ExpiryDate])
                    .to_owned(),
            )
            .to_owned()
            .build(PostgresQueryBuilder)
            .0;

        let find_unexpired = Query::select()
            .column(Column::Data)
            .from(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .and_where(Expr::col(Column::ExpiryDate).gt(instant()))
            .to_owned()
            .build(PostgresQueryBuilder)
            .0;

        let delete_by_id = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::Id).eq(id()))
            .to_owned()
            .build(PostgresQueryBuilder)
            .0;

        // A bounded batch: the subquery picks at most `limit` expired ids, skipping rows another
        // cleaner (another replica) holds, so concurrent cleanups do not queue behind each other.
        // The outer condition re-checks the expiry, so a row a concurrent save just extended is
        // never deleted.
        let expired_ids = Query::select()
            .column(Column::Id)
            .from(target())
            .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
            .limit(1)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let delete_expired_batch = Query::delete()
            .from_table(target())
            .and_where(Expr::col(Column::Id).in_subquery(expired_ids))
            .and_where(Expr::col(Column::ExpiryDate).lte(instant()))
            .to_owned()
            .build(PostgresQueryBuilder)
            .0;

        Self {
            insert_if_absent,
            upsert,
            find_unexpired,
            delete_by_id,
            delete_expired_batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statements_are_one_quoted_statement_each() {
        let s = Statements::new(DbBackend::Postgres, &SessionTable::default()).unwrap();
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
    }

    #[test]
    fn names_are_quoted_by_the_builder() {
        let table = SessionTable::default()
            .with_schema("app_Schema")
            .unwrap()
            .with_table("web_sessions")
            .unwrap();
        let s = Statements::new(DbBackend::Postgres, &table).unwrap();
        assert!(s
            .delete_by_id
            .starts_with(r#"DELETE FROM "app_Schema"."web_sessions""#));
    }
}
