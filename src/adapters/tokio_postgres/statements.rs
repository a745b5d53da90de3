//! The SQL of each operation, rendered once per table and prepared once per connection.

use crate::adapters::sea_orm::SessionTable;

/// One statement per operation; placeholders are bound in the order the repository passes them.
/// The text is the SeaORM adapter's, so both adapters read and write the same rows the same way.
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

impl Statements {
    pub(crate) fn new(table: &SessionTable) -> Self {
        // SessionTable admits only ASCII letters, digits and underscores, so quoting cannot be
        // escaped; the quotes keep mixed-case names intact.
        let target = format!(r#""{}"."{}""#, table.schema(), table.table());
        let insert = format!(
            r#"INSERT INTO {target} ("id", "data", "expiry_date") VALUES ($1, $2, $3) ON CONFLICT ("id")"#
        );
        Self {
            // ON CONFLICT DO NOTHING, not a check first: the database decides who wins an id.
            insert_if_absent: format!("{insert} DO NOTHING"),
            upsert: format!(
                r#"{insert} DO UPDATE SET "data" = "excluded"."data", "expiry_date" = "excluded"."expiry_date""#
            ),
            find_unexpired: format!(
                r#"SELECT "data" FROM {target} WHERE "id" = $1 AND "expiry_date" > $2"#
            ),
            delete_by_id: format!(r#"DELETE FROM {target} WHERE "id" = $1"#),
            // Bounded, skipping rows another cleaner holds, re-checking expiry on delete: see the
            // SeaORM adapter's statement of the same name.
            delete_expired_batch: format!(
                r#"DELETE FROM {target} WHERE "id" IN (SELECT "id" FROM {target} WHERE "expiry_date" <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) AND "expiry_date" <= $3"#
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_the_seaorm_adapters_statements() {
        let s = Statements::new(&SessionTable::default());
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
    fn names_are_quoted() {
        let table = SessionTable::default()
            .with_schema("app_Schema")
            .unwrap()
            .with_table("web_sessions")
            .unwrap();
        assert!(Statements::new(&table)
            .delete_by_id
            .starts_with(r#"DELETE FROM "app_Schema"."web_sessions""#));
    }
}
