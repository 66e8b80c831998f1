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
//! Valid lines are sent in input order through a [`Delivery`] (a graphyte
//! sender), which batches them, rides out a server restart within
//! `--timeout` and gives up on a server that is gone for good; the run then
//! ends there: nothing more is read, and the outcome names the first input
//! line the server did not get.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};

use graphyte::Timestamp;

use crate::delivery::{Delivery, Refused, Undelivered};
use crate::number::{parse_timestamp, Number};

/// Longest input line accepted, in bytes; longer lines are refused (and
/// never held in memory whole).
pub const MAX_INPUT_LINE: usize = 4 * graphyte::MAX_LINE_LEN;

/// Size of the input buffer.
const READ_BUFFER: usize = 64 * 1024;

/// How a bulk run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Lines delivered to the server.
    pub sent: u64,
    /// Lines refused (reported on the way).
    pub refused: u64,
    /// Why the run stopped early, if it did.
    pub failure: Option<Failure>,
}

/// What stopped a bulk run before the end of the input.
#[derive(Debug)]
pub enum Failure {
    /// The server was given up on; no line from `first_unsent` on was
    /// delivered (valid lines before it were), and nothing after the line
    /// read last was read.
    Send(Undelivered),
    /// Reading standard input failed after `line` lines (all valid ones
    /// among them were delivered).
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
            Failure::Send(undelivered) => f.write_str(&undelivered.error),
            Failure::Read { error, line } => {
                write!(
                    f,
                    "reading standard input failed after line {line}: {error}"
                )
            }
        }
    }
}

