use crate::{
    ports::{Codec, CodecError},
    ports::{SessionData, SessionId, SessionRecord},
};
use serde::{ser::SerializeMap, Deserialize, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

/// MessagePack, the default codec: `rmp_serde::to_vec(&record)` and `rmp_serde::from_slice`,
/// where the record has tower-sessions' `Record` shape.
///
/// This is byte for byte what `tower-sessions-sqlx-store` and `tower-sessions-seaorm-store` 0.1
/// write, so their rows load unchanged and users switching stores stay logged in.
///
/// ```
/// use tower_sessions_seaorm_store::codec::{Codec, MessagePackCodec, SessionId, SessionRecord};
///
/// let record = SessionRecord::owned(SessionId(7), Default::default(), time::OffsetDateTime::UNIX_EPOCH);
/// let bytes = MessagePackCodec.encode(&record).unwrap();
/// assert_eq!(MessagePackCodec.decode(&bytes).unwrap(), record);
/// ```
///
/// Values may nest arrays and objects [`MessagePackCodec::MAX_DEPTH`] deep; deeper data is
/// refused when the session is saved, and deeper rows when they are loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePackCodec;

impl MessagePackCodec {
    /// How deep session values may nest arrays and objects (`[[1]]` is 2 deep).
    pub const MAX_DEPTH: usize = 100;
}

const NAME: &str = "MessagePack";

/// rmp_serde's own limit (1024 levels) is deeper than a 2 MiB thread stack holds in a debug
/// build: a corrupt row would abort the process. The record and its data map take two levels,
/// and rmp_serde refuses the level that reaches its limit.
const MAX_READ_DEPTH: usize = MessagePackCodec::MAX_DEPTH + 3;

/// A record as `SessionRecord` serializes, without its key `reserved`.
#[derive(Serialize)]
#[serde(rename = "Record")]
struct Skipping<'a> {
    id: SessionId,
    data: WithoutKey<'a>,
    expiry_date: OffsetDateTime,
}

/// `data` serialized as its map is, without the key `reserved`.
struct WithoutKey<'a> {
    data: &'a SessionData,
    reserved: &'a str,
}

impl Serialize for WithoutKey<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Compared, not hashed: a session holds a few keys, and SipHash costs more than that.
        let len = self.data.len() - usize::from(self.data.keys().any(|key| key == self.reserved));
        let mut map = serializer.serialize_map(Some(len))?;
        for (key, value) in self.data {
            if key != self.reserved {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Refuses data MessagePack could not read back (the entry under `reserved`, left out of the
/// bytes, is not looked at).
fn check_depth(data: &SessionData, reserved: Option<&str>) -> Result<(), CodecError> {
    if data.iter().any(|(key, value)| {
        Some(key.as_str()) != reserved && nests_deeper_than(value, MessagePackCodec::MAX_DEPTH)
    }) {
        return Err(CodecError::new(
            NAME,
            "the session data nests arrays or objects too deeply for MessagePack \
             (at most 100 levels): flatten it",
        ));
    }
    Ok(())
}

impl Codec for MessagePackCodec {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        check_depth(&record.data, None)?;
        rmp_serde::to_vec(record).map_err(|err| CodecError::new(NAME, encode_reason(&err)))
    }

    fn encode_without(
        &self,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        check_depth(&record.data, Some(reserved))?;
        let skipping = Skipping {
            id: record.id,
            data: WithoutKey {
                data: &record.data,
                reserved,
            },
            expiry_date: record.expiry_date,
        };
        rmp_serde::to_vec(&skipping).map_err(|err| CodecError::new(NAME, encode_reason(&err)))
    }

    fn encode_row_without(
        &self,
        _row_key: &str,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_without(record, reserved)
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
        deserializer.set_max_depth(MAX_READ_DEPTH);
        SessionRecord::deserialize(&mut deserializer)
            .map_err(|err| CodecError::new(NAME, decode_reason(&err)))
    }
}

/// Whether `value` nests more than `levels` arrays or objects; stops looking at that depth.
fn nests_deeper_than(value: &Value, levels: usize) -> bool {
    let deeper = |child: &Value| nests_deeper_than(child, levels - 1);
    match value {
        Value::Array(items) => levels == 0 || items.iter().any(deeper),
        Value::Object(entries) => levels == 0 || entries.values().any(deeper),
        _ => false,
    }
}

// rmp_serde's messages can quote the offending value (serde's `invalid type: string "…"`), so
// only the kind of failure is kept: error messages end up in logs and must not leak session data.
fn encode_reason(err: &rmp_serde::encode::Error) -> &'static str {
    use rmp_serde::encode::Error;
    match err {
        Error::InvalidValueWrite(_) => "could not write a value",
        Error::UnknownLength => "a sequence or map of unknown length",
        Error::InvalidDataModel(_) => "a value MessagePack cannot represent",
        Error::DepthLimitExceeded => "the session data is nested too deeply",
        Error::Syntax(_) => "a value could not be serialized",
    }
}

fn decode_reason(err: &rmp_serde::decode::Error) -> &'static str {
    use rmp_serde::decode::Error;
    match err {
        Error::InvalidMarkerRead(_) | Error::InvalidDataRead(_) => {
            "the stored bytes end early or cannot be read (truncated or not MessagePack)"
        }
        Error::TypeMismatch(_) => "the stored bytes are not a session record of this codec",
        Error::OutOfRange => "a stored number is out of range",
        Error::LengthMismatch(_) => "the stored record has the wrong number of fields",
        Error::Uncategorized(_) | Error::Syntax(_) => {
            "the stored bytes do not form a session record (corrupt, or written by another codec)"
        }
        Error::Utf8Error(_) => "a stored string is not valid UTF-8",
        Error::DepthLimitExceeded => "the stored data is nested too deeply",
    }
}
