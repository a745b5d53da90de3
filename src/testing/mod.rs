//! Testing your application's session behaviour without a database.
//!
//! Build the store your application's `SessionManagerLayer` uses with
//! [`RepositoryStore::from_repository`](crate::RepositoryStore::from_repository) over one of
//! these repositories, and drive the application with `tower::ServiceExt::oneshot`:
//!
//! | repository | for |
//! |---|---|
//! | [`InMemoryRepository`] | the happy path: log in, then read the session back with the cookie. It has exactly the SQL repositories' semantics (the same behavioural suite runs on it). |
//! | [`FaultyRepository`] | the database misbehaving: wrap any repository, then make calls fail (every call, the `n`th, for a while), slow or hang, per operation, through a [`FaultController`] — also while requests are in flight. |
//! | `MockSessionRepository` | exact expectations per call with [mockall](https://docs.rs/mockall): what was written, how often, and any answer, corrupt bytes included. |
//!
//! ```
//! use axum::{body::Body, http::{header, Request, StatusCode}, routing::get, Router};
//! use tower::ServiceExt;
//! use tower_sessions::{Session, SessionManagerLayer};
//! use tower_sessions_seaorm_store::{
//!     testing::{Fault, FaultyRepository, InMemoryRepository}, Operation,
//!     RepositoryStore,
//! };
//!
//! async fn visits(session: Session) -> Result<String, StatusCode> {
//!     // The application's choice: when sessions cannot be read, answer 503.
//!     let seen: u32 = session
//!         .get("visits")
//!         .await
//!         .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
//!         .unwrap_or(0);
//!     session
//!         .insert("visits", seen + 1)
//!         .await
//!         .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
//!     Ok((seen + 1).to_string())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let repository = FaultyRepository::new(InMemoryRepository::new());
//! let database = repository.controller();
//! let layer = SessionManagerLayer::new(RepositoryStore::from_repository(repository));
//! let app = Router::new().route("/", get(visits)).layer(layer);
//!
//! let first = app.clone().oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().unwrap().to_owned();
//!
//! database.inject(Fault::unavailable().on(Operation::Load));
//! let request = Request::get("/").header(header::COOKIE, cookie).body(Body::empty())?;
//! let second = app.oneshot(request).await?;
//! assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
//! # Ok(()) }
//! ```
//!
//! # What the application sees when the store fails
//!
//! tower-sessions 0.15 reaches the store at two moments, and they fail differently:
//!
//! - **Loading is lazy, inside the handler.** The layer does not load the session; the
//!   handler's first `session.get`, `insert`, `remove`… does, and a load failure comes back from
//!   that call as `Err(tower_sessions::session::Error::Store(_))` (a
//!   [`session_store::Error::Backend`](crate::session_store::Error::Backend) when the database
//!   failed, [`Decode`](crate::session_store::Error::Decode) when the row is corrupt). **The
//!   application chooses the response.** `session.delete()`, `flush()` and `cycle_id()` also reach
//!   the store from the handler, and return its errors there.
//! - **Saving happens in the layer, after the handler**, when the session was modified and the
//!   handler's response is not a 5xx. If the store's `create` or `save` fails, the layer
//!   **replaces the handler's response with an empty `500 Internal Server Error`**, without a
//!   session cookie; the handler never knows. To choose that response yourself, call
//!   `session.save().await` in the handler and handle its error there.
//!
//! A handler that itself answers with a 5xx is never followed by a save. A repository that
//! hangs ([`Fault::hang`]) fails at the store's operation timeout (5 s by default,
//! [`with_operation_timeout`](crate::RepositoryStore::with_operation_timeout)) with a `Backend`
//! error, like any other database failure; a test with a paused Tokio clock
//! (`#[tokio::test(start_paused = true)]`) gets there at once.
//!
//! # With the mock
//!
//! `MockSessionRepository` (in `[dev-dependencies]`: `tower-sessions-seaorm-store = { version = "0.3", features = ["testing"] }`)
//! has mockall expectations per repository call; see its
//! documentation for a handler test where the database fails.

mod clock;
mod contract;

pub use clock::ManualClock;
pub use contract::check_repository_contract;

pub use crate::adapters::{
    faulty::{Fault, FaultController, FaultyRepository},
    memory::InMemoryRepository,
};

/// The [mockall](https://docs.rs/mockall) mock of
/// [`SessionRepository`](crate::repository::SessionRepository): set an expectation
/// per call, with `expect_insert_if_absent`, `expect_update_if_present`, `expect_find_unexpired`,
/// `expect_delete_by_id` and `expect_delete_expired_batch`. A call nobody expected panics, so a
/// test also proves what the application did *not* do.
///
/// A handler test where the database is down, with no database at all:
///
/// ```
/// use axum::{body::Body, http::{header, Request, StatusCode}, routing::get, Router};
/// use tower::ServiceExt;
/// use tower_sessions::{Session, SessionManagerLayer};
/// use tower_sessions_seaorm_store::{
///     repository::RepositoryError, testing::MockSessionRepository, Id, RepositoryStore,
/// };
///
/// async fn whoami(session: Session) -> Result<String, StatusCode> {
///     match session.get::<u64>("user_id").await {
///         Ok(Some(user_id)) => Ok(format!("user {user_id}")),
///         Ok(None) => Err(StatusCode::UNAUTHORIZED),
///         // The application's choice when sessions cannot be read.
///         Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut repository = MockSessionRepository::new();
/// repository
///     .expect_find_unexpired()
///     .times(1)
///     .returning(|_, _, _, _| Err(RepositoryError::Unavailable("connection refused".into())));
/// let layer = SessionManagerLayer::new(RepositoryStore::from_repository(repository));
/// let app = Router::new().route("/whoami", get(whoami)).layer(layer);
///
/// let request = Request::get("/whoami")
///     .header(header::COOKIE, format!("id={}", Id::default()))
///     .body(Body::empty())?;
/// let response = app.oneshot(request).await?;
///
/// assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
/// # Ok(()) }
/// ```
#[cfg(feature = "testing")]
pub use crate::ports::MockSessionRepository;
