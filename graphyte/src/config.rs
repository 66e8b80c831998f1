//! [`Config`]: where metrics go and how they are sent.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use crate::report::LineSource;
use crate::transport::{Protocol, Transport};

/// Default Carbon plaintext port.
pub const DEFAULT_PORT: u16 = 2003;
/// Default connect and write timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest number of lines per write in interval mode.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// Default interval-mode queue bound, in lines: a burst of 250,000 sends
/// between two writes is kept whole (about 15 MiB of 60-byte lines at most).
pub const DEFAULT_QUEUE_SIZE: usize = 250_000;

/// Default interval-mode queue bound, in bytes of queued lines: 32 MiB, room
/// for the default 250,000 lines of up to 134 bytes each (see
/// [`Config::queue_bytes`] for the memory it takes).
pub const DEFAULT_QUEUE_BYTES: usize = 32 << 20;

/// How a [`Sender`](crate::Sender) sends: server, prefix, mode and limits.
///
/// Built with setters from [`Config::new`], or converted from a `&str`
/// (`"host"`, `"host:port"`, `"[::1]:2003"`, a bare IPv6 address):
///
/// ```
/// use std::time::Duration;
/// let config = graphyte::Config::new("graphite.example.com")
///     .port(2003)
///     .prefix("system.async")
///     .tag("env", "prod")
///     .interval(Duration::from_secs(10))
///     .timeout(Duration::from_secs(2));
/// assert_eq!(config.address(), "graphite.example.com:2003");
///
/// let config: graphyte::Config = "127.0.0.1:2103".into();
/// assert_eq!(config.address(), "127.0.0.1:2103");
/// ```
///
/// | setting | default | meaning | out of range |
/// |---|---|---|---|
/// | [`port`](Config::port) | 2003 | Carbon's plaintext port | 0: refused |
/// | [`prefix`](Config::prefix) | none | joined to every name with one `.` | an invalid path: refused |
/// | [`timeout`](Config::timeout) | 5 s | each connect and write; also bounds `flush`/`stop` | under 1 ms: 1 ms; too long to be an instant: a year |
/// | [`interval`](Config::interval) | none (synchronous) | queue sends and write them from a background thread | zero: synchronous |
/// | [`queue_size`](Config::queue_size) | 250,000 lines | interval mode: lines kept before sends are dropped | 0: refused |
/// | [`queue_bytes`](Config::queue_bytes) | 32 MiB | interval mode: bytes of lines kept before sends are dropped | under 16 KiB (the longest line): 16 KiB |
/// | [`batch_size`](Config::batch_size) | 1000 lines | interval mode: lines per write | 0: refused |
/// | [`protocol`](Config::protocol) | TCP | or UDP | |
/// | [`udp_max_datagram`](Config::udp_max_datagram) | 1432 bytes | UDP: the largest datagram | clamped to 1..=65,507 |
/// | [`dns_refresh`](Config::dns_refresh) | 60 s | while connected, resolve a host name again this often and move to a new address | zero: only when connecting; under 1 s: 1 s |
/// | [`tag`](Config::tag) | none | tags added to every line; per-call tags win | an invalid tag: refused |
/// | [`log_sends`](Config::log_sends) | false | log each send at INFO (target `graphyte`) | |
/// | [`self_metrics`](Config::self_metrics) | false | interval mode: also send graphyte's own counters | |
/// | [`idle_timeout`](Config::idle_timeout) | 10 min | macros' series: stop sending after this long without an update | under 1 s: 1 s |
/// | [`max_series`](Config::max_series) | 200,000 | macros' series: the most that exist; past it new names are refused | |
/// | [`percentiles`](Config::percentiles) | 0.5, 0.9, 0.99 | `metrics` histograms: the percentiles sent | outside (0, 1]: refused |
/// | [`transport`](Config::transport) | by protocol | send lines your own way | |
/// | `tls` (feature `tls`) | none (plaintext) | send over TLS: `Config::tls(graphyte::Tls)` | invalid TLS settings, or with UDP or a transport: refused |
///
/// "Refused" means [`Sender::new`](crate::Sender::new) and
/// [`init`](crate::init) return [`Error::InvalidConfig`](crate::Error::InvalidConfig)
/// (or `InvalidName`/`InvalidTag` for the prefix and tags) saying what is
/// wrong, and nothing is sent.
pub struct Config {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) interval: Option<Duration>,
    pub(crate) queue_size: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) batch_size: usize,
    pub(crate) protocol: Protocol,
    pub(crate) udp_max_datagram: usize,
    pub(crate) dns_refresh: Duration,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) log_sends: bool,
    pub(crate) self_metrics: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_series: usize,
    pub(crate) percentiles: Vec<f64>,
    pub(crate) transport: Option<Box<dyn Transport>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Tls>,
    /// Lines to send besides those given to `send` (the global sender's
    /// macro aggregates); set by [`init`](crate::init) only.
    pub(crate) source: Option<Arc<dyn LineSource>>,
    /// A problem found while parsing `host:port`, reported by `Sender::new`.
    pub(crate) error: Option<String>,
}

