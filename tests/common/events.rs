//! The live events' shared test setup: the stores' options, records, the next `n` events,
//! and every kind of event made by one store and heard by another.

use std::{collections::HashMap, time::Duration as StdDuration};

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tokio::sync::broadcast::Receiver;
use tower_sessions_seaorm_store::{
    codec::Codec, repository::SessionRepository, testing::ManualClock, Id, PostgresStore, Record,
    RepositoryStore, SessionEvent, SessionStore,
};

use super::{connect_postgres, database_url};

/// How long an event may take to arrive: the reader polls every 10 ms; this only bounds a
/// failing test.
pub const ARRIVAL: StdDuration = StdDuration::from_secs(10);

pub const HOSTILE: &str = "<script>alert('x')</script>\"; DROP TABLE session; --\u{202e}é\n";

/// The options every store here shares (the writer's and the listener's).
pub fn configured<R: SessionRepository, C: Codec>(
    store: RepositoryStore<R, C>,
    clock: &ManualClock,
) -> RepositoryStore<R, C> {
    store
        .with_clock(clock.reader())
        .with_user_key("user_id")
        .unwrap()
        .with_listed_values(["agent"])
        .unwrap()
        .with_absolute_lifetime(StdDuration::from_secs(3600))
        .with_max_sessions_per_user(2)
        .unwrap()
}

pub const DAY: StdDuration = StdDuration::from_secs(24 * 3600);

pub fn record(user: Option<&str>, now: OffsetDateTime) -> Record {
    let mut data = HashMap::new();
    if let Some(user) = user {
        data.insert("user_id".to_owned(), json!(user));
    }
    data.insert("agent".to_owned(), json!(format!("Firefox {HOSTILE}")));
    Record {
        id: Id::default(),
        data,
        expiry_date: now.replace_nanosecond(0).unwrap() + Duration::days(1),
    }
}

/// The next `n` events, failing when one takes longer than [`ARRIVAL`] or some were lost.
pub async fn next(events: &mut Receiver<SessionEvent>, n: usize) -> Vec<SessionEvent> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(ARRIVAL, events.recv()).await {
            Ok(Ok(event)) => got.push(event),
            Ok(Err(e)) => panic!("after {} of {n} events: {e}", got.len()),
            Err(_) => panic!("only {} of {n} events arrived: {got:?}", got.len()),
        }
    }
    got
}

/// `(kind, user, handle)` of each event, sorted: the changes of one statement have no order.
pub fn summary(events: &[SessionEvent]) -> Vec<(&'static str, String, String)> {
    let mut summary: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.user.clone(), e.handle.to_string()))
        .collect();
    summary.sort();
    summary
}

pub fn expect(
    what: &[(
        &'static str,
        &str,
        &tower_sessions_seaorm_store::SessionHandle,
    )],
) -> Vec<(&'static str, String, String)> {
    let mut summary: Vec<_> = what
        .iter()
        .map(|(kind, user, handle)| (*kind, (*user).to_owned(), handle.to_string()))
        .collect();
    summary.sort();
    summary
}

