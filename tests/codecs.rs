//! What every codec promises (the `Codec` contract), and the traps each one must avoid.

mod common;

use common::codecs::{all, every_kind_of_value, nested_arrays};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, UtcOffset};
use tower_sessions_seaorm_store::codec::{SessionId, SessionRecord};

fn in_a_day() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(1)
}

#[test]
fn every_codec_round_trips_every_kind_of_value() {
    let record = every_kind_of_value(SessionId::random(), in_a_day());
    for (name, codec) in all() {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), record, "{name}");
    }
}

#[test]
fn numbers_keep_their_kind_u64_i64_or_f64() {
    let record = every_kind_of_value(SessionId::random(), in_a_day());
    for (name, codec) in all() {
        let decoded = codec.decode(&codec.encode(&record).unwrap()).unwrap();
        let user = &decoded.data["user"];
        assert_eq!(user["largest"].as_u64(), Some(u64::MAX), "{name}");
        assert_eq!(user["smallest"].as_i64(), Some(i64::MIN), "{name}");
        assert!(user["score"].is_f64(), "{name}");
        assert_eq!(user["score"].as_f64(), Some(0.1), "{name}");
        assert!(user["id"].is_u64(), "{name}");
        assert!(user["debt"].is_i64(), "{name}");
    }
}

#[test]
fn ids_at_the_ends_of_i128_round_trip() {
    // Routed through serde_json::Value, a 128-bit id becomes an f64 and no longer decodes.
    for id in [i128::MIN, i128::MIN + 1, -1, 0, 1, i128::MAX - 1, i128::MAX] {
        let record = every_kind_of_value(SessionId(id), in_a_day());
        for (name, codec) in all() {
            let decoded = codec.decode(&codec.encode(&record).unwrap()).unwrap();
            assert_eq!(decoded.id, SessionId(id), "{name}");
        }
    }
}

#[test]
fn expiry_round_trips_to_the_nanosecond() {
    let expiry = in_a_day().replace_nanosecond(123_456_789).unwrap();
    let record = every_kind_of_value(SessionId::random(), expiry);
    for (name, codec) in all() {
        let decoded = codec.decode(&codec.encode(&record).unwrap()).unwrap();
        assert_eq!(decoded.expiry_date, expiry, "{name}");
        assert_eq!(decoded.expiry_date.nanosecond(), 123_456_789, "{name}");
    }
}

#[test]
fn an_expiry_with_an_offset_keeps_its_instant_and_binary_codecs_keep_the_offset() {
    let offset = UtcOffset::from_hms(-9, -30, -15).unwrap();
    let expiry = (OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(1_900_000_000_000_000_001))
        .to_offset(offset);
    let record = every_kind_of_value(SessionId::random(), expiry);
    for (name, codec) in all() {
        let decoded = codec.decode(&codec.encode(&record).unwrap()).unwrap();
        assert_eq!(
            decoded.expiry_date.unix_timestamp_nanos(),
            expiry.unix_timestamp_nanos(),
            "{name}"
        );
        let expected_offset = if name == "JSON" {
            UtcOffset::UTC // documented: JSON stores RFC 3339 in UTC
        } else {
            offset
        };
        assert_eq!(decoded.expiry_date.offset(), expected_offset, "{name}");
    }
}

