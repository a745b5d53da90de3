//! The read cache's listener on PostgreSQL: it `LISTEN`s on the session table's channel (see
//! [`eviction`](super::sql::eviction)) over its own connection, evicts what the triggers
//! announce, and proves its freshness with heartbeats.
//!
//! Two tasks, each on its own connection to the listener's URL (a direct one: `LISTEN` does not
//! survive PgBouncer's transaction pooling):
//!
//! - the **heartbeat** sends `pg_notify(<channel>_<token>, '~<token>:<n>')` every `heartbeat`
//!   on a channel of this listener's own (so no listener hears another replica's), noting when
//!   it sent heartbeat `n`, and only while the table's triggers are installed and enabled (a
//!   trigger dropped or disabled meanwhile stops the proofs);
//! - the **listener** listens on the table's channel and its own, applies every eviction, and
//!   when heartbeat `n` comes back it gives the cache that send instant as its proof:
//!   PostgreSQL delivers the notifications of every channel a session listens on in one commit
//!   order, so every eviction committed before then has arrived. When its connection drops, when it
//!   hears nothing for `silence`, or when the triggers are missing, it tells the cache it is
//!   [lost](SessionCache::lost) (cleared, not serving) and connects again, with backoff.
//!
//! Both hold the cache weakly and end when it drops (the cache also aborts them).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use sea_orm::sqlx::{
    self,
    postgres::{PgConnection, PgListener},
    Connection,
};

use super::sql::{eviction, SessionTable};
use crate::domain::SessionCache;

/// The most heartbeats awaited at once (older ones are forgotten: they will never count).
const PENDING_HEARTBEATS: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the two tasks share: the heartbeats sent and not yet back.
#[derive(Debug)]
struct Heartbeats {
    /// Tells this listener's heartbeats from every other replica's.
    token: String,
    sent: Mutex<VecDeque<(u64, Instant)>>,
}

impl Heartbeats {
    /// The channel this listener's heartbeats go on: the table's, suffixed with the token
    /// (31 + 17 bytes, within PostgreSQL's 63).
    fn channel(&self, table_channel: &str) -> String {
        format!("{table_channel}_{}", self.token)
    }

    fn payload(&self, n: u64) -> String {
        format!("{}{}:{n}", eviction::HEARTBEAT_MARK, self.token)
    }

    /// The send instant of the heartbeat `payload` names, if it is one of ours still awaited;
    /// it and every earlier one are forgotten.
    fn returned(&self, payload: &str) -> Option<Instant> {
        let rest = payload.strip_prefix(eviction::HEARTBEAT_MARK)?;
        let (token, n) = rest.split_once(':')?;
        if token != self.token {
            return None;
        }
        let n: u64 = n.parse().ok()?;
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let at = sent.iter().find(|(m, _)| *m == n).map(|(_, at)| *at);
        sent.retain(|(m, _)| *m > n);
        at
    }

    fn note(&self, n: u64, at: Instant) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == PENDING_HEARTBEATS {
            sent.pop_front();
        }
        sent.push_back((n, at));
    }
}

/// How the listener runs.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSettings {
    pub url: String,
    pub table: SessionTable,
    /// How often a heartbeat is sent.
    pub heartbeat: Duration,
    /// How long the listener waits without hearing anything before it connects again.
    pub silence: Duration,
}

/// Starts the listener and heartbeat tasks for `cache` on the current Tokio runtime.
pub(crate) fn spawn(cache: &Arc<SessionCache>, settings: ListenerSettings) -> Result<(), String> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        "a listening cache starts its listener on the Tokio runtime: build the store inside one"
            .to_owned()
    })?;
    let heartbeats = Arc::new(Heartbeats {
        token: format!("{:016x}", rand::random::<u64>()),
        sent: Mutex::new(VecDeque::new()),
    });
    let channel = eviction::channel(&settings.table);
    let listen = runtime.spawn(listen(
        Arc::downgrade(cache),
        settings.clone(),
        channel.clone(),
        Arc::clone(&heartbeats),
    ));
    let beat = runtime.spawn(beat(Arc::downgrade(cache), settings, channel, heartbeats));
    cache.attach(listen.abort_handle());
    cache.attach(beat.abort_handle());
    Ok(())
}

