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

/// A ciphertext written once by `Encrypted<MessagePackCodec>` under key 7 (the bytes 0 to 31),
/// for the row of the fixed record. The nonce is random, so this pins decoding: a release that
/// cannot read it would log every user of an encrypted store out.
#[cfg(feature = "encryption")]
const ENCRYPTED_GOLDEN_HEX: &str =
    "0100000007626c0a375aab9c02e4a254fb0a438b9cee7a2a3b85d558046ac8d9da792cd51cc7b537f659272d\
     e24426b060028dc86b6644434bc3c0675bd5406811e516120b1619bde2abf7ae0afe16ad9f6a6063ce3feabd\
     8d3f2a2577d08c80b771949af16c0db9e2893ab87f5cf037bc311b5977f2a84ed08550eb3b80f093d753b357\
     ff0d4d603bb784b3518ce58e3d9dfdb9ed8c87a7bbf8a0c8e268021f892a8e593e37d85c08597c5116731c35\
     cb";

#[cfg(feature = "encryption")]
fn golden_key_ring() -> tower_sessions_seaorm_store::codec::KeyRing {
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    tower_sessions_seaorm_store::codec::KeyRing::new(7, key)
}

#[cfg(feature = "encryption")]
#[test]
fn encrypted_golden_bytes_decode_to_the_fixed_record() {
    use tower_sessions_seaorm_store::codec::{Encrypted, MessagePackCodec};
    let codec = Encrypted::new(MessagePackCodec, golden_key_ring());
    let row_key = fixed_record().id.to_string();
    let golden = hex::decode(ENCRYPTED_GOLDEN_HEX).unwrap();

    assert_eq!(codec.decode_row(&row_key, &golden).unwrap(), fixed_record());
    // The layout: version 1, key id 7, then 24 bytes of nonce and the sealed MessagePack bytes.
    assert_eq!(golden[..5], [1, 0, 0, 0, 7]);
    let inner = MessagePackCodec.encode(&fixed_record()).unwrap();
    assert_eq!(golden.len(), 5 + 24 + inner.len() + 16);
    // The row key is authenticated: the same bytes under another id do not decode.
    assert!(codec.decode_row("AAAAAAAAAAAAAAAAAAAAAA", &golden).is_err());
    // The documented format, read with the AEAD alone: associated data = bytes 0..5 + row key.
    {
        use chacha20poly1305::{aead::Aead, aead::Payload, KeyInit, XChaCha20Poly1305, XNonce};
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let aad = [&golden[..5], row_key.as_bytes()].concat();
        let plaintext = XChaCha20Poly1305::new(&key.into())
            .decrypt(
                &XNonce::try_from(&golden[5..29]).unwrap(),
                Payload {
                    msg: &golden[29..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(plaintext, inner);
    }
    // What this release writes has the same header and length.
    let fresh = codec.encode_row(&row_key, &fixed_record()).unwrap();
    assert_eq!(
        (fresh[..5].to_vec(), fresh.len()),
        (golden[..5].to_vec(), golden.len())
    );
}
