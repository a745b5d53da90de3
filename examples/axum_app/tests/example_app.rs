//! The example, built and run as a process on a free port with a temporary SQLite file,
//! driven over real HTTP: the visit counter, log in and log out (each cycling the session id),
//! the cookies' attributes, the user's devices (listed, signed out one by one or all but this
//! one, and told so on their next visit), the HTML error pages, and a session that survives a
//! restart of the app. The example's User-Agent and relative-time functions are tested here
//! too, from their file.

mod common;

#[path = "../src/device.rs"]
mod device;

use std::time::Duration;

use common::{binary, file_url, remove_db_files, temp_db_path, Browser, RunningApp};
use device::{relative_time, Browser as Family, Device, Os};
use hyper::{Method, StatusCode};
use tower_sessions_seaorm_store::sea_orm::{ConnectionTrait, Database};

const FIREFOX_ON_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI_ON_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
     AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const NOTICE: &str = "You were signed out on this device from another device";

/// Deletes the SQLite file even when the test fails.
struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        remove_db_files(&self.0);
    }
}

/// The example running on a database of its own.
struct Example {
    app: RunningApp,
    db: TempDb,
}

impl Example {
    fn start() -> Self {
        let db = TempDb(temp_db_path());
        let app = RunningApp::start(&binary(), &db.0);
        Self { app, db }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base_url)
    }

    /// Logs `browser` in as `name` and returns the account page.
    async fn log_in(&self, browser: &mut Browser, name: &str) -> String {
        let login = browser
            .post_form(&self.url("/login"), &format!("name={name}"))
            .await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
        browser.get(&self.url("/")).await.body
    }
}

/// The listed devices of an account page: (handle, row's HTML), in page order.
fn device_rows(page: &str) -> Vec<(String, String)> {
    page.split("<li>")
        .skip(1)
        .map(|row| {
            let handle = row
                .split("name=\"handle\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("each row has a sign-out form with its handle");
            (
                handle.to_owned(),
                row.split("</li>").next().unwrap().to_owned(),
            )
        })
        .collect()
}

fn other_device(page: &str) -> String {
    let others: Vec<_> = device_rows(page)
        .into_iter()
        .filter(|(_, row)| !row.contains("This device"))
        .collect();
    let [(handle, _)] = others.as_slice() else {
        panic!("one other device: {page}");
    };
    handle.clone()
}

#[tokio::test]
async fn the_example_counts_visits_logs_in_and_out_and_survives_a_restart() {
    let binary = binary();
    let db = TempDb(temp_db_path());
    let app = RunningApp::start(&binary, &db.0);
    let mut browser = Browser::new();
    let home = format!("{}/", app.base_url);

    // The first visit starts a session; the cookie has the attributes the example sets.
    let first = browser.get(&home).await;
    assert!(first.body.contains("Visits: 1"), "{}", first.body);
    assert!(first.body.contains("Not logged in"), "{}", first.body);
    let [cookie] = first.set_cookies.as_slice() else {
        panic!("one session cookie, got {:?}", first.set_cookies);
    };
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(
            cookie.split(';').any(|a| a.trim() == attribute),
            "{attribute} in {cookie}"
        );
    }
    let anonymous_id = browser.session_id().expect("the session cookie");

    assert!(browser.get(&home).await.body.contains("Visits: 2"));

    // Logging in cycles the id: the old one no longer finds the session.
    let login = browser
        .post_form(&format!("{}/login", app.base_url), "name=Ada+%3Cb%3E")
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let marker = login
        .set_cookies
        .iter()
        .find(|c| c.starts_with("was_signed_in="))
        .expect("log in sets the was-signed-in marker");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(marker.split(';').any(|a| a.trim() == attribute), "{marker}");
    }
    let logged_in_id = browser.session_id().expect("a cookie after log in");
    assert_ne!(
        logged_in_id, anonymous_id,
        "log in must change the session id"
    );
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 3"), "{page}");
    assert!(
        page.contains("Logged in as <strong>Ada &lt;b&gt;</strong>"),
        "{page}"
    );

    let mut stale = Browser::new();
    stale.cookies.insert("id".to_owned(), anonymous_id);
    let page = stale.get(&home).await.body;
    assert!(
        page.contains("Visits: 1") && page.contains("Not logged in"),
        "{page}"
    );

    // Kill the app and start it again on the same file: the session is still there.
    app.kill();
    let app = RunningApp::start(&binary, &db.0);
    let home = format!("{}/", app.base_url);
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 4"), "{page}");
    assert!(
        page.contains("Logged in as <strong>Ada &lt;b&gt;</strong>"),
        "{page}"
    );

    // Logging out cycles the id again, keeps the count, and clears the marker: no notice.
    let logout = browser
        .post_form(&format!("{}/logout", app.base_url), "")
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert_ne!(browser.session_id(), Some(logged_in_id));
    assert!(!browser.cookies.contains_key("was_signed_in"));
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 5"), "{page}");
    assert!(page.contains("Not logged in"), "{page}");
    assert!(!page.contains(NOTICE), "{page}");
    app.kill();
}

