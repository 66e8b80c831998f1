//! End-to-end throughput and memory of graphyte over loopback TCP, with the
//! Python graphyte and the raw-socket limits measured by the same run
//! against the same drain (issue 5).
//!
//! ```text
//! ./scripts/bench                                      # everything, with the Python venv
//! cargo bench -p graphyte-benches --bench throughput   # this file (Python: see GRAPHYTE_BENCH_PYTHON)
//! ```
//!
//! The drain is a plain loopback TCP listener: one reader thread per open
//! connection, reading into a 1 MiB buffer and counting newlines and bytes.
//! It can be paused (it stops reading). Every figure below is measured in
//! this run; the verdicts compare ratios of figures from this run. Each of
//! measurements 1-4 runs three times (alternating, for 3 and 4) and the median
//! round is reported; every round is printed as it finishes.
//!
//! 1. Raw limit: preformatted distinct lines (a 4 MiB ring, written in
//!    64 KiB chunks cut at line ends) on one `TcpStream` until N lines have
//!    arrived.
//! 2. Interval mode: a `Sender` with a 50 ms interval (what the Python run
//!    uses) and otherwise default settings, 1 and then 2 producer threads
//!    calling `send()` with distinct names (1024 per thread) and distinct
//!    values until N lines have *arrived* at the drain. Reported: lines/s end
//!    to end (first send to last line read by the drain; the producers end
//!    with `flush()`, so the last lines do not wait up to an interval for
//!    the next tick) and the caller's ns per send. A send refused with `QueueFull` is retried with the same
//!    line (the retries are counted); the run asserts that exactly N lines
//!    and exactly the expected bytes arrived, and that the sender counted N
//!    sent.
//! 3. Caller cost with no drain in the way (issue 19): 1, 2 and 4 producer
//!    threads, `send()` and `Metric::send()`, each sending 2 M lines into one
//!    sender with an interval that does not tick during the run and a queue three times what they send,
//!    so the interval thread never wakes while they do (asserted: it wrote
//!    nothing, no send was refused), after an untimed round of the same
//!    sends and two flushes that leave each thread a buffer big enough (so
//!    the kernel faulting in fresh pages for every producer at once is not
//!    what is measured). Reported: mean ns per send over the
//!    producers, and the ratios to one producer. `stop()` then delivers every
//!    line, and the drain checks that all arrived.
//! 4. Sync mode: `send()` per line (no interval) over its persistent
//!    connection, sends/s; and the raw equivalent, one `write()` per
//!    preformatted line on a plain `TcpStream` with `TCP_NODELAY` (as
//!    graphyte sets).
//! 5. Python graphyte 1.7 (PyPI) through `benches/python_graphyte.py`, to the
//!    same drain: sync sends/s (a connection per send, as it does), and
//!    interval 0.05 s with 200,000 sends, end to end. The interpreter is
//!    `$GRAPHYTE_BENCH_PYTHON` (scripts/bench sets it to its venv), else
//!    the repository's `.venv/bin/python` if it has graphyte; without one,
//!    these rows say "not measured".
//! 6. Memory: this process's peak RSS (`VmHWM`), and a child process (this
//!    binary, re-run with `--memory-child`) per queue size that stops its
//!    drain, keeps sending into the bounded queue for a while and samples
//!    `VmRSS`: the growth must stay within queue_size × line size plus a
//!    fixed 4 MiB, and stay flat once the queue is full; after the drain
//!    resumes, exactly the accepted lines must arrive.
//!
//! Under `cargo test` (no `--bench` argument) the same code runs as a quick
//! smoke test: 100,000 lines, short rounds, a small memory child, no Python,
//! with every correctness assertion and no verdicts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphyte::{Config, Error, Metric, Sender};
use graphyte_benches::chart::{self, Line};
use graphyte_benches::{results_dir, verdict, Fragment};

/// The interval of every interval-mode sender here, and of the Python run.
/// The longest the memory run keeps sending to a paused server to fill the queue.
const FILL_LIMIT: Duration = Duration::from_secs(120);
const INTERVAL: Duration = Duration::from_millis(50);
/// Generous: a paused drain must not make a write time out.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Distinct names per producer.
const NAMES: usize = 1024;
/// Raw-limit chunk size.
const CHUNK: usize = 64 * 1024;
/// The fixed allowance of the memory target, on top of queue_size × line size.
const MEMORY_SLACK_KIB: u64 = 4 * 1024;

/// How big a run is.
struct Plan {
    full: bool,
    /// Lines per raw-limit and interval-mode measurement.
    lines: u64,
    /// Rounds of each measurement (the median is reported).
    rounds: usize,
    /// Caller cost with no drain: lines per producer per round.
    caller_per: u64,
    /// Sync and raw per-line: seconds per round.
    sync_secs: f64,
    python: Option<PathBuf>,
    python_sync_sends: u64,
    python_interval_sends: u64,
    /// Memory children: queue sizes, and how long each keeps its drain paused.
    memory_queues: Vec<usize>,
    memory_pause: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        let queue: usize = args[i + 1].parse().expect("queue size");
        let pause_ms: u64 = args[i + 2].parse().expect("pause in ms");
        memory_child(queue, Duration::from_millis(pause_ms));
        return;
    }
    // `cargo bench` passes --bench; `cargo test` runs bench targets without it.
    let full = args.iter().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            full,
            lines: 10_000_000,
            rounds: 3,
            caller_per: 2_000_000,
            sync_secs: 1.0,
            python: python(),
            python_sync_sends: 10_000,
            python_interval_sends: 200_000,
            memory_queues: vec![100_000, 400_000],
            memory_pause: Duration::from_millis(1500),
        }
    } else {
        Plan {
            full,
            lines: 100_000,
            rounds: 1,
            caller_per: 20_000,
            sync_secs: 0.1,
            python: None,
            python_sync_sends: 0,
            python_interval_sends: 0,
            memory_queues: vec![10_000],
            memory_pause: Duration::from_millis(300),
        }
    };
    run(&plan);
}

