use super::SessionRecord;

/// Turns a [`SessionRecord`] into bytes for the database and back.
///
/// A codec is chosen once per store and used for every row it writes and reads, so its output
/// format is part of the stored data: changing it logs every user out. Implementations must be
/// deterministic about that format across releases.
///
/// # Contract
///
/// - `decode(encode(r)) == r` for every record `r`, including its `expiry_date` to the nanosecond
///   (or a precision the codec documents).
/// - `decode` never panics, whatever the bytes: it returns a [`CodecError`]. Rows can be
///   truncated, corrupted or written by another codec.
/// - Errors never contain session data (values, keys or the session id): they end up in logs.
///
/// # Example
///
/// A codec that wraps another one, here only counting the bytes it sees:
///
/// ```
/// use tower_sessions_seaorm_store::{
///     codec::MessagePackCodec,
///     codec::SessionRecord,
///     codec::{Codec, CodecError},
/// };
///
/// #[derive(Debug, Clone, Default)]
/// struct Measured(MessagePackCodec);
///
/// impl Codec for Measured {
///     fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
///         let bytes = self.0.encode(record)?;
///         tracing::debug!(len = bytes.len(), "encoded a session");
///         Ok(bytes)
///     }
///
///     fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
///         self.0.decode(bytes)
///     }
/// }
/// ```
pub trait Codec: Send + Sync + 'static {
    /// Encodes `record`, its id and expiry included, into the bytes stored in the `data` column.
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError>;

    /// Decodes bytes previously produced by [`Codec::encode`], into a record owning its data.
    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError>;

    /// Encodes `record` for the row stored under `row_key`: what the store calls.
    ///
    /// `row_key` is the row's `id` column: the session id, or the hex SHA-256 of it in a store
    /// built `with_hashed_ids()`. A codec that binds its bytes to their row (an encrypting one,
    /// so that a row copied under another id fails to decode) overrides this and
    /// [`Codec::decode_row`]; the default ignores the key and calls [`Codec::encode`].
    fn encode_row(&self, row_key: &str, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        let _ = row_key;
        self.encode(record)
    }

    /// Decodes the bytes of the row stored under `row_key` (see [`Codec::encode_row`]): what the
    /// store calls. The default ignores the key and calls [`Codec::decode`].
    fn decode_row(
        &self,
        row_key: &str,
        bytes: &[u8],
    ) -> Result<SessionRecord<'static>, CodecError> {
        let _ = row_key;
        self.decode(bytes)
    }

    /// Encodes `record` as [`Codec::encode`] would encode it without its key `reserved`.
    ///
    /// Not part of the API: the store calls [`Codec::encode_row_without`], leaving out the
    /// entry its load adds to a session's values. The default copies the values without that
    /// key; the built-in codecs skip it as they write, saving every save that copy.
    #[doc(hidden)]
    fn encode_without(
        &self,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode(&without(record, reserved))
    }

    /// Encodes `record` as [`Codec::encode_row`] would encode it without its key `reserved`:
    /// what the store calls. Not part of the API (see [`Codec::encode_without`]).
    #[doc(hidden)]
    fn encode_row_without(
        &self,
        row_key: &str,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_row(row_key, &without(record, reserved))
    }
}

/// `record` lending its values when it has no key `reserved`; else a copy of them without it.
fn without<'a>(record: &'a SessionRecord<'_>, reserved: &str) -> SessionRecord<'a> {
    if !record.data.contains_key(reserved) {
        return SessionRecord::borrowed(record.id, &record.data, record.expiry_date);
    }
    let mut data = record.data.as_ref().clone();
    data.remove(reserved);
    SessionRecord::owned(record.id, data, record.expiry_date)
}

/// Why a [`Codec`] could not encode or decode a session.
///
/// Carries the codec's name and a description that, by the [`Codec`] contract, holds no session
/// data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec} codec: {reason}")]
pub struct CodecError {
    codec: &'static str,
    reason: String,
}

impl CodecError {
    /// A new error from codec `codec` (e.g. `"MessagePack"`). `reason` must not contain session
    /// data: describe the kind of failure, not the value that caused it.
    pub fn new(codec: &'static str, reason: impl Into<String>) -> Self {
        Self {
            codec,
            reason: reason.into(),
        }
    }

    /// The name of the codec that failed.
    pub fn codec(&self) -> &'static str {
        self.codec
    }

    /// What went wrong, without session data.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
