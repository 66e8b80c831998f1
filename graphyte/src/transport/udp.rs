//! Lines packed into UDP datagrams.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use super::{host_port, Transport};

/// Default largest datagram: fits in one 1500-byte Ethernet frame over IPv4
/// and IPv6 without fragmentation (1500 - 40 IPv6 - 8 UDP - some tunnel room).
pub const DEFAULT_MAX_DATAGRAM: usize = 1432;

/// Sends lines as UDP datagrams.
///
/// A batch is split into datagrams of at most `max_datagram` bytes at line
/// boundaries: a line is never split. A single line longer than the limit goes
/// alone in its own datagram. The host is resolved when the socket is created
/// and again after any error.
#[derive(Debug)]
pub struct UdpTransport {
    host: String,
    port: u16,
    max_datagram: usize,
    socket: Option<UdpSocket>,
    /// Bytes of the last failed batch sent (whole datagrams) before the failure.
    handed_over: usize,
}

impl UdpTransport {
    /// A transport to `host:port` with datagrams of at most `max_datagram` bytes.
    pub fn new(host: impl Into<String>, port: u16, max_datagram: usize) -> UdpTransport {
        UdpTransport {
            host: host.into(),
            port,
            max_datagram: max_datagram.max(1),
            socket: None,
            handed_over: 0,
        }
    }

    fn open(&self) -> io::Result<UdpSocket> {
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolved to no address", self.host),
        );
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            let local: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("valid address")
            } else {
                "[::]:0".parse().expect("valid address")
            };
            match UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|()| s)) {
                Ok(socket) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Splits complete lines into chunks of at most `max` bytes without splitting
/// a line; a longer line becomes a chunk of its own.
pub(crate) fn datagrams(lines: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        for (i, &b) in rest.iter().enumerate() {
            if b == b'\n' {
                if i + 1 > max && end > 0 {
                    break;
                }
                end = i + 1;
                if end >= max {
                    break;
                }
            }
        }
        if end == 0 {
            end = rest.len();
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

impl Transport for UdpTransport {
    fn send(&mut self, lines: &[u8]) -> io::Result<()> {
        self.handed_over = 0;
        if self.socket.is_none() {
            self.socket = Some(self.open()?);
        }
        let socket = self.socket.as_ref().expect("opened above");
        let mut sent = 0;
        for datagram in datagrams(lines, self.max_datagram) {
            if let Err(e) = socket.send(datagram) {
                self.handed_over = sent;
                self.socket = None;
                return Err(e);
            }
            sent += datagram.len();
        }
        Ok(())
    }

    fn handed_over(&self) -> usize {
        self.handed_over
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
    use super::datagrams;

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
}
