//! The command line, parsed with [`lexopt`]: it splits the arguments into
//! options and values (`--name value`, `--name=value`, `-s value`, `-svalue`,
//! clusters such as `-uq` or `-uqs host`, `--` to end the options); this
//! module says what they mean and words every message.
//!
//! An argument that starts with `-` but reads as a number (`-5`, `-.5`,
//! `-inf`) is a value, so negative values need no `--`. A later occurrence of
//! a single-valued option wins; `--tag` accumulates. `--server`, `--prefix`
//! and `--tag` are checked by graphyte itself when the sender is made
//! (see `sender.rs`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::time::Duration;

use graphyte::Timestamp;
use lexopt::{Arg, Parser};

use crate::number::{check_timestamp, parse_timestamp, Number};

/// The short usage, printed after a usage error.
pub const USAGE: &str = "\
usage: graphyte [OPTIONS] METRIC VALUE
       graphyte [OPTIONS] -        (read \"metric value [timestamp]\" lines from stdin)";

/// The `--help` text.
pub const HELP: &str = "\
graphyte: send metrics to Graphite (Carbon) over its plaintext protocol

usage: graphyte [OPTIONS] METRIC VALUE
       graphyte [OPTIONS] -

Arguments:
  METRIC                 metric path, e.g. foo.bar, with optional inline tags: foo.bar;env=prod
  VALUE                  a number: integers are sent as integers (42), others as floats (42.5);
                         NaN, infinities and non-numbers are refused
  -                      bulk mode: read \"metric value [timestamp]\" lines from standard input
                         and send them over one connection; blank lines and lines starting
                         with # are skipped, bad lines are reported with their line number

Options:
  -s, --server HOST      Carbon host name or IP address, or HOST:PORT ([IPv6]:PORT)
                         [default: localhost]
  -p, --port PORT        Carbon plaintext port [default: 2003]
  -u, --udp              send over UDP instead of TCP
  -t, --timestamp SECS   Unix timestamp in seconds [default: now]; in bulk mode, the
                         timestamp of lines that have none
  -q, --quiet            print neither what was sent nor the bulk summary (errors still are)
      --prefix PREFIX    put PREFIX and a dot before every metric name
      --tag KEY=VALUE    add a Graphite tag to every metric (repeatable)
      --timeout SECS     TCP connect and write timeout in seconds, fractions allowed [default: 5];
                         in bulk mode, also how long to keep reconnecting when the server
                         goes away mid-stream; with --tls it also bounds the TLS handshake
      --tls              send over TLS (to a relay that terminates it; set its port with -p);
                         the server's certificate is verified, never falls back to plaintext
                         (needs a graphyte built with the tls feature)
      --ca FILE          with --tls: trust the CA certificates in FILE (PEM) instead of the
                         system's
      --server-name NAME with --tls: the name the server's certificate must carry, when it is
                         not the --server host (e.g. a relay reached by IP address)
      --cert FILE        with --tls: client certificate (PEM) for mutual TLS; needs --key
      --key FILE         with --tls: the private key (PEM) of --cert
  -h, --help             print this help and exit
      --version          print the version and exit

Exit status: 0 everything was sent; 1 sending failed, or some bulk input lines were
refused; 2 usage error (nothing was sent).
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print [`HELP`].
    Help,
    /// Print the version.
    Version,
    /// Send metrics.
    Run(Box<Options>),
}

/// Send one metric, or read lines from stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// `METRIC VALUE`: one line.
    Single {
        /// The metric name as typed (validated when the line is formatted).
        metric: String,
        /// The value.
        value: Number,
    },
    /// `-`: lines from standard input.
    Bulk,
}

/// What the options say, as typed where graphyte checks them.
#[derive(Debug)]
pub struct Options {
    /// `-s`: `host`, `host:port`, `[v6]:port` or a bare IPv6 address, for
    /// graphyte's `Config` to parse.
    pub server: String,
    /// `-p`, if given.
    pub port: Option<u16>,
    /// UDP instead of TCP.
    pub udp: bool,
    /// `-t`: the timestamp (single mode) or the default timestamp (bulk
    /// mode); `None` means the current time. Within whisper's range.
    pub timestamp: Option<Timestamp>,
    /// `-q`: no informational output.
    pub quiet: bool,
    /// `--prefix`, empty if not given.
    pub prefix: String,
    /// `--tag`s in order (graphyte lets a later one win for the same key).
    pub tags: Vec<(String, String)>,
    /// TCP connect and write timeout.
    pub timeout: Duration,
    /// `--tls` and its options.
    pub tls: TlsOptions,
    /// One metric or bulk mode.
    pub mode: Mode,
}