async fn listen(
    cache: Weak<SessionCache>,
    settings: ListenerSettings,
    channel: String,
    heartbeats: Arc<Heartbeats>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match cache.upgrade() {
            Some(cache) => cache.lost(),
            None => return,
        }
        match connect(&settings, &channel, &heartbeats.channel(&channel)).await {
            Ok(listener) => {
                backoff = FIRST_BACKOFF;
                tracing::debug!("session cache listener connected");
                let why = receive(listener, &cache, &heartbeats, settings.silence).await;
                match why {
                    Some(why) => tracing::warn!(
                        %why,
                        "the session cache stopped serving until its listener is back"
                    ),
                    None => return,
                }
            }
            Err(why) => {
                tracing::warn!(%why, "the session cache's listener cannot listen; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A listener on `channel` and `heartbeat_channel`, once the table's triggers are checked.
async fn connect(
    settings: &ListenerSettings,
    channel: &str,
    heartbeat_channel: &str,
) -> Result<PgListener, String> {
    let mut listener = PgListener::connect(&settings.url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    listener
        .listen_all([channel, heartbeat_channel])
        .await
        .map_err(|e| format!("LISTEN failed: {e}"))?;
    let installed: bool = sqlx::query_scalar(eviction::INSTALLED_SQL)
        .bind(eviction::regclass(&settings.table))
        .bind(eviction::TRIGGER_NAMES.to_vec())
        .fetch_one(&mut listener)
        .await
        .map_err(|e| format!("cannot check the eviction triggers: {e}"))?;
    if !installed {
        return Err(format!(
            "the session table {} (or one of its partitions) lacks its eviction triggers, or \
             one is disabled, so writes would not evict: run `migrate()` on a store built \
             with this cache",
            eviction::regclass(&settings.table),
        ));
    }
    Ok(listener)
}

/// Applies what arrives until the connection is lost (`Some(why)`) or the cache is gone
/// (`None`).
async fn receive(
    mut listener: PgListener,
    cache: &Weak<SessionCache>,
    heartbeats: &Heartbeats,
    silence: Duration,
) -> Option<String> {
    loop {
        let notification = match tokio::time::timeout(silence, listener.try_recv()).await {
            Err(_) => {
                return Some(format!(
                    "nothing arrived for {silence:?}, not even a heartbeat"
                ))
            }
            Ok(Ok(None)) => return Some("the listening connection was lost".to_owned()),
            Ok(Err(e)) => return Some(format!("the listening connection failed: {e}")),
            Ok(Ok(Some(notification))) => notification,
        };
        let cache = cache.upgrade()?;
        let payload = notification.payload();
        if payload == eviction::EVICT_ALL {
            cache.clear();
        } else if payload.starts_with(eviction::HEARTBEAT_MARK) {
            if let Some(sent) = heartbeats.returned(payload) {
                cache.prove(sent);
            }
        } else {
            cache.evict(payload);
        }
    }
}

async fn beat(
    cache: Weak<SessionCache>,
    settings: ListenerSettings,
    channel: String,
    heartbeats: Arc<Heartbeats>,
) {
    let mut connection: Option<PgConnection> = None;
    let mut triggers_missing = false;
    let heartbeat_channel = heartbeats.channel(&channel);
    let mut ticks = tokio::time::interval(settings.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        ticks.tick().await;
        if cache.strong_count() == 0 {
            return;
        }
        let conn = match &mut connection {
            Some(conn) => conn,
            None => {
                match tokio::time::timeout(settings.silence, PgConnection::connect(&settings.url))
                    .await
                {
                    Ok(Ok(conn)) => connection.insert(conn),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "the session cache's heartbeat cannot connect");
                        continue;
                    }
                    Err(_) => continue,
                }
            }
        };
        heartbeats.note(n, Instant::now());
        let sent = sqlx::query(eviction::HEARTBEAT_SQL)
            .bind(eviction::regclass(&settings.table))
            .bind(eviction::TRIGGER_NAMES.to_vec())
            .bind(&heartbeat_channel)
            .bind(heartbeats.payload(n))
            .fetch_optional(&mut *conn);
        match tokio::time::timeout(settings.silence, sent).await {
            Ok(Ok(Some(_))) => triggers_missing = false,
            Ok(Ok(None)) => {
                if !triggers_missing {
                    tracing::warn!(
                        "the session table's eviction triggers are gone or disabled: the \
                         session cache stops serving until they are back (`migrate()`)"
                    );
                }
                triggers_missing = true;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the session cache's heartbeat failed");
                connection = None;
            }
            Err(_) => connection = None,
        }
    }
}
