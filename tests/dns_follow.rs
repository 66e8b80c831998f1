//! Following the server when its address changes, with real resolution:
//! the system resolver, a host name whose `/etc/hosts` entry the test
//! writes and moves (from 127.0.0.2 to 127.0.0.3, a listener on each, the
//! same port), and a name server on loopback that never answers.
//!
//! Cases: TCP in interval mode and synchronous mode, and UDP, move to the
//! new address with nothing lost or sent twice (old + new = sent, counted
//! per connection) and log the change once; a name with two addresses whose
//! first refuses is served by the second before any backoff; a numeric host
//! is never resolved again; `dns_refresh(ZERO)` resolves only when
//! connecting; a name server that hangs holds neither a synchronous send,
//! nor `stop`, nor `Drop` past about the timeout.
//!
//! Editing `/etc/hosts` and `/etc/resolv.conf` needs root (`./scripts/test`
//! runs as root); without it the tests fail under `GRAPHYTE_REQUIRE_CARBON=1`
//! and otherwise skip loudly (`support::skip`). The files are edited in
//! place (they may be bind mounts) and restored byte for byte when a test
//! ends, also when it fails: the original stays untouched at the start of
//! `/etc/hosts` (a test only appends lines for names under
//! `.dns-follow.graphyte-test`, which nothing else resolves), and a backup
//! in the target directory restores the files after a run that was killed.
//! The tests of this binary run one at a time. The hanging name server
//! replaces `/etc/resolv.conf` for about three seconds: other programs'
//! lookups of names that are not in `/etc/hosts` wait during that time.
//!
//! The figures (time to follow, lines on each address) go to
//! `target/faults-report/dns_follow_*.json` for the README
//! (`scripts/figures`); `--nocapture` prints them.

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Protocol, Sender};
use log::{Level, Log, Metadata, Record};
use support::faults::Figures;

const OLD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NEW: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Where the name server that never answers listens.
const SILENT_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
/// Every name the tests resolve ends so; nothing else uses it.
const DOMAIN: &str = "dns-follow.graphyte-test";
/// Marks the tests' edits of a system file.
const MARK: &str = "# graphyte-test dns_follow";
const TS: u64 = 1_700_000_000;
const REFRESH: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(100);
/// Time between two sends while a test moves the server.
const PACE: Duration = Duration::from_millis(2);
/// Longest a move may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held for a whole test: the tests edit the same system files.
/// Also installs the logger the tests read ([`logged`]).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        log::set_logger(&LOGGED).expect("the only logger");
        log::set_max_level(log::LevelFilter::Debug);
    });
    lock(&SERIAL)
}

// --- System files, edited in place and restored ---------------------------

/// A system file edited in place for one test and restored byte for byte
/// when dropped (also while a failed test unwinds).
struct EtcFile {
    path: &'static str,
    file: File,
    original: Vec<u8>,
    backup: PathBuf,
}