/// `--tls`, `--ca`, `--server-name`, `--cert`, `--key`, as typed (the files
/// are read when the sender is made).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tls`: send over TLS.
    pub enabled: bool,
    /// `--ca FILE`.
    pub ca: Option<String>,
    /// `--server-name NAME`.
    pub server_name: Option<String>,
    /// `--cert FILE`.
    pub cert: Option<String>,
    /// `--key FILE`.
    pub key: Option<String>,
}

/// A command line that cannot be obeyed (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn usage<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// The longest `--timeout`: a day, far beyond any useful wait, and small
/// enough that every deadline computed from it is a valid point in time.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses the arguments (without the program name).
pub fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = Parser::from_args(args);
    let mut o = Options {
        server: "localhost".into(),
        port: None,
        udp: false,
        timestamp: None,
        quiet: false,
        prefix: String::new(),
        tags: Vec::new(),
        timeout: graphyte::DEFAULT_TIMEOUT,
        tls: TlsOptions::default(),
        mode: Mode::Bulk,
    };
    let mut positionals = Vec::new();
    loop {
        if let Some(number) = negative_number(&mut parser) {
            positionals.push(number);
            continue;
        }
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            // `--udp=1`: the only error `next` returns.
            Err(lexopt::Error::UnexpectedValue { option, .. }) => {
                return usage(format!("option '{option}' does not take a value"))
            }
            Err(e) => return usage(e.to_string()),
        };
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help),
            Arg::Long("version") => return Ok(Command::Version),
            Arg::Short('u') | Arg::Long("udp") => o.udp = true,
            Arg::Short('q') | Arg::Long("quiet") => o.quiet = true,
            Arg::Short('s') | Arg::Long("server") => o.server = value(&mut parser, "server")?,
            Arg::Short('p') | Arg::Long("port") => {
                let port = value(&mut parser, "port")?;
                o.port = match port.parse::<u16>() {
                    Ok(port) if port != 0 => Some(port),
                    _ => return usage(format!("invalid --port {port:?}: expected 1 to 65535")),
                };
            }
            Arg::Short('t') | Arg::Long("timestamp") => {
                let ts = value(&mut parser, "timestamp")?;
                let ts = parse_timestamp(&ts)
                    .and_then(check_timestamp)
                    .or_else(|e| usage(format!("invalid --timestamp: {e}")))?;
                o.timestamp = Some(ts);
            }
            Arg::Long("prefix") => o.prefix = value(&mut parser, "prefix")?,
            Arg::Long("tag") => {
                let tag = value(&mut parser, "tag")?;
                match tag.split_once('=') {
                    Some((key, value)) if !key.is_empty() => {
                        o.tags.push((key.to_owned(), value.to_owned()));
                    }
                    _ => return usage(format!("invalid --tag {tag:?}: expected KEY=VALUE")),
                }
            }
            Arg::Long("timeout") => o.timeout = timeout(&value(&mut parser, "timeout")?)?,
            Arg::Long("tls") => o.tls.enabled = true,
            Arg::Long("ca") => o.tls.ca = Some(value(&mut parser, "ca")?),
            Arg::Long("server-name") => {
                o.tls.server_name = Some(value(&mut parser, "server-name")?)
            }
            Arg::Long("cert") => o.tls.cert = Some(value(&mut parser, "cert")?),
            Arg::Long("key") => o.tls.key = Some(value(&mut parser, "key")?),
            Arg::Value(value) => positionals.push(utf8(value)?),
            Arg::Short(c) => return usage(format!("unknown option '-{c}'")),
            Arg::Long(name) => return usage(format!("unknown option '--{name}'")),
        }
    }
    check_tls(&o)?;
    o.mode = match positionals.as_slice() {
        [] => return usage("missing METRIC and VALUE (or - to read lines from standard input)"),
        [dash] if dash == "-" => Mode::Bulk,
        [metric] => return usage(format!("missing VALUE after METRIC {metric:?}")),
        [metric, value] => Mode::Single {
            metric: metric.clone(),
            value: Number::parse(value).or_else(|e| usage(format!("invalid VALUE: {e}")))?,
        },
        [_, _, extra, ..] => return usage(format!("unexpected argument {extra:?}")),
    };
    Ok(Command::Run(Box::new(o)))
}

