//! tower-sessions 0.14's `SessionStore` and `ExpiredDeletion` for [`RepositoryStore`], for
//! axum-login 0.18 and the rest of the 0.14 ecosystem (feature `tower-sessions-014`).

use std::fmt::Debug;

use async_trait::async_trait;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core_014::{
    session::{Id as Id014, Record as Record014},
    session_store::{self as session_store_014, ExpiredDeletion as ExpiredDeletion014},
    SessionStore as SessionStore014,
};

use crate::{
    ports::{Codec, SessionRepository},
    RepositoryStore, SeaOrmStoreError,
};

/// 0.14's record as the store's: the same fields, so the same encoded bytes.
fn to_current(record: &Record014) -> Record {
    Record {
        id: Id(record.id.0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    }
}

fn to_014(record: Record) -> Record014 {
    Record014 {
        id: Id014(record.id.0),
        data: record.data,
        expiry_date: record.expiry_date,
    }
}

fn to_014_error(err: impl Into<SeaOrmStoreError>) -> session_store_014::Error {
    let err = err.into();
    match err {
        SeaOrmStoreError::Encode(_) | SeaOrmStoreError::TooLarge { .. } => {
            session_store_014::Error::Encode(err.to_string())
        }
        SeaOrmStoreError::Decode(_) => session_store_014::Error::Decode(err.to_string()),
        _ => session_store_014::Error::Backend(err.to_string()),
    }
}

/// The same store for tower-sessions 0.14: `SessionManagerLayer::new(store)` of tower-sessions
/// 0.14 (and axum-login 0.18) accepts it as it is.
#[async_trait]
impl<R, C> SessionStore014 for RepositoryStore<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    async fn create(&self, record: &mut Record014) -> session_store_014::Result<()> {
        let mut current = to_current(record);
        self.service()
            .create(&mut current)
            .await
            .map_err(to_014_error)?;
        // A collision moved the session to a fresh id: the caller's record follows.
        record.id = Id014(current.id.0);
        Ok(())
    }

    async fn save(&self, record: &Record014) -> session_store_014::Result<()> {
        self.service()
            .save(&to_current(record))
            .await
            .map_err(to_014_error)
    }

    async fn load(&self, id: &Id014) -> session_store_014::Result<Option<Record014>> {
        let record = self.service().load(&Id(id.0)).await.map_err(to_014_error)?;
        Ok(record.map(to_014))
    }

    async fn delete(&self, id: &Id014) -> session_store_014::Result<()> {
        self.service().delete(&Id(id.0)).await.map_err(to_014_error)
    }
}

#[async_trait]
impl<R, C> ExpiredDeletion014 for RepositoryStore<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    async fn delete_expired(&self) -> session_store_014::Result<()> {
        self.delete_expired_sessions()
            .await
            .map(drop)
            .map_err(to_014_error)
    }
}
