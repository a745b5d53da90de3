//! The HTML: one stylesheet, the account page, the sign-in page, and the error pages.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
};

use crate::device::relative_time;

/// Small and plain: a centred column of cards, system fonts, one accent colour.
const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;
 background:#f3f4f6;color:#111827}
main{max-width:38rem;margin:0 auto;padding:2.5rem 1rem}
header{display:flex;justify-content:space-between;align-items:baseline;margin-bottom:1.25rem}
h1{font-size:1.5rem;margin:0}
h2{font-size:1.05rem;margin:0 0 .75rem}
.muted{color:#6b7280;font-size:.9rem}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:.75rem;padding:1.25rem 1.5rem;
 margin-bottom:1rem;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.notice{background:#fffbeb;border-color:#fcd34d;color:#78350f}
ul.devices{list-style:none;margin:0;padding:0}
ul.devices li{display:flex;justify-content:space-between;align-items:center;gap:1rem;
 padding:.75rem 0;border-top:1px solid #f3f4f6}
ul.devices li:first-child{border-top:0;padding-top:0}
.device{font-weight:600}
.badge{display:inline-block;margin-left:.5rem;padding:0 .5rem;border-radius:999px;
 background:#dcfce7;color:#166534;font-size:.75rem;font-weight:600;vertical-align:middle}
form{margin:0}
.row{display:flex;gap:.5rem}
input{flex:1;font:inherit;padding:.5rem .75rem;border:1px solid #d1d5db;border-radius:.5rem}
button{font:inherit;padding:.5rem 1rem;border-radius:.5rem;border:1px solid #2563eb;
 background:#2563eb;color:#fff;cursor:pointer;white-space:nowrap}
button.quiet{background:#fff;color:#374151;border-color:#d1d5db}
button.danger{background:#fff;color:#b91c1c;border-color:#fca5a5}
button:hover{filter:brightness(.95)}
.actions{margin-top:1rem;display:flex;justify-content:flex-end}
a{color:#2563eb}
";

/// A whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>"
    )
}

/// One of the user's sessions, as the account page shows it.
pub struct DeviceRow {
    /// The store's handle: safe to show and to send back, unlike a session id.
    pub handle: String,
    /// "Firefox on Linux"; `None` for a session that did not record it.
    pub device: Option<String>,
    /// Unix seconds.
    pub signed_in_at: i64,
    /// Unix seconds.
    pub last_active: i64,
    pub this_device: bool,
}

/// A sign-in, as a notice or the recent sign-ins show it.
pub struct SignInRow {
    /// "Firefox on Linux"; `None` for a session that did not record it.
    pub device: Option<String>,
    /// Unix seconds.
    pub at: i64,
    pub this_device: bool,
}

/// The signed-in page: who, the visit counter, new sign-ins elsewhere, the user's devices and
/// recent sign-ins (from the store's login history).
pub fn account(
    name: &str,
    visits: u64,
    devices: &[DeviceRow],
    notices: &[SignInRow],
    recent: &[SignInRow],
    now: i64,
) -> Html<String> {
    let rows: String = devices.iter().map(|row| device_row(row, now)).collect();
    // Offered only when there is something to log out.
    let others = if devices.iter().any(|row| !row.this_device) {
        "<form class=\"actions\" method=\"post\" action=\"/logout-others\">\
         <button class=\"danger\">Log out my other devices</button></form>"
    } else {
        ""
    };
    let body = format!(
        "<header><h1>Your account</h1><span class=\"muted\">Visits: {visits}</span></header>\
         <section class=\"card\"><div class=\"row\" style=\"justify-content:space-between;align-items:center\">\
         <div>Logged in as <strong>{name}</strong></div>\
         <form method=\"post\" action=\"/logout\"><button class=\"quiet\">Log out</button></form>\
         </div></section>\
         {notices}\
         <section class=\"card\"><h2>Your devices ({count})</h2><ul class=\"devices\">{rows}</ul>{others}</section>\
         <section class=\"card\"><h2>Recent sign-ins</h2><ul class=\"devices recent\">{recent}</ul></section>",
        name = escape(name),
        count = devices.len(),
        notices = notices
            .iter()
            .map(|notice| format!(
                "<section class=\"card notice\" role=\"status\">New sign-in to your account: \
                 <strong>{}</strong>, {}. Not you? Sign that device out below.</section>",
                escape(notice.device.as_deref().unwrap_or("an unknown device")),
                relative_time(notice.at, now),
            ))
            .collect::<String>(),
        recent = recent
            .iter()
            .map(|row| sign_in_row(row, now))
            .collect::<String>(),
    );
    Html(page("Your account", &body))
}

fn device_row(row: &DeviceRow, now: i64) -> String {
    let name = row.device.as_deref().unwrap_or("Unknown device");
    let badge = if row.this_device {
        "<span class=\"badge\">This device</span>"
    } else {
        ""
    };
    let details = format!(
        "Signed in {} · active {}",
        relative_time(row.signed_in_at, now),
        relative_time(row.last_active, now)
    );
    format!(
        "<li><div><div class=\"device\">{name}{badge}</div><div class=\"muted\">{details}</div></div>\
         <form method=\"post\" action=\"/devices/sign-out\">\
         <input type=\"hidden\" name=\"handle\" value=\"{handle}\">\
         <button class=\"quiet\">Sign out</button></form></li>",
        name = escape(name),
        handle = escape(&row.handle),
    )
}

fn sign_in_row(row: &SignInRow, now: i64) -> String {
    let badge = if row.this_device {
        "<span class=\"badge\">This device</span>"
    } else {
        ""
    };
    format!(
        "<li class=\"sign-in\"><div><div class=\"device\">{name}{badge}</div>\
         <div class=\"muted\">Signed in {when}</div></div></li>",
        name = escape(row.device.as_deref().unwrap_or("Unknown device")),
        when = relative_time(row.at, now),
    )
}

/// The signed-out page: the visit counter, the log-in form, and the notice after a remote
/// sign-out.
pub fn sign_in(visits: u64, signed_out_elsewhere: bool) -> Html<String> {
    let notice = if signed_out_elsewhere {
        "<section class=\"card notice\" role=\"status\">You were signed out on this device from \
         another device, or your session expired. Log in again to continue.</section>"
    } else {
        ""
    };
    let body = format!(
        "<header><h1>Sign in</h1><span class=\"muted\">Visits: {visits}</span></header>{notice}\
         <section class=\"card\"><p style=\"margin-top:0\">Not logged in</p>\
         <form class=\"row\" method=\"post\" action=\"/login\">\
         <input name=\"name\" placeholder=\"Your name\" aria-label=\"Your name\" required maxlength=\"64\" autofocus>\
         <label><input type=\"checkbox\" name=\"remember_me\"> Remember me</label>\
         <button>Log in</button></form></section>"
    );
    Html(page("Sign in", &body))
}

/// An HTML error page for `status`. It says what happened in words, never the error itself
/// (which could name a table, a host or worse); the handlers log that on stderr.
pub fn error(status: StatusCode) -> Response {
    let (title, text) = match status {
        StatusCode::BAD_REQUEST => (
            "That did not work",
            "The form was not filled in as expected. Go back and try again.",
        ),
        StatusCode::NOT_FOUND => ("Page not found", "There is nothing at this address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not allowed here",
            "This address does not take that kind of request.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "Back in a moment",
            "Sessions are unavailable right now. Try again in a little while.",
        ),
        status if status.is_client_error() => {
            ("That did not work", "The request could not be handled.")
        }
        _ => (
            "Something went wrong",
            "That was our fault, not yours. Try again in a little while.",
        ),
    };
    let body = format!(
        "<header><h1>{title}</h1><span class=\"muted\">{code}</span></header>\
         <section class=\"card\"><p style=\"margin-top:0\">{text}</p><a href=\"/\">Back to the start page</a></section>",
        code = status.as_u16(),
    );
    (status, Html(page(title, &body))).into_response()
}

/// Gives every error response an HTML page: axum's own (405 from the router, rejections) and
/// the session layer's (a bodiless 500 when saving fails) arrive as plain text or empty.
pub async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return response;
    }
    let allow: Option<HeaderValue> = response.headers().get(header::ALLOW).cloned();
    let mut page = error(status);
    if let Some(allow) = allow {
        page.headers_mut().insert(header::ALLOW, allow);
    }
    page
}

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
