//! What becomes of a connection whose statement was given up: the store's operation timeout
//! drops the repository's future mid-statement, but the server goes on running the statement
//! (a save waiting on a row lock is applied when the lock is released), and the connection stays
//! busy with it: handed to the next operation, that operation would queue behind it.
//!
//! So a client lent to a statement is watched: if the statement's future is dropped before it
//! ends, the client never returns to the pool, and a task sends the server a cancel request for
//! the statement, then closes the connection. The pool opens a fresh connection in its place.

use deadpool_postgres::{Client, ClientWrapper, Object};
use tokio_postgres::{CancelToken, NoTls};

/// A pooled client lent to one statement; see the module docs.
///
/// Normal completion costs nothing beyond moving the client in and out: the cancel token is
/// taken only when the statement is given up.
pub(super) struct Lent {
    client: Option<Client>,
}

impl Lent {
    /// Nothing lent yet.
    pub(super) fn new() -> Self {
        Self { client: None }
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

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            abandon(client);
        }
    }
}

/// Takes `client` out of its pool for good and, on the current Tokio runtime, cancels whatever
/// it still runs on the server and then closes it. Never blocks or panics: it runs in `Drop`.
fn abandon(client: Client) {
    let token = client.cancel_token();
    // Detached: the pool forgets it (and may open another), so no operation ever gets it.
    let client = Object::take(client);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(cancel_then_close(token, client));
        }
        // No runtime to send a cancel on (it is shutting down): dropping the client closes the
        // connection; the statement runs on until it completes or the server notices.
        Err(_) => drop(client),
    }
}

/// Sends the cancel request (on a connection of its own, to the host and port the client was
/// connected to), then closes the client's connection.
async fn cancel_then_close(token: CancelToken, client: ClientWrapper) {
    // Without TLS, as libpq's `PQcancel` sends it: the request carries only the backend's
    // process id and secret key. A pool configured with `sslmode=require` cannot cancel this
    // way: the failure is logged, and the statement runs on.
    if let Err(err) = token.cancel_query(NoTls).await {
        tracing::warn!(
            error = %err,
            "could not cancel a timed-out session statement on the server; it may still take \
             effect (bound it with the role's `lock_timeout` and `statement_timeout`)"
        );
    }
    drop(client);
}
