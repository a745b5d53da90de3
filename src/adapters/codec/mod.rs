//! Codecs: how a session record is laid out in the `data` column.
//!
//! | codec | feature | default | notes |
//! |---|---|---|---|
//! | `MessagePackCodec` | `msgpack` | yes (the store's default) | compact; byte-for-byte what `tower-sessions-sqlx-store` writes |
//! | `JsonCodec` | `json` | yes | readable in `psql`; 1.3–2.2 times MessagePack's size |
//! | `BincodeCodec` | `bincode` | no | about MessagePack's size, quicker to decode; bincode 2.0 (unmaintained upstream), in a format of this crate's own |
//! | `Encrypted<C>` | `encryption` | no | wraps another codec: its bytes encrypted (XChaCha20-Poly1305) under a rotating `KeyRing`, bound to their row |
//!
//! Each codec's output is pinned by golden-bytes tests: a release never silently changes what is
//! stored (which would log every user out). A row written by one codec fails to decode with
//! another (a `Decode` error), so choose the codec before the first session is stored.
//!
//! Any type implementing [`Codec`] can be plugged in with
//! `PostgresStore::with_codec`, for example one that wraps a codec above to compress, encrypt
//! or sign its bytes (see `examples/custom_codec.rs`).

#[cfg(feature = "bincode")]
mod bincode;
#[cfg(feature = "bincode")]
mod bincode_wire;
#[cfg(feature = "encryption")]
mod encrypted;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "encryption")]
mod key_ring;
#[cfg(feature = "msgpack")]
mod msgpack;

#[cfg(feature = "bincode")]
#[cfg_attr(docsrs, doc(cfg(feature = "bincode")))]
pub use self::bincode::BincodeCodec;
#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub use self::{encrypted::Encrypted, key_ring::KeyRing};
pub use crate::ports::{Codec, CodecError, SessionId, SessionRecord};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use json::JsonCodec;
#[cfg(feature = "msgpack")]
#[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
pub use msgpack::MessagePackCodec;
