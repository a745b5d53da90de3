use std::fmt;

/// Which name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// The schema name.
    Schema,
    /// The table name.
    Table,
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Schema => "schema",
            Self::Table => "table",
        })
    }
}

/// A schema or table name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name: {reason}")]
pub struct IdentifierError {
    /// Which name.
    pub kind: IdentifierKind,
    /// Why it was refused, and what to use instead.
    pub reason: &'static str,
}

/// A reason followed by the rule every name follows.
macro_rules! against_the_rule {
    ($reason:literal) => {
        concat!(
            $reason,
            "; use 1 to 63 ASCII letters, digits and underscores, not starting with a digit"
        )
    };
}

/// Where the sessions live: a validated schema and table name.
///
/// Names are 1 to 63 bytes (PostgreSQL's limit; longer names are silently truncated by the
/// server) of ASCII letters, digits and underscores, and do not start with a digit. That refuses
/// quotes, spaces, semicolons and look-alike Unicode letters outright; the statements quote the
/// names on top of that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    schema: String,
    table: String,
    hash_partitions: Option<u16>,
    #[cfg_attr(not(feature = "migration"), allow(dead_code))]
    unlogged: bool,
    distributed: bool,
    history: bool,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self {
            schema: "tower_sessions".to_owned(),
            table: "session".to_owned(),
            hash_partitions: None,
            unlogged: false,
            distributed: false,
            history: false,
        }
    }
}

impl SessionTable {
    /// The same table in schema `schema`.
    pub fn with_schema(mut self, schema: &str) -> Result<Self, IdentifierError> {
        validate(schema, IdentifierKind::Schema)?;
        self.schema = schema.to_owned();
        Ok(self)
    }

    /// The table `table` in the same schema.
    pub fn with_table(mut self, table: &str) -> Result<Self, IdentifierError> {
        validate(table, IdentifierKind::Table)?;
        self.table = table.to_owned();
        Ok(self)
    }

    /// The schema name (PostgreSQL's schema; ignored where the backend has none).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The same table, created by `migrate()` hash-partitioned by id into `partitions`
    /// partitions (PostgreSQL only). Checked when the migration runs: 1 to
    /// `migration::MAX_HASH_PARTITIONS`.
    #[cfg(feature = "migration")]
    pub fn with_hash_partitions(mut self, partitions: u16) -> Self {
        self.hash_partitions = Some(partitions);
        self
    }

    /// The table's name as spans and logs show it: `schema.table` on PostgreSQL, `table`
    /// elsewhere.
    pub(crate) fn label(&self, dialect: super::Dialect) -> String {
        match dialect {
            super::Dialect::Postgres => format!("{}.{}", self.schema, self.table),
            super::Dialect::Sqlite | super::Dialect::MySql => self.table.clone(),
        }
    }

    /// The table's name as `dialect`'s statements name it: `"schema"."table"` on PostgreSQL,
    /// the table alone elsewhere (the connection's database), quoted.
    pub(crate) fn quoted(&self, dialect: super::Dialect) -> String {
        match dialect {
            super::Dialect::Postgres => format!(
                "{}.{}",
                quote(dialect, &self.schema),
                quote(dialect, &self.table)
            ),
            super::Dialect::Sqlite | super::Dialect::MySql => quote(dialect, &self.table),
        }
    }

    /// Checks the table name against what `dialect` makes of it: SQLite ignores case in names,
    /// so a name with an uppercase letter is refused there (`Sessions` would be `sessions`, and
    /// two stores would share their rows).
    pub(crate) fn check_for(&self, dialect: super::Dialect) -> Result<(), IdentifierError> {
        if dialect == super::Dialect::Sqlite && self.table.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(IdentifierError {
                kind: IdentifierKind::Table,
                reason: "SQLite ignores case in table names, so `Sessions` and `sessions` would \
                         be one table whose sessions two stores share; use lowercase letters, \
                         digits and underscores",
            });
        }
        Ok(())
    }

    /// The same table, made `UNLOGGED` by `migrate()` (PostgreSQL only).
    #[cfg(feature = "migration")]
    pub fn with_unlogged(mut self) -> Self {
        self.unlogged = true;
        self
    }

    /// Whether `migrate()` makes the table `UNLOGGED`.
    #[cfg(feature = "migration")]
    pub fn unlogged(&self) -> bool {
        self.unlogged
    }

    /// The same table, distributed by id over a Citus cluster's workers: `migrate()`
    /// distributes it, and cleanup deletes without row locks (Citus refuses `FOR UPDATE` in a
    /// statement that reaches more than one shard).
    pub fn with_distributed(mut self) -> Self {
        self.distributed = true;
        self
    }

    /// Whether the table is distributed over a Citus cluster.
    pub fn distributed(&self) -> bool {
        self.distributed
    }

    /// The same table, with the login history beside it (`<table>_history`, PostgreSQL): every
    /// write also logs, in its own statement (see `history.rs`).
    pub(crate) fn with_history(mut self) -> Self {
        self.history = true;
        self
    }

    /// Whether the login history is kept beside the table.
    pub(crate) fn history(&self) -> bool {
        self.history
    }

    /// How many hash partitions `migrate()` creates the table with; `None` for a plain table.
    #[cfg(feature = "migration")]
    pub fn hash_partitions(&self) -> Option<u16> {
        self.hash_partitions
    }
}

