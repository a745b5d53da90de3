//! A primary and a hot standby of the test's own, built from Debian's PostgreSQL packages
//! (`initdb`, `pg_basebackup`, `pg_ctl`) and streaming to each other on spare loopback ports,
//! which a test kills (SIGKILL) and promotes; and a PgBouncer of its own that the test re-points
//! at the new primary, as a failover hook would.
//!
//! Everything lives in one temporary directory under `/tmp` owned by `postgres` (the server and
//! PgBouncer refuse to run as root, and a checkout under `/root` is not readable by other users),
//! as in [`throwaway_pg`](super::throwaway_pg). Dropping a [`ReplicatedPair`] or a
//! [`FailoverBouncer`] stops what it started and removes the directory, also when the test panics.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use super::throwaway_pg::{bindir, is_root, spare_port};

/// The standby's `application_name`, which the primary's `synchronous_standby_names` names.
const STANDBY_NAME: &str = "failover_standby";

/// How the primary waits for the standby when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// `synchronous_commit = on` with the standby named in `synchronous_standby_names`: a
    /// commit returns once the standby has flushed its WAL.
    Synchronous,
    /// `synchronous_commit = remote_apply`: a commit returns once the standby has applied it,
    /// so a read on the standby sees it.
    SynchronousApplied,
    /// No synchronous standby: a commit returns once the primary alone has it.
    Asynchronous,
}

impl Replication {
    fn primary_settings(self) -> String {
        match self {
            Self::Synchronous => {
                format!("-c synchronous_standby_names={STANDBY_NAME} -c synchronous_commit=on")
            }
            Self::SynchronousApplied => format!(
                "-c synchronous_standby_names={STANDBY_NAME} -c synchronous_commit=remote_apply"
            ),
            Self::Asynchronous => "-c synchronous_standby_names= -c synchronous_commit=on".into(),
        }
    }
}

/// One server of the pair: its data directory and port.
pub struct Node {
    pub name: &'static str,
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
}

impl Node {
    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The postmaster's pid, from `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

/// When the primary was killed.
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    /// Just before the SIGKILL was sent.
    pub signalled: Instant,
    /// Once every process of the primary was dead: nothing it runs commits after this.
    pub fenced: Instant,
}

/// A primary streaming to a hot standby.
pub struct ReplicatedPair {
    dir: TempDir,
    bindir: PathBuf,
    pub primary: Node,
    pub standby: Node,
}

/// Runs a PostgreSQL tool as a user it accepts (it refuses root).
fn run_as_postgres(program: &Path, args: &[&str]) -> Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// As [`succeeded`], with the end of the server's log in the failure's message: why a server
/// did not start is only there.
fn succeeded_or_log(what: &str, log: &Path, output: Output) {
    if output.status.success() {
        return;
    }
    let log = std::fs::read_to_string(log).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "{what} failed: {}{}\nthe end of its log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail.join("\n")
    );
}

fn succeeded(what: &str, output: Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A temporary directory the `postgres` user owns (and root, running the test, can read).
fn postgres_owned_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory");
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown the temporary directory");
        assert!(status.success(), "chown the temporary directory");
    }
    dir
}

fn chown_to_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", path.display());
    }
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn signal(name: &str, pids: &[u32]) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pids:?}");
}

/// Whether something accepts TCP connections on the loopback `port`.
pub fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

impl ReplicatedPair {
    /// A primary (a fresh `initdb`) and a standby cloned from it by `pg_basebackup`, both
    /// started; returns once the standby streams (and, when synchronous, is the primary's
    /// synchronous standby).
    pub async fn start(replication: Replication) -> Self {
        let dir = postgres_owned_dir("ts-failover-pg");
        let node = |name: &'static str| Node {
            name,
            port: spare_port(),
            data: dir.path().join(name),
            log: dir.path().join(format!("{name}.log")),
        };
        let pair = Self {
            bindir: bindir(),
            primary: node("primary"),
            standby: node("standby"),
            dir,
        };
        succeeded(
            "initdb",
            run_as_postgres(
                &pair.bindir.join("initdb"),
                &[
                    "-D",
                    &pair.primary.data.display().to_string(),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "-N",
                ],
            ),
        );
        pair.start_node(&pair.primary, &replication.primary_settings());

