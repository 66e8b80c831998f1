//! Bulk mode (`graphyte -`): `metric value [timestamp]` lines from standard
//! input, streamed to the server over one connection.
//!
//! Input rules:
//! * fields are separated by whitespace; leading and trailing whitespace
//!   (including a `\r` before the `\n`) is ignored;
//! * blank lines and lines whose first non-blank character is `#` are
//!   skipped and not counted;
//! * the value follows the command line's rules (integers stay integers,
//!   NaN, infinities and non-numbers are refused); the timestamp is in Unix
//!   seconds (a fraction is truncated, as Carbon does) and defaults to `-t`,
//!   or to the time the line was read;
//! * a line that cannot be sent (wrong number of fields, bad name, value or
//!   timestamp, not UTF-8, longer than [`MAX_INPUT_LINE`] bytes) is reported
//!   with its line number (counting from 1, all lines included) and skipped.
//!
//! Valid lines are sent in input order. They are batched: a batch is written
//! when it reaches [`BATCH_BYTES`], and whenever the next line has not fully
//! arrived yet, so a slow producer's lines go out as soon as they are read
//! and a fast one's go out in large writes. A failed write is retried as
//! [`Wire::flush`] says (reconnecting for up to `--timeout` once the server
//! has taken lines); if it still fails, the run ends there: nothing more is
//! read, and the outcome names the first input line the server did not get.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};

use graphyte::Timestamp;

use crate::number::{parse_timestamp, Number};
use crate::wire::Wire;

/// Write a batch once it holds this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Longest input line accepted, in bytes; longer lines are refused (and
/// never held in memory whole).
pub const MAX_INPUT_LINE: usize = 4 * graphyte::MAX_LINE_LEN;

/// Size of the input buffer.
const READ_BUFFER: usize = 64 * 1024;

/// How a bulk run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Lines written to the server.
    pub sent: u64,
    /// Lines refused (reported on the way).
    pub refused: u64,
    /// Why the run stopped early, if it did.
    pub failure: Option<Failure>,
}

/// What stopped a bulk run before the end of the input.
#[derive(Debug)]
pub enum Failure {
    /// A write to the server failed for good; no line from `first_unsent`
    /// on was sent (valid lines before it were), and nothing after the line
    /// read last was read.
    Send {
        /// The error, naming the server.
        error: graphyte::Error,
        /// The input line number of the first valid line not sent.
        first_unsent: u64,
    },
    /// Reading standard input failed after `line` lines (all valid ones
    /// among them were sent).
    Read {
        /// The error.
        error: io::Error,
        /// Lines read before the error.
        line: u64,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Send { error, .. } => write!(f, "{error}"),
            Failure::Read { error, line } => {
                write!(
                    f,
                    "reading standard input failed after line {line}: {error}"
                )
            }
        }
    }
}

/// Reads lines from `input` and sends them through `wire`. Refused lines are
/// reported on `diagnostics` (`line N: reason`); write errors there are
/// ignored. `default_timestamp` is used for lines without one (`None`: the
/// time the line is read).
pub fn run<R: Read>(
    input: R,
    wire: &mut Wire,
    default_timestamp: Option<Timestamp>,
    diagnostics: &mut dyn Write,
) -> Outcome {
    let mut input = BufReader::with_capacity(READ_BUFFER, input);
    let mut line = Vec::new();
    let mut number: u64 = 0;
    let mut refused: u64 = 0;
    // Input line numbers of the lines pending in `wire`, oldest first.
    let mut pending = Pending::default();
    let failure = loop {
        // Write the batch before a read that might wait for the producer.
        let next_line_buffered = input.buffer().contains(&b'\n');
        if wire.pending_lines() > 0 && (!next_line_buffered || wire.pending().len() >= BATCH_BYTES)
        {
            if let Err(error) = pending.flush(wire) {
                break Some(error);
            }
        }
        let too_long = match read_line(&mut input, &mut line) {
            Ok(Some(too_long)) => too_long,
            Ok(None) => break None,
            Err(error) => {
                break Some(Failure::Read {
                    error,
                    line: number,
                })
            }
        };
        number += 1;
        let result = if too_long {
            Err(format!("longer than {MAX_INPUT_LINE} bytes"))
        } else {
            send_line(wire, &line, default_timestamp)
        };
        match result {
            Ok(Sent::Yes) => pending.numbers.push(number),
            Ok(Sent::Skipped) => {}
            Err(reason) => {
                refused += 1;
                let _ = writeln!(diagnostics, "graphyte: line {number}: {reason}");
            }
        }
    };
    // Send what is still pending at the end of the input (not after a
    // failed write: that ends the run at once). A read error cannot leave
    // lines pending: the batch is written before every read that finds
    // nothing buffered.
    let failure = match failure {
        None => pending.flush(wire).err(),
        stopped => stopped,
    };
    Outcome {
        sent: wire.sent(),
        refused,
        failure,
    }
}

