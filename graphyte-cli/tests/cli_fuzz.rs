//! The command-line tool fed random arguments and random standard input:
//! it never panics, never hangs, and always exits 0, 1 or 2.
//!
//! Arguments are drawn (seeded xorshift, so a failure can be replayed with
//! `GRAPHYTE_CLI_FUZZ_SEED`) from every flag in every spelling, broken
//! flags, and values that are numbers, non-numbers, hostile names and tags.
//! Every run starts with `-s 127.0.0.1 -p PORT --timeout 0.3` pointing at a
//! loopback listener, so the random flags that follow may send somewhere
//! real, somewhere refused, or nowhere; no run touches the network beyond
//! loopback. `GRAPHYTE_CLI_FUZZ_RUNS` sets the number of runs (default 300).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::rng::Rng;
use support::LineListener;

const BIN: &str = env!("CARGO_BIN_EXE_graphyte");

const FLAGS: &[&str] = &[
    "-s",
    "--server",
    "-p",
    "--port",
    "-u",
    "--udp",
    "-t",
    "--timestamp",
    "-q",
    "--quiet",
    "--prefix",
    "--tag",
    "--timeout",
    "--version",
    "-h",
    "--help",
    "--",
    "-",
    "-x",
    "--bogus",
    "-uq",
    "-qu",
    "-sp",
    "-p0",
    "-p99999",
    "-p2003x",
    "--port=",
    "--port=1",
    "--tag=",
    "--tag==",
    "--tag=k=v",
    "--tag=k",
    "--timeout=-1",
    "--timeout=nan",
    "--timeout=0",
    "--timeout=1e9",
    "--prefix=",
    "--prefix=a..b",
    "--prefix=sys",
    "-t-1",
    "-t0",
    "-t1700000000",
    "-t1e20",
    "--server=::1",
    "--server=[::1]",
    "-s[::1",
    "--=",
    "---",
];

const VALUES: &[&str] = &[
    "127.0.0.1",
    "::1",
    "[::1]",
    "0",
    "1",
    "-1",
    "42",
    "4.5",
    "-0.0",
    "1e16",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "0x10",
    "1_000",
    "18446744073709551616",
    "-9223372036854775809",
    "1700000000",
    "-5",
    "foo.bar",
    "a..b",
    ".a",
    "a.",
    "a b",
    "x;k=v",
    "x;k=",
    "x;=v",
    "x;k=~v",
    "\n",
    "a\nb 1 2",
    "é.名",
    "",
    " ",
    "\u{2028}",
    "k=v",
    "=",
    "a=b=c",
    "-",
];

/// Random standard input for bulk mode: good lines, bad lines and garbage.
fn stdin_bytes(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(40) {
        match rng.below(8) {
            0 => out.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            1 => out.extend_from_slice(b"# a comment\n"),
            2 => out.extend_from_slice(b"\r\n"),
            3 => out.extend(std::iter::repeat_n(b'a', rng.below(70_000))),
            _ => {
                let line = format!(
                    "{} {} {}",
                    rng.pick(VALUES),
                    rng.pick(VALUES),
                    if rng.below(2) == 0 {
                        rng.pick(VALUES)
                    } else {
                        ""
                    }
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
        if rng.below(4) != 0 {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn random_arguments_and_stdin_never_panic() {
    let seed = std::env::var("GRAPHYTE_CLI_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x2545_f491_4f6c_dd1d);
    let runs: usize = std::env::var("GRAPHYTE_CLI_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let listener = LineListener::start();
    let port = listener.port().to_string();
    let mut rng = Rng(seed);
    let mut codes = [0usize; 3];
    for run in 0..runs {
        let mut args: Vec<String> = ["-s", "127.0.0.1", "-p", &port, "--timeout", "0.3"]
            .map(String::from)
            .to_vec();
        for _ in 0..rng.below(7) {
            let token = if rng.below(2) == 0 {
                rng.pick(FLAGS)
            } else {
                rng.pick(VALUES)
            };
            args.push(token.to_owned());
        }
        // A third of the runs are well-formed bulk loads of random input, a
        // third single sends of random values; the rest are random tokens.
        match rng.below(3) {
            0 => {
                args.truncate(6);
                if rng.below(2) == 0 {
                    args.push(rng.pick(&["-q", "-u", "--prefix=p", "--tag=k=v"]).into());
                }
                args.push("-".into());
            }
            1 => {
                args.push("--".into());
                args.push(rng.pick(VALUES).into());
                args.push(rng.pick(VALUES).into());
            }
            _ => {}
        }
        let input = stdin_bytes(&mut rng);
        let case = format!(
            "run {run} (seed {seed}): args {:?}, {} bytes of stdin",
            &args[6..],
            input.len()
        );

        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start graphyte");
        let mut stdin = child.stdin.take().expect("stdin");
        // The tool may exit without reading its input: a broken pipe is fine.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        // Drain both outputs while it runs, so a full pipe cannot block it.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let _ = pipe.read_to_end(&mut out);
                out
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{case}: still running after 20 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let _ = writer.join();
        let _ = stdout.join();
        let stderr = stderr.join().expect("stderr reader");
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        match status.code() {
            Some(code @ 0..=2) => codes[code as usize] += 1,
            other => panic!("{case}: exit status {other:?}\nstderr: {stderr}"),
        }
    }
    eprintln!(
        "{runs} runs: exit 0 x{}, exit 1 x{}, exit 2 x{}",
        codes[0], codes[1], codes[2]
    );
    assert!(
        codes.iter().all(|&c| c > 0),
        "every exit code should occur: {codes:?}"
    );
}
