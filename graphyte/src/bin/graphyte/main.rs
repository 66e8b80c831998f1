//! `graphyte`: send metrics to Graphite (Carbon) from the command line.
//!
//! ```text
//! graphyte foo.bar 42                                  # to localhost:2003
//! graphyte -s graphite.example.com -p 2003 -t 1700000000 foo.bar 42.5
//! graphyte -u -q foo.bar 1                             # UDP, quiet
//! graphyte --prefix system.cli --tag env=prod --tag host=a foo.bar 1
//! some-producer | graphyte -s graphite.example.com -   # bulk from stdin
//! ```
//!
//! The options are those of `python -m graphyte` plus `--prefix`, `--tag`,
//! `--timeout` and `--version` (see [`args::HELP`]). Lines are built by the
//! graphyte library, so names, tags, values and timestamps follow its rules.
//!
//! Exit status: 0 when everything was sent; 1 when sending failed or some
//! bulk lines were refused; 2 for a usage error (nothing is sent then).
//! Every problem is reported as one line on standard error.

mod args;
mod bulk;
mod number;
mod wire;

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use graphyte::Timestamp;

use crate::args::{Command, Mode, Options};
use crate::number::Number;
use crate::wire::Wire;

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

/// Sends `metric value` and reports the exact line sent.
fn send_one(options: &Options, metric: &str, value: Number) -> ExitCode {
    let mut wire = Wire::from_options(options);
    let timestamp = options.timestamp.unwrap_or_else(Timestamp::now);
    if let Err(e) = wire.push(metric, value, timestamp) {
        // An unusable metric on the command line: nothing was sent.
        return usage_error(e);
    }
    let line = String::from_utf8_lossy(wire.pending())
        .trim_end()
        .to_owned();
    if let Err(e) = wire.flush() {
        note(format_args!("graphyte: {e}"));
        return ExitCode::from(EXIT_FAILED);
    }
    if !options.quiet {
        note(format_args!("sent {line:?} to {}", wire.address()));
    }
    ExitCode::SUCCESS
}

/// Sends the lines of standard input and prints the summary.
fn send_bulk(options: &Options) -> ExitCode {
    let mut wire = Wire::from_options(options);
    let outcome = bulk::run(
        io::stdin().lock(),
        &mut wire,
        options.timestamp,
        &mut io::stderr().lock(),
    );
    let stopped = match &outcome.failure {
        None => String::new(),
        Some(failure) => {
            note(format_args!("graphyte: {failure}"));
            match failure {
                bulk::Failure::Send { first_unsent, .. } => {
                    format!("; input from line {first_unsent} on was not sent")
                }
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
            wire.address()
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
