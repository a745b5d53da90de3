//! tower-sessions 0.15's `SessionStore` and `ExpiredDeletion` for [`RepositoryStore`]: the
//! default driving adapter.

use std::fmt::Debug;

use async_trait::async_trait;
use tower_sessions_core::{
    session::{Id, Record},
    session_store, ExpiredDeletion, SessionStore,
};

use crate::{
    domain::{RepositoryStore, BASE_KEY},
    ports::{Codec, SessionId, SessionRecord, SessionRepository},
};

impl<'a> From<&'a Record> for SessionRecord<'a> {
    /// Lends the record's data: saving a session copies nothing.
    fn from(record: &'a Record) -> Self {
        SessionRecord::borrowed(SessionId(record.id.0), &record.data, record.expiry_date)
    }
}

impl From<SessionRecord<'_>> for Record {
    fn from(record: SessionRecord<'_>) -> Self {
        Record {
            id: Id(record.id.0),
            data: record.data.into_owned(),
            expiry_date: record.expiry_date,
        }
    }
}

impl From<Id> for SessionId {
    fn from(id: Id) -> Self {
        SessionId(id.0)
    }
}

impl From<SessionId> for Id {
    fn from(id: SessionId) -> Self {
        Id(id.0)
    }
}

#[async_trait]
impl<R, C> SessionStore for RepositoryStore<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // After `cycle_id` the record still holds the old row's base: the new session starts
        // without one, so a later save of it in this request writes it whole.
        record.data.remove(BASE_KEY);
        let mut session = SessionRecord::from(&*record);
        self.create_session(&mut session).await?;
        // A collision moved the session to a fresh id: the caller's record follows.
        record.id = session.id.into();
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        Ok(self.save_session(&record.into()).await?)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = self.load_session((*id).into()).await?;
        Ok(record.map(Record::from))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        Ok(self.delete_session((*id).into()).await?)
    }
}

#[async_trait]
impl<R, C> ExpiredDeletion for RepositoryStore<R, C>
where
    R: SessionRepository + Debug,
    C: Codec + Debug,
{
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.delete_expired_sessions().await?;
        Ok(())
    }
}
