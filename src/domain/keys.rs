//! What the repository is given instead of the session itself: the key a session is stored
//! under (its id, or a SHA-256 of it), and the handle a user's session is shown by.

use std::fmt;

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
        // Every load and save computes it (a cached load too): the text on the stack, without
        // `Display`'s formatting machinery and a growing `String`.
        match id.text(&mut [0u8; 22]) {
            Some(text) => self.key_of_text(text),
            // Never (see `SessionId::text`).
            None => self.key_of_text(&id.to_string()),
        }
    }

    /// The repository key of the session whose id's text is `text`.
    fn key_of_text(self, text: &str) -> String {
        match self {
            Self::Plain => text.to_owned(),
            Self::Hashed => sha256_hex(text.as_bytes()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_the_id_text() {
        for id in [
            0,
            7,
            -1,
            i128::MIN,
            i128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let id = SessionId(id);
            assert_eq!(IdStorage::Plain.key(id), id.to_string());
            assert_eq!(
                IdStorage::Hashed.key(id),
                sha256_hex(id.to_string().as_bytes())
            );
        }
    }

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
}