#[test]
fn a_row_of_one_codec_never_decodes_with_another() {
    let record = every_kind_of_value(SessionId::random(), in_a_day());
    for (writer, write_codec) in all() {
        let bytes = write_codec.encode(&record).unwrap();
        for (reader, read_codec) in all() {
            if writer != reader {
                assert!(
                    read_codec.decode(&bytes).is_err(),
                    "{reader} decoded a row written by {writer}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_of_a_row_is_an_error() {
    let record = every_kind_of_value(SessionId::random(), in_a_day());
    for (name, codec) in all() {
        let bytes = codec.encode(&record).unwrap();
        for len in 0..bytes.len() {
            assert!(
                codec.decode(&bytes[..len]).is_err(),
                "{name} decoded the first {len} of {} bytes",
                bytes.len()
            );
        }
    }
}

#[test]
fn one_session_always_encodes_to_the_same_bytes_whatever_the_insertion_order() {
    let keys: Vec<String> = (0..50).map(|n| format!("key{n}")).collect();
    let record_from = |keys: &mut dyn Iterator<Item = &String>| {
        SessionRecord::owned(
            SessionId(1),
            keys.map(|key| (key.clone(), json!(key))).collect(),
            OffsetDateTime::UNIX_EPOCH,
        )
    };
    let forwards = record_from(&mut keys.iter());
    let backwards = record_from(&mut keys.iter().rev());
    for (name, codec) in all() {
        if name == "MessagePack" {
            continue; // byte-identical to rmp_serde::to_vec, which follows the HashMap's order
        }
        assert_eq!(
            codec.encode(&forwards).unwrap(),
            codec.encode(&backwards).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn what_a_codec_can_save_it_can_load() {
    // serde_json reads at most 127 nested levels and rmp_serde 1024: a session that saves but
    // cannot load would log its user out at the next request.
    for (name, codec) in all() {
        let record_at = |depth| {
            let mut record = every_kind_of_value(SessionId::random(), in_a_day());
            record
                .data
                .to_mut()
                .insert("deep".into(), nested_arrays(depth));
            record
        };
        let (mut saves, mut fails) = (0, 300);
        assert!(
            codec.encode(&record_at(fails)).is_err(),
            "{name} has no depth limit"
        );
        while fails - saves > 1 {
            let middle = (saves + fails) / 2;
            match codec.encode(&record_at(middle)) {
                Ok(_) => saves = middle,
                Err(_) => fails = middle,
            }
        }
        let deepest = record_at(saves);
        let bytes = codec.encode(&deepest).unwrap();
        assert_eq!(
            codec.decode(&bytes).unwrap(),
            deepest,
            "{name} at depth {saves}"
        );
        assert!(saves >= 100, "{name} saves only {saves} levels");
    }
}

#[test]
fn msgpack_saves_exactly_max_depth_levels() {
    use tower_sessions_seaorm_store::codec::MessagePackCodec;
    assert_depth_limit(&MessagePackCodec, MessagePackCodec::MAX_DEPTH);
}

#[cfg(feature = "json")]
#[test]
fn json_saves_exactly_max_depth_levels() {
    use tower_sessions_seaorm_store::codec::JsonCodec;
    assert_depth_limit(&JsonCodec, JsonCodec::MAX_DEPTH);
}

#[cfg(feature = "bincode")]
#[test]
fn bincode_saves_exactly_max_depth_levels() {
    use tower_sessions_seaorm_store::codec::BincodeCodec;
    assert_depth_limit(&BincodeCodec, BincodeCodec::MAX_DEPTH);
}

fn assert_depth_limit(codec: &dyn tower_sessions_seaorm_store::codec::Codec, max: usize) {
    let mut record = every_kind_of_value(SessionId::random(), in_a_day());
    for nested in [nested_arrays(max), json!({ "a": nested_arrays(max - 1) })] {
        record.data.to_mut().insert("deep".into(), nested);
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), record);
    }
    for nested in [nested_arrays(max + 1), json!({ "a": nested_arrays(max) })] {
        record.data.to_mut().insert("deep".into(), nested);
        let err = codec.encode(&record).unwrap_err();
        assert!(err.reason().contains("too deeply"), "{err}");
    }
}

#[test]
fn a_maliciously_deep_row_is_an_error_not_a_stack_overflow() {
    let depth = 200_000;
    let rows: Vec<(&str, Vec<u8>)> = vec![
        ("MessagePack", {
            // [id, {"k": [[[…]]]}, expiry]
            let mut row = vec![0x93, 0x00, 0x81, 0xa1, b'k'];
            row.extend(std::iter::repeat_n(0x91, depth));
            row
        }),
        ("JSON", {
            let mut row = br#"{"id":"AAAAAAAAAAAAAAAAAAAAAA","expiry_date":"2030-01-01T00:00:00Z","data":{"k":"#.to_vec();
            row.extend(std::iter::repeat_n(b'[', depth));
            row
        }),
        ("bincode", {
            // header, id 0, expiry 0 + UTC, one entry "k", then arrays of one item each
            let mut row = vec![0xc1, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, b'k'];
            for _ in 0..depth {
                row.extend([7, 1]);
            }
            row
        }),
    ];
    for (name, codec) in all() {
        let (_, row) = rows.iter().find(|(row_of, _)| *row_of == name).unwrap();
        let err = codec.decode(row).unwrap_err();
        assert!(err.reason().contains("deep"), "{name}: {err}");
    }
}

#[test]
fn error_messages_never_contain_session_data() {
    const SECRET: &str = "hunter2-secret";
    let mut record = every_kind_of_value(SessionId(0x5ec2e7), in_a_day());
    record.data.to_mut().insert(SECRET.into(), json!(SECRET));

    for (name, codec) in all() {
        let genuine = codec.encode(&record).unwrap();
        let mut rows: Vec<Vec<u8>> = (0..genuine.len())
            .map(|len| genuine[..len].to_vec())
            .collect();
        // A genuine row with one byte changed, at every position.
        rows.extend((0..genuine.len()).map(|at| {
            let mut row = genuine.clone();
            row[at] ^= 0x5a;
            row
        }));
        // Rows where serde would quote the value it did not expect.
        rows.push(
            format!(r#"{{"id":"{SECRET}","expiry_date":"{SECRET}","data":{{}}}}"#).into_bytes(),
        );
        rows.push(format!(r#"{{"id":"AAAAAAAAAAAAAAAAAAAAAA","expiry_date":"2030-01-01T00:00:00Z","data":"{SECRET}"}}"#).into_bytes());
        rows.push(format!(r#"{{"{SECRET}":1}}"#).into_bytes());
        rows.push(format!(r#"["{SECRET}"]"#).into_bytes());
        rows.push(rmp_serde::to_vec(&(SECRET, SECRET, SECRET)).unwrap());
        rows.push(rmp_serde::to_vec(&json!({ SECRET: SECRET })).unwrap());

        for row in &rows {
            if let Err(err) = codec.decode(row) {
                let message = err.to_string();
                assert!(!message.contains("hunter"), "{name}: {message}");
                assert!(
                    !message.contains(&record.id.to_string()),
                    "{name}: {message}"
                );
            }
        }

        let mut too_deep = record.clone();
        too_deep
            .data
            .to_mut()
            .insert("deep".into(), json!([[SECRET, nested_arrays(200)]]));
        let err = codec.encode(&too_deep).unwrap_err();
        assert!(!err.to_string().contains("hunter"), "{name}: {err}");
    }
}

#[cfg(feature = "json")]
#[test]
fn json_stores_the_id_as_text_and_the_expiry_as_rfc_3339() {
    use tower_sessions_seaorm_store::{codec::Codec, codec::JsonCodec};
    let expiry = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap()
        + Duration::nanoseconds(123_456_789);
    let record = every_kind_of_value(SessionId(i128::MAX), expiry);
    let stored: Value = serde_json::from_slice(&JsonCodec.encode(&record).unwrap()).unwrap();
    assert_eq!(stored["id"], json!(record.id.to_string()));
    assert_eq!(
        stored["expiry_date"],
        json!("2030-01-01T00:00:00.123456789Z")
    );
    assert_eq!(stored["data"]["user"], record.data["user"]);
}

#[cfg(feature = "json")]
#[test]
fn json_reads_back_every_f64_exactly() {
    use tower_sessions_seaorm_store::{codec::Codec, codec::JsonCodec};
    // Without serde_json's float_roundtrip, parsing rounds some of these to a neighbour.
    let floats = [
        0.1,
        1.0 / 3.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        2.225_073_858_507_201e-308,
        9_007_199_254_740_993.0,
        -0.0,
        0.30000000000000004,
        1.7976931348623155e308,
    ];
    let mut record = every_kind_of_value(SessionId::random(), in_a_day());
    record.data.to_mut().insert("floats".into(), json!(floats));
    let decoded = JsonCodec
        .decode(&JsonCodec.encode(&record).unwrap())
        .unwrap();
    let read: Vec<u64> = decoded.data["floats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap().to_bits())
        .collect();
    let written: Vec<u64> = floats.iter().map(|f| f.to_bits()).collect();
    assert_eq!(read, written);
}

#[cfg(feature = "bincode")]
#[test]
fn bincode_refuses_a_row_with_trailing_bytes_or_an_unknown_format_version() {
    use tower_sessions_seaorm_store::{codec::BincodeCodec, codec::Codec};
    let record = every_kind_of_value(SessionId::random(), in_a_day());
    let mut bytes = BincodeCodec.encode(&record).unwrap();
    assert_eq!(&bytes[..2], &[0xc1, 0x01]);

    let mut longer = bytes.clone();
    longer.push(0);
    assert!(BincodeCodec.decode(&longer).is_err());

    bytes[1] = 0x02;
    let err = BincodeCodec.decode(&bytes).unwrap_err();
    assert!(err.reason().contains("format 1"), "{err}");
}
