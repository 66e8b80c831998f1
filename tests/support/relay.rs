//! carbon-c-relay in front of two carbon-caches, for the relay tests
//! (`tests/relay_*.rs`, issue 14): the production topology
//! `app -> relay -> caches`.
//!
//! `./scripts/test` finds or fetches Debian's carbon-c-relay (no root) and
//! exports `GRAPHYTE_RELAY_BIN`. [`Topology::start_or_skip`] starts two
//! [`CarbonServer`]s (the existing harness) and one [`RelayServer`] on free
//! loopback ports, with
//!
//! ```text
//! cluster c fnv1a_ch 127.0.0.1:P1 127.0.0.1:P2 ;
//! match * send to c ;
//! listen type linemode 127.0.0.1:PR proto tcp ;
//! ```
//!
//! run as `carbon-c-relay -f relay.conf -s -q QUEUE -w 2`. With
//! [`Topology::start_tls_or_skip`] (or [`RelayConfig::tls`]) the listener
//! terminates TLS instead (`tests/relay_tls.rs`):
//!
//! ```text
//! listen type linemode transport plain ssl DIR/listener.pem 127.0.0.1:PR proto tcp ;
//! ```
//!
//! where `listener.pem` holds the server certificate (chain) followed by
//! its private key: carbon-c-relay 3.7.3 loads both from that one file
//! (with the certificate alone it exits with "cannot load private key").
//! In both cases: `-s` keeps the
//! relay's own statistics out of the stream (it logs drops and queue
//! pressure instead), `-q` is the queue per cache.
//!
//! Every process is killed when its value drops. The relay also dies with the
//! test: it is started with `PR_SET_PDEATHSIG = SIGKILL`, which Linux
//! delivers when the thread that started it ends, so start (and restart) a
//! relay on the test's own thread, not on a helper thread that ends first.
//! Without the relay the tests skip by the one rule ([`super::skip`]), which
//! fails them under `./scripts/test`.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::raw::{c_int, c_ulong};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::carbon::CarbonServer;

/// Env var naming the carbon-c-relay binary (set by ./scripts/test).
pub const RELAY_ENV: &str = "GRAPHYTE_RELAY_BIN";
/// The relay's queue per destination (`-q`) in these tests: far more than a
/// test sends while a cache is down, so the relay never drops for lack of
/// room (the default, 25,000, would also make it throttle its clients).
pub const QUEUE: usize = 500_000;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const POLL: Duration = Duration::from_millis(20);
const LOG_TAIL_LINES: usize = 40;
/// A TLS listener's certificate and key, in the relay's directory.
const TLS_PEM_FILE: &str = "listener.pem";

extern "C" {
    fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong, arg4: c_ulong, arg5: c_ulong) -> c_int;
    fn getppid() -> c_int;
}
const PR_SET_PDEATHSIG: c_int = 1;
const SIGKILL: c_ulong = 9;

/// Finds carbon-c-relay: `$GRAPHYTE_RELAY_BIN`, else `carbon-c-relay` on
/// `PATH`, else `<repo>/.relay/usr/bin/carbon-c-relay` (where
/// ./scripts/test unpacks it by default).
pub fn locate() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(RELAY_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{RELAY_ENV}={} does not exist", bin.display()))
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("carbon-c-relay"))
            .find(|bin| bin.is_file())
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|dir| dir.join("scripts/test").is_file())
        .unwrap_or(manifest);
    let fallback = root.join(".relay/usr/bin/carbon-c-relay");
    if fallback.is_file() {
        Ok(fallback)
    } else {
        Err(format!(
            "{RELAY_ENV} is not set, no carbon-c-relay on PATH and no {}",
            fallback.display()
        ))
    }
}

fn how_to_get_relay(why: &str) -> String {
    format!(
        "carbon-c-relay is not available ({why}). Run the tests with ./scripts/test, which \
         fetches Debian's package without root (apt-get download + dpkg-deb -x) and sets \
         {RELAY_ENV}; or point {RELAY_ENV} at a carbon-c-relay binary."
    )
}

/// Ports handed out by this module; never twice in one process.
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// A loopback TCP port free right now and not handed out before.
fn pick_port() -> u16 {
    let mut used = used_ports().lock().unwrap_or_else(|e| e.into_inner());
    let mut probes = Vec::new();
    for _ in 0..100 {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = probe.local_addr().expect("local_addr").port();
        probes.push(probe);
        if used.insert(port) {
            return port;
        }
    }
    panic!("found no unused loopback port in 100 tries");
}

fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "graphyte-relay-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Inodes of the listening TCP sockets on `port` (IPv4 and IPv6), from
/// /proc/net/tcp*; `None` without /proc.
fn listening_sockets(port: u16) -> Option<Vec<u64>> {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = fields.get(1) else { continue };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) && fields.get(3) == Some(&"0A") {
                if let Some(inode) = fields.get(9).and_then(|i| i.parse().ok()) {
                    inodes.push(inode);
                }
            }
        }
    }
    fs::metadata("/proc/net/tcp").ok()?;
    Some(inodes)
}

/// Inodes of the sockets process `pid` holds.
fn process_sockets(pid: u32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let target = fs::read_link(entry.path()).ok()?;
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// What a relay is configured with.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The cluster's members, loopback ports (`127.0.0.1:P`).
    pub members: Vec<u16>,
    /// `fnv1a_ch` (consistent hashing, one member per series), `forward`
    /// (every member gets everything), ...
    pub cluster: &'static str,
    /// `-q`: queue per destination, in lines.
    pub queue: usize,
    /// With a PEM (certificate chain, then private key), the listener
    /// terminates TLS (`transport plain ssl FILE`); the PEM is written to
    /// `listener.pem` in the relay's directory.
    pub tls_pem: Option<String>,
}

impl RelayConfig {
    pub fn hashing(members: &[u16]) -> RelayConfig {
        RelayConfig {
            members: members.to_vec(),
            cluster: "fnv1a_ch",
            queue: QUEUE,
            tls_pem: None,
        }
    }

    /// The same with a TLS listener presenting `cert_and_key_pem` (the
    /// certificate chain and the private key, PEM, in one string).
    pub fn tls(mut self, cert_and_key_pem: impl Into<String>) -> RelayConfig {
        self.tls_pem = Some(cert_and_key_pem.into());
        self
    }

    /// The relay's config file for listening on `port`; a TLS listener's
    /// PEM is named relative to the relay's working directory (its own
    /// directory).
    pub fn render(&self, port: u16) -> String {
        self.render_in(port, Path::new(TLS_PEM_FILE))
    }

    /// The config file, a TLS listener's PEM being at `pem`.
    fn render_in(&self, port: u16, pem: &Path) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let transport = match self.tls_pem {
            None => String::new(),
            Some(_) => format!("transport plain ssl {} ", pem.display()),
        };
        format!(
            "cluster c {} {} ;\nmatch * send to c ;\nlisten type linemode {transport}127.0.0.1:{port} proto tcp ;\n",
            self.cluster,
            members.join(" ")
        )
    }
}

enum StartError {
    PortClash(String),
    Fatal(String),
}

/// A carbon-c-relay child process listening on 127.0.0.1, its config and log
/// in a temporary directory. Killed (SIGKILL), and the directory removed,
/// on drop.
pub struct RelayServer {
    child: Child,
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    config: RelayConfig,
    /// How many times it was started (1 for the first run).
    runs: usize,
}

