use serde_json::json;
use time::OffsetDateTime;

use super::*;
use crate::{codec::MessagePackCodec, ports::SessionId};

const KEY_1: [u8; 32] = [0x11; 32];
const KEY_2: [u8; 32] = [0x22; 32];
const ROW: &str = "EDJUdpi63P7vzauJZ0UjAQ";

fn record() -> SessionRecord<'static> {
    SessionRecord::owned(
        SessionId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        [
            ("user_id".to_owned(), json!("ada")),
            ("cart".to_owned(), json!([1, 2, 3])),
        ]
        .into_iter()
        .collect(),
        OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap(),
    )
}

fn codec(keys: KeyRing) -> Encrypted<MessagePackCodec> {
    Encrypted::new(MessagePackCodec, keys)
}

fn key_id_of(row: &[u8]) -> u32 {
    u32::from_be_bytes(row[1..5].try_into().unwrap())
}

#[test]
fn a_row_decodes_back_to_its_record_in_its_own_row() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let hashed_row = "4b14d09772278805d3ac0e00ba0d63874323fba0e9e076f952d611686d3e876b";
    for row_key in [ROW, hashed_row, ""] {
        let row = codec.encode_row(row_key, &record()).unwrap();
        assert_eq!(codec.decode_row(row_key, &row).unwrap(), record());
    }
}

#[test]
fn a_row_is_the_header_the_nonce_and_the_sealed_inner_bytes() {
    let codec = codec(KeyRing::new(0x0102_0304, KEY_1));
    let inner = MessagePackCodec.encode(&record()).unwrap();
    let row = codec.encode_row(ROW, &record()).unwrap();
    assert_eq!(row.len(), inner.len() + 45);
    assert_eq!(row[..5], [1, 1, 2, 3, 4]);
    assert!(
        !row.windows(3).any(|w| w == b"ada"),
        "no value is stored in clear"
    );
}

#[test]
fn every_write_draws_a_fresh_nonce() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let first = codec.encode_row(ROW, &record()).unwrap();
    let second = codec.encode_row(ROW, &record()).unwrap();
    assert_ne!(first[5..29], second[5..29]);
    assert_ne!(first[29..], second[29..]);
}

#[test]
fn changing_any_byte_of_a_row_fails_to_decode() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let row = codec.encode_row(ROW, &record()).unwrap();
    for index in 0..row.len() {
        for flip in [0x01, 0x80] {
            let mut tampered = row.clone();
            tampered[index] ^= flip;
            assert!(
                codec.decode_row(ROW, &tampered).is_err(),
                "byte {index} changed by {flip:#04x} still decoded"
            );
        }
    }
    let mut longer = row.clone();
    longer.push(0);
    assert!(codec.decode_row(ROW, &longer).is_err());
}

#[test]
fn a_truncated_row_fails_to_decode() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let row = codec.encode_row(ROW, &record()).unwrap();
    for len in 0..row.len() {
        assert!(
            codec.decode_row(ROW, &row[..len]).is_err(),
            "the first {len} bytes decoded"
        );
    }
    let short = codec.decode_row(ROW, &row[..44]).unwrap_err();
    assert!(short.reason().contains("too short"), "{short}");
}

#[test]
fn a_row_copied_under_another_row_key_fails_to_decode() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let row = codec.encode_row(ROW, &record()).unwrap();
    let err = codec
        .decode_row("AAAAAAAAAAAAAAAAAAAAAA", &row)
        .unwrap_err();
    assert!(err.reason().contains("does not authenticate"), "{err}");
}

/// The tag proves one thing: the bytes are a ciphertext this key wrote for this row key. Not
/// that the row is the latest one written (an earlier ciphertext of the same row put back
/// authenticates), so the error claims no more.
#[test]
fn the_authentication_error_says_only_what_the_tag_checks() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let mut row = codec.encode_row(ROW, &record()).unwrap();
    let last = row.len() - 1;
    row[last] ^= 1;
    let err = codec.decode_row(ROW, &row).unwrap_err();
    assert_eq!(
        err.reason(),
        "the stored row does not authenticate under key id 1 for this row: it is not a \
         ciphertext that key wrote for this row (its bytes were altered, it was written for \
         another row, or by another key given the same id)"
    );
    assert!(!err.reason().contains("outside the application"), "{err}");
}

#[test]
fn a_row_fails_to_decode_with_another_key_of_the_same_id() {
    let row = codec(KeyRing::new(1, KEY_1))
        .encode_row(ROW, &record())
        .unwrap();
    let err = codec(KeyRing::new(1, KEY_2))
        .decode_row(ROW, &row)
        .unwrap_err();
    assert!(err.reason().contains("does not authenticate"), "{err}");
}