/// Reads lines from `input` and sends them through `delivery`. Refused lines
/// are reported on `diagnostics` (`line N: reason`); write errors there are
/// ignored. `default_timestamp` is used for lines without one (`None`: the
/// time the line is read).
pub fn run<R: Read>(
    input: R,
    delivery: &mut Delivery,
    default_timestamp: Option<Timestamp>,
    diagnostics: &mut dyn Write,
) -> Outcome {
    let mut input = BufReader::with_capacity(READ_BUFFER, input);
    let mut line = Vec::new();
    let mut number: u64 = 0;
    let mut refused: u64 = 0;
    let failure = loop {
        // Before a read that might wait for the producer: is the server
        // still worth reading for?
        if !input.buffer().contains(&b'\n') {
            if let Err(undelivered) = delivery.check() {
                break Some(Failure::Send(undelivered));
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
        let parsed = if too_long {
            Err(format!("longer than {MAX_INPUT_LINE} bytes"))
        } else {
            parse_line(&line, default_timestamp)
        };
        let reason = match parsed {
            Ok(Some((name, value, timestamp))) => {
                match delivery.send(number, name, value, timestamp) {
                    Ok(()) => continue,
                    Err(Refused::Line(e)) => e.to_string(),
                    Err(Refused::Undelivered(undelivered)) => {
                        break Some(Failure::Send(undelivered))
                    }
                }
            }
            Ok(None) => continue,
            Err(reason) => reason,
        };
        refused += 1;
        let _ = writeln!(diagnostics, "graphyte: line {number}: {reason}");
    };
    // Deliver what is still queued, unless the server was given up on. A
    // failure to deliver says more than a read error: it names the first
    // input line to send again.
    let failure = match failure {
        Some(Failure::Send(undelivered)) => Some(Failure::Send(undelivered)),
        read => match delivery.finish() {
            Ok(()) => read,
            Err(undelivered) => Some(Failure::Send(undelivered)),
        },
    };
    Outcome {
        sent: delivery.sent(),
        refused,
        failure,
    }
}

/// A metric line as read: name, value and timestamp.
type Parsed<'a> = (&'a str, Number, Timestamp);

/// Parses one input line (without its `\n`): `None` for a blank line or a
/// comment, or why it is refused. graphyte checks the rest when it is sent.
fn parse_line(line: &[u8], default: Option<Timestamp>) -> Result<Option<Parsed<'_>>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_owned())?;
    let mut fields = text.split_whitespace();
    let (name, value, timestamp) =
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (None, ..) => return Ok(None),
            (Some(first), ..) if first.starts_with('#') => return Ok(None),
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
    Ok(Some((name, value, timestamp)))
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
    use crate::delivery::tests::{delivery, Flaky};
    use graphyte::CaptureTransport;
    use std::io::Cursor;
    use std::time::{Duration, Instant};

    fn load(input: &[u8], default: Option<Timestamp>) -> (Outcome, Vec<String>, String) {
        let capture = CaptureTransport::new();
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        let mut diagnostics = Vec::new();
        let outcome = run(Cursor::new(input), &mut delivery, default, &mut diagnostics);
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
    fn many_lines_go_in_order_in_batches() {
        let capture = CaptureTransport::new();
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        // More than the queue holds: the run waits for room, drops nothing.
        let count = crate::delivery::QUEUE_LINES * 2 + 7;
        let input: String = (0..count)
            .map(|i| format!("metric.{i} {i} 1700000000\n"))
            .collect();
        let outcome = run(input.as_bytes(), &mut delivery, None, &mut io::sink());
        assert_eq!((outcome.sent, outcome.refused), (count as u64, 0));
        assert!(outcome.failure.is_none());
        let lines = capture.lines();
        assert_eq!(lines.len(), count);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("metric.{i} {i} 1700000000"));
        }
        let most = crate::delivery::BATCH_LINES;
        assert!(capture.batches() >= count / most, "{}", capture.batches());
    }

    /// A producer that waits, before its second line, until the first one
    /// reached the server.
    struct Slow {
        capture: CaptureTransport,
        chunks: Vec<&'static [u8]>,
    }

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return Ok(0);
            }
            if self.chunks.len() == 1 {
                let started = Instant::now();
                while self.capture.lines().is_empty() {
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "line 1 not sent"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let chunk = self.chunks.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_line_is_sent_while_the_producer_waits() {
        let capture = CaptureTransport::new();
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        let input = Slow {
            capture: capture.clone(),
            chunks: vec![b"a 1 1700000000\n", b"b 2 1700000000\n"],
        };
        let outcome = run(input, &mut delivery, None, &mut io::sink());
        assert_eq!(outcome.sent, 2);
        assert_eq!(capture.lines(), ["a 1 1700000000", "b 2 1700000000"]);
    }

    #[test]
    fn a_server_that_never_took_a_line_is_given_up_at_once() {
        let capture = CaptureTransport::new();
        capture.fail_with(Some(ErrorKind::ConnectionRefused));
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        let mut diagnostics = Vec::new();
        let started = Instant::now();
        let outcome = run(
            &b"bad\na 1 1700000000\nb 2 1700000000\n"[..],
            &mut delivery,
            None,
            &mut diagnostics,
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((outcome.sent, outcome.refused), (0, 1));
        match outcome.failure {
            Some(Failure::Send(Undelivered {
                error,
                first_unsent,
            })) => {
                assert_eq!(first_unsent, 2);
                assert!(error.starts_with("sending to capture failed: "), "{error}");
            }
            other => panic!("expected a send failure, got {other:?}"),
        }
    }

    #[test]
    fn a_failure_names_the_first_line_the_server_did_not_get() {
        // The server takes "a" whole and part of "b", then is gone.
        let flaky = Flaky::new(vec![Some(15 + 4)], true);
        let connections = std::sync::Arc::clone(&flaky.connections);
        let window = Duration::from_millis(300);
        let mut delivery = delivery(flaky, window);
        let input = b"a 1 1700000000\nbad\n# note\nb 2 1700000000\nc 3 1700000000\n";
        let started = Instant::now();
        let outcome = run(&input[..], &mut delivery, None, &mut io::sink());
        assert!(started.elapsed() >= window, "retried for the window");
        assert_eq!((outcome.sent, outcome.refused), (1, 1));
        assert_eq!(Flaky::lines(&connections), ["a 1 1700000000"]);
        match outcome.failure {
            Some(Failure::Send(Undelivered {
                error,
                first_unsent,
            })) => {
                assert_eq!(first_unsent, 4);
                assert!(
                    error.starts_with("sending to flaky:2003 failed: "),
                    "{error}"
                );
            }
            other => panic!("expected a send failure, got {other:?}"),
        }
    }

    #[test]
    fn a_restart_within_the_window_loses_and_repeats_nothing() {
        // "a" and part of "b" go out, then two failed attempts, then the
        // server takes everything.
        let flaky = Flaky::new(vec![Some(15 + 4), Some(0)], false);
        let connections = std::sync::Arc::clone(&flaky.connections);
        let mut delivery = delivery(flaky, Duration::from_secs(5));
        let input = b"a 1 1700000000\nb 2 1700000000\nc 3 1700000000\n";
        let outcome = run(&input[..], &mut delivery, None, &mut io::sink());
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert_eq!(outcome.sent, 3);
        assert_eq!(
            Flaky::lines(&connections),
            ["a 1 1700000000", "b 2 1700000000", "c 3 1700000000"]
        );
    }

    #[test]
    fn a_write_that_timed_out_is_given_up_at_once() {
        let mut flaky = Flaky::new(vec![Some(15)], true);
        flaky.kind = ErrorKind::TimedOut;
        let mut delivery = delivery(flaky, Duration::from_secs(5));
        let started = Instant::now();
        let outcome = run(
            &b"a 1 1700000000\nb 2 1700000000\n"[..],
            &mut delivery,
            None,
            &mut io::sink(),
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(outcome.sent, 1);
        assert!(matches!(
            outcome.failure,
            Some(Failure::Send(Undelivered {
                first_unsent: 2,
                ..
            }))
        ));
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
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        let input = Broken(Some(b"a 1 1700000000\nb 2 1700000000\n"));
        let outcome = run(input, &mut delivery, None, &mut io::sink());
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