const MAX_LEN: usize = 63;

/// `name` quoted for `dialect`: the one quoter of the hand-written statements. Every name is a
/// validated identifier (ASCII letters, digits, underscores) or one of the store's own, so no
/// quote character can occur in it; doubling them anyway keeps that true of any caller.
pub(crate) fn quote(dialect: super::Dialect, name: &str) -> String {
    match dialect {
        super::Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        super::Dialect::Postgres | super::Dialect::Sqlite => {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }
}

fn validate(name: &str, kind: IdentifierKind) -> Result<(), IdentifierError> {
    let refuse = |reason| Err(IdentifierError { kind, reason });
    let Some(first) = name.chars().next() else {
        return refuse(against_the_rule!("the name is empty"));
    };
    if name.len() > MAX_LEN {
        return refuse(against_the_rule!("the name is longer than 63 bytes"));
    }
    if first.is_ascii_digit() {
        return refuse(against_the_rule!("the name starts with a digit"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return refuse(against_the_rule!(
            "the name has a character other than an ASCII letter, digit or underscore"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["session", "_s", "Sessions_2", &"a".repeat(63)] {
            assert!(SessionTable::default().with_table(name).is_ok(), "{name}");
            assert!(SessionTable::default().with_schema(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_or_confuse() {
        let long = "a".repeat(64);
        for name in [
            "",
            "1session",
            "ses\"sion",
            "ses'sion",
            "ses sion",
            "session;",
            "session; DROP TABLE users; --",
            "sess\u{0456}on", // Cyrillic і
            "séssion",
            "ses-sion",
            "ses.sion",
            "ses\0sion",
            long.as_str(),
        ] {
            let err = SessionTable::default().with_table(name).unwrap_err();
            assert_eq!(err.kind, IdentifierKind::Table, "{name:?}");
            let err = SessionTable::default().with_schema(name).unwrap_err();
            assert_eq!(err.kind, IdentifierKind::Schema, "{name:?}");
        }
    }

    #[test]
    fn sqlite_refuses_uppercase_table_names_and_the_others_do_not() {
        use super::super::Dialect;
        let upper = SessionTable::default().with_table("Sessions").unwrap();
        let err = upper.check_for(Dialect::Sqlite).unwrap_err();
        assert_eq!(err.kind, IdentifierKind::Table);
        assert!(err.to_string().contains("SQLite ignores case"), "{err}");
        assert!(upper.check_for(Dialect::Postgres).is_ok());
        assert!(upper.check_for(Dialect::MySql).is_ok());
        let lower = SessionTable::default()
            .with_table("web_sessions_2")
            .unwrap();
        assert!(lower.check_for(Dialect::Sqlite).is_ok());
        let schema = SessionTable::default().with_schema("Auth").unwrap();
        assert!(
            schema.check_for(Dialect::Sqlite).is_ok(),
            "SQLite has no schemas"
        );
    }

    #[test]
    fn a_refusal_says_why_and_what_to_use() {
        let err = SessionTable::default().with_table("1session").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid table name: the name starts with a digit; use 1 to 63 ASCII letters, \
             digits and underscores, not starting with a digit"
        );
    }

    #[test]
    fn a_refusal_names_which_name_was_refused_and_a_valid_one_is_kept_as_given() {
        let table = SessionTable::default().with_table("web_session").unwrap();
        assert_eq!(table.table(), "web_session");
        let err = table.clone().with_schema("x y").unwrap_err();
        assert_eq!(err.kind, IdentifierKind::Schema);
        let err = table.with_table("x y").unwrap_err();
        assert_eq!(err.kind, IdentifierKind::Table);
    }
}
