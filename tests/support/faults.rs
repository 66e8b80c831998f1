//! Helpers for the fault tests (`tests/faults_*.rs`): timing every `send`,
//! a watchdog that turns a hang into a failure, the accounting report,
//! signals, the process's memory, a closed port, a server that never
//! completes a connection, and a TCP transport that records what it wrote.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{SendError, TcpTransport, Transport};

use super::sys::ReservedPort;

/// The duration of every call timed, for percentiles.
#[derive(Default, Clone)]
pub struct SendTimes {
    samples: Vec<Duration>,
}

impl SendTimes {
    pub fn new() -> SendTimes {
        SendTimes::default()
    }

    /// Runs `f` and records how long it took.
    #[inline]
    pub fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = f();
        self.samples.push(started.elapsed());
        result
    }

    /// Adds the samples of another recorder (e.g. another thread's).
    pub fn merge(&mut self, other: &SendTimes) {
        self.samples.extend_from_slice(&other.samples);
    }

    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// The `p`-th percentile (0 < p <= 100); zero without samples.
    pub fn percentile(&self, p: f64) -> Duration {
        self.percentiles(&[p])[0]
    }

    /// Several percentiles at once (one sort).
    pub fn percentiles(&self, ps: &[f64]) -> Vec<Duration> {
        if self.samples.is_empty() {
            return vec![Duration::ZERO; ps.len()];
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        ps.iter()
            .map(|p| {
                let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
                sorted[rank.clamp(1, sorted.len()) - 1]
            })
            .collect()
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    pub fn max(&self) -> Duration {
        self.samples.iter().copied().max().unwrap_or_default()
    }

    /// `"N sends: p50 .. µs, p99 .. µs, max .. µs"`.
    pub fn summary(&self) -> String {
        let p = self.percentiles(&[50.0, 99.0]);
        format!(
            "{} sends: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            self.count(),
            micros(p[0]),
            micros(p[1]),
            micros(self.max())
        )
    }

    /// Asserts that no call took `bound` or longer (the caller never blocked).
    pub fn assert_max_below(&self, bound: Duration, what: &str) {
        assert!(
            self.max() < bound,
            "{what}: a send took {:?}, the bound is {bound:?} ({})",
            self.max(),
            self.summary()
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints one line with the figures of a fault test (visible with
/// `--nocapture`) and checks the rule every fault test checks:
/// `sent = delivered + dropped`, where `sent` is what the application
/// handed to graphyte, `delivered` what the server got (read back from it)
/// and `dropped` what graphyte counted as dropped (`Stats::dropped`).
pub fn report(test: &str, sent: u64, delivered: u64, dropped: u64, details: &str) {
    eprintln!(
        "[faults] {test}: sent {sent} = delivered {delivered} + dropped {dropped} \
         (counted by graphyte){}{details}",
        if details.is_empty() { "" } else { "; " }
    );
    assert_eq!(
        sent,
        delivered + dropped,
        "{test}: sent {sent} != delivered {delivered} + counted drops {dropped}; {details}"
    );
}

/// Like [`report`] for synchronous sends, where nothing is queued or
/// dropped: every line either arrived or its `send` returned the error, so
/// `sent = delivered + refused` (refused: sends that returned `Err`).
pub fn report_sync(test: &str, sent: u64, delivered: u64, refused: u64, details: &str) {
    eprintln!(
        "[faults] {test}: sent {sent} = delivered {delivered} + refused {refused} \
         (send returned Err){}{details}",
        if details.is_empty() { "" } else { "; " }
    );
    assert_eq!(
        sent,
        delivered + refused,
        "{test}: sent {sent} != delivered {delivered} + refused {refused}; {details}"
    );
}

/// Runs `f` on its own thread and returns its result; panics if it takes
/// longer than `limit` (a hang, which then fails the test instead of
/// blocking the whole run; the stuck thread is left behind) or if it panics.
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a watched thread");
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?}: it hangs")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Sends `signal` (`"STOP"`, `"CONT"`, `"KILL"`, ...) to process `pid` with
/// kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{signal} {pid}: {e}"));
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// This process's resident memory in bytes (from /proc/self/status), if
/// the platform has it.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A loopback port nothing listens on: a socket bound to it but not
/// listening, so connects are refused at once and no parallel test can take
/// the port. Turn it into a server later with
/// [`LineListener::start_reserved`](super::LineListener::start_reserved).
pub fn closed_port() -> ReservedPort {
    ReservedPort::new().expect("reserve a loopback port")
}

/// A server that never completes a connection: a listener with an accept
/// backlog of 0 that never accepts, whose one pending slot is filled, so the
/// kernel drops further SYNs and a `connect` hangs until its timeout (like a
/// host that is down or firewalled, rather than a closed port, which refuses
/// at once). Needs no special route, only loopback.
pub struct Blackhole {
    port: u16,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    /// Fails, saying why, if the accept queue could not be filled.
    pub fn start() -> Result<Blackhole, String> {
        let reserved = ReservedPort::new().map_err(|e| e.to_string())?;
        let addr = reserved.addr();
        let listener = reserved.listen(0).map_err(|e| e.to_string())?;
        let mut fillers = Vec::new();
        for _ in 0..64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Ok(Blackhole {
                        port: addr.port(),
                        _listener: listener,
                        _fillers: fillers,
                    })
                }
                Err(e) => {
                    return Err(format!(
                        "connect {} failed after {} connections: {e}",
                        addr,
                        fillers.len()
                    ))
                }
            }
        }
        Err(format!(
            "the accept queue of a listener with backlog 0 took {} connections and never filled",
            fillers.len()
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The state of the loopback TCP socket `local_port` → `remote_port` from
/// /proc/net/tcp (`"01"` ESTABLISHED, `"08"` CLOSE_WAIT, ...), or `None` if
/// there is none.
pub fn tcp_state(local_port: u16, remote_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        (port(fields.get(1)?)? == local_port && port(fields.get(2)?)? == remote_port)
            .then(|| fields.get(3).map(|s| s.to_string()))
            .flatten()
    })
}

/// Waits (at most 10 s) until the client end of a connection the server
/// `server_port` closed has received the server's FIN: its socket is in
/// CLOSE_WAIT (or gone). From then on a client that checks before writing
/// must see that the peer is gone.
pub fn wait_until_client_saw_close(client: SocketAddr, server_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = tcp_state(client.port(), server_port);
        match state.as_deref() {
            None | Some("08") | Some("07") => return, // gone, CLOSE_WAIT, CLOSE
            Some(other) => assert!(
                Instant::now() < deadline,
                "the client {client} never saw the server close the connection (state {other})"
            ),
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Held by every fault test for its whole run, so the fault tests of one
/// binary run one at a time: each injects load and timing-sensitive faults,
/// and on two cores they would starve each other (`cargo test` runs the
/// test binaries themselves one after the other).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One write a [`RecordingTcp`] made.
#[derive(Clone, Debug)]
pub struct Write {
    pub started: Instant,
    pub finished: Instant,
    pub lines: Vec<u8>,
    pub ok: bool,
    /// For a successful write: which connection carried it (0 for the first
    /// one graphyte opened, 1 for the next, ...).
    pub connection: u64,
}

/// The handle a test keeps on a [`RecordingTcp`]: what it wrote, and a gate
/// that holds its writes back.
#[derive(Clone, Default)]
pub struct Recorder {
    writes: Arc<Mutex<Vec<Write>>>,
    gate: Arc<Mutex<()>>,
}

impl Recorder {
    /// Every write so far.
    pub fn writes(&self) -> Vec<Write> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many writes so far.
    pub fn count(&self) -> usize {
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Bytes of all successful writes.
    pub fn bytes_written(&self) -> usize {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.iter().filter(|w| w.ok).map(|w| w.lines.len()).sum()
    }

    /// Whether a successful write went out on connection `n`.
    pub fn wrote_on(&self, n: u64) -> bool {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.iter().any(|w| w.ok && w.connection == n)
    }

    /// Waits for the write in progress, if any, and holds every later one
    /// back until the guard is dropped: lets a test act on the server
    /// between two writes (the connection then carries no data in flight).
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// graphyte's own [`TcpTransport`], recording every write it makes (when,
/// what, on which connection, whether it succeeded), to tell on which
/// connection every line went and which lines graphyte wrote into a
/// connection whose peer was already gone. Kept small: it only forwards,
/// and counts the connections it opened.
pub struct RecordingTcp {
    inner: TcpTransport,
    recorder: Recorder,
    /// Connections opened so far.
    connects: u64,
}

impl RecordingTcp {
    pub fn new(port: u16, timeout: Duration) -> (RecordingTcp, Recorder) {
        let recorder = Recorder::default();
        let transport = RecordingTcp {
            inner: TcpTransport::new("127.0.0.1", port, timeout),
            recorder: recorder.clone(),
            connects: 0,
        };
        (transport, recorder)
    }
}

impl Transport for RecordingTcp {
    fn send(&mut self, lines: &[u8], deadline: Instant) -> Result<(), SendError> {
        let gate = Arc::clone(&self.recorder.gate);
        let _held = gate.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let result = self.inner.send(lines, deadline);
        let write = Write {
            started,
            finished: Instant::now(),
            lines: lines.to_vec(),
            ok: result.is_ok(),
            // The write went out on the last connection opened (numbered from 0).
            connection: self.connects.saturating_sub(1),
        };
        self.recorder
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(write);
        result
    }

    fn address(&self) -> String {
        self.inner.address()
    }

    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        self.inner.connect(deadline)?;
        self.connects += 1;
        Ok(())
    }

    fn close(&mut self) {
        self.inner.close()
    }
}

/// The lines of a byte buffer, without their `\n`.
pub fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).expect("graphyte writes UTF-8"))
}

/// Numbered lines that can be told apart wherever they land: line `i` is
/// `PREFIX.m<i % metrics> i <base + i / metrics>`, so every line has its own
/// (series, timestamp) slot in carbon (whose test schema keeps 1 s for an
/// hour) and its value says which line it is. `base` is in the past hour.
#[derive(Clone, Debug)]
pub struct Numbered {
    pub prefix: String,
    pub metrics: u64,
    pub base: u32,
}

impl Numbered {
    /// Room for `capacity` lines: enough series that each gets at most 2,500
    /// timestamps, starting 2,900 s ago (so all stay inside the hour).
    pub fn new(prefix: &str, capacity: u64) -> Numbered {
        Numbered {
            prefix: prefix.to_owned(),
            metrics: capacity.div_ceil(2500).max(1),
            base: super::unix_now() - 2900,
        }
    }

    /// The name graphyte is given for line `i` (without the sender's prefix).
    pub fn name(&self, i: u64) -> String {
        format!("m{}", i % self.metrics)
    }

    pub fn ts(&self, i: u64) -> u32 {
        let step = i / self.metrics;
        assert!(
            step < 2900,
            "line {i}: more lines than this Numbered has room for"
        );
        self.base + step as u32
    }

    /// Sends line `i` with `send_at`.
    pub fn send(&self, sender: &graphyte::Sender, i: u64) -> graphyte::Result<()> {
        sender.send_at(&self.name(i), i, self.ts(i))
    }

    /// The full metric name of series `m`, as carbon stores it.
    pub fn metric(&self, m: u64) -> String {
        format!("{}.m{m}", self.prefix)
    }

    /// The line numbers in wire lines (`PREFIX.mK i ts`), checking that each
    /// line is exactly what line `i` should be.
    pub fn parse<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Vec<u64> {
        lines
            .into_iter()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let i: u64 = fields
                    .get(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("not a numbered line: {line:?}"));
                let expected = format!("{}.{} {i} {}", self.prefix, self.name(i), self.ts(i));
                assert_eq!(line, expected, "a line arrived altered");
                i
            })
            .collect()
    }

    /// Like [`parse`](Self::parse) on raw bytes, for millions of lines
    /// (a plain byte loop, fast even unoptimised): checks each complete
    /// line is exactly line `i` and appends the `i`s to `out`. A trailing
    /// piece without `\n` is not a line.
    pub fn parse_bytes(&self, data: &[u8], out: &mut Vec<u64>) {
        let prefix = format!("{}.m", self.prefix);
        let prefix = prefix.as_bytes();
        let mut at = 0;
        while let Some(len) = data[at..].iter().position(|&b| b == b'\n') {
            let line = &data[at..at + len];
            at += len + 1;
            let bad =
                || -> ! { panic!("not a numbered line: {:?}", String::from_utf8_lossy(line)) };
            if !line.starts_with(prefix) {
                bad();
            }
            let mut fields = [0u64; 3];
            let mut field = 0;
            let mut digits = 0;
            for &b in &line[prefix.len()..] {
                match b {
                    b'0'..=b'9' if digits < 19 => {
                        fields[field] = fields[field] * 10 + u64::from(b - b'0');
                        digits += 1;
                    }
                    b' ' if digits > 0 && field < 2 => {
                        field += 1;
                        digits = 0;
                    }
                    _ => bad(),
                }
            }
            let [series, i, ts] = fields;
            if field != 2
                || digits == 0
                || series != i % self.metrics
                || ts != u64::from(self.ts(i))
            {
                bad();
            }
            out.push(i);
        }
    }

    /// Like [`on_disk`](Numbered::on_disk), but a point that is not in the
    /// slot of its line is returned apart (as `(series, timestamp, value)`)
    /// instead of failing: what a relay makes of a line cut in two.
    pub fn on_disk_or_foreign(
        &self,
        carbon: &super::CarbonServer,
    ) -> (Vec<u64>, Vec<(String, u32, f64)>) {
        let (mut found, mut foreign) = (Vec::new(), Vec::new());
        for m in 0..self.metrics {
            let path = carbon.whisper_path(&self.metric(m));
            let Ok(points) = super::whisper::read_points(&path) else {
                continue;
            };
            for (ts, value) in points {
                let i = value as u64;
                if value.fract() == 0.0 && value >= 0.0 && (i % self.metrics, self.ts(i)) == (m, ts)
                {
                    found.push(i);
                } else {
                    foreign.push((self.metric(m), ts, value));
                }
            }
        }
        found.sort_unstable();
        (found, foreign)
    }

    /// The line numbers carbon has on disk now, for series `0..metrics`,
    /// checking each point is in the slot of its line. Files carbon is
    /// still creating count as empty.
    pub fn on_disk(&self, carbon: &super::CarbonServer) -> Vec<u64> {
        let mut found = Vec::new();
        for m in 0..self.metrics {
            let path = carbon.whisper_path(&self.metric(m));
            let Ok(points) = super::whisper::read_points(&path) else {
                continue;
            };
            for (ts, value) in points {
                let i = value as u64;
                assert_eq!(
                    (i % self.metrics, self.ts(i)),
                    (m, ts),
                    "point {value} at {ts} of {} is not line {i}",
                    self.metric(m)
                );
                found.push(i);
            }
        }
        found.sort_unstable();
        found
    }

    /// The line numbers `listener` received, sorted, duplicates kept.
    pub fn received(&self, listener: &super::LineListener) -> Vec<u64> {
        let lines = listener.lines();
        let mut got = self.parse(lines.iter().map(String::as_str));
        got.sort_unstable();
        got
    }

    /// Polls `listener` every 20 ms until every line in `expected` (sorted)
    /// arrived, or `timeout`; returns [`received`](Self::received) then.
    pub fn wait_received(
        &self,
        listener: &super::LineListener,
        expected: &[u64],
        timeout: Duration,
    ) -> Vec<u64> {
        poll_until_all(expected, timeout, Duration::from_millis(20), || {
            self.received(listener)
        })
    }

    /// Polls carbon's disk every 100 ms until every line in `expected` is
    /// there, or `timeout`; returns what is on disk then (all lines, not only
    /// the expected ones).
    pub fn wait_on_disk(
        &self,
        carbon: &super::CarbonServer,
        expected: &[u64],
        timeout: Duration,
    ) -> Vec<u64> {
        poll_until_all(expected, timeout, Duration::from_millis(100), || {
            self.on_disk(carbon)
        })
    }
}

/// Calls `look` (which returns sorted line numbers) every `every` until its
/// answer holds every line of `expected`, or `timeout`; returns the last answer.
fn poll_until_all(
    expected: &[u64],
    timeout: Duration,
    every: Duration,
    mut look: impl FnMut() -> Vec<u64>,
) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = look();
        let all = expected.iter().all(|i| got.binary_search(i).is_ok());
        if all || Instant::now() >= deadline {
            return got;
        }
        thread::sleep(every);
    }
}

