//! The wire format of [`BincodeCodec`](super::BincodeCodec), written and read field by field.
//!
//! Decoding never trusts a stored length: strings are borrowed from the input (bincode checks
//! they fit), and containers grow as their items are actually read, so a corrupt length cannot
//! make the decoder allocate gigabytes. Nesting is bounded on both sides, so a corrupt row
//! cannot overflow the stack.

use std::collections::HashMap;

use super::BincodeCodec;
use crate::ports::{SessionId, SessionRecord};
use ::bincode::{
    de::{BorrowDecode, BorrowDecoder, Decode},
    enc::{write::Writer, Encode, Encoder},
    error::{DecodeError, EncodeError},
};
use serde_json::{Map, Number, Value};
use time::{OffsetDateTime, UtcOffset};

/// 0xC1 is never used by MessagePack and never starts UTF-8, so no row of the other codecs
/// starts like this; then the format version.
const HEADER: [u8; 2] = [0xC1, 0x01];

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const U64: u8 = 3;
const I64: u8 = 4;
const F64: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

/// Containers are pre-sized at most this much; beyond, they grow as items are read.
const PREALLOCATE_AT_MOST: usize = 256;

const TOO_DEEP_TO_WRITE: &str =
    "the session data nests arrays or objects too deeply for bincode (at most 100 levels): flatten it";

/// Writes `record`, without its key `reserved` if given.
pub(super) fn encode_record<E: Encoder>(
    record: &SessionRecord<'_>,
    reserved: Option<&str>,
    encoder: &mut E,
) -> Result<(), EncodeError> {
    encoder.writer().write(&HEADER)?;
    record.id.0.encode(encoder)?;
    record.expiry_date.unix_timestamp_nanos().encode(encoder)?;
    record
        .expiry_date
        .offset()
        .whole_seconds()
        .encode(encoder)?;

    let mut entries: Vec<_> = record
        .data
        .iter()
        .filter(|(key, _)| Some(key.as_str()) != reserved)
        .collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    entries.len().encode(encoder)?;
    for (key, value) in entries {
        key.as_str().encode(encoder)?;
        encode_value(value, 0, encoder)?;
    }
    Ok(())
}

fn encode_value<E: Encoder>(
    value: &Value,
    depth: usize,
    encoder: &mut E,
) -> Result<(), EncodeError> {
    match value {
        Value::Null => NULL.encode(encoder),
        Value::Bool(false) => FALSE.encode(encoder),
        Value::Bool(true) => TRUE.encode(encoder),
        Value::Number(number) => encode_number(number, encoder),
        Value::String(text) => {
            STRING.encode(encoder)?;
            text.as_str().encode(encoder)
        }
        Value::Array(items) => {
            let depth = nest(depth).ok_or(EncodeError::Other(TOO_DEEP_TO_WRITE))?;
            ARRAY.encode(encoder)?;
            items.len().encode(encoder)?;
            items
                .iter()
                .try_for_each(|item| encode_value(item, depth, encoder))
        }
        Value::Object(entries) => {
            let depth = nest(depth).ok_or(EncodeError::Other(TOO_DEEP_TO_WRITE))?;
            OBJECT.encode(encoder)?;
            entries.len().encode(encoder)?;
            entries.iter().try_for_each(|(key, item)| {
                key.as_str().encode(encoder)?;
                encode_value(item, depth, encoder)
            })
        }
    }
}

fn encode_number<E: Encoder>(number: &Number, encoder: &mut E) -> Result<(), EncodeError> {
    if let Some(unsigned) = number.as_u64() {
        U64.encode(encoder)?;
        unsigned.encode(encoder)
    } else if let Some(signed) = number.as_i64() {
        I64.encode(encoder)?;
        signed.encode(encoder)
    } else if let Some(float) = number.as_f64() {
        F64.encode(encoder)?;
        float.encode(encoder)
    } else {
        Err(EncodeError::Other(
            "a number is neither a u64, an i64 nor an f64",
        ))
    }
}

