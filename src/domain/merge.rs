//! Concurrent requests on one session merge their changes per key.
//!
//! tower-sessions hands `save` the whole record its request holds, and nothing of what that
//! request loaded. So `load` adds what the save will need to the record's data, under
//! [`BASE_KEY`]: the row's version, the loaded expiry and user key, and a hash of each loaded
//! key and value (its [`Base`]). A save reads it back ([`Base::read`]) and leaves it out of
//! everything else: the codec skips the key as it encodes (`Codec::encode_row_without`), and
//! what the request changed is the [`Delta`] between the base and the rest of the record: keys
//! whose value differs from the loaded one, and loaded keys that are gone.
//!
//! The entry is an array of numbers: a 128-bit SipHash-2-4 tag (two words) under a key drawn once
//! per process, then the base, word by word (the user key as a string, or `null`; a value
//! without a hash as `null`). The tag covers the base's canonical bytes, which a save hashes again
//! from the words it reads. Numbers, not text: a base is written at every load and read at every
//! save, and base64 (what the entry was before) cost more than its hashing. SipHash is a keyed
//! pseudo-random function made to authenticate short messages, and a base is about a hundred
//! bytes: its tag costs a fraction of an HMAC-SHA256's, which a CPU without SHA instructions
//! computes in software at every load and save. Only this process's loads produce one a save
//! accepts, and only for the row it was loaded from: an application that writes the reserved key
//! itself (from a key name a client chose, say), or copies another session's, cannot make a save
//! remove or keep keys its request did not touch.
//!
//! The hashes are SipHash-1-3 (the standard library's `HashMap` hash) under keys drawn once per
//! process too: a client cannot choose a changed value that hashes like the loaded one. Taken
//! from `siphasher`, whose integer writes go straight into the hash's state: the standard
//! library's hasher passes each through its byte-slice path, about 700 instructions more per
//! load of a 4-key session (of some 13,000 the store spends on it over the in-memory repository).

use std::{hash::Hasher, sync::OnceLock};

use serde_json::Value;
use siphasher::{
    sip::SipHasher13,
    sip128::{Hash128, Hasher128, SipHasher24},
};
use time::OffsetDateTime;

use crate::ports::SessionData;

/// The reserved key of the record's data that carries a loaded session's [`Base`]: never
/// stored, never encoded, never an application's.
pub(crate) const BASE_KEY: &str = "tower-sessions-seaorm-store:base";

/// Where the entry's words are: the tag's two, then the base's header (version, expiry in two,
/// row, user key), then each loaded key's hash and its value's.
const TAG: usize = 0;
const VERSION: usize = 2;
const EXPIRY: usize = 3;
const ROW: usize = 5;
const USER_KEY: usize = 6;
const ENTRIES: usize = 7;

/// Values nested deeper than this get no hash (a value without one is always taken as
/// changed), so a codec without a depth limit cannot make the hashing overflow the stack.
const MAX_DEPTH: usize = 128;

/// What a request loaded, as its save measures its changes against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// The row's version at load.
    pub version: i64,
    /// The loaded record's expiry.
    pub expiry: OffsetDateTime,
    /// The row's user key at load (per-user index).
    pub user_key: Option<String>,
    /// The row it was loaded from: a hash of its key.
    row: u64,
    /// Every loaded key's hash with its value's (`None`: nested too deep for one, so always
    /// taken as changed), sorted by key hash.
    entries: Vec<(u64, Option<u64>)>,
}

/// Why a record's base was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forged;

/// What one request changed: the keys it set (to these values) and the loaded keys it removed
/// (by hash).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Delta {
    set: Vec<(String, Value)>,
    removed: Vec<u64>,
}

impl Base {
    /// The base of `data`, loaded from the row stored under `row_key` at `version`, with
    /// `user_key`.
    pub(crate) fn of(
        row_key: &str,
        data: &SessionData,
        version: i64,
        expiry: OffsetDateTime,
        user_key: Option<String>,
    ) -> Self {
        let mut entries: Vec<_> = data
            .iter()
            .map(|(key, value)| {
                let hasher = key_hasher(key);
                (hasher.finish(), value_hash(hasher, value))
            })
            .collect();
        entries.sort_unstable();
        Self {
            version,
            expiry,
            user_key,
            row: key_hash(row_key),
            entries,
        }
    }

    /// Puts this base into `data`.
    pub(crate) fn attach(&self, data: &mut SessionData) {
        let tag = self.tag().as_u128();
        let nanos = self.expiry.unix_timestamp_nanos() as u128;
        let mut entry = Vec::with_capacity(ENTRIES + 2 * self.entries.len());
        entry.extend([tag as u64, (tag >> 64) as u64].map(Value::from));
        entry.push(Value::from(self.version as u64));
        entry.extend([nanos as u64, (nanos >> 64) as u64].map(Value::from));
        entry.push(Value::from(self.row));
        entry.push(self.user_key.clone().map_or(Value::Null, Value::String));
        for (key, value) in &self.entries {
            entry.push(Value::from(*key));
            entry.push(value.map_or(Value::Null, Value::from));
        }
        data.insert(BASE_KEY.to_owned(), Value::Array(entry));
    }

