//! A codec of your own, plugged in through the builder: `Signed` wraps another codec and appends
//! an HMAC-SHA256 tag, so a row changed by anyone without the key fails to load. A codec that
//! compresses or encrypts has the same shape: transform the inner codec's bytes on the way out,
//! undo it on the way in, and never put session data in an error.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example custom_codec
//! ```
//!
//! `tests/custom_codec_example.rs` runs it against the test database.

use std::{error::Error, fmt};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::JsonCodec,
    codec::SessionRecord,
    codec::{Codec, CodecError},
    sea_orm::{ConnectionTrait, Database},
    session_store, Id, PostgresStore, Record, SessionStore,
};

/// Any codec's bytes, followed by their HMAC-SHA256 under a secret key.
#[derive(Clone)]
pub struct Signed<C> {
    inner: C,
    mac: Hmac<Sha256>,
}

const TAG_LEN: usize = 32;

impl<C: Codec> Signed<C> {
    /// Signs what `inner` writes with `key` (use 32 random bytes, kept out of the database).
    pub fn new(inner: C, key: &[u8]) -> Self {
        let mac = Hmac::new_from_slice(key).expect("HMAC takes keys of any length");
        Self { inner, mac }
    }
}

impl<C: Codec> Codec for Signed<C> {
    fn encode(&self, record: &SessionRecord<'_>) -> Result<Vec<u8>, CodecError> {
        let mut bytes = self.inner.encode(record)?;
        let tag = self
            .mac
            .clone()
            .chain_update(&bytes)
            .finalize()
            .into_bytes();
        bytes.extend_from_slice(&tag);
        Ok(bytes)
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionRecord<'static>, CodecError> {
        let Some(split) = bytes.len().checked_sub(TAG_LEN) else {
            return Err(CodecError::new(
                "signed",
                "the stored row is too short to be signed",
            ));
        };
        let (payload, tag) = bytes.split_at(split);
        self.mac
            .clone()
            .chain_update(payload)
            .verify_slice(tag)
            .map_err(|_| {
                CodecError::new(
                    "signed",
                    "the stored session's signature does not match: changed outside the \
                     application, or signed with another key",
                )
            })?;
        self.inner.decode(payload)
    }
}

// Never print the key.
impl<C: fmt::Debug> fmt::Debug for Signed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Stores a session with the signing codec, reads it back, then shows that a row changed in the
/// database no longer loads. Works in a schema of its own and drops it afterwards.
pub async fn run(database_url: &str) -> Result<(), Box<dyn Error>> {
    let conn = Database::connect(database_url).await?;
    let schema = format!("custom_codec_{:016x}", Id::default().0 as u64);
    let key = b"an example key: use 32 random bytes from your secrets";
    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)?
        .with_codec(Signed::new(JsonCodec, key));
    store.migrate().await?;

    let mut record = Record {
        id: Id::default(),
        data: [(
            "user".to_owned(),
            serde_json::json!({ "name": "Ada", "admin": false }),
        )]
        .into(),
        expiry_date: OffsetDateTime::now_utc() + Duration::days(1),
    };
    store.create(&mut record).await?;
    let loaded = store
        .load(&record.id)
        .await?
        .expect("the session was stored");
    // `load` adds the base a save merges from (docs/concurrent-requests.md): compare values.
    assert_eq!(loaded.data["user"], record.data["user"]);
    println!("stored and loaded a signed session");

    // Someone with database access makes themselves admin.
    conn.execute_unprepared(&format!(
        "UPDATE \"{schema}\".\"session\" \
         SET data = overlay(data placing 'true '::bytea from position('false'::bytea in data) for 5)"
    ))
    .await?;
    let tampered = store.load(&record.id).await;
    assert!(
        matches!(tampered, Err(session_store::Error::Decode(_))),
        "{tampered:?}"
    );
    println!("a changed row fails to load: {}", tampered.unwrap_err());

    // Another key cannot read the session either.
    let other_key = store
        .clone()
        .with_codec(Signed::new(JsonCodec, b"another key"));
    store.save(&record).await?;
    assert!(matches!(
        other_key.load(&record.id).await,
        Err(session_store::Error::Decode(_))
    ));

    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await?;
    conn.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    run(&url).await
}
