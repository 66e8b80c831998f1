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
/// | setting | default | meaning |
/// |---|---|---|
/// | [`port`](Config::port) | 2003 | Carbon's plaintext port |
/// | [`prefix`](Config::prefix) | none | joined to every name with one `.` |
/// | [`timeout`](Config::timeout) | 5 s | each connect and write; also bounds `flush`/`stop` |
/// | [`interval`](Config::interval) | none (synchronous) | queue sends and write them from a background thread |
/// | [`queue_size`](Config::queue_size) | 250,000 lines | interval mode: lines kept before sends are dropped |
/// | [`batch_size`](Config::batch_size) | 1000 lines | interval mode: lines per write |
/// | [`protocol`](Config::protocol) | TCP | or UDP |
/// | [`tag`](Config::tag) | none | tags added to every line; per-call tags win |
/// | [`log_sends`](Config::log_sends) | false | log each send at INFO (target `graphyte`) |
/// | [`self_metrics`](Config::self_metrics) | false | interval mode: also send graphyte's own counters |
/// | [`transport`](Config::transport) | by protocol | send lines your own way |
pub struct Config {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) interval: Option<Duration>,
    pub(crate) queue_size: usize,
    pub(crate) batch_size: usize,
    pub(crate) protocol: Protocol,
    pub(crate) udp_max_datagram: usize,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) log_sends: bool,
    pub(crate) self_metrics: bool,
    pub(crate) transport: Option<Box<dyn Transport>>,
    /// Lines to send besides those given to `send` (the global sender's
    /// macro aggregates); set by [`init`](crate::init) only.
    pub(crate) source: Option<Arc<dyn LineSource>>,
    /// A problem found while parsing `host:port`, reported by `Sender::new`.
    pub(crate) error: Option<String>,
}

impl Config {
    /// A configuration for `host` (a name, an IPv4 or IPv6 address, or
    /// `host:port`) with every other setting at its default.
    pub fn new(host: impl AsRef<str>) -> Config {
        let (host, port, error) = parse_host(host.as_ref());
        Config {
            host,
            port: port.unwrap_or(DEFAULT_PORT),
            prefix: String::new(),
            timeout: DEFAULT_TIMEOUT,
            interval: None,
            queue_size: DEFAULT_QUEUE_SIZE,
            batch_size: DEFAULT_BATCH_SIZE,
            protocol: Protocol::Tcp,
            udp_max_datagram: crate::transport::DEFAULT_MAX_DATAGRAM,
            tags: Vec::new(),
            log_sends: false,
            self_metrics: false,
            transport: None,
            source: None,
            error,
        }
    }

    /// The server port (default 2003).
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
    pub fn queue_size(mut self, lines: usize) -> Config {
        self.queue_size = lines.max(1);
        self
    }

    /// Interval mode: the most lines per write (default 1000).
    pub fn batch_size(mut self, lines: usize) -> Config {
        self.batch_size = lines.max(1);
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

    /// Sends through `transport` instead of TCP or UDP; host, port and
    /// protocol are then not used.
    pub fn transport(mut self, transport: impl Transport) -> Config {
        self.transport = Some(Box::new(transport));
        self
    }

    /// The `host:port` this configuration sends to.
    pub fn address(&self) -> String {
        crate::transport::host_port(&self.host, self.port)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("queue_size", &self.queue_size)
            .field("batch_size", &self.batch_size)
            .field("protocol", &self.protocol)
            .field("tags", &self.tags)
            .field("log_sends", &self.log_sends)
            .field("self_metrics", &self.self_metrics)
            .field("transport", &self.transport.as_ref().map(|t| t.address()))
            .finish()
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

/// Splits `host`, `host:port`, `[v6]:port`, `[v6]` or a bare IPv6 address.
fn parse_host(s: &str) -> (String, Option<u16>, Option<String>) {
    let s = s.trim();
    let port = |p: &str| -> (Option<u16>, Option<String>) {
        match p.parse::<u16>() {
            Ok(port) => (Some(port), None),
            Err(_) => (None, Some(format!("invalid port {p:?} in {s:?}"))),
        }
    };
    let (host, port, error) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, None, None),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(p) => {
                    let (port, error) = port(p);
                    (host, port, error)
                }
                None => (
                    host,
                    None,
                    Some(format!("unexpected {tail:?} after ']' in {s:?}")),
                ),
            },
            None => (rest, None, Some(format!("missing ']' in {s:?}"))),
        }
    } else if s.matches(':').count() == 1 {
        let (host, p) = s.split_once(':').expect("one colon");
        let (port, error) = port(p);
        (host, port, error)
    } else {
        (s, None, None)
    };
    let error = error.or_else(|| host.is_empty().then(|| format!("no host in {s:?}")));
    (host.to_owned(), port, error)
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
    fn bad_host_strings_are_reported() {
        for bad in ["host:abc", "host:99999", "", ":2003", "[::1", "[::1]x"] {
            assert!(Config::new(bad).error.is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_later_port_setter_wins() {
        assert_eq!(Config::new("h:1").port(2).port, 2);
    }
}
