use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// A clock the test moves: give the store its time with
/// [`with_clock`](crate::RepositoryStore::with_clock), then [`advance`](Self::advance) it
/// instead of sleeping, to expire a session, outlive an absolute lifetime, leave a touch window
/// or order a user's sessions by activity. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use tower_sessions_seaorm_store::{
///     testing::{InMemoryRepository, ManualClock},
///     RepositoryStore,
/// };
///
/// let clock = ManualClock::new();
/// let store = RepositoryStore::from_repository(InMemoryRepository::new())
///     .with_absolute_lifetime(Duration::from_secs(12 * 60 * 60))
///     .with_clock(clock.reader());
/// // ... create a session ...
/// clock.advance(Duration::from_secs(13 * 60 * 60)); // past its lifetime: it no longer loads
/// # let _ = store;
/// ```
///
/// tower-sessions computes a session's expiry from the system's clock when it saves it, so a
/// store's clock should start at the system's time (as [`ManualClock::new`] does) and move
/// forward only.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock showing the system's time now, in UTC.
    pub fn new() -> Self {
        Self::at(OffsetDateTime::now_utc())
    }

    /// A clock showing `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// The time it shows.
    pub fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves it `by` forward.
    pub fn advance(&self, by: std::time::Duration) {
        let by = Duration::try_from(by).unwrap_or(Duration::MAX);
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }

    /// Sets it to `now`.
    pub fn set(&self, now: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// What [`with_clock`](crate::RepositoryStore::with_clock) takes: this clock's time, read
    /// at each call.
    pub fn reader(&self) -> impl Fn() -> OffsetDateTime + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}
