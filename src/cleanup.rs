//! The periodic cleanup task: deletes expired sessions, survives database errors, stops on
//! request.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    domain::RepositoryStore,
    ports::{Codec, SessionRepository},
};

/// A running cleanup task, from [`RepositoryStore::spawn_cleanup_task`](crate::RepositoryStore::spawn_cleanup_task).
///
/// Unlike tower-sessions' `continuously_delete_expired`, which returns on the first error and
/// never runs again, this task logs the error, waits a growing back-off (capped at the period)
/// and carries on. Dropping the handle leaves the task running; call
/// [`CleanupTask::shutdown`] to stop it.
#[derive(Debug)]
pub struct CleanupTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl CleanupTask {
    pub(crate) fn spawn<R: SessionRepository, C: Codec>(
        store: RepositoryStore<R, C>,
        period: Duration,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let period = period.max(Duration::from_millis(1));
        let handle = tokio::spawn(async move {
            let mut wait = period;
            let mut backoff = Duration::from_secs(1).min(period);
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match store.delete_expired_sessions().await {
                    Ok(deleted) => {
                        tracing::debug!(deleted, "deleted expired sessions");
                        wait = period;
                        backoff = Duration::from_secs(1).min(period);
                    }
                    Err(error) => {
                        tracing::error!(
                            %error,
                            retry_in_ms = backoff.as_millis() as u64,
                            "deleting expired sessions failed; the cleanup task keeps running"
                        );
                        wait = backoff;
                        backoff = (backoff * 2).min(period);
                    }
                }
            }
        });
        Self { stop, handle }
    }

    /// Stops the task and waits for it to finish. A cleanup statement under way is allowed to
    /// complete; no new one starts.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.handle.await {
            if err.is_panic() {
                tracing::error!("the session cleanup task panicked");
            }
        }
    }

    /// Whether the task has ended (it only ends when shut down, or if its runtime is gone).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}
