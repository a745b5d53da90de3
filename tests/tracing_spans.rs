//! The span each store operation (and each read of the events' reader) leaves, on PostgreSQL. Alone in its test binary: tracing
//! caches whether a call site is enabled, and a test running beside it without a subscriber
//! could make the call sites look disabled to this one.

mod common;

use std::time::Duration as StdDuration;

use common::PgFixture;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{Id, Record, SessionStore};

fn record(user: &str) -> Record {
    Record {
        id: Id::default(),
        data: [("user_id".to_owned(), json!(user))].into(),
        expiry_date: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1),
    }
}

#[test]
fn every_operation_leaves_a_debug_span_with_its_outcome_and_no_secret() {
    let (subscriber, captured) = common::log_capture::capture_spans();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (id, secret) = runtime.block_on(async {
        let fixture = PgFixture::new().await;
        let store = fixture
            .store
            .clone()
            .with_user_key("user_id")
            .unwrap()
            .with_touch_after(StdDuration::from_secs(60))
            .with_login_history(StdDuration::from_secs(86_400))
            .unwrap();
        store.migrate().await.unwrap();
        let mut events = store.events().await.unwrap();
        let secret = "hunter2-horse-battery";
        let mut rec = record("ada");
        rec.data.insert("password".into(), json!(secret));
        store.create(&mut rec).await.unwrap();
        // The reader reads the sign-in within a poll (10 ms); the bound only stops a hang.
        tokio::time::timeout(StdDuration::from_secs(10), events.recv())
            .await
            .expect("the sign-in's event within 10 s")
            .unwrap();
        drop(events);
        store.save(&rec).await.unwrap();
        store.load(&rec.id).await.unwrap();
        store.load(&Id::default()).await.unwrap();
        store.user_sessions("ada").await.unwrap();
        store
            .delete_user_sessions_except("ada", rec.id)
            .await
            .unwrap();
        store.delete(&rec.id).await.unwrap();
        store.delete_expired_sessions().await.unwrap();
        store.health().await.unwrap();
        fixture.finish().await;
        (rec.id, secret)
    });
    let text = captured.text();
    let table = "table=ts_test_";
    for (operation, outcome) in [
        ("create", "ok"),
        ("save", "ok"),
        ("load", "found"),
        ("load", "not_found"),
        ("list_user_sessions", "ok"),
        ("delete_user_sessions", "ok"),
        ("delete", "ok"),
        ("delete_expired", "ok"),
        ("health", "ok"),
        ("read_events", "ok"),
    ] {
        let line = text
            .lines()
            .find(|line| {
                line.contains(&format!("operation=\"{operation}\""))
                    && line.contains(&format!("outcome=\"{outcome}\""))
            })
            .unwrap_or_else(|| panic!("no {operation} span with outcome {outcome} in:\n{text}"));
        assert!(line.contains("session_store"), "{line}");
        assert!(line.contains(table), "{line}");
        assert!(line.contains("duration_us="), "{line}");
        assert!(line.contains("DEBUG"), "spans are at debug level: {line}");
    }
    assert!(!text.contains(&id.to_string()), "a session id in a span");
    assert!(!text.contains(secret), "session data in a span");
}
