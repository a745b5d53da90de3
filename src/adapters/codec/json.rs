use std::str::FromStr;

use crate::{
    ports::{Codec, CodecError},
    ports::{SessionData, SessionId, SessionRecord},
};
use serde::{
    ser::{Error as _, SerializeMap, SerializeSeq},
    Deserialize, Serialize, Serializer,
};
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

/// JSON, readable in `psql`: `{"id":"…","expiry_date":"…","data":{…}}`.
///
/// - `id` is the session id as tower-sessions prints it (the `id` column's value), never the
///   128-bit integer, which most JSON readers (and `serde_json::Value`) cannot hold.
/// - `expiry_date` is RFC 3339 in UTC with up to nine fractional digits: the instant is kept to
///   the nanosecond; the offset is stored as UTC (records compare equal, since `OffsetDateTime`
///   compares instants). The format is the same whatever `time` features the application
///   enables: serializing the record itself would switch between a tuple and a string with
///   `time/serde-human-readable`.
/// - `data` holds the session's values as they are, keys sorted: the same session always
///   encodes to the same bytes.
///
/// Values may nest arrays and objects [`JsonCodec::MAX_DEPTH`] deep; deeper data is refused when
/// the session is saved (serde_json could not read it back). The `json` feature turns on
/// `serde_json/float_roundtrip`, so every `f64` reads back exactly.
///
/// Read a session in `psql`:
///
/// ```sql
/// SELECT convert_from(data, 'UTF8')::jsonb FROM tower_sessions.session;
/// ```
///
/// ```
/// use tower_sessions_seaorm_store::codec::{Codec, JsonCodec, SessionId, SessionRecord};
///
/// let record = SessionRecord::owned(
///     SessionId(7),
///     [("user".to_owned(), serde_json::json!("ada"))].into(),
///     time::OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap()
///         + time::Duration::milliseconds(500),
/// );
/// let bytes = JsonCodec.encode(&record).unwrap();
/// assert_eq!(
///     std::str::from_utf8(&bytes).unwrap(),
///     r#"{"id":"BwAAAAAAAAAAAAAAAAAAAA","expiry_date":"2030-01-01T00:00:00.5Z","data":{"user":"ada"}}"#
/// );
/// assert_eq!(JsonCodec.decode(&bytes).unwrap(), record);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonCodec;

impl JsonCodec {
    /// How deep session values may nest arrays and objects (`[[1]]` is 2 deep). serde_json reads
    /// at most 127 nested levels, two of which the record and its `data` map take.
    pub const MAX_DEPTH: usize = 100;
}

const NAME: &str = "JSON";
const TOO_DEEP: &str =
    "the session data nests arrays or objects too deeply for JSON (at most 100 levels): flatten it";

#[derive(Serialize)]
struct RecordOut<'a> {
    id: String,
    expiry_date: String,
    data: SortedData<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    id: String,
    expiry_date: String,
    data: SessionData,
}

impl JsonCodec {
    /// `record` encoded without its key `reserved`, if given.
    fn encode_skipping(
        record: &SessionRecord<'_>,
        reserved: Option<&str>,
    ) -> Result<Vec<u8>, CodecError> {
        let expiry_date = record
            .expiry_date
            .checked_to_offset(UtcOffset::UTC)
            .and_then(|utc| utc.format(&Rfc3339).ok())
            .ok_or_else(|| {
                CodecError::new(
                    NAME,
                    "the expiry date is outside RFC 3339 (years 0 to 9999)",
                )
            })?;
        let out = RecordOut {
            id: record.id.to_string(),
            expiry_date,
            data: SortedData {
                data: &record.data,
                reserved,
            },
        };
        serde_json::to_vec(&out).map_err(|err| CodecError::new(NAME, encode_reason(&err)))
    }
}

impl Codec for JsonCodec {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        Self::encode_skipping(record, None)
    }

    fn encode_without(
        &self,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        Self::encode_skipping(record, Some(reserved))
    }

    fn encode_row_without(
        &self,
        _row_key: &str,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        Self::encode_skipping(record, Some(reserved))
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        let stored: RecordIn = serde_json::from_slice(bytes)
            .map_err(|err| CodecError::new(NAME, decode_reason(&err)))?;
        let id = SessionId::from_str(&stored.id)
            .map_err(|_| CodecError::new(NAME, "the stored session id is malformed"))?;
        let expiry_date = OffsetDateTime::parse(&stored.expiry_date, &Rfc3339)
            .map_err(|_| CodecError::new(NAME, "the stored expiry date is not RFC 3339"))?;
        Ok(SessionRecord::owned(id, stored.data, expiry_date))
    }
}

/// The session's values with keys in order, but for `reserved`; nesting checked on the way.
struct SortedData<'a> {
    data: &'a SessionData,
    reserved: Option<&'a str>,
}

impl Serialize for SortedData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = self
            .data
            .iter()
            .filter(|(key, _)| Some(key.as_str()) != self.reserved)
            .collect();
        entries.sort_unstable_by_key(|(key, _)| *key);
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            map.serialize_entry(key, &DepthChecked { value, depth: 0 })?;
        }
        map.end()
    }
}

/// Serializes exactly as `Value` does, but refuses to nest deeper than serde_json can read back.
struct DepthChecked<'a> {
    value: &'a Value,
    depth: usize,
}

impl Serialize for DepthChecked<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let depth = self.depth + 1;
        match self.value {
            Value::Array(items) => {
                if depth > JsonCodec::MAX_DEPTH {
                    return Err(S::Error::custom(TOO_DEEP));
                }
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&DepthChecked { value, depth })?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                if depth > JsonCodec::MAX_DEPTH {
                    return Err(S::Error::custom(TOO_DEEP));
                }
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, &DepthChecked { value, depth })?;
                }
                map.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

// serde_json's messages can quote the offending value, so only the error's category and
// position are kept: error messages end up in logs and must not leak session data.
fn encode_reason(err: &serde_json::Error) -> &'static str {
    if err.to_string() == TOO_DEEP {
        TOO_DEEP
    } else {
        "a value could not be serialized as JSON"
    }
}

fn decode_reason(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let (line, column) = (err.line(), err.column());
    match err.classify() {
        Category::Eof => format!(
            "the stored JSON ends early at line {line}, column {column} (truncated?)"
        ),
        Category::Syntax => format!(
            "the stored bytes are not JSON (syntax error at line {line}, column {column}): \
             corrupt, nested too deeply, or written by another codec"
        ),
        Category::Data => format!(
            "the stored JSON is not a session record of this codec (at line {line}, column {column})"
        ),
        Category::Io => "the stored bytes could not be read".to_owned(),
    }
}