/// When a server went away: from just before the fault was injected until
/// it was complete (the process reaped, the sockets closed).
#[derive(Clone, Copy, Debug)]
pub struct Outage {
    pub began: Instant,
    pub ended: Instant,
}

/// Lines graphyte wrote successfully that never arrived, by the connection
/// they were written on.
#[derive(Debug, Default)]
pub struct Loss {
    /// Connection number → the lost lines written on it, in write order.
    pub by_connection: BTreeMap<u64, Vec<u64>>,
    /// Lost lines whose write started after the outage that ended their
    /// connection was over: written into a connection whose peer was already
    /// gone, which graphyte's check before every write exists to prevent.
    pub into_dead_connection: Vec<u64>,
}

impl Loss {
    pub fn total(&self) -> u64 {
        self.by_connection.values().map(|v| v.len() as u64).sum()
    }

    pub fn summary(&self) -> String {
        let per: Vec<String> = self
            .by_connection
            .iter()
            .map(|(c, lines)| format!("{} on connection {c}", lines.len()))
            .collect();
        format!(
            "lost {} lines written OK ({}), {} of them written into a dead connection",
            self.total(),
            if per.is_empty() {
                "none".into()
            } else {
                per.join(", ")
            },
            self.into_dead_connection.len()
        )
    }
}

