//! A store operation as it runs: within the policy's time-out, in its span.
//!
//! [`Run`] is the one future that does both, around the operation's own work. It is written
//! out rather than as an `async` block around `tokio::time::timeout` and `Instrument`: each such
//! layer holds the work it was given beside the future it builds from it, so every layer held
//! one more copy of the operation's state, and each was copied as it moved in (a save's future
//! was about 3,900 bytes, copied several times at every save).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tracing::Span;

use super::{store::Outcome, Operation, SessionError};

pin_project! {
    /// `work`, failed with [`SessionError::TimedOut`] once it has run for `limit`, and traced
    /// in `span` (entered at each poll) when a subscriber wants it: `outcome` and
    /// `duration_us` are recorded as it ends.
    pub(crate) struct Run<F> {
        #[pin]
        work: Bounded<F>,
        operation: Operation,
        traced: Option<(Span, Instant)>,
    }
}

pin_project! {
    #[project = BoundedProjection]
    enum Bounded<F> {
        Unlimited { #[pin] work: F },
        Limited { #[pin] work: Timeout<F>, limit: Duration },
    }
}

impl<F> Run<F> {
    /// `work` as `operation`, bounded by `limit` (none: unbounded) and traced in `span` unless
    /// no subscriber wants it: its enter and exit would cost every operation for nothing.
    /// (tracing's `log` fallback, for applications with a logger and no subscriber, then gets
    /// no span lines: its enter and exit cost every operation about 1,500 instructions.)
    pub(crate) fn new(operation: Operation, work: F, limit: Option<Duration>, span: Span) -> Self
    where
        F: Future,
    {
        let work = match limit {
            Some(limit) => Bounded::Limited {
                work: tokio::time::timeout(limit, work),
                limit,
            },
            None => Bounded::Unlimited { work },
        };
        let traced = (!span.is_disabled()).then(|| (span, Instant::now()));
        Self {
            work,
            operation,
            traced,
        }
    }
}

impl<F, T> Future for Run<F>
where
    F: Future<Output = Result<T, SessionError>>,
    T: Outcome,
{
    type Output = Result<T, SessionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let entered = this.traced.as_ref().map(|(span, _)| span.enter());
        let result = match this.work.project() {
            BoundedProjection::Unlimited { work } => std::task::ready!(work.poll(cx)),
            BoundedProjection::Limited { work, limit } => match std::task::ready!(work.poll(cx)) {
                Ok(result) => result,
                Err(_elapsed) => Err(SessionError::TimedOut {
                    operation: *this.operation,
                    after: *limit,
                }),
            },
        };
        drop(entered);
        if let Some((span, started)) = this.traced.take() {
            span.record("duration_us", started.elapsed().as_micros() as u64);
            span.record(
                "outcome",
                match &result {
                    Ok(value) => value.outcome(),
                    Err(err) => err.outcome(),
                },
            );
        }
        Poll::Ready(result)
    }
}
