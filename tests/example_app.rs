//! `examples/axum_app`, built and run as a process on a free port with a temporary SQLite file,
//! driven over real HTTP: the visit counter, log in and log out (each cycling the session id),
//! the cookie's attributes, the user's sessions and "log out my other devices", and a session
//! that survives a restart of the app.

mod common;

use common::{
    example_app::{build_example, Browser, RunningApp},
    sqlite::{remove_db_files, temp_db_path},
};

/// Deletes the SQLite file even when the test fails.
struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        remove_db_files(&self.0);
    }
}

#[tokio::test]
async fn the_example_counts_visits_logs_in_and_out_and_survives_a_restart() {
    let binary = build_example("axum_app");
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
    let anonymous_id = browser.cookie.clone().expect("the session cookie");

    assert!(browser.get(&home).await.body.contains("Visits: 2"));

    // Logging in cycles the id: the old one no longer finds the session.
    let login = browser
        .post_form(&format!("{}/login", app.base_url), "name=Ada+%3Cb%3E")
        .await;
    assert!(login.status.is_redirection(), "{}", login.status);
    let logged_in_id = browser.cookie.clone().expect("a cookie after log in");
    assert_ne!(
        logged_in_id, anonymous_id,
        "log in must change the session id"
    );
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 3"), "{page}");
    assert!(page.contains("Logged in as Ada &lt;b&gt;"), "{page}");

    let mut stale = Browser::new();
    stale.cookie = Some(anonymous_id);
    let page = stale.get(&home).await.body;
    assert!(
        page.contains("Visits: 1") && page.contains("Not logged in"),
        "{page}"
    );

    // The same user on a second device: both sessions are listed, this one marked.
    let mut phone = Browser::new();
    phone
        .post_form(&format!("{}/login", app.base_url), "name=Ada+%3Cb%3E")
        .await;
    let page = phone.get(&home).await.body;
    assert!(page.contains("Sessions: 2"), "{page}");
    assert_eq!(page.matches("(this device)").count(), 1, "{page}");

    // "Log out my other devices" from the phone ends the first browser's session only.
    let ended = phone
        .post_form(&format!("{}/logout-others", app.base_url), "")
        .await;
    assert!(ended.status.is_redirection(), "{}", ended.status);
    let page = phone.get(&home).await.body;
    assert!(page.contains("Sessions: 1"), "{page}");
    let page = browser.get(&home).await.body;
    assert!(
        page.contains("Not logged in"),
        "the other device is logged out: {page}"
    );
    browser
        .post_form(&format!("{}/login", app.base_url), "name=Ada+%3Cb%3E")
        .await;
    assert!(browser.get(&home).await.body.contains("Sessions: 2"));
    let logged_in_id = browser.cookie.clone().expect("a cookie after log in");

    // Kill the app and start it again on the same file: the session is still there.
    app.kill();
    let app = RunningApp::start(&binary, &db.0);
    let home = format!("{}/", app.base_url);
    // Counting from the fresh session that began when the phone logged this browser out.
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 3"), "{page}");
    assert!(page.contains("Logged in as Ada &lt;b&gt;"), "{page}");

    // Logging out cycles the id again and keeps the count.
    let logout = browser
        .post_form(&format!("{}/logout", app.base_url), "")
        .await;
    assert!(logout.status.is_redirection(), "{}", logout.status);
    assert_ne!(browser.cookie.as_deref(), Some(logged_in_id.as_str()));
    let page = browser.get(&home).await.body;
    assert!(page.contains("Visits: 4"), "{page}");
    assert!(page.contains("Not logged in"), "{page}");
    app.kill();
}
