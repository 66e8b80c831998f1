//! `graphyte`: send metrics to Graphite (Carbon) from the command line.
//!
//! ```text
//! graphyte foo.bar 42                                  # to localhost:2003
//! graphyte -s graphite.example.com -p 2003 -t 1700000000 foo.bar 42.5
//! graphyte -u -q foo.bar 1                             # UDP, quiet
//! graphyte --prefix system.cli --tag env=prod --tag host=a foo.bar 1
//! graphyte -s relay.example.com -p 2443 --tls --ca ca.pem foo.bar 1  # feature tls
//! some-producer | graphyte -s graphite.example.com -   # bulk from stdin
//! ```
//!
//! The options are those of `python -m graphyte` plus `--prefix`, `--tag`,
//! `--timeout`, `--version` and, with the `tls` feature, `--tls`, `--ca`,
//! `--server-name`, `--cert` and `--key` (see [`args::HELP`]). Everything goes through
//! a graphyte [`Sender`](graphyte::Sender), so names, tags, values,
//! timestamps and the server address follow the library's rules.
//!
//! Exit status: 0 when everything was sent; 1 when sending failed or some
//! bulk lines were refused; 2 for a usage error (nothing is sent then).
//! Every problem is reported as one line on standard error.
//!
//! | file | its one job |
//! |---|---|
//! | `main.rs` | modes, messages, exit status |
//! | `args.rs` | the command line (lexopt) and the help |
//! | `sender.rs` | options to a graphyte `Config` and `Sender` |
//! | `number.rs` | values and timestamps as typed |
//! | `bulk.rs` | bulk mode: standard input, line by line |
//! | `delivery.rs` | bulk mode: through an interval `Sender`, and when to give up |

mod args;
mod bulk;
mod delivery;
mod number;
mod sender;

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use graphyte::Timestamp;

use crate::args::{Command, Mode, Options};
use crate::delivery::Delivery;
use crate::number::Number;

/// Exit status: sending failed, or some bulk lines were refused.
const EXIT_FAILED: u8 = 1;
/// Exit status: the command line (or the one metric on it) is unusable.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let options = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            // A closed stdout (`graphyte -h | head -1`) is not an error here.
            let _ = io::stdout().lock().write_all(args::HELP.as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            let _ = writeln!(
                io::stdout().lock(),
                "graphyte {}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(e),
    };
    match &options.mode {
        Mode::Single { metric, value } => send_one(&options, metric, *value),
        Mode::Bulk => send_bulk(&options),
    }
}

/// Sends `metric value` synchronously and reports the exact line sent.
fn send_one(options: &Options, metric: &str, value: Number) -> ExitCode {
    let sender = match sender::config_with_tls(options).and_then(|c| sender::start(options, c)) {
        Ok(sender) => sender,
        Err(e) => return usage_error(e),
    };
    let timestamp = options.timestamp.unwrap_or_else(Timestamp::now);
    let mut line = Vec::new();
    if let Err(e) = value.format_into(sender.line_format(), &mut line, metric, timestamp) {
        // An unusable metric on the command line: nothing was sent.
        return usage_error(e);
    }
    if let Err(e) = value.send(&sender, metric, timestamp) {
        note(format_args!("graphyte: {e}"));
        return ExitCode::from(EXIT_FAILED);
    }
    if !options.quiet {
        let line = String::from_utf8_lossy(&line);
        note(format_args!(
            "sent {:?} to {}",
            line.trim_end(),
            sender.address()
        ));
    }
    ExitCode::SUCCESS
}

/// Sends the lines of standard input and prints the summary.
fn send_bulk(options: &Options) -> ExitCode {
    let config = sender::config(options);
    let transport = match sender::transport(options, &config) {
        Ok(transport) => transport,
        Err(e) => return usage_error(e),
    };
    let (config, watch) = Delivery::configure(config, transport);
    let mut delivery = match sender::start(options, config) {
        Ok(sender) => Delivery::new(sender, watch, options.timeout),
        Err(e) => return usage_error(e),
    };
    let outcome = bulk::run(
        io::stdin().lock(),
        &mut delivery,
        options.timestamp,
        &mut io::stderr().lock(),
    );
    let stopped = match &outcome.failure {
        None => String::new(),
        Some(failure) => {
            note(format_args!("graphyte: {failure}"));
            match failure {
                bulk::Failure::Send(undelivered) => format!(
                    "; input from line {} on was not sent",
                    undelivered.first_unsent
                ),
                bulk::Failure::Read { line, .. } => {
                    format!("; input after line {line} was not read")
                }
            }
        }
    };
    if !options.quiet {
        note(format_args!(
            "sent {}, refused {} ({}){stopped}",
            outcome.sent,
            outcome.refused,
            delivery.address()
        ));
    }
    if outcome.failure.is_none() && outcome.refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Reports a usage error, with the usage and a pointer to `--help`; exit
/// status 2.
fn usage_error(e: impl fmt::Display) -> ExitCode {
    note(format_args!(
        "graphyte: {e}\n{}\nTry 'graphyte --help' for more information.",
        args::USAGE
    ));
    ExitCode::from(EXIT_USAGE)
}

/// Writes one message to standard error. A failure to write it (stderr
/// closed) is ignored: there is nowhere left to report it.
fn note(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{message}");
}
