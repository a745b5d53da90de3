//! Which failures of [`Runner::up`](super::Runner::up) are a lost race with a concurrent run
//! (another replica's `migrate()`, the command line), after which starting over is correct: the
//! winner's objects are then visible and `IF NOT EXISTS` holds.

use sea_orm_migration::sea_orm::{DbBackend, DbErr};

/// What the database said of an error: its code (the SQLSTATE on PostgreSQL and MySQL, the
/// extended result code on SQLite), whether it is a unique violation, and on PostgreSQL the C
/// function that raised it (the `R` field of its report: not translated, unlike the message).
#[derive(Debug, Default, PartialEq)]
struct Said {
    code: Option<String>,
    unique_violation: bool,
    routine: Option<String>,
}

#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
fn said(err: &DbErr) -> Said {
    use sea_orm_migration::sea_orm::{sqlx, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return Said::default();
    };
    let sqlx::Error::Database(db) = e.as_ref() else {
        return Said::default();
    };
    #[cfg(feature = "postgres")]
    let routine = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|pg| pg.routine())
        .map(str::to_owned);
    #[cfg(not(feature = "postgres"))]
    let routine = None;
    Said {
        code: db.code().map(|code| code.into_owned()),
        unique_violation: matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation),
        routine,
    }
}

/// Built without a driver (none of the crate's `postgres`, `sqlite` and `mysql` features), no
/// error is read as the database's, and none is retried.
#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
fn said(_: &DbErr) -> Said {
    Said::default()
}

/// Whether `err` is what the loser of a race between two concurrent runs sees.
///
/// PostgreSQL's duplicate_object (42710) counts, unless PostgreSQL could not name the table's
/// array type; a type of someone else's in the way raises it too, which the runner checks
/// ([`is_duplicate_object`]).
pub(super) fn lost_a_race(backend: DbBackend, err: &DbErr) -> bool {
    lost(backend, &said(err))
}

/// Whether `err` says that the table a statement named does not exist (MySQL's and MariaDB's
/// 42S02).
pub(super) fn is_missing_table(backend: DbBackend, err: &DbErr) -> bool {
    backend == DbBackend::MySql && said(err).code.as_deref() == Some("42S02")
}

fn lost(backend: DbBackend, said: &Said) -> bool {
    if array_type_name_exhausted(backend, said) {
        return false;
    }
    if said.unique_violation {
        // PostgreSQL: `IF NOT EXISTS` checks the catalog before inserting into it, so two
        // transactions can both pass and one trips pg_type's or pg_class's unique index.
        return true;
    }
    let Some(code) = said.code.as_deref() else {
        return false;
    };
    match backend {
        DbBackend::Postgres => [
            "42P07", // duplicate_table
            "42P06", // duplicate_schema
            "42710", // duplicate_object: a row type the winner created meanwhile
            "42701", // duplicate_column (the user index's columns)
            "40P01", // deadlock_detected
            "40001", // serialization_failure
        ]
        .contains(&code),
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes (the low byte is
        // the primary code): another connection holds the write lock past the busy timeout.
        DbBackend::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
        // MySQL has no transactional DDL: each step is idempotent, and these mean another
        // replica got there first (or the two collided on a metadata lock).
        DbBackend::MySql => [
            "42S01", // ER_TABLE_EXISTS_ERROR (1050)
            "42S21", // ER_DUP_FIELDNAME (1060): the user index's columns
            "40001", // ER_LOCK_DEADLOCK (1213)
        ]
        .contains(&code),
        _ => false,
    }
}

/// Whether `err` is PostgreSQL's duplicate_object (42710), which a lost race raises ("type …
/// already exists", the winner's row type) but so does a type of someone else's in the way.
pub(super) fn is_duplicate_object(backend: DbBackend, err: &DbErr) -> bool {
    backend == DbBackend::Postgres && said(err).code.as_deref() == Some("42710")
}

/// PostgreSQL failing to name a table's array type: it tries `_<table>` cut to 63 bytes, then
/// more underscores, and gives up when other objects whose names share the table's first bytes
/// hold every candidate. SQLSTATE 42710 as a lost race, but no retry helps.
fn array_type_name_exhausted(backend: DbBackend, said: &Said) -> bool {
    backend == DbBackend::Postgres
        && said.code.as_deref() == Some("42710")
        && said.routine.as_deref() == Some("makeArrayTypeName")
}

/// `error` with what to do, when PostgreSQL's message alone does not say.
pub(super) fn explained(backend: DbBackend, schema: &str, error: DbErr) -> DbErr {
    if !array_type_name_exhausted(backend, &said(&error)) {
        return error;
    }
    DbErr::Migration(format!(
        "{error}: PostgreSQL names each table's array type `_<table>` cut to 63 bytes, and \
         objects in schema \"{schema}\" whose names begin like the table's hold every name it \
         tries; shorten the table name"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(code: &str) -> Said {
        Said {
            code: Some(code.to_owned()),
            ..Said::default()
        }
    }

    #[test]
    fn objects_a_concurrent_run_created_first_are_a_lost_race() {
        for sqlstate in ["42P07", "42P06", "42710", "42701", "40P01", "40001"] {
            assert!(lost(DbBackend::Postgres, &code(sqlstate)), "{sqlstate}");
        }
        for sqlstate in ["42S01", "42S21", "40001"] {
            assert!(lost(DbBackend::MySql, &code(sqlstate)), "{sqlstate}");
        }
        let unique = Said {
            unique_violation: true,
            ..code("23505")
        };
        assert!(lost(DbBackend::Postgres, &unique));
    }

    #[test]
    fn sqlite_busy_and_locked_are_a_lost_race_with_their_extended_codes() {
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED_SHAREDCACHE (262).
        for extended in ["5", "6", "517", "262"] {
            assert!(lost(DbBackend::Sqlite, &code(extended)), "{extended}");
        }
        // SQLITE_ERROR, SQLITE_READONLY.
        for other in ["1", "8"] {
            assert!(!lost(DbBackend::Sqlite, &code(other)), "{other}");
        }
    }

    #[test]
    fn other_failures_are_no_race_and_are_not_retried() {
        assert!(!lost(DbBackend::Postgres, &code("42601")), "syntax error");
        assert!(!lost(DbBackend::Postgres, &code("42501")), "no privilege");
        assert!(!lost(DbBackend::MySql, &code("42000")), "syntax error");
        assert!(!lost(DbBackend::Postgres, &Said::default()), "no database");
    }

    #[test]
    fn an_array_type_postgresql_cannot_name_is_no_race() {
        let exhausted = Said {
            routine: Some("makeArrayTypeName".to_owned()),
            ..code("42710")
        };
        assert!(!lost(DbBackend::Postgres, &exhausted));
    }
}
