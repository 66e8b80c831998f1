//! The way to the server: lines built by graphyte's [`LineFormat`] (so the
//! prefix, tags and every validation rule are the library's), collected into
//! a batch and written through one graphyte [`Transport`] (one TCP
//! connection, or UDP datagrams that never split a line).
//!
//! The CLI does not use a [`graphyte::Sender`]: a synchronous sender writes
//! each line with its own system call, and an interval sender drops lines when
//! its queue is full, while bulk mode must send every line, in order, fast.
//! Writing whole batches through the transport does both. Because the batch
//! is exactly what the transport gets, the CLI can also print the exact line
//! it sent.

use graphyte::{LineFormat, TcpTransport, Timestamp, Transport, UdpTransport};

use crate::args::Options;
use crate::number::Number;

/// Lines formatted but not yet written, and the transport they go through.
pub struct Wire {
    format: LineFormat,
    transport: Box<dyn Transport>,
    address: String,
    batch: Vec<u8>,
    batch_lines: usize,
    sent: u64,
}

impl Wire {
    /// Lines formatted by `format`, written through `transport`.
    pub fn new(format: LineFormat, transport: Box<dyn Transport>) -> Wire {
        Wire {
            address: transport.address(),
            format,
            transport,
            batch: Vec::new(),
            batch_lines: 0,
            sent: 0,
        }
    }

    /// The wire the options ask for: TCP (or UDP with `-u`) to the server,
    /// with the prefix and tags of the options. Connects on the first flush.
    pub fn from_options(options: &Options) -> Wire {
        let transport: Box<dyn Transport> = if options.udp {
            Box::new(UdpTransport::new(
                &options.server,
                options.port,
                graphyte::DEFAULT_MAX_DATAGRAM,
            ))
        } else {
            Box::new(TcpTransport::new(
                &options.server,
                options.port,
                options.timeout,
            ))
        };
        Wire::new(options.format.clone(), transport)
    }

    /// Formats one line onto the batch, or says why it cannot be sent (the
    /// batch is then unchanged).
    pub fn push(
        &mut self,
        name: &str,
        value: Number,
        timestamp: Timestamp,
    ) -> graphyte::Result<()> {
        value.format_into(&self.format, &mut self.batch, name, timestamp)?;
        self.batch_lines += 1;
        Ok(())
    }

    /// The lines formatted and not yet written, each ending in `\n`.
    pub fn pending(&self) -> &[u8] {
        &self.batch
    }

    /// How many lines [`pending`](Self::pending) holds.
    pub fn pending_lines(&self) -> usize {
        self.batch_lines
    }

    /// Writes the pending lines, if any. On failure they stay pending (some
    /// of them may have reached the server) and the error names the server.
    pub fn flush(&mut self) -> graphyte::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.transport
            .send(&self.batch)
            .map_err(|source| graphyte::Error::Io {
                addr: self.address.clone(),
                source,
            })?;
        self.sent += self.batch_lines as u64;
        self.batch.clear();
        self.batch_lines = 0;
        Ok(())
    }

    /// Lines written successfully so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Where the lines go: `host:port`, or `udp://host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for Wire {
    /// Closes the connection (what was written is still delivered).
    fn drop(&mut self) {
        self.transport.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphyte::CaptureTransport;

    #[test]
    fn batches_are_written_whole_and_counted() {
        let capture = CaptureTransport::new();
        let format = LineFormat::new("pre", &[("env", "prod")]).expect("valid format");
        let mut wire = Wire::new(format, Box::new(capture.clone()));
        let ts = Timestamp::from(1_700_000_000);
        wire.push("a", Number::Int(1), ts).expect("valid");
        wire.push("b", Number::Float(2.5), ts).expect("valid");
        assert!(wire.push("bad name", Number::Int(3), ts).is_err());
        assert_eq!(wire.pending_lines(), 2);
        assert_eq!(
            wire.pending(),
            b"pre.a;env=prod 1 1700000000\npre.b;env=prod 2.5 1700000000\n"
        );
        assert!(capture.lines().is_empty());
        wire.flush().expect("capture accepts");
        wire.flush().expect("nothing to write");
        assert_eq!(
            capture.lines(),
            [
                "pre.a;env=prod 1 1700000000",
                "pre.b;env=prod 2.5 1700000000"
            ]
        );
        assert_eq!((wire.sent(), wire.pending_lines()), (2, 0));
        assert!(wire.pending().is_empty());
    }

    #[test]
    fn a_failed_write_names_the_server_and_keeps_the_lines() {
        // A loopback port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let timeout = std::time::Duration::from_secs(2);
        let mut wire = Wire::new(
            LineFormat::default(),
            Box::new(TcpTransport::new("127.0.0.1", port, timeout)),
        );
        wire.push("a", Number::Int(1), Timestamp::from(1))
            .expect("valid");
        let err = wire.flush().expect_err("nothing listens there");
        let server = format!("127.0.0.1:{port}");
        assert!(
            err.to_string()
                .starts_with(&format!("sending to {server} failed: ")),
            "{err}"
        );
        assert_eq!((wire.sent(), wire.pending_lines()), (0, 1));
        assert_eq!(wire.address(), server);
    }
}
