//! Driving adapters: tower-sessions' traits on [`RepositoryStore`](crate::RepositoryStore).
//!
//! The domain owns its record type ([`SessionRecord`](crate::codec::SessionRecord)); each
//! tower-sessions version converts its own `Record` and `Id` at the edge, lending the session
//! data rather than copying it, and calls the same store. The `SessionStore` and
//! `ExpiredDeletion` traits and the `Record`/`Id` shapes did not change between 0.14 and 0.15
//! (only the `rand` dependency moved), so one macro writes both adapters.

/// tower-sessions' `SessionStore` and `ExpiredDeletion` for [`RepositoryStore`], and the
/// conversions of its `Record`, `Id` and error, for the tower-sessions core crate `$core`.
macro_rules! tower_sessions_adapter {
    ($core:ident) => {
        use std::fmt::Debug;

        use async_trait::async_trait;
        use $core::{
            session::{Id, Record},
            session_store, ExpiredDeletion, SessionStore,
        };

        use crate::{
            domain::{RepositoryStore, BASE_KEY},
            ports::{Codec, SessionId, SessionRecord, SessionRepository},
            SeaOrmStoreError,
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

        impl From<SeaOrmStoreError> for session_store::Error {
            fn from(err: SeaOrmStoreError) -> Self {
                use SeaOrmStoreError as E;
                match err {
                    // The session could not be turned into a row, and nothing was written.
                    E::Encode(_)
                    | E::TooLarge { .. }
                    | E::UserKeyTooLong { .. }
                    | E::Unstorable(_) => Self::Encode(err.to_string()),
                    // A stored row is not a session this store returns.
                    E::Decode(_) | E::Unreadable(_) => Self::Decode(err.to_string()),
                    _ => Self::Backend(err.to_string()),
                }
            }
        }

        #[async_trait]
        impl<R, C> SessionStore for RepositoryStore<R, C>
        where
            R: SessionRepository + Debug,
            C: Codec + Debug,
        {
            async fn create(&self, record: &mut Record) -> session_store::Result<()> {
                // After `cycle_id` the record still holds the old row's base: the new session
                // starts without one, so a later save of it in this request writes it whole.
                record.data.remove(BASE_KEY);
                let mut session = SessionRecord::from(&*record);
                self.create_session(&mut session).await?;
                // A collision moved the session to a fresh id: the caller's record follows.
                record.id = Id(session.id.0);
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
    };
}

/// tower-sessions 0.15's: the default driving adapter.
mod tower_sessions_015 {
    tower_sessions_adapter!(tower_sessions_core);

    impl From<SessionId> for Id {
        fn from(id: SessionId) -> Self {
            Id(id.0)
        }
    }
}

/// tower-sessions 0.14's, for axum-login 0.18 and the rest of the 0.14 ecosystem (feature
/// `tower-sessions-014`): `SessionManagerLayer::new(store)` of tower-sessions 0.14 accepts the
/// same store as it is.
#[cfg(feature = "tower-sessions-014")]
mod tower_sessions_014 {
    tower_sessions_adapter!(tower_sessions_core_014);
}
