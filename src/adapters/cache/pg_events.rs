//! The live events on a listening cache's connection: one listener per replica serves both.
//!
//! A store with the login history and a listening cache gives the cache a [`Carrier`], which
//! the store's events reader hands its feed to ([`HistoryCarrier`]). The listener then reads
//! the history in its poll loop, on its own connection and thread, with the statement and
//! cursor the store's reader uses ([`history::since`]): after a read of the eviction log, once
//! [`EVENTS_POLL`] has passed since its last read of the history. So a replica with both runs
//! one poller, and its pool carries no event reads.
//!
//! It carries only once its connection has proven that it reaches the store's database: one
//! of its heartbeats, sent through the store's own connections, came back on it. A listening
//! URL that names another database never proves that, so it never reads that database's
//! history: the store's reader goes on reading through the pool (and the listener says at
//! `warn` that it hears nothing). When the connection is lost, or a read of the history over
//! it fails, it stops carrying, and the store's reader takes over from the same cursor
//! within a poll; a later connection carries again once proven.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use sea_orm::sqlx::{self, postgres::PgListener};
use tracing::Instrument;

use crate::{
    adapters::{sea_orm::PostgresRow, sql::history},
    domain::{SessionError, EVENTS_POLL},
    ports::{HistoryCarrier, HistoryFeed, TakenCursor},
};

/// The listener's side of the live events: the feed it reads, and whether it reads it now.
pub(crate) struct Carrier {
    /// The history's read by snapshot (`HistoryStatements::feed_read`), with the validated,
    /// quoted name of the history table: no value is spliced in.
    read: String,
    /// What the read's span names the table (the store's label).
    table: Arc<str>,
    feed: Mutex<Option<Weak<dyn HistoryFeed>>>,
    carrying: AtomicBool,
    /// When the listener's poll loop last came round while carrying: a loop stuck longer than
    /// [`STALLED`] (a read of the eviction log waiting on a connection that went silent, a
    /// starved thread) carries no more, and the store's reader reads meanwhile.
    alive_at: Mutex<Option<Instant>>,
    stalled: Duration,
}

/// How long the listener's poll loop (every 5 ms) may go without coming round before the
/// store's reader reads the events instead: long enough that a busy machine does not hand
/// them back and forth, short against the listener's own silence bound (seconds).
const STALLED: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carrier")
            .field("table", &self.table)
            .field("carrying", &self.is_carrying())
            .finish_non_exhaustive()
    }
}

impl Carrier {
    pub(crate) fn new(read: String, table: Arc<str>) -> Self {
        Self {
            read,
            table,
            feed: Mutex::new(None),
            carrying: AtomicBool::new(false),
            alive_at: Mutex::new(None),
            stalled: STALLED,
        }
    }

    /// The listener's poll loop came round.
    fn alive(&self) {
        *self.alive_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn feed(&self) -> Option<Arc<dyn HistoryFeed>> {
        let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        feed.as_ref()?.upgrade()
    }
}

impl HistoryCarrier for Carrier {
    fn carry(&self, feed: Weak<dyn HistoryFeed>) {
        *self.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(feed);
    }

    fn is_carrying(&self) -> bool {
        let alive_at = *self.alive_at.lock().unwrap_or_else(|p| p.into_inner());
        self.carrying.load(Ordering::SeqCst)
            && alive_at.is_some_and(|at| at.elapsed() < self.stalled)
    }
}

/// The reads of the history over one listening connection. Dropped when the connection ends
/// (or the listener is stopped): the carrier stops carrying then.
pub(crate) struct EventReads {
    carrier: Arc<Carrier>,
    /// When this connection last read the history.
    read_at: Option<Instant>,
    /// A read of the history failed on this connection: the store's reader reads through
    /// the pool until the next connection has proven itself.
    failed: bool,
}

impl EventReads {
    pub(crate) fn new(carrier: Arc<Carrier>) -> Self {
        Self {
            carrier,
            read_at: None,
            failed: false,
        }
    }

