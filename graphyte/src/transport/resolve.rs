//! Host names to addresses for the built-in transports: the system's
//! resolver (`getaddrinfo`, so `/etc/hosts`, `nsswitch.conf` and
//! `resolv.conf` apply as for any program), bounded by the timeout, and
//! asked again once per `dns_refresh` while a connection works.
//!
//! `getaddrinfo` takes no timeout: a name server that does not answer
//! holds its caller for as long as the C library's own retries last
//! (`resolv.conf`'s `timeout` × `attempts`, 10 s and more). So every lookup
//! runs on a thread of its own and the transport waits for it until its
//! deadline, never past the timeout counted from the lookup's start. A
//! lookup that did not answer in that time is abandoned; while its thread
//! is still stuck no other lookup is started (at most one thread per
//! transport), and connects fail at once with a "resolution timed out"
//! error naming the host.
//!
//! A numeric host (`127.0.0.1`, `::1`) is never looked up.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Default [`Config::dns_refresh`](crate::Config::dns_refresh).
pub(crate) const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(60);

/// Shortest refresh period.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The refresh period a setting stands for: `None` (resolve only when
/// connecting) for zero, else at least 1 s.
pub(crate) fn refresh_period(setting: Duration) -> Option<Duration> {
    (!setting.is_zero()).then(|| setting.max(MIN_REFRESH))
}

/// A lookup that took longer than it could wait: the payload of the
/// `io::Error` (kind `TimedOut`) a connect returns, turned into
/// [`Error::ResolveTimedOut`](crate::Error::ResolveTimedOut) by the sender.
#[derive(Debug, Clone)]
pub(crate) struct ResolveTimedOut {
    pub(crate) host: String,
    pub(crate) after: Duration,
}

impl fmt::Display for ResolveTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resolving {} timed out after {:?}: the name server did not answer",
            self.host, self.after
        )
    }
}

impl StdError for ResolveTimedOut {}

/// What waiting for a lookup gave.
enum Poll {
    /// The resolver's answer.
    Answer(io::Result<Vec<SocketAddr>>),
    /// No answer by the time the caller could wait; the lookup goes on and
    /// a later call may still get its answer.
    Waiting { started: Instant },
    /// No answer within the timeout: the lookup is given up (its thread
    /// may still be stuck in the C library).
    Hung,
}

/// A lookup running on its own thread.
struct Lookup {
    started: Instant,
    answer: Receiver<io::Result<Vec<SocketAddr>>>,
}

/// The addresses of one `host:port`, and the one in use.
pub(crate) struct Resolver {
    host: String,
    port: u16,
    /// The host as an address, when it is one: never looked up.
    literal: Option<IpAddr>,
    /// A numeric host, scoped or not: never resolved again.
    fixed: bool,
    timeout: Duration,
    /// `None`: resolve only when connecting.
    refresh: Option<Duration>,
    /// The address of the open connection (or socket).
    current: Option<SocketAddr>,
    /// The address used last, kept across reconnects, for the log line
    /// that says it changed.
    last: Option<SocketAddr>,
    /// When to resolve again while connected.
    due: Option<Instant>,
    lookup: Option<Lookup>,
    /// A failed refresh was logged at WARN; later ones go to DEBUG until
    /// one succeeds.
    warned: bool,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("host", &self.host)
            .field("refresh", &self.refresh)
            .field("current", &self.current)
            .finish()
    }
}

/// `start + timeout`, or a year from `start` for a timeout too long to be
/// a point in time.
fn after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 60 * 60))
}

/// Whether two addresses are the same server (IPv6 flow labels aside).
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

/// `addrs` for a log line: `[10.0.0.5:2003, 10.0.0.6:2003]`.
struct List<'a>(&'a [SocketAddr]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, addr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{addr}")?;
        }
        f.write_str("]")
    }
}

impl Resolver {
    /// A resolver for `host:port` whose lookups wait at most `timeout`,
    /// resolving again every [`DEFAULT_DNS_REFRESH`] while connected.
    pub(crate) fn new(host: &str, port: u16, timeout: Duration) -> Resolver {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let literal = bare.parse::<IpAddr>().ok();
        // A scoped IPv6 address (`fe80::1%eth0`) goes through the resolver
        // for its scope, but it names one address: never resolved again.
        let fixed = literal.is_some() || bare.contains(':');
        Resolver {
            host: host.to_owned(),
            port,
            literal,
            fixed,
            timeout,
            refresh: (!fixed).then_some(DEFAULT_DNS_REFRESH),
            current: None,
            last: None,
            due: None,
            lookup: None,
            warned: false,
        }
    }

