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
    columns::{Bind, Column, RowStatement},
    dialect::Dialect,
    identifier::quote,
    SessionTable,
};
use sea_orm::sea_query::Iden;

/// The setting a quiet save sets for its own transaction: the eviction triggers then log its
/// keys rather than announce them (see `eviction.rs`).
pub(crate) const QUIET_SETTING: &str = "tower_sessions.quiet";

/// The columns a save writes, in the order of its `SET` (then `version`, one more).
const SET_COLUMNS: [Column; 6] = [
    Column::Data,
    Column::ExpiryDate,
    Column::UserKey,
    Column::UpdatedAt,
    Column::ListedValues,
    Column::LongLived,
];

/// `UPDATE … SET data, expiry_date, user_key, updated_at, listed_values, version = version + 1
/// WHERE id = …` (never `created_at`: a save does not make a session younger), and with
/// `if_version`, `AND version = …`: the compare-and-swap of a save that merges.
///
/// With `reporting`, the statement also tells whether it wrote the row with another user key
/// than it had, for the per-user session limit, still in one statement:
/// - PostgreSQL: `FROM` the row's previous user key, read `FOR UPDATE` (so a concurrent save's
///   is seen), `RETURNING` whether it differs; no row back when nothing was written.
/// - MySQL: the `user_key` assignment calls `LAST_INSERT_ID(IF(same, 1, 2))` on the row's previous
///   key (assignments see the values before their own), which the server reports with the
///   result: 0 when nothing was written, 1 for the same user, 2 for another.
/// - SQLite: no way to return a previous value from an update (`RETURNING` sees the new row and
///   may not name a `FROM` table), so the statement is the plain one and the repository reads
///   the user key first, in process.
///
/// With `quiet` (PostgreSQL, a store with a listening cache), the statement also sets
/// [`QUIET_SETTING`] for its transaction, in its `WHERE`: evaluated for the row it writes,
/// before the eviction trigger runs, which then logs the key instead of announcing it (see
/// [`super::eviction`]).
pub(crate) fn render(
    dialect: Dialect,
    table: &SessionTable,
    if_version: bool,
    reporting: bool,
    quiet: bool,
) -> RowStatement {
    let quote = |column: Column| quote(dialect, column.unquoted());

    let target = table.quoted(dialect);
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
        .map(|column| match (dialect, column, reporting) {
            (Dialect::MySql, Column::UserKey, true) => {
                let previous = placeholder(Bind::Column(Column::UserKey));
                let new = placeholder(Bind::Column(Column::UserKey));
                let user_key = quote(Column::UserKey);
                format!(
                    "{user_key} = IF(LAST_INSERT_ID(IF({user_key} <=> {previous}, 1, 2)) > 0, \
                     {new}, NULL)"
                )
            }
            _ => format!(
                "{} = {}",
                quote(*column),
                placeholder(Bind::Column(*column))
            ),
        })
        .chain(std::iter::once({
            let version = quote(Column::Version);
            format!("{version} = {version} + 1")
        }))
        .collect::<Vec<_>>()
        .join(", ");
    let id = id_first.unwrap_or_else(|| placeholder(Bind::Column(Column::Id)));
    let mut sql = match (dialect, reporting) {
        (Dialect::Postgres, true) => format!(
            "UPDATE {target} SET {sets} FROM (SELECT {} AS \"previous_user_key\" FROM {target} \
             WHERE {id_column} = {id} FOR UPDATE) AS \"previous\" WHERE {target}.{id_column} = {id}",
            quote(Column::UserKey),
            id_column = quote(Column::Id),
        ),
        _ => format!(
            "UPDATE {target} SET {sets} WHERE {} = {id}",
            quote(Column::Id)
        ),
    };
    if if_version {
        let version = placeholder(Bind::ExpectedVersion);
        sql.push_str(&format!(" AND {} = {version}", quote(Column::Version)));
    }
    if let (Dialect::Postgres, true) = (dialect, quiet) {
        sql.push_str(&format!(
            " AND set_config('{QUIET_SETTING}', 'on', true) = 'on'"
        ));
    }
    if let (Dialect::Postgres, true) = (dialect, reporting) {
        let user_key = placeholder(Bind::Column(Column::UserKey));
        sql.push_str(&format!(
            " RETURNING \"previous\".\"previous_user_key\" IS DISTINCT FROM {user_key}"
        ));
    }
    RowStatement { sql, binds }
}
