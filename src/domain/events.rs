//! Live session events ([`events`](RepositoryStore::events)): the login history's entries as
//! they commit, on every replica that asks.
//!
//! The history is the event log: each entry is written in the same statement as the change
//! it records (`adapters/sql/history.rs`), so an entry exists exactly when its change
//! committed, whichever replica (or process) made it. One reader per store (its clones
//! included) reads the entries committed since its last read every [`POLL`], through the
//! repository ([`SessionRepository::history_since`]): on PostgreSQL one indexed statement that
//! compares transaction ids with the previous read's snapshot, so every committed entry is
//! read exactly once, whatever order the writes commit in; on SQLite the entries after the
//! last one read; on MySQL/MariaDB, whose entries may commit out of their order, also the
//! ones missing from earlier reads, until they commit or [`Policy::settle`](super::Policy)
//! (twice the operation timeout) passes on the store's clock. It hands them to every subscriber through a bounded broadcast channel: a
//! subscriber that falls [`BUFFER`] events behind loses the oldest and is told how many
//! ([`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged)); nothing a
//! subscriber does (or fails to do) reaches a store operation, which never touches the channel.
//! The reader stops when its last subscriber drops.

use std::{sync::Arc, time::Duration};

use tokio::{sync::broadcast, task::JoinHandle};
use tracing::Instrument;

use super::{RepositoryStore, SessionError, SessionEvent};
use crate::ports::{Clock, Codec, SessionRepository};

/// How many events a subscriber may fall behind before it loses the oldest.
pub(crate) const BUFFER: usize = 1024;
/// How often the reader reads the entries committed since its last read.
pub(crate) const POLL: Duration = Duration::from_millis(10);
/// The `operation` of the reader's spans.
pub(crate) const READ_EVENTS: &str = "read_events";
/// The longest pause between two reads while the database fails them.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The store's reader, shared by its clones: the channel it sends on and its task, while it
/// runs.
#[derive(Debug, Default)]
pub(crate) struct EventFeed {
    running: tokio::sync::Mutex<Option<(broadcast::Sender<SessionEvent>, JoinHandle<()>)>>,
}

impl<R: SessionRepository, C: Codec> RepositoryStore<R, C> {
    /// A new subscriber to the store's events: every entry committed after this returns is
    /// sent to it. Starts the reader when none runs (it reads where the history ends first).
    pub(crate) async fn subscribe(
        &self,
    ) -> Result<broadcast::Receiver<SessionEvent>, SessionError> {
        self.require_history()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            SessionError::InvalidConfiguration(
                "`events()` starts its reader on the Tokio runtime: call it inside one".to_owned(),
            )
        })?;
        let mut running = self.events.running.lock().await;
        if let Some((sender, task)) = running.as_ref() {
            // A reader on a runtime that has shut down since (a test's) has ended: start anew.
            if !task.is_finished() {
                return Ok(sender.subscribe());
            }
        }
        let timeout = self.policy.operation_timeout.unwrap_or(MAX_BACKOFF);
        let cursor = tokio::time::timeout(timeout, self.repository.history_cursor())
            .await
            .map_err(|_| SessionError::TimedOut {
                operation: super::Operation::ListUserSessions,
                after: timeout,
            })??;
        let (sender, receiver) = broadcast::channel(BUFFER);
        let task = runtime.spawn(read(
            Reader {
                repository: Arc::clone(&self.repository),
                clock: Arc::clone(&self.clock),
                timeout,
                settle: self.policy.settle(),
            },
            Arc::clone(&self.events),
            sender.clone(),
            Arc::clone(&self.table_label),
            cursor,
        ));
        *running = Some((sender, task));
        Ok(receiver)
    }
}

/// What the reader reads with.
struct Reader<R> {
    repository: Arc<R>,
    clock: Arc<dyn Clock>,
    /// The store's operation timeout: a read that takes longer is abandoned and retried.
    timeout: Duration,
    /// How long an entry missing from a read may still commit ([`super::Policy::settle`]).
    settle: Duration,
}

/// The reader: every [`POLL`], the entries committed since `cursor`, to every subscriber.
/// Each read runs in a `session_store` span as the store's operations do, its `operation`
/// `read_events` (`table`: `table`).
async fn read<R: SessionRepository>(
    Reader {
        repository,
        clock,
        timeout,
        settle,
    }: Reader<R>,
    feed: Arc<EventFeed>,
    sender: broadcast::Sender<SessionEvent>,
    table: Arc<str>,
    mut cursor: String,
) {
    let mut polls = tokio::time::interval(POLL);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = POLL;
    loop {
        polls.tick().await;
        {
            // Under the lock a new subscriber takes: none can join a reader that is ending.
            let mut running = feed.running.lock().await;
            if sender.receiver_count() == 0 {
                *running = None;
                return;
            }
        }
        let span = tracing::debug_span!(
            "session_store",
            operation = READ_EVENTS,
            table = %table,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let read = tokio::time::timeout(
            timeout,
            repository.history_since(&cursor, clock.now(), settle),
        )
        .instrument(span.clone())
        .await
        .unwrap_or_else(|_| {
            Err(crate::ports::RepositoryError::Unavailable(format!(
                "the read of the login history timed out after {timeout:?}"
            )))
        })
        .map_err(SessionError::Database);
        span.record("duration_us", started.elapsed().as_micros() as u64);
        span.record(
            "outcome",
            match &read {
                Ok(_) => "ok",
                Err(error) => error.outcome(),
            },
        );
        match read {
            Ok((next, entries)) => {
                backoff = POLL;
                cursor = next;
                for (user, kind, at, handle, listed) in entries {
                    if let Some(event) = SessionEvent::of_entry(user, &kind, at, handle, listed) {
                        // Fails only when every subscriber has gone: seen at the next poll.
                        let _ = sender.send(event);
                    }
                }
            }
            Err(error) => {
                // Nothing is lost: the next read starts from the same cursor.
                tracing::warn!(%error, "the session events' reader cannot read the history; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
