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
//!
//! A write that fails once the server has taken lines (it restarted, say) is
//! retried, reconnecting, until the retry window (`--timeout`) runs out;
//! lines the server took whole before the failure are not written again. A
//! server that never took a line gets no retry (a wrong address fails at
//! once), nor does a write that timed out (the server is there but does not
//! read; another connection would only fill another socket buffer).

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{LineFormat, TcpTransport, Timestamp, Transport, UdpTransport};

use crate::args::Options;
use crate::number::Number;

/// First pause between two attempts of a failed write; it doubles up to
/// [`RETRY_MAX`]. The same schedule as the TCP transport's own reconnect
/// backoff (100 ms doubling to 10 s), so each pause ends when the transport
/// is ready to connect again and every attempt is a real one.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest pause between two attempts of a failed write.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Lines formatted but not yet written, and the transport they go through.
pub struct Wire {
    format: LineFormat,
    transport: Box<dyn Transport>,
    address: String,
    batch: Vec<u8>,
    batch_lines: usize,
    sent: u64,
    /// How long a failed write is retried once the server has taken lines.
    retry_for: Duration,
}

impl Wire {
    /// Lines formatted by `format`, written through `transport`. A failed
    /// write is not retried unless [`retry_for`](Self::retry_for) says so.
    pub fn new(format: LineFormat, transport: Box<dyn Transport>) -> Wire {
        Wire {
            address: transport.address(),
            format,
            transport,
            batch: Vec::new(),
            batch_lines: 0,
            sent: 0,
            retry_for: Duration::ZERO,
        }
    }

