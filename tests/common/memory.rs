//! A store over the in-memory repository, for the behavioural suite and handler tests.

use tower_sessions_seaorm_store::{
    codec::MessagePackCodec, testing::InMemoryRepository, RepositoryStore,
};

/// The store type of the in-memory fixture.
pub type MemoryStore = RepositoryStore<InMemoryRepository, MessagePackCodec>;

/// A store over a fresh, empty in-memory repository: isolated by construction.
pub struct MemoryFixture {
    pub store: MemoryStore,
}

impl MemoryFixture {
    pub async fn new() -> Self {
        Self {
            store: RepositoryStore::from_repository(InMemoryRepository::new()),
        }
    }

    /// Nothing to drop: the sessions go with the store. Async for `behaviour_suite!`.
    pub async fn finish(self) {}
}
