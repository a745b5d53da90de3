//! tower-sessions' `CachingSessionStore` with moka in front of each store: load throughput.
//!
//! tower-sessions-moka-store 0.15 is built on tower-sessions-core 0.14, so it can front only the
//! peers; `MokaCache` below is the same store (same moka cache, same per-entry expiry) on
//! tower-sessions-core 0.15, for this crate's stores.

use std::time::{Duration as StdDuration, Instant as StdInstant};

use async_trait::async_trait;
use moka::{future::Cache, Expiry};
use store::{session_store, Id, Record, SessionStore};
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct MokaCache {
    cache: Cache<Id, Record>,
}

impl MokaCache {
    pub fn new(max_capacity: u64) -> Self {
        MokaCache {
            cache: Cache::builder()
                .max_capacity(max_capacity)
                .expire_after(SessionExpiry)
                .build(),
        }
    }
}

#[async_trait]
impl SessionStore for MokaCache {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while self.cache.contains_key(&record.id) {
            record.id = Id::default();
        }
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.cache.get(id).await)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(id).await;
        Ok(())
    }
}

struct SessionExpiry;

fn until(record: &Record) -> StdDuration {
    let now = OffsetDateTime::now_utc();
    if record.expiry_date > now {
        (record.expiry_date - now).unsigned_abs()
    } else {
        StdDuration::default()
    }
}

impl Expiry<Id, Record> for SessionExpiry {
    fn expire_after_create(&self, _: &Id, record: &Record, _: StdInstant) -> Option<StdDuration> {
        Some(until(record))
    }
    fn expire_after_update(
        &self,
        _: &Id,
        record: &Record,
        _: StdInstant,
        _: Option<StdDuration>,
    ) -> Option<StdDuration> {
        Some(until(record))
    }
}
