//! What becomes of a connection whose statement was given up: the store's operation timeout
//! drops the repository's future mid-statement, but the server goes on running the statement
//! (a save waiting on a row lock is applied when the lock is released), and the connection stays
//! busy with it: handed to the next operation, that operation would queue behind it.
//!
//! So a client lent to a statement is watched: if the statement's future is dropped before it
//! ends, the client never returns to the pool, and a task sends the server a cancel request for
//! the statement, then closes the connection. The pool opens a fresh connection in its place.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use deadpool_postgres::{Client, ClientWrapper, Object};
use tokio_postgres::{
    tls::{MakeTlsConnect, TlsConnect},
    CancelToken, NoTls, Socket,
};

/// A pooled client lent to one statement; see the module docs.
///
/// Normal completion costs nothing beyond moving the client in and out: the cancel token is
/// taken, and the connector cloned, only when the statement is given up.
pub(super) struct Lent<'a> {
    client: Option<Client>,
    tls: &'a CancelTls,
}

impl<'a> Lent<'a> {
    /// Nothing lent yet; a statement given up is cancelled through `tls`.
    pub(super) fn new(tls: &'a CancelTls) -> Self {
        Self { client: None, tls }
    }

    /// Lends `client` to the statement about to run.
    pub(super) fn lend(&mut self, client: Client) -> &Client {
        self.client.insert(client)
    }

    /// The statement ended (with a result or an error): the connection is idle again, and goes
    /// back to the pool.
    pub(super) fn returned(mut self) {
        drop(self.client.take());
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            abandon(client, self.tls.clone());
        }
    }
}

/// Takes `client` out of its pool for good and, on the current Tokio runtime, cancels whatever
/// it still runs on the server and then closes it. Never blocks or panics: it runs in `Drop`.
pub(super) fn abandon(client: Client, tls: CancelTls) {
    let token = client.cancel_token();
    // Detached: the pool forgets it (and may open another), so no operation ever gets it.
    let client = Object::take(client);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(cancel_then_close(token, tls, client));
        }
        // No runtime to send a cancel on (it is shutting down): dropping the client closes the
        // connection; the statement runs on until it completes or the server notices.
        Err(_) => drop(client),
    }
}

/// Sends the cancel request (on a connection of its own, to the host and port the client was
/// connected to), then closes the client's connection.
async fn cancel_then_close(token: CancelToken, tls: CancelTls, client: ClientWrapper) {
    if let Err(err) = tls.cancel(token).await {
        tracing::warn!(
            error = %err,
            "could not cancel a timed-out session statement on the server; it may still take \
             effect (a pool with sslmode=require needs `with_cancel_tls`; bound statements with \
             `lock_timeout` and `statement_timeout`)"
        );
    }
    drop(client);
}

type CancelFuture = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// How cancel requests reach the server: without TLS, as libpq's `PQcancel` sends them (a
/// request carries only the backend's process id and secret key), unless given a connector.
/// Without one, a cancel fails on a pool configured with `sslmode=require`.
#[derive(Clone, Default)]
pub(crate) struct CancelTls {
    connector: Option<Arc<dyn Fn(CancelToken) -> CancelFuture + Send + Sync>>,
}

impl CancelTls {
    /// Cancels through `tls`, the connector the pool connects with.
    pub(crate) fn with<T>(tls: T) -> Self
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + Sync,
        T::TlsConnect: Send + Sync,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let connector = move |token: CancelToken| -> CancelFuture {
            let tls = tls.clone();
            Box::pin(async move { token.cancel_query(tls).await })
        };
        Self {
            connector: Some(Arc::new(connector)),
        }
    }

    async fn cancel(self, token: CancelToken) -> Result<(), tokio_postgres::Error> {
        match self.connector {
            Some(connector) => connector(token).await,
            None => token.cancel_query(NoTls).await,
        }
    }
}

impl fmt::Debug for CancelTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.connector {
            Some(_) => "CancelTls(connector)",
            None => "CancelTls(none)",
        })
    }
}
