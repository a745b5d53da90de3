//! Encoded size and encode/decode time of a small, a typical and a large session per codec:
//! the numbers behind the codec table in the README. Timings mean something only in release:
//!
//! ```sh
//! cargo run --release --example codec_sizes --features bincode
//! ```
//!
//! With `--features bincode,encryption`, it also times `Encrypted<MessagePackCodec>` (through
//! `encode_row`/`decode_row`, as the store calls it) and prints the bytes encryption adds.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use time::OffsetDateTime;
use tower_sessions_seaorm_store::{
    codec::Codec,
    codec::{BincodeCodec, JsonCodec, MessagePackCodec},
    codec::{SessionId, SessionRecord},
};

type Record = SessionRecord<'static>;

fn session(data: Value) -> Record {
    let Value::Object(entries) = data else {
        unreachable!("sessions are objects")
    };
    SessionRecord::owned(
        SessionId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        entries.into_iter().collect(),
        OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap(),
    )
}

/// A logged-in marker, as an authentication layer stores it.
fn small() -> Record {
    session(json!({ "user_id": 42 }))
}

/// A web shop's session: who, a CSRF token, preferences, a three-item cart and a flash message.
fn typical() -> Record {
    session(json!({
        "user": {
            "id": 1_048_576,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "roles": ["customer", "beta"],
        },
        "csrf_token": "q3Jz8m0M1xPqY0rW5vK2b8sT7uH4nE6cL9aD1fG3hJ0",
        "locale": "en-GB",
        "theme": "dark",
        "last_seen": "2030-01-01T12:34:56Z",
        "cart": [
            { "sku": "BK-1843", "qty": 1, "price": 12.5 },
            { "sku": "PN-0001", "qty": 3, "price": 1.99 },
            { "sku": "NB-0042", "qty": 2, "price": 4.25 },
        ],
        "flash": [{ "level": "info", "message": "Your order has been placed." }],
    }))
}

/// A session used as a cache: 500 recently viewed product ids and 100 saved searches.
fn large() -> Record {
    let viewed: Vec<u64> = (0..500).map(|n| 1_000_000 + n * 7919).collect();
    let searches: Vec<Value> = (0..100)
        .map(|n| json!({ "query": format!("blue shoes size {n}"), "page": n % 7, "score": n as f64 / 3.0 }))
        .collect();
    let mut record = typical();
    record
        .data
        .to_mut()
        .insert("recently_viewed".into(), json!(viewed));
    record
        .data
        .to_mut()
        .insert("saved_searches".into(), json!(searches));
    record
}

/// Time of one `op`: the best mean of five batches of about 50 ms each, so that other work on a
/// busy machine inflates the result as little as possible.
fn time_per_op(mut op: impl FnMut()) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut runs = 0u32;
            while start.elapsed() < Duration::from_millis(50) {
                op();
                runs += 1;
            }
            start.elapsed() / runs
        })
        .min()
        .expect("five batches")
}

fn main() {
    let codecs: [(&str, &dyn Codec); 3] = [
        ("MessagePack", &MessagePackCodec),
        ("JSON", &JsonCodec),
        ("bincode", &BincodeCodec),
    ];
    let sessions = [
        ("small", small()),
        ("typical", typical()),
        ("large", large()),
    ];
    if cfg!(debug_assertions) {
        eprintln!("debug build: sizes are right, timings are not (use --release)");
    }

    println!("| session | codec | bytes | encode | decode |");
    println!("|---|---|---:|---:|---:|");
    for (session_name, record) in &sessions {
        for (codec_name, codec) in codecs {
            print_row(session_name, codec_name, codec, record);
        }
        #[cfg(feature = "encryption")]
        print_row(session_name, "MessagePack, encrypted", &encrypted(), record);
    }
}

/// The session's row key, as a plain store keys it.
const ROW_KEY: &str = "EDJUdpi63P7vzauJZ0UjAQ";

fn print_row(session_name: &str, codec_name: &str, codec: &dyn Codec, record: &Record) {
    let bytes = codec.encode_row(ROW_KEY, record).unwrap();
    assert_eq!(&codec.decode_row(ROW_KEY, &bytes).unwrap(), record);
    let encode = time_per_op(|| {
        black_box(codec.encode_row(ROW_KEY, black_box(record)).unwrap());
    });
    let decode = time_per_op(|| {
        black_box(codec.decode_row(ROW_KEY, black_box(&bytes)).unwrap());
    });
    println!(
        "| {session_name} | {codec_name} | {} | {:.2} µs | {:.2} µs |",
        bytes.len(),
        encode.as_secs_f64() * 1e6,
        decode.as_secs_f64() * 1e6,
    );
}

#[cfg(feature = "encryption")]
fn encrypted() -> tower_sessions_seaorm_store::codec::Encrypted<MessagePackCodec> {
    use tower_sessions_seaorm_store::codec::{Encrypted, KeyRing};
    Encrypted::new(MessagePackCodec, KeyRing::new(1, [0x42; 32]))
}
