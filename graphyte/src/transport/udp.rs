//! Lines packed into UDP datagrams.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::resolve::Resolver;
use super::{first_address, host_port, SendError, Transport};

/// Default largest datagram: fits in one 1500-byte Ethernet frame over IPv4
/// and IPv6 without fragmentation (1500 - 40 IPv6 - 8 UDP - some tunnel room).
pub const DEFAULT_MAX_DATAGRAM: usize = 1432;

/// Largest datagram [`UdpTransport::new`] accepts: the most a UDP datagram
/// can carry over IPv4 (65,535 - 20 IPv4 header - 8 UDP header; IPv6 allows
/// a little more). A larger datagram fails with `EMSGSIZE` on every attempt,
/// so its batch could never be sent.
const MAX_DATAGRAM: usize = 65_507;

/// Sends lines as UDP datagrams.
///
/// A batch is split into datagrams of at most `max_datagram` bytes at line
/// boundaries: a line is never split. A single line longer than the limit goes
/// alone in its own datagram. The host is resolved when the socket is opened
/// (at connect, within the connect's deadline: a name server that does not
/// answer fails it with a "resolution timed out" error) and again after any
/// error; while the socket is open, a host name is also resolved again once
/// per [`dns_refresh`](UdpTransport::dns_refresh) period (default 60 s), and
/// when the address in use is no longer in the answer the next datagram goes
/// to the new one (logged at INFO). A numeric host is never resolved again.
/// A failed send reports the whole datagrams that went out, so the lines in
/// them are not sent twice.
#[derive(Debug)]
pub struct UdpTransport {
    host: String,
    port: u16,
    max_datagram: usize,
    socket: Option<UdpSocket>,
    resolver: Resolver,
}

/// How long a lookup may take when the transport is used on its own (the
/// sender passes its timeout as the deadline of every connect).
const LOOKUP_TIMEOUT: Duration = crate::config::DEFAULT_TIMEOUT;

impl UdpTransport {
    /// A transport to `host:port` with datagrams of at most `max_datagram`
    /// bytes, clamped to 1..=65,507 (the largest UDP payload over IPv4).
    pub fn new(host: impl Into<String>, port: u16, max_datagram: usize) -> UdpTransport {
        let host = host.into();
        UdpTransport {
            resolver: Resolver::new(&host, port, LOOKUP_TIMEOUT),
            host,
            port,
            max_datagram: max_datagram.clamp(1, MAX_DATAGRAM),
            socket: None,
        }
    }

    /// Resolves the host again every `period` while the socket is open, and
    /// sends to the new address (default 60 s). `Duration::ZERO`: only when
    /// opening; under 1 s: 1 s. Has no effect for a numeric host.
    pub fn dns_refresh(mut self, period: Duration) -> UdpTransport {
        self.resolver.set_refresh(period);
        self
    }

    /// Lookups give up after `timeout` (the sender's), instead of 5 s.
    pub(crate) fn lookup_timeout(mut self, timeout: Duration) -> UdpTransport {
        self.resolver.set_timeout(timeout);
        self
    }

