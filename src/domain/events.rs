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
//!
//! A store whose read cache offers a [`HistoryCarrier`] (PostgreSQL, a listening cache) hands
//! the reading to it: while the carrier carries, the cache's listener reads the same entries
//! with the same statement on its own connection, and the store's reader only watches its
//! subscribers; while it does not (its connection not yet proven, or lost), the store's reader
//! reads through the repository. Both take the one cursor of the subscription's `Feed`
//! ([`TakenCursor`]), so neither reads what the other has read, and nothing is skipped.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::{sync::broadcast, task::JoinHandle};
use tracing::Instrument;

use super::{RepositoryStore, SessionError, SessionEvent};
use crate::ports::{
    Clock, Codec, HistoryCarrier, HistoryEntry, HistoryFeed, SessionRepository, TakenCursor,
};

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
        let feed = Arc::new(Feed {
            sender: sender.clone(),
            cursor: Mutex::new(Some(cursor)),
        });
        let carrier = self
            .cache
            .as_ref()
            .and_then(|cache| cache.history_carrier());
        if let Some(carrier) = &carrier {
            carrier.carry(Arc::downgrade(&feed) as Weak<dyn HistoryFeed>);
        }
        let task = runtime.spawn(read(
            Reader {
                repository: Arc::clone(&self.repository),
                clock: Arc::clone(&self.clock),
                timeout,
                settle: self.policy.settle(),
                carrier,
            },
            Arc::clone(&self.events),
            feed,
            Arc::clone(&self.table_label),
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
    /// Who reads instead while it carries (a listening cache's listener).
    carrier: Option<Arc<dyn HistoryCarrier>>,
}

/// One subscription's cursor and channel, which whoever reads takes turns at
/// ([`HistoryFeed`]).
struct Feed {
    sender: broadcast::Sender<SessionEvent>,
    /// The cursor, while no reader holds it.
    cursor: Mutex<Option<String>>,
}

impl Feed {
    fn cursor(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.cursor.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HistoryFeed for Feed {
    fn take(&self) -> Option<String> {
        self.cursor().take()
    }

    fn deliver(&self, next: String, entries: Vec<HistoryEntry>) {
        // Sent before the cursor goes back: no other reader can send later entries first.
        for (user, kind, at, handle, listed) in entries {
            if let Some(event) = SessionEvent::of_entry(user, &kind, at, handle, listed) {
                // Never waits; fails only when every subscriber has gone (seen at the next
                // poll).
                let _ = self.sender.send(event);
            }
        }
        *self.cursor() = Some(next);
    }

    fn put_back(&self, cursor: String) {
        *self.cursor() = Some(cursor);
    }
}

/// The reader: every [`POLL`], the entries committed since the feed's cursor, to every
/// subscriber, unless the carrier reads them. Each read runs in a `session_store` span as the
/// store's operations do, its `operation` `read_events` (`table`: `table`).
async fn read<R: SessionRepository>(
    Reader {
        repository,
        clock,
        timeout,
        settle,
        carrier,
    }: Reader<R>,
    events: Arc<EventFeed>,
    feed: Arc<Feed>,
    table: Arc<str>,
) {
    let mut polls = tokio::time::interval(POLL);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = POLL;
    loop {
        polls.tick().await;
        {
            // Under the lock a new subscriber takes: none can join a reader that is ending.
            // (Ending drops the feed, so a carrier reads it no more.)
            let mut running = events.running.lock().await;
            if feed.sender.receiver_count() == 0 {
                *running = None;
                return;
            }
        }
        if carrier
            .as_ref()
            .is_some_and(|carrier| carrier.is_carrying())
        {
            continue;
        }
        // `None`: the carrier is reading (it stopped carrying since): its read ends first.
        let Some(taken) = TakenCursor::take(&*feed) else {
            continue;
        };
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
            repository.history_since(taken.cursor(), clock.now(), settle),
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
                taken.deliver(next, entries);
            }
            Err(error) => {
                // Nothing is lost: the cursor goes back as it was, and the next read (this
                // reader's or the carrier's) starts from it.
                drop(taken);
                tracing::warn!(%error, "the session events' reader cannot read the history; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(all(test, feature = "cache"))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use time::OffsetDateTime;

    use super::*;
    use crate::{
        adapters::cache::SessionCache,
        codec::MessagePackCodec,
        ports::{MockSessionRepository, RepositoryError},
    };

    /// A carrier the test drives: it carries while `carrying`, and reads when told to.
    #[derive(Debug, Default)]
    struct Carrier {
        carrying: AtomicBool,
        feed: Mutex<Option<Weak<dyn HistoryFeed>>>,
    }

    impl std::fmt::Debug for dyn HistoryFeed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a feed")
        }
    }

    impl HistoryCarrier for Carrier {
        fn carry(&self, feed: Weak<dyn HistoryFeed>) {
            *self.feed.lock().unwrap() = Some(feed);
        }
        fn is_carrying(&self) -> bool {
            self.carrying.load(Ordering::SeqCst)
        }
    }

    impl Carrier {
        fn feed(&self) -> Option<Arc<dyn HistoryFeed>> {
            self.feed.lock().unwrap().as_ref()?.upgrade()
        }
    }

    /// A history of sign-ins, `user0`, `user1`…: a cursor is how many have been read.
    #[derive(Clone, Default)]
    struct History(Arc<Mutex<Vec<String>>>);

    impl History {
        fn push(&self, user: &str) {
            self.0.lock().unwrap().push(user.to_owned());
        }
        fn since(&self, cursor: &str) -> (String, Vec<HistoryEntry>) {
            let users = self.0.lock().unwrap();
            let from: usize = cursor.parse().unwrap();
            let entries = users[from..]
                .iter()
                .map(|user| {
                    let at = OffsetDateTime::UNIX_EPOCH;
                    (user.clone(), "signed_in".to_owned(), at, "h".into(), None)
                })
                .collect();
            (users.len().to_string(), entries)
        }
    }

    fn users(events: &mut broadcast::Receiver<SessionEvent>) -> Vec<String> {
        std::iter::from_fn(|| events.try_recv().ok())
            .map(|event| event.user)
            .collect()
    }

    /// The store's reader reads while the carrier does not carry, and only then; a cursor the
    /// carrier holds is not read past by the reader; a read the carrier abandons leaves the
    /// cursor as it was: each entry arrives once, in order, whoever reads it.
    #[tokio::test(start_paused = true)]
    async fn the_reader_and_a_carrier_take_turns_at_one_cursor() {
        let history = History::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let mut repo = MockSessionRepository::new();
        repo.expect_history_cursor()
            .returning(|| Ok("0".to_owned()));
        let (log, counted) = (history.clone(), Arc::clone(&reads));
        repo.expect_history_since().returning(
            move |cursor: &str, _, _| -> Result<_, RepositoryError> {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(log.since(cursor))
            },
        );
        let carrier = Arc::new(Carrier::default());
        let cache = SessionCache::local(1 << 20)
            .with_history_carrier(Arc::clone(&carrier) as Arc<dyn HistoryCarrier>);
        let store = RepositoryStore {
            cache: Some(Arc::new(cache)),
            ..RepositoryStore::from_parts(repo, MessagePackCodec)
        }
        .with_policy(|policy| policy.history_retention = Some(Duration::from_secs(60)));
        let mut events = store.subscribe().await.unwrap();
        let poll = || tokio::time::sleep(POLL * 5);

        // Not carrying: the store's reader reads.
        history.push("user0");
        poll().await;
        assert_eq!(users(&mut events), ["user0"]);

        // Carrying: the reader reads nothing; the carrier delivers from the same cursor.
        carrier.carrying.store(true, Ordering::SeqCst);
        poll().await;
        let before = reads.load(Ordering::SeqCst);
        history.push("user1");
        poll().await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            before,
            "the pool read while carried"
        );
        assert!(users(&mut events).is_empty());
        let feed = carrier.feed().expect("the subscription's feed");
        let taken = TakenCursor::take(&*feed).unwrap();
        let (next, entries) = history.since(taken.cursor());
        taken.deliver(next, entries);
        assert_eq!(users(&mut events), ["user1"]);

        // The carrier stops mid-read (its connection lost): the reader waits for the cursor,
        // which comes back unread, and reads from it.
        history.push("user2");
        let taken = TakenCursor::take(&*feed).unwrap();
        carrier.carrying.store(false, Ordering::SeqCst);
        poll().await;
        assert!(users(&mut events).is_empty(), "read past a taken cursor");
        drop(taken);
        poll().await;
        assert_eq!(users(&mut events), ["user2"]);
        poll().await;
        assert!(users(&mut events).is_empty(), "an entry came twice");

        // The last subscriber gone, the reader ends and its feed with it.
        drop((events, feed));
        poll().await;
        assert!(carrier.feed().is_none(), "the feed outlived its reader");
    }
}
