//! The login history on MySQL and MariaDB, and the events' reader of it.
//!
//! **Writes.** MySQL has no `RETURNING` and no data-modifying CTE (MariaDB has `RETURNING` on
//! `INSERT` and `DELETE`, not on `UPDATE`), so each write that logs runs in one transaction
//! (`SqlDriver::logged`): the rows it changes, read `FOR UPDATE` with the write's own `WHERE`
//! ([`locking_read`]), then the write (only when that read found a row), then one history
//! insert per entry, then `COMMIT`. The locked rows cannot change before the write, so the
//! entries are exactly what it changed; the handle is computed in Rust, as on SQLite. The
//! cleanup deletes the rows it locked by key ([`HistoryStatements::delete_keys`]): a second
//! `DELETE … LIMIT` need not pick the same rows. Without the history no statement changes: the
//! repository sends the same writes, without a transaction.
//!
//! **Events.** `AUTO_INCREMENT` hands out `seq` when a row is inserted, not when its
//! transaction commits: entry 7 may commit after entry 8 was read, so "after the last `seq`
//! read" would skip it for good. The cursor ([`Cursor`]) therefore also remembers the `seq`s
//! below its high-water mark that were missing when read (a transaction still open, or rolled
//! back: `AUTO_INCREMENT` never gives a value back) and reads them again at each poll until
//! they appear or the horizon passes: `settle`, how long a write abandoned by its store may
//! still commit (twice the store's operation timeout; 60 s without one). At most
//! [`MAX_GAPS`] are tracked; beyond that the lowest are given up (a warning says how many).

use time::OffsetDateTime;

use super::{
    driver::{Param, SqlDriver, SqlRow},
    history::{quoted, FeedRow, HistoryStatements},
    per_user::{padded, KeyedDeletes, MAX_KEYS_PER_DELETE},
    Dialect, SessionTable,
};
use crate::ports::RepositoryError;

/// The most missing `seq`s a cursor tracks: far more than the logging transactions that can
/// be open at once (one per pooled connection of every replica).
pub(crate) const MAX_GAPS: usize = 256;

/// The most entries one read returns: a reader far behind catches up over several reads.
const FEED_PAGE: u32 = 1000;

/// What the locking read of a logged write returns: `user_key, id, listed_values, created_at,
/// long_lived`, as SQLite's `RETURNING` (`history::RETURNING`).
const LOCKED_COLUMNS: &str = "`user_key`, `id`, `listed_values`, `created_at`, `long_lived`";

/// The history's statements on MySQL.
pub(crate) fn statements(table: &SessionTable) -> HistoryStatements {
    let history = quoted(table, Dialect::MySql);
    let target = table.quoted(Dialect::MySql);
    let entry = "`seq`, `user_key`, `kind`, `at`, `handle`, `listed_values`";
    let keys = |count: usize| vec!["?"; count].join(", ");
    let columns = "`user_key`, `kind`, `at`, `handle`, `listed_values`";
    HistoryStatements {
        find_by_user: format!(
            "SELECT `kind`, `at`, `handle`, `listed_values` FROM {history} WHERE `user_key` = ? \
             ORDER BY `at` DESC, `seq` DESC LIMIT ?"
        ),
        // MySQL refuses `LIMIT` in an `IN` subquery but has `DELETE … LIMIT`.
        delete_before: format!("DELETE FROM {history} WHERE `at` < ? LIMIT ?"),
        insert: format!("INSERT INTO {history} ({columns}) VALUES (?, ?, ?, ?, ?)"),
        // A cleanup batch logs up to its size in entries: a few statements, not one each.
        insert_rows: KeyedDeletes::rendered(|count| {
            format!(
                "INSERT INTO {history} ({columns}) VALUES {}",
                vec!["(?, ?, ?, ?, ?)"; count].join(", ")
            )
        }),
        lock: String::new(),
        previous: String::new(),
        // The newest entries: the highest `seq`, and the ones missing below it (see `since`).
        feed_start: format!("SELECT `seq` FROM {history} ORDER BY `seq` DESC LIMIT {MAX_GAPS}"),
        feed_read: format!(
            "SELECT {entry} FROM {history} WHERE `seq` > ? ORDER BY `seq` LIMIT {FEED_PAGE}"
        ),
        feed_gaps: KeyedDeletes::rendered(|count| {
            format!(
                "SELECT {entry} FROM {history} WHERE `seq` IN ({}) ORDER BY `seq`",
                keys(count)
            )
        }),
        delete_keys: KeyedDeletes::rendered(|count| {
            format!("DELETE FROM {target} WHERE `id` IN ({})", keys(count))
        }),
    }
}

