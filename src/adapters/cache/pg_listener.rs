//! The read cache's listener on PostgreSQL: it `LISTEN`s on the session table's channel (see
//! [`eviction`](super::sql::eviction)) over its own connection, evicts what the triggers
//! announce, and proves its freshness with heartbeats.
//!
//! Two tasks:
//!
//! - the **heartbeat** sends `pg_notify(<channel>_<token>, '~<token>:<n>:<fingerprint>')`
//!   every `heartbeat` **through the store's own connections** ([`Heartbeat`]; a `NOTIFY`
//!   works through PgBouncer), on a channel of this listener's own (so no listener hears another
//!   replica's), noting when it sent heartbeat `n`, and only while the table's triggers are
//!   installed and enabled there. So a proof also shows that the listener hears the store's
//!   database, not another one its URL names by mistake, and a trigger dropped or disabled
//!   meanwhile stops the proofs. The statement computes the fingerprint of the catalog rows the
//!   announcements depend on ([`eviction::HEARTBEAT_SQL`]);
//! - the **listener**, on a connection of its own to the listener's URL (a direct one: `LISTEN`
//!   does not survive PgBouncer's transaction pooling), listens on the table's channel, its
//!   own and [`eviction::CLEAR_CHANNEL`], applies every eviction, reads the table's eviction
//!   log (the store's own saves, which announce nothing) every `poll`, and when heartbeat `n`
//!   comes back it reads the log once more and gives the cache that send instant as its
//!   proof: PostgreSQL delivers the notifications of every channel a session listens on in one
//!   commit order, so every eviction committed before then has arrived. If the heartbeat's
//!   fingerprint differs from the previous one's, something may have hidden a write from the
//!   triggers (a trigger disabled and enabled again, the table swapped, a partition detached):
//!   it clears the cache first. (The first heartbeat after connecting only notes the
//!   fingerprint: the cache was cleared when the connection was made.) When its connection
//!   drops, when it hears nothing for `silence`, or when the triggers are missing, it tells the
//!   cache it is [lost](SessionCache::lost) (cleared, not serving) and connects again, with
//!   backoff. It runs on a thread of its own; the heartbeat on the application's runtime.
//!   With the login history it also reads the live events after its reads of the log, once a
//!   heartbeat has come back on its connection ([`pg_events`](super::pg_events)).
//!
//! Both hold the cache weakly and end when it drops (the cache also aborts them).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sea_orm::sqlx::{self, postgres::PgListener};

use super::{
    pg_events::{Carrier, EventReads},
    SessionCache,
};
use crate::{
    adapters::sql::{eviction, Param, SessionTable, SqlDriver},
    ports::ReadCache,
};

/// The most heartbeats awaited at once (older ones are forgotten: they will never count).
const PENDING_HEARTBEATS: usize = 64;
/// The longest pause between two heartbeats, whatever the staleness bound: each one that
/// returns also reads the eviction log, which must be read well within [`LOG_RETENTION`].
pub(crate) const LONGEST_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long the eviction log keeps a save: a listener prunes what is older, and a listener
/// that has not read the log for half of it clears its cache (it may have missed pruned rows).
const LOG_RETENTION: Duration = Duration::from_secs(120);
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
    /// (31 + 17 bytes, within PostgreSQL's 63; the heartbeat statement strips the 17).
    fn channel(&self, table_channel: &str) -> String {
        format!("{table_channel}_{}", self.token)
    }

    fn payload(&self, n: u64) -> String {
        format!("{}{}:{n}", eviction::HEARTBEAT_MARK, self.token)
    }

    /// The send instant and the catalog fingerprint of the heartbeat `payload` names, if it is
    /// one of ours still awaited; it and every earlier one are forgotten.
    fn returned<'p>(&self, payload: &'p str) -> Option<(Instant, &'p str)> {
        let rest = payload.strip_prefix(eviction::HEARTBEAT_MARK)?;
        let (token, rest) = rest.split_once(':')?;
        if token != self.token {
            return None;
        }
        let (n, fingerprint) = rest.split_once(':')?;
        let n: u64 = n.parse().ok()?;
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let at = sent.iter().find(|(m, _)| *m == n).map(|(_, at)| *at);
        sent.retain(|(m, _)| *m > n);
        Some((at?, fingerprint))
    }

    fn note(&self, n: u64, at: Instant) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == PENDING_HEARTBEATS {
            sent.pop_front();
        }
        sent.push_back((n, at));
    }
}

/// How heartbeats reach the store's database: through the store's own connections.
#[async_trait]
pub(crate) trait Heartbeat: Send + Sync + 'static {
    /// Runs [`eviction::HEARTBEAT_SQL`] with the table's name (`$1`), the channel (`$2`), the
    /// payload (`$3`, to which the statement adds the fingerprint) and the function's text
    /// (`$4`). `Ok(true)` when it was sent, `Ok(false)` when the triggers are not in place
    /// (nothing sent).
    async fn send(&self, beat: HeartbeatStatement) -> Result<bool, String>;
}

