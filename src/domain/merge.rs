//! Concurrent requests on one session merge their changes per key.
//!
//! tower-sessions hands `save` the whole record its request holds, and nothing of what that
//! request loaded. So `load` adds what the save will need to the record's data, under
//! [`BASE_KEY`]: the row's version, the loaded expiry and user key, and a digest of each loaded
//! value (its [`Base`]). A save takes it out again ([`Base::detach`]) before anything is
//! encoded; what its request changed is then the [`Delta`] between the base and the record:
//! keys whose value differs from the loaded one, and loaded keys that are gone.
//!
//! The base is tagged with an HMAC under a key drawn once per process, so only this process's
//! loads produce one a save accepts: an application that writes the reserved key itself (from a
//! key name a client chose, say) cannot make a save remove or keep keys its request did not
//! touch.

use std::{collections::BTreeMap, sync::OnceLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{digest::KeyInit, Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::keys::value_digest;
use crate::ports::SessionData;

/// The reserved key of the record's data that carries a loaded session's [`Base`]: never
/// stored, never encoded, never an application's.
pub(crate) const BASE_KEY: &str = "tower-sessions-seaorm-store:base";

/// How many bytes of a value's SHA-256 the base keeps: enough that a changed value is never
/// taken for the loaded one.
const DIGEST_LEN: usize = 16;

type ValueDigest = [u8; DIGEST_LEN];

/// What a request loaded, as its save measures its changes against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// The row's version at load.
    pub version: i64,
    /// The loaded record's expiry.
    pub expiry: OffsetDateTime,
    /// The row's user key at load (per-user index).
    pub user_key: Option<String>,
    /// Every loaded key, with the digest of its value (`None`: nested too deep for one, so
    /// always taken as changed).
    digests: BTreeMap<String, Option<ValueDigest>>,
}

/// Why a record's base was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forged;

/// What one request changed: the keys it set (to these values) and the loaded keys it removed.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Delta {
    set: Vec<(String, Value)>,
    removed: Vec<String>,
}

impl Base {
    /// The base of `data`, loaded from a row at `version` with `user_key`.
    pub(crate) fn of(
        data: &SessionData,
        version: i64,
        expiry: OffsetDateTime,
        user_key: Option<String>,
    ) -> Self {
        let digests = data
            .iter()
            .map(|(key, value)| (key.clone(), digest(value)))
            .collect();
        Self {
            version,
            expiry,
            user_key,
            digests,
        }
    }

