//! The session table's columns, and the values a row statement binds: what the statements
//! (`statements.rs`, `update.rs`) and the repository (`repository.rs`) share.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Id,
    Data,
    ExpiryDate,
    UserKey,
    CreatedAt,
    UpdatedAt,
    ListedValues,
    Version,
    LongLived,
}

impl sea_orm::sea_query::Iden for Column {
    fn unquoted(&self) -> &str {
        match self {
            Self::Id => "id",
            Self::Data => "data",
            Self::ExpiryDate => "expiry_date",
            Self::UserKey => "user_key",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::ListedValues => "listed_values",
            Self::Version => "version",
            Self::LongLived => "long_lived",
        }
    }
}

/// A value a statement binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bind {
    /// The row's value of this column.
    Column(Column),
    /// The version a save expects the row to hold: `update_if_present`'s `expected_version`.
    ExpectedVersion,
}

/// A statement about one row, and the values its placeholders take, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowStatement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// The columns a row is written to, in the order its values are bound (`version` takes its
/// default, 0).
pub(crate) const ROW_COLUMNS: [Column; 8] = [
    Column::Id,
    Column::Data,
    Column::ExpiryDate,
    Column::UserKey,
    Column::CreatedAt,
    Column::UpdatedAt,
    Column::ListedValues,
    Column::LongLived,
];

/// The creation bound of a live row in hand-written SQL, `short` and `long` its placeholders:
/// created after `short` (the absolute lifetime) or, marked long-lived, after `long` (its own).
/// The one place the two lifetimes meet; `statements.rs` builds the same with sea-query.
pub(crate) fn born_live(dialect: super::Dialect, short: &str, long: &str) -> String {
    let [created, long_lived] =
        ["created_at", "long_lived"].map(|column| super::identifier::quote(dialect, column));
    format!("({created} > {short} OR ({long_lived} AND {created} > {long}))")
}
