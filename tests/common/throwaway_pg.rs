//! A PostgreSQL cluster of a test's own — `initdb` into a temporary directory, a spare loopback
//! port — that the test may stop and start without touching the shared server.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, PoisonError},
};

use tempfile::TempDir;

pub struct ThrowawayPostgres {
    dir: TempDir,
    bindir: PathBuf,
    port: u16,
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest installed server's `bin` directory, or a panic that says how to get one.
pub fn bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "this test starts a PostgreSQL cluster of its own and needs the server binaries \
             (initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin: \
             `apt-get install postgresql` (scripts/test does it for you)"
        )
    })
}

/// A loopback port nothing listens on, for a server the test starts later (after an `initdb`
/// or a `pg_basebackup`, seconds away). Taken below the kernel's ephemeral range where it can:
/// a port `bind(0)` hands out lies in that range, where any outgoing connection of the tests
/// may take it as its source port before the server binds it (the server then fails to start).
/// Never the same port twice in one test process.
pub fn spare_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_from > 12_000 {
        for _ in 0..1_000 {
            let port = rand::random_range(10_000..ephemeral_from);
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a spare loopback port");
        if given.insert(port) {
            return port;
        }
    }
}

impl ThrowawayPostgres {
    /// Creates and starts a cluster with trust auth on a spare loopback port.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ts-throwaway-pg")
            .tempdir()
            .expect("a temporary directory");
        let pg = Self {
            dir,
            bindir: bindir(),
            port: spare_port(),
        };
        if is_root() {
            // initdb and postgres refuse to run as root: hand the directory to `postgres`.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown the cluster directory");
            assert!(status.success(), "chown the cluster directory");
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
            ],
        );
        pg.resume();
        pg
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`immediate`: like a crash, connections cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the (stopped) server again on the same port and data, and waits until it accepts
    /// connections.
    pub fn resume(&self) {
        let socket_dir = self.dir.path().display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {socket_dir} -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let program = self.bindir.join("pg_ctl");
        let data = self.data_dir();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}