/// Every line that a successful write carried and that is not in
/// `delivered` (sorted), by the connection it was written on; a line whose
/// write started after an outage that began after the first write on its
/// connection (the connection was already dead) is also in
/// `into_dead_connection`. Checks that no line was written successfully twice.
pub fn classify_loss(
    writes: &[Write],
    numbered: &Numbered,
    delivered: &[u64],
    outages: &[Outage],
) -> Loss {
    let mut loss = Loss::default();
    let mut written = HashSet::new();
    let mut opened: BTreeMap<u64, Instant> = BTreeMap::new();
    for write in writes.iter().filter(|w| w.ok) {
        let first = *opened.entry(write.connection).or_insert(write.started);
        for i in numbered.parse(lines_of(&write.lines)) {
            assert!(written.insert(i), "line {i} was written successfully twice");
            if delivered.binary_search(&i).is_ok() {
                continue;
            }
            loss.by_connection
                .entry(write.connection)
                .or_default()
                .push(i);
            let dead = outages
                .iter()
                .any(|o| o.began > first && o.ended <= write.started);
            if dead {
                loss.into_dead_connection.push(i);
            }
        }
    }
    loss
}

/// The bytes of the successful writes on each connection, by connection
/// number: what a server that read everything received on each.
pub fn bytes_by_connection(writes: &[Write]) -> BTreeMap<u64, Vec<u8>> {
    let mut by: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for write in writes.iter().filter(|w| w.ok) {
        by.entry(write.connection)
            .or_default()
            .extend_from_slice(&write.lines);
    }
    by
}

