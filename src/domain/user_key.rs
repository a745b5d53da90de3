//! Where in a session the per-user index finds its user.

use std::fmt;

use serde_json::Value;

use crate::ports::SessionData;

/// The longest user key the index stores, in bytes (MySQL's `varchar(255)` column holds it in
/// any character set).
pub const MAX_USER_KEY_LEN: usize = 255;

/// Which session value names the session's user: a top-level key (`"user_id"`), or a JSON
/// Pointer (RFC 6901) into the values when it starts with `/`
/// (`"/axum-login.data/user_id"`, where axum-login 0.18 keeps its user id).
///
/// The value found becomes the index's user key: a string as it is, a number in decimal, a
/// boolean as `true`/`false`, an array or object as compact JSON. A missing value or `null`
/// means the session has no user (an anonymous session, or one logged out).
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeyPath {
    path: String,
}

/// A user key path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid user key path: {0}")]
pub struct InvalidUserKeyPath(&'static str);

impl UserKeyPath {
    /// The path `path`: a session key, or a JSON Pointer when it starts with `/`.
    pub fn new(path: &str) -> Result<Self, InvalidUserKeyPath> {
        if path.is_empty() || path == "/" {
            return Err(InvalidUserKeyPath(
                "it is empty: give the session key holding the user id, e.g. \"user_id\"",
            ));
        }
        if path.starts_with('/') && !valid_pointer_escapes(path) {
            return Err(InvalidUserKeyPath(
                "a JSON Pointer may only use `~` as `~0` or `~1`",
            ));
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// The path as it was given.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The value the path names in `data`, if any.
    pub fn value_in<'a>(&self, data: &'a SessionData) -> Option<&'a Value> {
        match self.path.strip_prefix('/') {
            None => data.get(&self.path),
            Some(pointer) => {
                let (first, rest) = match pointer.split_once('/') {
                    Some((first, rest)) => (first, Some(rest)),
                    None => (pointer, None),
                };
                let top = data.get(&unescape(first))?;
                match rest {
                    None => Some(top),
                    Some(rest) => top.pointer(&format!("/{rest}")),
                }
            }
        }
    }

    /// The user key of a session with `data`, or `None` when it names no user.
    pub fn user_key_of(&self, data: &SessionData) -> Option<String> {
        match self.value_in(data)? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
    }
}

fn valid_pointer_escapes(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(at, byte)| *byte != b'~' || matches!(bytes.get(at + 1), Some(b'0' | b'1')))
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

impl fmt::Debug for UserKeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserKeyPath({:?})", self.path)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(entries: &[(&str, Value)]) -> SessionData {
        entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn each_kind_of_value_becomes_a_key() {
        let path = UserKeyPath::new("user").unwrap();
        let of = |value: Value| path.user_key_of(&data(&[("user", value)]));
        assert_eq!(of(json!("ada")).as_deref(), Some("ada"));
        assert_eq!(of(json!(42)).as_deref(), Some("42"));
        assert_eq!(of(json!(-1.5)).as_deref(), Some("-1.5"));
        assert_eq!(of(json!(true)).as_deref(), Some("true"));
        assert_eq!(
            of(json!({"org": 1, "id": 2})).as_deref(),
            Some(r#"{"id":2,"org":1}"#)
        );
        assert_eq!(of(json!(null)), None);
        assert_eq!(path.user_key_of(&SessionData::new()), None);
    }

    #[test]
    fn pointers_reach_into_values_and_unescape_their_tokens() {
        let session = data(&[
            (
                "axum-login.data",
                json!({"user_id": 7, "auth_hash": [1, 2]}),
            ),
            ("a/b", json!({"c~d": "x"})),
            ("list", json!(["zero", "one"])),
        ]);
        let key = |path: &str| UserKeyPath::new(path).unwrap().user_key_of(&session);
        assert_eq!(key("/axum-login.data/user_id").as_deref(), Some("7"));
        assert_eq!(key("/a~1b/c~0d").as_deref(), Some("x"));
        assert_eq!(key("/list/1").as_deref(), Some("one"));
        assert_eq!(key("/axum-login.data/missing"), None);
        assert_eq!(key("/missing/user_id"), None);
        // Without the leading slash, the whole text is one top-level key.
        assert_eq!(key("axum-login.data/user_id"), None);
    }

    #[test]
    fn unusable_paths_are_refused() {
        assert!(UserKeyPath::new("").is_err());
        assert!(UserKeyPath::new("/").is_err());
        assert!(UserKeyPath::new("/a~2").is_err());
        assert!(UserKeyPath::new("/a~").is_err());
        assert!(UserKeyPath::new("/a~0b~1c").is_ok());
    }
}
