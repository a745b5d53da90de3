//! The example in a real browser: headless Chromium driven through chromedriver
//! (WebDriver). Two browser sessions, each with its own profile and cookies, log in as the same
//! user; one signs the other out from its device list; the other, reloaded, is logged out and
//! sees the notice.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`;
//! `scripts/test` installs them with apt). `CHROMIUM` and `CHROMEDRIVER` name other paths. A
//! screenshot of the account page with two devices is written to
//! `$CARGO_TARGET_TMPDIR/axum_app-account.png`.

mod common;

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{binary, remove_db_files, temp_db_path, RunningApp};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

const PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like \
     Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
const NOTICE: &str = "You were signed out on this device from another device";
const WAIT: Duration = Duration::from_secs(10);

fn tool(variable: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(variable).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.is_file(),
        "the browser test needs Chromium and chromedriver, and {} is missing. On Debian or \
         Ubuntu: `sudo apt-get install -y chromium chromium-driver` (scripts/test installs them \
         when missing); elsewhere, set CHROMIUM and CHROMEDRIVER to their paths.",
        path.display()
    );
    path
}

/// chromedriver on a free port, in a process group of its own so that dropping it ends the
/// browsers it started too, also when the test fails.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start() -> Self {
        let binary = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(&binary)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
            0,
        )
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver answers on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new headless browser with a profile of its own: a device.
    async fn browser(&self, user_agent: Option<&str>) -> Client {
        let mut args = vec![
            "--headless=new".to_owned(),
            // Root in a container has no sandbox to drop into.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=820,720".to_owned(),
        ];
        args.extend(user_agent.map(|ua| format!("--user-agent={ua}")));
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": tool("CHROMIUM", "/usr/bin/chromium"),
                "args": args,
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a headless Chromium")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Logs `browser` in as `name` through the form, and waits for the account page.
async fn log_in(browser: &Client, base_url: &str, name: &str) {
    browser.goto(base_url).await.unwrap();
    let input = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("form[action='/login'] input[name=name]"))
        .await
        .expect("the sign-in form");
    input.send_keys(name).await.unwrap();
    browser
        .find(Locator::Css("form[action='/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    heading(browser, "Your account").await;
}

async fn heading(browser: &Client, text: &str) {
    let xpath = format!("//*[self::h1 or self::h2][contains(., '{text}')]");
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|err| {
            panic!("a heading `{text}`: {err}");
        });
}

async fn text(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_browser_signed_out_from_another_sees_the_notice() {
    let binary = binary();
    let db = temp_db_path();
    let app = RunningApp::start(&binary, &db);
    let started = Instant::now();
    let driver = Chromedriver::start();
    let laptop = driver.browser(None).await;
    let phone = driver.browser(Some(PHONE)).await;

    log_in(&laptop, &app.base_url, "Ada").await;
    log_in(&phone, &app.base_url, "Ada").await;
    heading(&phone, "Your devices (2)").await;
    let page = text(&phone).await;
    assert!(page.contains("Chrome on Android"), "{page}");
    assert!(
        page.contains("Chrome on Linux"),
        "the laptop, listed by the store: {page}"
    );
    assert!(page.contains("Log out my other devices"), "{page}");
    let screenshot = phone.screenshot().await.unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("axum_app-account.png");
    std::fs::write(&path, screenshot).unwrap();
    eprintln!("screenshot of the account page: {}", path.display());

    // The phone signs the laptop out: the button in the row that is not this device.
    let mut signed_out = false;
    for row in phone.find_all(Locator::Css("ul.devices li")).await.unwrap() {
        if !row.text().await.unwrap().contains("This device") {
            row.find(Locator::Css("button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            signed_out = true;
            break;
        }
    }
    assert!(signed_out, "the laptop is listed on the phone");
    heading(&phone, "Your devices (1)").await;

    // The laptop, reloaded, is logged out and told why; the next visit is quiet again.
    laptop.refresh().await.unwrap();
    heading(&laptop, "Sign in").await;
    let page = text(&laptop).await;
    assert!(page.contains(NOTICE), "{page}");
    laptop.refresh().await.unwrap();
    heading(&laptop, "Sign in").await;
    assert!(!text(&laptop).await.contains(NOTICE));

    laptop.close().await.unwrap();
    phone.close().await.unwrap();
    eprintln!("the browsers took {:.1} s", started.elapsed().as_secs_f64());
    app.kill();
    remove_db_files(&db);
}
