//! Every codec's decoder against a million hostile inputs: mutations of genuine encodings
//! (bit flips, truncations, splices, interesting bytes) and plain random bytes. None may panic;
//! each must answer with a record or an error.
//!
//! `FUZZ_CASES` sets the number of inputs per codec (default 1,000,000; the documented long run
//! in RELIABILITY.md used 50,000,000).

use std::{collections::HashMap, panic};

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    codec::MessagePackCodec,
    codec::{SessionId, SessionRecord},
};

/// xorshift64*: a fixed-seed, dependency-free generator, so a failing input can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<SessionRecord<'static>> {
    let expiry = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let mut nested = HashMap::new();
    nested.insert("user_id".to_owned(), json!(u64::MAX));
    nested.insert("neg".to_owned(), json!(i64::MIN));
    nested.insert("pi".to_owned(), json!(0.1_f64 + 0.2));
    nested.insert(
        "ключ".to_owned(),
        json!({"a": [1, "two", null, true, {"deep": [[[]]]}]}),
    );
    nested.insert("empty".to_owned(), json!({}));
    vec![
        SessionRecord::owned(SessionId(0), HashMap::new(), expiry),
        SessionRecord::owned(
            SessionId(i128::MIN),
            nested,
            expiry.replace_nanosecond(999_999_999).unwrap(),
        ),
        SessionRecord::owned(
            SessionId(i128::MAX),
            [("s".to_owned(), json!("x".repeat(300)))]
                .into_iter()
                .collect(),
            OffsetDateTime::UNIX_EPOCH - Duration::days(1),
        ),
    ]
}

const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xc0, 0xc1, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, b'"', b'{', b'[',
    b'\\',
];

fn mutate(rng: &mut Rng, genuine: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if rng.below(10) == 0 {
        // Plain random bytes.
        let len = rng.below(64);
        out.extend((0..len).map(|_| rng.next() as u8));
        return;
    }
    out.extend_from_slice(&genuine[rng.below(genuine.len())]);
    for _ in 0..=rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.truncate(at),
            3 => {
                let byte = rng.next() as u8;
                out.insert(at, byte);
            }
            4 => {
                // Splice in a piece of another genuine encoding.
                let other = &genuine[rng.below(genuine.len())];
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                out.remove(at);
            }
        }
    }
}

fn fuzz(name: &str, codec: &dyn Codec, cases: u64) {
    let genuine: Vec<Vec<u8>> = seeds().iter().map(|r| codec.encode(r).unwrap()).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut input = Vec::new();
    let (mut decoded, mut refused) = (0u64, 0u64);
    for case in 0..cases {
        mutate(&mut rng, &genuine, &mut input);
        match panic::catch_unwind(panic::AssertUnwindSafe(|| codec.decode(&input))) {
            Ok(Ok(_)) => decoded += 1,
            Ok(Err(err)) => {
                refused += 1;
                assert!(!err.reason().is_empty());
            }
            Err(_) => panic!("{name} panicked on case {case}, input {input:02x?}"),
        }
    }
    assert_eq!(decoded + refused, cases);
    assert!(
        refused > 0,
        "{name}: the mutations never produced an invalid input"
    );
    eprintln!("{name}: {cases} inputs, {decoded} decoded, {refused} refused, 0 panics");
}

fn cases() -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[test]
fn the_message_pack_decoder_never_panics() {
    fuzz("MessagePack", &MessagePackCodec, cases());
}

#[cfg(feature = "json")]
#[test]
fn the_json_decoder_never_panics() {
    fuzz(
        "JSON",
        &tower_sessions_seaorm_store::codec::JsonCodec,
        cases(),
    );
}

#[cfg(feature = "bincode")]
#[test]
fn the_bincode_decoder_never_panics() {
    fuzz(
        "bincode",
        &tower_sessions_seaorm_store::codec::BincodeCodec,
        cases(),
    );
}