impl Config {
    /// A configuration for `host` (a name, an IPv4 or IPv6 address, or
    /// `host:port`) with every other setting at its default.
    ///
    /// A string that is not a host, such as a URL (`http://...`), a path, a
    /// bad port, an empty host or whitespace, is refused by
    /// [`Sender::new`](crate::Sender::new) and [`init`](crate::init) with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) saying what is
    /// wrong; nothing is sent.
    pub fn new(host: impl AsRef<str>) -> Config {
        let (host, port, error) = parse_host(host.as_ref());
        Config {
            host,
            port: port.unwrap_or(DEFAULT_PORT),
            prefix: String::new(),
            timeout: DEFAULT_TIMEOUT,
            interval: None,
            queue_size: DEFAULT_QUEUE_SIZE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch_size: DEFAULT_BATCH_SIZE,
            protocol: Protocol::Tcp,
            udp_max_datagram: crate::transport::DEFAULT_MAX_DATAGRAM,
            dns_refresh: crate::transport::DEFAULT_DNS_REFRESH,
            tags: Vec::new(),
            log_sends: false,
            self_metrics: false,
            idle_timeout: crate::aggregate::DEFAULT_IDLE_TIMEOUT,
            max_series: crate::aggregate::DEFAULT_MAX_SERIES,
            percentiles: crate::aggregate::DEFAULT_PERCENTILES.to_vec(),
            transport: None,
            #[cfg(feature = "tls")]
            tls: None,
            source: None,
            error,
        }
    }

    /// The server port (default 2003). Port 0 is refused by `Sender::new`
    /// and `init` (unless a [`transport`](Config::transport) is set).
    pub fn port(mut self, port: u16) -> Config {
        self.port = port;
        self
    }