        // -R writes standby.signal and primary_conninfo (with the application_name the
        // primary's synchronous_standby_names names) into the copy.
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={STANDBY_NAME}",
            pair.primary.port
        );
        succeeded(
            "pg_basebackup",
            run_as_postgres(
                &pair.bindir.join("pg_basebackup"),
                &[
                    "-d",
                    &conninfo,
                    "-D",
                    &pair.standby.data.display().to_string(),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ],
            ),
        );
        // The copy must not wait for a standby of its own once promoted: it will have none.
        pair.start_node(&pair.standby, "-c synchronous_standby_names=");
        pair.wait_for_streaming(replication).await;
        pair
    }

    /// Starts `node` with the common settings and `settings`. `fsync = off`: the test kills
    /// processes, never the machine, so the page cache keeps everything written.
    fn start_node(&self, node: &Node, settings: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c log_connections=on \
             -c wal_sender_timeout=5s -c wal_receiver_status_interval=1s {settings}",
            node.port,
            self.dir.path().display(),
        );
        succeeded_or_log(
            &format!("pg_ctl start ({})", node.name),
            &node.log,
            run_as_postgres(
                &self.bindir.join("pg_ctl"),
                &[
                    "-D",
                    &node.data.display().to_string(),
                    "-l",
                    &node.log.display().to_string(),
                    "-o",
                    &options,
                    "-w",
                    "start",
                ],
            ),
        );
    }

    async fn wait_for_streaming(&self, replication: Replication) {
        let wanted = match replication {
            Replication::Asynchronous => "async",
            _ => "sync",
        };
        let client = connect(&self.primary.url()).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = client
                .query(
                    "SELECT sync_state FROM pg_stat_replication \
                     WHERE application_name = $1 AND state = 'streaming'",
                    &[&STANDBY_NAME],
                )
                .await
                .expect("read pg_stat_replication");
            if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not stream ({wanted}) within 30 s; its log:\n{}",
                self.standby.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A tokio-postgres URL listing both servers, primary first, that connects only to the one
    /// that accepts writes.
    pub fn multi_host_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres\
             ?target_session_attrs=read-write&connect_timeout=2",
            self.primary.port, self.standby.port
        )
    }

    /// Stops the primary's WAL sender (SIGSTOP): the primary goes on committing (when
    /// replication is asynchronous) while the standby receives nothing, as behind a stalled
    /// network. Returns when it stopped.
    pub async fn stall_replication(&self) -> Instant {
        let client = connect(&self.primary.url()).await;
        let pids: Vec<u32> = client
            .query(
                "SELECT pid FROM pg_stat_replication WHERE application_name = $1",
                &[&STANDBY_NAME],
            )
            .await
            .expect("read pg_stat_replication")
            .iter()
            .map(|row| row.get::<_, i32>(0) as u32)
            .collect();
        assert!(!pids.is_empty(), "the primary has a WAL sender");
        let stalled = Instant::now();
        signal("STOP", &pids);
        stalled
    }

    /// Kills the primary like a crash: SIGKILL to the postmaster and every process it forked,
    /// none of which gets to run another instruction; returns once every one of them is dead.
    pub fn kill_primary(&self) -> Kill {
        let postmaster = self
            .primary
            .postmaster_pid()
            .expect("the primary's postmaster.pid");
        // Frozen first, so that it forks no backend between the listing and the kill.
        signal("STOP", &[postmaster]);
        let mut pids = children_of(postmaster);
        pids.push(postmaster);
        let signalled = Instant::now();
        signal("KILL", &pids);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids.iter().all(|&pid| is_dead(pid)) {
            assert!(Instant::now() < deadline, "the primary's processes died");
            std::thread::sleep(Duration::from_millis(1));
        }
        Kill {
            signalled,
            fenced: Instant::now(),
        }
    }

    /// Whether the old primary is fenced: none of its processes runs and nothing answers on its
    /// port.
    pub fn primary_is_fenced(&self) -> bool {
        let postmaster_gone = self.primary.postmaster_pid().is_none_or(is_dead);
        postmaster_gone && !port_answers(self.primary.port)
    }

    /// `pg_ctl promote` on the standby; returns once it accepts writes.
    pub fn promote_standby(&self) -> Instant {
        succeeded(
            "pg_ctl promote",
            run_as_postgres(
                &self.bindir.join("pg_ctl"),
                &[
                    "-D",
                    &self.standby.data.display().to_string(),
                    "-w",
                    "-t",
                    "30",
                    "promote",
                ],
            ),
        );
        Instant::now()
    }

    /// Starts the killed primary's data directory again where no client can reach it — a Unix
    /// socket in the pair's directory, no TCP, every transaction read-only — so that a test can
    /// read what it holds. Returns the tokio-postgres configuration to connect with.
    pub fn reopen_old_primary_privately(&self) -> tokio_postgres::Config {
        let socket_dir = self.dir.path().join("old-primary-socket");
        std::fs::create_dir_all(&socket_dir).expect("a socket directory");
        chown_to_postgres(&socket_dir);
        let options = format!(
            "-p {} -c listen_addresses='' -k {} -c fsync=off -c synchronous_standby_names= \
             -c default_transaction_read_only=on",
            self.primary.port,
            socket_dir.display()
        );
        let log = self.dir.path().join("old-primary-reopened.log");
        succeeded(
            "pg_ctl start (the old primary, privately)",
            run_as_postgres(
                &self.bindir.join("pg_ctl"),
                &[
                    "-D",
                    &self.primary.data.display().to_string(),
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &options,
                    "-w",
                    "start",
                ],
            ),
        );
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&socket_dir)
            .port(self.primary.port)
            .user("postgres")
            .dbname("postgres");
        config
    }

    fn stop(&self, node: &Node) {
        let _ = run_as_postgres(
            &self.bindir.join("pg_ctl"),
            &[
                "-D",
                &node.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

impl Drop for ReplicatedPair {
    fn drop(&mut self) {
        // A stopped (SIGSTOP) WAL sender would not hear the shutdown.
        if let Some(postmaster) = self.primary.postmaster_pid() {
            if !is_dead(postmaster) {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .args(children_of(postmaster).iter().map(u32::to_string))
                    .output();
            }
        }
        self.stop(&self.primary);
        self.stop(&self.standby);
    }
}

/// A connection to `url` (its driver task spawned), or a panic naming the server.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    connect_with(&config).await
}

/// A connection with `config` (its driver task spawned).
pub async fn connect_with(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {config:?}: {e}"));
    tokio::spawn(connection);
    client
}

/// The oldest PgBouncer that carries sqlx's prepared statements in transaction mode (see
/// SCALING.md, Behind PgBouncer).
const MIN_PGBOUNCER: (u32, u32) = (1, 21);

/// `PGBOUNCER_BIN`, else the one `scripts/test` builds into `target/pgbouncer/build`, else
/// `pgbouncer` on the `PATH`: the first that is 1.21 or later, or a panic that says how to get
/// one.
fn pgbouncer_binary() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pgbouncer/build/bin/pgbouncer");
    let candidates = std::env::var_os("PGBOUNCER_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([built, PathBuf::from("pgbouncer")]);
    let mut seen = Vec::new();
    for candidate in candidates {
        let Ok(output) = Command::new(&candidate).arg("--version").output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&output.stdout).to_string();
        let number = version
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("PgBouncer "))
            .unwrap_or_default()
            .to_owned();
        let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= MIN_PGBOUNCER {
            return candidate;
        }
        seen.push(format!("{} is {number}", candidate.display()));
    }
    panic!(
        "the failover tests start a PgBouncer 1.21+ of their own (found: {seen:?}); run \
         scripts/test, which builds one into target/pgbouncer/build, or set PGBOUNCER_BIN"
    )
}