    /// A socket connected to the first of `addrs` that takes it, and that address.
    fn open(&self, addrs: &[SocketAddr]) -> io::Result<(UdpSocket, SocketAddr)> {
        first_address(&self.host, addrs, |addr| {
            let local = if addr.is_ipv4() {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
            } else {
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(addr)?;
            Ok((socket, addr))
        })
    }

    /// Sends to the new address when a refresh found the host elsewhere.
    fn follow(&mut self, deadline: Instant) {
        if let Some(addrs) = self.resolver.moved(deadline) {
            match self.open(&addrs) {
                Ok((socket, addr)) => {
                    self.socket = Some(socket);
                    self.resolver.connected(addr);
                }
                Err(e) => self.resolver.stay(&addrs, &e),
            }
        }
    }
}

/// Splits complete lines into chunks of at most `max` bytes without splitting
/// a line; a longer line becomes a chunk of its own.
fn datagrams(lines: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // The last line end within `max` bytes, else the end of the first
        // (longer) line, else the whole rest.
        let end = rest[..max.min(rest.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .or_else(|| rest.iter().position(|&b| b == b'\n'))
            .map_or(rest.len(), |i| i + 1);
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

impl Transport for UdpTransport {
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        self.close();
        let addrs = self.resolver.resolve(deadline)?;
        let (socket, addr) = self.open(&addrs)?;
        self.socket = Some(socket);
        self.resolver.connected(addr);
        Ok(())
    }

    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        if self.socket.is_none() {
            self.connect(deadline)?;
        } else {
            self.follow(deadline);
        }
        let socket = self.socket.as_ref().expect("opened above");
        let mut sent = 0;
        for datagram in datagrams(bytes, self.max_datagram) {
            if let Err(e) = socket.send(datagram) {
                self.socket = None;
                return Err(SendError::new(sent, e));
            }
            sent += datagram.len();
        }
        Ok(())
    }

    fn address(&self) -> String {
        format!("udp://{}", host_port(&self.host, self.port))
    }

    fn close(&mut self) {
        self.socket = None;
        self.resolver.disconnected();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::{datagrams, UdpTransport, MAX_DATAGRAM};
    use crate::transport::{first_address, Transport};

    #[test]
    fn datagrams_never_split_lines() {
        let lines = b"aaaa 1 1\nbb 2 2\ncccccccccc 3 3\nd 4 4\n";
        let chunks: Vec<&[u8]> = datagrams(lines, 16).collect();
        assert_eq!(
            chunks,
            vec![&b"aaaa 1 1\nbb 2 2\n"[..], b"cccccccccc 3 3\n", b"d 4 4\n"]
        );
        for max in 1..lines.len() + 2 {
            let chunks: Vec<&[u8]> = datagrams(lines, max).collect();
            assert_eq!(chunks.concat(), lines.to_vec(), "max {max}");
            for c in &chunks {
                assert!(c.ends_with(b"\n"));
                assert!(c.len() <= max || c.iter().filter(|&&b| b == b'\n').count() == 1);
            }
        }
    }

    #[test]
    fn new_clamps_max_datagram_to_a_udp_payload() {
        assert_eq!(UdpTransport::new("h", 1, 0).max_datagram, 1);
        assert_eq!(UdpTransport::new("h", 1, 1432).max_datagram, 1432);
        assert_eq!(
            UdpTransport::new("h", 1, MAX_DATAGRAM).max_datagram,
            MAX_DATAGRAM
        );
        assert_eq!(
            UdpTransport::new("h", 1, 1 << 20).max_datagram,
            MAX_DATAGRAM
        );
    }

    #[test]
    fn oversized_max_datagram_still_sends() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        // 100,000 bytes of lines: one datagram would exceed the UDP limit.
        let line = format!("{} 1 1700000000\n", "x".repeat(80));
        let lines = line.repeat(100_000 / line.len() + 1).into_bytes();
        assert!(lines.len() > MAX_DATAGRAM);
        let mut transport = UdpTransport::new("127.0.0.1", port, usize::MAX);
        transport
            .send(&lines, Instant::now() + Duration::from_secs(5))
            .expect("send");
        let mut received = Vec::new();
        let mut buf = vec![0u8; 1 << 17];
        while received.len() < lines.len() {
            let n = server.recv(&mut buf).expect("datagram");
            assert!(n <= MAX_DATAGRAM, "{n}-byte datagram");
            received.extend_from_slice(&buf[..n]);
        }
        assert_eq!(received, lines);
    }

    #[test]
    fn open_reports_no_address_and_the_last_error() {
        let none: &[SocketAddr] = &[];
        let e = first_address("nowhere", none, |_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "nowhere resolved to no address");
        let two: &[SocketAddr] = &["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()];
        let mut tried = Vec::new();
        let e = first_address("h", two, |addr| -> std::io::Result<()> {
            tried.push(addr);
            Err(std::io::Error::other(format!("no {}", addr.port())))
        })
        .unwrap_err();
        assert_eq!(tried, two);
        assert_eq!(e.to_string(), "no 2");
        let ok = first_address("h", two, |addr| {
            if addr.port() == 2 {
                Ok(addr)
            } else {
                Err(std::io::Error::other("no"))
            }
        });
        assert_eq!(ok.unwrap(), two[1]);
    }
}