    /// Resolves again every `setting` while connected (see
    /// [`refresh_period`]); a numeric host never is.
    pub(crate) fn set_refresh(&mut self, setting: Duration) {
        if !self.fixed {
            self.refresh = refresh_period(setting);
        }
    }

    /// Lookups give up after `timeout`.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The addresses to connect to, in the resolver's order, by `deadline`
    /// (and within the timeout from the start of the lookup). A lookup that
    /// does not answer in time fails with `TimedOut` and a
    /// [`ResolveTimedOut`] payload.
    pub(crate) fn resolve(&mut self, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.literal {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let after = match self.answer(deadline) {
            Poll::Answer(Ok(addrs)) if addrs.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} resolved to no address", self.host),
                ))
            }
            Poll::Answer(Ok(addrs)) => {
                log::debug!(target: "graphyte", "{}: resolved to {}", self.host, List(&addrs));
                return Ok(addrs);
            }
            Poll::Answer(Err(e)) => return Err(e),
            Poll::Waiting { started } => started.elapsed(),
            Poll::Hung => self.timeout,
        };
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            ResolveTimedOut {
                host: self.host.clone(),
                // Whole milliseconds: the figure is for people.
                after: Duration::from_millis(after.as_millis().min(u64::MAX as u128) as u64),
            },
        ))
    }

    /// A connection to `addr` is open: logs at INFO when it is not the
    /// address used before, and schedules the next refresh.
    pub(crate) fn connected(&mut self, addr: SocketAddr) {
        self.current = Some(addr);
        match self.last.replace(addr) {
            Some(was) if !same(was, addr) => {
                log::info!(target: "graphyte", "{}: now {addr}, was {was}", self.host)
            }
            Some(_) => {}
            None => log::debug!(target: "graphyte", "{}: connected to {addr}", self.host),
        }
        self.due = self.refresh.map(|period| after(Instant::now(), period));
    }

    /// The connection is closed: nothing to refresh until the next one.
    pub(crate) fn disconnected(&mut self) {
        self.current = None;
        self.due = None;
    }

    /// Between two writes on an open connection: when a refresh is due,
    /// resolves the host again, waiting at most half the time left before
    /// `deadline` (a lookup that needs longer is looked at again by the
    /// next write). Returns the new addresses when the one in use is no
    /// longer among them; `None` otherwise, which costs one clock read
    /// when no refresh is due.
    pub(crate) fn moved(&mut self, deadline: Instant) -> Option<Vec<SocketAddr>> {
        let due = self.due?;
        let now = Instant::now();
        if now < due {
            return None;
        }
        let current = self.current?;
        let budget = deadline.saturating_duration_since(now) / 2;
        let answer = self.answer(now + budget);
        let failed = match answer {
            Poll::Waiting { .. } => return None,
            Poll::Hung => format!("the name server did not answer within {:?}", self.timeout),
            Poll::Answer(Err(e)) => e.to_string(),
            Poll::Answer(Ok(addrs)) if addrs.is_empty() => "no address".to_owned(),
            Poll::Answer(Ok(addrs)) => {
                self.next_refresh();
                self.warned = false;
                if addrs.iter().any(|&a| same(a, current)) {
                    log::debug!(target: "graphyte", "{}: resolved again to {}, staying on {current}", self.host, List(&addrs));
                    return None;
                }
                log::debug!(target: "graphyte", "{}: resolved again to {}, moving from {current}", self.host, List(&addrs));
                return Some(addrs);
            }
        };
        self.next_refresh();
        if std::mem::replace(&mut self.warned, true) {
            log::debug!(target: "graphyte", "{}: resolving again failed ({failed}); staying on {current}", self.host);
        } else {
            log::warn!(target: "graphyte", "{}: resolving again failed ({failed}); staying on {current} (said once until it works again)", self.host);
        }
        None
    }

    /// A move to the addresses [`moved`](Resolver::moved) gave failed:
    /// the connection in use stays; the next refresh tries again.
    pub(crate) fn stay(&mut self, addrs: &[SocketAddr], error: &io::Error) {
        if let Some(current) = self.current {
            log::warn!(target: "graphyte", "{}: moved to {}, but none of them accepted ({error}); staying on {current} until the next refresh", self.host, List(addrs));
        }
    }

    fn next_refresh(&mut self) {
        self.due = self.refresh.map(|period| after(Instant::now(), period));
    }

    /// Waits until `until` (and no longer than the timeout from the
    /// lookup's start) for the answer of the lookup in progress, starting
    /// one if there is none.
    fn answer(&mut self, until: Instant) -> Poll {
        if let Some(lookup) = &self.lookup {
            if Instant::now() >= after(lookup.started, self.timeout) {
                match lookup.answer.try_recv() {
                    // Still stuck: no second thread.
                    Err(TryRecvError::Empty) => return Poll::Hung,
                    // An answer too old to use, or none: ask again.
                    _ => self.lookup = None,
                }
            }
        }
        let lookup = match &mut self.lookup {
            Some(lookup) => lookup,
            None => match self.start() {
                Ok(lookup) => self.lookup.insert(lookup),
                Err(e) => return Poll::Answer(Err(e)),
            },
        };
        let expires = after(lookup.started, self.timeout);
        let wait = until.min(expires).saturating_duration_since(Instant::now());
        match lookup.answer.recv_timeout(wait) {
            Ok(answer) => {
                self.lookup = None;
                Poll::Answer(answer)
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= expires => Poll::Hung,
            Err(RecvTimeoutError::Timeout) => Poll::Waiting {
                started: lookup.started,
            },
            Err(RecvTimeoutError::Disconnected) => {
                self.lookup = None;
                Poll::Answer(Err(io::Error::other(format!(
                    "resolving {}: the lookup thread ended without an answer",
                    self.host
                ))))
            }
        }
    }

    /// Starts a lookup on a thread of its own.
    fn start(&self) -> io::Result<Lookup> {
        let (tell, answer) = mpsc::sync_channel(1);
        let host = self.host.clone();
        let port = self.port;
        std::thread::Builder::new()
            .name("graphyte-resolve".into())
            .spawn(move || {
                let addrs = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect());
                // Nobody waits any more after a timeout: fine.
                let _ = tell.send(addrs);
            })?;
        Ok(Lookup {
            started: Instant::now(),
            answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_settings() {
        assert_eq!(refresh_period(Duration::ZERO), None);
        assert_eq!(
            refresh_period(Duration::from_millis(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            refresh_period(Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn numeric_hosts_are_never_looked_up_or_refreshed() {
        for host in ["127.0.0.1", "::1", "[::1]", "fe80::1%1"] {
            let mut r = Resolver::new(host, 2003, Duration::from_secs(1));
            r.set_refresh(Duration::from_secs(5));
            assert_eq!(r.refresh, None, "{host}");
            if host != "fe80::1%1" {
                let addrs = r.resolve(Instant::now() + Duration::from_secs(1)).unwrap();
                assert_eq!(addrs.len(), 1, "{host}");
                assert!(r.lookup.is_none(), "{host}: no lookup thread");
            }
            r.connected(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 2003));
            assert_eq!(r.due, None, "{host}");
        }
        let mut r = Resolver::new("localhost", 2003, Duration::from_secs(1));
        r.set_refresh(Duration::from_millis(10));
        assert_eq!(r.refresh, Some(Duration::from_secs(1)));
        r.set_refresh(Duration::ZERO);
        assert_eq!(r.refresh, None);
    }

    /// `localhost` comes from the hosts file on every system.
    #[test]
    fn a_refresh_moves_only_when_the_address_in_use_is_gone() {
        let mut r = Resolver::new("localhost", 2003, Duration::from_secs(5));
        r.set_refresh(Duration::from_secs(1));
        let deadline = || Instant::now() + Duration::from_secs(5);
        let addrs = r.resolve(deadline()).expect("localhost resolves");
        r.connected(addrs[0]);
        // Not due yet: nothing is looked up.
        assert_eq!(r.moved(deadline()), None);
        assert!(r.lookup.is_none());
        // Due, and the address in use is in the answer: stay.
        r.due = Some(Instant::now());
        assert_eq!(r.moved(deadline()), None);
        assert!(
            r.due.unwrap() > Instant::now(),
            "the next refresh is scheduled"
        );
        // Due, and the address in use is not in the answer: move.
        let gone: SocketAddr = "127.0.0.254:2003".parse().unwrap();
        r.connected(gone);
        r.due = Some(Instant::now());
        assert_eq!(r.moved(deadline()), Some(addrs.clone()));
        // Closed: no refresh until the next connect.
        r.disconnected();
        assert_eq!(r.moved(deadline()), None);
    }

    #[test]
    fn a_timeout_names_the_host() {
        let e = ResolveTimedOut {
            host: "graphite.example.com".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "resolving graphite.example.com timed out after 1.5s: the name server did not answer"
        );
    }
}
