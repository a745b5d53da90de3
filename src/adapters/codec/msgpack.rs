use tower_sessions_core::session::Record;

use crate::ports::{Codec, CodecError};

/// MessagePack, the default codec: `rmp_serde::to_vec(&record)` and `rmp_serde::from_slice`.
///
/// This is byte for byte what `tower-sessions-sqlx-store` and `tower-sessions-seaorm-store` 0.1
/// write, so their rows load unchanged and users switching stores stay logged in.
///
/// ```
/// use tower_sessions_seaorm_store::{codec::MessagePackCodec, ports::Codec, Id, Record};
///
/// let record = Record {
///     id: Id(7),
///     data: Default::default(),
///     expiry_date: time::OffsetDateTime::UNIX_EPOCH,
/// };
/// let bytes = MessagePackCodec.encode(&record).unwrap();
/// assert_eq!(MessagePackCodec.decode(&bytes).unwrap(), record);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePackCodec;

const NAME: &str = "MessagePack";

impl Codec for MessagePackCodec {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, CodecError> {
        rmp_serde::to_vec(record).map_err(|err| CodecError::new(NAME, encode_reason(&err)))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Record, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|err| CodecError::new(NAME, decode_reason(&err)))
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