/// The locking read of the MySQL write `sql` bound with `params`: the rows it changes, read
/// `FOR UPDATE` with its own `WHERE` (and `LIMIT`), as [`LOCKED_COLUMNS`], and the values
/// that read binds. `None` for a statement that is neither a `DELETE` nor an `UPDATE`.
///
/// Names are validated identifiers (no spaces), so the first ` FROM ` of a `DELETE` and the
/// last ` WHERE ` of a save's `UPDATE` (which has no subquery) are the statement's own.
pub(crate) fn locking_read(sql: &str, params: &[Param]) -> Option<(String, Vec<Param>)> {
    if let Some(delete) = sql.strip_prefix("DELETE ") {
        // `DELETE FROM t WHERE …` and the multiple-table `DELETE t FROM t FORCE INDEX … WHERE …`.
        let (_, from) = delete.split_once("FROM ")?;
        let read = format!("SELECT {LOCKED_COLUMNS} FROM {from} FOR UPDATE");
        return Some((read, params.to_vec()));
    }
    let update = sql.strip_prefix("UPDATE ")?;
    let (target, _) = update.split_once(" SET ")?;
    let (_, condition) = update.rsplit_once(" WHERE ")?;
    // The condition's values are the statement's last ones.
    let bound = condition.matches('?').count();
    let read = format!("SELECT {LOCKED_COLUMNS} FROM {target} WHERE {condition} FOR UPDATE");
    Some((read, params[params.len().checked_sub(bound)?..].to_vec()))
}

/// The keys of the rows a locking read returned (column 1), as bytes: MySQL's keys are
/// `varbinary`, bound back byte for byte.
pub(crate) fn locked_keys<R: SqlRow>(rows: &[R]) -> Result<Vec<Param>, RepositoryError> {
    rows.iter()
        .map(|row| row.bytes(1).map(|key| Param::Bytes(Some(key))))
        .collect()
}

/// The statements of `keyed` for `keys` (the deletes of those rows, the reads of those
/// entries): each statement and its values, at most [`MAX_KEYS_PER_DELETE`] keys each.
pub(crate) fn by_key<'a>(keyed: &'a KeyedDeletes, keys: &[Param]) -> Vec<(&'a str, Vec<Param>)> {
    keys.chunks(MAX_KEYS_PER_DELETE)
        .filter_map(|chunk| {
            let (count, sql) = keyed.for_keys(chunk.len())?;
            Some((sql, padded(chunk, count)))
        })
        .collect()
}

/// The events' cursor on MySQL: the highest `seq` read, and the `seq`s below it that were
/// missing, each with when it was first seen missing (milliseconds since the Unix epoch; none
/// yet for those the start found).
///
/// As text: the high-water mark, then `,seq` or `,seq@millis` per gap, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    high: i64,
    gaps: Vec<(i64, Option<i64>)>,
}