impl EtcFile {
    /// Opens `path` for editing, or says why it cannot be (not root).
    fn open(path: &'static str) -> Result<EtcFile, String> {
        let backup = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dns_follow{}.orig", path.replace('/', "_")));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {path} for writing ({e}); run the tests as root"))?;
        let mut current = Vec::new();
        file.read_to_end(&mut current)
            .map_err(|e| format!("read {path}: {e}"))?;
        let marked = String::from_utf8_lossy(&current).contains(MARK);
        let original = if marked {
            // A run that was killed left its edit; its backup is the original.
            let saved = fs::read(&backup).map_err(|e| {
                format!(
                    "{path} holds lines marked {MARK:?} of an earlier run and its backup \
                     {} is unreadable ({e}): remove those lines by hand",
                    backup.display()
                )
            })?;
            eprintln!("dns_follow: restoring {path} from {}", backup.display());
            saved
        } else {
            current
        };
        fs::write(&backup, &original).map_err(|e| format!("{}: {e}", backup.display()))?;
        let mut etc = EtcFile {
            path,
            file,
            original,
            backup,
        };
        if marked {
            etc.restore().map_err(|e| format!("restore {path}: {e}"))?;
        }
        Ok(etc)
    }

    /// The original content followed by `lines` (replacing lines set
    /// before), written without touching the original bytes: a reader never
    /// sees the file without them.
    fn set_lines(&mut self, lines: &str) {
        let mut tail = String::new();
        if !self.original.is_empty() && !self.original.ends_with(b"\n") {
            tail.push('\n');
        }
        tail.push_str(lines);
        let at = self.original.len() as u64;
        let write = |file: &mut File| -> io::Result<()> {
            file.seek(SeekFrom::Start(at))?;
            file.write_all(tail.as_bytes())?;
            file.set_len(at + tail.len() as u64)?;
            file.sync_all()
        };
        write(&mut self.file).unwrap_or_else(|e| panic!("write {}: {e}", self.path));
    }

    /// Replaces the whole content with `content`.
    fn replace(&mut self, content: &str) {
        let write = |file: &mut File| -> io::Result<()> {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(content.as_bytes())?;
            file.set_len(content.len() as u64)?;
            file.sync_all()
        };
        write(&mut self.file).unwrap_or_else(|e| panic!("write {}: {e}", self.path));
    }

    /// Puts the original bytes back, and checks that they are back.
    fn restore(&mut self) -> io::Result<()> {
        let mut current = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut current)?;
        if current.starts_with(&self.original) {
            // Only the tests' lines were added: cut them off.
            self.file.set_len(self.original.len() as u64)?;
        } else {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&self.original)?;
            self.file.set_len(self.original.len() as u64)?;
        }
        self.file.sync_all()?;
        let back = fs::read(self.path)?;
        if back != self.original {
            return Err(io::Error::other(format!(
                "{} differs from its original after restoring",
                self.path
            )));
        }
        Ok(())
    }
}

impl Drop for EtcFile {
    fn drop(&mut self) {
        match self.restore() {
            Ok(()) => {
                let _ = fs::remove_file(&self.backup);
            }
            Err(e) => {
                // Not a panic during a panic; the backup stays for the next run.
                let _ = writeln!(
                    io::stderr(),
                    "dns_follow: could not restore {}: {e}; its original is in {}",
                    self.path,
                    self.backup.display()
                );
                if !thread::panicking() {
                    panic!("could not restore {}: {e}", self.path);
                }
            }
        }
    }
}

/// `/etc/hosts` for this test, or `None` after [`support::skip`].
fn hosts_or_skip() -> Option<EtcFile> {
    support::or_skip(EtcFile::open("/etc/hosts"), "edit /etc/hosts")
}

/// A hosts-file line for `name`.
fn hosts_line(ip: Ipv4Addr, name: &str) -> String {
    format!("{ip} {name} {MARK}\n")
}

