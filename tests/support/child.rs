//! One harness for every server the tests run as a child process
//! (carbon-cache, carbon-c-relay, VictoriaMetrics): a [`Launch`] says what to
//! run and when it is ready; [`ChildServer::spawn`] starts it with its output
//! in a log file and waits until it is ready (the ports it must own, a log
//! line, a health URL), telling a lost port ([`StartError::PortClash`], the
//! caller retries on other ports with [`retry_on_clash`]) from any other
//! failure. The child is killed when the value drops, and also when the test
//! dies: with `PR_SET_PDEATHSIG = SIGKILL` ([`Launch::die_with_thread`]:
//! Linux sends it when the *thread* that started the child ends, so start a
//! server on the test's own thread) or by watching a stdin pipe the test
//! process holds ([`Launch::stdin_pipe`], carbon's wrapper). When a test
//! fails (the thread panics) the log's tail is printed as the value drops, so
//! the failure shows what the server said.
//!
//! Also here, for every server: free loopback ports never handed out twice in
//! one process ([`pick_ports`]), fresh state directories removed on drop
//! unless `GRAPHYTE_KEEP_CARBON_STATE` is set ([`fresh_dir`], [`remove_dir`]),
//! finding a binary ([`locate_binary`]) and a small HTTP client ([`http`]).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::raw::{c_int, c_ulong};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Env var that keeps each server's state directory after the test.
pub const KEEP_ENV: &str = "GRAPHYTE_KEEP_CARBON_STATE";
/// How many log lines a failure message shows.
pub const LOG_TAIL_LINES: usize = 60;
const READY_POLL: Duration = Duration::from_millis(20);

extern "C" {
    fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong, arg4: c_ulong, arg5: c_ulong) -> c_int;
    fn getppid() -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
}
const PR_SET_PDEATHSIG: c_int = 1;
const SIGKILL: c_ulong = 9;
const SIGTERM: c_int = 15;

/// A socket's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// What makes a starting server ready; every condition of a [`Launch`] must
/// hold.
#[derive(Clone, Debug)]
pub enum Ready {
    /// The child alone holds a socket on each of these loopback ports
    /// (listening, for TCP), from /proc; where /proc is missing, the TCP
    /// ports accept a connection. A second socket on one of them is a port
    /// clash (a server with SO_REUSEPORT would share the traffic).
    Sockets(Vec<(Proto, u16)>),
    /// A log line contains this text.
    LogLine(String),
    /// `GET http://127.0.0.1:PORT/PATH` answers 200.
    Health { port: u16, path: String },
}

/// How to run one server.
#[derive(Clone, Debug)]
pub struct Launch {
    /// For messages: `carbon-cache`, `carbon-c-relay`, ...
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub env_remove: Vec<OsString>,
    /// Working directory.
    pub dir: PathBuf,
    /// Where stdout and stderr go (truncated at start).
    pub log: PathBuf,
    pub ready: Vec<Ready>,
    pub timeout: Duration,
    /// Text of the log (lowercased) that means a port was taken, when the
    /// child exits while starting.
    pub clash_marker: &'static str,
    /// stdin is a pipe held by this process (EOF when it dies); else null.
    pub stdin_pipe: bool,
    /// `PR_SET_PDEATHSIG = SIGKILL`: the child dies with the thread that
    /// started it.
    pub die_with_thread: bool,
}

impl Launch {
    pub fn new(name: &'static str, program: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Launch {
            name,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            log: dir.join(format!("{name}.log")),
            dir,
            ready: Vec::new(),
            timeout: Duration::from_secs(15),
            clash_marker: "in use",
            stdin_pipe: false,
            die_with_thread: true,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = path.into();
        self
    }

