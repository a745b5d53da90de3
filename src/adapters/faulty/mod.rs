//! A [`SessionRepository`] wrapper that injects faults: failures, latency, hangs, on chosen
//! operations and calls, switched on and off at run time through a [`FaultController`].
//!
//! For testing what an application (or the store) does when the database misbehaves in ways
//! hard to produce for real.
//!
//! ```
//! use tower_sessions_seaorm_store::{
//!     testing::{Fault, FaultyRepository, InMemoryRepository},
//!     Id, Operation, RepositoryStore, SessionStore,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let repository = FaultyRepository::new(InMemoryRepository::new());
//! let faults = repository.controller();
//! let store = RepositoryStore::from_repository(repository);
//!
//! faults.inject(Fault::unavailable().on(Operation::Load));
//! assert!(store.load(&Id::default()).await.is_err());
//!
//! faults.clear();
//! assert_eq!(store.load(&Id::default()).await.unwrap(), None);
//! assert_eq!(faults.calls(Operation::Load), 2);
//! # }
//! ```

mod controller;
mod fault;

use std::future::Future;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use controller::FaultController;
pub use fault::{Fault, Operation};

use crate::ports::{FoundRow, RepositoryError, SessionRepository, SessionRow, UserSessionRow};

/// Wraps a repository; each call first goes through the faults active on its
/// [`FaultController`], then (unless a fault failed it) to the inner repository.
///
/// With no fault injected it behaves exactly as the inner repository.
#[derive(Debug)]
pub struct FaultyRepository<R> {
    inner: R,
    controller: FaultController,
}

impl<R: SessionRepository> FaultyRepository<R> {
    /// Wraps `inner`, with no fault active.
    pub fn new(inner: R) -> Self {
        Self::with_controller(inner, FaultController::new())
    }

    /// Wraps `inner`, driven by `controller` (which may drive other repositories too).
    pub fn with_controller(inner: R, controller: FaultController) -> Self {
        Self { inner, controller }
    }

    /// A handle on this repository's faults; keep it before handing the repository to a store.
    pub fn controller(&self) -> FaultController {
        self.controller.clone()
    }

    /// The wrapped repository, reached without any fault.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Runs `inner_call` unless a fault fails the call first; a failed call never reaches the
    /// inner repository.
    async fn call<'a, T, F>(
        &'a self,
        operation: Operation,
        inner_call: impl FnOnce(&'a R) -> F,
    ) -> Result<T, RepositoryError>
    where
        F: Future<Output = Result<T, RepositoryError>>,
    {
        match self.controller.plan(operation).run().await {
            Some(failure) => Err(failure.to_error()),
            None => inner_call(&self.inner).await,
        }
    }
}

#[async_trait]
impl<R: SessionRepository> SessionRepository for FaultyRepository<R> {
    async fn insert_if_absent(&self, row: SessionRow) -> Result<bool, RepositoryError> {
        self.call(Operation::Create, |inner| inner.insert_if_absent(row))
            .await
    }

    async fn update_if_present(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        report_user_change: bool,
    ) -> Result<Option<bool>, RepositoryError> {
        self.call(Operation::Save, |inner| {
            inner.update_if_present(row, expected_version, report_user_change)
        })
        .await
    }

    async fn insert_within_limit(
        &self,
        row: SessionRow,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        self.call(Operation::Create, |inner| {
            inner.insert_within_limit(row, limit, now, born_after, long_born_after)
        })
        .await
    }

    async fn update_within_limit(
        &self,
        row: SessionRow,
        expected_version: Option<i64>,
        limit: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<bool>, RepositoryError> {
        self.call(Operation::Save, |inner| {
            inner.update_within_limit(
                row,
                expected_version,
                limit,
                now,
                born_after,
                long_born_after,
            )
        })
        .await
    }

    async fn find_unexpired(
        &self,
        id: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Option<FoundRow>, RepositoryError> {
        self.call(Operation::Load, |inner| {
            inner.find_unexpired(id, now, born_after, long_born_after)
        })
        .await
    }

    async fn delete_by_id(&self, id: &str) -> Result<(), RepositoryError> {
        self.call(Operation::Delete, |inner| inner.delete_by_id(id))
            .await
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        born_before: Option<OffsetDateTime>,
        long_born_before: Option<OffsetDateTime>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        self.call(Operation::DeleteExpired, |inner| {
            inner.delete_expired_batch(now, born_before, long_born_before, limit)
        })
        .await
    }

    async fn find_unexpired_by_user(
        &self,
        user_key: &str,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<Vec<UserSessionRow>, RepositoryError> {
        self.call(Operation::ListUserSessions, |inner| {
            inner.find_unexpired_by_user(user_key, now, born_after, long_born_after)
        })
        .await
    }

    /// Counted and faulted as [`Operation::DeleteUserSessions`].
    async fn trim_user_sessions(
        &self,
        user_key: &str,
        keep: u64,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        self.call(Operation::DeleteUserSessions, |inner| {
            inner.trim_user_sessions(user_key, keep, now, born_after, long_born_after)
        })
        .await
    }

    async fn delete_by_user<'a>(
        &self,
        user_key: &str,
        except: Option<&'a str>,
    ) -> Result<u64, RepositoryError> {
        self.call(Operation::DeleteUserSessions, |inner| {
            inner.delete_by_user(user_key, except)
        })
        .await
    }

    async fn delete_by_user_and_id(
        &self,
        user_key: &str,
        id: &str,
    ) -> Result<bool, RepositoryError> {
        self.call(Operation::DeleteUserSessions, |inner| {
            inner.delete_by_user_and_id(user_key, id)
        })
        .await
    }

    async fn count_unexpired<'a>(
        &self,
        user_key: Option<&'a str>,
        now: OffsetDateTime,
        born_after: Option<OffsetDateTime>,
        long_born_after: Option<OffsetDateTime>,
    ) -> Result<u64, RepositoryError> {
        self.call(Operation::CountSessions, |inner| {
            inner.count_unexpired(user_key, now, born_after, long_born_after)
        })
        .await
    }

    async fn delete_created_before_batch<'a>(
        &self,
        before: OffsetDateTime,
        user_key: Option<&'a str>,
        limit: u64,
    ) -> Result<(u64, u64), RepositoryError> {
        self.call(Operation::DeleteSessions, |inner| {
            inner.delete_created_before_batch(before, user_key, limit)
        })
        .await
    }
}