    /// Once a write has succeeded, retries a failed one (the transport
    /// reconnects) for up to `window` before giving up.
    pub fn retry_for(mut self, window: Duration) -> Wire {
        self.retry_for = window;
        self
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
        Wire::new(options.format.clone(), transport).retry_for(options.timeout)
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

    /// Writes the pending lines, if any, retrying a failed write as the
    /// [module](self) describes. On failure the lines the server did not
    /// take whole stay pending, and the error names the server.
    pub fn flush(&mut self) -> graphyte::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut give_up = None;
        let mut pause = RETRY_FIRST;
        loop {
            let source = match self.transport.send(&self.batch) {
                Ok(()) => {
                    self.sent += self.batch_lines as u64;
                    self.batch.clear();
                    self.batch_lines = 0;
                    return Ok(());
                }
                Err(source) => source,
            };
            let (bytes, lines) = graphyte::whole_lines(&self.batch, self.transport.handed_over());
            self.batch.drain(..bytes);
            self.batch_lines -= lines;
            self.sent += lines as u64;
            if self.batch.is_empty() {
                // Every line went out whole before the error.
                return Ok(());
            }
            // A write that timed out met a server that is there but does not
            // read: a new connection would only fill another socket buffer.
            let stalled = matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            );
            let give_up = *give_up.get_or_insert_with(|| {
                let window = if self.sent > 0 && !stalled {
                    self.retry_for
                } else {
                    Duration::ZERO
                };
                Instant::now() + window
            });
            if Instant::now() + pause > give_up {
                return Err(graphyte::Error::Io {
                    addr: self.address.clone(),
                    source,
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
        }
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
pub(crate) mod tests {
    use super::*;
    use graphyte::CaptureTransport;
    use std::sync::{Arc, Mutex};

    /// A server that goes away: attempt `n` (from 0) hands over the first
    /// `cuts[n]` bytes of its batch and fails, while attempts past the
    /// script succeed, or fail if `then_fail`. What each "connection" got is
    /// kept, a failure ending the connection.
    pub(crate) struct Flaky {
        pub(crate) cuts: Vec<Option<usize>>,
        pub(crate) then_fail: bool,
        /// The error of a failed attempt.
        pub(crate) kind: io::ErrorKind,
        pub(crate) attempts: usize,
        pub(crate) handed_over: usize,
        pub(crate) connections: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Flaky {
        pub(crate) fn new(cuts: Vec<Option<usize>>, then_fail: bool) -> Flaky {
            Flaky {
                cuts,
                then_fail,
                kind: io::ErrorKind::ConnectionReset,
                attempts: 0,
                handed_over: 0,
                connections: Arc::new(Mutex::new(vec![Vec::new()])),
            }
        }

        /// The complete lines the server got, over all connections, in order
        /// (a fragment left on a connection that failed is discarded).
        pub(crate) fn lines(connections: &Mutex<Vec<Vec<u8>>>) -> Vec<String> {
            let connections = connections.lock().unwrap();
            connections
                .iter()
                .flat_map(|data| {
                    let text = String::from_utf8(data.clone()).unwrap();
                    let whole = text.rfind('\n').map_or(0, |i| i + 1);
                    text[..whole].lines().map(str::to_owned).collect::<Vec<_>>()
                })
                .collect()
        }
    }

    impl Transport for Flaky {
        fn send(&mut self, lines: &[u8]) -> io::Result<()> {
            let cut = match self.cuts.get(self.attempts) {
                Some(cut) => *cut,
                None if self.then_fail => Some(0),
                None => None,
            };
            self.attempts += 1;
            let mut connections = self.connections.lock().unwrap();
            let taken = cut.unwrap_or(lines.len()).min(lines.len());
            connections
                .last_mut()
                .unwrap()
                .extend_from_slice(&lines[..taken]);
            self.handed_over = taken;
            if cut.is_none() {
                return Ok(());
            }
            connections.push(Vec::new());
            Err(io::Error::new(self.kind, "server gone"))
        }
        fn address(&self) -> String {
            "flaky:2003".into()
        }
        fn handed_over(&self) -> usize {
            self.handed_over
        }
    }

    fn line(name: &str) -> String {
        format!("{name} 1 1700000000")
    }

    /// A wire through `flaky` that retries for `window`, whose first batch
    /// ("a") went through, with "b", "c" and "d" pending (15 bytes each).
    fn after_one_batch(flaky: Flaky, window: Duration) -> (Wire, Arc<Mutex<Vec<Vec<u8>>>>) {
        let connections = Arc::clone(&flaky.connections);
        let mut wire = Wire::new(LineFormat::default(), Box::new(flaky)).retry_for(window);
        let ts = Timestamp::from(1_700_000_000);
        wire.push("a", Number::Int(1), ts).expect("valid");
        wire.flush().expect("first batch");
        for name in ["b", "c", "d"] {
            wire.push(name, Number::Int(1), ts).expect("valid");
        }
        (wire, connections)
    }

    #[test]
    fn a_write_cut_mid_line_is_retried_from_that_line_only() {
        // Batch 1 goes through; batch 2 is cut in its second line, then the
        // server takes nothing once, then everything.
        let flaky = Flaky::new(vec![None, Some(27), Some(0)], false);
        let (mut wire, connections) = after_one_batch(flaky, Duration::from_secs(5));
        // 27 bytes: "b" whole and the start of "c".
        let started = Instant::now();
        wire.flush().expect("delivered after two retries");
        let waited = started.elapsed();
        assert_eq!(
            Flaky::lines(&connections),
            [line("a"), line("b"), line("c"), line("d")]
        );
        assert_eq!(
            connections.lock().unwrap().len(),
            3,
            "two failures, three connections"
        );
        assert_eq!((wire.sent(), wire.pending_lines()), (4, 0));
        // Pauses of 100 and 200 ms between the attempts.
        assert!(waited >= RETRY_FIRST * 3, "{waited:?}");
    }

    #[test]
    fn no_retry_while_the_server_never_took_a_line() {
        let flaky = Flaky::new(vec![Some(0)], false);
        let connections = Arc::clone(&flaky.connections);
        let mut wire =
            Wire::new(LineFormat::default(), Box::new(flaky)).retry_for(Duration::from_secs(5));
        wire.push("a", Number::Int(1), Timestamp::from(1_700_000_000))
            .expect("valid");
        let started = Instant::now();
        let err = wire.flush().expect_err("refused, not retried");
        assert!(started.elapsed() < RETRY_FIRST, "no pause before failing");
        assert!(err.to_string().contains("flaky:2003"), "{err}");
        assert_eq!(connections.lock().unwrap().len(), 2, "one attempt");
        assert_eq!((wire.sent(), wire.pending_lines()), (0, 1));
    }

    #[test]
    fn a_write_that_timed_out_is_not_retried() {
        let mut flaky = Flaky::new(vec![None, Some(15)], true);
        flaky.kind = io::ErrorKind::TimedOut;
        let (mut wire, connections) = after_one_batch(flaky, Duration::from_secs(5));
        let started = Instant::now();
        wire.flush().expect_err("a stalled server");
        assert!(started.elapsed() < RETRY_FIRST, "no pause before failing");
        assert_eq!(connections.lock().unwrap().len(), 2, "one failed attempt");
        assert_eq!((wire.sent(), wire.pending_lines()), (2, 2));
    }

    #[test]
    fn retries_end_with_the_window_and_keep_what_was_not_taken() {
        // The second batch hands over its first line whole, then the server
        // is gone for good.
        let flaky = Flaky::new(vec![None, Some(15)], true);
        let window = Duration::from_millis(250);
        let (mut wire, connections) = after_one_batch(flaky, window);
        let started = Instant::now();
        wire.flush().expect_err("the server never comes back");
        let waited = started.elapsed();
        // Attempts at 0, 100 and 300 ms would pass the window: two attempts,
        // one pause.
        assert!(waited >= RETRY_FIRST && waited < window, "{waited:?}");
        assert_eq!(
            connections.lock().unwrap().len(),
            3,
            "the first batch's connection, then one per failed attempt"
        );
        assert_eq!(Flaky::lines(&connections), [line("a"), line("b")]);
        assert_eq!((wire.sent(), wire.pending_lines()), (2, 2));
        assert_eq!(
            wire.pending(),
            format!("{}\n{}\n", line("c"), line("d")).as_bytes()
        );
    }

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
