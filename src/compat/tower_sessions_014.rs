//! tower-sessions 0.14's `SessionStore` and `ExpiredDeletion` for [`RepositoryStore`], for
//! axum-login 0.18 and the rest of the 0.14 ecosystem (feature `tower-sessions-014`).

use std::fmt::Debug;

use async_trait::async_trait;
use tower_sessions_core_014::{
    session::{Id as Id014, Record as Record014},
    session_store::{self as session_store_014, ExpiredDeletion as ExpiredDeletion014},
    SessionStore as SessionStore014,
};

use crate::{
    domain::{RepositoryStore, SessionError as SeaOrmStoreError, BASE_KEY},
    ports::{Codec, SessionId, SessionRecord, SessionRepository},
};

impl<'a> From<&'a Record014> for SessionRecord<'a> {
    /// Lends the record's data: saving a session copies nothing.
    fn from(record: &'a Record014) -> Self {
        SessionRecord::borrowed(SessionId(record.id.0), &record.data, record.expiry_date)
    }
}

impl From<SessionRecord<'_>> for Record014 {
    fn from(record: SessionRecord<'_>) -> Self {
        Record014 {
            id: Id014(record.id.0),
            data: record.data.into_owned(),
            expiry_date: record.expiry_date,
        }
    }
}

impl From<Id014> for SessionId {
    fn from(id: Id014) -> Self {
        SessionId(id.0)
    }
}

fn to_014_error(err: impl Into<SeaOrmStoreError>) -> session_store_014::Error {
    let err = err.into();
    match err {
        _ if err.is_encode() => session_store_014::Error::Encode(err.to_string()),
        _ if err.is_decode() => session_store_014::Error::Decode(err.to_string()),
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
        // As in 0.15's `create`: the new session starts without the old row's base.
        record.data.remove(BASE_KEY);
        let mut session = SessionRecord::from(&*record);
        self.create_session(&mut session)
            .await
            .map_err(to_014_error)?;
        // A collision moved the session to a fresh id: the caller's record follows.
        record.id = Id014(session.id.0);
        Ok(())
    }

    async fn save(&self, record: &Record014) -> session_store_014::Result<()> {
        self.save_session(&record.into())
            .await
            .map_err(to_014_error)
    }

    async fn load(&self, id: &Id014) -> session_store_014::Result<Option<Record014>> {
        let record = self
            .load_session(SessionId(id.0))
            .await
            .map_err(to_014_error)?;
        Ok(record.map(Record014::from))
    }

    async fn delete(&self, id: &Id014) -> session_store_014::Result<()> {
        self.delete_session(SessionId(id.0))
            .await
            .map_err(to_014_error)
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