/// The TLS options go together: each of the others needs `--tls`, `--cert`
/// and `--key` need each other, and TLS runs over TCP.
fn check_tls(o: &Options) -> Result<(), UsageError> {
    let tls = &o.tls;
    if !tls.enabled {
        let given = [
            ("--ca", tls.ca.is_some()),
            ("--server-name", tls.server_name.is_some()),
            ("--cert", tls.cert.is_some()),
            ("--key", tls.key.is_some()),
        ];
        if let Some((option, _)) = given.iter().find(|(_, given)| *given) {
            return usage(format!("option '{option}' needs --tls"));
        }
        return Ok(());
    }
    if !cfg!(feature = "tls") {
        return usage(
            "--tls: this graphyte was built without TLS (build graphyte-cli with --features tls)",
        );
    }
    if o.udp {
        return usage("--tls runs over TCP: it cannot be combined with -u/--udp");
    }
    match (&tls.cert, &tls.key) {
        (Some(_), None) => usage("option '--cert' needs --key"),
        (None, Some(_)) => usage("option '--key' needs --cert"),
        _ => Ok(()),
    }
}

/// The next argument if it is a negative number (`-5`, `-.5`, `-inf`): a
/// value, not a cluster of short options.
fn negative_number(parser: &mut Parser) -> Option<String> {
    let is_number = |arg: &OsStr| {
        let rest = arg.to_str().and_then(|arg| arg.strip_prefix('-'));
        rest.is_some_and(|rest| {
            rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                || rest.parse::<f64>().is_ok()
        })
    };
    let number = parser.try_raw_args()?.next_if(is_number)?;
    number.into_string().ok()
}

/// The value of option `--long`, which must be there and be UTF-8.
fn value(parser: &mut Parser, long: &str) -> Result<String, UsageError> {
    match parser.value() {
        Ok(value) => utf8(value),
        Err(_) => usage(format!("option '--{long}' needs a value")),
    }
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string().or_else(|bad| {
        usage(format!(
            "argument {:?} is not valid UTF-8",
            bad.to_string_lossy()
        ))
    })
}