    /// One of this connection's heartbeats came back: it reaches the store's database, so it
    /// may read the store's history.
    pub(crate) fn proven(&mut self) {
        if !self.failed {
            self.carrier.alive();
            self.carrier.carrying.store(true, Ordering::SeqCst);
        }
    }

    /// Reads the entries committed since the feed's cursor and delivers them, if this
    /// connection carries, a feed is there and [`EVENTS_POLL`] has passed since the last read.
    /// `Err` when the read did not end within `timeout`: the connection is not keeping up.
    pub(crate) async fn read(
        &mut self,
        listener: &mut PgListener,
        timeout: Duration,
    ) -> Result<(), String> {
        let started = Instant::now();
        if self.carrier.carrying.load(Ordering::SeqCst) {
            self.carrier.alive();
        }
        if !self.carrier.is_carrying()
            || self
                .read_at
                .is_some_and(|at| started.duration_since(at) < EVENTS_POLL)
        {
            return Ok(());
        }
        let Some(feed) = self.carrier.feed() else {
            return Ok(());
        };
        // `None`: the store's reader holds it (it read before this connection carried).
        let Some(taken) = TakenCursor::take(&*feed) else {
            return Ok(());
        };
        self.read_at = Some(started);
        let span = tracing::debug_span!(
            "session_store",
            operation = crate::domain::READ_EVENTS,
            table = %self.carrier.table,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let cursor = taken.cursor().to_owned();
        let query = sqlx::query(sqlx::AssertSqlSafe(self.carrier.read.as_str()))
            .bind(&cursor)
            .fetch_all(&mut *listener);
        let read = tokio::time::timeout(timeout, query)
            .instrument(span.clone())
            .await;
        span.record("duration_us", started.elapsed().as_micros() as u64);
        let rows = match read {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                // The outcomes the pool's reads report (docs/features.md, "Tracing").
                let outcome = match error {
                    sqlx::Error::Database(_) => "statement_failed",
                    _ => "unavailable",
                };
                span.record("outcome", outcome);
                // The cursor goes back as it was (`taken` drops): nothing is lost.
                self.stop(&format!("{error}"));
                return Ok(());
            }
            Err(_) => {
                span.record("outcome", "timed_out");
                self.stop("timed out");
                return Err(format!(
                    "the read of the login history took over {timeout:?} on the listening \
                     connection"
                ));
            }
        };
        let rows: Vec<PostgresRow> = rows.into_iter().map(PostgresRow).collect();
        match history::feed_rows(&cursor, &rows) {
            Ok((next, entries)) => {
                span.record("outcome", "ok");
                taken.deliver(next, entries);
            }
            Err(error) => {
                let why = error.to_string();
                span.record("outcome", SessionError::Database(error).outcome());
                self.stop(&why);
            }
        }
        Ok(())
    }

    /// This connection reads the history no more: the store's reader takes over.
    fn stop(&mut self, why: &str) {
        self.failed = true;
        self.carrier.carrying.store(false, Ordering::SeqCst);
        tracing::warn!(
            %why,
            "the session cache's listener cannot read the login history: the session events \
             are read through the store's pool until its next connection"
        );
    }
}

impl Drop for EventReads {
    fn drop(&mut self) {
        self.carrier.carrying.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proven carrier carries while its poll loop comes round, not once the loop has stalled
    /// past the bound (the store's reader reads then), and again when it comes round.
    #[test]
    fn a_stalled_listener_hands_the_events_back_to_the_store_until_it_comes_round() {
        let carrier = Carrier {
            stalled: Duration::from_millis(500),
            ..Carrier::new("SELECT 1".to_owned(), Arc::from("t"))
        };
        let mut reads = EventReads::new(Arc::new(carrier));
        assert!(!reads.carrier.is_carrying(), "carries before any proof");
        reads.proven();
        assert!(reads.carrier.is_carrying(), "a proven connection carries");
        // Real time is the point: the bound is measured on the monotonic clock.
        std::thread::sleep(Duration::from_millis(600));
        assert!(!reads.carrier.is_carrying(), "a stalled loop still carries");
        reads.carrier.alive();
        assert!(
            reads.carrier.is_carrying(),
            "a loop come round carries again"
        );
        drop(reads);
    }
}
