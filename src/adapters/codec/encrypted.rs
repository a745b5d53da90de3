//! `Encrypted<C>`: another codec's bytes under XChaCha20-Poly1305, bound to their row.

use std::fmt;

use chacha20poly1305::{AeadInOut, Tag, XNonce};
use rand::{rngs::OsRng, TryRngCore};
use zeroize::Zeroizing;

use super::KeyRing;
use crate::{
    ports::SessionRecord,
    ports::{Codec, CodecError},
};

/// The codec name in errors.
pub(super) const NAME: &str = "encrypted";

/// The format version this release writes and reads.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
/// The version byte and the key id: authenticated with the row key, not encrypted.
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes an encrypted row takes beyond the inner codec's.
const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Encryption at rest: the bytes of the codec `C`, encrypted with XChaCha20-Poly1305 under the
/// primary key of a [`KeyRing`], and bound to the row they are stored in.
///
/// ```
/// use tower_sessions_seaorm_store::codec::{Encrypted, KeyRing, MessagePackCodec};
/// # fn store(conn: tower_sessions_seaorm_store::sea_orm::DatabaseConnection)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// // The key from the environment, never from the database: `openssl rand -base64 32`.
/// let key = std::env::var("SESSION_KEY")?;
/// let keys = KeyRing::from_base64(1, &key)?;
/// let store = tower_sessions_seaorm_store::PostgresStore::new(conn)
///     .with_codec(Encrypted::new(MessagePackCodec, keys));
/// # Ok(())
/// # }
/// ```
///
/// # What it protects
///
/// The `data` column: the session's values and expiry, as the inner codec encodes them.
///
/// - **Confidentiality**: a leaked table or backup shows them to no one without a key.
/// - **Integrity, per row**: a row whose bytes were changed or truncated, or that was written
///   under another key of the same id, fails to load with a `Decode` error.
/// - **No move to another row**: a ciphertext copied under another session's id fails to load
///   the same way (the row key is authenticated with it).
///
/// # What it does not protect
///
/// **A row rolled back to an earlier version of itself.** Someone who can write the table can
/// put back a ciphertext this row held before (the session as it was before a demotion, say
/// `role: admin`): it authenticates and loads, since it is a ciphertext this key wrote for this
/// row; so does a deleted row put back under its own id. Nothing stored in the same table can
/// tell an earlier version from the latest against someone who can write every column: keep
/// what can be revoked out of the session, and check it against tables of your own (a role, a
/// per-user "sessions valid after" instant). Nor can it prevent **deletion**: a deleted row is
/// a logged-out session.
///
/// The other columns stay in clear, since the database queries them: the row key (the session
/// id, or its SHA-256 with `with_hashed_ids()`, which a leaked table should hold instead), the
/// expiry, and the per-user index's user key. Ciphertexts are about as long as their
/// plaintexts, so a row's length tells roughly how much its session holds.
///
/// # Wire format
///
/// | bytes | what |
/// |---|---|
/// | 0 | the format version: `1` |
/// | 1..5 | the key id, a big-endian `u32` |
/// | 5..29 | the nonce: 24 bytes from the operating system's random source |
/// | 29.. | the inner codec's bytes, encrypted, then the 16-byte Poly1305 tag |
///
/// The associated data is bytes 0..5 followed by the row key (the `id` column, UTF-8), so a
/// ciphertext decrypts only in its own row, under the key id it names. A row is 45 bytes
/// longer than the inner codec's (a typical 378-byte MessagePack session becomes 423).
/// Nonces are 24 random bytes, which never repeat in practice (after 2⁴⁸ writes under one
/// key, the chance that any two share a nonce is about 2⁻⁹⁷): why XChaCha20, not ChaCha20's 12
/// bytes, with which random nonces are safe for only about 2³² writes.
///
/// # Only through the store
///
/// The row key is part of every ciphertext, so [`Codec::encode`] and [`Codec::decode`], which
/// are not given one, fail with an error saying so; the store calls [`Codec::encode_row`] and
/// [`Codec::decode_row`].
#[derive(Clone)]
pub struct Encrypted<C> {
    inner: C,
    keys: KeyRing,
}

impl<C: Codec> Encrypted<C> {
    /// Encrypts what `inner` writes with the primary key of `keys`; decrypts rows written under
    /// any key of `keys`.
    pub fn new(inner: C, keys: KeyRing) -> Self {
        Self { inner, keys }
    }

