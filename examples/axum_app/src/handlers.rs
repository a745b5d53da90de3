//! The routes: the visit counter, log in and log out, and the user's devices.
//!
//! State changes are POST forms only, and every GET is safe to repeat. Against cross-site
//! request forgery the cookies are `SameSite=Lax`: a browser sends them with a POST only when
//! the form was on this site, so another site's form cannot log anyone out. (That is enough
//! for an example on modern browsers; an application accepting other content types, or
//! serving sibling subdomains it does not trust, adds a CSRF token.)

use axum::{
    extract::{rejection::FormRejection, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use time::OffsetDateTime;
use tower_sessions::{
    cookie::{Cookie, SameSite},
    session, session_store, Expiry, Session,
};
use tower_sessions_seaorm_store::{SeaOrmStoreError, SessionHandle, UserSession};

use crate::{
    device::Device,
    notices::{micros, Notices},
    pages::{self, DeviceRow, SignInRow},
    Store,
};

/// The session's values. The last three describe the device; the store lists them.
pub const VISITS: &str = "visits";
pub const USER: &str = "user";
pub const DEVICE: &str = "device";
pub const SIGNED_IN_AT: &str = "signed_in_at";
pub const LAST_ACTIVE: &str = "last_active";
/// What the device list shows of each session (see [`device_row`]).
pub const LISTED: [&str; 3] = [DEVICE, SIGNED_IN_AT, LAST_ACTIVE];
/// Until when (microseconds) this device was told of the user's sign-ins elsewhere.
pub const NOTICES_SEEN: &str = "notices_seen";
/// `true` when the user ticked "remember me": the store then keeps the login 30 days, not one.
pub const REMEMBER_ME: &str = "remember_me";
/// How long a session lives unused: the layer's, and a remembered session's.
pub const IDLE: time::Duration = time::Duration::days(7);
const REMEMBERED_IDLE: time::Duration = time::Duration::days(30);

/// How many of the user's recent sign-ins the account page shows.
const RECENT_SIGN_INS: usize = 5;

/// A cookie apart from the session, set at log in and cleared at log out: a request that has
/// it but no logged-in session was signed out elsewhere (or expired), and is told so once.
const WAS_SIGNED_IN: &str = "was_signed_in";

/// How stale `last_active` may be before a request rewrites it. The store skips writing a
/// session whose values did not change (`with_touch_after`), so "active" is kept to the
/// minute rather than rewriting the session on every request.
const ACTIVE_GRANULARITY: i64 = 60;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub secure_cookies: bool,
    /// The sign-ins heard from the store's events.
    pub notices: Notices,
}

/// What a handler can fail with; each is an HTML page with its status.
pub enum Failure {
    BadForm,
    /// The session store is away (database down, timed out): 503, try again.
    Unavailable,
    Internal,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        pages::error(match self {
            Self::BadForm => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        })
    }
}

