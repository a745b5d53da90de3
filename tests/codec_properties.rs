//! Properties of every codec over generated data: any JSON value round-trips exactly, and no
//! byte string makes a decoder panic.

mod common;

use std::collections::BTreeMap;

use common::codecs::all;
use proptest::{collection, prelude::*};
use serde_json::{Map, Number, Value};
use time::{OffsetDateTime, UtcOffset};
use tower_sessions_seaorm_store::codec::{CodecError, SessionId, SessionRecord};

/// Finite floats of every magnitude, and the edges.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(5e-324),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        (i64::MIN..0).prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(0)].prop_map(Value::from),
        Just(Value::from(i64::MIN)),
        float().prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        text().prop_map(Value::String),
    ]
}

/// Any Unicode, and the characters JSON must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "\\PC{0,24}", 1 => "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}]{0,6}"]
}

/// Unicode keys, empty ones included.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => "\\PC{0,12}", 1 => "[\\x00-\\x1f\"\\\\/]{0,4}"]
}

/// Nested arrays and objects, empty ones included, a few levels deep and wide.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            collection::btree_map(key(), inner, 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value wrapped in up to 100 arrays or objects (every codec's `MAX_DEPTH`).
fn deep_value() -> impl Strategy<Value = Value> {
    (scalar(), collection::vec((any::<bool>(), key()), 0..=100)).prop_map(|(leaf, levels)| {
        levels.into_iter().fold(leaf, |inner, (as_array, key)| {
            if as_array {
                Value::Array(vec![inner])
            } else {
                Value::Object([(key, inner)].into_iter().collect())
            }
        })
    })
}

/// Instants from year 1 to 9999 (what RFC 3339 writes), to the nanosecond.
fn expiry() -> impl Strategy<Value = OffsetDateTime> {
    const YEAR_1: i128 = -62_135_596_800_000_000_000;
    const YEAR_9999_END: i128 = 253_402_300_799_999_999_999;
    (YEAR_1..=YEAR_9999_END)
        .prop_map(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap())
}

fn record() -> impl Strategy<Value = SessionRecord<'static>> {
    (
        any::<i128>(),
        collection::hash_map(key(), prop_oneof![3 => value(), 1 => deep_value()], 0..8),
        expiry(),
    )
        .prop_map(|(id, data, expiry_date)| SessionRecord::owned(SessionId(id), data, expiry_date))
}

/// A codec implementing only what the trait requires, as a user's would.
struct UsersCodec;

impl tower_sessions_seaorm_store::codec::Codec for UsersCodec {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(&as_text(record)).map_err(|_| CodecError::new("user's", "encode"))
    }

    fn decode(&self, _bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        Err(CodecError::new("user's", "this test only encodes"))
    }
}

fn as_text<'r>(record: &'r SessionRecord<'_>) -> BTreeMap<&'r str, String> {
    record
        .data
        .iter()
        .map(|(key, value)| (key.as_str(), value.to_string()))
        .collect()
}

