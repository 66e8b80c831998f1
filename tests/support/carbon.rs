//! A throw-away carbon-cache (the Python one from PyPI) for integration tests.
//!
//! `./scripts/test` installs carbon into a virtualenv and exports
//! `GRAPHYTE_CARBON_VENV` (the venv) and `GRAPHYTE_REQUIRE_CARBON=1`.
//! Each [`CarbonServer`] runs its own carbon-cache in the foreground, on free
//! loopback ports, with all its state in a fresh temporary directory, and
//! kills it when dropped.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::child::{self, tail, ChildServer, Launch, Proto, Ready, StartError};
use super::sha256;
use super::whisper;

/// Env var naming the virtualenv that holds carbon and whisper.
pub const VENV_ENV: &str = "GRAPHYTE_CARBON_VENV";
/// Env var that keeps each server's state directory after the test.
/// Env var that keeps each server's state directory after the test.
pub use super::child::KEEP_ENV;
/// Env var that turns "carbon not available" (and every other skip, see
/// [`super::skip`]) from a skip into a failure.
pub use super::REQUIRE_ENV;

/// How long carbon may take to listen on all its ports (it needs ~0.3-1 s).
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How many sets of ports to try when carbon cannot have the first ones.
const START_ATTEMPTS: usize = 5;
/// How often `wait_for_points` reads the whisper file again.
const POINTS_POLL: Duration = Duration::from_millis(50);
/// How many log lines a failure message shows.
const LOG_TAIL_LINES: usize = 60;

/// Python run as `python -c WRAPPER carbon-cache.py ARGS...`: it runs
/// carbon-cache as its script would, plus a thread that exits the process as
/// soon as stdin reaches EOF. The test process holds the other end of that
/// pipe, so carbon dies with it even if the test process is killed and no
/// `Drop` runs.
const WRAPPER: &str = r#"
import os, runpy, sys, threading

def _exit_when_parent_goes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)

threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"#;

/// Where carbon is installed.
struct Install {
    python: PathBuf,
    script: PathBuf,
}

/// Finds the carbon venv: `$GRAPHYTE_CARBON_VENV`, else `<repo>/.venv`.
fn locate() -> Result<Install, String> {
    let venv = match std::env::var_os(VENV_ENV) {
        Some(venv) if !venv.is_empty() => PathBuf::from(venv),
        _ => {
            // The repository root: this package's directory, or the nearest
            // parent with scripts/test (for tests of the graphyte package).
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = manifest
                .ancestors()
                .find(|dir| dir.join("scripts/test").is_file())
                .unwrap_or(manifest);
            let fallback = root.join(".venv");
            if !fallback.is_dir() {
                return Err(format!(
                    "{VENV_ENV} is not set and {} does not exist",
                    fallback.display()
                ));
            }
            fallback
        }
    };
    let install = Install {
        python: venv.join("bin").join("python"),
        script: venv.join("bin").join("carbon-cache.py"),
    };
    for file in [&install.python, &install.script] {
        if !file.is_file() {
            return Err(format!("{} does not exist", file.display()));
        }
    }
    Ok(install)
}

fn how_to_get_carbon(why: &str) -> String {
    format!(
        "carbon-cache is not available ({why}). Run the tests with ./scripts/test, which \
         installs carbon and whisper from PyPI into a virtualenv (default <repo>/.venv, \
         override with GRAPHYTE_VENV) and sets {VENV_ENV} and {REQUIRE_ENV}=1; or point \
         {VENV_ENV} at a venv made with `python3 -m venv V && V/bin/pip install carbon whisper`."
    )
}

/// The ports of one carbon-cache.
#[derive(Clone, Copy, Debug)]
struct Ports {
    /// Plaintext protocol, TCP and UDP.
    line: u16,
    pickle: u16,
    cache_query: u16,
}

/// Picks three distinct free loopback ports (the harness's
/// [`child::pick_ports`]); the line port is free for both TCP and UDP.
fn pick_ports() -> Ports {
    let ports = child::pick_ports(&[true, false, false]);
    Ports {
        line: ports[0],
        pickle: ports[1],
        cache_query: ports[2],
    }
}