/// "Remember me" marks the session long-lived in the store (the handler writes the mark) and
/// gives it a 30-day idle timeout; a login without it stays short.
#[tokio::test]
async fn remember_me_makes_a_long_lived_session_and_a_30_day_cookie() {
    let example = Example::start();
    let mut remembered = Browser::new();
    let page = remembered.get(&example.url("/")).await;
    assert!(page.body.contains("name=\"remember_me\""), "{}", page.body);
    let login = remembered
        .post_form(&example.url("/login"), "name=Ada&remember_me=on")
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let max_age = |cookies: &[String]| {
        cookies
            .iter()
            .filter(|cookie| cookie.starts_with("id="))
            .flat_map(|cookie| cookie.split(';'))
            .find_map(|attribute| attribute.trim().strip_prefix("Max-Age=").map(str::to_owned))
    };
    assert_eq!(max_age(&login.set_cookies).as_deref(), Some("2592000"));
    let mut plain = Browser::new();
    plain.get(&example.url("/")).await;
    let login = plain.post_form(&example.url("/login"), "name=Grace").await;
    assert_eq!(max_age(&login.set_cookies).as_deref(), Some("604800"));

    let conn = Database::connect(file_url(&example.db.0)).await.unwrap();
    for (user, marked) in [("Ada", 1), ("Grace", 0)] {
        let row = conn
            .query_one_raw(
                tower_sessions_seaorm_store::sea_orm::Statement::from_string(
                    conn.get_database_backend(),
                    format!("SELECT long_lived FROM session WHERE user_key = '{user}'"),
                ),
            )
            .await
            .unwrap()
            .expect("the user's session");
        assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), marked, "{user}");
    }
}

#[tokio::test]
async fn each_device_is_listed_as_a_person_recognises_it() {
    let example = Example::start();
    let mut laptop = Browser::with_user_agent(FIREFOX_ON_LINUX);
    let page = example.log_in(&mut laptop, "Ada").await;

    // One device: listed, marked, and nothing to log out elsewhere.
    assert!(page.contains("Your devices (1)"), "{page}");
    let [(_, row)] = device_rows(&page).try_into().expect("one device");
    assert!(row.contains("Firefox on Linux"), "{row}");
    assert!(row.contains("This device"), "{row}");
    assert!(
        row.contains("Signed in just now · active just now"),
        "{row}"
    );
    assert!(!page.contains("Log out my other devices"), "{page}");

    // A second device of the same user: both listed, each page marking its own.
    let mut phone = Browser::with_user_agent(SAFARI_ON_IOS);
    let page = example.log_in(&mut phone, "Ada").await;
    assert!(page.contains("Your devices (2)"), "{page}");
    let marked = device_rows(&page)
        .into_iter()
        .filter(|(_, row)| row.contains("This device"))
        .count();
    assert_eq!(marked, 1, "{page}");
    assert!(page.contains("Log out my other devices"), "{page}");
    // Each row from the store's list: this device, and the laptop by its listed values.
    let rows = device_rows(&page);
    let this = rows.iter().find(|(_, row)| row.contains("This device"));
    assert!(this.unwrap().1.contains("Safari on iOS"), "{page}");
    let other = rows.iter().find(|(_, row)| !row.contains("This device"));
    let other = &other.unwrap().1;
    assert!(other.contains("Firefox on Linux"), "{other}");
    assert!(
        other.contains("Signed in just now · active just now"),
        "{other}"
    );
    // The laptop lists the phone the same way.
    let page = laptop.get(&example.url("/")).await.body;
    let rows = device_rows(&page);
    let other = rows.iter().find(|(_, row)| !row.contains("This device"));
    assert!(other.unwrap().1.contains("Safari on iOS"), "{page}");

    // Another user sees only their own.
    let mut other = Browser::new();
    let page = example.log_in(&mut other, "Grace").await;
    assert!(page.contains("Your devices (1)"), "{page}");
    assert!(page.contains("Unknown device"), "no User-Agent: {page}");
}