proptest! {
    // 256 cases each: the whole file runs in seconds in a debug build.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_record_round_trips_through_every_codec(record in record()) {
        for (name, codec) in all() {
            let bytes = codec.encode(&record).unwrap();
            let decoded = codec.decode(&bytes).unwrap();
            // Compared as JSON too: Value's equality treats 1 and 1.0 alike, the text does not.
            prop_assert_eq!(&decoded, &record, "{}", name);
            prop_assert_eq!(as_text(&decoded), as_text(&record), "{}", name);
            prop_assert_eq!(decoded.expiry_date.nanosecond(), record.expiry_date.nanosecond());
        }
    }

    /// The store encodes a loaded session without the entry its load added (the merge base),
    /// through `encode_row_without`: the built-in codecs skip the key as they write, a codec
    /// of the user's copies the values without it. Either way, byte for byte what the record
    /// without that key encodes to.
    #[test]
    fn a_key_left_out_is_written_as_if_the_record_never_had_it(
        record in record(),
        pick in prop::option::of(any::<prop::sample::Index>()),
    ) {
        use tower_sessions_seaorm_store::codec::Codec;
        let keys: Vec<&String> = record.data.keys().collect();
        let reserved = match pick {
            Some(pick) if !keys.is_empty() => keys[pick.index(keys.len())].clone(),
            _ => "a key the record has not".to_owned(),
        };
        let mut data = record.data.clone().into_owned();
        data.remove(&reserved);
        let without = SessionRecord::owned(record.id, data, record.expiry_date);
        let users: (&str, Box<dyn Codec>) = ("a codec of the user's", Box::new(UsersCodec));
        for (name, codec) in all().into_iter().chain([users]) {
            prop_assert_eq!(
                codec.encode_row_without("row", &record, &reserved).unwrap(),
                codec.encode_row("row", &without).unwrap(),
                "{}", name
            );
            prop_assert_eq!(
                codec.encode_without(&record, &reserved).unwrap(),
                codec.encode(&without).unwrap(),
                "{}", name
            );
        }
    }

    #[test]
    fn messagepack_writes_what_rmp_serde_writes_for_tower_sessions_records(record in record()) {
        use tower_sessions_seaorm_store::{codec::MessagePackCodec, codec::Codec};
        // The domain's record has tower-sessions' serde shape: moving from tower-sessions-sqlx-store,
        // or between tower-sessions 0.14 and 0.15, keeps every stored row readable.
        let ours = MessagePackCodec.encode(&record).unwrap();
        let record_014 = tower_sessions_core_014::session::Record {
            id: tower_sessions_core_014::session::Id(record.id.0),
            data: record.data.clone().into_owned(),
            expiry_date: record.expiry_date,
        };
        let record_015 = tower_sessions::session::Record::from(record);
        prop_assert_eq!(&ours, &rmp_serde::to_vec(&record_015).unwrap());
        prop_assert_eq!(&ours, &rmp_serde::to_vec(&record_014).unwrap());
    }

    #[test]
    fn session_ids_print_and_parse_as_tower_sessions_ids(n in any::<i128>()) {
        // The printed id is the row's key: it must be the cookie's value, as tower-sessions
        // prints it.
        let ours = SessionId(n).to_string();
        prop_assert_eq!(&ours, &tower_sessions::session::Id(n).to_string());
        prop_assert_eq!(ours.parse::<SessionId>(), Ok(SessionId(n)));
    }

    #[test]
    fn an_expiry_with_any_offset_keeps_its_instant(
        nanos in 0i128..4_102_444_800_000_000_000,
        offset in -86_399i32..=86_399,
    ) {
        let offset = UtcOffset::from_whole_seconds(offset).unwrap();
        let expiry = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap().to_offset(offset);
        let record = SessionRecord::owned(SessionId(1), Default::default(), expiry);
        for (name, codec) in all() {
            let decoded = codec.decode(&codec.encode(&record).unwrap()).unwrap();
            prop_assert_eq!(
                decoded.expiry_date.unix_timestamp_nanos(), nanos, "{}", name
            );
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_returns_an_error_or_a_record(
        bytes in collection::vec(any::<u8>(), 0..512),
    ) {
        for (name, codec) in all() {
            error_or_a_real_record(name, codec.as_ref(), &bytes)?;
        }
    }

    #[test]
    fn decoding_a_damaged_row_returns_an_error_or_a_record(
        record in record(),
        damage in collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for (name, codec) in all() {
            let mut bytes = codec.encode(&record).unwrap();
            for (at, byte) in &damage {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            error_or_a_real_record(name, codec.as_ref(), &bytes)?;
            error_or_a_real_record(name, codec.as_ref(), &bytes[..cut.index(bytes.len())])?;
        }
    }
}

/// What decoding `bytes` may give: an error that names its codec and says what went wrong, or a
/// record that is a record of this codec in every way (it encodes, and decodes back to itself).
fn error_or_a_real_record(
    name: &str,
    codec: &dyn tower_sessions_seaorm_store::codec::Codec,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    match codec.decode(bytes) {
        Ok(record) => {
            let again = codec.encode(&record);
            prop_assert!(again.is_ok(), "{name}: a decoded record encodes: {again:?}");
            let decoded = again.ok().map(|bytes| codec.decode(&bytes));
            prop_assert_eq!(
                decoded,
                Some(Ok(record)),
                "{}: and decodes back to itself",
                name
            );
        }
        Err(err) => {
            prop_assert!(
                !err.reason().is_empty(),
                "{name}: an error says what went wrong"
            );
            prop_assert!(
                err.to_string().contains(err.codec()),
                "{name}: an error names its codec: {err}"
            );
        }
    }
    Ok(())
}

#[cfg(feature = "encryption")]
mod encrypted {
    use proptest::{collection, prelude::*};
    use tower_sessions_seaorm_store::codec::{Codec, Encrypted, KeyRing, MessagePackCodec};

    use super::record;

    fn codec() -> Encrypted<MessagePackCodec> {
        let keys = KeyRing::new(1, [0x11; 32])
            .with_old_key(2, [0x22; 32])
            .unwrap();
        Encrypted::new(MessagePackCodec, keys)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_record_round_trips_through_encryption_in_its_row(
            record in record(),
            row_key in "[A-Za-z0-9_-]{0,64}",
        ) {
            let codec = codec();
            let bytes = codec.encode_row(&row_key, &record).unwrap();
            prop_assert_eq!(codec.decode_row(&row_key, &bytes).unwrap(), record);
        }

        /// What the store writes: the inner codec leaves the key out as it encodes, and the
        /// row decodes to the record without it.
        #[test]
        fn a_key_left_out_under_encryption_is_not_in_the_row(
            record in record(),
            pick in any::<prop::sample::Index>(),
        ) {
            let codec = codec();
            let keys: Vec<String> = record.data.keys().cloned().collect();
            let reserved = if keys.is_empty() {
                "a key the record has not".to_owned()
            } else {
                keys[pick.index(keys.len())].clone()
            };
            let bytes = codec.encode_row_without("row", &record, &reserved).unwrap();
            let mut without = record.clone().into_owned();
            without.data.to_mut().remove(&reserved);
            prop_assert_eq!(codec.decode_row("row", &bytes).unwrap(), without);
        }

        /// Arbitrary bytes, half of them behind a valid header (version 1, a key id of the
        /// ring), so that decryption itself is reached: never a panic, always an error naming
        /// the codec (forging a Poly1305 tag by chance is out of reach).
        #[test]
        fn decoding_arbitrary_bytes_under_encryption_is_an_error(
            mut bytes in collection::vec(any::<u8>(), 0..512),
            header in prop_oneof![Just(None), Just(Some(1u32)), Just(Some(2u32))],
        ) {
            if let Some(key_id) = header {
                let mut prefixed = vec![1];
                prefixed.extend_from_slice(&key_id.to_be_bytes());
                prefixed.append(&mut bytes);
                bytes = prefixed;
            }
            let err = codec().decode_row("row", &bytes).unwrap_err();
            prop_assert_eq!(err.codec(), "encrypted");
            prop_assert!(!err.reason().is_empty());
        }

        #[test]
        fn a_damaged_encrypted_row_is_an_error(
            record in record(),
            damage in (any::<prop::sample::Index>(), 1..=255u8),
            cut in any::<prop::sample::Index>(),
        ) {
            let codec = codec();
            let mut bytes = codec.encode_row("row", &record).unwrap();
            prop_assert!(codec.decode_row("row", &bytes[..cut.index(bytes.len())]).is_err());
            let at = damage.0.index(bytes.len());
            bytes[at] ^= damage.1;
            prop_assert!(codec.decode_row("row", &bytes).is_err());
        }
    }
}
