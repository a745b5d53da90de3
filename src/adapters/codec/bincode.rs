use super::bincode_wire::{decode_record, encode_record};
use crate::{
    ports::SessionRecord,
    ports::{Codec, CodecError},
};
use ::bincode::{
    config::{self, Configuration},
    de::{BorrowDecode, BorrowDecoder},
    enc::{Encode, Encoder},
    error::{DecodeError, EncodeError},
};

/// bincode 2.0, in a format of this crate's own: about MessagePack's size, quicker to decode.
///
/// bincode's serde mode cannot read a `serde_json::Value` back (it needs `deserialize_any`), so
/// the record is written field by field with bincode's primitives (little-endian varints):
///
/// ```text
/// C1 01                          header: a byte no MessagePack or JSON row starts with, format 1
/// id: i128                       the session id
/// expiry: i128, i32              Unix time in nanoseconds, UTC offset in seconds (kept exactly)
/// data: len, (key: str, value)*  keys sorted, so one session always encodes to the same bytes
/// value: tag u8, then            0 null | 1 false | 2 true | 3 u64 | 4 i64 (negative) | 5 f64
///                                | 6 str | 7 array (len, value*) | 8 object (len, (str, value)*)
/// ```
///
/// Every JSON value round-trips: integers stay `u64` or `i64`, floats are stored as their eight
/// bytes. Values may nest arrays and objects [`BincodeCodec::MAX_DEPTH`] deep; deeper data is
/// refused when saved.
///
/// bincode is pinned to `~2.0`: upstream stopped maintaining it, and its 3.0.0 release is a
/// `compile_error!`. The format above is fixed by this crate (and by its golden-bytes tests), not
/// by bincode.
///
/// ```
/// use tower_sessions_seaorm_store::codec::{BincodeCodec, Codec, SessionId, SessionRecord};
///
/// let record = SessionRecord::owned(
///     SessionId(7),
///     [("cart".to_owned(), serde_json::json!([u64::MAX, -1, 0.5]))].into(),
///     time::OffsetDateTime::UNIX_EPOCH,
/// );
/// let bytes = BincodeCodec.encode(&record).unwrap();
/// assert_eq!(BincodeCodec.decode(&bytes).unwrap(), record);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BincodeCodec;

impl BincodeCodec {
    /// How deep session values may nest arrays and objects (`[[1]]` is 2 deep).
    pub const MAX_DEPTH: usize = 100;
}

const NAME: &str = "bincode";
const CONFIG: Configuration = config::standard();

/// A record to encode, and the key to leave out of it, if any.
struct Encoding<'a, 'r>(&'a SessionRecord<'r>, Option<&'a str>);

impl Encode for Encoding<'_, '_> {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        encode_record(self.0, self.1, encoder)
    }
}

struct Decoding(SessionRecord<'static>);

impl<'de> BorrowDecode<'de, ()> for Decoding {
    fn borrow_decode<D: BorrowDecoder<'de, Context = ()>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        decode_record(decoder).map(Decoding)
    }
}

impl Codec for BincodeCodec {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        ::bincode::encode_to_vec(Encoding(record, None), CONFIG)
            .map_err(|err| CodecError::new(NAME, encode_reason(&err)))
    }

    fn encode_without(
        &self,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        ::bincode::encode_to_vec(Encoding(record, Some(reserved)), CONFIG)
            .map_err(|err| CodecError::new(NAME, encode_reason(&err)))
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
        let (Decoding(record), read) = ::bincode::borrow_decode_from_slice(bytes, CONFIG)
            .map_err(|err| CodecError::new(NAME, decode_reason(&err)))?;
        if read != bytes.len() {
            return Err(CodecError::new(
                NAME,
                "the stored bytes go on after the session record (corrupt, or another codec)",
            ));
        }
        Ok(record)
    }
}

// Our own failures are `Other` with a fixed text; bincode's messages are not passed on, as
// they may quote stored bytes.
fn encode_reason(err: &EncodeError) -> &'static str {
    match err {
        EncodeError::Other(reason) => reason,
        _ => "a value could not be written",
    }
}

fn decode_reason(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::Other(reason) => reason,
        DecodeError::UnexpectedEnd { .. } => {
            "the stored bytes end early (truncated, or written by another codec)"
        }
        DecodeError::Utf8 { .. } => "a stored string is not valid UTF-8",
        _ => "the stored bytes do not form a session record (corrupt, or written by another codec)",
    }
}
