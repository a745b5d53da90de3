//! Codecs: how a session record is laid out in the `data` column.
//!
//! | codec | feature | default | notes |
//! |---|---|---|---|
//! | [`MessagePackCodec`] | `msgpack` | yes | compact; byte-for-byte what `tower-sessions-sqlx-store` writes |
//!
//! Any type implementing [`Codec`](crate::ports::Codec) can be plugged in with
//! `PostgresStore::with_codec`.

#[cfg(feature = "msgpack")]
mod msgpack;

#[cfg(feature = "msgpack")]
pub use msgpack::MessagePackCodec;
