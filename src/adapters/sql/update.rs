//! The statements of a save: an `UPDATE` of the row with the session's key, never an insert.
//!
//! tower-sessions saves only sessions it found at load time, so a row missing at save time was
//! deleted or revoked in between (a logout on another tab, "log out everywhere"); an upsert
//! would bring it back and log the device in again. An `UPDATE … WHERE id = …` of a missing row
//! changes nothing, in one statement, with no read first.
//!
//! sea-query renders no null-safe comparison in a `WHERE` for all three dialects, so these two
//! are written here; the names in them are validated identifiers, quoted here.

use super::{
    dialect::Dialect,
    statements::{Bind, Column, RowStatement},
    SessionTable,
};
use sea_orm::sea_query::Iden;

/// The columns a save writes, in the order of its `SET`.
const SET_COLUMNS: [Column; 4] = [
    Column::Data,
    Column::ExpiryDate,
    Column::UserKey,
    Column::DataDigest,
];

/// `UPDATE … SET data, expiry_date, user_key, data_digest … WHERE id = …`, and with
/// `unless_unchanged`, `AND` the stored row differs from the save in a way worth writing: other
/// values (digest), another user key, an expiry before the "keep if expiring after" instant, or
/// a shorter expiry.
pub(crate) fn render(
    dialect: Dialect,
    table: &SessionTable,
    unless_unchanged: bool,
) -> RowStatement {
    let quote = |column: Column| match dialect {
        Dialect::MySql => format!("`{}`", column.unquoted()),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", column.unquoted()),
    };
    let target = match dialect {
        Dialect::Postgres => format!("\"{}\".\"{}\"", table.schema(), table.table()),
        Dialect::Sqlite => format!("\"{}\"", table.table()),
        Dialect::MySql => format!("`{}`", table.table()),
    };
    let mut binds = Vec::new();
    // PostgreSQL numbers its placeholders, so each value is bound once and named again where
    // it is needed; SQLite and MySQL get one `?` (and one bound value) per use.
    let mut placeholder = |bind: Bind| match dialect {
        Dialect::Postgres => {
            let position = match binds.iter().position(|b| *b == bind) {
                Some(position) => position,
                None => {
                    binds.push(bind);
                    binds.len() - 1
                }
            };
            format!("${}", position + 1)
        }
        Dialect::Sqlite | Dialect::MySql => {
            binds.push(bind);
            "?".to_owned()
        }
    };
    // On PostgreSQL the id comes first ($1), as in the insert, so both bind in column order.
    let id_first = match dialect {
        Dialect::Postgres => Some(placeholder(Bind::Column(Column::Id))),
        Dialect::Sqlite | Dialect::MySql => None,
    };
    let sets = SET_COLUMNS
        .iter()
        .map(|column| {
            format!(
                "{} = {}",
                quote(*column),
                placeholder(Bind::Column(*column))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let id = id_first.unwrap_or_else(|| placeholder(Bind::Column(Column::Id)));
    let mut sql = format!(
        "UPDATE {target} SET {sets} WHERE {} = {id}",
        quote(Column::Id)
    );
    if unless_unchanged {
        let mut differs = |column: Column| {
            let value = placeholder(Bind::Column(column));
            let column = quote(column);
            match dialect {
                Dialect::Postgres => format!("{column} IS DISTINCT FROM {value}"),
                Dialect::Sqlite => format!("{column} IS NOT {value}"),
                Dialect::MySql => format!("NOT ({column} <=> {value})"),
            }
        };
        let digest = differs(Column::DataDigest);
        // The user key is part of what a save writes: a store that starts indexing, or indexes
        // by another path, must re-index an unchanged session at its next save.
        let user_key = differs(Column::UserKey);
        let expiry = quote(Column::ExpiryDate);
        let keep_after = placeholder(Bind::KeepIfExpiringAfter);
        let new_expiry = placeholder(Bind::Column(Column::ExpiryDate));
        sql.push_str(&format!(
            " AND ({digest} OR {user_key} OR {expiry} < {keep_after} OR {expiry} > {new_expiry})"
        ));
    }
    RowStatement { sql, binds }
}
