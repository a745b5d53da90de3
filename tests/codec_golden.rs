//! Golden bytes: what each codec stores for one fixed record, pinned. A change here changes the
//! stored format and logs every user out at the upgrade: it needs a migration path, not a new
//! expected value.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::Codec,
    codec::{SessionId, SessionRecord},
};

/// One top-level key, so that MessagePack's output (which follows the HashMap's order) is fixed;
/// the nested object's keys are sorted by serde_json.
fn fixed_record() -> SessionRecord<'static> {
    SessionRecord::owned(
        SessionId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        [(
            "user".to_owned(),
            json!({
                "id": 42,
                "name": "Ada",
                "roles": ["admin"],
                "score": 0.5,
                "debt": -7,
                "largest": u64::MAX,
                "nothing": null,
                "verified": true,
                "empty": {}
            }),
        )]
        .into_iter()
        .collect(),
        OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap()
            + Duration::nanoseconds(123_456_789),
    )
}

fn assert_golden(codec: &dyn Codec, expected_hex: &str) {
    let record = fixed_record();
    let bytes = codec.encode(&record).unwrap();
    assert_eq!(hex::encode(&bytes), expected_hex);
    let golden = hex::decode(expected_hex).unwrap();
    assert_eq!(codec.decode(&golden).unwrap(), record);
}

#[test]
fn messagepack_is_byte_identical_to_rmp_serde_of_tower_sessions_records() {
    use tower_sessions_seaorm_store::codec::MessagePackCodec;
    // What tower-sessions-sqlx-store writes (rmp_serde of tower-sessions' own `Record`, 0.14 or
    // 0.15): rows move between the stores, and between tower-sessions versions, unchanged.
    let record = fixed_record();
    let ours = MessagePackCodec.encode(&record).unwrap();
    let record_015 = tower_sessions::session::Record::from(record.clone());
    let record_014 = tower_sessions_core_014::session::Record {
        id: tower_sessions_core_014::session::Id(record.id.0),
        data: record.data.clone().into_owned(),
        expiry_date: record.expiry_date,
    };
    assert_eq!(ours, rmp_serde::to_vec(&record_015).unwrap());
    assert_eq!(ours, rmp_serde::to_vec(&record_014).unwrap());
    assert_eq!(
        rmp_serde::from_slice::<tower_sessions::session::Record>(&ours).unwrap(),
        record_015
    );
}

#[test]
fn a_tower_sessions_record_lends_its_data_to_the_codec() {
    use std::borrow::Cow;
    let owned = tower_sessions::session::Record::from(fixed_record());
    let lent = SessionRecord::from(&owned);
    assert!(
        matches!(lent.data, Cow::Borrowed(_)),
        "saving must not copy the session"
    );
    assert_eq!(lent, fixed_record());
}

#[test]
fn messagepack_golden_bytes() {
    use tower_sessions_seaorm_store::codec::MessagePackCodec;
    assert_golden(
        &MessagePackCodec,
        "93c4100123456789abcdeffedcba987654321081a47573657289a464656274f9a5656d70747980a269642a\
         a76c617267657374cfffffffffffffffffa46e616d65a3416461a76e6f7468696e67c0a5726f6c657391a5\
         61646d696ea573636f7265cb3fe0000000000000a87665726966696564c399cd07ee01000000ce075bcd15\
         000000",
    );
}

#[cfg(feature = "json")]
#[test]
fn json_golden_bytes() {
    use tower_sessions_seaorm_store::codec::JsonCodec;
    let expected = concat!(
        r#"{"id":"EDJUdpi63P7vzauJZ0UjAQ","expiry_date":"2030-01-01T00:00:00.123456789Z","#,
        r#""data":{"user":{"debt":-7,"empty":{},"id":42,"largest":18446744073709551615,"#,
        r#""name":"Ada","nothing":null,"roles":["admin"],"score":0.5,"verified":true}}}"#,
    );
    assert_golden(&JsonCodec, &hex::encode(expected));
}

#[cfg(feature = "bincode")]
#[test]
fn bincode_golden_bytes() {
    use tower_sessions_seaorm_store::codec::BincodeCodec;
    assert_golden(
        &BincodeCodec,
        "c101fe2064a8ec3075b9fddf9b5713cf8a4602fd2a9a617a66d08d340001047573657208090464656274040d\
         05656d7074790800026964032a076c61726765737403fdffffffffffffffff046e616d650603416461076e\
         6f7468696e670005726f6c65730701060561646d696e0573636f726505000000000000e03f087665726966\
         69656402",
    );
}