/// `--timeout`: positive seconds, fractions allowed, at most [`MAX_TIMEOUT`].
fn timeout(value: &str) -> Result<Duration, UsageError> {
    match value.parse::<f64>() {
        Ok(secs) if secs > 0.0 => match Duration::try_from_secs_f64(secs) {
            Ok(d) if d.is_zero() => usage(format!("invalid --timeout {value:?}: below 1 ns")),
            Ok(d) if d <= MAX_TIMEOUT => Ok(d),
            _ => usage(format!(
                "invalid --timeout {value:?}: too large, at most {} seconds",
                MAX_TIMEOUT.as_secs()
            )),
        },
        _ => usage(format!(
            "invalid --timeout {value:?}: expected a positive number of seconds"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().copied()) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{args:?}: expected options, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(UsageError(msg)) => msg,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    fn tags(options: &Options) -> Vec<(&str, &str)> {
        let tags = options.tags.iter();
        tags.map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn defaults() {
        let o = run(&["foo.bar", "42"]);
        assert_eq!((o.server.as_str(), o.port), ("localhost", None));
        assert!(!o.udp && !o.quiet);
        assert_eq!(o.timestamp, None);
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert!(o.prefix.is_empty() && o.tags.is_empty());
        assert_eq!(
            o.mode,
            Mode::Single {
                metric: "foo.bar".into(),
                value: Number::Int(42)
            }
        );
    }

    #[test]
    fn every_option_in_every_form() {
        let forms: &[&[&str]] = &[
            &[
                "-s",
                "h.example",
                "-p",
                "2004",
                "-u",
                "-t",
                "1700000001",
                "-q",
                "--prefix",
                "pre",
                "--tag",
                "env=prod",
                "--tag",
                "host=a",
                "--timeout",
                "1.5",
            ],
            &[
                "--server",
                "h.example",
                "--port",
                "2004",
                "--udp",
                "--timestamp",
                "1700000001",
                "--quiet",
                "--prefix=pre",
                "--tag=env=prod",
                "--tag=host=a",
                "--timeout=1.5",
            ],
            &[
                "--server=h.example",
                "--port=2004",
                "--timestamp=1700000001",
                "-uq",
                "--prefix",
                "pre",
                "--tag",
                "env=prod",
                "--tag",
                "host=a",
                "--timeout",
                "1.5",
            ],
            &[
                "-sh.example",
                "-p2004",
                "-uqt1700000001",
                "--prefix=pre",
                "--tag=env=prod",
                "--tag=host=a",
                "--timeout=1.5",
            ],
            &[
                "-qus",
                "h.example",
                "-t",
                "1700000001",
                "-p",
                "2004",
                "--prefix=pre",
                "--tag=env=prod",
                "--tag=host=a",
                "--timeout=1.5",
            ],
        ];
        for form in forms {
            let mut args = form.to_vec();
            args.extend(["foo.bar", "42.5"]);
            let o = run(&args);
            assert_eq!(o.server, "h.example", "{args:?}");
            assert_eq!(o.port, Some(2004), "{args:?}");
            assert!(o.udp && o.quiet, "{args:?}");
            assert_eq!(
                o.timestamp,
                Some(Timestamp::from(1_700_000_001)),
                "{args:?}"
            );
            assert_eq!(o.timeout, Duration::from_millis(1500), "{args:?}");
            assert_eq!(o.prefix, "pre");
            assert_eq!(tags(&o), [("env", "prod"), ("host", "a")]);
            assert_eq!(
                o.mode,
                Mode::Single {
                    metric: "foo.bar".into(),
                    value: Number::Float(42.5)
                }
            );
        }
    }

    #[test]
    fn options_and_positionals_mix_and_later_options_win() {
        let o = run(&["foo", "-p", "1", "7", "-p", "2", "-s", "a", "-s", "b"]);
        assert_eq!((o.port, o.server.as_str()), (Some(2), "b"));
        assert_eq!(
            o.mode,
            Mode::Single {
                metric: "foo".into(),
                value: Number::Int(7)
            }
        );
        // Tags accumulate (graphyte lets the later one win for a key).
        let o = run(&["--tag", "k=1", "--tag", "k=2", "m", "1"]);
        assert_eq!(tags(&o), [("k", "1"), ("k", "2")]);
    }

    #[test]
    fn negative_values_and_double_dash() {
        for (arg, value) in [("-5", Number::Int(-5)), ("-.5", Number::Float(-0.5))] {
            assert_eq!(
                run(&["foo", arg]).mode,
                Mode::Single {
                    metric: "foo".into(),
                    value
                }
            );
        }
        assert!(error(&["foo", "-inf"]).contains("infinite"));
        let o = run(&["-q", "--", "-odd.name", "-1"]);
        assert_eq!(
            o.mode,
            Mode::Single {
                metric: "-odd.name".into(),
                value: Number::Int(-1)
            }
        );
        assert!(o.quiet);
        // A value may start with '-': it is taken as it is.
        assert!(error(&["-t", "-5", "foo", "1"]).contains("1970"));
        assert!(error(&["-q5", "foo", "1"]).contains("unknown option '-5'"));
    }

    #[test]
    fn bulk_mode() {
        assert_eq!(run(&["-"]).mode, Mode::Bulk);
        assert_eq!(run(&["-s", "h", "-", "-q"]).mode, Mode::Bulk);
        assert_eq!(run(&["--", "-"]).mode, Mode::Bulk);
    }

    #[test]
    fn servers_are_kept_as_typed_for_graphyte() {
        for server in ["::1", "[::1]", "10.0.0.1", "h:2004", "[::1]:2004", "a b"] {
            assert_eq!(run(&["-s", server, "m", "1"]).server, server);
        }
        assert_eq!(
            run(&["--timeout", "86400", "m", "1"]).timeout.as_secs(),
            86400
        );
    }

    #[test]
    fn help_and_version_win() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["foo", "-h"],
            &["-qh"],
            &["-h", "--bogus"],
        ] {
            assert!(
                matches!(parse(args.iter().copied()), Ok(Command::Help)),
                "{args:?}"
            );
        }
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
        assert!(matches!(parse(["x", "--version"]), Ok(Command::Version)));
        assert!(parse(["--bogus", "-h"]).is_err(), "an error before -h wins");
    }

    #[test]
    fn usage_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing METRIC and VALUE"),
            (&["foo"], "missing VALUE"),
            (&["foo", "1", "2"], "unexpected argument \"2\""),
            (&["-", "x", "y"], "unexpected argument \"y\""),
            (&["foo", "abc"], "invalid VALUE: \"abc\" is not a number"),
            (&["foo", "nan"], "NaN"),
            (&["--bogus", "foo", "1"], "unknown option '--bogus'"),
            (&["-x", "foo", "1"], "unknown option '-x'"),
            (&["-ux", "foo", "1"], "unknown option '-x'"),
            (&["foo", "1", "-s"], "option '--server' needs a value"),
            (&["foo", "1", "--tag"], "option '--tag' needs a value"),
            (&["--udp=yes", "foo", "1"], "does not take a value"),
            (&["-p", "abc", "foo", "1"], "invalid --port"),
            (&["-p", "0", "foo", "1"], "invalid --port"),
            (&["-p", "65536", "foo", "1"], "invalid --port"),
            (&["-t", "now", "foo", "1"], "invalid --timestamp"),
            (&["-t", "0", "foo", "1"], "1970"),
            (&["-t", "1700000000000", "foo", "1"], "milliseconds"),
            (&["--timeout", "0", "foo", "1"], "positive number"),
            (&["--timeout", "-1", "foo", "1"], "positive number"),
            (&["--timeout", "nan", "foo", "1"], "positive number"),
            (&["--timeout", "1e300", "foo", "1"], "too large"),
            (
                &["--timeout", "1e19", "foo", "1"],
                "too large, at most 86400 seconds",
            ),
            (&["--timeout", "86401", "foo", "1"], "too large"),
            (&["--timeout", "1e-10", "foo", "1"], "below 1 ns"),
            (&["--tag", "novalue", "foo", "1"], "expected KEY=VALUE"),
            (&["--tag", "=v", "foo", "1"], "expected KEY=VALUE"),
        ];
        for (args, expected) in cases {
            let msg = error(args);
            assert!(
                msg.contains(expected),
                "{args:?}: {msg:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn tls_options() {
        assert_eq!(run(&["m", "1"]).tls, TlsOptions::default());
        let needs_tls = [
            ("--ca", "option '--ca' needs --tls"),
            ("--server-name", "option '--server-name' needs --tls"),
            ("--cert", "option '--cert' needs --tls"),
            ("--key", "option '--key' needs --tls"),
        ];
        for (option, expected) in needs_tls {
            assert_eq!(error(&[option, "x", "m", "1"]), expected);
        }
        for option in ["--ca", "--server-name", "--cert", "--key"] {
            let expected = format!("option '{option}' needs a value");
            assert_eq!(error(&["--tls", "m", "1", option]), expected);
        }
        if !cfg!(feature = "tls") {
            assert!(error(&["--tls", "m", "1"]).contains("built without TLS"));
            return;
        }
        let o = run(&[
            "--tls",
            "--ca",
            "ca.pem",
            "--server-name=relay.internal",
            "--cert",
            "c.pem",
            "--key=c.key",
            "m",
            "1",
        ]);
        assert_eq!(
            o.tls,
            TlsOptions {
                enabled: true,
                ca: Some("ca.pem".into()),
                server_name: Some("relay.internal".into()),
                cert: Some("c.pem".into()),
                key: Some("c.key".into()),
            }
        );
        assert!(run(&["m", "1", "--tls"]).tls.enabled);
        assert_eq!(
            error(&["--tls", "--cert", "c.pem", "m", "1"]),
            "option '--cert' needs --key"
        );
        assert_eq!(
            error(&["--tls", "--key", "c.key", "m", "1"]),
            "option '--key' needs --cert"
        );
        assert!(error(&["--tls", "-u", "m", "1"]).contains("-u/--udp"));
        assert!(error(&["--tls=yes", "m", "1"]).contains("does not take a value"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_usage_errors() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'f', 0xff]);
        let args = vec![bad, OsString::from("1")];
        assert!(matches!(parse(args), Err(UsageError(m)) if m.contains("UTF-8")));
        let bad = OsString::from_vec(vec![b'h', 0xff]);
        let args = vec![OsString::from("-s"), bad, "m".into(), "1".into()];
        assert!(matches!(parse(args), Err(UsageError(m)) if m.contains("UTF-8")));
    }
}