/// The line numbers of the successful writes that started after `since`,
/// sorted: lines that must arrive once the last fault is over.
pub fn written_ok_since(writes: &[Write], numbered: &Numbered, since: Instant) -> Vec<u64> {
    let mut late: Vec<u64> = writes
        .iter()
        .filter(|w| w.ok && w.started >= since)
        .flat_map(|w| numbered.parse(lines_of(&w.lines)))
        .collect();
    late.sort_unstable();
    late
}

/// The line numbers of every successful write, sorted.
pub fn written_ok(writes: &[Write], numbered: &Numbered) -> Vec<u64> {
    let mut all: Vec<u64> = writes
        .iter()
        .filter(|w| w.ok)
        .flat_map(|w| numbered.parse(lines_of(&w.lines)))
        .collect();
    all.sort_unstable();
    all
}

/// Asserts that `got` (sorted, may hold duplicates) is exactly `expected`
/// (sorted, distinct), with a readable message: counts, and the first few
/// missing, unexpected and repeated line numbers.
pub fn assert_same_lines(got: &[u64], expected: &[u64], what: &str) {
    if got == expected {
        return;
    }
    let got_set: HashSet<u64> = got.iter().copied().collect();
    let expected_set: HashSet<u64> = expected.iter().copied().collect();
    let mut missing: Vec<u64> = expected_set.difference(&got_set).copied().collect();
    let mut extra: Vec<u64> = got_set.difference(&expected_set).copied().collect();
    missing.sort_unstable();
    extra.sort_unstable();
    let repeated: Vec<u64> = got
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    let first = |v: &[u64]| format!("{} {:?}", v.len(), &v[..v.len().min(10)]);
    panic!(
        "{what}: got {} lines, expected {}; missing {}; unexpected {}; repeated {}",
        got.len(),
        expected.len(),
        first(&missing),
        first(&extra),
        first(&repeated)
    );
}

