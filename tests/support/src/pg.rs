//! A real PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries,
//! a fresh cluster in a temporary directory on a free 127.0.0.1 port, stopped and
//! removed when the [`PgServer`] drops, or when the test process dies (a watchdog
//! process waits on a pipe from it).
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the cluster belongs to
//! `nobody` and `initdb`/`postgres` run under `setpriv`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// One server for the whole test binary, with an empty database named `db`; started on
/// first use, stopped by its watchdog when the process exits (a `static` never drops).
/// Cases keep apart by schema.
pub fn shared() -> &'static PgServer {
    static PG: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();
    PG.get_or_init(|| {
        let pg = PgServer::start();
        pg.create_database("db");
        pg
    })
}

/// Where Debian puts the server binaries (`/usr/lib/postgresql/<major>/bin`), newest
/// major first; `None` when PostgreSQL is not installed.
pub fn bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, b)| b)
}

/// A running PostgreSQL cluster owned by this test.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    settings: Vec<(String, String)>,
    server: Option<Child>,
    /// Closing it (drop, or this process dying) makes the watchdog stop the server.
    watchdog: Option<(Child, ChildStdin)>,
}

fn as_root() -> bool {
    // The owner of /proc/self is our effective uid (no fork of `id -u`).
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `cmd` as `nobody` when we are root (PostgreSQL will not run as root).
fn command(bin: &Path, prog: &str) -> Command {
    if as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin.join(prog));
        c
    } else {
        Command::new(bin.join(prog))
    }
}

/// A port free right now for the server, in 2000-4999: below the kernel's ephemeral
/// range (32768-60999 by default), the gateway tests' ports (12000-31999,
/// `gateway/tests/common`) and the fixed ports of the example policies that tests
/// bind (5060-5092, 6000, 7880, 8080-8093). Any outgoing connection may take a port of
/// the ephemeral range as its own between this check and the server's bind, or hold it
/// in TIME_WAIT when a test restarts the server on the same port, and the server then
/// cannot listen (one run here waited out `wait_ready`'s 60 s on a server that had
/// exited).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(104_729);
    for _ in 0..4096 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 2_000 + (seed.wrapping_add(n.wrapping_mul(1499)) % 3_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for PostgreSQL in 2000..5000")
}

impl PgServer {
    /// A new cluster for tests: `fsync = off` (a test kills gateways, never the
    /// machine), everything else as shipped. Panics with what to install if PostgreSQL
    /// is missing.
    pub fn start() -> PgServer {
        Self::start_with(&[("fsync", "off")])
    }

    /// A new cluster with these `postgres -c` settings (benchmarks: durable defaults,
    /// `&[]`).
    pub fn start_with(settings: &[(&str, &str)]) -> PgServer {
        let bin = bin_dir().unwrap_or_else(|| {
            panic!("PostgreSQL is not installed (apt-get install postgresql); tests/run-all.sh installs it")
        });
        let dir = tempfile::Builder::new()
            .prefix("c2c-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        if as_root() {
            let ok = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success(), "chown of the PostgreSQL directory failed");
        }
        let out = command(&bin, "initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "c2c",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = PgServer {
            dir,
            bin,
            port: free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            server: None,
            watchdog: None,
        };
        pg.run();
        pg
    }

    /// Starts the server on the cluster (again, after [`Self::stop`]), same port.
    pub fn run(&mut self) {
        assert!(self.server.is_none(), "PostgreSQL already runs");
        let mut cmd = command(&self.bin, "postgres");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ]);
        for (k, v) in &self.settings {
            cmd.args(["-c", &format!("{k}={v}")]);
        }
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        let pid = child.id();
        let mut watchdog = Command::new("sh")
            .args([
                "-c",
                // EOF on stdin: the test process is gone or dropped us. SIGQUIT is an
                // immediate shutdown; the directory goes with it.
                "read _ignored; kill -QUIT \"$1\" 2>/dev/null; sleep 1; kill -KILL \"$1\" 2>/dev/null; [ \"$3\" = rm ] && rm -rf \"$2\"",
                "watchdog",
                &pid.to_string(),
                &self.dir.path().to_string_lossy(),
                "rm",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the PostgreSQL watchdog");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        self.server = Some(child);
        self.watchdog = Some((watchdog, stdin));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A server that exited (a port taken after all, a bad setting) will not
            // start: say why now rather than after the deadline.
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "PostgreSQL exited ({status}) before accepting connections on port {}: {}",
                    self.port,
                    self.log()
                );
            }
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "c2c",
                    "-q",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start in 60 s: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (a fast shutdown: sessions are cut, nothing committed is lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SIGINT is PostgreSQL's "fast" shutdown.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        self.dismiss_watchdog();
    }

    /// The server is stopped by us: the watchdog must not remove the cluster it guards.
    fn dismiss_watchdog(&mut self) {
        if let Some((mut w, stdin)) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
            drop(stdin);
        }
    }

    /// Freezes the server without closing anything (SIGSTOP to the postmaster and
    /// every backend): connections stay open and nothing answers, like a stalled disk
    /// or a paused VM. [`Self::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&self, sig: &str) {
        let Some(server) = &self.server else {
            return;
        };
        let pid = server.id().to_string();
        let children = Command::new("pgrep")
            .args(["-P", &pid])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut pids: Vec<String> = vec![pid];
        pids.extend(children.split_whitespace().map(str::to_owned));
        let status = Command::new("kill").arg(sig).args(&pids).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {sig} {pids:?}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq key=value connection string for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=c2c dbname={database}",
            self.port
        )
    }

    /// Runs one SQL statement with `psql` on `database` and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "c2c",
                "-p",
                &self.port.to_string(),
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates an empty database and returns its name.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name.to_owned()
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(child) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let mut child = child;
            let _ = child.wait();
        }
        // The temporary directory removes itself.
        self.dismiss_watchdog();
    }
}
