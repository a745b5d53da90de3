//! The keys of [`Encrypted`](super::Encrypted): one primary key that encrypts, older keys that
//! still decrypt, each named by an id stored in the row.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::ports::CodecError;

/// The keys an [`Encrypted`](super::Encrypted) codec works with: a **primary** key, which
/// encrypts every row written, and any number of **old** keys, which only decrypt. Each key has
/// an id, written in clear into every row it encrypts, so a row names the key it needs.
///
/// Rotating a key logs nobody out: make the new key primary and keep the old one in the ring;
/// each row is re-encrypted under the new key at its next save (write avoidance included), and
/// once every row written under the old key has been saved again or has expired, drop it. See
/// the codecs guide (`docs/codecs.md`) for the steps.
///
/// Keys are 32 random bytes (`openssl rand -base64 32`), kept out of the database. The ring
/// wipes them from memory when it is dropped ([`ZeroizeOnDrop`]); its `Debug` shows key ids
/// only.
///
/// ```
/// use tower_sessions_seaorm_store::codec::KeyRing;
///
/// # fn main() -> Result<(), tower_sessions_seaorm_store::codec::CodecError> {
/// // Key 2 encrypts; rows written under key 1 still decrypt.
/// let keys = KeyRing::from_base64(2, "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")?
///     .with_old_key_base64(1, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")?;
/// assert_eq!(keys.primary_id(), 2);
/// assert_eq!(format!("{keys:?}"), "KeyRing { primary: 2, old: [1] }");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeyRing {
    /// The primary key first, then the old keys in the order they were added.
    keys: Vec<RingKey>,
}

/// One key of the ring, ready to use: the AEAD, which zeroizes its copy of the key on drop.
#[derive(Clone)]
pub(super) struct RingKey {
    pub(super) id: u32,
    pub(super) cipher: XChaCha20Poly1305,
}

impl RingKey {
    fn new(id: u32, key: &[u8; 32]) -> Self {
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&(*key).into()),
        }
    }
}

impl KeyRing {
    /// A ring whose primary key is `key`, named `id`.
    ///
    /// The ring keeps its own copies of the key (wiped on drop); wipe yours if it matters.
    pub fn new(id: u32, key: [u8; 32]) -> Self {
        Self {
            keys: vec![RingKey::new(id, &key)],
        }
    }

    /// A ring whose primary key, named `id`, is `key_base64`: 32 bytes in standard base64 (what
    /// `openssl rand -base64 32` prints). Fails when it is not base64 or not 32 bytes.
    pub fn from_base64(id: u32, key_base64: &str) -> Result<Self, CodecError> {
        let key = decode_key(key_base64)?;
        Ok(Self {
            keys: vec![RingKey::new(id, &key)],
        })
    }

    /// The same ring, also decrypting rows written under the old key `key`, named `id`. Fails
    /// when the ring already has a key with that id: an id names one key for good.
    pub fn with_old_key(self, id: u32, key: [u8; 32]) -> Result<Self, CodecError> {
        self.with_old(id, &key)
    }

    /// [`with_old_key`](Self::with_old_key) with the key in standard base64.
    pub fn with_old_key_base64(self, id: u32, key_base64: &str) -> Result<Self, CodecError> {
        self.with_old(id, &*decode_key(key_base64)?)
    }

    fn with_old(mut self, id: u32, key: &[u8; 32]) -> Result<Self, CodecError> {
        if self.key(id).is_some() {
            return Err(CodecError::new(
                super::encrypted::NAME,
                format!(
                    "the key ring already has a key with id {id}; give every key its own id, \
                     and never reuse one"
                ),
            ));
        }
        // Not `push`: a vector that grows moves its keys into a new buffer and frees the old
        // one with the keys still in it. Copies go into a buffer of the final size, and the old
        // keys are dropped, which wipes them (`tests/key_ring_wipes.rs`).
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        keys.extend(self.keys.iter().cloned());
        keys.push(RingKey::new(id, key));
        self.keys = keys;
        Ok(self)
    }

    /// The id of the primary key, which encrypts every row written.
    pub fn primary_id(&self) -> u32 {
        self.primary().id
    }

    /// The ids of every key, the primary's first.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.iter().map(|key| key.id)
    }

    pub(super) fn primary(&self) -> &RingKey {
        &self.keys[0]
    }

    pub(super) fn key(&self, id: u32) -> Option<&RingKey> {
        self.keys.iter().find(|key| key.id == id)
    }
}

fn decode_key(key_base64: &str) -> Result<Zeroizing<[u8; 32]>, CodecError> {
    let invalid = || {
        CodecError::new(
            super::encrypted::NAME,
            "an encryption key must be 32 bytes in standard base64 (44 characters, as \
             `openssl rand -base64 32` prints)",
        )
    };
    let bytes = Zeroizing::new(STANDARD.decode(key_base64.trim()).map_err(|_| invalid())?);
    let mut key = Zeroizing::new([0; 32]);
    if bytes.len() != key.len() {
        return Err(invalid());
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Every key's copies are wiped on drop, by `chacha20poly1305`'s `zeroize` feature.
impl ZeroizeOnDrop for KeyRing {}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old: Vec<u32> = self.key_ids().skip(1).collect();
        f.debug_struct("KeyRing")
            .field("primary", &self.primary_id())
            .field("old", &old)
            .finish()
    }
}