impl Cursor {
    fn parse(text: &str) -> Result<Self, RepositoryError> {
        let refused = || {
            RepositoryError::Statement(
                "the session events' cursor is not one this store's MySQL reader made".to_owned(),
            )
        };
        let mut parts = text.split(',');
        let high = parts
            .next()
            .and_then(|high| high.parse().ok())
            .ok_or_else(refused)?;
        let gaps = parts
            .map(|gap| match gap.split_once('@') {
                Some((seq, noticed)) => Some((seq.parse().ok()?, Some(noticed.parse().ok()?))),
                None => Some((gap.parse().ok()?, None)),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(refused)?;
        Ok(Self { high, gaps })
    }

    fn render(&self) -> String {
        let mut text = self.high.to_string();
        for (seq, noticed) in &self.gaps {
            match noticed {
                Some(noticed) => text.push_str(&format!(",{seq}@{noticed}")),
                None => text.push_str(&format!(",{seq}")),
            }
        }
        text
    }

    /// Keeps the [`MAX_GAPS`] highest gaps; says how many it gave up.
    fn bounded(mut self) -> Self {
        if self.gaps.len() > MAX_GAPS {
            let over = self.gaps.len() - MAX_GAPS;
            tracing::warn!(
                given_up = over,
                "the session events' reader tracks too many uncommitted history entries; \
                 the oldest will not be delivered if they commit"
            );
            self.gaps.drain(..over);
        }
        self
    }
}

/// The `seq`s missing between `after` and `before` (both excluded): at most [`MAX_GAPS`], the
/// highest (a jump of `AUTO_INCREMENT` beyond that is not a transaction still open).
fn missing(after: i64, before: i64) -> std::ops::Range<i64> {
    let from = after
        .saturating_add(1)
        .max(before.saturating_sub(MAX_GAPS as i64));
    from..before.max(from)
}

/// Where the events' reader starts: past the newest entry, with the `seq`s missing among the
/// newest [`MAX_GAPS`] as gaps (their transactions may still commit).
pub(crate) async fn feed_start<D: SqlDriver>(
    driver: &D,
    history: &HistoryStatements,
) -> Result<String, RepositoryError> {
    let rows = driver.query(&history.feed_start, Vec::new()).await?;
    let seqs = rows
        .iter()
        .map(|row| row.integer(0))
        .collect::<Result<Vec<_>, _>>()?;
    let (Some(&high), Some(&low)) = (seqs.first(), seqs.last()) else {
        return Ok(Cursor {
            high: 0,
            gaps: Vec::new(),
        }
        .render());
    };
    let present: std::collections::HashSet<i64> = seqs.into_iter().collect();
    let gaps = missing(low, high)
        .filter(|seq| !present.contains(seq))
        .map(|seq| (seq, None))
        .collect();
    Ok(Cursor { high, gaps }.bounded().render())
}

/// The entries committed since `cursor`, oldest first, and the cursor after them: the gaps it
/// tracks that have committed, then the entries above its high-water mark. A gap older than
/// `settle` (at `now`) is given up.
pub(crate) async fn since<D: SqlDriver>(
    driver: &D,
    history: &HistoryStatements,
    cursor: &str,
    now: OffsetDateTime,
    settle: std::time::Duration,
) -> Result<(String, Vec<FeedRow>), RepositoryError> {
    let cursor = Cursor::parse(cursor)?;
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);

    let mut rows = Vec::new();
    let gap_seqs: Vec<Param> = cursor
        .gaps
        .iter()
        .map(|(seq, _)| Param::Integer(*seq))
        .collect();
    for (sql, params) in by_key(&history.feed_gaps, &gap_seqs) {
        rows.extend(driver.query(sql, params).await?);
    }
    let filled_gaps = rows.len();
    rows.extend(
        driver
            .query(&history.feed_read, vec![Param::Integer(cursor.high)])
            .await?,
    );

    let mut filled = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(rows.len());
    let mut high = cursor.high;
    let mut new_gaps = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let seq = row.integer(0)?;
        if n < filled_gaps {
            // A padded read returns each row once.
            filled.insert(seq);
        } else {
            new_gaps.extend(missing(high, seq).map(|seq| (seq, Some(now_ms))));
            high = seq;
        }
        entries.push((
            row.key(1)?,
            row.key(2)?,
            row.instant(3)?,
            row.key(4)?,
            row.optional_text(5)?,
        ));
    }
    let mut gaps: Vec<(i64, Option<i64>)> = cursor
        .gaps
        .into_iter()
        .filter(|(seq, _)| !filled.contains(seq))
        .filter_map(|(seq, noticed)| match noticed {
            Some(noticed) if noticed.saturating_add(settle_ms) < now_ms => None,
            Some(noticed) => Some((seq, Some(noticed))),
            None => Some((seq, Some(now_ms))),
        })
        .collect();
    gaps.extend(new_gaps);
    Ok((Cursor { high, gaps }.bounded().render(), entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_reads_back_what_it_wrote() {
        let cursor = Cursor {
            high: 42,
            gaps: vec![(7, None), (40, Some(1_700_000_000_000))],
        };
        assert_eq!(cursor.render(), "42,7,40@1700000000000");
        assert_eq!(Cursor::parse(&cursor.render()).unwrap(), cursor);
        assert_eq!(Cursor::parse("0").unwrap().gaps, []);
        for refused in ["", "x", "1,", "1,2@", "1,a@3", "snapshot:1:2:"] {
            assert!(Cursor::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_cursor_keeps_the_highest_gaps_within_the_bound() {
        let cursor = Cursor {
            high: 1000,
            gaps: (0..MAX_GAPS as i64 + 10).map(|seq| (seq, None)).collect(),
        }
        .bounded();
        assert_eq!(cursor.gaps.len(), MAX_GAPS);
        assert_eq!(cursor.gaps[0].0, 10);
    }

    #[test]
    fn missing_seqs_are_those_strictly_between_and_at_most_the_bound() {
        assert_eq!(missing(3, 7).collect::<Vec<_>>(), [4, 5, 6]);
        assert_eq!(missing(3, 4).count(), 0);
        assert_eq!(missing(0, 1_000_000).count(), MAX_GAPS);
        assert_eq!(missing(0, 1_000_000).last(), Some(999_999));
        assert_eq!(missing(i64::MAX - 1, i64::MAX).count(), 0);
    }

    #[test]
    fn a_writes_locking_read_has_its_where_and_its_values() {
        let s = super::super::Statements::new(Dialect::MySql, &SessionTable::default());
        let id = Param::text("k");
        assert_eq!(
            locking_read(&s.delete_by_id, std::slice::from_ref(&id)).unwrap(),
            (
                "SELECT `user_key`, `id`, `listed_values`, `created_at`, `long_lived` FROM `session` WHERE `id` = ? FOR UPDATE".to_owned(),
                vec![id.clone()]
            )
        );
        assert_eq!(
            locking_read(&s.delete_expired_batch, &[]).unwrap().0,
            "SELECT `user_key`, `id`, `listed_values`, `created_at`, `long_lived` FROM `session` WHERE `expiry_date` <= ? LIMIT ? FOR UPDATE"
        );
        let (_, keyed) = s.per_user.delete_keys.for_keys(1).unwrap();
        assert_eq!(
            locking_read(keyed, &[]).unwrap().0,
            "SELECT `user_key`, `id`, `listed_values`, `created_at`, `long_lived` FROM `session` FORCE INDEX (PRIMARY) WHERE `id` IN (?) AND `user_key` = ? FOR UPDATE"
        );
        let save = &s.update_if_version;
        let params: Vec<Param> = (0..save.binds.len() as i64).map(Param::Integer).collect();
        assert_eq!(
            locking_read(&save.sql, &params).unwrap(),
            (
                "SELECT `user_key`, `id`, `listed_values`, `created_at`, `long_lived` FROM `session` WHERE `id` = ? AND `version` = ? FOR UPDATE".to_owned(),
                params[params.len() - 2..].to_vec()
            )
        );
        assert!(locking_read(&s.insert_if_absent, &[]).is_none());
    }

    #[test]
    fn many_entries_take_few_inserts() {
        let history = statements(&SessionTable::default().with_history());
        assert_eq!(
            history.insert_rows.at_most(3),
            Some((1, history.insert.as_str()))
        );
        let (count, sql) = history.insert_rows.at_most(100).unwrap();
        assert_eq!(count, MAX_KEYS_PER_DELETE);
        assert_eq!(sql.matches('?').count(), 5 * count);
        assert_eq!(history.insert_rows.at_most(0), None);
    }
}