    /// The base in `data`, left there: `Ok(None)` when there is none (a session cleared, or
    /// created, in this request); [`Forged`] when the entry was not made by [`Base::attach`]
    /// in this process for the row stored under `row_key` (a genuine base of another session
    /// included: `create` strips the one `cycle_id` carries over).
    pub(crate) fn read(row_key: &str, data: &SessionData) -> Result<Option<Self>, Forged> {
        let Some(entry) = data.get(BASE_KEY) else {
            return Ok(None);
        };
        let words = entry.as_array().ok_or(Forged)?;
        let word = |at: usize| words.get(at).and_then(Value::as_u64).ok_or(Forged);
        let pair =
            |at: usize| Ok::<_, Forged>(u128::from(word(at)?) | u128::from(word(at + 1)?) << 64);
        let given = Hash128::from(pair(TAG)?);
        let expiry =
            OffsetDateTime::from_unix_timestamp_nanos(pair(EXPIRY)? as i128).map_err(|_| Forged)?;
        let user_key = match words.get(USER_KEY).ok_or(Forged)? {
            Value::Null => None,
            Value::String(key) => Some(key.clone()),
            _ => return Err(Forged),
        };
        let loaded = words.get(ENTRIES..).ok_or(Forged)?;
        if loaded.len() % 2 != 0 {
            return Err(Forged);
        }
        let mut entries = Vec::with_capacity(loaded.len() / 2);
        for entry in loaded.chunks_exact(2) {
            let key = entry[0].as_u64().ok_or(Forged)?;
            let value = match &entry[1] {
                Value::Null => None,
                value => Some(value.as_u64().ok_or(Forged)?),
            };
            entries.push((key, value));
        }
        let base = Self {
            version: word(VERSION)? as i64,
            expiry,
            user_key,
            row: word(ROW)?,
            entries,
        };
        // `Hash128`'s equality takes the same time wherever the tags differ.
        if base.tag() != given {
            return Err(Forged);
        }
        if base.row != key_hash(row_key) {
            return Err(Forged);
        }
        Ok(Some(base))
    }

    /// This base's tag: SipHash-2-4, 128 bits, under the process's key, over its canonical
    /// bytes (version, expiry, row, user key, entries; little-endian, lengths before contents,
    /// a flag byte before what may be absent). The words go to the hasher as they are, with no
    /// buffer of bytes built first: a load and a save each tag a base.
    fn tag(&self) -> Hash128 {
        static KEYED: OnceLock<SipHasher24> = OnceLock::new();
        let mut hasher = *KEYED.get_or_init(|| SipHasher24::new_with_key(&rand::random()));
        hasher.write_u64(self.version as u64);
        let nanos = self.expiry.unix_timestamp_nanos() as u128;
        hasher.write_u64(nanos as u64);
        hasher.write_u64((nanos >> 64) as u64);
        hasher.write_u64(self.row);
        match self.user_key.as_deref() {
            Some(key) => {
                hasher.write_u8(1);
                hasher.write_u64(key.len() as u64);
                hasher.write(key.as_bytes());
            }
            None => hasher.write_u8(0),
        }
        for (key, value) in &self.entries {
            hasher.write_u64(*key);
            match value {
                Some(value) => {
                    hasher.write_u8(1);
                    hasher.write_u64(*value);
                }
                None => hasher.write_u8(0),
            }
        }
        hasher.finish128()
    }

    /// What the request holding `data` changed since it loaded this base (its entry under
    /// [`BASE_KEY`] is no change).
    pub(crate) fn delta(&self, data: &SessionData) -> Delta {
        let mut present = Vec::with_capacity(data.len());
        let mut set = Vec::new();
        for (key, value) in data {
            if key == BASE_KEY {
                continue;
            }
            let hasher = key_hasher(key);
            let hash = hasher.finish();
            present.push(hash);
            let loaded = self
                .entries
                .binary_search_by_key(&hash, |(key, _)| *key)
                .ok()
                .and_then(|at| self.entries[at].1);
            // Not loaded, loaded without a hash, or another value.
            if loaded.is_none() || loaded != value_hash(hasher, value) {
                set.push((key.clone(), value.clone()));
            }
        }
        present.sort_unstable();
        let removed = self
            .entries
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| present.binary_search(key).is_err())
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
        if !self.removed.is_empty() {
            data.retain(|key, _| !self.removed.contains(&key_hash(key)));
        }
        for (key, value) in &self.set {
            data.insert(key.clone(), value.clone());
        }
    }
}

