//! The `graphyte` tool over TLS (feature `tls`): `--tls`, `--ca`,
//! `--server-name`, `--cert`, `--key`, run as a subprocess against a rustls
//! server on loopback (graphyte's test support), with certificates made at
//! run time.
#![cfg(feature = "tls")]

#[path = "../../graphyte/tests/tls_support/mod.rs"]
mod tls_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tls_support::{server_config, Ca, TlsServer};

const BIN: &str = env!("CARGO_BIN_EXE_graphyte");

/// A directory of this test's own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("graphyte-cli-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A usage error ends the tool before it reads.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

#[test]
fn sends_one_line_over_tls() {
    let dir = Dir::new("one");
    let ca = Ca::new("graphyte cli CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    let ca_file = dir.file("ca.pem", &ca.pem());
    let port = server.port.to_string();
    let args = [
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "--tls",
        "--ca",
        &ca_file,
        "-t",
        "1700000000",
        "foo.bar",
        "42",
    ];
    let output = run(&args, b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!("sent \"foo.bar 42 1700000000\" to tls://127.0.0.1:{port}\n")
    );
    assert_eq!(server.wait_for_lines(1), ["foo.bar 42 1700000000"]);
}

#[test]
fn bulk_over_mutual_tls_with_a_server_name() {
    let dir = Dir::new("bulk");
    let ca = Ca::new("graphyte cli CA");
    let clients = Ca::new("graphyte cli client CA");
    let server = TlsServer::start(server_config(&ca.leaf(&["relay.internal"]), Some(&clients)));
    let client = clients.leaf(&["cli.internal"]);
    let (ca_file, cert, key) = (
        dir.file("ca.pem", &ca.pem()),
        dir.file("client.pem", &client.cert),
        dir.file("client.key", &client.key),
    );
    let port = server.port.to_string();
    let input: String = (0..2000)
        .map(|i| format!("bulk.{i} {i} 1700000000\n"))
        .collect();
    let args = [
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "--tls",
        "--ca",
        &ca_file,
        "--server-name",
        "relay.internal",
        "--cert",
        &cert,
        "--key",
        &key,
        "-",
    ];
    let output = run(&args, input.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!("sent 2000, refused 0 (tls://127.0.0.1:{port})\n")
    );
    let want: Vec<String> = input.lines().map(str::to_owned).collect();
    assert_eq!(server.wait_for_lines(2000), want);
    // Without the client certificate the server refuses, and gets nothing.
    let without: Vec<&str> = args[..args.len() - 5]
        .iter()
        .copied()
        .chain(["--timeout", "1", "-"])
        .collect();
    let output = run(&without, input.as_bytes());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused the TLS client certificate"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.wait_for_lines(2000).len(), 2000);
}

#[test]
fn an_unknown_ca_is_exit_1_and_sends_nothing() {
    let dir = Dir::new("unknown");
    let ca = Ca::new("graphyte cli CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    let other = dir.file("other.pem", &Ca::new("another CA").pem());
    let port = server.port.to_string();
    let output = run(
        &[
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "--tls",
            "--ca",
            &other,
            "foo",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!("graphyte: sending to tls://127.0.0.1:{port} failed: TLS handshake failed: invalid peer certificate")),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(server.received_bytes(), 0);
}

#[test]
fn unusable_tls_files_are_usage_errors() {
    let dir = Dir::new("usage");
    let ca = Ca::new("graphyte cli CA");
    let not_pem = dir.file("not.pem", "hello\n");
    let client = ca.leaf(&["cli.internal"]);
    let cert = dir.file("client.pem", &client.cert);
    let missing = "/nonexistent/graphyte/ca.pem";
    assert!(!exists(missing));
    let cases: &[(&[&str], &str)] = &[
        (
            &["--tls", "--ca", missing],
            "TLS: cannot read CA file /nonexistent/graphyte/ca.pem: ",
        ),
        (
            &["--tls", "--ca", &not_pem],
            "no CERTIFICATE block in the PEM",
        ),
        (
            &["--tls", "--cert", &cert, "--key", missing],
            "cannot read --key \"/nonexistent/graphyte/ca.pem\": ",
        ),
        (
            &["--tls", "--cert", &cert, "--key", &not_pem],
            "TLS client key: ",
        ),
        (
            &["--tls", "--server-name", "a b"],
            "TLS server name \"a b\"",
        ),
        (&["--ca", &not_pem], "option '--ca' needs --tls"),
    ];
    for (options, expected) in cases {
        for mode in [&["foo", "1"][..], &["-"]] {
            let mut args = vec!["-s", "127.0.0.1", "-p", "9"];
            args.extend_from_slice(options);
            args.extend_from_slice(mode);
            let output = run(&args, b"foo 1 1700000000\n");
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
            assert!(
                message.contains(expected),
                "{args:?}: {message:?} lacks {expected:?}"
            );
        }
    }
}