pub(super) fn decode_record<'de, D: BorrowDecoder<'de>>(
    decoder: &mut D,
) -> Result<SessionRecord<'static>, DecodeError> {
    if [u8::decode(decoder)?, u8::decode(decoder)?] != HEADER {
        return Err(DecodeError::Other(
            "the stored bytes are not a bincode session of format 1 (written by another codec?)",
        ));
    }
    let id = SessionId(i128::decode(decoder)?);
    let expiry_date = decode_expiry(decoder)?;

    let len = decode_len(decoder)?;
    let mut data = HashMap::with_capacity(len.min(PREALLOCATE_AT_MOST));
    for _ in 0..len {
        let key = decode_str(decoder)?.to_owned();
        let value = decode_value(decoder, 0)?;
        if data.insert(key, value).is_some() {
            return Err(DecodeError::Other("the stored session has a key twice"));
        }
    }
    Ok(SessionRecord::owned(id, data, expiry_date))
}

fn decode_expiry<'de, D: BorrowDecoder<'de>>(
    decoder: &mut D,
) -> Result<OffsetDateTime, DecodeError> {
    const OUT_OF_RANGE: DecodeError = DecodeError::Other("the stored expiry date is out of range");
    let nanos = i128::decode(decoder)?;
    let offset = i32::decode(decoder)?;
    let offset = UtcOffset::from_whole_seconds(offset).map_err(|_| OUT_OF_RANGE)?;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|utc| utc.checked_to_offset(offset))
        .ok_or(OUT_OF_RANGE)
}

fn decode_value<'de, D: BorrowDecoder<'de>>(
    decoder: &mut D,
    depth: usize,
) -> Result<Value, DecodeError> {
    const TOO_DEEP_TO_READ: DecodeError =
        DecodeError::Other("the stored data nests arrays or objects deeper than bincode writes");
    Ok(match u8::decode(decoder)? {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        U64 => Value::from(u64::decode(decoder)?),
        I64 => Value::from(i64::decode(decoder)?),
        F64 => Number::from_f64(f64::decode(decoder)?)
            .map(Value::Number)
            .ok_or(DecodeError::Other("a stored number is not finite"))?,
        STRING => Value::String(decode_str(decoder)?.to_owned()),
        ARRAY => {
            let depth = nest(depth).ok_or(TOO_DEEP_TO_READ)?;
            let len = decode_len(decoder)?;
            let mut items = Vec::with_capacity(len.min(PREALLOCATE_AT_MOST));
            for _ in 0..len {
                items.push(decode_value(decoder, depth)?);
            }
            Value::Array(items)
        }
        OBJECT => {
            let depth = nest(depth).ok_or(TOO_DEEP_TO_READ)?;
            let len = decode_len(decoder)?;
            let mut entries = Map::new();
            for _ in 0..len {
                let key = decode_str(decoder)?.to_owned();
                let value = decode_value(decoder, depth)?;
                if entries.insert(key, value).is_some() {
                    return Err(DecodeError::Other("a stored object has a key twice"));
                }
            }
            Value::Object(entries)
        }
        _ => return Err(DecodeError::Other("a stored value has an unknown type tag")),
    })
}

/// The depth inside one more array or object, if that is within the limit.
fn nest(depth: usize) -> Option<usize> {
    (depth < BincodeCodec::MAX_DEPTH).then_some(depth + 1)
}

fn decode_len<'de, D: BorrowDecoder<'de>>(decoder: &mut D) -> Result<usize, DecodeError> {
    let len = u64::decode(decoder)?;
    usize::try_from(len).map_err(|_| DecodeError::Other("a stored length is out of range"))
}

fn decode_str<'de, D: BorrowDecoder<'de>>(decoder: &mut D) -> Result<&'de str, DecodeError> {
    <&'de str>::borrow_decode(decoder)
}
