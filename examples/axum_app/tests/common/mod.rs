//! Running the example as a real process, a minimal HTTP client with a cookie jar to drive it,
//! and SQLite files of the tests' own.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, header, Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// The example's binary, built by cargo for this package's tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_axum_app"))
}

/// A fresh path in the system's temporary directory (the file does not exist yet).
pub fn temp_db_path() -> PathBuf {
    static COUNT: Mutex<u32> = Mutex::new(0);
    let mut count = COUNT.lock().unwrap();
    *count += 1;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "axum_app_test_{}_{nanos}_{count}.sqlite",
        std::process::id()
    ))
}

/// The `sqlite://` URL of the file at `path`, created if missing.
pub fn file_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Deletes a SQLite database file and the journal files beside it.
pub fn remove_db_files(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A running example process, killed when dropped (so also when a test fails).
pub struct RunningApp {
    child: Child,
    pub base_url: String,
    /// What it has written to stderr (its log) so far, line by line.
    log: Arc<Mutex<Vec<String>>>,
}

impl RunningApp {
    /// Starts `binary` on a free port (PORT=0) with its sessions in the SQLite file `db`, and
    /// waits for it to print the address it serves.
    pub fn start(binary: &Path, db: &Path) -> Self {
        let mut child = Command::new(binary)
            .env("DATABASE_URL", file_url(db))
            .env("PORT", "0")
            .env_remove("BIND_ADDRESS")
            .env_remove("COOKIE_SECURE")
            .env_remove("LOG_LEVEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("the example's stdout");
        let stderr = child.stderr.take().expect("the example's stderr");
        // Own the child before anything can panic, so that Drop kills it.
        let mut app = Self {
            child,
            base_url: String::new(),
            log: Arc::default(),
        };
        let log = Arc::clone(&app.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Shown with the test's output too, as when it was inherited.
                eprintln!("{line}");
                log.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        app.base_url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the example prints `listening on http://…` within a minute");
        app
    }

    /// The lines of its log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to ten seconds for a log line that `wanted` accepts, and returns it.
    pub async fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            if let Some(line) = self.log().into_iter().find(|line| wanted(line)) {
                return line;
            }
            // The log arrives through a pipe and a thread: poll it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no such line in the example's log:\n{}",
            self.log().join("\n")
        );
    }

    /// Kills the process and waits for it to exit.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response: status, content type, the raw `Set-Cookie` headers and the body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// An HTTP/1.1 client with a cookie jar (names to values, one path, one host) and a
/// User-Agent of its choosing.
pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    pub cookies: BTreeMap<String, String>,
    pub user_agent: Option<String>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookies: BTreeMap::new(),
            user_agent: None,
        }
    }

    /// A browser sending `user_agent`.
    pub fn with_user_agent(user_agent: &str) -> Self {
        Self {
            user_agent: Some(user_agent.to_owned()),
            ..Self::new()
        }
    }

    /// The session cookie's value, `id`.
    pub fn session_id(&self) -> Option<String> {
        self.cookies.get("id").cloned()
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        self.send(Method::GET, url, None).await
    }

    /// POSTs an `application/x-www-form-urlencoded` body.
    pub async fn post_form(&mut self, url: &str, form: &str) -> Reply {
        self.send(Method::POST, url, Some(form.to_owned())).await
    }

    pub async fn send(&mut self, method: Method, url: &str, form: Option<String>) -> Reply {
        let mut request = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(user_agent) = &self.user_agent {
            request = request.header(header::USER_AGENT, user_agent);
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(request.body(body).expect("a valid request"))
            .await
            .expect("the example answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for set_cookie in &set_cookies {
            self.remember(set_cookie);
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Reply {
            status,
            content_type,
            set_cookies,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Keeps or drops a cookie as a browser would.
    fn remember(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        if parts.any(|attribute| attribute.eq_ignore_ascii_case("Max-Age=0")) {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }
}