    pub fn ready(mut self, ready: Ready) -> Self {
        self.ready.push(ready);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn clash_marker(mut self, marker: &'static str) -> Self {
        self.clash_marker = marker;
        self
    }

    /// stdin a pipe this process holds, instead of `PR_SET_PDEATHSIG`.
    pub fn stdin_pipe(mut self) -> Self {
        self.stdin_pipe = true;
        self.die_with_thread = false;
        self
    }
}

/// Why a start attempt failed.
#[derive(Debug)]
pub enum StartError {
    /// Someone else has (one of) the ports: try other ones.
    PortClash(String),
    /// Anything else: give up.
    Fatal(String),
}

impl StartError {
    pub fn message(&self) -> &str {
        match self {
            StartError::PortClash(why) | StartError::Fatal(why) => why,
        }
    }
}

/// Runs `attempt` up to `attempts` times while it fails with a port clash
/// (each attempt picks new ports); panics with every failure otherwise.
pub fn retry_on_clash<T>(
    what: &str,
    attempts: usize,
    mut attempt: impl FnMut() -> Result<T, StartError>,
) -> T {
    let mut failures = Vec::new();
    for _ in 0..attempts {
        match attempt() {
            Ok(server) => return server,
            Err(StartError::PortClash(why)) => failures.push(why),
            Err(StartError::Fatal(why)) => panic!("{what} did not start: {why}"),
        }
    }
    panic!(
        "{what} did not start in {attempts} attempts, each lost a port:\n{}",
        failures.join("\n---\n")
    );
}

/// A running child server. Killed (SIGKILL) and reaped on drop; its log's
/// tail is printed then if the thread is panicking (a failing test).
pub struct ChildServer {
    child: Child,
    launch: Launch,
}

impl ChildServer {
    /// Starts `launch` and waits until it is ready.
    pub fn spawn(launch: &Launch) -> Result<ChildServer, StartError> {
        let fatal = |what: &str, e: io::Error| StartError::Fatal(format!("{what}: {e}"));
        let log = File::create(&launch.log)
            .map_err(|e| fatal(&format!("creating {}", launch.log.display()), e))?;
        let log_err = log.try_clone().map_err(|e| fatal("cloning the log", e))?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .current_dir(&launch.dir)
            .stdin(if launch.stdin_pipe {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log)
            .stderr(log_err);
        for key in &launch.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        if launch.die_with_thread {
            let parent = std::process::id() as c_int;
            // SAFETY: prctl and getppid are async-signal-safe system calls;
            // the closure allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    if prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The thread that started it may be gone already.
                    if getppid() != parent {
                        return Err(io::Error::other("the test process is gone"));
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .map_err(|e| fatal(&format!("spawning {}", launch.program.display()), e))?;
        let mut server = ChildServer {
            child,
            launch: launch.clone(),
        };
        match server.wait_until_ready() {
            Ok(()) => Ok(server),
            Err(e) => {
                server.kill();
                Err(e)
            }
        }
    }

    fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let started = Instant::now();
        let name = self.launch.name;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                let message = format!(
                    "{name} exited with {status} while starting; log tail:\n{}",
                    tail(&log, LOG_TAIL_LINES)
                );
                return Err(if log.to_lowercase().contains(self.launch.clash_marker) {
                    StartError::PortClash(message)
                } else {
                    StartError::Fatal(message)
                });
            }
            let mut ready = true;
            for condition in &self.launch.ready {
                match self.check(condition) {
                    Ok(true) => {}
                    Ok(false) => ready = false,
                    Err(clash) => return Err(StartError::PortClash(clash)),
                }
                if !ready {
                    break;
                }
            }
            if ready {
                return Ok(());
            }
            if started.elapsed() > self.launch.timeout {
                return Err(StartError::Fatal(format!(
                    "{name} was not ready ({:?}) within {:?}; log tail:\n{}",
                    self.launch.ready,
                    self.launch.timeout,
                    tail(&self.log(), LOG_TAIL_LINES)
                )));
            }
            thread::sleep(READY_POLL);
        }
    }

    /// Whether `condition` holds; `Err` on a port clash.
    fn check(&self, condition: &Ready) -> Result<bool, String> {
        match condition {
            Ready::Sockets(sockets) => Ok(sockets_ready(self.child.id(), sockets)?),
            Ready::LogLine(text) => Ok(self.log().contains(text.as_str())),
            Ready::Health { port, path } => Ok(matches!(http::get(*port, path), Ok((200, _)))),
        }
    }

    /// Kills the child with SIGKILL and reaps it (its sockets are closed
    /// when this returns).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as an init system would, and waits until the child
    /// exited; panics if it still runs after `timeout`. Returns how long it
    /// took.
    pub fn terminate(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let pid = self.child.id() as c_int;
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            let result = unsafe { kill(pid, SIGTERM) };
            assert!(
                result == 0,
                "kill -TERM {pid}: {}",
                io::Error::last_os_error()
            );
        }
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{} still runs {timeout:?} after SIGTERM; log tail:\n{}",
                self.launch.name,
                tail(&self.log(), LOG_TAIL_LINES)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it runs (stopped with SIGSTOP still counts).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it printed.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.launch.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.launch.log
    }

    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// The child's peak resident memory (VmHWM), in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            // Captured with the test's output, shown because it failed.
            eprintln!(
                "--- {} (pid {}) log {}, tail:\n{}\n--- end of {} log",
                self.launch.name,
                self.child.id(),
                self.launch.log.display(),
                tail(&self.log(), LOG_TAIL_LINES),
                self.launch.name
            );
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Ports handed out in this process; never twice, so servers started by
/// parallel tests cannot pick the same ones.
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// Distinct loopback ports free right now and never handed out before, one
/// per entry of `kinds`: free for TCP, and with `true` for UDP as well (a
/// listener on both, like Carbon's line port). The probes stay bound until
/// all are chosen, so the kernel cannot hand one out twice.
pub fn pick_ports(udp_too: &[bool]) -> Vec<u16> {
    let mut used = used_ports().lock().unwrap_or_else(|e| e.into_inner());
    let mut probes = Vec::new();
    let mut ports = Vec::new();
    for &udp in udp_too {
        let mut found = None;
        for _ in 0..200 {
            let probe =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 (TCP)");
            let port = probe.local_addr().expect("local_addr").port();
            probes.push(probe);
            if used.contains(&port) {
                continue;
            }
            if udp && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                continue;
            }
            found = Some(port);
            break;
        }
        let port = found.expect("found no unused loopback port in 200 tries");
        used.insert(port);
        ports.push(port);
    }
    ports
}