#[tokio::test]
async fn a_device_signed_out_from_another_is_told_so_once() {
    let example = Example::start();
    let mut laptop = Browser::with_user_agent(FIREFOX_ON_LINUX);
    example.log_in(&mut laptop, "Ada").await;
    let mut phone = Browser::with_user_agent(SAFARI_ON_IOS);
    let page = example.log_in(&mut phone, "Ada").await;

    // The phone signs the laptop out by the laptop's handle.
    let signed_out = phone
        .post_form(
            &example.url("/devices/sign-out"),
            &format!("handle={}", other_device(&page)),
        )
        .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    let page = phone.get(&example.url("/")).await.body;
    assert!(page.contains("Your devices (1)"), "{page}");
    assert!(!page.contains("Log out my other devices"), "{page}");

    // The laptop is logged out, and told why, once.
    let reply = laptop.get(&example.url("/")).await;
    assert!(reply.body.contains("Not logged in"), "{}", reply.body);
    assert!(reply.body.contains(NOTICE), "{}", reply.body);
    assert!(
        !laptop.cookies.contains_key("was_signed_in"),
        "{:?}",
        reply.set_cookies
    );
    let page = laptop.get(&example.url("/")).await.body;
    assert!(!page.contains(NOTICE), "{page}");

    // "Log out my other devices" does the same to every other device.
    example.log_in(&mut laptop, "Ada").await;
    let mut tablet = Browser::new();
    example.log_in(&mut tablet, "Ada").await;
    let ended = phone.post_form(&example.url("/logout-others"), "").await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert!(phone
        .get(&example.url("/"))
        .await
        .body
        .contains("Your devices (1)"));
    for device in [&mut laptop, &mut tablet] {
        let page = device.get(&example.url("/")).await.body;
        assert!(page.contains(NOTICE), "{page}");
    }
}

