//! The command line, parsed by hand: the options are few, and the library's
//! users must not pay for an argument-parser dependency.
//!
//! Accepted forms: `--name value`, `--name=value`, `-s value`, `-svalue`,
//! clusters of short flags (`-uq`, `-uqs host`), `--` to end the options. An
//! argument that starts with `-` but reads as a number (`-5`, `-.5`, `-inf`)
//! is a positional, so negative values need no `--`. A later occurrence of a
//! single-valued option wins; `--tag` accumulates.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use graphyte::{LineFormat, Timestamp};

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
  -s, --server HOST      Carbon host name or IP address [default: localhost]
  -p, --port PORT        Carbon plaintext port [default: 2003]
  -u, --udp              send over UDP instead of TCP
  -t, --timestamp SECS   Unix timestamp in seconds [default: now]; in bulk mode, the
                         timestamp of lines that have none
  -q, --quiet            print neither what was sent nor the bulk summary (errors still are)
      --prefix PREFIX    put PREFIX and a dot before every metric name
      --tag KEY=VALUE    add a Graphite tag to every metric (repeatable)
      --timeout SECS     TCP connect and write timeout in seconds, fractions allowed [default: 5];
                         in bulk mode, also how long to keep reconnecting when the server
                         goes away mid-stream
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
    Run(Options),
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

/// Everything needed to send, validated.
#[derive(Debug)]
pub struct Options {
    /// Host name or address (IPv6 without brackets).
    pub server: String,
    /// Server port, 1..=65535.
    pub port: u16,
    /// UDP instead of TCP.
    pub udp: bool,
    /// `-t`: the timestamp (single mode) or the default timestamp (bulk
    /// mode); `None` means the current time. Within whisper's range.
    pub timestamp: Option<Timestamp>,
    /// `-q`: no informational output.
    pub quiet: bool,
    /// Prefix and default tags, validated by graphyte.
    pub format: LineFormat,
    /// TCP connect and write timeout.
    pub timeout: Duration,
    /// One metric or bulk mode.
    pub mode: Mode,
}

/// A command line that cannot be obeyed (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// The options, each with its short letter (if any), long name and whether
/// it takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Server,
    Port,
    Udp,
    Timestamp,
    Quiet,
    Prefix,
    Tag,
    Timeout,
    Help,
    Version,
}

const OPTS: &[(Option<char>, &str, Opt)] = &[
    (Some('s'), "server", Opt::Server),
    (Some('p'), "port", Opt::Port),
    (Some('u'), "udp", Opt::Udp),
    (Some('t'), "timestamp", Opt::Timestamp),
    (Some('q'), "quiet", Opt::Quiet),
    (None, "prefix", Opt::Prefix),
    (None, "tag", Opt::Tag),
    (None, "timeout", Opt::Timeout),
    (Some('h'), "help", Opt::Help),
    (None, "version", Opt::Version),
];

impl Opt {
    fn takes_value(self) -> bool {
        !matches!(self, Opt::Udp | Opt::Quiet | Opt::Help | Opt::Version)
    }

    fn long(self) -> &'static str {
        OPTS.iter()
            .find(|(_, _, opt)| *opt == self)
            .map_or("?", |(_, long, _)| long)
    }
}

/// Options as collected, before the final checks.
struct Raw {
    server: String,
    port: u16,
    udp: bool,
    timestamp: Option<Timestamp>,
    quiet: bool,
    prefix: String,
    tags: Vec<(String, String)>,
    timeout: Duration,
}