    /// A prefix for every metric name, joined with one `.` (`"system.web"`).
    /// Validated like a metric path when the sender is made.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Config {
        self.prefix = prefix.into();
        self
    }

    /// Bound on each connect and each write (default 5 s; at least 1 ms).
    /// `flush`, `stop` and `Drop` also give up on undelivered lines after
    /// this long.
    pub fn timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// Interval mode: sends are queued and a background thread writes them
    /// every `interval` (and sooner when the queue is half full). Without an
    /// interval every send is written at once on the caller's thread.
    /// A zero interval means synchronous.
    pub fn interval(mut self, interval: Duration) -> Config {
        self.interval = (!interval.is_zero()).then_some(interval);
        self
    }

    /// Interval mode: the most lines kept waiting (default 250,000). A send
    /// that finds the queue full is dropped, counted in
    /// [`Stats::dropped`](crate::Stats::dropped) and returns
    /// [`Error::QueueFull`](crate::Error::QueueFull); it never blocks.
    /// At least 1: a queue of 0 lines is refused by `Sender::new` and `init`
    /// with [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn queue_size(mut self, lines: usize) -> Config {
        self.queue_size = lines;
        self
    }

    /// Interval mode: the most bytes of lines kept waiting (default 32 MiB,
    /// [`DEFAULT_QUEUE_BYTES`]), besides the [`queue_size`](Config::queue_size)
    /// bound in lines; a send that would pass it is refused the same way.
    /// The queue's buffers then take at most about twice this much memory
    /// (buffers grow by doubling), and for a moment up to four times while
    /// a failed write is put back in front of what arrived meanwhile. Under
    /// 16 KiB, the longest line graphyte sends, it is 16 KiB.
    ///
    /// ```
    /// // Lines of up to 16 KiB: without a byte bound, 250,000 of them would be 4 GiB.
    /// let config = graphyte::Config::new("graphite.example.com")
    ///     .interval(std::time::Duration::from_secs(10))
    ///     .queue_bytes(8 << 20);
    /// # let _ = config;
    /// ```
    pub fn queue_bytes(mut self, bytes: usize) -> Config {
        self.queue_bytes = bytes.max(crate::validate::MAX_LINE_LEN);
        self
    }

    /// Interval mode: the most lines per write (default 1000). At least 1:
    /// 0 is refused like a `queue_size` of 0.
    pub fn batch_size(mut self, lines: usize) -> Config {
        self.batch_size = lines;
        self
    }

    /// TCP (default) or UDP.
    pub fn protocol(mut self, protocol: Protocol) -> Config {
        self.protocol = protocol;
        self
    }

    /// UDP: the largest datagram in bytes (default 1432; clamped to
    /// 1..=65,507, the largest UDP payload over IPv4). Lines are never split.
    pub fn udp_max_datagram(mut self, bytes: usize) -> Config {
        self.udp_max_datagram = bytes;
        self
    }

    /// While a connection works, resolve the host name again every `period`
    /// (default 60 s) and follow the server when its address changes (a
    /// relay behind a DNS name, failover by DNS, a Kubernetes headless
    /// service). `Duration::ZERO` resolves only when connecting (after an
    /// error); under 1 s means 1 s. A numeric host is never resolved again.
    ///
    /// The lookup runs in interval mode on the background thread, never on
    /// the caller's; in synchronous mode the send that falls due does it,
    /// within the timeout. Over TCP (and TLS), when the connected address is
    /// no longer in the answer, the batch in flight completes on the old
    /// connection, which is then closed, and the next one goes over a new
    /// connection to the first new address that accepts: nothing is lost or
    /// sent twice. When none accepts, sending stays on the old connection
    /// until the next period. Over UDP the next datagram goes to the new
    /// address. The change is logged once at INFO (target `graphyte`):
    /// `graphite.example.com: now 10.0.0.7:2003, was 10.0.0.5:2003`.
    ///
    /// Every lookup (here and when connecting) is bounded by the
    /// [`timeout`](Config::timeout): a name server that does not answer
    /// fails a connect with
    /// [`Error::ResolveTimedOut`](crate::Error::ResolveTimedOut), and a
    /// refresh that gets no answer keeps the connection in use.
    pub fn dns_refresh(mut self, period: Duration) -> Config {
        self.dns_refresh = period;
        self
    }

    /// Adds a tag to every line (Graphite 1.1 tags). Tags passed to a call
    /// win over these for the same key.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Config {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Logs every send at INFO under target `graphyte` (default off).
    pub fn log_sends(mut self, on: bool) -> Config {
        self.log_sends = on;
        self
    }

    /// Interval mode: at the end of every interval, also send graphyte's own
    /// counters for that interval under the prefix, so loss is visible in
    /// Graphite itself: `graphyte.sent`, `graphyte.dropped`,
    /// `graphyte.send_errors`, `graphyte.reconnects` (each the count during
    /// the interval) and `graphyte.queued` (lines waiting at its end).
    /// Default off.
    pub fn self_metrics(mut self, on: bool) -> Config {
        self.self_metrics = on;
        self
    }

    /// The macros' and the `metrics` facade's series (those of
    /// [`init`](crate::init)): a series that received no update for this
    /// long stops being sent (default 10 minutes; at least 1 s). An update
    /// brings it back. A series whose name was not a literal (every facade
    /// key) is then also freed, even while a `metrics` handle to it is
    /// kept: an update through that handle later goes to a new live series
    /// of the same name, so it is sent, not lost.
    ///
    /// Around expiry, a counter sends `0` every interval after its last
    /// non-zero sum until the timeout has passed, then nothing; a gauge its
    /// last value, then nothing; a timer `NAME.count 0`, then nothing. In
    /// Graphite the series then shows a gap (no points) instead of zeros:
    /// use `transformNull(0)` where a zero is wanted. Ten minutes keeps a
    /// series that is updated a few times an hour continuous while a
    /// service that makes up names (a request id in the name, say) stops
    /// sending each one soon after its use.
    pub fn idle_timeout(mut self, timeout: Duration) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// The macros' and the `metrics` facade's series (those of
    /// [`init`](crate::init)): the most that are live at once (default
    /// 200,000). Past it a new name is refused: its calls send nothing,
    /// never block, take no lock and use no memory; it is counted in
    /// [`Stats::series_refused`](crate::Stats::series_refused) (and the
    /// `graphyte.series_refused` self-metric) and logged at most once a
    /// minute. A series that expires (see
    /// [`idle_timeout`](Config::idle_timeout)) makes room; a literal call
    /// site refused while the bound was full registers once there is room.
    /// The default keeps the series state of a runaway service under about
    /// 64 MiB (the series bench measures the heap of each kind; see
    /// BENCHMARKS.md and the README).
    pub fn max_series(mut self, series: usize) -> Config {
        self.max_series = series;
        self
    }

    /// The percentiles histograms of the `metrics` facade send (feature
    /// `metrics`; default `[0.5, 0.9, 0.99]`), as quantiles in `(0, 1]`:
    /// `0.5` is sent as `NAME.p50`, `0.999` as `NAME.p99_9`. An empty list
    /// sends none. A quantile out of range is refused by
    /// [`init`](crate::init) with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn percentiles(mut self, quantiles: &[f64]) -> Config {
        self.percentiles = quantiles.to_vec();
        self
    }

    /// Sends through `transport` instead of TCP or UDP; host, port and
    /// protocol are then not used.
    pub fn transport(mut self, transport: impl Transport) -> Config {
        self.transport = Some(Box::new(transport));
        self
    }

    /// Sends over TLS (feature `tls`), to a relay or a proxy that terminates
    /// it: the server's certificate is verified as [`Tls`](crate::Tls)
    /// says, and a server that fails the check, or does not speak TLS, gets
    /// nothing (there is no fallback to plaintext). The port is still
    /// [`port`](Config::port) (2003 by default): set the TLS port.
    ///
    /// TLS runs over TCP: with [`Protocol::Udp`] or a
    /// [`transport`](Config::transport) of your own it is refused by
    /// [`Sender::new`](crate::Sender::new) and [`init`](crate::init) with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig), like settings
    /// of its own that cannot work (an unreadable CA file, bad PEM).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: crate::tls::Tls) -> Config {
        self.tls = Some(tls);
        self
    }

    /// The `host:port` this configuration sends to. For a host string that
    /// [`Sender::new`](crate::Sender::new) will refuse, the string as given.
    pub fn address(&self) -> String {
        if self.error.is_some() {
            return self.host.clone();
        }
        crate::transport::host_port(&self.host, self.port)
    }

    /// What is wrong with this configuration, if anything: checked by
    /// [`Sender::new`](crate::Sender::new) and [`init`](crate::init), which
    /// refuse it with [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if self.transport.is_none() && self.port == 0 {
            return Some("port 0 is not a port to send to".into());
        }
        if self.queue_size == 0 {
            return Some("queue_size must be at least 1 line".into());
        }
        if self.batch_size == 0 {
            return Some("batch_size must be at least 1 line".into());
        }
        if let Some(q) = self.percentiles.iter().find(|q| !(**q > 0.0 && **q <= 1.0)) {
            return Some(format!("percentile {q} is not a quantile in (0, 1]"));
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            if self.transport.is_some() {
                return Some("tls and a transport of your own cannot be combined: wrap a TlsTransport in your transport instead".into());
            }
            if self.protocol == Protocol::Udp {
                return Some("tls runs over TCP; it cannot be combined with Protocol::Udp".into());
            }
        }
        None
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Config");
        f.field("host", &self.host)
            .field("port", &self.port)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("queue_size", &self.queue_size)
            .field("queue_bytes", &self.queue_bytes)
            .field("batch_size", &self.batch_size)
            .field("protocol", &self.protocol)
            .field("dns_refresh", &self.dns_refresh)
            .field("tags", &self.tags)
            .field("log_sends", &self.log_sends)
            .field("self_metrics", &self.self_metrics)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_series", &self.max_series)
            .field("percentiles", &self.percentiles)
            .field("transport", &self.transport.as_ref().map(|t| t.address()));
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls);
        f.finish()
    }
}

