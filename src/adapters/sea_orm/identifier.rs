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
#[error(
    "invalid {kind} name: {reason}; use 1 to 63 ASCII letters, digits and underscores, \
     not starting with a digit"
)]
pub struct IdentifierError {
    /// Which name.
    pub kind: IdentifierKind,
    /// Why it was refused.
    pub reason: &'static str,
}

/// Where the sessions live: a validated schema and table name.
///
/// Names are 1 to 63 bytes (PostgreSQL's limit; longer names are silently truncated by the
/// server) of ASCII letters, digits and underscores, and do not start with a digit. That refuses
/// quotes, spaces, semicolons and look-alike Unicode letters outright; the statements quote the
/// names on top of that.
///
/// ```
/// use tower_sessions_seaorm_store::adapters::sea_orm::SessionTable;
///
/// let table = SessionTable::default().with_table("web_session").unwrap();
/// assert_eq!(table.schema(), "tower_sessions");
/// assert!(SessionTable::default().with_table("session; DROP TABLE users").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    schema: String,
    table: String,
    hash_partitions: Option<u16>,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self {
            schema: "tower_sessions".to_owned(),
            table: "session".to_owned(),
            hash_partitions: None,
        }
    }
}

impl SessionTable {
    /// The default schema (`tower_sessions`) and table (`session`).
    pub fn new() -> Self {
        Self::default()
    }

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

    /// How many hash partitions `migrate()` creates the table with; `None` for a plain table.
    pub fn hash_partitions(&self) -> Option<u16> {
        self.hash_partitions
    }
}

const MAX_LEN: usize = 63;

fn validate(name: &str, kind: IdentifierKind) -> Result<(), IdentifierError> {
    let refuse = |reason| Err(IdentifierError { kind, reason });
    let Some(first) = name.chars().next() else {
        return refuse("the name is empty");
    };
    if name.len() > MAX_LEN {
        return refuse("the name is longer than 63 bytes");
    }
    if first.is_ascii_digit() {
        return refuse("the name starts with a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return refuse("the name has a character other than an ASCII letter, digit or underscore");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["session", "_s", "Sessions_2", &"a".repeat(63)] {
            assert!(SessionTable::new().with_table(name).is_ok(), "{name}");
            assert!(SessionTable::new().with_schema(name).is_ok(), "{name}");
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
            let err = SessionTable::new().with_table(name).unwrap_err();
            assert_eq!(err.kind, IdentifierKind::Table, "{name:?}");
            let err = SessionTable::new().with_schema(name).unwrap_err();
            assert_eq!(err.kind, IdentifierKind::Schema, "{name:?}");
        }
    }

    #[test]
    fn a_refused_name_keeps_the_previous_one() {
        let table = SessionTable::new().with_table("x y");
        assert!(table.is_err());
        assert_eq!(SessionTable::new().table(), "session");
    }
}