/// The figures one fault test measured, for the machine-readable report:
/// `<target>/faults-report/<test>.json`, one file per test so that test
/// binaries (and parallel tests) never write the same file;
/// `scripts/figures` combines them into `<target>/faults-report.json` and
/// puts them into the README. Each figure has a key (which the README
/// names), a value, a unit and a sentence saying what exactly it measures.
pub struct Figures {
    test: String,
    entries: Vec<(String, f64, String, String)>,
}

impl Figures {
    pub fn new(test: &str) -> Figures {
        Figures {
            test: test.to_owned(),
            entries: Vec::new(),
        }
    }

    /// Adds figure `key` (`value` in `unit`), measuring `what`.
    pub fn add(&mut self, key: &str, value: f64, unit: &str, what: &str) -> &mut Figures {
        assert!(value.is_finite(), "figure {key} is {value}");
        self.entries
            .push((key.to_owned(), value, unit.to_owned(), what.to_owned()));
        self
    }

    /// A duration in milliseconds.
    pub fn ms(&mut self, key: &str, value: Duration, what: &str) -> &mut Figures {
        self.add(key, value.as_secs_f64() * 1e3, "ms", what)
    }

    /// A duration in microseconds.
    pub fn us(&mut self, key: &str, value: Duration, what: &str) -> &mut Figures {
        self.add(key, value.as_secs_f64() * 1e6, "µs", what)
    }