/// Parses the arguments (without the program name).
pub fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut args = args.into_iter().map(|arg| {
        arg.into().into_string().or_else(|bad| {
            usage(format!(
                "argument {:?} is not valid UTF-8",
                bad.to_string_lossy()
            ))
        })
    });
    let mut raw = Raw {
        server: "localhost".into(),
        port: graphyte::DEFAULT_PORT,
        udp: false,
        timestamp: None,
        quiet: false,
        prefix: String::new(),
        tags: Vec::new(),
        timeout: graphyte::DEFAULT_TIMEOUT,
    };
    let mut positionals = Vec::new();
    let mut options_ended = false;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if options_ended || !is_option(&arg) {
            positionals.push(arg);
        } else if arg == "--" {
            options_ended = true;
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let Some(&(_, _, opt)) = OPTS.iter().find(|(_, l, _)| *l == name) else {
                return usage(format!("unknown option '--{name}'"));
            };
            let value = match (opt.takes_value(), inline) {
                (true, Some(value)) => Some(value),
                (true, None) => Some(next_value(&mut args, opt)?),
                (false, Some(_)) => {
                    return usage(format!("option '--{name}' does not take a value"))
                }
                (false, None) => None,
            };
            if let Some(command) = apply(&mut raw, opt, value)? {
                return Ok(command);
            }
        } else {
            // A cluster of short options: flags, then at most one option
            // taking a value, which is the rest of the cluster or the next
            // argument.
            let cluster = &arg[1..];
            for (i, c) in cluster.char_indices() {
                let Some(&(_, _, opt)) = OPTS.iter().find(|(s, _, _)| *s == Some(c)) else {
                    return usage(format!("unknown option '-{c}'"));
                };
                let value = if opt.takes_value() {
                    let rest = &cluster[i + c.len_utf8()..];
                    Some(if rest.is_empty() {
                        next_value(&mut args, opt)?
                    } else {
                        rest.to_owned()
                    })
                } else {
                    None
                };
                if let Some(command) = apply(&mut raw, opt, value)? {
                    return Ok(command);
                }
                if opt.takes_value() {
                    // It took the rest of the cluster.
                    break;
                }
            }
        }
    }
    let mode = match positionals.as_slice() {
        [] => return usage("missing METRIC and VALUE (or - to read lines from standard input)"),
        [dash] if dash == "-" => Mode::Bulk,
        [metric] => return usage(format!("missing VALUE after METRIC {metric:?}")),
        [metric, value] => Mode::Single {
            metric: metric.clone(),
            value: Number::parse(value).or_else(|e| usage(format!("invalid VALUE: {e}")))?,
        },
        [_, _, extra, ..] => return usage(format!("unexpected argument {extra:?}")),
    };
    let format = LineFormat::new(&raw.prefix, &raw.tags).or_else(|e| {
        usage(match e {
            graphyte::Error::InvalidName { name, reason } => {
                format!("invalid --prefix {name:?}: {reason}")
            }
            graphyte::Error::InvalidTag {
                key, value, reason, ..
            } => format!("invalid --tag {key}={value}: {reason}"),
            other => other.to_string(),
        })
    })?;
    Ok(Command::Run(Options {
        server: raw.server,
        port: raw.port,
        udp: raw.udp,
        timestamp: raw.timestamp,
        quiet: raw.quiet,
        format,
        timeout: raw.timeout,
        mode,
    }))
}

/// Whether `arg` is an option (or `--`), rather than a positional: `-` alone
/// and negative numbers are positionals.
fn is_option(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    let numeric =
        rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') || rest.parse::<f64>().is_ok();
    !rest.is_empty() && !numeric
}

/// The argument after an option that needs a value.
fn next_value(
    args: &mut impl Iterator<Item = Result<String, UsageError>>,
    opt: Opt,
) -> Result<String, UsageError> {
    match args.next() {
        Some(value) => value,
        None => usage(format!("option '--{}' needs a value", opt.long())),
    }
}

/// The longest `--timeout`: a day, far beyond any useful wait, and small
/// enough that every deadline computed from it is a valid point in time.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Records one option; returns the command at once for `--help` and
/// `--version`.
fn apply(raw: &mut Raw, opt: Opt, value: Option<String>) -> Result<Option<Command>, UsageError> {
    let value = value.unwrap_or_default();
    match opt {
        Opt::Help => return Ok(Some(Command::Help)),
        Opt::Version => return Ok(Some(Command::Version)),
        Opt::Udp => raw.udp = true,
        Opt::Quiet => raw.quiet = true,
        Opt::Server => raw.server = parse_server(&value)?,
        Opt::Port => {
            raw.port = match value.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return usage(format!("invalid --port {value:?}: expected 1 to 65535")),
            }
        }
        Opt::Timestamp => {
            let ts = parse_timestamp(&value)
                .and_then(check_timestamp)
                .or_else(|e| usage(format!("invalid --timestamp: {e}")))?;
            raw.timestamp = Some(ts);
        }
        Opt::Prefix => raw.prefix = value,
        Opt::Tag => match value.split_once('=') {
            Some((key, tag_value)) if !key.is_empty() => {
                raw.tags.push((key.to_owned(), tag_value.to_owned()));
            }
            _ => return usage(format!("invalid --tag {value:?}: expected KEY=VALUE")),
        },
        Opt::Timeout => {
            raw.timeout = match value.parse::<f64>() {
                Ok(secs) if secs > 0.0 => match Duration::try_from_secs_f64(secs) {
                    Ok(d) if d.is_zero() => {
                        return usage(format!("invalid --timeout {value:?}: below 1 ns"))
                    }
                    Ok(d) if d <= MAX_TIMEOUT => d,
                    _ => {
                        return usage(format!(
                            "invalid --timeout {value:?}: too large, at most {} seconds",
                            MAX_TIMEOUT.as_secs()
                        ))
                    }
                },
                _ => {
                    return usage(format!(
                        "invalid --timeout {value:?}: expected a positive number of seconds"
                    ))
                }
            }
        }
    }
    Ok(None)
}