/// Every kind of event, made by `writer` and heard by `listener` (another pool, or another
/// store type, on the same database), each once, with its reason, user, handle and listed
/// values. Both stores were built by [`configured`] on `clock`, with the history.
pub async fn every_kind_arrives_once_with_its_reason<R1, C1, R2, C2>(
    writer: &RepositoryStore<R1, C1>,
    listener: &RepositoryStore<R2, C2>,
    clock: &ManualClock,
) where
    R1: SessionRepository,
    C1: Codec,
    R2: SessionRepository,
    C2: Codec,
    RepositoryStore<R1, C1>: SessionStore,
{
    let mut events = listener.events().await.unwrap();
    let now = clock.now();

    // Anonymous, then signed in, out, in, to another user, then logged out.
    let mut rec = record(None, now);
    writer.create(&mut rec).await.unwrap();
    let h = writer.session_handle(rec.id);
    rec.data.insert("user_id".into(), json!(HOSTILE));
    writer.save(&rec).await.unwrap();
    let signed_in = next(&mut events, 1).await;
    assert_eq!(summary(&signed_in), expect(&[("signed_in", HOSTILE, &h)]));
    assert_eq!(
        signed_in[0].listed["agent"],
        json!(format!("Firefox {HOSTILE}"))
    );
    assert_eq!(
        signed_in[0].at,
        now.replace_nanosecond(now.microsecond() * 1000).unwrap()
    );
    let id = rec.id.to_string();
    assert!(
        !format!("{signed_in:?}").contains(&id),
        "an event shows no id"
    );
    writer.save(&rec).await.unwrap(); // the same user: nothing
    rec.data.remove("user_id");
    writer.save(&rec).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 1).await),
        expect(&[("signed_out", HOSTILE, &h)])
    );
    rec.data.insert("user_id".into(), json!("ada"));
    writer.save(&rec).await.unwrap();
    rec.data.insert("user_id".into(), json!("bob"));
    writer.save(&rec).await.unwrap();
    writer.delete(&rec.id).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 4).await),
        expect(&[
            ("signed_in", "ada", &h),
            ("signed_out", "ada", &h),
            ("signed_in", "bob", &h),
            ("deleted", "bob", &h),
        ])
    );

    // Three logins with a limit of two: the least recently active is trimmed.
    let mut cy = Vec::new();
    for _ in 0..3 {
        clock.advance(StdDuration::from_secs(1));
        let mut rec = record(Some("cy"), clock.now());
        writer.create(&mut rec).await.unwrap();
        cy.push(writer.session_handle(rec.id));
    }
    assert_eq!(
        summary(&next(&mut events, 4).await),
        expect(&[
            ("signed_in", "cy", &cy[0]),
            ("signed_in", "cy", &cy[1]),
            ("signed_in", "cy", &cy[2]),
            ("trimmed", "cy", &cy[0]),
        ])
    );

    // Revoked: one device, then everywhere.
    assert!(writer.delete_user_session("cy", &cy[1]).await.unwrap());
    assert_eq!(writer.delete_user_sessions("cy").await.unwrap(), 1);
    assert_eq!(
        summary(&next(&mut events, 2).await),
        expect(&[("revoked", "cy", &cy[1]), ("revoked", "cy", &cy[2])])
    );

    // The cleanup: one session past its absolute lifetime, one expired.
    let mut old = record(Some("dee"), clock.now());
    writer.create(&mut old).await.unwrap();
    clock.advance(StdDuration::from_secs(50 * 60));
    let mut short = record(Some("dee"), clock.now());
    short.expiry_date = clock.now() + Duration::minutes(5);
    writer.create(&mut short).await.unwrap();
    clock.advance(StdDuration::from_secs(20 * 60));
    assert_eq!(writer.delete_expired_sessions().await.unwrap(), 2);
    let (old, short) = (
        writer.session_handle(old.id),
        writer.session_handle(short.id),
    );
    assert_eq!(
        summary(&next(&mut events, 4).await),
        expect(&[
            ("signed_in", "dee", &old),
            ("signed_in", "dee", &short),
            ("lifetime", "dee", &old),
            ("expired", "dee", &short),
        ])
    );

    // Exactly once: the next event is the next change's, nothing came twice in between.
    let mut last = record(Some("eve"), clock.now());
    writer.create(&mut last).await.unwrap();
    assert_eq!(
        summary(&next(&mut events, 1).await),
        expect(&[("signed_in", "eve", &writer.session_handle(last.id))])
    );
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

/// A PostgreSQL store with the history in `schema`, on a pool of its own.
pub async fn postgres(schema: &str, clock: &ManualClock) -> PostgresStore {
    let conn = connect_postgres(&database_url()).await;
    let store = PostgresStore::new(conn).with_schema_name(schema).unwrap();
    configured(store, clock).with_login_history(DAY).unwrap()
}