#[async_trait]
impl<D: SqlDriver> Heartbeat for D {
    async fn send(&self, beat: HeartbeatStatement) -> Result<bool, String> {
        let params = [beat.table, beat.channel, beat.payload, beat.body];
        let params = params.map(|text| Param::Text(Some(text)));
        let sent = self.query(eviction::HEARTBEAT_SQL, params.into()).await;
        sent.map(|rows| !rows.is_empty())
            .map_err(|err| err.error.to_string())
    }
}

/// The parameters of [`eviction::HEARTBEAT_SQL`].
#[derive(Debug, Clone)]
pub(crate) struct HeartbeatStatement {
    pub table: String,
    pub channel: String,
    pub payload: String,
    pub body: String,
}

/// How the listener runs.
#[derive(Clone)]
pub(crate) struct ListenerSettings {
    pub url: String,
    pub table: SessionTable,
    /// How often a heartbeat is sent.
    pub heartbeat: Duration,
    /// How long the listener waits without hearing anything before it connects again.
    pub silence: Duration,
    /// How often the listener reads the eviction log for the saves of every replica.
    pub poll: Duration,
    /// How heartbeats reach the database: through the store's own connections.
    pub send: Arc<dyn Heartbeat>,
    /// The live events' reads, for a store with the login history (`pg_events`).
    pub events: Option<Arc<Carrier>>,
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
    // The listener runs on a thread and runtime of its own: an application whose runtime is
    // saturated (every worker busy) would otherwise delay its polls and evictions by
    // milliseconds; on its own thread it is woken by the operating system as soon as its timer
    // or socket is ready. The heartbeats stay on the application's runtime, through its pool.
    // The runtime is built on that thread, so that nothing of it is ever dropped here, on the
    // application's runtime (where dropping a runtime panics), whatever fails.
    let task = listen(
        Arc::downgrade(cache),
        settings.clone(),
        channel.clone(),
        Arc::clone(&heartbeats),
    );
    let (started, start) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("session-cache-listener".to_owned())
        .spawn(move || {
            let own = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(own) => own,
                Err(e) => {
                    let _ = started.send(Err(format!(
                        "cannot start the session cache's listener runtime: {e}"
                    )));
                    return;
                }
            };
            let listen = own.spawn(task);
            let _ = started.send(Ok(listen.abort_handle()));
            // Ends when the cache drops (it aborts the task, or the task finds it gone).
            let _ = own.block_on(listen);
        })
        .map_err(|e| format!("cannot start the session cache's listener thread: {e}"))?;
    let listening = start
        .recv()
        .map_err(|_| "the session cache's listener thread ended before it started".to_owned())??;
    cache.attach(listening);
    let beat = runtime.spawn(beat(Arc::downgrade(cache), settings, channel, heartbeats));
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
        // Bounded as the log's reads are: a server gone without a word would hold it.
        let heartbeat_channel = heartbeats.channel(&channel);
        let connecting = connect(&settings, &channel, &heartbeat_channel);
        let connected = tokio::time::timeout(settings.silence, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "connecting, listening and checking the triggers took over {:?}",
                    settings.silence
                ))
            });
        match connected {
            Ok((listener, snapshot)) => {
                backoff = FIRST_BACKOFF;
                tracing::debug!("session cache listener connected");
                // Saves the snapshot cannot see are read at the first poll; an entry cached
                // before it was taken may predate one it can see: none is kept.
                match cache.upgrade() {
                    Some(cache) => cache.clear(),
                    None => return,
                }
                let log = Log::new(&settings.table, snapshot);
                let why = receive(listener, &cache, &heartbeats, log, &settings).await;
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

/// A listener on `channel` and `heartbeat_channel`, once the table's triggers are checked, and
/// the snapshot its reading of the eviction log starts from.
async fn connect(
    settings: &ListenerSettings,
    channel: &str,
    heartbeat_channel: &str,
) -> Result<(PgListener, String), String> {
    let mut listener = PgListener::connect(&settings.url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    // A lost connection must end `receive` (which clears the cache), never be mended behind
    // its back: by default `try_recv` reconnects before it returns, and a poll that cancels it
    // there would then read the log over a new connection that missed every notification sent
    // meanwhile. Without it, `try_recv` drops the connection and returns at once.
    listener.eager_reconnect(false);
    listener
        .listen_all([channel, heartbeat_channel, eviction::CLEAR_CHANNEL])
        .await
        .map_err(|e| format!("LISTEN failed: {e}"))?;
    let installed: bool = sqlx::query_scalar(eviction::INSTALLED_SQL)
        .bind(eviction::regclass(&settings.table))
        .bind(heartbeat_channel)
        .bind(eviction::function_body(&settings.table))
        .fetch_one(&mut listener)
        .await
        .map_err(|e| format!("cannot check the eviction triggers: {e}"))?;
    if !installed {
        return Err(format!(
            "the session table {} (or one of its partitions) lacks its eviction triggers, or \
             one is disabled or calls a function other than this release's, so writes would \
             not evict: run `migrate()` on a store built with this cache",
            eviction::regclass(&settings.table),
        ));
    }
    let snapshot: String = sqlx::query_scalar(eviction::SNAPSHOT_SQL)
        .fetch_one(&mut listener)
        .await
        .map_err(|e| format!("cannot read the eviction log's snapshot: {e}"))?;
    Ok((listener, snapshot))
}

/// Applies what arrives until the connection is lost (`Some(why)`) or the cache is gone
/// (`None`).
async fn receive(
    mut listener: PgListener,
    cache: &Weak<SessionCache>,
    heartbeats: &Heartbeats,
    mut log: Log,
    settings: &ListenerSettings,
) -> Option<String> {
    let silence = settings.silence;
    // The catalog fingerprint of the latest heartbeat back on this connection; the first only
    // notes it (the cache was cleared when the connection was made, and holds nothing since).
    let mut fingerprint: Option<String> = None;
    let mut polls = tokio::time::interval(settings.poll);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    // Carries the live events once this connection has proven it reaches the store's
    // database; stops when dropped, with the connection.
    let mut events = settings.events.clone().map(EventReads::new);
    loop {
        // A poll of the log does not count as hearing anything: only a notification does.
        let received = tokio::select! {
            // `try_recv` is cancel-safe here: it reads whole messages or none, and without
            // eager reconnection it does not wait once it has dropped a lost connection.
            received = tokio::time::timeout_at(heard + silence, listener.try_recv()) => received,
            _ = polls.tick() => {
                let cache = cache.upgrade()?;
                if let Err(why) = log.read(&mut listener, &cache, silence).await {
                    return Some(why);
                }
                if let Some(events) = &mut events {
                    if let Err(why) = events.read(&mut listener, silence).await {
                        return Some(why);
                    }
                }
                continue;
            }
        };
        let notification = match received {
            Err(_) => {
                return Some(format!(
                    "nothing arrived for {silence:?}, not even this replica's heartbeat: does \
                     the listening URL name the store's database, and are the triggers there?"
                ))
            }
            Ok(Ok(None)) => return Some("the listening connection was lost".to_owned()),
            Ok(Err(e)) => return Some(format!("the listening connection failed: {e}")),
            Ok(Ok(Some(notification))) => notification,
        };
        heard = tokio::time::Instant::now();
        let cache = cache.upgrade()?;
        let payload = notification.payload();
        if notification.channel() == eviction::CLEAR_CHANNEL || payload == eviction::EVICT_ALL {
            cache.clear();
        } else if payload.starts_with(eviction::HEARTBEAT_MARK) {
            if let Some((sent, seen)) = heartbeats.returned(payload) {
                let seen = seen.to_owned();
                // The saves logged before the heartbeat was sent (it has committed since),
                // whenever the last poll was.
                if let Err(why) = log.read(&mut listener, &cache, silence).await {
                    return Some(why);
                }
                if fingerprint.as_deref().is_some_and(|known| known != seen) {
                    tracing::info!(
                        "the session table, its partitions, its eviction triggers or their \
                         function changed in the catalog: the session cache is cleared"
                    );
                    cache.clear();
                }
                fingerprint = Some(seen);
                cache.prove(sent);
                if let Some(events) = &mut events {
                    events.proven();
                }
            }
        } else {
            cache.evict(payload);
        }
    }
}

/// The listener's reading of the table's eviction log (see [`eviction::log_read_sql`]).
struct Log {
    /// The statements, with the log's validated, quoted name: no value is spliced in.
    read: String,
    prune: String,
    /// The snapshot of the last read: the saves of the transactions it could not see have
    /// not been read yet.
    snapshot: String,
    /// When the log was last read (or its first snapshot taken).
    read_at: Instant,
    /// Earlier horizons and when they were read, oldest first: once one is older than the
    /// retention, every listener has read past it and what precedes it can go.
    horizons: VecDeque<(Instant, i64)>,
}

impl Log {
    fn new(table: &SessionTable, snapshot: String) -> Self {
        Self {
            read: eviction::log_read_sql(table),
            prune: eviction::log_prune_sql(table),
            snapshot,
            read_at: Instant::now(),
            horizons: VecDeque::new(),
        }
    }

    /// Evicts the keys saved since the last read; prunes what every listener has read.
    ///
    /// `Err` when a statement did not end within `timeout` (the listener's silence bound): a
    /// connection whose server died without a word (a failover, a host gone) would otherwise
    /// hold the listener until the kernel gives up on it, many minutes later; the listener
    /// reconnects instead.
    async fn read(
        &mut self,
        listener: &mut PgListener,
        cache: &SessionCache,
        timeout: Duration,
    ) -> Result<(), String> {
        let started = Instant::now();
        let read = sqlx::query_as(sqlx::AssertSqlSafe(self.read.as_str()))
            .bind(&self.snapshot)
            .fetch_one(&mut *listener);
        let (snapshot, horizon, keys): (String, i64, Vec<String>) =
            tokio::time::timeout(timeout, read)
                .await
                .map_err(|_| format!("the read of the eviction log took over {timeout:?}"))?
                .map_err(|e| format!("cannot read the eviction log: {e}"))?;
        if started.duration_since(self.read_at) > LOG_RETENTION / 2 {
            // Saves this listener has not read may have been pruned by another.
            cache.clear();
        }
        for key in &keys {
            cache.evict(key);
        }
        self.snapshot = snapshot;
        self.read_at = started;
        if self
            .horizons
            .back()
            .is_none_or(|(at, _)| started.duration_since(*at) >= LOG_RETENTION / 8)
        {
            self.horizons.push_back((started, horizon));
        }
        let mut prune_before = None;
        while let Some(&(at, old)) = self.horizons.front() {
            if started.duration_since(at) < LOG_RETENTION {
                break;
            }
            prune_before = Some(old);
            self.horizons.pop_front();
        }
        if let Some(old) = prune_before {
            let prune = sqlx::query(sqlx::AssertSqlSafe(self.prune.as_str()))
                .bind(old)
                .execute(&mut *listener);
            let pruned = tokio::time::timeout(timeout, prune)
                .await
                .map_err(|_| format!("pruning the eviction log took over {timeout:?}"))?;
            if let Err(error) = pruned {
                tracing::debug!(%error, "the session cache could not prune its eviction log");
            }
        }
        Ok(())
    }
}

async fn beat(
    cache: Weak<SessionCache>,
    settings: ListenerSettings,
    channel: String,
    heartbeats: Arc<Heartbeats>,
) {
    let mut triggers_missing = false;
    let table = eviction::regclass(&settings.table);
    let heartbeat_channel = heartbeats.channel(&channel);
    let body = eviction::function_body(&settings.table);
    let mut ticks = tokio::time::interval(settings.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        ticks.tick().await;
        if cache.strong_count() == 0 {
            return;
        }
        heartbeats.note(n, Instant::now());
        let sent = settings.send.send(HeartbeatStatement {
            table: table.clone(),
            channel: heartbeat_channel.clone(),
            payload: heartbeats.payload(n),
            body: body.clone(),
        });
        match tokio::time::timeout(settings.silence, sent).await {
            Ok(Ok(true)) => triggers_missing = false,
            Ok(Ok(false)) => {
                if !triggers_missing {
                    tracing::warn!(
                        "the session table's eviction triggers are gone or disabled, or call a \
                         function other than this release's: the session cache stops serving \
                         until they are back (`migrate()`)"
                    );
                }
                triggers_missing = true;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "the session cache's heartbeat failed"),
            Err(_) => tracing::debug!("the session cache's heartbeat timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeats() -> Heartbeats {
        Heartbeats {
            token: "0123456789abcdef".to_owned(),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    #[test]
    fn the_heartbeat_channel_adds_what_the_statement_strips() {
        let table = "tower_sessions_0123456789abcdef";
        let channel = heartbeats().channel(table);
        assert_eq!(
            channel.len(),
            table.len() + eviction::HEARTBEAT_CHANNEL_SUFFIX
        );
        assert!(channel.starts_with(table));
    }

    #[test]
    fn a_returned_heartbeat_gives_its_send_instant_and_fingerprint_once() {
        let beats = heartbeats();
        let (first, second) = (Instant::now(), Instant::now());
        beats.note(1, first);
        beats.note(2, second);
        // The statement appends `:` and the fingerprint to the payload it is given.
        let back = |n: u64| format!("{}:f{n}", beats.payload(n));
        assert_eq!(beats.returned(&back(1)), Some((first, "f1")));
        assert_eq!(beats.returned(&back(1)), None, "forgotten once back");
        assert_eq!(beats.returned("~ffffffffffffffff:2:f2"), None, "another's");
        assert_eq!(beats.returned(&beats.payload(2)), None, "no fingerprint");
        assert_eq!(beats.returned(&back(2)), Some((second, "f2")));
    }
}
