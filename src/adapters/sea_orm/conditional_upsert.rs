//! The upsert of write avoidance: one statement that writes a save unless the stored row has
//! the same values (digest) and an expiry close enough to the new one. sea-query has no
//! conditional `ON CONFLICT … DO UPDATE … WHERE`, nor MySQL's conditional assignments, so this
//! one is written by hand; the names in it are validated identifiers, quoted here.

use super::{
    dialect::Dialect,
    statements::{Column, ROW_COLUMNS},
    SessionTable,
};
use sea_orm::sea_query::Iden;

/// The conditional upsert of [`ROW_COLUMNS`]. Binds the row's values, then the "keep if
/// expiring after" instant (MySQL: once per conditional assignment).
pub(crate) fn render(dialect: Dialect, table: &SessionTable) -> String {
    let columns = ROW_COLUMNS;
    let quote = |name: &str| match dialect {
        Dialect::MySql => format!("`{name}`"),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
    };
    let target = match dialect {
        Dialect::Postgres => format!("{}.{}", quote(table.schema()), quote(table.table())),
        Dialect::Sqlite | Dialect::MySql => quote(table.table()),
    };
    let names: Vec<String> = columns.iter().map(|c| quote(c.unquoted())).collect();
    let list = names.join(", ");
    let placeholders = match dialect {
        Dialect::Postgres => (1..=columns.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", "),
        Dialect::Sqlite | Dialect::MySql => vec!["?"; columns.len()].join(", "),
    };
    let (id, data, expiry, digest) = (
        quote("id"),
        quote("data"),
        quote("expiry_date"),
        quote("data_digest"),
    );

    match dialect {
        // The WHERE of ON CONFLICT DO UPDATE: when it is false the row is locked but not
        // updated, so no new row version is written.
        Dialect::Postgres | Dialect::Sqlite => {
            let (stored, keep, distinct) = match dialect {
                Dialect::Postgres => (
                    quote("stored"),
                    format!("${}", columns.len() + 1),
                    "IS DISTINCT FROM",
                ),
                _ => (target.clone(), "?".to_owned(), "IS NOT"),
            };
            let alias = match dialect {
                Dialect::Postgres => format!(" AS {stored}"),
                _ => String::new(),
            };
            let sets = names[1..]
                .iter()
                .map(|name| format!("{name} = \"excluded\".{name}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO {target}{alias} ({list}) VALUES ({placeholders}) \
                 ON CONFLICT ({id}) DO UPDATE SET {sets} \
                 WHERE {stored}.{digest} {distinct} \"excluded\".{digest} \
                 OR {stored}.{expiry} < {keep} \
                 OR {stored}.{expiry} > \"excluded\".{expiry}"
            )
        }
        // ON DUPLICATE KEY UPDATE has no WHERE: each column keeps its value unless the
        // condition holds, and a row whose every column keeps its value is not written.
        // Assignments run left to right and later ones see earlier results, so `expiry_date`
        // (which the condition reads) is assigned after the others, and the digest, which an
        // unchanged save leaves equal anyway, last.
        Dialect::MySql => {
            let changed = format!(
                "(NOT ({digest} <=> VALUES({digest})) OR {expiry} < ? OR {expiry} > VALUES({expiry}))"
            );
            let conditional = [data, quote(Column::UserKey.unquoted()), expiry.clone()];
            let mut sets: Vec<String> = conditional
                .iter()
                .map(|name| format!("{name} = IF({changed}, VALUES({name}), {name})"))
                .collect();
            sets.push(format!("{digest} = VALUES({digest})"));
            format!(
                "INSERT INTO {target} ({list}) VALUES ({placeholders}) ON DUPLICATE KEY UPDATE {}",
                sets.join(", ")
            )
        }
    }
}