/// Writes carbon.conf and storage-schemas.conf into `<state>/conf`.
fn write_config(state: &Path, ports: Ports) -> io::Result<()> {
    let p = |sub: &str| state.join(sub).display().to_string();
    let carbon_conf = format!(
        "[cache]
STORAGE_DIR = {storage}
LOCAL_DATA_DIR = {whisper}
WHITELISTS_DIR = {lists}
LOG_DIR = {log}
PID_DIR = {run}
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
CACHE_WRITE_STRATEGY = naive
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
ENABLE_UDP_LISTENER = True
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query}
CARBON_METRIC_INTERVAL = 0
ENABLE_TAGS = False
",
        storage = p("storage"),
        whisper = p("storage/whisper"),
        lists = p("storage/lists"),
        log = p("log"),
        run = p("run"),
        line = ports.line,
        pickle = ports.pickle,
        query = ports.cache_query,
    );
    fs::write(state.join("conf/carbon.conf"), carbon_conf)?;
    fs::write(
        state.join("conf/storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 1s:1h\n",
    )
}

/// A carbon-cache child process listening on loopback (through the one
/// harness, [`super::child`]), with its state in a temporary directory.
/// Killed, and the directory removed, on drop. It also exits when the test
/// process dies: the wrapper it runs under watches a stdin pipe the test
/// holds (not `PR_SET_PDEATHSIG`, so a carbon may be started or restarted
/// on any thread).
pub struct CarbonServer {
    server: ChildServer,
    state_dir: PathBuf,
    ports: Ports,
}

impl CarbonServer {
    /// Starts a carbon-cache and waits until it listens. Panics, saying how
    /// to get carbon, if it is not installed.
    pub fn start() -> CarbonServer {
        match locate() {
            Ok(install) => Self::start_with(&install),
            Err(why) => panic!("{}", how_to_get_carbon(&why)),
        }
    }

    /// Starts a carbon-cache like [`start`](Self::start) if carbon is
    /// installed. If it is not, prints a loud `SKIPPED` notice and returns
    /// `None`, unless `GRAPHYTE_REQUIRE_CARBON=1` (set by ./scripts/test),
    /// which makes it panic instead. Typical use:
    ///
    /// ```ignore
    /// let Some(carbon) = support::CarbonServer::start_or_skip() else { return };
    /// ```
    pub fn start_or_skip() -> Option<CarbonServer> {
        match locate() {
            Ok(install) => Some(Self::start_with(&install)),
            Err(why) => {
                // The one rule for every skip (fails under REQUIRE_ENV=1).
                super::skip(&format!(
                    "carbon not available: {}",
                    how_to_get_carbon(&why)
                ));
                None
            }
        }
    }

    fn start_with(install: &Install) -> CarbonServer {
        let state_dir = child::fresh_dir("carbon");
        for sub in ["conf", "storage/whisper", "storage/lists", "log", "run"] {
            fs::create_dir_all(state_dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", state_dir.display()));
        }
        let (server, ports) = child::retry_on_clash("carbon-cache", START_ATTEMPTS, || {
            let ports = pick_ports();
            Self::spawn(install, &state_dir, ports).map(|server| (server, ports))
        });
        CarbonServer {
            server,
            state_dir,
            ports,
        }
    }

    /// Writes the config and starts carbon on `ports`; ready when carbon
    /// alone holds a listening TCP socket on each port and a UDP socket on
    /// the line port (carbon sets SO_REUSEPORT, so it would silently share a
    /// port with another carbon: that counts as a clash).
    fn spawn(install: &Install, state: &Path, ports: Ports) -> Result<ChildServer, StartError> {
        write_config(state, ports)
            .map_err(|e| StartError::Fatal(format!("writing carbon.conf: {e}")))?;
        let pidfile = state.join("run/carbon-cache-a.pid");
        let _ = fs::remove_file(&pidfile);
        let launch = Launch::new("carbon-cache", &install.python, state)
            .arg("-c")
            .arg(WRAPPER)
            .arg(&install.script)
            .arg(format!(
                "--config={}",
                state.join("conf/carbon.conf").display()
            ))
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--logdir={}", state.join("log").display()))
            .arg("--nodaemon")
            .arg("start")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("GRAPHITE_ROOT")
            .env_remove("GRAPHITE_CONF_DIR")
            .env_remove("GRAPHITE_STORAGE_DIR")
            .stdin_pipe()
            .log(state.join("log/carbon.log"))
            .timeout(START_TIMEOUT)
            .clash_marker("address already in use")
            .ready(Ready::Sockets(vec![
                (Proto::Tcp, ports.line),
                (Proto::Udp, ports.line),
                (Proto::Tcp, ports.pickle),
                (Proto::Tcp, ports.cache_query),
            ]));
        ChildServer::spawn(&launch)
    }

    /// Kills carbon-cache with SIGKILL, like a crash, and waits until the
    /// process is gone (so its sockets are closed when this returns). Its
    /// state directory and ports are kept for [`restart`](Self::restart).
    /// Points carbon had received but not yet written to disk (about the last
    /// second) are lost, as in any crash: carbon does not flush its cache
    /// even on SIGTERM.
    pub fn stop_process(&mut self) {
        self.server.kill();
    }

    /// Whether the carbon-cache process is running (it may be stopped with
    /// SIGSTOP, which still counts as running).
    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Starts carbon-cache again on the SAME ports with the same state
    /// directory (whisper files kept), killing the running one first if
    /// there is one, and waits until it listens. The previous run's output
    /// is kept in `log/carbon.N.log`; [`console_log`](Self::console_log)
    /// shows the new run's. Panics if carbon cannot have its ports back.
    pub fn restart(&mut self) {
        self.server.kill();
        let install = locate().unwrap_or_else(|why| panic!("{}", how_to_get_carbon(&why)));
        let log_dir = self.state_dir.join("log");
        let previous = (1..)
            .map(|n| log_dir.join(format!("carbon.{n}.log")))
            .find(|path| !path.exists())
            .expect("a free log name");
        let _ = fs::rename(log_dir.join("carbon.log"), previous);
        match Self::spawn(&install, &self.state_dir, self.ports) {
            Ok(server) => self.server = server,
            Err(e) => panic!(
                "carbon-cache did not restart on {:?}: {}",
                self.ports,
                e.message()
            ),
        }
    }

    /// The plaintext (line protocol) port, for both TCP and UDP.
    pub fn port(&self) -> u16 {
        self.ports.line
    }

    /// `"127.0.0.1:PORT"` of the plaintext port (TCP and UDP).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.line)
    }

