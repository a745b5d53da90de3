//! The login history's options and reads, on both PostgreSQL stores (`with_login_history`,
//! `user_history`): the table option is the adapter's, the rules the domain's.

use std::time::Duration;

use crate::{
    adapters::sql::{history, SqlDriver},
    domain::{RepositoryStore, SessionError, SessionEvent},
    ports::Codec,
};

/// The checked table with a history, and the retention, for `store`.
pub(crate) fn history_table<R: SqlDriver, C: Codec>(
    store: &RepositoryStore<R, C>,
    table: &crate::adapters::sql::SessionTable,
) -> Result<crate::adapters::sql::SessionTable, SessionError> {
    store.refuse_if_cached("`with_login_history`")?;
    history::checked(
        table,
        store.repository().dialect(),
        store.policy.user_key.is_some(),
    )
}

/// `user`'s newest `limit` history entries.
pub(crate) async fn user_history<R: SqlDriver, C: Codec>(
    store: &RepositoryStore<R, C>,
    user: &str,
    limit: u64,
) -> Result<Vec<SessionEvent>, SessionError> {
    store
        .login_history(user, || history::find(store.repository(), user, limit))
        .await
}

/// The retention set on `store`.
pub(crate) fn with_retention<R: SqlDriver, C: Codec>(
    store: RepositoryStore<R, C>,
    retention: Duration,
) -> RepositoryStore<R, C> {
    store.with_policy(|policy| policy.history_retention = Some(retention))
}