    /// The codec whose bytes are encrypted.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// `plaintext` encrypted under the primary key, for the row stored under `row_key`.
    fn seal(&self, row_key: &str, plaintext: Zeroizing<Vec<u8>>) -> Result<Vec<u8>, CodecError> {
        let key = self.keys.primary();
        let mut nonce = [0; NONCE_LEN];
        OsRng.try_fill_bytes(&mut nonce).map_err(|_| {
            CodecError::new(
                NAME,
                "the operating system's random source failed, so no nonce could be drawn",
            )
        })?;

        let mut row = Vec::with_capacity(plaintext.len() + OVERHEAD);
        row.push(VERSION);
        row.extend_from_slice(&key.id.to_be_bytes());
        row.extend_from_slice(&nonce);
        row.extend_from_slice(&plaintext);
        let aad = associated_data(&row[..HEADER_LEN], row_key);
        let (prefix, message) = row.split_at_mut(HEADER_LEN + NONCE_LEN);
        let nonce = XNonce::try_from(&prefix[HEADER_LEN..]).expect("the nonce is 24 bytes");
        let tag = key
            .cipher
            .encrypt_inout_detached(&nonce, &aad, message.into())
            .map_err(|_| CodecError::new(NAME, "the session is too large to encrypt"))?;
        row.extend_from_slice(&tag);
        Ok(row)
    }
}

impl<C: Codec> Codec for Encrypted<C> {
    fn encode(&self, _record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        Err(needs_row_key())
    }

    fn decode(&self, _bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        Err(needs_row_key())
    }

    fn encode_row(&self, row_key: &str, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        self.seal(row_key, Zeroizing::new(self.inner.encode(record)?))
    }

    fn encode_row_without(
        &self,
        row_key: &str,
        record: &SessionRecord<'_>,
        reserved: &str,
    ) -> Result<Vec<u8>, CodecError> {
        self.seal(
            row_key,
            Zeroizing::new(self.inner.encode_without(record, reserved)?),
        )
    }

    fn decode_row(
        &self,
        row_key: &str,
        bytes: &[u8],
    ) -> Result<SessionRecord<'static>, CodecError> {
        if bytes.len() < OVERHEAD {
            return Err(CodecError::new(
                NAME,
                "the stored row is too short to be an encrypted session: truncated, or written \
                 by another codec",
            ));
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        if header[0] != VERSION {
            return Err(CodecError::new(
                NAME,
                format!(
                    "the stored row has format version {}, and this release reads version \
                     {VERSION}: written by a newer release, or by another codec",
                    header[0]
                ),
            ));
        }
        let key_id = u32::from_be_bytes(header[1..].try_into().expect("a 4-byte key id"));
        let Some(key) = self.keys.key(key_id) else {
            return Err(CodecError::new(
                NAME,
                format!(
                    "the stored row was encrypted with key id {key_id}, which is not in the key \
                     ring: add that key back as an old key, or the row was written elsewhere"
                ),
            ));
        };
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).expect("the nonce is 24 bytes");
        let tag = Tag::try_from(tag).expect("the tag is 16 bytes");
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        key.cipher
            .decrypt_inout_detached(
                &nonce,
                &associated_data(header, row_key),
                plaintext.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| {
                // The tag proves that these bytes are a ciphertext this key wrote for this row,
                // not that they are the latest one: claim no more.
                CodecError::new(
                    NAME,
                    format!(
                        "the stored row does not authenticate under key id {key_id} for this \
                         row: it is not a ciphertext that key wrote for this row (its bytes \
                         were altered, it was written for another row, or by another key given \
                         the same id)"
                    ),
                )
            })?;
        self.inner.decode(&plaintext)
    }
}

/// The header (version and key id) followed by the row key.
fn associated_data(header: &[u8], row_key: &str) -> Vec<u8> {
    [header, row_key.as_bytes()].concat()
}

fn needs_row_key() -> CodecError {
    CodecError::new(
        NAME,
        "encrypted rows are bound to their row key: use `encode_row` and `decode_row` (the \
         store does), not `encode` and `decode`",
    )
}

impl<C: fmt::Debug> fmt::Debug for Encrypted<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encrypted")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .finish()
    }
}

#[cfg(all(test, feature = "msgpack"))]
mod tests;