/// What the system resolver says `name` is now (to check the edit took).
fn resolved(name: &str, port: u16) -> Vec<SocketAddr> {
    (name, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

// --- Loopback servers -------------------------------------------------------

/// One connection a [`TcpServer`] accepted.
#[derive(Default, Clone)]
struct Conn {
    data: Vec<u8>,
    /// How it ended: `Ok(when)` for a clean end of stream, `Err` for an error.
    ended: Option<Result<Instant, String>>,
}

#[derive(Default)]
struct Received {
    conns: Vec<Conn>,
    /// When the first byte arrived.
    first: Option<Instant>,
}

/// How a server reads an accepted connection.
type Wrap = dyn Fn(TcpStream) -> Box<dyn Read + Send> + Send + Sync;

/// A TCP server on one loopback address that records what each connection
/// received and how it ended. It never writes.
struct TcpServer {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl TcpServer {
    fn bind(ip: Ipv4Addr, port: u16) -> io::Result<TcpServer> {
        Self::bind_with(ip, port, Arc::new(|stream| Box::new(stream)))
    }

    /// A server that reads each connection through `wrap` (TLS).
    fn bind_with(ip: Ipv4Addr, port: u16, wrap: Arc<Wrap>) -> io::Result<TcpServer> {
        let listener = TcpListener::bind((ip, port))?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received::default()));
        let open = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (received, open, stop) = (received.clone(), open.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(handle) = stream.try_clone() {
                        lock(&open).push(handle);
                    }
                    let mut stream = wrap(stream);
                    let index = {
                        let mut r = lock(&received);
                        r.conns.push(Conn::default());
                        r.conns.len() - 1
                    };
                    let received = received.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let read = stream.read(&mut buf);
                            let mut r = lock(&received);
                            match read {
                                Ok(0) => {
                                    r.conns[index].ended = Some(Ok(Instant::now()));
                                    return;
                                }
                                Ok(n) => {
                                    r.first.get_or_insert_with(Instant::now);
                                    r.conns[index].data.extend_from_slice(&buf[..n]);
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => {
                                    r.conns[index].ended = Some(Err(e.to_string()));
                                    return;
                                }
                            }
                        }
                    });
                }
            })
        };
        Ok(TcpServer {
            addr,
            received,
            open,
            stop,
            acceptor: Some(acceptor),
        })
    }

    fn conns(&self) -> Vec<Conn> {
        lock(&self.received).conns.clone()
    }

    fn first(&self) -> Option<Instant> {
        lock(&self.received).first
    }

    /// Closes every connection from the server's side (the listener stays).
    fn cut(&self) {
        for stream in lock(&self.open).drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Waits until at least `n` connections were accepted and every one
    /// has ended (the client closed it).
    fn wait_ended(&self, n: usize) {
        let until = Instant::now() + PATIENCE;
        loop {
            let conns = self.conns();
            if conns.len() >= n && conns.iter().all(|c| c.ended.is_some()) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{}: {} of {n} connections accepted, not all ended",
                self.addr,
                conns.len()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

/// A TCP server on 127.0.0.2 and one on 127.0.0.3, on the same port.
fn tcp_pair() -> (TcpServer, TcpServer) {
    tcp_pair_with(Arc::new(|stream| Box::new(stream)))
}

/// [`tcp_pair`], reading through `wrap`.
fn tcp_pair_with(wrap: Arc<Wrap>) -> (TcpServer, TcpServer) {
    for _ in 0..50 {
        let old = TcpServer::bind_with(OLD, 0, wrap.clone()).expect("bind 127.0.0.2");
        if let Ok(new) = TcpServer::bind_with(NEW, old.addr.port(), wrap.clone()) {
            return (old, new);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

/// A UDP server on one loopback address that records every datagram.
struct UdpServer {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl UdpServer {
    fn bind(ip: Ipv4Addr, port: u16) -> io::Result<UdpServer> {
        let socket = UdpSocket::bind((ip, port))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let received = Arc::new(Mutex::new(Received {
            conns: vec![Conn::default()],
            first: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let mut r = lock(&received);
                        r.first.get_or_insert_with(Instant::now);
                        r.conns[0].data.extend_from_slice(&buf[..n]);
                    }
                }
            })
        };
        Ok(UdpServer {
            addr,
            received,
            stop,
            reader: Some(reader),
        })
    }

    fn data(&self) -> Vec<u8> {
        lock(&self.received).conns[0].data.clone()
    }

    fn first(&self) -> Option<Instant> {
        lock(&self.received).first
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A UDP server on 127.0.0.2 and one on 127.0.0.3, on the same port.
fn udp_pair() -> (UdpServer, UdpServer) {
    for _ in 0..50 {
        let old = UdpServer::bind(OLD, 0).expect("bind 127.0.0.2");
        if let Ok(new) = UdpServer::bind(NEW, old.addr.port()) {
            return (old, new);
        }
    }
    panic!("no UDP port free on both 127.0.0.2 and 127.0.0.3");
}

// --- Lines and logs ---------------------------------------------------------

/// The numbers of the lines `dns.CASE.nI I TS` in `data`.
fn numbers(case: &str, data: &[u8]) -> Vec<u64> {
    let prefix = format!("dns.{case}.n");
    String::from_utf8_lossy(data)
        .lines()
        .map(|line| {
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            let (n, tail) = rest.split_once(' ').expect("a value");
            assert_eq!(tail, format!("{n} {TS}"), "line {line:?}");
            n.parse().expect("a number")
        })
        .collect()
}

/// Checks that `old` and `new` hold each of `0..sent` exactly once between
/// them.
fn assert_exactly_once(old: &[u64], new: &[u64], sent: u64) {
    let mut seen = BTreeMap::new();
    for &n in old.iter().chain(new) {
        *seen.entry(n).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(n, _)| n)
        .collect();
    let missing: Vec<_> = (0..sent).filter(|n| !seen.contains_key(n)).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(
        old.len() + new.len(),
        sent as usize,
        "old + new = sent ({} + {})",
        old.len(),
        new.len()
    );
}

/// Keeps what graphyte logs.
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        if record.target() == "graphyte" {
            lock(&self.0).push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static LOGGED: Capture = Capture(Mutex::new(Vec::new()));

/// The messages logged at `level` that start with `start`.
fn logged(level: Level, start: &str) -> Vec<String> {
    lock(&LOGGED.0)
        .iter()
        .filter(|(l, m)| *l == level && m.starts_with(start))
        .map(|(_, m)| m.clone())
        .collect()
}

// --- Moving the server -------------------------------------------------------

/// What [`move_server`] saw.
struct Moved {
    /// Lines sent, numbered from 0.
    sent: u64,
    /// From the hosts-file change to the first byte at the new address.
    follow: Duration,
    /// When `stop` was called.
    stopping: Instant,
}

/// Sends numbered lines of `case` every [`PACE`]: 1.5 s to `OLD` (a
/// refresh falls in it, which must stay), then moves `name` to `NEW` in
/// the hosts file and goes on until the new server got data and 300 ms
/// more; then stops the sender.
fn move_server(
    case: &str,
    hosts: &mut EtcFile,
    name: &str,
    sender: &Sender,
    arrived_new: impl Fn() -> Option<Instant>,
) -> Moved {
    let mut sent = 0u64;
    let mut send = || {
        sender
            .send_at(&format!("dns.{case}.n{sent}"), sent, TS)
            .unwrap_or_else(|e| panic!("send {sent}: {e}"));
        sent += 1;
        thread::sleep(PACE);
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        send();
    }
    assert!(
        arrived_new().is_none(),
        "the new address got data before the move"
    );
    hosts.set_lines(&hosts_line(NEW, name));
    let changed = Instant::now();
    let port = 1;
    assert_eq!(
        resolved(name, port),
        [SocketAddr::new(IpAddr::V4(NEW), port)],
        "the system resolver does not see the new hosts entry"
    );
    let arrived = loop {
        if let Some(at) = arrived_new() {
            break at;
        }
        assert!(
            changed.elapsed() < PATIENCE,
            "{case}: nothing reached the new address {PATIENCE:?} after the move"
        );
        send();
    };
    let more = Instant::now();
    while more.elapsed() < Duration::from_millis(300) {
        send();
    }
    let stopping = Instant::now();
    sender.stop().expect("stop delivers everything");
    let follow = arrived.saturating_duration_since(changed);
    // Within the next refresh (plus a write), not at some later reconnect.
    assert!(
        follow < REFRESH * 2 + Duration::from_secs(1),
        "{case}: followed after {follow:?}"
    );
    Moved {
        sent,
        follow,
        stopping,
    }
}

/// The checks and figures of a TCP move.
fn check_tcp_move(
    case: &str,
    name: &str,
    old: &TcpServer,
    new: &TcpServer,
    sender: &Sender,
    moved: &Moved,
) {
    let port = old.addr.port();
    old.wait_ended(1);
    new.wait_ended(1);
    let (old_conns, new_conns) = (old.conns(), new.conns());
    assert_eq!(old_conns.len(), 1, "{case}: connections to the old address");
    assert_eq!(new_conns.len(), 1, "{case}: connections to the new address");
    // The old connection was closed cleanly by graphyte at the move, not at stop.
    match &old_conns[0].ended {
        Some(Ok(at)) => assert!(
            *at < moved.stopping,
            "{case}: the old connection stayed open until stop"
        ),
        other => panic!("{case}: the old connection did not end cleanly: {other:?}"),
    }
    let old_lines = numbers(case, &old_conns[0].data);
    let new_lines = numbers(case, &new_conns[0].data);
    assert_exactly_once(&old_lines, &new_lines, moved.sent);
    let stats = sender.stats();
    assert_eq!(
        (
            stats.sent,
            stats.send_errors,
            stats.dropped,
            stats.reconnects
        ),
        (moved.sent, 0, 0, 0),
        "{stats:?} (a move is not a reconnect: no connection was lost)"
    );
    let change = format!("{name}: now {NEW}:{port}, was {OLD}:{port}");
    let infos = logged(Level::Info, &format!("{name}:"));
    assert_eq!(infos, [change], "{case}: the INFO log");
    Figures::new(&format!("dns_follow_{case}"))
        .ms(
            &format!("dns.{case}.follow_ms"),
            moved.follow,
            "from the hosts-file change to the first line at the new address (dns_refresh 1 s)",
        )
        .count(
            &format!("dns.{case}.old_lines"),
            old_lines.len() as u64,
            "lines received on the old address's one connection",
        )
        .count(
            &format!("dns.{case}.new_lines"),
            new_lines.len() as u64,
            "lines received on the new address's one connection",
        )
        .count(
            &format!("dns.{case}.sent"),
            moved.sent,
            "lines sent (= old + new)",
        )
        .write();
}

#[test]
fn tcp_interval_moves_after_the_batch_in_flight() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("tcp-interval.{DOMAIN}");
    let (old, new) = tcp_pair();
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = Config::new(&name)
        .port(old.addr.port())
        .interval(INTERVAL)
        .dns_refresh(REFRESH)
        .timeout(Duration::from_secs(2));
    let sender = Sender::new(config).unwrap();
    let moved = move_server("tcp_interval", &mut hosts, &name, &sender, || new.first());
    check_tcp_move("tcp_interval", &name, &old, &new, &sender, &moved);
}

#[test]
fn tcp_sync_moves_on_the_send_that_falls_due() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("tcp-sync.{DOMAIN}");
    let (old, new) = tcp_pair();
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = Config::new(&name)
        .port(old.addr.port())
        .dns_refresh(REFRESH)
        .timeout(Duration::from_secs(2));
    let sender = Sender::new(config).unwrap();
    let moved = move_server("tcp_sync", &mut hosts, &name, &sender, || new.first());
    // Synchronous: every line was on the wire when its send returned.
    check_tcp_move("tcp_sync", &name, &old, &new, &sender, &moved);
}

#[test]
fn udp_destination_follows_the_name() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("udp.{DOMAIN}");
    let (old, new) = udp_pair();
    let port = old.addr.port();
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = Config::new(&name)
        .port(port)
        .protocol(Protocol::Udp)
        .interval(INTERVAL)
        .dns_refresh(REFRESH)
        .timeout(Duration::from_secs(2));
    let sender = Sender::new(config).unwrap();
    let moved = move_server("udp", &mut hosts, &name, &sender, || new.first());
    // Datagrams on loopback: give the reader a moment for the last ones.
    let until = Instant::now() + PATIENCE;
    while numbers("udp", &old.data()).len() + numbers("udp", &new.data()).len()
        < moved.sent as usize
        && Instant::now() < until
    {
        thread::sleep(Duration::from_millis(10));
    }
    let old_lines = numbers("udp", &old.data());
    let new_lines = numbers("udp", &new.data());
    assert_exactly_once(&old_lines, &new_lines, moved.sent);
    let change = format!("{name}: now {NEW}:{port}, was {OLD}:{port}");
    assert_eq!(logged(Level::Info, &format!("{name}:")), [change]);
    Figures::new("dns_follow_udp")
        .ms(
            "dns.udp.follow_ms",
            moved.follow,
            "from the hosts-file change to the first datagram at the new address (dns_refresh 1 s)",
        )
        .count(
            "dns.udp.old_lines",
            old_lines.len() as u64,
            "lines received at the old address",
        )
        .count(
            "dns.udp.new_lines",
            new_lines.len() as u64,
            "lines received at the new address",
        )
        .count("dns.udp.sent", moved.sent, "lines sent (= old + new)")
        .write();
}

#[test]
fn every_address_is_tried_before_backing_off() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("two.{DOMAIN}");
    // The server on the second address the resolver gives; nothing on the first.
    let (first, second) = tcp_pair();
    let port = first.addr.port();
    drop(first);
    hosts.set_lines(&format!(
        "{}{}",
        hosts_line(OLD, &name),
        hosts_line(NEW, &name)
    ));
    let order = resolved(&name, port);
    assert_eq!(
        order,
        [SocketAddr::from((OLD, port)), SocketAddr::from((NEW, port))],
        "the system resolver's order"
    );
    let server = second;
    assert!(
        TcpStream::connect_timeout(&order[0], Duration::from_secs(1)).is_err(),
        "{} must refuse",
        order[0]
    );
    let sender = Sender::new(
        Config::new(&name)
            .port(port)
            .timeout(Duration::from_secs(2)),
    )
    .unwrap();
    for i in 0..50u64 {
        sender
            .send_at(&format!("dns.two.n{i}"), i, TS)
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    sender.stop().unwrap();
    server.wait_ended(1);
    let conns = server.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(numbers("two", &conns[0].data), (0..50).collect::<Vec<_>>());
    let stats = sender.stats();
    assert_eq!(
        (stats.sent, stats.send_errors, stats.reconnects),
        (50, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        logged(Level::Debug, &format!("{name}: connected to ")),
        [format!("{name}: connected to {NEW}:{port}")]
    );
}

#[test]
fn a_numeric_host_is_never_resolved_again() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("numeric-control.{DOMAIN}");
    let server = TcpServer::bind(OLD, 0).unwrap();
    let port = server.addr.port();
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = |host: &str| {
        Config::new(host)
            .port(port)
            .interval(INTERVAL)
            .dns_refresh(REFRESH)
    };
    // The same server by number and by name, side by side for 3.5 s.
    let numeric = Sender::new(config(&OLD.to_string())).unwrap();
    let named = Sender::new(config(&name)).unwrap();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_millis(3500) {
        numeric
            .send_at(&format!("dns.numeric.n{sent}"), sent, TS)
            .unwrap();
        named
            .send_at(&format!("dns.numeric.n{sent}"), sent, TS)
            .unwrap();
        sent += 1;
        thread::sleep(Duration::from_millis(10));
    }
    numeric.stop().unwrap();
    named.stop().unwrap();
    // The name was resolved at connect and again about once a second ...
    let by_name = logged(Level::Debug, &format!("{name}: resolved"));
    assert!(by_name.len() >= 3, "{by_name:?}");
    // ... the number never, though it connected and logged as much.
    assert_eq!(
        logged(Level::Debug, &format!("{OLD}: connected to ")),
        [format!("{OLD}: connected to {OLD}:{port}")]
    );
    assert_eq!(
        logged(Level::Debug, &format!("{OLD}: resolved")),
        Vec::<String>::new()
    );
    server.wait_ended(2);
    let conns = server.conns();
    assert_eq!(conns.len(), 2, "one connection each");
    for conn in &conns {
        assert_eq!(numbers("numeric", &conn.data).len(), sent as usize);
    }
}

#[test]
fn zero_refresh_resolves_only_when_connecting() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("zero.{DOMAIN}");
    let (old, new) = tcp_pair();
    let port = old.addr.port();
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = Config::new(&name)
        .port(port)
        .interval(INTERVAL)
        .dns_refresh(Duration::ZERO);
    let sender = Sender::new(config).unwrap();
    let mut sent = 0u64;
    let mut send_for = |time: Duration| {
        let started = Instant::now();
        while started.elapsed() < time {
            sender
                .send_at(&format!("dns.zero.n{sent}"), sent, TS)
                .unwrap();
            sent += 1;
            thread::sleep(Duration::from_millis(5));
        }
    };
    send_for(Duration::from_millis(500));
    hosts.set_lines(&hosts_line(NEW, &name));
    // Three refresh periods' worth: still the old address.
    send_for(Duration::from_millis(2500));
    sender.flush().unwrap();
    assert_eq!(new.conns().len(), 0, "moved without a reconnect");
    // The old server closes the connection: the reconnect resolves, and moves.
    old.cut();
    let until = Instant::now() + PATIENCE;
    while new.first().is_none() {
        assert!(
            Instant::now() < until,
            "never reconnected to the new address"
        );
        send_for(Duration::from_millis(50));
    }
    send_for(Duration::from_millis(200));
    sender.stop().unwrap();
    old.wait_ended(1);
    new.wait_ended(1);
    let old_lines = numbers("zero", &old.conns()[0].data);
    let new_lines: Vec<u64> = new
        .conns()
        .iter()
        .flat_map(|c| numbers("zero", &c.data))
        .collect();
    assert!(!old_lines.is_empty() && !new_lines.is_empty());
    // Lines written into the connection the server had just closed may be
    // lost (as with any TCP client); none is sent twice.
    let mut all: Vec<u64> = old_lines.iter().chain(&new_lines).copied().collect();
    all.sort_unstable();
    let len = all.len();
    all.dedup();
    assert_eq!(all.len(), len, "a line sent twice");
    assert_eq!(*all.last().unwrap(), sent - 1);
}

// --- TLS ---------------------------------------------------------------------

#[cfg(feature = "tls")]
#[path = "../graphyte/tests/tls_support/mod.rs"]
mod tls_support;

/// Run by `./scripts/test` with the root package's feature `tls`.
#[cfg(feature = "tls")]
#[test]
fn tls_moves_with_a_new_handshake() {
    let _serial = serial();
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let name = format!("tls.{DOMAIN}");
    let ca = tls_support::Ca::new("dns_follow CA");
    let config = Arc::new(tls_support::server_config(&ca.leaf(&[&name]), None));
    let (old, new) = tcp_pair_with(Arc::new(move |stream| {
        let conn = rustls::ServerConnection::new(config.clone()).expect("a TLS server");
        Box::new(rustls::StreamOwned::new(conn, stream))
    }));
    hosts.set_lines(&hosts_line(OLD, &name));
    let config = Config::new(&name)
        .port(old.addr.port())
        .tls(graphyte::Tls::new().ca_pem(ca.pem()))
        .interval(INTERVAL)
        .dns_refresh(REFRESH)
        .timeout(Duration::from_secs(2));
    let sender = Sender::new(config).unwrap();
    let moved = move_server("tls", &mut hosts, &name, &sender, || new.first());
    // The old connection ended with the client's close_notify.
    check_tcp_move("tls", &name, &old, &new, &sender, &moved);
}

// --- A name server that never answers -----------------------------------------

#[test]
fn a_hanging_name_server_holds_nothing_past_the_timeout() {
    let _serial = serial();
    let Some(mut resolv) =
        support::or_skip(EtcFile::open("/etc/resolv.conf"), "edit /etc/resolv.conf")
    else {
        return;
    };
    let Some(silent) = support::or_skip(
        UdpSocket::bind((SILENT_DNS, 53)),
        "bind 127.0.0.9:53 (root)",
    ) else {
        return;
    };
    let queries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (queries, stop) = (queries.clone(), stop.clone());
        silent
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if silent.recv(&mut buf).is_ok() {
                    queries.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let timeout = Duration::from_secs(1);
    // A synchronous sender connected by name before the name server hangs;
    // then its hosts entry goes, so that its refresh asks the name server.
    let Some(mut hosts) = hosts_or_skip() else {
        return;
    };
    let connected_name = format!("hang-refresh.{DOMAIN}");
    let server = TcpServer::bind(OLD, 0).unwrap();
    let port = server.addr.port();
    hosts.set_lines(&hosts_line(OLD, &connected_name));
    let connected = Sender::new(
        Config::new(&connected_name)
            .port(port)
            .dns_refresh(REFRESH)
            .timeout(timeout),
    )
    .unwrap();
    connected.send_at("dns.hang_refresh.n0", 0u64, TS).unwrap();
    hosts.set_lines("");
    let refresh_due = Instant::now() + REFRESH;

    // The C library waits 6 s for the silent server, far longer than the
    // 1 s graphyte may wait.
    resolv.replace(&format!(
        "{MARK}\nnameserver {SILENT_DNS}\noptions timeout:6 attempts:1\n"
    ));
    let name = format!("hang.{DOMAIN}");
    let bound = timeout + Duration::from_millis(750);
    // A plain lookup alongside: it must still be waiting at the end.
    let plain = {
        let name = name.clone();
        thread::spawn(move || (name.as_str(), 2003).to_socket_addrs().map(|a| a.count()))
    };

    // A synchronous send returns the error, naming the host.
    let sync = Sender::new(Config::new(&name).timeout(timeout)).unwrap();
    let started = Instant::now();
    let e = sync.send_at("dns.hang.sync", 1, TS).unwrap_err();
    let sync_took = started.elapsed();
    match &e {
        Error::ResolveTimedOut { host, after } => {
            assert_eq!(host, &name);
            assert!(*after <= timeout, "{after:?}");
        }
        other => panic!("expected ResolveTimedOut, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with(&format!("resolving {name} timed out after ")),
        "{e}"
    );
    assert!(sync_took < bound, "the send took {sync_took:?}");
    println!("[dns] a synchronous send: {e}");
    drop(sync);

    // Interval mode: `stop` gives up on the queued lines within the timeout.
    // Its sends only queue: no caller waits for the name server.
    let interval = Sender::new(Config::new(&name).interval(INTERVAL).timeout(timeout)).unwrap();
    let mut slowest_queued = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        interval.send_at("dns.hang.interval", i, TS).unwrap();
        slowest_queued = slowest_queued.max(started.elapsed());
        thread::sleep(Duration::from_millis(15));
    }
    assert!(
        slowest_queued < Duration::from_millis(100),
        "an interval-mode send took {slowest_queued:?}"
    );
    let started = Instant::now();
    match interval.stop() {
        Err(Error::Undelivered { pending: 20, .. }) => {}
        other => panic!("expected 20 undelivered, got {other:?}"),
    }
    let stop_took = started.elapsed();
    assert!(stop_took < bound, "stop took {stop_took:?}");
    assert_eq!(interval.stats().dropped, 20);

    // `flush` of a sender whose thread waits for the name server.
    let flushed = Sender::new(Config::new(&name).interval(INTERVAL).timeout(timeout)).unwrap();
    flushed.send_at("dns.hang.flush", 1, TS).unwrap();
    let started = Instant::now();
    match flushed.flush() {
        Err(Error::Undelivered { pending: 1, .. }) => {}
        other => panic!("expected 1 undelivered, got {other:?}"),
    }
    let flush_took = started.elapsed();
    assert!(flush_took < bound, "flush took {flush_took:?}");
    flushed.stop_within(Duration::ZERO).unwrap_err();

    // And `Drop` of a sender whose thread is waiting for the name server.
    let dropped = Sender::new(Config::new(&name).interval(INTERVAL).timeout(timeout)).unwrap();
    dropped.send_at("dns.hang.drop", 1, TS).unwrap();
    thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    drop(dropped);
    let drop_took = started.elapsed();
    assert!(drop_took < bound, "drop took {drop_took:?}");

    assert!(
        !plain.is_finished(),
        "the name server answered: the test proves nothing"
    );
    assert!(
        queries.load(Ordering::SeqCst) > 0,
        "no query reached the silent name server"
    );

    // The connected sender's refresh gets no answer: its sends go on over
    // the connection in use, none held past the timeout, and it says so once.
    assert!(Instant::now() >= refresh_due);
    let mut slowest = Duration::ZERO;
    for i in 1..=20u64 {
        let started = Instant::now();
        connected
            .send_at(&format!("dns.hang_refresh.n{i}"), i, TS)
            .unwrap_or_else(|e| panic!("send {i} while the name server hangs: {e}"));
        slowest = slowest.max(started.elapsed());
        thread::sleep(Duration::from_millis(100));
    }
    assert!(slowest < bound, "a send took {slowest:?}");
    let warned = logged(Level::Warn, &format!("{connected_name}: "));
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("the name server did not answer within 1s")
            && warned[0].ends_with(&format!(
                "staying on {OLD}:{port} (said once until it works again)"
            )),
        "{warned:?}"
    );
    connected.stop().unwrap();
    server.wait_ended(1);
    let conns = server.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        numbers("hang_refresh", &conns[0].data),
        (0..=20).collect::<Vec<_>>()
    );
    drop(resolv);
    stop.store(true, Ordering::SeqCst);
    listener.join().unwrap();
    Figures::new("dns_follow_hang")
        .ms("dns.hang.sync_send_ms", sync_took, "a synchronous send to a name whose name server never answers, timeout 1 s: until it returned ResolveTimedOut")
        .ms("dns.hang.stop_ms", stop_took, "stop of an interval sender whose thread waits for that name server, timeout 1 s")
        .ms("dns.hang.drop_ms", drop_took, "Drop of such a sender, timeout 1 s")
        .ms("dns.hang.flush_ms", flush_took, "flush of such a sender, timeout 1 s")
        .us("dns.hang.queued_send_us", slowest_queued, "the slowest of 20 interval-mode sends while the sender's thread waits for that name server")
        .ms("dns.hang.refresh_send_ms", slowest, "the slowest of 20 synchronous sends on a working connection whose refresh asks that name server, timeout 1 s")
        .write();
}
