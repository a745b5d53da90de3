//! The names PostgreSQL gives the session table's objects, derived from the table's name, and
//! the check that they fit its 63 bytes and never collide.

use crate::HISTORY_TABLE;

/// PostgreSQL's longest name, in bytes (`NAMEDATALEN - 1`); a longer one is silently cut.
pub const MAX_NAME_LEN: usize = 63;

/// The longest partition name: one byte shorter than [`MAX_NAME_LEN`], because PostgreSQL names
/// each table's array type `_<table>` and cuts it to 63 bytes. Two 63-byte partition names that
/// differ only in their last byte would give the same array type name, and past a few dozen of
/// them PostgreSQL gives up ("could not form array type name").
const MAX_PARTITION_NAME_LEN: usize = MAX_NAME_LEN - 1;

/// The name of the expiry index of `table`, kept within PostgreSQL's 63 bytes so that two long
/// table names never truncate to the same index name.
pub fn expiry_index_name(table: &str) -> String {
    bounded_name(table, "_expiry_date_idx", MAX_NAME_LEN)
}

/// The name of the per-user index of `table` ([`AddUserIndex`](crate::AddUserIndex)), within
/// 63 bytes as [`expiry_index_name`].
pub fn user_key_index_name(table: &str) -> String {
    bounded_name(table, "_user_key_idx", MAX_NAME_LEN)
}

/// The name of the creation-instant index of `table`
/// ([`AddSessionTimes`](crate::AddSessionTimes)), within 63 bytes as [`expiry_index_name`].
pub fn created_at_index_name(table: &str) -> String {
    bounded_name(table, "_created_at_idx", MAX_NAME_LEN)
}

/// The name of partition `k` of `table`
/// ([`CreatePartitionedSessionTable`](crate::CreatePartitionedSessionTable)): `<table>_p<k>`,
/// shortened with a stable hash of the table name past 62 bytes, so that neither two long table
/// names nor the partitions' array types ever collide.
pub fn partition_name(table: &str, k: u16) -> String {
    bounded_name(table, &format!("_p{k}"), MAX_PARTITION_NAME_LEN)
}

/// The name PostgreSQL gives the array type of a table named `name`: `_<name>`, cut to 63
/// bytes (it picks another only when that one is taken).
fn array_type_name(name: &str) -> String {
    let array = format!("_{name}");
    array[..array.floor_char_boundary(MAX_NAME_LEN)].to_owned()
}

/// `<table><suffix>`, shortened with a stable hash of the table name when it would pass
/// `max_len` bytes, so that two long table names never truncate to the same name.
fn bounded_name(table: &str, suffix: &str, max_len: usize) -> String {
    let name = format!("{table}{suffix}");
    if name.len() <= max_len {
        return name;
    }
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let prefix_len = table.floor_char_boundary(max_len.saturating_sub(suffix.len() + 9));
    format!("{}_{:08x}{suffix}", &table[..prefix_len], hash as u32)
}

/// A name derived from the session table's that PostgreSQL would cut or that collides with
/// another; the message says which and what to shorten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    message: String,
}