#[tokio::test]
async fn signing_out_this_device_is_a_log_out() {
    let example = Example::start();
    let mut laptop = Browser::with_user_agent(FIREFOX_ON_LINUX);
    let page = example.log_in(&mut laptop, "Ada").await;
    let [(handle, _)] = device_rows(&page).try_into().expect("one device");
    let id = laptop.session_id();

    let reply = laptop
        .post_form(
            &example.url("/devices/sign-out"),
            &format!("handle={handle}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_ne!(laptop.session_id(), id, "a log out cycles the id");
    assert!(!laptop.cookies.contains_key("was_signed_in"));
    let page = laptop.get(&example.url("/")).await.body;
    assert!(page.contains("Not logged in"), "{page}");
    assert!(
        !page.contains(NOTICE),
        "one's own log out needs no notice: {page}"
    );
}

#[tokio::test]
async fn errors_are_html_pages_with_their_status_and_nothing_internal() {
    let example = Example::start();
    let mut browser = Browser::new();
    let page = example.log_in(&mut browser, "Ada").await;
    let session_id = browser.session_id().unwrap();
    let [(handle, _)] = device_rows(&page).try_into().expect("one device");

    let cases = [
        (Method::GET, "/no/such/page", None, StatusCode::NOT_FOUND),
        (Method::GET, "/login", None, StatusCode::METHOD_NOT_ALLOWED),
        (Method::DELETE, "/", None, StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::POST,
            "/login",
            Some("nom=Ada"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/login",
            Some("name=+"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/devices/sign-out",
            Some("handle=../x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/devices/sign-out",
            Some(""),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, form, status) in cases {
        let what = format!("{method} {path} {form:?}");
        let reply = browser
            .send(method, &example.url(path), form.map(str::to_owned))
            .await;
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        assert!(
            reply.content_type.starts_with("text/html"),
            "{what}: {}",
            reply.content_type
        );
        assert!(reply.body.contains("<h1>"), "{what}: {}", reply.body);
    }
    let reply = browser.get(&example.url("/login")).await;
    assert!(reply.body.contains("Not allowed here"), "{}", reply.body);
    // None of them cost the session.
    assert!(browser
        .get(&example.url("/"))
        .await
        .body
        .contains("Logged in as"));

    // The session table goes away: a 503 page that names no table, error or id, and the
    // app recovers when the table is back.
    let conn = Database::connect(file_url(&example.db.0)).await.unwrap();
    let rename = |from: &str, to: &str| format!("ALTER TABLE \"{from}\" RENAME TO \"{to}\"");
    conn.execute_unprepared(&rename("session", "session_away"))
        .await
        .unwrap();
    for (method, path, form) in [
        (Method::GET, "/", None),
        (Method::POST, "/logout-others", Some(String::new())),
        (
            Method::POST,
            "/devices/sign-out",
            Some(format!("handle={handle}")),
        ),
    ] {
        let reply = browser.send(method, &example.url(path), form).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.body
        );
        assert!(
            reply.content_type.starts_with("text/html"),
            "{}",
            reply.content_type
        );
        assert!(reply.body.contains("Back in a moment"), "{}", reply.body);
        for secret in [
            "session_away",
            "no such table",
            "error",
            &session_id,
            &handle,
        ] {
            assert!(!reply.body.contains(secret), "{secret} in {}", reply.body);
        }
    }
    conn.execute_unprepared(&rename("session_away", "session"))
        .await
        .unwrap();
    assert!(browser
        .get(&example.url("/"))
        .await
        .body
        .contains("Logged in as"));
}

/// With the session table gone, every store failure reaches the log with its cause: a load in
/// a handler (a 503 page), and a save after the handler, which tower-sessions turns into an
/// empty 500 and reports only through `tracing`. No line holds a session id, a device's handle
/// or a session's values.
#[tokio::test]
async fn store_failures_are_logged_with_their_cause_and_never_an_id_or_data() {
    let example = Example::start();
    let mut browser = Browser::new();
    let page = example.log_in(&mut browser, "Zanzibar").await;
    let session_id = browser.session_id().unwrap();
    let [(handle, _)] = device_rows(&page).try_into().expect("one device");
    let conn = Database::connect(file_url(&example.db.0)).await.unwrap();
    conn.execute_unprepared("DROP TABLE \"session\"")
        .await
        .unwrap();

    // A logged-in browser: the handler's load fails.
    let reply = browser.get(&example.url("/")).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    example
        .app
        .wait_for_log(|line| {
            line.contains("ERROR")
                && line.contains("the session failed")
                && line.contains("no such table")
        })
        .await;

    // A new browser: nothing to load; the save after the handler fails.
    let mut newcomer = Browser::new();
    let reply = newcomer.get(&example.url("/")).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.body
    );
    example
        .app
        .wait_for_log(|line| {
            line.contains("ERROR")
                && line.contains("failed to save session")
                && line.contains("no such table")
        })
        .await;

    let log = example.app.log();
    for secret in [session_id.as_str(), handle.as_str(), "Zanzibar"] {
        assert!(
            log.iter().all(|line| !line.contains(secret)),
            "{secret} in the log:\n{}",
            log.join("\n")
        );
    }
}

#[test]
fn user_agents_name_their_browser_and_os() {
    let cases = [
        (FIREFOX_ON_LINUX, "Firefox on Linux"),
        (SAFARI_ON_IOS, "Safari on iOS"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Safari/537.36",
            "Chrome on Windows",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/17.5 Safari/605.1.15",
            "Safari on macOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
            "Firefox on macOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, \
             like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
            "Chrome on iOS",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15",
            "Firefox on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
            "Firefox on Android",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Mobile Safari/537.36 EdgA/126.0.2592.80",
            "Edge on Android",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/156.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
            "A browser on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) \
             SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            "A browser on Android",
        ),
        (
            "Mozilla/5.0 (FreeBSD; rv:127.0) Gecko/20100101 Firefox/127.0",
            "Firefox",
        ),
        ("curl/8.5.0", "Unknown device"),
        ("", "Unknown device"),
    ];
    for (ua, expected) in cases {
        assert_eq!(Device::from_user_agent(ua).to_string(), expected, "{ua}");
    }
    assert_eq!(
        Device::from_user_agent(SAFARI_ON_IOS),
        Device {
            browser: Family::Safari,
            os: Os::Ios
        }
    );
}

#[test]
fn relative_times_read_as_people_say_them() {
    let now = 1_800_000_000;
    let cases = [
        (0, "just now"),
        (59, "just now"),
        (-30, "just now"),
        (60, "a minute ago"),
        (119, "a minute ago"),
        (120, "2 minutes ago"),
        (59 * 60, "59 minutes ago"),
        (3600, "an hour ago"),
        (5 * 3600 + 59, "5 hours ago"),
        (23 * 3600, "23 hours ago"),
        (24 * 3600, "yesterday"),
        (47 * 3600, "yesterday"),
        (48 * 3600, "2 days ago"),
        (30 * 86400, "30 days ago"),
    ];
    for (ago, expected) in cases {
        assert_eq!(relative_time(now - ago, now), expected, "{ago} s ago");
    }
}

const NEW_SIGN_IN: &str = "New sign-in to your account";

/// The login history at work: the account page lists the recent sign-ins, and a new sign-in is
/// told once to the user's other devices, heard through the store's events.
#[tokio::test]
async fn other_devices_are_told_of_a_new_sign_in_once_and_recent_sign_ins_are_listed() {
    let example = Example::start();
    let mut laptop = Browser::with_user_agent(FIREFOX_ON_LINUX);
    let page = example.log_in(&mut laptop, "Ada").await;
    assert!(!page.contains(NEW_SIGN_IN), "{page}");
    let recent = recent_sign_ins(&page);
    assert_eq!(recent.len(), 1, "{page}");
    assert!(recent[0].contains("Firefox on Linux") && recent[0].contains("This device"));

    // Another user's sign-in is no notice of Ada's; the phone's is, but not on the phone.
    let mut other = Browser::with_user_agent(SAFARI_ON_IOS);
    example.log_in(&mut other, "Grace").await;
    let mut phone = Browser::with_user_agent(SAFARI_ON_IOS);
    let page = example.log_in(&mut phone, "Ada").await;
    assert!(
        !page.contains(NEW_SIGN_IN),
        "not told of its own sign-in: {page}"
    );

    // The laptop hears it through the events; they arrive within a poll (10 ms) of the commit,
    // which is real time: the page is asked again until then.
    let mut page = String::new();
    for _ in 0..250 {
        page = laptop.get(&example.url("/")).await.body;
        if page.contains(NEW_SIGN_IN) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(page.matches(NEW_SIGN_IN).count(), 1, "{page}");
    assert!(
        page.contains("New sign-in to your account: <strong>Safari on iOS</strong>, just now"),
        "{page}"
    );
    let recent = recent_sign_ins(&page);
    assert_eq!(recent.len(), 2, "{page}");
    assert!(recent[0].contains("Safari on iOS") && !recent[0].contains("This device"));
    assert!(recent[1].contains("Firefox on Linux") && recent[1].contains("This device"));

    // Told once.
    let page = laptop.get(&example.url("/")).await.body;
    assert!(!page.contains(NEW_SIGN_IN), "{page}");
}

/// The rows of the account page's "Recent sign-ins", newest first.
fn recent_sign_ins(page: &str) -> Vec<String> {
    page.split("<li class=\"sign-in\">")
        .skip(1)
        .map(|row| row.split("</li>").next().unwrap().to_owned())
        .collect()
}