/// A hasher under this process's SipHash keys, fed `key`: its bytes, then `0xff`, which UTF-8
/// never holds, so that no key's input is a prefix of another's. Its hash is the key's; fed on
/// ([`value_hash`]), it hashes the key's value: one hasher, and the key written once, for both
/// of an entry's hashes.
fn key_hasher(key: &str) -> SipHasher13 {
    static KEYED: OnceLock<SipHasher13> = OnceLock::new();
    let mut hasher = *KEYED.get_or_init(|| SipHasher13::new_with_key(&rand::random()));
    hasher.write(key.as_bytes());
    hasher.write_u8(0xff);
    hasher
}

fn key_hash(key: &str) -> u64 {
    key_hasher(key).finish()
}

/// The hash of `value` under its key (`hasher`, from [`key_hasher`]), in a canonical form:
/// object keys sorted at every level, every value tagged with its kind and length-prefixed.
/// `None` for a value nested deeper than [`MAX_DEPTH`].
fn value_hash(mut hasher: SipHasher13, value: &Value) -> Option<u64> {
    hash_value(&mut hasher, value, MAX_DEPTH)?;
    Some(hasher.finish())
}

/// A kind's tag and a length, in one write.
fn kind_and_len(hasher: &mut impl Hasher, kind: u8, len: usize) {
    hasher.write_u64(u64::from(kind) | (len as u64) << 8);
}