    /// The pickle protocol port (TCP).
    pub fn pickle_port(&self) -> u16 {
        self.ports.pickle
    }

    /// The cache-query port (TCP), which answers for points not yet on disk.
    pub fn cache_query_port(&self) -> u16 {
        self.ports.cache_query
    }

    /// The OS process id of carbon-cache.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The temporary directory holding conf/, storage/, log/ and run/.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Carbon's STORAGE_DIR (`<state>/storage`); whisper files are under
    /// [`whisper_dir`](Self::whisper_dir).
    pub fn storage_dir(&self) -> PathBuf {
        self.state_dir.join("storage")
    }

    /// Carbon's LOCAL_DATA_DIR (`<state>/storage/whisper`), the root of the
    /// whisper tree.
    pub fn whisper_dir(&self) -> PathBuf {
        self.state_dir.join("storage/whisper")
    }

    /// Where carbon stores `metric` (see [`whisper_relative_path`]).
    pub fn whisper_path(&self, metric: &str) -> PathBuf {
        self.whisper_dir().join(whisper_relative_path(metric))
    }

    /// The points of `metric` on disk now, sorted by timestamp; empty if its
    /// file does not exist (yet). Panics if the file is malformed.
    pub fn read_points(&self, metric: &str) -> Vec<(u32, f64)> {
        let path = self.whisper_path(metric);
        match whisper::read_points(&path) {
            Ok(points) => points,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }

    /// Polls every 50 ms until the whisper file of `metric` holds at least
    /// `expected_count` points, and returns them sorted by timestamp. Panics
    /// after `timeout` with what it found and carbon's log. Carbon writes
    /// about 1 s after receiving, so a timeout of 5 s is plenty.
    pub fn wait_for_points(
        &self,
        metric: &str,
        expected_count: usize,
        timeout: Duration,
    ) -> Vec<(u32, f64)> {
        let path = self.whisper_path(metric);
        let deadline = Instant::now() + timeout;
        loop {
            // A file carbon is still creating may be short: just look again.
            let last = whisper::read_points(&path);
            if let Ok(points) = &last {
                if points.len() >= expected_count {
                    return points.clone();
                }
            }
            if Instant::now() >= deadline {
                let found = match last {
                    Ok(points) => format!("{} points: {points:?}", points.len()),
                    Err(e) => format!("no points ({e})"),
                };
                panic!(
                    "timed out after {timeout:?} waiting for {expected_count} points of {metric:?} \
                     in {}; found {found}\nwhisper files: {:?}\ncarbon log tail:\n{}",
                    path.display(),
                    self.whisper_files(),
                    tail(&self.console_log(), LOG_TAIL_LINES)
                );
            }
            thread::sleep(POINTS_POLL);
        }
    }

    /// Every `.wsp` file under [`whisper_dir`](Self::whisper_dir), relative
    /// to it, sorted.
    pub fn whisper_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if path.extension().is_some_and(|ext| ext == "wsp") {
                    out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
                }
            }
        }
        let root = self.whisper_dir();
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        files.sort();
        files
    }

    /// Everything carbon printed: in the foreground carbon logs to stdout
    /// instead of log files, one `DATE :: [TYPE] message` line per event
    /// (types `console`, `listener`, `query`, `clients`, `creates`, ...),
    /// plus Python tracebacks on stderr.
    pub fn console_log(&self) -> String {
        fs::read_to_string(self.state_dir.join("log/carbon.log")).unwrap_or_default()
    }

    /// The `[listener]` lines of the log, where carbon reports lines it
    /// rejected (`invalid line received from client ..., ignoring`). What a
    /// daemonized carbon would write to listener.log.
    pub fn listener_log(&self) -> String {
        self.console_log()
            .lines()
            .filter(|line| line.contains(" :: [listener] "))
            .map(|line| format!("{line}\n"))
            .collect()
    }
}

