//! One classification of the errors a database server reports, by their code, for both SQL
//! repositories (SeaORM's and tokio-postgres'): the same server error is the same kind of
//! [`RepositoryError`](crate::ports::RepositoryError) whichever adapter met it.

use super::{Dialect, SqlError};
use crate::ports::RepositoryError;

/// What a server error means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerError {
    /// The table, its schema or a column of it does not exist: not (fully) migrated.
    NotMigrated,
    /// The server accepts no writes: a hot standby, or a primary with
    /// `default_transaction_read_only` (PostgreSQL). Every write fails the same way until the
    /// store reaches a primary.
    ReadOnly,
    /// The server, or a pooler in front of it, lost or refused the connection; the next
    /// statement may well succeed, on another connection or after a failover.
    ConnectionLost,
    /// The statement lost a conflict with another transaction (a deadlock, a serialization
    /// failure) and was rolled back: running it again may succeed.
    Conflict,
    /// The statement failed (permissions, a constraint, syntax…).
    Statement,
}

impl ServerError {
    /// The kind of the error with SQLSTATE `code` (PostgreSQL, MySQL) or extended result code
    /// (SQLite) and primary `message`.
    pub(crate) fn of(dialect: Dialect, code: Option<&str>, message: &str) -> Self {
        match dialect {
            Dialect::Postgres => Self::of_postgres(code, message),
            Dialect::MySql => Self::of_mysql(code),
            Dialect::Sqlite => Self::of_sqlite(message),
        }
    }

    fn of_postgres(code: Option<&str>, message: &str) -> Self {
        match code {
            // undefined_table (also raised for a missing schema), invalid_schema_name,
            // undefined_column.
            Some("42P01" | "3F000" | "42703") => Self::NotMigrated,
            // read_only_sql_transaction; a pooler may pass the message on without its code.
            Some("25006") => Self::ReadOnly,
            _ if message.ends_with("in a read-only transaction") => Self::ReadOnly,
            // Class 08, connection_exception (PgBouncer reports a crashed or unreachable server
            // as 08P01); admin_shutdown, crash_shutdown, cannot_connect_now.
            Some(code) if code.starts_with("08") => Self::ConnectionLost,
            Some("57P01" | "57P02" | "57P03") => Self::ConnectionLost,
            // serialization_failure, deadlock_detected.
            Some("40001" | "40P01") => Self::Conflict,
            _ => Self::Statement,
        }
    }

    fn of_mysql(code: Option<&str>) -> Self {
        match code {
            // ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR.
            Some("42S02" | "42S22") => Self::NotMigrated,
            // Class 08: e.g. ER_CON_COUNT_ERROR (too many connections, 08004), a broken
            // connection (08S01).
            Some(code) if code.starts_with("08") => Self::ConnectionLost,
            // ER_LOCK_DEADLOCK (1213).
            Some("40001") => Self::Conflict,
            _ => Self::Statement,
        }
    }

    /// SQLite reports a missing table or column with the generic code 1; its message tells.
    fn of_sqlite(message: &str) -> Self {
        let not_migrated = ["no such table", "no such column", "has no column named"]
            .iter()
            .any(|needle| message.contains(needle));
        if not_migrated {
            Self::NotMigrated
        } else {
            Self::Statement
        }
    }

    /// The error the server reported, with SQLSTATE (or SQLite result code) `code` and primary
    /// `message`, as the store reports it. The message and code describe the statement, not the
    /// bound values (the detail lines that can quote a value are the drivers' to drop).
    /// `read_only_advice` says how to reach a primary with this driver.
    pub(crate) fn sql_error(
        dialect: Dialect,
        code: Option<&str>,
        message: &str,
        read_only_advice: &str,
    ) -> SqlError {
        let kind = Self::of(dialect, code, message);
        let described = match code {
            Some(code) => format!("{message} ({} {code})", dialect.code_label()),
            None => message.to_owned(),
        };
        let error = match kind {
            Self::NotMigrated => RepositoryError::MissingTable(described),
            // Every write fails the same way until the store reaches a primary, so say so
            // rather than "a statement failed".
            Self::ReadOnly => RepositoryError::Unavailable(format!(
                "the server is a standby or read-only and accepts no writes: {described}; \
                 connect the store to the primary, {read_only_advice} (SCALING.md, High \
                 availability)"
            )),
            Self::ConnectionLost => RepositoryError::Unavailable(described),
            Self::Conflict | Self::Statement => RepositoryError::Statement(described),
        };
        SqlError {
            conflict: kind == Self::Conflict,
            ..error.into()
        }
    }
}

/// How many times an idempotent delete (a per-user delete) runs when it loses a conflict
/// ([`ServerError::Conflict`]). Belt and braces: those statements lock their rows in key order
/// (see [`super::per_user`]), so a conflict is not expected; running a delete again is safe,
/// since it decides what to delete anew.
pub(crate) const DELETE_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_codes_are_classified_by_sqlstate() {
        let of = |code| ServerError::of(Dialect::Postgres, Some(code), "message");
        for code in ["42P01", "3F000", "42703"] {
            assert_eq!(of(code), ServerError::NotMigrated, "{code}");
        }
        assert_eq!(of("25006"), ServerError::ReadOnly);
        for code in [
            "08000", "08003", "08006", "08001", "08004", "08P01", "57P01", "57P02",
        ] {
            assert_eq!(of(code), ServerError::ConnectionLost, "{code}");
        }
        assert_eq!(of("57P03"), ServerError::ConnectionLost);
        assert_eq!(of("40001"), ServerError::Conflict);
        assert_eq!(of("40P01"), ServerError::Conflict);
        for code in [
            "23505", "23514", "42601", "42501", "57014", "55P03", "40002", "22P02",
        ] {
            assert_eq!(of(code), ServerError::Statement, "{code}");
        }
        assert_eq!(
            ServerError::of(
                Dialect::Postgres,
                None,
                "cannot execute UPDATE in a read-only transaction"
            ),
            ServerError::ReadOnly
        );
    }

    #[test]
    fn mysql_codes_are_classified_by_sqlstate() {
        let of = |code| ServerError::of(Dialect::MySql, Some(code), "message");
        assert_eq!(of("42S02"), ServerError::NotMigrated);
        assert_eq!(of("42S22"), ServerError::NotMigrated);
        assert_eq!(of("08004"), ServerError::ConnectionLost);
        assert_eq!(of("08S01"), ServerError::ConnectionLost);
        assert_eq!(of("40001"), ServerError::Conflict);
        for code in ["23000", "HY000", "42000", "25006"] {
            assert_eq!(of(code), ServerError::Statement, "{code}");
        }
    }

    #[test]
    fn sqlite_errors_are_classified_by_message() {
        let of = |message| ServerError::of(Dialect::Sqlite, Some("1"), message);
        assert_eq!(of("no such table: session"), ServerError::NotMigrated);
        assert_eq!(of("no such column: user_key"), ServerError::NotMigrated);
        assert_eq!(
            of("table session has no column named created_at"),
            ServerError::NotMigrated
        );
        assert_eq!(of("database is locked"), ServerError::Statement);
        // A PostgreSQL code means nothing on SQLite.
        assert_eq!(
            ServerError::of(Dialect::Sqlite, Some("25006"), "x"),
            ServerError::Statement
        );
    }
}