// The error goes to the operator's log, with its cause; the page says only what happened. The
// store's messages never hold session ids or data.
impl From<session::Error> for Failure {
    fn from(err: session::Error) -> Self {
        tracing::error!(%err, "the session failed");
        match err {
            session::Error::Store(session_store::Error::Backend(_)) => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

impl From<SeaOrmStoreError> for Failure {
    fn from(err: SeaOrmStoreError) -> Self {
        tracing::error!(%err, "the session store failed");
        match err {
            SeaOrmStoreError::Database(_) | SeaOrmStoreError::TimedOut { .. } => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The start page: counts the visit, then the account page or the sign-in page.
pub async fn home(
    State(app): State<App>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let visits = session.get::<u64>(VISITS).await?.unwrap_or(0) + 1;
    session.insert(VISITS, visits).await?;
    let Some(user) = session.get::<String>(USER).await? else {
        let signed_out_elsewhere = has_cookie(&headers, WAS_SIGNED_IN);
        let page = pages::sign_in(visits, signed_out_elsewhere);
        return Ok(if signed_out_elsewhere {
            // Told once: the marker goes.
            ([(header::SET_COOKIE, app.marker(false))], page).into_response()
        } else {
            page.into_response()
        });
    };

    let now = now();
    let active: Option<i64> = session.get(LAST_ACTIVE).await?;
    if active.is_none_or(|at| now - at >= ACTIVE_GRANULARITY) {
        session.insert(LAST_ACTIVE, now).await?;
    }
    let current = session.id().map(|id| app.store.session_handle(id));
    let mut own = serde_json::Map::new();
    for key in LISTED {
        if let Some(value) = session.get_value(key).await? {
            own.insert(key.to_owned(), value);
        }
    }
    let devices: Vec<DeviceRow> = app
        .store
        .user_sessions(&user)
        .await?
        .into_iter()
        .map(|listed| device_row(listed, current.as_ref(), &own))
        .collect();

    // A new device signed in since this one was last told: said once.
    let this = current.as_ref().map(|handle| handle.as_str());
    let seen: Option<i64> = session.get(NOTICES_SEEN).await?;
    let notices = match seen {
        Some(seen) => app.notices.since(&user, seen, this),
        None => Vec::new(),
    };
    let told = notices.iter().map(|notice| notice.at).max();
    if seen.is_none() || told.is_some() {
        let until = told.unwrap_or_else(|| micros(OffsetDateTime::now_utc()));
        session.insert(NOTICES_SEEN, until).await?;
    }
    let notices: Vec<SignInRow> = notices
        .into_iter()
        .map(|notice| SignInRow {
            device: notice.device,
            at: notice.at / 1_000_000,
            this_device: false,
        })
        .collect();
    let recent = recent_sign_ins(&app.store, &user, this).await?;
    Ok(pages::account(&user, visits, &devices, &notices, &recent, now).into_response())
}

/// The user's newest sign-ins, from the store's login history.
async fn recent_sign_ins(
    store: &Store,
    user: &str,
    this: Option<&str>,
) -> Result<Vec<SignInRow>, Failure> {
    // Each sign-in has at most one ending and a sign-out beside it: four times as many
    // entries hold the newest sign-ins.
    let entries = store.user_history(user, 4 * RECENT_SIGN_INS as u64).await?;
    Ok(entries
        .into_iter()
        .filter(|entry| entry.kind == "signed_in")
        .take(RECENT_SIGN_INS)
        .map(|entry| SignInRow {
            device: entry
                .listed
                .get(DEVICE)
                .and_then(|device| device.as_str())
                .map(str::to_owned),
            at: entry.at.unix_timestamp(),
            this_device: Some(entry.handle.as_str()) == this,
        })
        .collect())
}

/// How one listed session is shown. The only place that reads a `UserSession`.
///
/// The store lists each session's `LISTED` values as they were at its last write; this
/// device's own are taken from `own`, its session now, which this request may just have
/// changed. A session that holds none of them (say, from before the store listed values) is
/// shown with the times the store keeps itself.
fn device_row(
    listed: UserSession,
    current: Option<&SessionHandle>,
    own: &serde_json::Map<String, serde_json::Value>,
) -> DeviceRow {
    let this_device = Some(&listed.handle) == current;
    let values = if this_device { own } else { &listed.listed };
    let unix = |key: &str, kept: OffsetDateTime| {
        values
            .get(key)
            .and_then(|v| v.as_i64())
            .unwrap_or(kept.unix_timestamp())
    };
    DeviceRow {
        this_device,
        handle: listed.handle.to_string(),
        device: values
            .get(DEVICE)
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        signed_in_at: unix(SIGNED_IN_AT, listed.created_at),
        last_active: unix(LAST_ACTIVE, listed.last_active),
    }
}

#[derive(Deserialize)]
pub struct Login {
    name: String,
    /// The checkbox: sent (as "on") only when ticked.
    remember_me: Option<String>,
}

/// Logs in as `name`, and records the device. The session id changes, so an id planted
/// before the login (session fixation) is worthless after it.
pub async fn login(
    State(app): State<App>,
    session: Session,
    headers: HeaderMap,
    form: Result<Form<Login>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.map_err(|_| Failure::BadForm)?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(Failure::BadForm);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let now = now();
    session.cycle_id().await?;
    session.insert(USER, name).await?;
    session
        .insert(DEVICE, Device::from_user_agent(user_agent).to_string())
        .await?;
    session.insert(SIGNED_IN_AT, now).await?;
    session.insert(LAST_ACTIVE, now).await?;
    session
        .insert(NOTICES_SEEN, micros(OffsetDateTime::now_utc()))
        .await?;
    // The server writes the mark; nothing the browser sends later can set it.
    if form.remember_me.is_some() {
        session.insert(REMEMBER_ME, true).await?;
        session.set_expiry(Some(Expiry::OnInactivity(REMEMBERED_IDLE)));
    }
    Ok(([(header::SET_COOKIE, app.marker(true))], Redirect::to("/")).into_response())
}

/// Logs out, keeping the visit count, under a new session id.
pub async fn logout(State(app): State<App>, session: Session) -> Result<Response, Failure> {
    for key in [
        USER,
        DEVICE,
        SIGNED_IN_AT,
        LAST_ACTIVE,
        NOTICES_SEEN,
        REMEMBER_ME,
    ] {
        session.remove_value(key).await?;
    }
    session.set_expiry(Some(Expiry::OnInactivity(IDLE)));
    session.cycle_id().await?;
    Ok(([(header::SET_COOKIE, app.marker(false))], Redirect::to("/")).into_response())
}

#[derive(Deserialize)]
pub struct SignOut {
    handle: String,
}

/// Signs one of the user's devices out: another one by its handle, or this one (a log out).
pub async fn sign_out_device(
    State(app): State<App>,
    session: Session,
    form: Result<Form<SignOut>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.map_err(|_| Failure::BadForm)?;
    let handle = SessionHandle::new(form.handle);
    // Handles are 32 hex digits; anything else did not come from the page.
    if handle.as_str().len() != 32 || !handle.as_str().bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::BadForm);
    }
    let Some(user) = session.get::<String>(USER).await? else {
        // Signed out meanwhile: the start page says so.
        return Ok(Redirect::to("/").into_response());
    };
    if session.id().map(|id| app.store.session_handle(id)) == Some(handle.clone()) {
        return logout(State(app), session).await;
    }
    // `false` when it was gone already: the list is refreshed either way.
    app.store.delete_user_session(&user, &handle).await?;
    Ok(Redirect::to("/").into_response())
}

/// Ends every other session of the logged-in user (the per-user index), keeping this one.
pub async fn logout_others(State(app): State<App>, session: Session) -> Result<Redirect, Failure> {
    if let (Some(user), Some(current)) = (session.get::<String>(USER).await?, session.id()) {
        app.store
            .delete_user_sessions_except(&user, current)
            .await?;
    }
    Ok(Redirect::to("/"))
}

pub async fn not_found() -> Response {
    pages::error(StatusCode::NOT_FOUND)
}

impl App {
    /// The "was signed in" marker: set, or cleared. It outlives the session (30 days against
    /// 7 days of inactivity), so an expired session is explained too.
    fn marker(&self, set: bool) -> String {
        let mut cookie = Cookie::build((WAS_SIGNED_IN, "1"))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .max_age(time::Duration::days(if set { 30 } else { 0 }))
            .build();
        if !set {
            cookie.set_value("");
        }
        cookie.to_string()
    }
}

fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .any(|cookie| cookie.is_ok_and(|cookie| cookie.name() == name))
}
