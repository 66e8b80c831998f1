//! Lines packed into UDP datagrams.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

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
/// (at connect) and again after any error. A failed send reports the whole
/// datagrams that went out, so the lines in them are not sent twice.
#[derive(Debug)]
pub struct UdpTransport {
    host: String,
    port: u16,
    max_datagram: usize,
    socket: Option<UdpSocket>,
}

impl UdpTransport {
    /// A transport to `host:port` with datagrams of at most `max_datagram`
    /// bytes, clamped to 1..=65,507 (the largest UDP payload over IPv4).
    pub fn new(host: impl Into<String>, port: u16, max_datagram: usize) -> UdpTransport {
        UdpTransport {
            host: host.into(),
            port,
            max_datagram: max_datagram.clamp(1, MAX_DATAGRAM),
            socket: None,
        }
    }

    fn open(&self) -> io::Result<UdpSocket> {
        first_address(&self.host, (self.host.as_str(), self.port), |addr| {
            let local = if addr.is_ipv4() {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
            } else {
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(addr)?;
            Ok(socket)
        })
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
    fn connect(&mut self, _deadline: Instant) -> io::Result<()> {
        self.socket = Some(self.open()?);
        Ok(())
    }

    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        if self.socket.is_none() {
            self.connect(deadline)?;
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
