//! What can go wrong, on which calls: the faults a [`FaultController`](super::FaultController)
//! injects.

use std::time::Duration;

use crate::ports::RepositoryError;

pub use crate::domain::Operation;

/// The operations a fault can be aimed at and calls are counted by: the store's own
/// [`Operation`]s, each standing for the repository calls it makes. A health probe is a `Load`;
/// "sign out that device" is a `ListUserSessions`, then a `DeleteUserSessions`.
pub(super) const COUNTED: [Operation; 9] = [
    Operation::Create,
    Operation::Save,
    Operation::Load,
    Operation::Delete,
    Operation::DeleteExpired,
    Operation::ListUserSessions,
    Operation::DeleteUserSessions,
    Operation::CountSessions,
    Operation::DeleteSessions,
];

/// Where `operation`'s calls are counted (`None`: the repository never sees it).
pub(super) fn counter(operation: Operation) -> Option<usize> {
    COUNTED.iter().position(|counted| *counted == operation)
}

/// A fault to inject: what happens ([`unavailable`](Self::unavailable),
/// [`latency`](Self::latency), [`hang`](Self::hang), …), on which operation ([`on`](Self::on);
/// all of them by default), and on which calls ([`on_call`](Self::on_call),
/// [`for_duration`](Self::for_duration); every call until
/// [`clear`](super::FaultController::clear) by default).
///
/// ```
/// use std::time::Duration;
/// use tower_sessions_seaorm_store::{testing::Fault, Operation};
///
/// // The database is down for every load until the test clears the fault.
/// let down = Fault::unavailable().on(Operation::Load);
/// // The third save from now fails, once.
/// let one_bad_save = Fault::statement_error().on(Operation::Save).on_call(3);
/// // Every operation takes 50 ms longer for the next two seconds.
/// let slow = Fault::latency(Duration::from_millis(50)).for_duration(Duration::from_secs(2));
/// # let _ = (down, one_bad_save, slow);
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    pub(super) effect: Effect,
    pub(super) operation: Option<Operation>,
    pub(super) trigger: Trigger,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Effect {
    Fail(Failure),
    Delay(Duration),
    Hang,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    Unavailable,
    MissingTable,
    Statement,
    CorruptRow,
}

impl Failure {
    pub(super) fn to_error(self) -> RepositoryError {
        const WHY: &str = "injected by FaultyRepository";
        match self {
            Failure::Unavailable => RepositoryError::Unavailable(WHY.to_owned()),
            Failure::MissingTable => RepositoryError::MissingTable(WHY.to_owned()),
            Failure::Statement => RepositoryError::Statement(WHY.to_owned()),
            Failure::CorruptRow => RepositoryError::CorruptRow(WHY.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Trigger {
    EveryCall,
    NthCall(u64),
    During(Duration),
}

impl Fault {
    fn new(effect: Effect) -> Self {
        Self {
            effect,
            operation: None,
            trigger: Trigger::EveryCall,
        }
    }

    /// The call fails with [`RepositoryError::Unavailable`], as when the database is down or the
    /// pool has no free connection. The inner repository is not called.
    pub fn unavailable() -> Self {
        Self::new(Effect::Fail(Failure::Unavailable))
    }

    /// The call fails with [`RepositoryError::MissingTable`], as when nobody ran the migration.
    /// The inner repository is not called.
    pub fn missing_table() -> Self {
        Self::new(Effect::Fail(Failure::MissingTable))
    }

    /// The call fails with [`RepositoryError::Statement`], as when the table is missing or a
    /// permission was revoked. The inner repository is not called.
    pub fn statement_error() -> Self {
        Self::new(Effect::Fail(Failure::Statement))
    }

    /// The call fails with [`RepositoryError::CorruptRow`], as when a column has the wrong type.
    /// The inner repository is not called. (For bytes the codec cannot decode, store them with
    /// the inner repository's `insert_if_absent` instead: that is a `Decode` error, not a repository one.)
    pub fn corrupt_row() -> Self {
        Self::new(Effect::Fail(Failure::CorruptRow))
    }

    /// The call waits `delay`, then goes on (to the inner repository, or to an injected failure).
    /// Delays of several matching faults add up.
    pub fn latency(delay: Duration) -> Self {
        Self::new(Effect::Delay(delay))
    }

    /// The call waits until [`FaultController::clear`](super::FaultController::clear), then goes
    /// on: a query that never returns, without a timed test.
    pub fn hang() -> Self {
        Self::new(Effect::Hang)
    }

    /// Only calls of `operation` (by default, calls of every operation).
    pub fn on(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Only the `n`th matching call after the fault is injected (1 is the next one), once.
    /// Replaces [`for_duration`](Self::for_duration).
    pub fn on_call(mut self, n: u64) -> Self {
        self.trigger = Trigger::NthCall(n.max(1));
        self
    }

    /// Every matching call during `duration` after the fault is injected (on Tokio's clock, so a
    /// paused test clock works). Replaces [`on_call`](Self::on_call).
    pub fn for_duration(mut self, duration: Duration) -> Self {
        self.trigger = Trigger::During(duration);
        self
    }

    pub(super) fn applies_to(&self, operation: Operation) -> bool {
        self.operation.is_none_or(|only| only == operation)
    }
}
