//! "A new device signed in": the store's live events (`store.events()`) heard by this
//! process, whichever replica the sign-in went to, kept per user for the account page to show
//! on every other device once.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast::{error::RecvError, Receiver};
use tower_sessions_seaorm_store::SessionEvent;

use crate::handlers::DEVICE;

/// The newest sign-ins kept per user.
const PER_USER: usize = 5;
/// The most users kept: beyond, the oldest notices are forgotten (an example's bound).
const USERS: usize = 10_000;

/// One sign-in, as a notice shows it.
#[derive(Clone, Debug)]
pub struct SignIn {
    /// The session's handle (never its id).
    pub handle: String,
    /// "Firefox on Linux", as the new session listed it.
    pub device: Option<String>,
    /// Microseconds since the Unix epoch.
    pub at: i64,
}

/// The recent sign-ins of every user, from the event stream.
#[derive(Clone, Default)]
pub struct Notices {
    by_user: Arc<Mutex<HashMap<String, VecDeque<SignIn>>>>,
}

impl Notices {
    /// Hears `events` until the store's event stream ends.
    pub fn listen(&self, mut events: Receiver<SessionEvent>) {
        let notices = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) if event.kind == "signed_in" => notices.note(&event),
                    Ok(_) => {}
                    // A burst of logins outran this task: some notices are not shown.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "session events missed: some notices are lost")
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    fn note(&self, event: &SessionEvent) {
        let sign_in = SignIn {
            handle: event.handle.to_string(),
            device: event
                .listed
                .get(DEVICE)
                .and_then(|device| device.as_str())
                .map(str::to_owned),
            at: micros(event.at),
        };
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if by_user.len() >= USERS && !by_user.contains_key(&event.user) {
            by_user.clear();
        }
        let recent = by_user.entry(event.user.clone()).or_default();
        if recent.len() == PER_USER {
            recent.pop_front();
        }
        recent.push_back(sign_in);
    }

    /// `user`'s sign-ins after `after` (microseconds) on another session than `this`, oldest
    /// first.
    pub fn since(&self, user: &str, after: i64, this: Option<&str>) -> Vec<SignIn> {
        let by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter(|sign_in| sign_in.at > after && Some(sign_in.handle.as_str()) != this)
            .cloned()
            .collect()
    }
}

/// Microseconds since the Unix epoch.
pub fn micros(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}