/// Checks every name PostgreSQL derives from session table `table` — its three indexes, its
/// `hash_partitions` partitions, and the row and array type of each table (the history table
/// [`HISTORY_TABLE`] too) — against the 63-byte limit and against each other.
///
/// For every table name of 1 to 63 bytes and 1 to
/// [`MAX_HASH_PARTITIONS`](crate::MAX_HASH_PARTITIONS) partitions the names fit and are
/// distinct; the store calls this when it is built, to keep it so.
pub fn check_names(table: &str, hash_partitions: Option<u16>) -> Result<(), NameError> {
    let refuse = |message: String| Err(NameError { message });
    // Each table (its row and array types go with it) and index: what it is, its name, how
    // long that may be.
    let mut tables = vec![("the table".to_owned(), table.to_owned(), MAX_NAME_LEN)];
    tables.extend((0..hash_partitions.unwrap_or(0)).map(|k| {
        let name = partition_name(table, k);
        ("a partition".to_owned(), name, MAX_PARTITION_NAME_LEN)
    }));
    let indexes = [
        ("the expiry index", expiry_index_name(table)),
        ("the user index", user_key_index_name(table)),
        ("the creation index", created_at_index_name(table)),
    ]
    .map(|(what, name)| (what.to_owned(), name, MAX_NAME_LEN));
    for (what, name, max_len) in tables.iter().chain(&indexes) {
        if name.len() > *max_len {
            return refuse(format!(
                "{what} of session table \"{table}\" would be named \"{name}\", {} bytes, over \
                 the {max_len} PostgreSQL keeps: shorten the table name",
                name.len()
            ));
        }
    }

    // Tables and indexes share one namespace (pg_class), tables' row and array types another
    // (pg_type).
    let history = (
        "the migration history table".to_owned(),
        HISTORY_TABLE.to_owned(),
        MAX_NAME_LEN,
    );
    let relations: Vec<(String, String)> = (tables.iter().chain(&indexes))
        .chain([&history])
        .map(|(what, name, _)| (what.clone(), name.clone()))
        .collect();
    let types: Vec<(String, String)> = (tables.iter().chain([&history]))
        .flat_map(|(what, name, _)| {
            [
                (format!("{what}'s array type"), array_type_name(name)),
                (format!("{what}'s row type"), name.clone()),
            ]
        })
        .collect();
    for names in [relations, types] {
        let mut seen = std::collections::HashMap::with_capacity(names.len());
        for (what, name) in &names {
            if let Some(other) = seen.insert(name.as_str(), what) {
                return refuse(format!(
                    "{other} and {what} of session table \"{table}\" would both be named \
                     \"{name}\" in PostgreSQL: rename or shorten the table"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::MAX_HASH_PARTITIONS;

    #[test]
    fn index_names_fit_and_stay_distinct() {
        assert_eq!(expiry_index_name("session"), "session_expiry_date_idx");
        assert_eq!(user_key_index_name("session"), "session_user_key_idx");
        let long = format!("{}a", "x".repeat(62));
        assert!(user_key_index_name(&long).len() <= 63);
        assert_ne!(user_key_index_name(&long), expiry_index_name(&long));
        let a = expiry_index_name(&format!("{}a", "x".repeat(62)));
        let b = expiry_index_name(&format!("{}b", "x".repeat(62)));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
    }

    #[test]
    fn index_names_of_long_tables_are_those_earlier_releases_created() {
        // Existing deployments have these indexes: their names must not change.
        let table = "t".repeat(60);
        assert_eq!(
            expiry_index_name(&table),
            format!("{}_790d4e45_expiry_date_idx", "t".repeat(38))
        );
        assert_eq!(
            user_key_index_name(&table),
            format!("{}_790d4e45_user_key_idx", "t".repeat(41))
        );
    }

    #[test]
    fn partition_names_stay_short_enough_for_distinct_array_types() {
        assert_eq!(partition_name("session", 3), "session_p3");
        let table = "t".repeat(59);
        assert_eq!(partition_name(&table, 0), format!("{table}_p0"), "62 bytes");
        assert_eq!(partition_name(&table, 10).len(), 62);
        assert!(partition_name(&table, 10).ends_with("_p10"));
    }

    /// Names of every length 1 to 63 in a few shapes: plain, ending like a partition, all
    /// underscores (but the one name PostgreSQL cannot take, see below).
    fn tables() -> Vec<String> {
        let mut tables: Vec<String> = (1..=MAX_NAME_LEN)
            .flat_map(|len| {
                let shaped = |tail: &str| {
                    let tail = &tail[tail.len().saturating_sub(len)..];
                    format!("{}{tail}", "s".repeat(len - tail.len()))
                };
                [
                    "x".repeat(len),
                    "_".repeat(len),
                    shaped("_p1"),
                    shaped("_p10_expiry_date_idx"),
                ]
            })
            .collect();
        tables.retain(|table| table != &"_".repeat(63));
        tables
    }

    #[test]
    fn a_table_of_63_underscores_is_refused_its_array_type_would_be_itself() {
        // `_` and the first 62 bytes is the name again: PostgreSQL fails with a duplicate key
        // in pg_type (SQLSTATE 23505, which a lost race raises too).
        let err = check_names(&"_".repeat(63), None).unwrap_err().to_string();
        assert!(
            err.contains("the table's array type and the table's row type"),
            "{err}"
        );
        assert!(err.contains("rename or shorten the table"), "{err}");
    }

    #[test]
    fn every_derived_name_fits_and_is_distinct_for_every_table_length_and_partition_count() {
        // Partition k's name does not depend on the count, so the names for n partitions are
        // those for n - 1 and one more: each count is checked by adding its partition.
        for table in tables() {
            let mut relations: HashSet<String> = [
                table.clone(),
                expiry_index_name(&table),
                user_key_index_name(&table),
                HISTORY_TABLE.to_owned(),
            ]
            .into();
            assert_eq!(relations.len(), 4, "{table}");
            let mut types: HashSet<String> = [
                table.clone(),
                array_type_name(&table),
                HISTORY_TABLE.to_owned(),
                array_type_name(HISTORY_TABLE),
            ]
            .into();
            assert_eq!(types.len(), 4, "{table}");
            for k in 0..MAX_HASH_PARTITIONS {
                let partition = partition_name(&table, k);
                assert!(partition.len() <= 62, "{table} p{k}: {partition}");
                assert!(relations.insert(partition.clone()), "{table} p{k}");
                assert!(types.insert(partition.clone()), "{table} p{k}");
                let array = array_type_name(&partition);
                assert_eq!(array, format!("_{partition}"), "not cut");
                assert!(types.insert(array), "{table} p{k}");
            }
            for partitions in [
                None,
                Some(1),
                Some(10),
                Some(128),
                Some(MAX_HASH_PARTITIONS),
            ] {
                assert_eq!(check_names(&table, partitions), Ok(()), "{table}");
            }
        }
    }

    #[test]
    fn a_name_past_63_bytes_is_refused_saying_what_to_shorten() {
        let err = check_names(&"t".repeat(64), None).unwrap_err().to_string();
        assert!(err.contains("64 bytes"), "{err}");
        assert!(err.contains("shorten the table name"), "{err}");
    }

    #[test]
    fn a_table_named_like_the_history_table_is_refused() {
        let err = check_names(HISTORY_TABLE, None).unwrap_err().to_string();
        assert!(
            err.contains("the table and the migration history table"),
            "{err}"
        );
    }

    #[test]
    fn array_type_names_are_cut_like_postgresql_cuts_them() {
        assert_eq!(array_type_name("session"), "_session");
        assert_eq!(
            array_type_name(&"x".repeat(63)),
            format!("_{}", "x".repeat(62))
        );
    }
}
