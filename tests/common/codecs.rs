//! Every codec this build has, for tests that hold for all of them; and a PostgreSQL fixture
//! whose store encodes with a chosen codec.

use serde_json::json;
use time::OffsetDateTime;
#[cfg(feature = "bincode")]
use tower_sessions_seaorm_store::codec::BincodeCodec;
#[cfg(feature = "json")]
use tower_sessions_seaorm_store::codec::JsonCodec;
use tower_sessions_seaorm_store::{
    codec::Codec,
    codec::MessagePackCodec,
    codec::{SessionId, SessionRecord},
    PostgresStore,
};

use super::PgFixture;

/// The codecs under test, by name.
pub fn all() -> Vec<(&'static str, Box<dyn Codec>)> {
    let mut codecs: Vec<(&'static str, Box<dyn Codec>)> =
        vec![("MessagePack", Box::new(MessagePackCodec))];
    #[cfg(feature = "json")]
    codecs.push(("JSON", Box::new(JsonCodec)));
    #[cfg(feature = "bincode")]
    codecs.push(("bincode", Box::new(BincodeCodec)));
    codecs
}

/// A record with one value of every JSON kind, including the numbers that lose their kind or
/// their precision in careless codecs.
pub fn every_kind_of_value(id: SessionId, expiry_date: OffsetDateTime) -> SessionRecord<'static> {
    SessionRecord::owned(
        id,
        [(
            "user".to_owned(),
            json!({
                "id": 42,
                "name": "Ada Lovelace",
                "roles": ["admin", "ops"],
                "score": 0.1,
                "debt": -7,
                "largest": u64::MAX,
                "smallest": i64::MIN,
                "nothing": null,
                "verified": true,
                "empty_list": [],
                "empty_map": {},
                "ключ 🔑": "значение"
            }),
        )]
        .into_iter()
        .collect(),
        expiry_date,
    )
}

/// A session value nesting `depth` arrays: `[[[…[1]…]]]`.
pub fn nested_arrays(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// A migrated store in a schema of its own, encoding with `C`.
pub struct CodecFixture<C: Codec> {
    pub store: PostgresStore<C>,
    base: PgFixture,
}

impl<C: Codec> CodecFixture<C> {
    /// A fresh, migrated store at `DATABASE_URL` encoding with `codec`.
    pub async fn new(codec: C) -> Self {
        let base = PgFixture::new().await;
        Self {
            store: base.store.clone().with_codec(codec),
            base,
        }
    }

    /// The connection the store uses.
    pub fn conn(&self) -> &tower_sessions_seaorm_store::sea_orm::DatabaseConnection {
        &self.base.conn
    }

    /// The schema-qualified, quoted session table.
    pub fn table(&self) -> String {
        self.base.table()
    }

    /// Drops the test's schema.
    pub async fn finish(self) {
        self.base.finish().await;
    }
}

/// A codec of [`all`] as a store's codec type.
pub struct Named {
    name: &'static str,
    codec: Box<dyn Codec>,
}

impl Named {
    pub fn new(name: &'static str, codec: Box<dyn Codec>) -> Self {
        Self { name, codec }
    }
}

impl Codec for Named {
    fn encode(
        &self,
        record: &SessionRecord<'_>,
    ) -> Result<Vec<u8>, tower_sessions_seaorm_store::codec::CodecError> {
        self.codec.encode(record)
    }

    fn decode(
        &self,
        bytes: &[u8],
    ) -> Result<SessionRecord<'static>, tower_sessions_seaorm_store::codec::CodecError> {
        self.codec.decode(bytes)
    }
}

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