/// The input line numbers of the lines pending in the wire, in order, so a
/// failure can name the first line the server did not get.
#[derive(Default)]
struct Pending {
    numbers: Vec<u64>,
}

impl Pending {
    /// Flushes `wire`, then forgets the numbers of the lines it wrote (all,
    /// or those taken before a failure).
    fn flush(&mut self, wire: &mut Wire) -> Result<(), Failure> {
        let result = wire.flush();
        let written = self.numbers.len() - wire.pending_lines();
        self.numbers.drain(..written);
        result.map_err(|error| Failure::Send {
            error,
            first_unsent: self.numbers.first().copied().unwrap_or_default(),
        })
    }
}

/// Whether a line added to the batch or was skipped (blank or comment).
enum Sent {
    Yes,
    Skipped,
}

/// Parses one input line (without its `\n`) and adds it to the batch, or
/// says why it is refused.
fn send_line(wire: &mut Wire, line: &[u8], default: Option<Timestamp>) -> Result<Sent, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_owned())?;
    let mut fields = text.split_whitespace();
    let (name, value, timestamp) =
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (None, ..) => return Ok(Sent::Skipped),
            (Some(first), ..) if first.starts_with('#') => return Ok(Sent::Skipped),
            (Some(name), Some(value), timestamp, None) => (name, value, timestamp),
            _ => {
                let found = text.split_whitespace().count();
                return Err(format!(
                    "expected \"metric value [timestamp]\", found {found} field{}",
                    if found == 1 { "" } else { "s" }
                ));
            }
        };
    let value =
        Number::parse(value).map_err(|e| format!("invalid value for metric {name:?}: {e}"))?;
    let timestamp = match timestamp {
        Some(ts) => parse_timestamp(ts)
            .map_err(|e| format!("invalid timestamp for metric {name:?}: {e}"))?,
        None => default.unwrap_or_else(Timestamp::now),
    };
    wire.push(name, value, timestamp)
        .map_err(|e| e.to_string())?;
    Ok(Sent::Yes)
}

