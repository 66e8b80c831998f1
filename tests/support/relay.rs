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
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::carbon::CarbonServer;
use super::child::{self, tail, ChildServer, Launch, Proto, Ready, StartError};

/// Env var naming the carbon-c-relay binary (set by ./scripts/test).
pub const RELAY_ENV: &str = "GRAPHYTE_RELAY_BIN";
/// The relay's queue per destination (`-q`) in these tests: far more than a
/// test sends while a cache is down, so the relay never drops for lack of
/// room (the default, 25,000, would also make it throttle its clients).
pub const QUEUE: usize = 500_000;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;
/// A TLS listener's certificate and key, in the relay's directory.
const TLS_PEM_FILE: &str = "listener.pem";

/// Finds carbon-c-relay: `$GRAPHYTE_RELAY_BIN`, else `carbon-c-relay` on
/// `PATH`, else `<repo>/.relay/usr/bin/carbon-c-relay` (where
/// ./scripts/test unpacks it by default).
pub fn locate() -> Result<PathBuf, String> {
    child::locate_binary(RELAY_ENV, "carbon-c-relay", ".relay/usr/bin/carbon-c-relay")
}

fn how_to_get_relay(why: &str) -> String {
    format!(
        "carbon-c-relay is not available ({why}). Run the tests with ./scripts/test, which \
         fetches Debian's package without root (apt-get download + dpkg-deb -x) and sets \
         {RELAY_ENV}; or point {RELAY_ENV} at a carbon-c-relay binary."
    )
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

/// A carbon-c-relay child process listening on 127.0.0.1 (through the one
/// harness, [`super::child`]), its config and log in a temporary directory.
/// Killed (SIGKILL), and the directory removed, on drop.
pub struct RelayServer {
    /// The current run.
    server: ChildServer,
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
        let dir = child::fresh_dir("relay");
        let (server, port) = child::retry_on_clash("carbon-c-relay", START_ATTEMPTS, || {
            let port = child::pick_ports(&[false])[0];
            Self::spawn(bin, &dir, port, &config, 1).map(|server| (server, port))
        });
        RelayServer {
            server,
            bin: bin.to_path_buf(),
            dir,
            port,
            config,
            runs: 1,
        }
    }

    fn log_path(dir: &Path, run: usize) -> PathBuf {
        dir.join(format!("relay.{run}.log"))
    }

    /// Writes the config (and a TLS listener's PEM) and starts run `run`;
    /// ready when the relay alone listens on `port`.
    fn spawn(
        bin: &Path,
        dir: &Path,
        port: u16,
        config: &RelayConfig,
        run: usize,
    ) -> Result<ChildServer, StartError> {
        let fatal = |what: &str, e: std::io::Error| StartError::Fatal(format!("{what}: {e}"));
        let conf = dir.join("relay.conf");
        let pem = dir.join(TLS_PEM_FILE);
        if let Some(text) = &config.tls_pem {
            fs::write(&pem, text).map_err(|e| fatal("writing the listener's PEM", e))?;
        }
        fs::write(&conf, config.render_in(port, &pem))
            .map_err(|e| fatal("writing relay.conf", e))?;
        let launch = Launch::new("carbon-c-relay", bin, dir)
            .arg("-f")
            .arg(&conf)
            .args(["-s", "-w", "2", "-q", &config.queue.to_string()])
            .log(Self::log_path(dir, run))
            .timeout(START_TIMEOUT)
            .clash_marker("in use")
            .ready(Ready::Sockets(vec![(Proto::Tcp, port)]));
        ChildServer::spawn(&launch)
    }

    /// Stops the relay with SIGTERM, as an init system would, and waits
    /// until it exited (it tries to deliver its queues first, then drops
    /// what is left and logs how much: see
    /// [`reported_drops`](Self::reported_drops)). Panics if it is still
    /// running after 30 s.
    pub fn terminate(&mut self) -> Duration {
        self.server.terminate(Duration::from_secs(30))
    }

    /// Starts the relay again on the SAME port with the same config (killing
    /// the running one first, if any) and waits until it listens. Each run
    /// logs to its own file ([`log`](Self::log) is the current run's,
    /// [`all_logs`](Self::all_logs) every run's).
    pub fn restart(&mut self) {
        self.server.kill();
        let run = self.runs + 1;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match Self::spawn(&self.bin, &self.dir, self.port, &self.config, run) {
                Ok(server) => {
                    self.server = server;
                    self.runs = run;
                    return;
                }
                // The port may still be held for a moment by the old run.
                Err(StartError::PortClash(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!(
                    "carbon-c-relay did not restart on port {}: {}",
                    self.port,
                    e.message()
                ),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// The current run's output (its log goes to stdout in the foreground).
    pub fn log(&self) -> String {
        self.server.log()
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
        self.server.kill();
        child::remove_dir(&self.dir, "relay");
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

    /// The relay tests' one check that each series of `names` is in exactly
    /// one cache (never both, never neither) and right there: `verify(name,
    /// that cache's points)` returns what is wrong, if anything. Panics with
    /// the first problems (and where a misplaced series was first seen, from
    /// `first_seen`, what [`wait_for`](Self::wait_for) returned) and the
    /// logs. Returns how many of `names` each cache holds.
    pub fn check_each_in_one_cache(
        &self,
        what: &str,
        names: &[String],
        first_seen: &BTreeMap<String, [Vec<(u32, f64)>; 2]>,
        verify: impl Fn(&str, &[(u32, f64)]) -> Option<String>,
    ) -> [usize; 2] {
        let mut per_cache = [0usize; 2];
        let mut problems = Vec::new();
        for name in names {
            let holders = self.holders(name);
            let [c] = holders.as_slice() else {
                problems.push(format!(
                    "{name} is in caches {holders:?} (first seen: {:?})",
                    first_seen.get(name)
                ));
                continue;
            };
            per_cache[*c] += 1;
            if let Some(problem) = verify(name, &self.points(name)[*c]) {
                problems.push(problem);
            }
        }
        assert!(
            problems.is_empty(),
            "{what}: {} of {} series wrong, first ones:\n{}\n{}",
            problems.len(),
            names.len(),
            problems[..problems.len().min(10)].join("\n"),
            self.logs()
        );
        per_cache
    }

    /// The check of the relay tests that send one point per series: waits
    /// (60 s at most) until each series of `expected` (name as carbon
    /// stores it, value) is on disk, gives a late copy time to be written
    /// (carbon writes within about 1 s), then checks that each series is in
    /// exactly one cache holding exactly `[(ts, value)]`, and that nothing
    /// else is in either cache. Returns how many series each cache holds.
    pub fn check_single_points(
        &self,
        what: &str,
        expected: &[(String, f64)],
        ts: u32,
    ) -> [usize; 2] {
        let names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
        let found = self.wait_for(&names, Duration::from_secs(60), |[a, b]| {
            !a.is_empty() || !b.is_empty()
        });
        thread::sleep(Duration::from_millis(2500));
        let values: BTreeMap<&str, f64> = expected.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let per_cache = self.check_each_in_one_cache(what, &names, &found, |name, points| {
            let value = values[name];
            (points != [(ts, value)])
                .then(|| format!("{name}: cache has {points:?}, expected [({ts}, {value})]"))
        });
        self.assert_nothing_else(what, per_cache);
        per_cache
    }

    /// Nothing else in either cache (no relay statistics, no renamed
    /// series): each holds exactly `per_cache` whisper files.
    pub fn assert_nothing_else(&self, what: &str, per_cache: [usize; 2]) {
        let files = [
            self.caches[0].whisper_files().len(),
            self.caches[1].whisper_files().len(),
        ];
        assert_eq!(
            files, per_cache,
            "{what}: whisper files per cache vs expected series per cache"
        );
    }

    /// Consistent hashing over two members: each cache holds a real share
    /// of the series (measured 35-65 %; under 10 % would mean the ring is not
    /// used).
    pub fn assert_both_caches_share(&self, what: &str, per_cache: [usize; 2]) {
        let total = per_cache[0] + per_cache[1];
        for (c, n) in per_cache.iter().enumerate() {
            assert!(
                *n * 10 >= total,
                "{what}: cache {c} got only {n} of {total} series"
            );
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
