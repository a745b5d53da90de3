//! What the repository is given instead of the session itself: the key a session is stored
//! under (its id, or a SHA-256 of it), the handle a user's session is shown by, and the digest
//! of its row key and values that write avoidance compares.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ports::{SessionData, SessionId};

/// How sessions are keyed in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdStorage {
    /// The id as it is (22 characters): what every other tower-sessions store writes.
    #[default]
    Plain,
    /// The lowercase hex SHA-256 of the id's text form (64 characters): a leaked table or
    /// backup holds no usable session id.
    Hashed,
}

impl IdStorage {
    /// The repository key of `id`.
    pub fn key(self, id: SessionId) -> String {
        match self {
            Self::Plain => id.to_string(),
            Self::Hashed => sha256_hex(id.to_string().as_bytes()),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A stable, opaque name for one stored session, safe to show and to send back: it is derived
/// from the stored key by a one-way hash, so it cannot be turned into a session id (or into the
/// stored key, in hashed mode).
///
/// Lists of a user's sessions give one per session; "sign out that device" sends it back.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// The handle of the session stored under `key`.
    pub(crate) fn of_key(key: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"tower-sessions-seaorm-store/session-handle/v1\0");
        hasher.update(key.as_bytes());
        Self(hex(&hasher.finalize()[..16]))
    }

    /// A handle received back (from a form or a URL), to compare with listed handles.
    pub fn new(handle: impl Into<String>) -> Self {
        Self(handle.into())
    }

    /// The handle as text: 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({})", self.0)
    }
}

/// Values nested deeper than this get no digest (the save is then always written), so a
/// custom codec without a depth limit cannot make the digest overflow the stack.
const MAX_DIGEST_DEPTH: usize = 128;

/// SHA-256 of the row's key and the session's values in a canonical form: keys sorted at every
/// level, every value tagged with its kind. The expiry is left out, so a save that only moves
/// the expiry has the same digest. `None` for data nested deeper than 128 levels.
///
/// The row key makes the digest per row: two sessions with equal values (two anonymous
/// visitors' empty carts) have different digests, so the `data_digest` column does not link
/// rows. Rows written before it was keyed so keep loading; their digest only differs once, so
/// their next save writes.
///
/// Canonical, not the codec's bytes: a `HashMap`'s order differs from one map to the next, so
/// the same session could encode to different bytes.
pub(crate) fn content_digest(row_key: &str, data: &SessionData) -> Option<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(b"tower-sessions-seaorm-store/data-digest/v2\0");
    hash_str(&mut hasher, row_key);
    let mut entries: Vec<_> = data.iter().collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    hash_len(&mut hasher, entries.len());
    for (key, value) in entries {
        hash_str(&mut hasher, key);
        hash_value(&mut hasher, value, MAX_DIGEST_DEPTH)?;
    }
    Some(hasher.finalize().into())
}

fn hash_len(hasher: &mut Sha256, len: usize) {
    hasher.update((len as u64).to_le_bytes());
}

fn hash_str(hasher: &mut Sha256, text: &str) {
    hash_len(hasher, text.len());
    hasher.update(text.as_bytes());
}

fn hash_value(hasher: &mut Sha256, value: &Value, depth: usize) -> Option<()> {
    match value {
        Value::Null => hasher.update([0]),
        Value::Bool(false) => hasher.update([1]),
        Value::Bool(true) => hasher.update([2]),
        Value::Number(number) => {
            hasher.update([3]);
            // serde_json prints each number one way (integers in decimal, floats shortest).
            hash_str(hasher, &number.to_string());
        }
        Value::String(text) => {
            hasher.update([4]);
            hash_str(hasher, text);
        }
        Value::Array(items) => {
            hasher.update([5]);
            hash_len(hasher, items.len());
            for item in items {
                hash_value(hasher, item, depth.checked_sub(1)?)?;
            }
        }
        Value::Object(entries) => {
            hasher.update([6]);
            let mut entries: Vec<_> = entries.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            hash_len(hasher, entries.len());
            for (key, item) in entries {
                hash_str(hasher, key);
                hash_value(hasher, item, depth.checked_sub(1)?)?;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hashed_keys_are_the_hex_sha256_of_the_id_text() {
        let id = SessionId(7);
        assert_eq!(IdStorage::Plain.key(id), "BwAAAAAAAAAAAAAAAAAAAA");
        // printf 'BwAAAAAAAAAAAAAAAAAAAA' | sha256sum
        assert_eq!(
            IdStorage::Hashed.key(id),
            "4b14d09772278805d3ac0e00ba0d63874323fba0e9e076f952d611686d3e876b"
        );
        assert_ne!(
            IdStorage::Hashed.key(id),
            IdStorage::Hashed.key(SessionId(8))
        );
    }

    #[test]
    fn handles_are_short_hex_and_differ_from_the_key() {
        let key = IdStorage::Plain.key(SessionId(7));
        let handle = SessionHandle::of_key(&key);
        assert_eq!(handle.as_str().len(), 32);
        assert!(handle.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!handle.as_str().contains(&key));
        assert_eq!(handle, SessionHandle::of_key(&key));
    }

    #[test]
    fn the_digest_ignores_key_order_and_sees_every_change() {
        let a: SessionData = [
            ("a".to_owned(), json!({"x": 1, "y": [1, 2]})),
            ("b".to_owned(), json!("two")),
        ]
        .into();
        let mut b = SessionData::new();
        b.insert("b".to_owned(), json!("two"));
        b.insert("a".to_owned(), json!({"y": [1, 2], "x": 1}));
        let digest = |data: &SessionData| content_digest("row", data);
        assert_eq!(digest(&a), digest(&b));

        for changed in [
            json!({"x": 1, "y": [2, 1]}),
            json!({"x": 1.0, "y": [1, 2]}),
            json!({"x": "1", "y": [1, 2]}),
            json!({"x": 1, "y": [1, 2], "z": null}),
        ] {
            let mut c = a.clone();
            c.insert("a".to_owned(), changed);
            assert_ne!(digest(&a), digest(&c));
        }
        // Two keys cannot run together into one.
        let split: SessionData = [("ab".to_owned(), json!("c"))].into();
        let other: SessionData = [("a".to_owned(), json!("bc"))].into();
        assert_ne!(digest(&split), digest(&other));
    }

    #[test]
    fn the_digest_is_per_row() {
        let data: SessionData = [("cart".to_owned(), json!([]))].into();
        assert_eq!(content_digest("a", &data), content_digest("a", &data));
        assert_ne!(content_digest("a", &data), content_digest("b", &data));
        // The key and the values cannot run together into one.
        let empty = SessionData::new();
        let keyed: SessionData = [("b".to_owned(), json!(null))].into();
        assert_ne!(content_digest("ab", &empty), content_digest("a", &keyed));
    }

    #[test]
    fn data_too_deep_has_no_digest() {
        let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
        let data: SessionData = [("deep".to_owned(), deep)].into();
        assert_eq!(content_digest("row", &data), None);
    }
}
