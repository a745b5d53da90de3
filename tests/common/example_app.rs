//! Running `examples/axum_app` as a real process, and a minimal HTTP client with a cookie jar to
//! drive it.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, header, Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// Builds the example with the features this test was built with (so cargo reuses the
/// library it already built) and returns the path of its binary.
pub fn build_example(name: &str) -> PathBuf {
    let features: Vec<&str> = [
        ("postgres", cfg!(feature = "postgres")),
        ("sqlite", cfg!(feature = "sqlite")),
        ("mysql", cfg!(feature = "mysql")),
        ("migration", cfg!(feature = "migration")),
        ("msgpack", cfg!(feature = "msgpack")),
        ("runtime-tokio", cfg!(feature = "runtime-tokio")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let output = Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--message-format=json"])
        .args(["--no-default-features", "--features", &features.join(",")])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build --example");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo did not report the binary of example {name}"))
}

/// A running example process, killed when dropped (so also when a test fails).
pub struct RunningApp {
    child: Child,
    pub base_url: String,
}

impl RunningApp {
    /// Starts `binary` on a free port (PORT=0) with its sessions in the SQLite file `db`, and
    /// waits for it to print the address it serves.
    pub fn start(binary: &Path, db: &Path) -> Self {
        let mut child = Command::new(binary)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", db.display()),
            )
            .env("PORT", "0")
            .env_remove("BIND_ADDRESS")
            .env_remove("COOKIE_SECURE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("the example's stdout");
        // Own the child before anything can panic, so that Drop kills it.
        let mut app = Self {
            child,
            base_url: String::new(),
        };
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
