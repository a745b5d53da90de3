//! The SQL of each operation: the SeaORM adapter's PostgreSQL statements, rendered once per table
//! (see `adapters/sql/statements.rs`) and prepared once per connection here, so both
//! adapters read and write the same rows the same way.

use crate::adapters::sql::{Dialect, SessionTable, Statements};

/// The PostgreSQL statements for `table`; placeholders are bound in the order the repository
/// passes them (`delete_expired_batch`: `$1 now, $2 limit, $3 now`).
pub(crate) fn for_table(table: &SessionTable) -> Statements {
    Statements::new(Dialect::Postgres, table)
}