    /// Puts this base into `data`, tagged for the row stored under `row_key`.
    pub(crate) fn attach(&self, row_key: &str, data: &mut SessionData) {
        let digests: Map<String, Value> = self
            .digests
            .iter()
            .map(|(key, digest)| {
                let digest = digest.map_or(Value::Null, |d| URL_SAFE_NO_PAD.encode(d).into());
                (key.clone(), digest)
            })
            .collect();
        let row = row_fingerprint(row_key);
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&row));
        let entry = serde_json::json!({
            "v": self.version,
            "e": self.expiry.unix_timestamp_nanos().to_string(),
            "u": self.user_key,
            "k": digests,
            "r": URL_SAFE_NO_PAD.encode(row),
            "t": tag,
        });
        data.insert(BASE_KEY.to_owned(), entry);
    }

    /// Takes the base out of `data`: `Ok(None)` when there is none (a session cleared, or
    /// created, in this request); [`Forged`] when the entry was not made by [`Base::attach`]
    /// in this process for the row stored under `row_key` (a genuine base of another session
    /// included: `create` strips the one `cycle_id` carries over).
    pub(crate) fn detach(row_key: &str, data: &mut SessionData) -> Result<Option<Self>, Forged> {
        let Some(entry) = data.remove(BASE_KEY) else {
            return Ok(None);
        };
        let (base, row) = Self::parse(&entry).ok_or(Forged)?;
        let tag = entry.get("t").and_then(Value::as_str).ok_or(Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Forged)?;
        mac(&base, &row).verify_slice(&tag).map_err(|_| Forged)?;
        if row != row_fingerprint(row_key) {
            return Err(Forged);
        }
        Ok(Some(base))
    }

    fn parse(entry: &Value) -> Option<(Self, [u8; 32])> {
        let version = entry.get("v")?.as_i64()?;
        let nanos = entry.get("e")?.as_str()?.parse().ok()?;
        let expiry = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        let user_key = match entry.get("u")? {
            Value::Null => None,
            Value::String(key) => Some(key.clone()),
            _ => return None,
        };
        let digests = entry
            .get("k")?
            .as_object()?
            .iter()
            .map(|(key, digest)| {
                let digest = match digest {
                    Value::Null => None,
                    Value::String(text) => {
                        Some(URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?)
                    }
                    _ => return None,
                };
                Some((key.clone(), digest))
            })
            .collect::<Option<_>>()?;
        let row = URL_SAFE_NO_PAD
            .decode(entry.get("r")?.as_str()?)
            .ok()?
            .try_into()
            .ok()?;
        let base = Self {
            version,
            expiry,
            user_key,
            digests,
        };
        Some((base, row))
    }

    fn tag(&self, row: &[u8; 32]) -> [u8; 32] {
        mac(self, row).finalize().into_bytes().into()
    }

    /// What the request holding `data` changed since it loaded this base.
    pub(crate) fn delta(&self, data: &SessionData) -> Delta {
        let set = data
            .iter()
            .filter(|(key, value)| match self.digests.get(*key) {
                Some(Some(loaded)) => digest(value).as_ref() != Some(loaded),
                // Not loaded, or loaded without a digest.
                _ => true,
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let removed = self
            .digests
            .keys()
            .filter(|key| !data.contains_key(*key))
            .cloned()
            .collect();
        Delta { set, removed }
    }
}

impl Delta {
    /// Whether the request changed nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Applies the request's changes to `data`, what the row holds now.
    pub(crate) fn apply(&self, data: &mut SessionData) {
        for key in &self.removed {
            data.remove(key);
        }
        for (key, value) in &self.set {
            data.insert(key.clone(), value.clone());
        }
    }
}

/// The first bytes of the SHA-256 of `value` in a canonical form; `None` when nested too deep.
fn digest(value: &Value) -> Option<ValueDigest> {
    let full = value_digest(value)?;
    let mut short = [0; DIGEST_LEN];
    short.copy_from_slice(&full[..DIGEST_LEN]);
    Some(short)
}

/// What a base names its row by: a SHA-256 of the row key, so the entry holds no id.
fn row_fingerprint(row_key: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"tower-sessions-seaorm-store/base-row/v1\0")
        .chain_update(row_key.as_bytes())
        .finalize()
        .into()
}