fn run(plan: &Plan) {
    let started = Instant::now();
    let drain = Drain::start();
    println!(
        "graphyte throughput: {} run, N = {} lines, drain on 127.0.0.1:{}",
        if plan.full {
            "full"
        } else {
            "smoke (cargo test)"
        },
        plan.lines,
        drain.port
    );

    // Each measurement runs `rounds` times; the median round is reported.
    let mut raws: Vec<Flow> = (0..plan.rounds)
        .map(|_| {
            let raw = raw_limit(&drain, plan.lines);
            println!("raw limit (64 KiB writes): {}", raw.describe());
            raw
        })
        .collect();
    let raw_rounds: Vec<f64> = raws.iter().map(Flow::rate).collect();
    raws.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let raw = raws.swap_remove(raws.len() / 2);
    let interval = |producers, api: Api| {
        let mut runs: Vec<IntervalRun> = (0..plan.rounds)
            .map(|_| {
                let run = interval_send(&drain, producers, plan.lines, api);
                println!(
                    "interval {}, {producers} producer(s): {}",
                    api.describe(),
                    run.describe()
                );
                run
            })
            .collect();
        let rounds: Vec<f64> = runs.iter().map(|r| r.flow.rate()).collect();
        runs.sort_by(|a, b| a.flow.rate().total_cmp(&b.flow.rate()));
        let mut median = runs.swap_remove(runs.len() / 2);
        median.rounds = rounds;
        median
    };
    // Alternated, so that a slow stretch of the machine hits both APIs.
    let one = interval(1, Api::Send);
    let one_handle = interval(1, Api::Handle);
    let two = interval(2, Api::Send);
    let two_handle = interval(2, Api::Handle);
    let caller = CallerCost::measure(&drain, plan.caller_per, plan.rounds);

    let mut sync_rates = Vec::new();
    let mut raw_line_rates = Vec::new();
    for _ in 0..plan.rounds {
        raw_line_rates.push(raw_per_line(&drain, plan.sync_secs));
        sync_rates.push(sync_send(&drain, plan.sync_secs));
    }
    let sync = median(&sync_rates);
    let raw_line = median(&raw_line_rates);
    println!("sync send(): {sync:.0}/s (rounds: {})", rates(&sync_rates));
    println!(
        "raw write() per line: {raw_line:.0}/s (rounds: {})",
        rates(&raw_line_rates)
    );

    let py = plan.python.as_ref().map(|python| {
        let version = python_version(python);
        // Python's sync mode connects once per send; many sockets still in
        // TIME_WAIT (from earlier runs or tests) make connect() slower.
        let time_wait = time_wait_sockets();
        let sync = python_sync(python, &drain, plan.python_sync_sends);
        println!(
            "python graphyte sync: {sync:.0} sends/s ({time_wait} sockets in TIME_WAIT before it started)"
        );
        let interval = python_interval(python, &drain, plan.python_interval_sends);
        println!(
            "python graphyte interval 0.05 s: {:.0} lines/s end to end, caller {:.0} sends/s",
            interval.end_to_end, interval.caller
        );
        (version, sync, interval)
    });
    if plan.full && py.is_none() {
        println!(
            "python graphyte: not measured (no interpreter with graphyte; run ./scripts/bench)"
        );
    }

    let memory: Vec<Memory> = plan
        .memory_queues
        .iter()
        .map(|&q| run_memory_child(q, plan.memory_pause))
        .collect();
    for m in &memory {
        println!("memory: {}", m.describe());
    }
    let hwm = proc_status_kib("VmHWM");
    println!("this process: peak RSS (VmHWM) {} KiB", hwm);

    report(&Results {
        plan,
        raw: &raw,
        raw_rounds: &raw_rounds,
        send: [&one, &two],
        handle: [&one_handle, &two_handle],
        caller: &caller,
        sync,
        sync_rounds: &sync_rates,
        raw_line,
        raw_line_rounds: &raw_line_rates,
        py: py.as_ref(),
        memory: &memory,
        hwm,
    });
    println!(
        "throughput bench done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// The drain

/// A loopback TCP listener that reads everything sent to it and counts
/// lines and bytes. A reader thread serves one connection at a time and
/// goes back to a pool when it closes; a connection that arrives while
/// every reader is busy gets a new reader, so an open connection never holds
/// up another.
struct Drain {
    port: u16,
    shared: Arc<DrainShared>,
}

struct DrainShared {
    lines: AtomicU64,
    bytes: AtomicU64,
    paused: AtomicBool,
    connections: AtomicU64,
    /// Readers waiting for a connection, not yet promised one.
    idle: AtomicUsize,
}

impl Drain {
    fn start() -> Drain {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the drain");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(DrainShared {
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            idle: AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel::<TcpStream>();
        let rx = Arc::new(Mutex::new(rx));
        {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("drain-accept".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        let Ok(stream) = stream else { continue };
                        shared.connections.fetch_add(1, Relaxed);
                        // Promise it to an idle reader, or start a reader for it.
                        let idle = shared
                            .idle
                            .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                            .is_ok();
                        if idle {
                            tx.send(stream).expect("readers outlive the listener");
                        } else {
                            let shared = Arc::clone(&shared);
                            let rx = Arc::clone(&rx);
                            thread::Builder::new()
                                .name("drain-read".into())
                                .spawn(move || reader(&shared, &rx, stream))
                                .expect("spawn a drain reader");
                        }
                    }
                })
                .expect("spawn the drain");
        }
        Drain { port, shared }
    }

    fn lines(&self) -> u64 {
        self.shared.lines.load(Acquire)
    }

    fn bytes(&self) -> u64 {
        self.shared.bytes.load(Acquire)
    }

    fn pause(&self, paused: bool) {
        self.shared.paused.store(paused, Release);
    }

    /// Polls until `target` lines in total have arrived; the time it saw it.
    fn wait_for(&self, target: u64, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let lines = self.lines();
            if lines >= target {
                return now;
            }
            assert!(
                now < deadline,
                "only {lines} of {target} lines arrived within {timeout:?}"
            );
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Asserts that no more than `target` lines arrive in the next moment.
    fn assert_settled(&self, target: u64) {
        thread::sleep(Duration::from_millis(20));
        assert_eq!(self.lines(), target, "more lines arrived than were sent");
    }
}

fn reader(shared: &DrainShared, rx: &Mutex<mpsc::Receiver<TcpStream>>, first: TcpStream) {
    let mut buf = vec![0u8; 1 << 20];
    let mut stream = first;
    loop {
        loop {
            if shared.paused.load(Acquire) {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    shared.lines.fetch_add(count_newlines(&buf[..n]), Release);
                    shared.bytes.fetch_add(n as u64, Release);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        shared.idle.fetch_add(1, AcqRel);
        let next = rx.lock().expect("drain channel").recv();
        match next {
            Ok(next) => stream = next,
            Err(_) => return,
        }
    }
}

/// Counts `\n` in `buf`, 128 bytes at a time into a `u8` (which the compiler
/// vectorises): the drain must keep up with the raw limit.
fn count_newlines(buf: &[u8]) -> u64 {
    let mut chunks = buf.chunks_exact(128);
    let mut n = 0u64;
    for chunk in &mut chunks {
        n += u64::from(chunk.iter().fold(0u8, |a, &b| a + u8::from(b == b'\n')));
    }
    n + chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

// ---------------------------------------------------------------------------
// Lines

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn digits(n: u64) -> u64 {
    u64::from(n.checked_ilog10().unwrap_or(0) + 1)
}

/// `NAMES` distinct names for producer `who`.
fn names(who: &str) -> Vec<String> {
    (0..NAMES).map(|j| format!("bench.{who}.m{j}")).collect()
}

/// Preformatted lines `name value ts\n` with values from `first`, until
/// `bytes` bytes, cut into chunks of at most `chunk` bytes ending at line
/// ends: (chunk, lines in it).
fn preformatted(who: &str, first: u64, bytes: usize, chunk: usize) -> Vec<(Vec<u8>, u64)> {
    let names = names(who);
    let ts = now_secs();
    let mut chunks = Vec::new();
    let mut current = Vec::with_capacity(chunk);
    let mut in_current = 0;
    let mut total = 0;
    let mut line = Vec::new();
    let mut i = 0u64;
    while total < bytes {
        line.clear();
        writeln!(line, "{} {} {ts}", names[i as usize % NAMES], first + i).expect("format");
        i += 1;
        if !current.is_empty() && current.len() + line.len() > chunk {
            total += current.len();
            chunks.push((
                std::mem::replace(&mut current, Vec::with_capacity(chunk)),
                in_current,
            ));
            in_current = 0;
        }
        current.extend_from_slice(&line);
        in_current += 1;
    }
    if !current.is_empty() {
        chunks.push((current, in_current));
    }
    chunks
}

// ---------------------------------------------------------------------------
// Measurements

struct Flow {
    lines: u64,
    bytes: u64,
    secs: f64,
}

impl Flow {
    fn rate(&self) -> f64 {
        self.lines as f64 / self.secs
    }
    fn describe(&self) -> String {
        format!(
            "{} lines, {:.1} bytes/line, {:.3} s: {:.2} M lines/s, {:.0} MB/s",
            self.lines,
            self.bytes as f64 / self.lines as f64,
            self.secs,
            self.rate() / 1e6,
            self.bytes as f64 / self.secs / 1e6
        )
    }
}

/// Preformatted lines in 64 KiB writes, until `n` lines have arrived.
fn raw_limit(drain: &Drain, n: u64) -> Flow {
    let chunks = preformatted("raw", 10_000_000, 4 << 20, CHUNK);
    let (base_lines, base_bytes) = (drain.lines(), drain.bytes());
    let mut stream = TcpStream::connect(("127.0.0.1", drain.port)).expect("connect");
    let (mut lines, mut bytes) = (0, 0);
    let start = Instant::now();
    'outer: loop {
        for (chunk, in_chunk) in &chunks {
            stream.write_all(chunk).expect("raw write");
            lines += in_chunk;
            bytes += chunk.len() as u64;
            if lines >= n {
                break 'outer;
            }
        }
    }
    let arrived = drain.wait_for(base_lines + lines, Duration::from_secs(60));
    let secs = (arrived - start).as_secs_f64();
    drop(stream);
    drain.assert_settled(base_lines + lines);
    assert_eq!(drain.bytes() - base_bytes, bytes, "raw bytes lost");
    Flow { lines, bytes, secs }
}

struct IntervalRun {
    producers: usize,
    api: Api,
    flow: Flow,
    /// Per producer: ns per successful send, retries after QueueFull.
    caller_ns: Vec<f64>,
    retries: Vec<u64>,
    /// Lines/s of every round, in the order they ran (set by `run`).
    rounds: Vec<f64>,
}

impl IntervalRun {
    fn caller_ns(&self) -> f64 {
        self.caller_ns.iter().sum::<f64>() / self.caller_ns.len() as f64
    }
    fn retries(&self) -> u64 {
        self.retries.iter().sum()
    }
    fn describe(&self) -> String {
        format!(
            "{}; caller {:.1} ns/send ({}); {} QueueFull retries",
            self.flow.describe(),
            self.caller_ns(),
            self.caller_ns
                .iter()
                .map(|ns| format!("{ns:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            self.retries()
        )
    }
}

/// How the producers of an interval run send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    /// `Sender::send(name, value)`.
    Send,
    /// `Metric::send(value)` on a handle per name, made before the clock starts.
    Handle,
}

impl Api {
    fn describe(self) -> &'static str {
        match self {
            Api::Send => "send()",
            Api::Handle => "Metric::send()",
        }
    }
}

/// One producer's loop: `send(index of the name, value)` for `per` values
/// from `first`, retrying a send refused with `QueueFull`; its time and
/// retries.
fn produce(
    per: u64,
    first: u64,
    send: impl Fn(usize, u64) -> Result<(), Error>,
) -> (Duration, u64) {
    let mut retries = 0;
    let begin = Instant::now();
    for i in 0..per {
        loop {
            match send(i as usize % NAMES, first + i) {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => {
                    retries += 1;
                    thread::yield_now();
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
    }
    (begin.elapsed(), retries)
}

/// `producers` threads send `n` lines in total through one interval-mode
/// sender, with `api`; timed until every line has arrived.
fn interval_send(drain: &Drain, producers: usize, n: u64, api: Api) -> IntervalRun {
    let per = n / producers as u64;
    let n = per * producers as u64;
    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(drain.port)
            .interval(INTERVAL)
            .timeout(TIMEOUT),
    )
    .expect("sender");
    let tables: Vec<Vec<String>> = (0..producers).map(|t| names(&format!("p{t}"))).collect();
    let handles: Vec<Vec<Metric>> = tables
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|name| sender.metric(name).expect("metric"))
                .collect()
        })
        .collect();
    let ts_len = digits(now_secs());
    let (base_lines, base_bytes) = (drain.lines(), drain.bytes());
    let start = Instant::now();
    let results: Vec<(Duration, u64)> = thread::scope(|s| {
        let threads: Vec<_> = tables
            .iter()
            .zip(&handles)
            .enumerate()
            .map(|(t, (names, handles))| {
                let sender = &sender;
                let first = t as u64 * per;
                s.spawn(move || match api {
                    Api::Send => produce(per, first, |j, v| sender.send(names[j].as_str(), v)),
                    Api::Handle => produce(per, first, |j, v| handles[j].send(v)),
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    // Without this the last lines wait for the next tick of the interval
    // (up to 50 ms on a run of half a second or so): the figure would move
    // in steps of the interval.
    sender.flush().expect("flush");
    let arrived = drain.wait_for(base_lines + n, Duration::from_secs(120));
    let secs = (arrived - start).as_secs_f64();
    drop(handles);
    sender.stop().expect("stop");
    drain.assert_settled(base_lines + n);
    let stats = sender.stats();
    assert_eq!(stats.sent, n, "the sender counted {} sent", stats.sent);
    let expected_bytes: u64 = tables
        .iter()
        .enumerate()
        .map(|(t, names)| {
            let first = t as u64 * per;
            (0..per)
                .map(|i| names[i as usize % NAMES].len() as u64 + digits(first + i) + ts_len + 3)
                .sum::<u64>()
        })
        .sum();
    let bytes = drain.bytes() - base_bytes;
    assert_eq!(
        bytes, expected_bytes,
        "the bytes that arrived differ from the lines sent"
    );
    IntervalRun {
        producers,
        api,
        flow: Flow {
            lines: n,
            bytes,
            secs,
        },
        caller_ns: results
            .iter()
            .map(|(d, _)| d.as_nanos() as f64 / per as f64)
            .collect(),
        retries: results.iter().map(|&(_, r)| r).collect(),
        rounds: Vec::new(),
    }
}

/// The caller's cost with no drain in the way: `producers` threads each
/// send `per` lines through one interval-mode sender whose interval is
/// `graphyte_benches::no_tick()` and whose queue holds three times everything, so the interval
/// thread never wakes (not even at its high-water mark) while they send;
/// after an untimed round of the same sends that leaves each thread a
/// buffer big enough. Returns the mean ns per send over the producers of
/// the timed round. Then `stop()` delivers every line to the drain, which
/// checks that all of them arrived.
fn caller_cost(drain: &Drain, producers: usize, per: u64, api: Api) -> f64 {
    let n = per * producers as u64;
    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(drain.port)
            .interval(graphyte_benches::no_tick())
            .queue_size(3 * n as usize)
            .queue_bytes(3 * 64 * n as usize)
            .timeout(TIMEOUT),
    )
    .expect("sender");
    let tables: Vec<Vec<String>> = (0..producers).map(|t| names(&format!("c{t}"))).collect();
    let handles: Vec<Vec<Metric>> = tables
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|n| sender.metric(n).expect("metric"))
                .collect()
        })
        .collect();
    let base_lines = drain.lines();
    let gate = std::sync::Barrier::new(producers);
    // What the interval thread had written when the timed sends began.
    let sent_before = AtomicU64::new(u64::MAX);
    let results: Vec<(Duration, u64)> = thread::scope(|s| {
        let threads: Vec<_> = tables
            .iter()
            .zip(&handles)
            .enumerate()
            .map(|(t, (names, handles))| {
                let (sender, gate, sent_before) = (&sender, &gate, &sent_before);
                let first = t as u64 * per;
                s.spawn(move || {
                    let round = || match api {
                        Api::Send => produce(per, first, |j, v| sender.send(names[j].as_str(), v)),
                        Api::Handle => produce(per, first, |j, v| handles[j].send(v)),
                    };
                    // A first round, untimed, grows this thread's buffer to
                    // what a round needs; two flushes hand it back emptied
                    // (the first takes it, the second, after a line, swaps
                    // it in again). The timed round then writes into memory
                    // already touched, as a sender past its first interval
                    // does: what is left is the sends, not the kernel
                    // faulting in pages for all the producers of one process.
                    round();
                    gate.wait();
                    if t == 0 {
                        sender.flush().expect("flush");
                    }
                    gate.wait();
                    sender.send(names[0].as_str(), 0).expect("send");
                    gate.wait();
                    if t == 0 {
                        sender.flush().expect("flush");
                        sent_before.store(sender.stats().sent, Relaxed);
                    }
                    // The producers start together, so that their sends overlap.
                    gate.wait();
                    round()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    let n = 2 * n + producers as u64;
    assert!(
        results.iter().all(|&(_, retries)| retries == 0),
        "a send met a full queue in the no-drain run"
    );
    assert_eq!(
        sender.stats().sent,
        sent_before.load(Relaxed),
        "the interval thread wrote while the producers sent"
    );
    drop(handles);
    sender.stop().expect("stop");
    drain.wait_for(base_lines + n, Duration::from_secs(120));
    drain.assert_settled(base_lines + n);
    results
        .iter()
        .map(|(d, _)| d.as_nanos() as f64 / per as f64)
        .sum::<f64>()
        / producers as f64
}

/// Producer counts of the caller-cost runs.
const CALLER_PRODUCERS: [usize; 3] = [1, 2, 4];

/// Caller cost in ns per send, median of the rounds, for each API and each
/// of [`CALLER_PRODUCERS`]; the rounds run alternately (1, 2, 4 producers,
/// `send()` then `Metric::send()`, then again), so a slow stretch of the
/// machine hits every figure.
struct CallerCost {
    per: u64,
    /// `[api][producers index]`: every round's ns per send, in run order.
    rounds: [[Vec<f64>; 3]; 2],
}

impl CallerCost {
    fn measure(drain: &Drain, per: u64, rounds: usize) -> CallerCost {
        let mut cost = CallerCost {
            per,
            rounds: Default::default(),
        };
        for _ in 0..rounds {
            for (a, api) in [Api::Send, Api::Handle].into_iter().enumerate() {
                for (p, &producers) in CALLER_PRODUCERS.iter().enumerate() {
                    let ns = caller_cost(drain, producers, per, api);
                    println!(
                        "caller cost, no drain, {} with {producers} producer(s): {ns:.1} ns/send",
                        api.describe()
                    );
                    cost.rounds[a][p].push(ns);
                }
            }
        }
        cost
    }
    fn median(&self, api: Api, producers: usize) -> f64 {
        let p = CALLER_PRODUCERS
            .iter()
            .position(|&c| c == producers)
            .expect("a measured producer count");
        median(&self.rounds[api as usize][p])
    }
    fn rounds(&self, api: Api, producers: usize) -> String {
        let p = CALLER_PRODUCERS
            .iter()
            .position(|&c| c == producers)
            .expect("a measured producer count");
        self.rounds[api as usize][p]
            .iter()
            .map(|ns| format!("{ns:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Calls `step(0)`, `step(1)`, ... for `secs` (the clock is read every 64
/// calls); returns how many calls and how long they took.
fn repeat_for(secs: f64, mut step: impl FnMut(u64)) -> (u64, Duration) {
    let limit = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        step(calls);
        calls += 1;
        if calls.is_multiple_of(64) {
            let elapsed = start.elapsed();
            if elapsed >= limit {
                return (calls, elapsed);
            }
        }
    }
}

/// Synchronous `send()` for `secs`: sends per second.
fn sync_send(drain: &Drain, secs: f64) -> f64 {
    let sender =
        Sender::new(Config::new("127.0.0.1").port(drain.port).timeout(TIMEOUT)).expect("sender");
    let names = names("sync");
    let base = drain.lines();
    let (sent, elapsed) = repeat_for(secs, |i| {
        sender
            .send(&names[i as usize % NAMES], 20_000_000 + i)
            .expect("sync send");
    });
    drain.wait_for(base + sent, Duration::from_secs(30));
    sender.stop().expect("stop");
    drain.assert_settled(base + sent);
    sent as f64 / elapsed.as_secs_f64()
}

/// One `write()` per preformatted line on a plain socket for `secs`.
fn raw_per_line(drain: &Drain, secs: f64) -> f64 {
    let lines: Vec<Vec<u8>> = preformatted("rawline", 30_000_000, 256 << 10, 1)
        .into_iter()
        .map(|(line, _)| line)
        .collect();
    let base = drain.lines();
    let mut stream = TcpStream::connect(("127.0.0.1", drain.port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sent, elapsed) = repeat_for(secs, |i| {
        stream
            .write_all(&lines[i as usize % lines.len()])
            .expect("raw write");
    });
    drain.wait_for(base + sent, Duration::from_secs(30));
    drop(stream);
    drain.assert_settled(base + sent);
    sent as f64 / elapsed.as_secs_f64()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rates(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Python graphyte

/// The interpreter with the PyPI graphyte: `$GRAPHYTE_BENCH_PYTHON`, else
/// the repository's `.venv` if graphyte imports there.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRAPHYTE_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"));
    let ok = Command::new(&venv)
        .args([
            "-c",
            "from importlib.metadata import version; version('graphyte')",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(venv)
}

const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_graphyte.py");

struct PythonChild {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl PythonChild {
    fn spawn(python: &PathBuf, args: &[String]) -> PythonChild {
        let mut child = Command::new(python)
            .arg(DRIVER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut c = PythonChild {
            child,
            stdin,
            stdout,
        };
        let ready = c.line();
        assert!(ready.starts_with("ready "), "python driver said {ready:?}");
        c
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from python");
        line.trim().to_owned()
    }

    fn say(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").expect("write to python");
        self.stdin.flush().expect("flush to python");
    }

    /// The `seconds=` of the `result` line.
    fn result_secs(&mut self) -> f64 {
        let result = self.line();
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("seconds="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("python driver said {result:?}"))
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().expect("wait for python");
        assert!(status.success(), "python driver failed: {status}");
    }
}

fn python_version(python: &PathBuf) -> String {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; from importlib.metadata import version; \
             print('graphyte ' + version('graphyte') + ', python ' + sys.version.split()[0])",
        ])
        .output()
        .expect("run python");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// TCP sockets in TIME_WAIT on this machine (IPv4 and IPv6).
fn time_wait_sockets() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|l| l.split_whitespace().nth(3) == Some("06"))
                .count()
        })
        .sum()
}

/// Python graphyte without an interval: sends per second (its own timing of
/// the send loop), after checking that every line arrived.
fn python_sync(python: &PathBuf, drain: &Drain, sends: u64) -> f64 {
    let base = drain.lines();
    let mut child = PythonChild::spawn(
        python,
        &[drain.port.to_string(), "sync".into(), sends.to_string()],
    );
    child.say("go");
    let secs = child.result_secs();
    child.finish();
    drain.wait_for(base + sends, Duration::from_secs(30));
    drain.assert_settled(base + sends);
    sends as f64 / secs
}

struct PythonInterval {
    end_to_end: f64,
    caller: f64,
}

/// Python graphyte with interval 0.05: lines/s from "go" until the drain has
/// every line, and the caller's sends/s.
fn python_interval(python: &PathBuf, drain: &Drain, sends: u64) -> PythonInterval {
    let base = drain.lines();
    let mut child = PythonChild::spawn(
        python,
        &[
            drain.port.to_string(),
            "interval".into(),
            sends.to_string(),
            INTERVAL.as_secs_f64().to_string(),
        ],
    );
    let start = Instant::now();
    child.say("go");
    let arrived = drain.wait_for(base + sends, Duration::from_secs(120));
    let secs = child.result_secs();
    child.say("stop");
    child.finish();
    drain.assert_settled(base + sends);
    PythonInterval {
        end_to_end: sends as f64 / (arrived - start).as_secs_f64(),
        caller: sends as f64 / secs,
    }
}

// ---------------------------------------------------------------------------
// Memory

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[derive(Default)]
struct Memory {
    queue: u64,
    line_bytes: f64,
    /// VmRSS with the sender connected and idle, before the pause.
    baseline: u64,
    /// VmRSS when the first send was refused (the queue just filled).
    at_full: u64,
    /// Highest VmRSS sampled during the pause.
    peak: u64,
    /// VmRSS at the end of the pause.
    end: u64,
    hwm: u64,
    accepted: u64,
    refused: u64,
    samples: u64,
}

impl Memory {
    fn bound_kib(&self) -> u64 {
        (self.queue as f64 * self.line_bytes / 1024.0).ceil() as u64
    }
    fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.baseline)
    }
    fn flat(&self) -> u64 {
        self.peak.saturating_sub(self.at_full)
    }
    fn met(&self) -> bool {
        self.growth() <= self.bound_kib() + MEMORY_SLACK_KIB
    }
    fn describe(&self) -> String {
        format!(
            "queue {} lines × {:.1} bytes = {} KiB; RSS {} KiB idle, {} KiB when the queue filled, peak {} KiB ({} samples), end {} KiB; growth {} KiB ({:.2} × queue bytes), {} KiB after the queue filled; {} accepted, {} refused while paused, all accepted arrived",
            self.queue,
            self.line_bytes,
            self.bound_kib(),
            self.baseline,
            self.at_full,
            self.peak,
            self.samples,
            self.end,
            self.growth(),
            self.growth() as f64 / self.bound_kib() as f64,
            self.flat(),
            self.accepted,
            self.refused
        )
    }
}

/// Runs this binary as a memory child and parses its `memory k=v ...` line.
fn run_memory_child(queue: usize, pause: Duration) -> Memory {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([
            "--memory-child".to_owned(),
            queue.to_string(),
            pause.as_millis().to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the memory child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "memory child failed: {}\n{stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("memory "))
        .unwrap_or_else(|| panic!("memory child said {stdout:?}"));
    let mut m = Memory::default();
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').expect("k=v");
        let int = || v.parse::<u64>().expect("integer");
        match k {
            "queue" => m.queue = int(),
            "line_bytes" => m.line_bytes = v.parse().expect("number"),
            "baseline" => m.baseline = int(),
            "at_full" => m.at_full = int(),
            "peak" => m.peak = int(),
            "end" => m.end = int(),
            "hwm" => m.hwm = int(),
            "accepted" => m.accepted = int(),
            "refused" => m.refused = int(),
            "samples" => m.samples = int(),
            _ => {}
        }
    }
    m
}

/// The child: a drain of its own, a sender with a `queue`-line queue; the
/// drain stops reading for `pause` while one thread keeps sending and
/// another samples VmRSS; then the drain resumes and every accepted line
/// must arrive.
fn memory_child(queue: usize, pause: Duration) {
    let drain = Drain::start();
    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(drain.port)
            .interval(INTERVAL)
            .queue_size(queue)
            .timeout(TIMEOUT),
    )
    .expect("sender");
    let names = names("mem");
    // Warm up: connect, and let the buffers reach their working size.
    let warm = 1_000u64;
    for i in 0..warm {
        sender
            .send(&names[i as usize % NAMES], 40_000_000 + i)
            .expect("warm-up send");
    }
    sender.flush().expect("flush");
    drain.wait_for(warm, Duration::from_secs(30));
    let line_bytes = drain.bytes() as f64 / drain.lines() as f64;
    let baseline = proc_status_kib("VmRSS");

    drain.pause(true);
    let done = AtomicBool::new(false);
    let at_full = AtomicU64::new(0);
    let (accepted, refused, peak, end, samples) = thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut peak, mut samples) = (0, 0);
            while !done.load(Acquire) {
                peak = peak.max(proc_status_kib("VmRSS"));
                samples += 1;
                thread::sleep(Duration::from_millis(10));
            }
            (peak, samples)
        });
        let (mut accepted, mut refused) = (0u64, 0u64);
        let start = Instant::now();
        let mut i = warm;
        // At least `pause`, and until the queue is full: a loaded machine
        // (or a debug build) may need longer to fill it.
        while start.elapsed() < pause || (refused == 0 && start.elapsed() < FILL_LIMIT) {
            for _ in 0..256 {
                match sender.send(&names[i as usize % NAMES], 40_000_000 + i) {
                    Ok(()) => accepted += 1,
                    Err(Error::QueueFull { .. }) => {
                        if refused == 0 {
                            at_full.store(proc_status_kib("VmRSS"), Release);
                        }
                        refused += 1;
                    }
                    Err(e) => panic!("send failed: {e}"),
                }
                i += 1;
            }
        }
        let end = proc_status_kib("VmRSS");
        done.store(true, Release);
        let (peak, samples) = sampler.join().expect("sampler");
        (accepted, refused, peak.max(end), end, samples)
    });
    assert!(refused > 0, "the queue never filled within {FILL_LIMIT:?}");
    drain.pause(false);
    sender.flush().expect("flush after the pause");
    drain.wait_for(warm + accepted, Duration::from_secs(60));
    sender.stop().expect("stop");
    drain.assert_settled(warm + accepted);
    let stats = sender.stats();
    assert_eq!(stats.sent, warm + accepted);
    assert_eq!(stats.dropped, refused);
    println!(
        "memory queue={queue} line_bytes={line_bytes:.2} baseline={baseline} at_full={} peak={peak} end={end} hwm={} accepted={accepted} refused={refused} samples={samples}",
        at_full.load(Acquire),
        proc_status_kib("VmHWM"),
    );
}

// ---------------------------------------------------------------------------
// Report

/// Everything `report` shows.
struct Results<'a> {
    plan: &'a Plan,
    raw: &'a Flow,
    raw_rounds: &'a [f64],
    /// 1 and 2 producers.
    send: [&'a IntervalRun; 2],
    handle: [&'a IntervalRun; 2],
    caller: &'a CallerCost,
    sync: f64,
    sync_rounds: &'a [f64],
    raw_line: f64,
    raw_line_rounds: &'a [f64],
    py: Option<&'a (String, f64, PythonInterval)>,
    memory: &'a [Memory],
    hwm: u64,
}

fn millions(rounds: &[f64]) -> String {
    rounds
        .iter()
        .map(|r| format!("{:.2}", r / 1e6))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(r: &Results<'_>) {
    let plan = r.plan;
    let raw = r.raw;
    println!("\n== graphyte end-to-end throughput: figures from this run ==");
    if !plan.full {
        println!("(smoke run under cargo test: debug build, small N; no verdicts)");
    }
    if let Some((version, _, _)) = r.py {
        println!("peer: {version}");
    }
    let mut figures = Fragment::new("throughput-figures");
    figures.line("| measurement | this run (median of the rounds where rounds apply) |");
    figures.line("|---|---|");
    figures.line(format!(
        "| raw limit: preformatted lines in 64 KiB writes ({:.1} bytes/line) | {:.2} M lines/s ({:.0} MB/s); rounds {} M |",
        raw.bytes as f64 / raw.lines as f64,
        raw.rate() / 1e6,
        raw.bytes as f64 / raw.secs / 1e6,
        millions(r.raw_rounds)
    ));
    for run in r.send.iter().chain(&r.handle) {
        figures.line(format!(
            "| interval `{}`, {} producer{}, {} M lines ({:.1} bytes/line) | {:.2} M lines/s end to end; caller {:.1} ns/send; {} `QueueFull` retries; rounds {} M |",
            run.api.describe(),
            run.producers,
            if run.producers == 1 { "" } else { "s" },
            run.flow.lines as f64 / 1e6,
            run.flow.bytes as f64 / run.flow.lines as f64,
            run.flow.rate() / 1e6,
            run.caller_ns(),
            run.retries(),
            millions(&run.rounds)
        ));
    }
    figures.line(format!(
        "| sync `send()`, one persistent connection | {:.0} sends/s; rounds {} |",
        r.sync,
        rates(r.sync_rounds)
    ));
    figures.line(format!(
        "| raw: one `write()` per line on a `TcpStream` | {:.0} writes/s; rounds {} |",
        r.raw_line,
        rates(r.raw_line_rounds)
    ));
    match r.py {
        Some((version, py_sync, py_int)) => {
            figures.line(format!(
                "| Python graphyte sync `send()`, {} sends ({version}) | {py_sync:.0} sends/s |",
                plan.python_sync_sends
            ));
            figures.line(format!(
                "| Python graphyte interval 0.05 s, {} sends | {:.0} lines/s end to end (caller {:.0} sends/s) |",
                plan.python_interval_sends, py_int.end_to_end, py_int.caller
            ));
        }
        None => figures.line("| Python graphyte | not measured |"),
    }
    figures.line(format!(
        "| peak RSS of the whole throughput run (`VmHWM`) | {:.1} MiB |",
        r.hwm as f64 / 1024.0
    ));

    let mut mem = Fragment::new("throughput-memory");
    mem.line("| queue_size | queued bytes (queue × line size) | RSS idle → full → end of pause | growth | accepted / refused while paused |");
    mem.line("|---|---|---|---|---|");
    for m in r.memory {
        mem.line(format!(
            "| {} | {} KiB ({:.1} bytes/line) | {} → {} → {} KiB | {} KiB = {:.2} × queued bytes; +{} KiB once full | {} / {} (all accepted arrived) |",
            m.queue,
            m.bound_kib(),
            m.line_bytes,
            m.baseline,
            m.at_full,
            m.end,
            m.growth(),
            m.growth() as f64 / m.bound_kib() as f64,
            m.flat(),
            m.accepted,
            m.refused
        ));
    }

    let c = r.caller;
    let mut prod = Fragment::new("throughput-producers");
    prod.line(
        "| producers | `send()` ns per send | × 1 producer | `Metric::send()` ns per send | × 1 producer | `Metric::send()` / `send()` |",
    );
    prod.line("|---|---|---|---|---|---|");
    for &p in &CALLER_PRODUCERS {
        let (send, handle) = (c.median(Api::Send, p), c.median(Api::Handle, p));
        prod.line(format!(
            "| {p} | {send:.1} (rounds {}) | {:.2} × | {handle:.1} (rounds {}) | {:.2} × | {:.2} × |",
            c.rounds(Api::Send, p),
            send / c.median(Api::Send, 1),
            c.rounds(Api::Handle, p),
            handle / c.median(Api::Handle, 1),
            handle / send
        ));
    }
    prod.line("");
    prod.line(format!(
        "Each producer sends {} lines per round with distinct names and values into one sender with an interval that does not tick during the run and a queue three times what they send (the interval thread never wakes; the run asserts it wrote nothing and that no send was refused), after an untimed warm-up of the same sends that leaves each thread a buffer big enough; then `stop()` delivers every line to the drain, which checks that all arrived. Mean ns per send over the producers; median of {} rounds. This machine has {} cores: 4 producers share them.",
        c.per,
        c.rounds[0][0].len(),
        thread::available_parallelism().map_or(0, |n| n.get())
    ));

    let mut targets = Fragment::new("throughput-targets");
    targets.line("| target | this run | verdict |");
    targets.line("|---|---|---|");
    let show = |met: bool| if plan.full { verdict(met) } else { "-" };
    let producers = |run: &IntervalRun| {
        format!(
            "{} producer{}",
            run.producers,
            if run.producers == 1 { "" } else { "s" }
        )
    };
    for run in r.send {
        targets.line(format!(
            "| interval `send()` end to end, {}: ≥ 10 M lines/s | **{:.2} M lines/s** ({:.2} × the raw limit) | {} |",
            producers(run),
            run.flow.rate() / 1e6,
            run.flow.rate() / raw.rate(),
            show(run.flow.rate() >= 10e6)
        ));
    }
    for api in [Api::Send, Api::Handle] {
        let (one, two) = (c.median(api, 1), c.median(api, 2));
        targets.line(format!(
            "| caller cost, no drain, `{}`: 2 producers ≤ 1.1 × 1 producer | {two:.1} ns vs {one:.1} ns = **{:.2} ×** (4 producers: {:.1} ns) | {} |",
            api.describe(),
            two / one,
            c.median(api, 4),
            show(two / one <= 1.1)
        ));
    }
    for runs in [r.send, r.handle] {
        let ratio = runs[1].flow.rate() / runs[0].flow.rate();
        targets.line(format!(
            "| interval `{}` end to end: 2 producers ≥ 0.95 × 1 producer | {:.2} M vs {:.2} M lines/s = **{ratio:.2} ×** | {} |",
            runs[0].api.describe(),
            runs[1].flow.rate() / 1e6,
            runs[0].flow.rate() / 1e6,
            show(ratio >= 0.95)
        ));
    }
    for (handle, send) in r.handle.iter().zip(r.send) {
        let ratio = handle.flow.rate() / send.flow.rate();
        let of_raw = handle.flow.rate() / raw.rate();
        let (target, verdict) = if handle.producers == 1 {
            (
                "≥ 2 × `send()`, or ≥ 0.6 × the raw limit",
                show(ratio >= 2.0 || of_raw >= 0.6),
            )
        } else {
            ("reported", "-")
        };
        targets.line(format!(
            "| interval `Metric::send()` (handles) end to end, {}: {target} | {:.2} M lines/s = **{ratio:.2} ×** `send()` ({:.2} M), **{:.2} ×** the raw limit ({:.2} M) | {verdict} |",
            producers(handle),
            handle.flow.rate() / 1e6,
            send.flow.rate() / 1e6,
            of_raw,
            raw.rate() / 1e6,
        ));
    }
    match r.py {
        Some((_, py_sync, py_int)) => {
            for run in r.send {
                let x = run.flow.rate() / py_int.end_to_end;
                targets.line(format!(
                    "| interval end to end, {}: ≥ 50 × Python graphyte | **{x:.0} ×** ({:.2} M vs {:.0} lines/s) | {} |",
                    producers(run),
                    run.flow.rate() / 1e6,
                    py_int.end_to_end,
                    show(x >= 50.0)
                ));
            }
            let x = r.sync / py_sync;
            targets.line(format!(
                "| sync `send()`: ≥ 25 × Python graphyte | **{x:.1} ×** ({:.0} vs {py_sync:.0} sends/s) | {} |",
                r.sync,
                show(x >= 25.0)
            ));
        }
        None => {
            targets.line("| interval end to end: ≥ 50 × Python graphyte | not measured | - |");
            targets.line("| sync `send()`: ≥ 25 × Python graphyte | not measured | - |");
        }
    }
    let x = r.sync / r.raw_line;
    targets.line(format!(
        "| sync `send()`: ≥ 0.8 × one `write()` per line | **{x:.2} ×** ({:.0} vs {:.0}/s) | {} |",
        r.sync,
        r.raw_line,
        show(x >= 0.8)
    ));
    for m in r.memory {
        targets.line(format!(
            "| memory, queue {} lines, drain stopped: growth ≤ queued bytes + {} MiB | growth {} KiB = {:.2} × the {} KiB of queued lines; +{} KiB once full | {} |",
            m.queue,
            MEMORY_SLACK_KIB / 1024,
            m.growth(),
            m.growth() as f64 / m.bound_kib() as f64,
            m.bound_kib(),
            m.flat(),
            show(m.met())
        ));
    }

    let dir = results_dir(plan.full);
    figures.save(&dir);
    mem.save(&dir);
    prod.save(&dir);
    targets.save(&dir);
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).expect("charts dir");
    let path = charts.join("producers.svg");
    let points = |runs: [&IntervalRun; 2]| -> Vec<(f64, f64)> {
        runs.iter()
            .map(|run| (run.producers as f64, run.flow.rate() / 1e6))
            .collect()
    };
    chart::against_producers(
        &path,
        "Interval mode end to end over loopback TCP (median of rounds)",
        "M lines/s arrived",
        &[
            Line {
                label: "Metric::send() (handles)",
                color: chart::OURS,
                points: points(r.handle),
            },
            Line {
                label: "Sender::send(name, value)",
                color: chart::OURS_2,
                points: points(r.send),
            },
        ],
        (
            "raw limit: one writer, preformatted 64 KiB writes",
            raw.rate() / 1e6,
        ),
    )
    .expect("draw the chart");
    println!("chart: {}", path.display());
}