/// Makes a new, empty directory `graphyte-KIND-...` under the temp dir.
pub fn fresh_dir(kind: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "graphyte-{kind}-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

/// Removes a server's state directory, unless `GRAPHYTE_KEEP_CARBON_STATE`
/// is set or the test is failing (the thread panics: the log stays, for
/// [`ChildServer`]'s drop to print, and the files to look at); then says
/// where it is.
pub fn remove_dir(dir: &Path, what: &str) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    if keep || thread::panicking() {
        let _ = writeln!(io::stderr(), "kept {what} state in {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// The repository root: this package's directory, or the nearest parent
/// with scripts/test (for the tests of the graphyte package).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("scripts/test").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Finds a server binary: `$ENV_VAR` (an error if it names no file), else
/// `name` on `PATH`, else `<repo>/FALLBACK` (where ./scripts/test unpacks
/// Debian's package).
pub fn locate_binary(env_var: &str, name: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{env_var}={} does not exist", bin.display()))
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|bin| bin.is_file())
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let fallback = repo_root().join(fallback);
    if fallback.is_file() {
        Ok(fallback)
    } else {
        Err(format!(
            "{env_var} is not set, no {name} on PATH and no {}",
            fallback.display()
        ))
    }
}

/// Sockets bound to `port` according to /proc/net/`table` (`tcp`, `tcp6`,
/// `udp`, `udp6`), as their inode numbers; for TCP only listening ones.
/// `None` where /proc is not available.
fn proc_sockets(table: &str, port: u16) -> Option<Vec<u64>> {
    const TCP_LISTEN: &str = "0A";
    let listen_only = table.starts_with("tcp");
    let text = fs::read_to_string(format!("/proc/net/{table}")).ok()?;
    let inodes = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st queues tr retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)?
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())?;
            let wanted = local_port == port && (!listen_only || fields.get(3)? == &TCP_LISTEN);
            wanted.then(|| fields.get(9)?.parse().ok()).flatten()
        })
        .collect();
    Some(inodes)
}

/// Inodes of the sockets process `pid` has open, from /proc/PID/fd.
fn process_sockets(pid: u32) -> Option<HashSet<u64>> {
    let entries = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes = entries
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
        .collect();
    Some(inodes)
}

/// [`Ready::Sockets`]: exact from /proc (it opens no connection, so the
/// server's log stays free of probes); else every TCP port accepts.
fn sockets_ready(pid: u32, wanted: &[(Proto, u16)]) -> Result<bool, String> {
    let from_proc = || -> Option<Result<bool, String>> {
        let owned = process_sockets(pid)?;
        let mut ready = true;
        for &(proto, port) in wanted {
            let table = match proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let mut sockets = proc_sockets(table, port)?;
            sockets.extend(proc_sockets(&format!("{table}6"), port).unwrap_or_default());
            match sockets.as_slice() {
                [] => ready = false,
                [inode] => ready &= owned.contains(inode),
                several => {
                    return Some(Err(format!(
                        "{} {table} sockets are bound to port {port}",
                        several.len()
                    )))
                }
            }
        }
        Some(Ok(ready))
    };
    from_proc().unwrap_or_else(|| {
        Ok(wanted
            .iter()
            .filter(|(proto, _)| *proto == Proto::Tcp)
            .all(|&(_, port)| {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            }))
    })
}

/// A minimal HTTP/1.0 client for the servers' APIs on 127.0.0.1 (one
/// request per connection; the server closes it after the response).
pub mod http {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// `GET PATH` (with its query string): status and body.
    pub fn get(port: u16, path_and_query: &str) -> io::Result<(u16, String)> {
        request(
            port,
            &format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
        )
    }

    /// `POST PATH` with a form body (`application/x-www-form-urlencoded`).
    pub fn post_form(port: u16, path: &str, form: &[(&str, &str)]) -> io::Result<(u16, String)> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        request(
            port,
            &format!(
                "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    }

    fn request(port: u16, request: &str) -> io::Result<(u16, String)> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::other(format!("no HTTP header end in {response:?}")))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no HTTP status in {head:?}")))?;
        Ok((status, body.to_owned()))
    }

    /// Percent-encodes everything but unreserved characters.
    pub fn encode(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(byte as char)
                }
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    }
}