impl RelayServer {
    /// Starts a relay with `config` on a free port; panics if it cannot.
    pub fn start(bin: &Path, config: RelayConfig) -> RelayServer {
        let dir = fresh_dir();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = pick_port();
            match Self::try_start(bin, &dir, port, &config, 1) {
                Ok(relay) => return relay,
                Err(StartError::PortClash(why)) => failures.push(why),
                Err(StartError::Fatal(why)) => {
                    let _ = fs::remove_dir_all(&dir);
                    panic!("carbon-c-relay did not start: {why}");
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "carbon-c-relay did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    fn log_path(dir: &Path, run: usize) -> PathBuf {
        dir.join(format!("relay.{run}.log"))
    }

    fn try_start(
        bin: &Path,
        dir: &Path,
        port: u16,
        config: &RelayConfig,
        run: usize,
    ) -> Result<RelayServer, StartError> {
        let fatal = |what: &str, e: io::Error| StartError::Fatal(format!("{what}: {e}"));
        let conf = dir.join("relay.conf");
        let pem = dir.join(TLS_PEM_FILE);
        if let Some(text) = &config.tls_pem {
            fs::write(&pem, text).map_err(|e| fatal("writing the listener's PEM", e))?;
        }
        fs::write(&conf, config.render_in(port, &pem))
            .map_err(|e| fatal("writing relay.conf", e))?;
        let log = File::create(Self::log_path(dir, run)).map_err(|e| fatal("creating log", e))?;
        let log_err = log.try_clone().map_err(|e| fatal("cloning log", e))?;
        let parent = std::process::id() as c_int;
        let mut command = Command::new(bin);
        command
            .arg("-f")
            .arg(&conf)
            .args(["-s", "-w", "2", "-q", &config.queue.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl and getppid are async-signal-safe system calls; the
        // closure allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // Dies with the thread that started it (see the module docs);
                // if that already happened, exit now.
                if prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if getppid() != parent {
                    return Err(io::Error::other("the test process is gone"));
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| fatal(&format!("spawning {}", bin.display()), e))?;
        let mut relay = RelayServer {
            child,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            config: config.clone(),
            runs: run,
        };
        match relay.wait_until_ready() {
            Ok(()) => Ok(relay),
            Err(e) => {
                relay.kill();
                // Not ours to remove: the caller may retry in it.
                relay.dir = PathBuf::new();
                Err(e)
            }
        }
    }

    /// Waits until the relay alone listens on its port.
    fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                let message = format!(
                    "carbon-c-relay exited with {status} while starting on port {}; log tail:\n{}",
                    self.port,
                    tail(&log, LOG_TAIL_LINES)
                );
                return Err(if log.contains("in use") {
                    StartError::PortClash(message)
                } else {
                    StartError::Fatal(message)
                });
            }
            if let Some(sockets) = listening_sockets(self.port) {
                let ours = process_sockets(self.child.id());
                match sockets.as_slice() {
                    [] => {}
                    [inode] if ours.contains(inode) => return Ok(()),
                    [_] => {} // someone else's, or ours not yet in fd/
                    several => {
                        return Err(StartError::PortClash(format!(
                            "{} sockets listen on port {}",
                            several.len(),
                            self.port
                        )))
                    }
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(StartError::Fatal(format!(
                    "carbon-c-relay did not listen on port {} within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    tail(&self.log(), LOG_TAIL_LINES)
                )));
            }
            thread::sleep(POLL);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the relay with SIGTERM, as an init system would, and waits
    /// until it exited (it tries to deliver its queues first, then drops
    /// what is left and logs how much: see
    /// [`dropped_at_shutdown`](Self::dropped_at_shutdown)). Panics if it is
    /// still running after 30 s.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}: {status}", self.child.id());
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "carbon-c-relay still runs 30 s after SIGTERM; log:\n{}",
                tail(&self.log(), LOG_TAIL_LINES)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the relay again on the SAME port with the same config (killing
    /// the running one first, if any) and waits until it listens. Each run
    /// logs to its own file ([`log`](Self::log) is the current run's,
    /// [`all_logs`](Self::all_logs) every run's).
    pub fn restart(&mut self) {
        self.kill();
        let run = self.runs + 1;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match Self::try_start(&self.bin, &self.dir, self.port, &self.config, run) {
                Ok(mut relay) => {
                    std::mem::swap(&mut self.child, &mut relay.child);
                    self.runs = run;
                    relay.dir = PathBuf::new();
                    return;
                }
                // The port may still be held for a moment by the old run.
                Err(StartError::PortClash(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100))
                }
                Err(StartError::PortClash(why) | StartError::Fatal(why)) => {
                    panic!(
                        "carbon-c-relay did not restart on port {}: {why}",
                        self.port
                    )
                }
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The current run's output (its log goes to stdout in the foreground).
    pub fn log(&self) -> String {
        fs::read_to_string(Self::log_path(&self.dir, self.runs)).unwrap_or_default()
    }

    /// Every run's output, oldest first.
    pub fn all_logs(&self) -> String {
        (1..=self.runs)
            .map(|run| fs::read_to_string(Self::log_path(&self.dir, run)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `n` lines of every run's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.all_logs(), n)
    }

    /// What the relay said it dropped, over all runs: the sum of the `N` of
    /// its `dropping N metrics` and `... dropped N metrics` log lines (at
    /// shutdown, for queues it could not deliver; with `-s` also while
    /// running, when a destination's queue overflows).
    pub fn reported_drops(&self) -> u64 {
        let log = self.all_logs();
        let mut total = 0;
        for line in log.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(3) {
                if (pair[0] == "dropping" || pair[0] == "dropped") && pair[2].starts_with("metric")
                {
                    if let Ok(n) = pair[1].parse::<u64>() {
                        total += n;
                    }
                }
            }
        }
        total
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            if std::env::var_os(super::carbon::KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0")
            {
                let _ = writeln!(io::stderr(), "kept relay state in {}", self.dir.display());
            } else {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// Two carbon-caches behind one carbon-c-relay that hashes every series to
/// one of them (`fnv1a_ch`). Dropping it stops all three.
pub struct Topology {
    /// Declared first: dropped (killed) before the caches.
    pub relay: RelayServer,
    pub caches: [CarbonServer; 2],
}

impl Topology {
    /// Starts the three, or skips by the one rule (see the module docs).
    pub fn start_or_skip() -> Option<Topology> {
        Self::start_with(None)
    }

    /// The same, the relay's listener terminating TLS with the certificate
    /// chain and private key in `cert_and_key_pem` (see the module docs).
    /// [`config`](Self::config) is still plaintext: add `.tls(..)`.
    pub fn start_tls_or_skip(cert_and_key_pem: impl Into<String>) -> Option<Topology> {
        Self::start_with(Some(cert_and_key_pem.into()))
    }

    fn start_with(tls_pem: Option<String>) -> Option<Topology> {
        let bin = super::or_skip(
            locate().map_err(|why| how_to_get_relay(&why)),
            "carbon-c-relay not available",
        )?;
        let a = CarbonServer::start_or_skip()?;
        let b = CarbonServer::start_or_skip()?;
        let mut config = RelayConfig::hashing(&[a.port(), b.port()]);
        config.tls_pem = tls_pem;
        let relay = RelayServer::start(&bin, config);
        Some(Topology {
            relay,
            caches: [a, b],
        })
    }

    /// `127.0.0.1`-relay config for graphyte.
    pub fn config(&self) -> graphyte::Config {
        graphyte::Config::new("127.0.0.1").port(self.relay.port())
    }

    /// The points of `metric` in each cache (empty where it has no file).
    pub fn points(&self, metric: &str) -> [Vec<(u32, f64)>; 2] {
        [
            self.caches[0].read_points(metric),
            self.caches[1].read_points(metric),
        ]
    }

    /// Like [`points`](Self::points), but a file that cannot be read (carbon
    /// may be creating it) counts as empty: for polling.
    pub fn points_so_far(&self, metric: &str) -> [Vec<(u32, f64)>; 2] {
        let read = |c: usize| {
            super::whisper::read_points(&self.caches[c].whisper_path(metric)).unwrap_or_default()
        };
        [read(0), read(1)]
    }

    /// Which caches hold a whisper file for `metric`.
    pub fn holders(&self, metric: &str) -> Vec<usize> {
        (0..2)
            .filter(|&c| self.caches[c].whisper_path(metric).is_file())
            .collect()
    }

    /// Polls every 100 ms until `ready(points in cache 0, points in cache
    /// 1)` holds for every metric of `metrics`, or `timeout`; returns, per
    /// metric, the points in each cache when it stopped.
    pub fn wait_for(
        &self,
        metrics: &[String],
        timeout: Duration,
        ready: impl Fn(&[Vec<(u32, f64)>; 2]) -> bool,
    ) -> BTreeMap<String, [Vec<(u32, f64)>; 2]> {
        let deadline = Instant::now() + timeout;
        let mut found: BTreeMap<String, [Vec<(u32, f64)>; 2]> = BTreeMap::new();
        loop {
            let mut all = true;
            for metric in metrics {
                let done = found.get(metric).is_some_and(&ready);
                if !done {
                    let points = self.points_so_far(metric);
                    all &= ready(&points);
                    found.insert(metric.clone(), points);
                }
            }
            if all || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// For failure messages: both caches' and the relay's log tails.
    pub fn logs(&self) -> String {
        format!(
            "relay log tail:\n{}\ncache 0 log tail:\n{}\ncache 1 log tail:\n{}",
            self.relay.log_tail(LOG_TAIL_LINES),
            tail(&self.caches[0].console_log(), 20),
            tail(&self.caches[1].console_log(), 20),
        )
    }
}