/// A PgBouncer of the test's own in transaction pooling mode in front of one server, which the
/// test re-points at another (`RELOAD`), as a failover hook would.
pub struct FailoverBouncer {
    dir: TempDir,
    pub port: u16,
}

impl FailoverBouncer {
    /// Starts PgBouncer on a spare loopback port in front of the server on `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let dir = postgres_owned_dir("ts-failover-pgbouncer");
        let binary = dir.path().join("pgbouncer");
        // A copy `postgres` can run wherever the checkout is.
        std::fs::copy(pgbouncer_binary(), &binary).expect("copy pgbouncer");
        chown_to_postgres(&binary);
        let users = dir.path().join("userlist.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").expect("write the user list");
        chown_to_postgres(&users);
        let bouncer = Self {
            dir,
            port: spare_port(),
        };
        bouncer.write_ini(upstream_port);
        let ini = bouncer.ini().display().to_string();
        succeeded("pgbouncer -d", run_as_postgres(&binary, &["-d", &ini]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_answers(bouncer.port) {
            assert!(
                Instant::now() < deadline,
                "PgBouncer did not start; its log:\n{}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    fn ini(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// The URL of the `postgres` database through PgBouncer.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn write_ini(&self, upstream_port: u16) {
        let dir = self.dir.path().display();
        let ini = format!(
            ";; Written by tests/common/failover.rs.
[databases]
postgres = host=127.0.0.1 port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
max_prepared_statements = 200
ignore_startup_parameters = extra_float_digits
default_pool_size = 20
;; After a failed connect PgBouncer waits this long before the next (default 15 s).
server_login_retry = 0.2
;; A client waiting for a server connection gets an error after this long (default 120 s),
;; shorter than the store's operation timeout, so that the store reports PgBouncer's reason.
query_wait_timeout = 2
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
",
            port = self.port,
        );
        std::fs::write(self.ini(), ini).expect("write pgbouncer.ini");
        chown_to_postgres(&self.ini());
    }

    /// Points PgBouncer at the server on `upstream_port`: rewrites its ini and sends `RELOAD`
    /// on its admin console. New server connections go there at once; old ones close when
    /// released.
    pub async fn repoint(&self, upstream_port: u16) -> Instant {
        self.write_ini(upstream_port);
        let admin = format!("postgres://postgres@127.0.0.1:{}/pgbouncer", self.port);
        connect(&admin)
            .await
            .simple_query("RELOAD")
            .await
            .unwrap_or_else(|e| panic!("RELOAD on PgBouncer's admin console: {e}"));
        Instant::now()
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for FailoverBouncer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !is_dead(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