/// The HMAC of a base and its row under the process's key, over an unambiguous encoding.
fn mac(base: &Base, row: &[u8; 32]) -> Hmac<Sha256> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_le_bytes());
        mac.update(bytes);
    };
    field(b"tower-sessions-seaorm-store/base/v1");
    field(row);
    field(&base.version.to_le_bytes());
    field(&base.expiry.unix_timestamp_nanos().to_le_bytes());
    match &base.user_key {
        Some(key) => {
            field(b"some");
            field(key.as_bytes());
        }
        None => field(b"none"),
    }
    field(&(base.digests.len() as u64).to_le_bytes());
    for (key, digest) in &base.digests {
        field(key.as_bytes());
        field(digest.as_ref().map_or(&[][..], |d| &d[..]));
    }
    mac
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(entries: &[(&str, Value)]) -> SessionData {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    fn loaded(entries: &[(&str, Value)]) -> (Base, SessionData) {
        let data = data(entries);
        let base = Base::of(&data, 7, OffsetDateTime::UNIX_EPOCH, Some("ada".into()));
        (base, data)
    }

    #[test]
    fn a_base_survives_attach_and_detach_and_is_stripped() {
        let (base, mut data) = loaded(&[("a", json!(1)), ("deep", json!({"x": [1, 2]}))]);
        base.attach("row", &mut data);
        assert!(data.contains_key(BASE_KEY));
        assert_eq!(Base::detach("row", &mut data), Ok(Some(base)));
        assert!(!data.contains_key(BASE_KEY));
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn no_base_is_no_base() {
        let mut data = data(&[("a", json!(1))]);
        assert_eq!(Base::detach("row", &mut data), Ok(None));
    }

    #[test]
    fn a_genuine_base_of_another_row_is_forged() {
        let (base, mut data) = loaded(&[("a", json!(1))]);
        base.attach("row", &mut data);
        assert_eq!(Base::detach("other", &mut data), Err(Forged));
    }

    #[test]
    fn a_base_edited_or_made_up_is_forged() {
        let (base, mut genuine) = loaded(&[("a", json!(1)), ("b", json!(2))]);
        base.attach("row", &mut genuine);
        let entry = genuine[BASE_KEY].clone();
        let edits: [fn(&mut Value); 9] = [
            |e| e["v"] = json!(8),
            |e| e["u"] = Value::Null,
            |e| e["u"] = json!(""),
            |e| e["e"] = json!("1"),
            |e| {
                e["k"].as_object_mut().unwrap().remove("b");
            },
            |e| e["k"]["c"] = Value::Null,
            |e| e["t"] = json!("AAAA"),
            |e| *e = json!("a string"),
            |e| *e = json!({"v": 0}),
        ];
        for edit in edits {
            let mut forged = genuine.clone();
            let mut entry = entry.clone();
            edit(&mut entry);
            forged.insert(BASE_KEY.into(), entry);
            assert_eq!(Base::detach("row", &mut forged), Err(Forged));
        }
    }

    #[test]
    fn a_user_key_of_none_and_an_empty_one_differ() {
        let data = data(&[]);
        let none = Base::of(&data, 1, OffsetDateTime::UNIX_EPOCH, None);
        let empty = Base::of(&data, 1, OffsetDateTime::UNIX_EPOCH, Some(String::new()));
        assert_ne!(none.tag(&[0; 32]), empty.tag(&[0; 32]));
    }

    #[test]
    fn the_delta_holds_what_changed_and_only_that() {
        let (base, mut data) = loaded(&[
            ("kept", json!(1)),
            ("changed", json!("x")),
            ("gone", json!(true)),
        ]);
        data.insert("changed".into(), json!("y"));
        data.remove("gone");
        data.insert("new".into(), json!([1]));
        let delta = base.delta(&data);
        let mut set = delta.set.clone();
        set.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            set,
            vec![("changed".into(), json!("y")), ("new".into(), json!([1]))]
        );
        assert_eq!(delta.removed, vec!["gone".to_owned()]);

        // Applied to what another request saved meanwhile: its keys stay.
        let mut now = data_of(&[
            ("kept", json!(2)),
            ("changed", json!("z")),
            ("gone", json!(true)),
            ("theirs", json!(3)),
        ]);
        delta.apply(&mut now);
        assert_eq!(
            now,
            data_of(&[
                ("kept", json!(2)),
                ("changed", json!("y")),
                ("new", json!([1])),
                ("theirs", json!(3))
            ])
        );
    }

    fn data_of(entries: &[(&str, Value)]) -> SessionData {
        data(entries)
    }

    #[test]
    fn an_unchanged_record_has_an_empty_delta() {
        let (base, data) = loaded(&[("a", json!({"x": 1, "y": 2}))]);
        assert!(base.delta(&data).is_empty());
    }

    #[test]
    fn values_too_deep_for_a_digest_are_always_written() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let (base, data) = loaded(&[("deep", deep)]);
        assert!(!base.delta(&data).is_empty());
    }
}