    /// A count.
    pub fn count(&mut self, key: &str, value: u64, what: &str) -> &mut Figures {
        self.add(key, value as f64, "", what)
    }

    /// Where the reports go: `$GRAPHYTE_FAULTS_REPORT_DIR`, else
    /// `<target>/faults-report`.
    pub fn dir() -> std::path::PathBuf {
        match std::env::var_os("GRAPHYTE_FAULTS_REPORT_DIR") {
            Some(dir) if !dir.is_empty() => dir.into(),
            _ => std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
                .join("faults-report"),
        }
    }

    /// Writes the report file (replacing the one of an earlier run) and
    /// prints the figures (visible with `--nocapture`).
    pub fn write(&self) {
        fn json(s: &str) -> String {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(key, value, unit, what)| {
                eprintln!("[faults] {}: {key} = {value:.3} {unit} ({what})", self.test);
                format!(
                    "    {}: {{\"value\": {value:?}, \"unit\": {}, \"what\": {}}}",
                    json(key),
                    json(unit),
                    json(what)
                )
            })
            .collect();
        let body = format!(
            "{{\n  \"test\": {},\n  \"figures\": {{\n{}\n  }}\n}}\n",
            json(&self.test),
            entries.join(",\n")
        );
        let dir = Self::dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let name: String = self
            .test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        // Written whole, then renamed: a reader never sees half a file.
        let path = dir.join(format!("{name}.json"));
        let tmp = dir.join(format!(".{name}.json.{}", std::process::id()));
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