impl Drop for CarbonServer {
    fn drop(&mut self) {
        self.server.kill();
        child::remove_dir(&self.state_dir, "carbon");
    }
}

/// The normalised name under which carbon stores `metric`, mirroring
/// carbon's `TaggedSeries.parse(metric).path` (plaintext `name;k=v` form):
/// the name is the part before the first `;` with leading `~` stripped;
/// `k=v` pairs go into a map where the last duplicate wins and `name=` is
/// dropped; the result is `name + concat(sorted(";k=v" strings))` (sorted as
/// strings, not by key). Names carbon cannot parse are stored as they are.
///
/// Panics on OpenMetrics-style names (`m{k="v"}`), which are not mirrored.
pub fn normalize_metric(metric: &str) -> String {
    assert!(
        !(metric.ends_with("\"}") && metric.contains('{')),
        "OpenMetrics-style names are not supported by the test support: {metric:?}"
    );
    parse_carbon(metric).unwrap_or_else(|| metric.to_owned())
}

/// carbon's `TaggedSeries.parse_carbon(...).path`, or `None` where carbon
/// raises (and then keeps the raw name).
fn parse_carbon(path: &str) -> Option<String> {
    let mut segments = path.split(';');
    let metric = segments.next().filter(|m| !m.is_empty())?;
    let mut tags = BTreeMap::new();
    for segment in segments {
        let (tag, value) = segment.split_once('=')?;
        let valid = !tag.is_empty()
            && !value.is_empty()
            && !tag.contains([';', '!', '^', '='])
            && !value.contains(';')
            && !value.starts_with('~');
        if !valid {
            return None;
        }
        tags.insert(tag, value);
    }
    let name = metric.trim_start_matches('~');
    if name.is_empty() {
        return None;
    }
    let mut pairs: Vec<String> = tags
        .into_iter()
        .filter(|&(tag, _)| tag != "name")
        .map(|(tag, value)| format!(";{tag}={value}"))
        .collect();
    pairs.sort();
    Some(format!("{name}{}", pairs.concat()))
}

/// Where carbon's whisper backend stores `metric`, relative to its data
/// directory (default `TAG_HASH_FILENAMES = True`):
///
/// - plain `a.b.c` → `a/b/c.wsp` (`.` becomes `/`, leading `/` trimmed);
/// - tagged (the normalised name, see [`normalize_metric`], contains `;`) →
///   `_tagged/<h[0:3]>/<h[3:6]>/<h>.wsp` with `h` the lowercase hex SHA-256
///   of the normalised name.
pub fn whisper_relative_path(metric: &str) -> PathBuf {
    let normalized = normalize_metric(metric);
    if normalized.contains(';') {
        let h = sha256::hex_digest(normalized.as_bytes());
        PathBuf::from("_tagged")
            .join(&h[0..3])
            .join(&h[3..6])
            .join(format!("{h}.wsp"))
    } else {
        PathBuf::from(format!(
            "{}.wsp",
            normalized.replace('.', "/").trim_start_matches('/')
        ))
    }
}