#[test]
fn a_row_under_a_retired_key_fails_to_decode_naming_the_key_id() {
    let row = codec(KeyRing::new(1, KEY_1))
        .encode_row(ROW, &record())
        .unwrap();
    let err = codec(KeyRing::new(2, KEY_2))
        .decode_row(ROW, &row)
        .unwrap_err();
    assert_eq!(err.codec(), "encrypted");
    assert!(err.reason().contains("key id 1"), "{err}");
    assert!(err.reason().contains("not in the key ring"), "{err}");
}

#[test]
fn an_unknown_format_version_fails_to_decode() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let mut row = codec.encode_row(ROW, &record()).unwrap();
    row[0] = 2;
    let err = codec.decode_row(ROW, &row).unwrap_err();
    assert!(err.reason().contains("format version 2"), "{err}");
}

#[test]
fn after_a_rotation_old_rows_decode_and_are_rewritten_under_the_new_primary() {
    let before = codec(KeyRing::new(1, KEY_1));
    let old_row = before.encode_row(ROW, &record()).unwrap();
    assert_eq!(key_id_of(&old_row), 1);

    let during = codec(KeyRing::new(2, KEY_2).with_old_key(1, KEY_1).unwrap());
    let loaded = during.decode_row(ROW, &old_row).unwrap();
    assert_eq!(loaded, record());
    let new_row = during.encode_row(ROW, &loaded).unwrap();
    assert_eq!(key_id_of(&new_row), 2);

    let after = codec(KeyRing::new(2, KEY_2));
    assert_eq!(after.decode_row(ROW, &new_row).unwrap(), record());
    assert!(after.decode_row(ROW, &old_row).is_err());
}

#[test]
fn plain_encode_and_decode_refuse_for_want_of_a_row_key() {
    let codec = codec(KeyRing::new(1, KEY_1));
    let err = codec.encode(&record()).unwrap_err();
    assert!(err.reason().contains("encode_row"), "{err}");
    let row = codec.encode_row(ROW, &record()).unwrap();
    assert!(codec.decode(&row).is_err());
}

#[test]
fn errors_and_debug_show_no_key_no_value_and_no_row_key() {
    let keys = KeyRing::new(2, [0xab; 32]).with_old_key(1, KEY_1).unwrap();
    assert_eq!(format!("{keys:?}"), "KeyRing { primary: 2, old: [1] }");
    let codec = codec(keys);
    assert_eq!(
        format!("{codec:?}"),
        "Encrypted { inner: MessagePackCodec, keys: KeyRing { primary: 2, old: [1] } }"
    );
    let row = codec.encode_row(ROW, &record()).unwrap();
    let mut tampered = row.clone();
    tampered[40] ^= 1;
    let errors = [
        codec.decode_row(ROW, &tampered).unwrap_err(),
        codec.decode_row("zZ9-otherRowKey", &row).unwrap_err(),
        codec.decode_row(ROW, &row[..10]).unwrap_err(),
        codec.encode(&record()).unwrap_err(),
    ];
    for err in errors {
        let text = format!("{err} {err:?}");
        for secret in [ROW, "zZ9-otherRowKey", "ada", "171", "q6ur"] {
            assert!(!text.contains(secret), "{secret:?} in {text:?}");
        }
    }
}

#[test]
fn the_ring_refuses_a_reused_id_and_malformed_keys() {
    let err = KeyRing::new(1, KEY_1).with_old_key(1, KEY_2).unwrap_err();
    assert!(
        err.reason().contains("already has a key with id 1"),
        "{err}"
    );
    let base64_32 = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let ring = KeyRing::from_base64(4, base64_32).unwrap();
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), [4]);
    for malformed in [
        "",
        "not base64!",
        "ERERERERERERERERERERERERERERERERERERERERERER",
    ] {
        let err = KeyRing::from_base64(1, malformed).unwrap_err();
        assert!(err.reason().contains("32 bytes"), "{err}");
        assert!(!err.reason().contains(malformed) || malformed.is_empty());
    }
    let short = "ERERERERERERERERERERERERERERERERERERERER";
    assert!(KeyRing::new(1, KEY_1)
        .with_old_key_base64(2, short)
        .is_err());
}

#[test]
fn a_key_from_base64_is_the_same_key_as_its_bytes() {
    let from_bytes = codec(KeyRing::new(1, KEY_1));
    let from_base64 =
        codec(KeyRing::from_base64(1, "ERERERERERERERERERERERERERERERERERERERERERE=\n").unwrap());
    let row = from_bytes.encode_row(ROW, &record()).unwrap();
    assert_eq!(from_base64.decode_row(ROW, &row).unwrap(), record());
}