impl From<&str> for Config {
    fn from(host: &str) -> Config {
        Config::new(host)
    }
}

impl From<String> for Config {
    fn from(host: String) -> Config {
        Config::new(host)
    }
}

impl From<&String> for Config {
    fn from(host: &String) -> Config {
        Config::new(host)
    }
}

/// Splits `host`, `host:port`, `[v6]:port`, `[v6]` or a bare IPv6 address,
/// or says what is wrong with the string.
fn parse_host(s: &str) -> (String, Option<u16>, Option<String>) {
    match split_host(s) {
        Ok((host, port)) => (host.to_owned(), port, None),
        Err(why) => (s.to_owned(), None, Some(format!("host {s:?}: {why}"))),
    }
}

fn split_host(s: &str) -> Result<(&str, Option<u16>), String> {
    if s.is_empty() {
        return Err("no host given".into());
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "a URL scheme ({scheme}://) is not part of a host; give host or host:port"
        ));
    }
    if s.contains(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    if s.contains('/') {
        return Err("a path is not part of a host; give host or host:port".into());
    }
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port to send to".to_owned()),
        Ok(port) => Ok(Some(port)),
        Err(_) => Err(format!("invalid port {p:?} (a number from 1 to 65535)")),
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(p) => (host, port(p)?),
                None => return Err(format!("unexpected {tail:?} after ']'")),
            },
            None => return Err("missing ']'".into()),
        }
    } else if s.matches(':').count() == 1 {
        let (host, p) = s.split_once(':').expect("one colon");
        (host, port(p)?)
    } else {
        (s, None)
    };
    if host.is_empty() {
        return Err("no host before the port".into());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let c = Config::new("graphite.example.com");
        assert_eq!(
            (c.host.as_str(), c.port, c.error),
            ("graphite.example.com", 2003, None)
        );
        let c = Config::new("10.0.0.1:2103");
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.1", 2103));
        let c = Config::new("::1");
        assert_eq!(
            (c.host.as_str(), c.port, c.address()),
            ("::1", 2003, "[::1]:2003".into())
        );
        let c = Config::new("[fe80::1]:2004");
        assert_eq!((c.host.as_str(), c.port), ("fe80::1", 2004));
        let c = Config::new("[::1]");
        assert_eq!((c.host.as_str(), c.port), ("::1", 2003));
    }

    #[test]
    fn bad_host_strings_are_reported_and_not_turned_into_an_address() {
        let cases = [
            (
                "host:abc",
                "invalid port \"abc\" (a number from 1 to 65535)",
            ),
            (
                "host:99999",
                "invalid port \"99999\" (a number from 1 to 65535)",
            ),
            ("host:0", "port 0 is not a port to send to"),
            ("", "no host given"),
            (":2003", "no host before the port"),
            ("[::1", "missing ']'"),
            ("[::1]x", "unexpected \"x\" after ']'"),
            (
                "http://127.0.0.1:2003",
                "a URL scheme (http://) is not part of a host; give host or host:port",
            ),
            (
                "graphite.example.com/carbon",
                "a path is not part of a host; give host or host:port",
            ),
            ("graphite .example.com", "contains whitespace"),
            (" graphite.example.com\n", "contains whitespace"),
        ];
        for (bad, why) in cases {
            let config = Config::new(bad);
            assert_eq!(
                config.error.as_deref(),
                Some(format!("host {bad:?}: {why}").as_str())
            );
            assert_eq!(config.address(), bad, "address() of a refused host");
        }
    }

    #[test]
    fn a_later_port_setter_wins() {
        assert_eq!(Config::new("h:1").port(2).port, 2);
    }
}