/// Reads the next line into `line`, without its `\n`, keeping at most
/// [`MAX_INPUT_LINE`] bytes of it (the rest is read and dropped). Returns
/// `None` at the end of the input, else whether the line was too long.
/// A last line without `\n` counts.
fn read_line<R: Read>(input: &mut BufReader<R>, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let (content, used, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            let room = MAX_INPUT_LINE - line.len();
            if content.len() > room {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(content);
            }
        }
        input.consume(used);
        if complete {
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphyte::{CaptureTransport, LineFormat};
    use std::io::Cursor;

    fn load(input: &[u8], default: Option<Timestamp>) -> (Outcome, Vec<String>, String) {
        let capture = CaptureTransport::new();
        let mut wire = Wire::new(LineFormat::default(), Box::new(capture.clone()));
        let mut diagnostics = Vec::new();
        let outcome = run(Cursor::new(input), &mut wire, default, &mut diagnostics);
        let diagnostics = String::from_utf8(diagnostics).expect("UTF-8 diagnostics");
        (outcome, capture.lines(), diagnostics)
    }

    #[test]
    fn good_and_bad_lines() {
        let input = b"a 1 1700000000\n\
            \n\
            # a comment\n\
            \x20  # an indented comment\n\
            b 2.5 1700000001\r\n\
            bad\n\
            c x 1700000000\n\
            d nan 1700000000\n\
            e 1 0\n\
            f 1 soon\n\
            g.. 1 1700000000\n\
            h 1 2 3\n\
            \xff 1 1700000000\n\
            \t i   -3\t1700000002  \n\
            j 4 1700000003.9";
        let (outcome, lines, diagnostics) = load(input, None);
        assert_eq!(
            lines,
            [
                "a 1 1700000000",
                "b 2.5 1700000001",
                "i -3 1700000002",
                "j 4 1700000003"
            ]
        );
        assert_eq!((outcome.sent, outcome.refused), (4, 8));
        assert!(outcome.failure.is_none());
        let expected = [
            "line 6: expected \"metric value [timestamp]\", found 1 field",
            "line 7: invalid value for metric \"c\": \"x\" is not a number",
            "line 8: invalid value for metric \"d\": \"nan\" is NaN",
            "line 9: invalid timestamp 0 for metric \"e\"",
            "line 10: invalid timestamp for metric \"f\": \"soon\" is not a Unix timestamp",
            "line 11: invalid metric name \"g..\"",
            "line 12: expected \"metric value [timestamp]\", found 4 fields",
            "line 13: not valid UTF-8",
        ];
        let got: Vec<&str> = diagnostics.lines().collect();
        assert_eq!(got.len(), expected.len(), "{diagnostics}");
        for (got, expected) in got.iter().zip(expected) {
            assert!(got.starts_with(&format!("graphyte: {expected}")), "{got:?}");
        }
    }

    #[test]
    fn missing_timestamps_default_to_t_or_now() {
        let (outcome, lines, _) = load(b"a 1\nb 2 1700000005\n", Some(Timestamp::from(42)));
        assert_eq!(lines, ["a 1 42", "b 2 1700000005"]);
        assert_eq!(outcome.sent, 2);
        let before = Timestamp::now().as_secs();
        let (_, lines, _) = load(b"a 1\n", None);
        let after = Timestamp::now().as_secs();
        let ts: i64 = lines[0]
            .strip_prefix("a 1 ")
            .and_then(|t| t.parse().ok())
            .expect("a timestamp");
        assert!(
            (before..=after).contains(&ts),
            "{ts} not in {before}..={after}"
        );
    }

    #[test]
    fn empty_input() {
        let (outcome, lines, diagnostics) = load(b"", None);
        assert_eq!((outcome.sent, outcome.refused), (0, 0));
        assert!(lines.is_empty() && diagnostics.is_empty() && outcome.failure.is_none());
    }

    #[test]
    fn overlong_lines_are_refused_and_the_rest_is_read() {
        let mut input = b"a 1 1700000000\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_INPUT_LINE * 3));
        input.extend(b" 1 1700000000\nb 2 1700000000\n");
        let mut exact = vec![b'y'; MAX_INPUT_LINE];
        exact.push(b'\n');
        input.extend(&exact);
        let (outcome, lines, diagnostics) = load(&input, None);
        assert_eq!(lines, ["a 1 1700000000", "b 2 1700000000"]);
        assert_eq!((outcome.sent, outcome.refused), (2, 2));
        let got: Vec<&str> = diagnostics.lines().collect();
        assert_eq!(
            got[0],
            format!("graphyte: line 2: longer than {MAX_INPUT_LINE} bytes")
        );
        // Exactly the limit: read whole, refused for what it is.
        assert!(got[1].starts_with("graphyte: line 4: expected"), "{got:?}");
    }

    #[test]
    fn lines_are_batched_in_order() {
        let capture = CaptureTransport::new();
        let mut wire = Wire::new(LineFormat::default(), Box::new(capture.clone()));
        let input: String = (0..20_000)
            .map(|i| format!("metric.{i} {i} 1700000000\n"))
            .collect();
        let outcome = run(input.as_bytes(), &mut wire, None, &mut io::sink());
        assert_eq!((outcome.sent, outcome.refused), (20_000, 0));
        let lines = capture.lines();
        assert_eq!(lines.len(), 20_000);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("metric.{i} {i} 1700000000"));
        }
        // About 500 KB: several batches, none over the limit plus one line.
        assert!(
            capture.batches() > 1 && capture.batches() < 100,
            "{}",
            capture.batches()
        );
    }

    /// A reader that hands out one line per `read`, like a slow producer.
    struct Trickle(Vec<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_line_is_written_before_waiting_for_the_next() {
        let capture = CaptureTransport::new();
        let mut wire = Wire::new(LineFormat::default(), Box::new(capture.clone()));
        let input = Trickle(vec![
            b"a 1 1700000000\nb 2 17".to_vec(),
            b"00000000\n".to_vec(),
            b"c 3 1700000000\nd 4 1700000000\n".to_vec(),
        ]);
        let outcome = run(input, &mut wire, None, &mut io::sink());
        assert_eq!(outcome.sent, 4);
        // "a" alone (only part of "b" had arrived), "b" alone (nothing more
        // had arrived), then "c" and "d" together (they arrived together).
        assert_eq!(capture.batches(), 3);
        assert_eq!(capture.take_lines().len(), 4);
    }

    #[test]
    fn a_failed_write_stops_the_run() {
        let capture = CaptureTransport::new();
        let mut wire = Wire::new(LineFormat::default(), Box::new(capture.clone()));
        capture.fail_with(Some(ErrorKind::ConnectionRefused));
        let mut diagnostics = Vec::new();
        let outcome = run(
            &b"bad\na 1 1700000000\nb 2 1700000000\n"[..],
            &mut wire,
            None,
            &mut diagnostics,
        );
        assert_eq!((outcome.sent, outcome.refused), (0, 1));
        match outcome.failure {
            Some(Failure::Send {
                error,
                first_unsent,
            }) => {
                assert_eq!(first_unsent, 2);
                assert!(error.to_string().contains("failed"), "{error}");
            }
            other => panic!("expected a send failure, got {other:?}"),
        }
    }

    #[test]
    fn a_failure_names_the_first_line_the_server_did_not_get() {
        use crate::wire::tests::Flaky;
        // The server takes "a" whole and part of "b", then is gone.
        let flaky = Flaky::new(vec![Some(15 + 4)], true);
        let connections = std::sync::Arc::clone(&flaky.connections);
        let mut wire = Wire::new(LineFormat::default(), Box::new(flaky));
        let input = b"a 1 1700000000\nbad\n# note\nb 2 1700000000\nc 3 1700000000\n";
        let outcome = run(&input[..], &mut wire, None, &mut io::sink());
        assert_eq!((outcome.sent, outcome.refused), (1, 1));
        assert_eq!(Flaky::lines(&connections), ["a 1 1700000000"]);
        match outcome.failure {
            Some(Failure::Send { first_unsent, .. }) => assert_eq!(first_unsent, 4),
            other => panic!("expected a send failure, got {other:?}"),
        }
    }

    /// A reader that fails after some input.
    struct Broken(Option<&'static [u8]>);

    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.take() {
                Some(data) => {
                    buf[..data.len()].copy_from_slice(data);
                    Ok(data.len())
                }
                None => Err(io::Error::other("disk on fire")),
            }
        }
    }

    #[test]
    fn a_read_error_stops_the_run_after_sending_what_was_read() {
        let capture = CaptureTransport::new();
        let mut wire = Wire::new(LineFormat::default(), Box::new(capture.clone()));
        let input = Broken(Some(b"a 1 1700000000\nb 2 1700000000\n"));
        let outcome = run(input, &mut wire, None, &mut io::sink());
        assert_eq!(capture.lines(), ["a 1 1700000000", "b 2 1700000000"]);
        assert_eq!(outcome.sent, 2);
        match outcome.failure {
            Some(Failure::Read { error, line }) => {
                assert_eq!(line, 2);
                assert_eq!(error.to_string(), "disk on fire");
            }
            other => panic!("expected a read failure, got {other:?}"),
        }
    }
}
