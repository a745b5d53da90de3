//! The reserved entry a load adds (the base a save merges from) never reaches the logs: every
//! event at TRACE, the driver's included, of a save that merged and of a forged save holds no
//! session value and no part of the entry. A binary of its own, so
//! that no other test runs beside the capture.

mod common;

use common::{log_capture::capture_everything, PgFixture, BASE_KEY};
use serde_json::json;
use tower_sessions_seaorm_store::{session_store, SessionStore};

#[tokio::test]
async fn the_reserved_entry_never_reaches_the_logs() {
    let (subscriber, captured) = capture_everything();
    // A current-thread runtime: every event of this test is seen by this subscriber.
    let guard = tracing::subscriber::set_default(subscriber);
    let fixture = PgFixture::new().await;
    let store = &fixture.store;
    let mut record = common::suite::record(common::suite::in_a_day());
    record.data.insert("secret".into(), json!("s3cr3t-value"));
    store.create(&mut record).await.unwrap();

    // Two requests load the session; the first saves, the second is overtaken and merges.
    let mut first = store.load(&record.id).await.unwrap().unwrap();
    let mut second = store.load(&record.id).await.unwrap().unwrap();
    let base = second.data[BASE_KEY].clone();
    first.data.insert("first".into(), json!(1));
    second.data.insert("second".into(), json!(2));
    store.save(&first).await.unwrap();
    store.save(&second).await.unwrap();
    let merged = common::without_base(store.load(&record.id).await.unwrap()).unwrap();
    assert_eq!(
        (merged.data["first"].clone(), merged.data["second"].clone()),
        (json!(1), json!(2))
    );

    // A forged entry: refused, with an error that holds no value of it.
    let mut forged = merged.clone();
    forged.data.insert(BASE_KEY.into(), json!({ "v": 41 }));
    let err = store.save(&forged).await.unwrap_err();
    assert!(matches!(err, session_store::Error::Encode(_)), "{err:?}");
    drop(guard);

    let text = captured.text();
    assert!(
        text.contains("merging"),
        "the capture saw the merge:\n{text}"
    );
    assert!(!text.contains("s3cr3t-value"), "a session value was logged");
    let words = base.as_array().expect("the entry is an array of numbers");
    // Its large words, as a log would print them: the tag's and the hashes' (random 64-bit
    // numbers; the version and the like are small numbers any log may hold).
    let large: Vec<String> = words
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .filter(|word| *word >= 1 << 40)
        .map(|word| word.to_string())
        .collect();
    assert!(
        large.len() >= 4,
        "the entry holds its tag and hashes: {base}"
    );
    for word in large {
        assert!(!text.contains(&word), "the reserved entry was logged");
    }
    fixture.finish().await;
}