/// A host name or address; an IPv6 address may be bracketed. `host:port`
/// is refused with a hint rather than guessed at.
fn parse_server(value: &str) -> Result<String, UsageError> {
    let port_hint = || {
        usage(format!(
            "invalid --server {value:?}: give the port with -p/--port, not after a colon"
        ))
    };
    let host = match value.strip_prefix('[').map(|rest| rest.split_once(']')) {
        None => value,
        Some(Some((host, ""))) => host,
        Some(Some((_, tail))) if tail.starts_with(':') => return port_hint(),
        // A '[' without its ']', or something else after it.
        Some(_) => "",
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ']';
    if host.is_empty() || host.contains(bad) {
        return usage(format!(
            "invalid --server {value:?}: expected a host name or IP address"
        ));
    }
    if host.matches(':').count() == 1 {
        return port_hint();
    }
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().copied()) {
            Ok(Command::Run(options)) => options,
            other => panic!("{args:?}: expected options, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(UsageError(msg)) => msg,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    /// The line `options` would make for `name 1 1700000000`.
    fn line(options: &Options, name: &str) -> String {
        let mut buf = Vec::new();
        Number::Int(1)
            .format_into(
                &options.format,
                &mut buf,
                name,
                Timestamp::from(1_700_000_000),
            )
            .expect("valid line");
        String::from_utf8(buf).expect("ASCII")
    }

    #[test]
    fn defaults() {
        let o = run(&["foo.bar", "42"]);
        assert_eq!(o.server, "localhost");
        assert_eq!(o.port, 2003);
        assert!(!o.udp && !o.quiet);
        assert_eq!(o.timestamp, None);
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(
            o.mode,
            Mode::Single {
                metric: "foo.bar".into(),
                value: Number::Int(42)
            }
        );
        assert_eq!(line(&o, "m"), "m 1 1700000000\n");
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
            assert_eq!(o.port, 2004, "{args:?}");
            assert!(o.udp && o.quiet, "{args:?}");
            assert_eq!(
                o.timestamp,
                Some(Timestamp::from(1_700_000_001)),
                "{args:?}"
            );
            assert_eq!(o.timeout, Duration::from_millis(1500), "{args:?}");
            assert_eq!(line(&o, "m"), "pre.m;env=prod;host=a 1 1700000000\n");
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
        assert_eq!((o.port, o.server.as_str()), (2, "b"));
        assert_eq!(
            o.mode,
            Mode::Single {
                metric: "foo".into(),
                value: Number::Int(7)
            }
        );
        // The same tag key twice: the later one wins.
        let o = run(&["--tag", "k=1", "--tag", "k=2", "m", "1"]);
        assert_eq!(line(&o, "m"), "m;k=2 1 1700000000\n");
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
    }

    #[test]
    fn bulk_mode() {
        assert_eq!(run(&["-"]).mode, Mode::Bulk);
        assert_eq!(run(&["-s", "h", "-", "-q"]).mode, Mode::Bulk);
        assert_eq!(run(&["--", "-"]).mode, Mode::Bulk);
    }

    #[test]
    fn servers() {
        assert_eq!(run(&["-s", "::1", "m", "1"]).server, "::1");
        assert_eq!(run(&["-s", "[::1]", "m", "1"]).server, "::1");
        assert_eq!(run(&["-s", "10.0.0.1", "m", "1"]).server, "10.0.0.1");
        assert!(error(&["-s", "host:2004", "m", "1"]).contains("-p/--port"));
        assert!(error(&["-s", "", "m", "1"]).contains("--server"));
        assert!(error(&["-s", "a b", "m", "1"]).contains("--server"));
        assert!(error(&["-s", "[::1]:2004", "m", "1"]).contains("-p/--port"));
        for bad in ["[::1", "::1]", "[::1]x", "[[::1]]", "a[b"] {
            assert!(
                error(&["-s", bad, "m", "1"]).contains("expected a host name or IP address"),
                "{bad:?}"
            );
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
            (&["--tag", "k=", "foo", "1"], "invalid --tag k="),
            (&["--tag", "k;x=v", "foo", "1"], "invalid --tag"),
            (
                &["--prefix", "a..b", "foo", "1"],
                "invalid --prefix \"a..b\"",
            ),
            (&["--prefix", "a b", "-"], "invalid --prefix"),
        ];
        for (args, expected) in cases {
            let msg = error(args);
            assert!(
                msg.contains(expected),
                "{args:?}: {msg:?} lacks {expected:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_are_usage_errors() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'f', 0xff]);
        let args = vec![bad, OsString::from("1")];
        assert!(matches!(parse(args), Err(UsageError(m)) if m.contains("UTF-8")));
    }
}
