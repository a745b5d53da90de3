//! The live events' feed, and who may read it: the store's own reader (through the repository)
//! or a [`HistoryCarrier`] that reads the login history elsewhere (on PostgreSQL, a listening
//! cache's listener, on its own connection and thread).

use std::{fmt, sync::Weak};

use time::OffsetDateTime;

/// An entry of the login history as a reader reads it: `(user_key, kind, at, handle,
/// listed_values)` (as [`SessionRepository::history_since`](super::SessionRepository) returns
/// them).
pub(crate) type HistoryEntry = (String, String, OffsetDateTime, String, Option<String>);

/// The events' cursor and where the entries read after it go, shared by every reader of one
/// subscription.
///
/// # Contract
///
/// One reader at a time: a reader [takes](TakenCursor::take) the cursor, reads the entries
/// committed after it, and [delivers](TakenCursor::deliver) them with the next cursor, which
/// puts that one back; a read that fails (or is abandoned) puts the cursor it took back
/// unchanged. While a cursor is taken, no other reader can take it: so along the chain of
/// cursors each committed entry is read once, whoever reads it, and delivered in order.
pub(crate) trait HistoryFeed: Send + Sync + 'static {
    /// The cursor, taken; `None` while another reader holds it.
    fn take(&self) -> Option<String>;
    /// Hands `entries` (read after the cursor taken) to the subscribers, then puts `next`
    /// back. Never waits for a subscriber.
    fn deliver(&self, next: String, entries: Vec<HistoryEntry>);
    /// Puts back a cursor taken and not read past.
    fn put_back(&self, cursor: String);
}

/// A cursor taken from a [`HistoryFeed`]: put back unchanged when dropped undelivered (a read
/// that failed, timed out or was cancelled), so nothing committed meanwhile is skipped.
pub(crate) struct TakenCursor<'a> {
    feed: &'a dyn HistoryFeed,
    cursor: Option<String>,
}

impl<'a> TakenCursor<'a> {
    /// The feed's cursor, unless another reader holds it.
    pub(crate) fn take(feed: &'a dyn HistoryFeed) -> Option<Self> {
        let cursor = feed.take()?;
        Some(Self {
            feed,
            cursor: Some(cursor),
        })
    }

    /// Where the read starts.
    pub(crate) fn cursor(&self) -> &str {
        self.cursor.as_deref().unwrap_or_default()
    }

    /// The entries read after [`cursor`](Self::cursor), to the subscribers; `next` is the
    /// feed's cursor from now on.
    pub(crate) fn deliver(mut self, next: String, entries: Vec<HistoryEntry>) {
        self.cursor = None;
        self.feed.deliver(next, entries);
    }
}

impl Drop for TakenCursor<'_> {
    fn drop(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            self.feed.put_back(cursor);
        }
    }
}

/// A reader of the login history other than the store's own, offered by a read cache
/// ([`ReadCache::history_carrier`](super::ReadCache::history_carrier)): on PostgreSQL, a
/// listening cache's listener, which reads the entries over its own connection, in its own
/// poll loop, once that connection has proven it reaches the store's database.
///
/// # Contract
///
/// - While [`is_carrying`](Self::is_carrying) is `true` the carrier reads the feed it was
///   given (about every 10 ms), and the store's reader does not; while it is `false` the
///   store's reader reads through the repository. The two never read at once: each takes the
///   feed's cursor ([`TakenCursor`]).
/// - It carries only over a connection proven to reach the store's database (a heartbeat sent
///   through the store's own connections came back on it), and stops carrying as soon as that
///   connection is lost or a read over it fails, or when its poll loop has not come round for
///   a while (a stalled connection): the store's reader then reads until it comes back.
pub(crate) trait HistoryCarrier: fmt::Debug + Send + Sync + 'static {
    /// Reads `feed` from now on, instead of any feed it read before (one reader per store).
    fn carry(&self, feed: Weak<dyn HistoryFeed>);
    /// Whether it reads the feed now.
    fn is_carrying(&self) -> bool;
}
