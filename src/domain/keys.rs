//! What the repository is given instead of the session itself: the key a session is stored
//! under (its id, or a SHA-256 of it), the handle a user's session is shown by, and the digest
//! of a value that a save compares with the loaded one.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ports::SessionId;

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

/// Values nested deeper than this get no digest (a value without one is always taken as
/// changed), so a custom codec without a depth limit cannot make the digest overflow the stack.
const MAX_DIGEST_DEPTH: usize = 128;

/// SHA-256 of one session value in a canonical form: object keys sorted at every level, every
/// value tagged with its kind; what a save compares to tell whether its request changed a
/// value (see `merge.rs`). `None` for a value nested deeper than 128 levels.
///
/// Canonical, not the codec's bytes: a map's order differs from one map to the next, so the
/// same value could encode to different bytes.
pub(crate) fn value_digest(value: &Value) -> Option<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(b"tower-sessions-seaorm-store/value-digest/v1\0");
    hash_value(&mut hasher, value, MAX_DIGEST_DEPTH)?;
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
        let a = json!({"x": 1, "y": [1, 2], "z": {"b": "two", "a": 1}});
        let b = json!({"z": {"a": 1, "b": "two"}, "y": [1, 2], "x": 1});
        assert_eq!(value_digest(&a), value_digest(&b));
        for changed in [
            json!({"x": 1, "y": [2, 1], "z": {"b": "two", "a": 1}}),
            json!({"x": 1.0, "y": [1, 2], "z": {"b": "two", "a": 1}}),
            json!({"x": "1", "y": [1, 2], "z": {"b": "two", "a": 1}}),
            json!({"x": 1, "y": [1, 2], "z": {"b": "two", "a": 1}, "w": null}),
            json!({"x": 1, "y": [1, 2], "z": {"bt": "wo", "a": 1}}),
        ] {
            assert_ne!(value_digest(&a), value_digest(&changed), "{changed}");
        }
    }

    #[test]
    fn values_too_deep_have_no_digest() {
        let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
        assert_eq!(value_digest(&deep), None);
    }
}