fn hash_value(hasher: &mut impl Hasher, value: &Value, depth: usize) -> Option<()> {
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Bool(flag) => hasher.write_u8(1 + u8::from(*flag)),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                hasher.write_u8(3);
                hasher.write_i64(int);
            } else if let Some(uint) = number.as_u64() {
                hasher.write_u8(4);
                hasher.write_u64(uint);
            } else {
                hasher.write_u8(5);
                hasher.write_u64(number.as_f64().map_or(0, f64::to_bits));
            }
        }
        Value::String(text) => {
            kind_and_len(hasher, 6, text.len());
            hasher.write(text.as_bytes());
        }
        Value::Array(items) => {
            kind_and_len(hasher, 7, items.len());
            for item in items {
                hash_value(hasher, item, depth.checked_sub(1)?)?;
            }
        }
        Value::Object(entries) => {
            kind_and_len(hasher, 8, entries.len());
            let mut sorted: Vec<_> = entries.iter().collect();
            sorted.sort_unstable_by_key(|(key, _)| *key);
            for (key, item) in sorted {
                hasher.write_usize(key.len());
                hasher.write(key.as_bytes());
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

    fn data(entries: &[(&str, Value)]) -> SessionData {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    fn loaded(entries: &[(&str, Value)]) -> (Base, SessionData) {
        let data = data(entries);
        let base = Base::of(
            "row",
            &data,
            7,
            OffsetDateTime::UNIX_EPOCH,
            Some("ada".into()),
        );
        (base, data)
    }

    fn with_entry(data: &SessionData, entry: Value) -> SessionData {
        let mut data = data.clone();
        data.insert(BASE_KEY.into(), entry);
        data
    }

    #[test]
    fn a_base_survives_attach_and_read_and_is_no_change() {
        let (base, mut data) = loaded(&[("a", json!(1)), ("deep", json!({"x": [1, 2]}))]);
        base.attach(&mut data);
        assert!(data[BASE_KEY].is_array());
        assert_eq!(data.len(), 3);
        assert_eq!(Base::read("row", &data), Ok(Some(base.clone())));
        assert!(base.delta(&data).is_empty(), "the entry is not a change");
    }

    #[test]
    fn no_base_is_no_base() {
        let data = data(&[("a", json!(1))]);
        assert_eq!(Base::read("row", &data), Ok(None));
    }

    #[test]
    fn a_genuine_base_of_another_row_is_forged() {
        let (base, mut data) = loaded(&[("a", json!(1))]);
        base.attach(&mut data);
        assert_eq!(Base::read("other", &data), Err(Forged));
    }

    #[test]
    fn a_base_edited_or_made_up_is_forged() {
        let (base, mut genuine) = loaded(&[("a", json!(1)), ("b", json!({"c": 2}))]);
        base.attach(&mut genuine);
        let words = genuine[BASE_KEY].as_array().unwrap().clone();
        assert_eq!(words.len(), ENTRIES + 4);
        let edited = |at: usize, word: Value| {
            let mut words = words.clone();
            words[at] = word;
            Value::Array(words)
        };
        let mut forgeries = vec![
            json!({"v": 0}),
            json!("a string"),
            json!(""),
            Value::Null,
            json!(7),
            json!([]),
            Value::Array(words[..words.len() - 1].to_vec()),
            Value::Array(words[..words.len() - 2].to_vec()),
            Value::Array(words[..ENTRIES - 1].to_vec()),
            Value::Array([&words[..], &[json!(1), json!(2)]].concat()),
            Value::Array([&words[..], &[json!(1)]].concat()),
        ];
        // Every word changed in turn (the tag, the version, the expiry, the row, the user key,
        // the entries), and made another kind of value.
        for (at, word) in words.iter().enumerate() {
            let changed = match word {
                Value::Number(n) => json!(n.as_u64().unwrap() ^ 1),
                Value::String(key) => json!(format!("{key}!")),
                other => panic!("a word of the entry is {other}"),
            };
            forgeries.push(edited(at, changed));
            forgeries.push(edited(at, json!(word.to_string())));
            forgeries.push(edited(at, json!(-1)));
            forgeries.push(edited(at, json!(0.5)));
            forgeries.push(edited(at, json!([word])));
            forgeries.push(edited(at, Value::Null));
        }
        for forged in forgeries {
            let data = with_entry(&genuine, forged.clone());
            assert_eq!(Base::read("row", &data), Err(Forged), "{forged}");
        }
    }

    #[test]
    fn a_user_key_of_none_and_an_empty_one_differ() {
        let data = data(&[]);
        let none = Base::of("row", &data, 1, OffsetDateTime::UNIX_EPOCH, None);
        let empty = Base::of(
            "row",
            &data,
            1,
            OffsetDateTime::UNIX_EPOCH,
            Some(String::new()),
        );
        assert_ne!(none.tag(), empty.tag());
        for base in [none, empty] {
            let mut data = data.clone();
            base.attach(&mut data);
            assert_eq!(Base::read("row", &data), Ok(Some(base)));
        }
    }

    #[test]
    fn the_delta_holds_what_changed_and_only_that() {
        let (base, mut data) = loaded(&[
            ("kept", json!(1)),
            ("changed", json!("x")),
            ("gone", json!(true)),
        ]);
        // The record still holds its base, as a save sees it: that entry is no change.
        base.attach(&mut data);
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
        assert_eq!(delta.removed, vec![key_hash("gone")]);

        // Applied to what another request saved meanwhile: its keys stay.
        let mut now = super::tests::data(&[
            ("kept", json!(2)),
            ("changed", json!("z")),
            ("gone", json!(true)),
            ("theirs", json!(3)),
        ]);
        delta.apply(&mut now);
        assert_eq!(
            now,
            super::tests::data(&[
                ("kept", json!(2)),
                ("changed", json!("y")),
                ("new", json!([1])),
                ("theirs", json!(3)),
            ])
        );
    }

    #[test]
    fn an_unchanged_record_has_an_empty_delta() {
        let (base, data) = loaded(&[("a", json!({"x": 1, "y": [2, "3"]})), ("b", json!(null))]);
        assert!(base.delta(&data).is_empty());
    }

    /// A value's hash under one key.
    fn hash(value: &Value) -> Option<u64> {
        value_hash(key_hasher("key"), value)
    }

    #[test]
    fn the_value_hash_ignores_key_order_and_sees_every_change() {
        let a = json!({"x": 1, "y": [1, 2], "z": {"b": "two", "a": 1}});
        let b = json!({"z": {"a": 1, "b": "two"}, "y": [1, 2], "x": 1});
        assert_eq!(hash(&a), hash(&b));
        for changed in [
            json!({"x": 1, "y": [2, 1], "z": {"b": "two", "a": 1}}),
            json!({"x": 1.0, "y": [1, 2], "z": {"b": "two", "a": 1}}),
            json!({"x": "1", "y": [1, 2], "z": {"b": "two", "a": 1}}),
            json!({"x": 1, "y": [1, 2], "z": {"b": "two", "a": 1}, "w": null}),
            json!({"x": 1, "y": [1, 2], "z": {"bt": "wo", "a": 1}}),
            json!({"x": 1, "y": [[1], 2], "z": {"b": "two", "a": 1}}),
            json!({"x": -1, "y": [1, 2], "z": {"b": "two", "a": 1}}),
        ] {
            assert_ne!(hash(&a), hash(&changed), "{changed}");
        }
    }

    #[test]
    fn values_of_every_kind_hash_apart() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(0.5),
            json!(""),
            json!("ab"),
            json!(["a", "b"]),
            json!(["ab"]),
            json!([]),
            json!({}),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!([null]),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a} and {b}");
            }
        }
    }

    #[test]
    fn values_too_deep_for_a_hash_are_always_written() {
        let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
        assert_eq!(hash(&deep), None);
        let (base, data) = loaded(&[("deep", deep)]);
        assert!(!base.delta(&data).is_empty());
    }
}
