//! Sending over TLS (feature `tls`) to a rustls server on loopback, with
//! certificates made here by rcgen: delivery from sync and interval
//! senders, mutual TLS, reconnects, partial writes, and the refusals
//! (unknown CA, name mismatch, expired certificate, plaintext server,
//! stalled handshake, client certificate refused), each with nothing sent.
#![cfg(feature = "tls")]

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender, Tls, TlsTransport, Transport};
use rustls::CertificateError;

mod tls_support;
use tls_support::{server_config, server_config_for, Ca, TlsServer};

/// Generous: a handshake in a debug build on a loaded 2-core machine can
/// take a second or more, and a timeout would make a reconnect the tests do
/// not expect. The tests of timeouts set their own.
const TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers

fn config(port: u16, tls: Tls) -> Config {
    Config::new("127.0.0.1")
        .port(port)
        .timeout(TIMEOUT)
        .tls(tls)
}

/// `count` distinct lines `tls.N N 1700000000`.
fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("tls.{i} {i} 1700000000")).collect()
}

fn send_all(sender: &Sender, range: std::ops::Range<usize>) {
    for i in range {
        sender
            .send_at(&format!("tls.{i}"), i as u64, 1_700_000_000)
            .unwrap();
    }
}

/// The rustls error behind a send's error, if any.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

/// Sends one line that must be refused; returns the error.
fn refused(config: Config) -> Error {
    let sender = Sender::new(config).expect("valid settings");
    let e = sender
        .send_at("tls.refused", 1, 1_700_000_000)
        .expect_err("the server must be refused");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    e
}

fn invalid_config(config: Config) -> String {
    match Sender::new(config) {
        Err(Error::InvalidConfig(why)) => why,
        Err(other) => panic!("expected InvalidConfig, got {other:?}"),
        Ok(_) => panic!("expected InvalidConfig, got a sender"),
    }
}

// ---------------------------------------------------------------------------
// Delivery

#[test]
fn sync_sender_delivers_every_line_once_over_one_connection() {
    let ca = Ca::new("graphyte test CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    let sender = Sender::new(config(server.port, Tls::new().ca_pem(ca.pem()))).unwrap();
    assert_eq!(sender.address(), format!("tls://127.0.0.1:{}", server.port));
    send_all(&sender, 0..200);
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(200), expected(0..200));
    assert_eq!(server.connections(), 1);
    let stats = sender.stats();
    assert_eq!(
        (stats.sent, stats.send_errors, stats.reconnects),
        (200, 0, 0)
    );
}

#[test]
fn interval_sender_delivers_large_batches_exactly() {
    let ca = Ca::new("graphyte test CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    // Batches of 1000 lines (about 30 KB): several TLS records each.
    let sender = Sender::new(
        config(server.port, Tls::new().ca_pem(ca.pem())).interval(Duration::from_secs(60)),
    )
    .unwrap();
    send_all(&sender, 0..20_000);
    sender.flush().unwrap();
    assert_eq!(server.wait_for_lines(20_000), expected(0..20_000));
    send_all(&sender, 20_000..20_010);
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(20_010), expected(0..20_010));
    assert_eq!(server.connections(), 1);
    assert_eq!(sender.stats().sent, 20_010);
}

#[test]
fn server_name_verifies_a_host_reached_by_ip() {
    let ca = Ca::new("graphyte test CA");
    // The certificate names a DNS name only.
    let server = TlsServer::start(server_config(&ca.leaf(&["relay.internal"]), None));
    let tls = Tls::new().ca_pem(ca.pem());
    // By IP, the IP is verified: not in the certificate.
    let e = refused(config(server.port, tls.clone()));
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{e}"
    );
    // With the name given, it is accepted.
    let sender = Sender::new(config(server.port, tls.server_name("relay.internal"))).unwrap();
    sender.send_at("tls.named", 1, 1_700_000_000).unwrap();
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(1), ["tls.named 1 1700000000"]);
}

#[test]
fn ca_file_is_read_at_sender_new() {
    let ca = Ca::new("graphyte test CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    let dir = std::env::temp_dir().join(format!("graphyte-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    // Another CA first: a file may hold several.
    let other = Ca::new("another CA");
    std::fs::write(&path, format!("{}{}", other.pem(), ca.pem())).unwrap();
    let sender = Sender::new(config(server.port, Tls::new().ca_file(&path))).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    sender.send_at("tls.file", 1, 1_700_000_000).unwrap();
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(1), ["tls.file 1 1700000000"]);
}

// ---------------------------------------------------------------------------
// Mutual TLS

#[test]
fn mutual_tls_accepts_the_right_client_certificate() {
    let ca = Ca::new("graphyte test CA");
    let clients = Ca::new("graphyte client CA");
    let server = TlsServer::start(server_config(&ca.server(), Some(&clients)));
    let client = clients.leaf(&["client.internal"]);
    let tls = Tls::new()
        .ca_pem(ca.pem())
        .client_auth(client.cert.clone(), client.key.clone());
    for interval in [None, Some(Duration::from_secs(60))] {
        let mut config = config(server.port, tls.clone());
        if let Some(interval) = interval {
            config = config.interval(interval);
        }
        let sender = Sender::new(config).unwrap();
        send_all(&sender, 0..100);
        sender.stop().unwrap();
    }
    let mut want = expected(0..100);
    want.extend(expected(0..100));
    assert_eq!(server.wait_for_lines(200), want);
    assert!(server.errors().is_empty(), "{:?}", server.errors());
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate_or_with_a_stranger() {
    refusal("no client certificate");
    refusal("a client certificate from a CA the server does not trust");
}

/// In TLS 1.2 the server checks the client certificate within the
/// handshake (in TLS 1.3 after it, which the transport waits for).
#[test]
fn tls_1_2_delivers_and_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("graphyte test CA");
    let clients = Ca::new("graphyte client CA");
    let tls12 = &[&rustls::version::TLS12];
    refusal("TLS 1.2 without a client certificate");
    let server = TlsServer::start(server_config_for(tls12, &ca.server(), Some(&clients)));
    let client = clients.leaf(&["client.internal"]);
    let tls = Tls::new()
        .ca_pem(ca.pem())
        .client_auth(client.cert, client.key);
    let sender = Sender::new(config(server.port, tls).interval(Duration::from_secs(60))).unwrap();
    send_all(&sender, 0..3000);
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(3000), expected(0..3000));
}

// ---------------------------------------------------------------------------
// Refusals: a clear error, nothing sent

/// One refusal of the table: the server's side (from the server's CA and
/// the CA of the client certificates it accepts), the client's TLS settings
/// (from the same two), and what the error must be.
struct Refusal {
    name: &'static str,
    server: fn(&Ca, &Ca) -> rustls::ServerConfig,
    client: fn(&Ca, &Ca) -> Tls,
    /// The rustls error behind the send's error, where one is required.
    rustls: Option<fn(&rustls::Error) -> bool>,
    /// Text the error's message must contain ("" for none).
    says: &'static str,
    /// The server's own handshake errors, where it checks the client.
    server_errors: Option<usize>,
}

fn expired_leaf(ca: &Ca) -> tls_support::Leaf {
    ca.leaf_with(&["localhost", "127.0.0.1"], |params| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    })
}

/// Every refusal by a TLS server, in one table.
fn refusals() -> Vec<Refusal> {
    vec![
        Refusal {
            name: "an unknown CA",
            server: |ca, _| server_config(&ca.server(), None),
            client: |_, _| Tls::new().ca_pem(Ca::new("another CA").pem()),
            rustls: Some(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                )
            }),
            says: "TLS handshake failed",
            server_errors: None,
        },
        Refusal {
            name: "a name mismatch",
            server: |ca, _| server_config(&ca.server(), None),
            client: |ca, _| {
                Tls::new()
                    .ca_pem(ca.pem())
                    .server_name("graphite.example.com")
            },
            rustls: Some(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                )
            }),
            says: "",
            server_errors: None,
        },
        Refusal {
            name: "an expired certificate",
            server: |ca, _| server_config(&expired_leaf(ca), None),
            client: |ca, _| Tls::new().ca_pem(ca.pem()),
            rustls: Some(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. }
                    )
                )
            }),
            says: "",
            server_errors: None,
        },
        Refusal {
            name: "no client certificate",
            server: |ca, clients| server_config(&ca.server(), Some(clients)),
            client: |ca, _| Tls::new().ca_pem(ca.pem()),
            rustls: None,
            says: "refused the TLS client certificate",
            server_errors: Some(1),
        },
        Refusal {
            name: "a client certificate from a CA the server does not trust",
            server: |ca, clients| server_config(&ca.server(), Some(clients)),
            client: |ca, _| {
                let stranger = Ca::new("stranger CA").leaf(&["client.internal"]);
                Tls::new()
                    .ca_pem(ca.pem())
                    .client_auth(stranger.cert, stranger.key)
            },
            rustls: None,
            says: "refused the TLS client certificate",
            server_errors: Some(1),
        },
        Refusal {
            // In TLS 1.2 the server checks the client certificate within the
            // handshake (in TLS 1.3 after it, which the transport waits for).
            name: "TLS 1.2 without a client certificate",
            server: |ca, clients| {
                server_config_for(&[&rustls::version::TLS12], &ca.server(), Some(clients))
            },
            client: |ca, _| Tls::new().ca_pem(ca.pem()),
            rustls: None,
            says: "TLS handshake failed",
            server_errors: None,
        },
    ]
}

/// Runs the refusal `name` of the table against a fresh server: the send
/// fails with `Error::Io` carrying the rustls error and the words the table
/// gives, and the server received not one byte. Returns the server.
fn refusal(name: &str) -> TlsServer {
    let case = refusals()
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no refusal {name:?} in the table"));
    let ca = Ca::new("graphyte test CA");
    let clients = Ca::new("graphyte client CA");
    let server = TlsServer::start((case.server)(&ca, &clients));
    let e = refused(config(server.port, (case.client)(&ca, &clients)));
    if let Some(expected) = case.rustls {
        assert!(rustls_error(&e).is_some_and(expected), "{name}: {e}");
    }
    assert!(e.to_string().contains(case.says), "{name}: {e}");
    assert_eq!(server.received_bytes(), 0, "{name}: the client sent data");
    if let Some(n) = case.server_errors {
        assert_eq!(server.errors().len(), n, "{name}: {:?}", server.errors());
    }
    server
}

#[test]
fn an_unknown_ca_is_refused() {
    let server = refusal("an unknown CA");
    // The platform's roots do not know this CA either.
    if let Ok(sender) = Sender::new(config(server.port, Tls::new())) {
        sender.send_at("tls.refused", 1, 1_700_000_000).unwrap_err();
    }
    assert_eq!(server.received_bytes(), 0);
}

#[test]
fn a_name_mismatch_is_refused() {
    refusal("a name mismatch");
}

#[test]
fn an_expired_certificate_is_refused() {
    refusal("an expired certificate");
}

/// A plaintext TCP server: keeps what it reads; `answer` is written back
/// after the first read, and `read` says whether it reads at all.
struct PlainServer {
    port: u16,
    got: Arc<Mutex<Vec<u8>>>,
}

impl PlainServer {
    fn start(read: bool, answer: Option<&'static [u8]>) -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&got);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let kept = Arc::clone(&kept);
                thread::spawn(move || {
                    if !read {
                        // Holds the connection and never reads.
                        thread::sleep(Duration::from_secs(30));
                        drop(stream);
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    let mut answered = false;
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        if let (Some(answer), false) = (answer, answered) {
                            answered = true;
                            let _ = stream.write_all(answer);
                        }
                    }
                });
            }
        });
        PlainServer { port, got }
    }

    /// Whether any metric text reached the server.
    fn saw_a_metric(&self) -> bool {
        let got = self.got.lock().unwrap();
        got.windows(4).any(|w| w == b"tls.")
    }
}

#[test]
fn a_plaintext_server_that_answers_is_refused() {
    let ca = Ca::new("graphyte test CA");
    // What an HTTP server, or a line protocol that complains, says.
    let server = PlainServer::start(true, Some(b"HTTP/1.1 400 Bad Request\r\n\r\n"));
    let e = refused(config(server.port, Tls::new().ca_pem(ca.pem())));
    assert!(
        matches!(rustls_error(&e), Some(rustls::Error::InvalidMessage(_))),
        "{e}"
    );
    assert!(e.to_string().contains("is it a TLS port?"), "{e}");
    assert!(!server.saw_a_metric());
}

#[test]
fn a_plaintext_carbon_port_that_says_nothing_times_out() {
    let ca = Ca::new("graphyte test CA");
    // Carbon reads the ClientHello as a bad line and waits for more.
    let server = PlainServer::start(true, None);
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let e = refused(config(server.port, Tls::new().ca_pem(ca.pem())).timeout(timeout));
    let took = started.elapsed();
    let Error::Io { source, .. } = &e else {
        unreachable!()
    };
    assert_eq!(source.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(
        e.to_string()
            .contains("TLS handshake timed out after 500ms: the server accepted the connection"),
        "{e}"
    );
    assert!(took >= timeout && took < timeout * 3, "took {took:?}");
    assert!(!server.saw_a_metric());
}

#[test]
fn a_stalled_handshake_fails_within_the_timeout() {
    let ca = Ca::new("graphyte test CA");
    // Accepts the connection and never reads or answers.
    let server = PlainServer::start(false, None);
    let timeout = Duration::from_millis(500);
    for interval in [None, Some(Duration::from_millis(100))] {
        let mut config = config(server.port, Tls::new().ca_pem(ca.pem())).timeout(timeout);
        if let Some(interval) = interval {
            config = config.interval(interval);
        }
        let sender = Sender::new(config).unwrap();
        let started = Instant::now();
        match interval {
            None => {
                let e = sender.send_at("tls.stall", 1, 1_700_000_000).unwrap_err();
                assert!(e.to_string().contains("TLS handshake timed out"), "{e}");
            }
            Some(_) => {
                // The send is queued at once; the stop gives up after the timeout.
                sender.send_at("tls.stall", 1, 1_700_000_000).unwrap();
                let e = sender.stop().unwrap_err();
                assert!(matches!(e, Error::Undelivered { pending: 1, .. }), "{e}");
            }
        }
        let took = started.elapsed();
        assert!(took < timeout * 3, "took {took:?}");
    }
    assert!(!server.saw_a_metric());
}

// ---------------------------------------------------------------------------
// Reconnects and partial writes

#[test]
fn a_dropped_connection_is_reopened_with_no_line_lost_or_repeated() {
    let ca = Ca::new("graphyte test CA");
    let server = TlsServer::start(server_config(&ca.server(), None));
    let tls = Tls::new().ca_pem(ca.pem());
    // Synchronous.
    let sender = Sender::new(config(server.port, tls.clone())).unwrap();
    send_all(&sender, 0..10);
    server.wait_for_lines(10);
    server.drop_connections();
    send_all(&sender, 10..20);
    // (A server that closes with lines unread loses them, TLS or not.)
    server.wait_for_lines(20);
    server.drop_connections();
    send_all(&sender, 20..30);
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(30), expected(0..30));
    let stats = sender.stats();
    assert_eq!((stats.sent, stats.reconnects), (30, 2));
    // Interval mode.
    let server = TlsServer::start(server_config(&ca.server(), None));
    let sender = Sender::new(config(server.port, tls).interval(Duration::from_millis(50))).unwrap();
    for round in 0..5 {
        send_all(&sender, round * 1000..(round + 1) * 1000);
        sender.flush().unwrap();
        server.wait_for_lines((round + 1) * 1000);
        server.drop_connections();
    }
    sender.stop().unwrap();
    assert_eq!(server.wait_for_lines(5000), expected(0..5000));
    assert_eq!(sender.stats().sent, 5000);
    assert!(server.connections() >= 5, "{}", server.connections());
}

/// A write that times out reports the plaintext of the whole records that
/// reached the socket: exactly what the server decrypts.
#[test]
fn a_partial_write_counts_only_whole_records_on_the_socket() {
    let ca = Ca::new("graphyte test CA");
    let mut server_config = server_config(&ca.server(), None);
    // No session tickets: nothing unread on the client's socket when it
    // closes (which would reset the connection and lose data in flight).
    server_config.send_tls13_tickets = 0;
    let server = TlsServer::start(server_config);
    let tls = Tls::new().ca_pem(ca.pem());
    let mut transport =
        TlsTransport::new("127.0.0.1", server.port, Duration::from_millis(300), &tls).unwrap();
    transport
        .connect(Instant::now() + Duration::from_secs(5))
        .unwrap();
    server.paused.store(true, Ordering::SeqCst);
    // 32 MB: more than the socket buffers hold.
    let batch: Vec<u8> = (0..1_000_000)
        .flat_map(|i| format!("tls.p.{i:09} {i} 1700000000\n").into_bytes())
        .collect();
    let e = transport
        .send(&batch, Instant::now() + Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(e.source.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(e.written > 0 && e.written < batch.len(), "{e}");
    assert_eq!(e.written % (16 * 1024), 0, "not a record boundary: {e}");
    assert!(!transport.is_connected());
    server.paused.store(false, Ordering::SeqCst);
    // The server decrypts exactly the records counted as written.
    let started = Instant::now();
    while server.received_bytes() < e.written && started.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(100));
    let conns = server.conns.lock().unwrap();
    let got = &conns[0].lock().unwrap().data;
    assert_eq!(got.len(), e.written);
    assert!(batch.starts_with(got));
}

// ---------------------------------------------------------------------------
// Settings refused at Sender::new

#[test]
fn unusable_settings_are_refused_at_sender_new() {
    let ca = Ca::new("graphyte test CA");
    let leaf = ca.leaf(&["client.internal"]);
    let other = ca.leaf(&["other.internal"]);
    let tls = |tls: Tls| config(1, tls);
    let why = invalid_config(tls(Tls::new().ca_file("/nonexistent/ca.pem")));
    assert!(
        why.starts_with("TLS: cannot read CA file /nonexistent/ca.pem: "),
        "{why}"
    );
    let why = invalid_config(tls(Tls::new().ca_pem("not a certificate")));
    assert_eq!(why, "TLS: CA PEM: no CERTIFICATE block in the PEM");
    let why = invalid_config(tls(
        Tls::new().ca_pem("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    ));
    assert!(why.starts_with("TLS: CA PEM: bad PEM: "), "{why}");
    // The key where the certificate should be.
    let why = invalid_config(tls(Tls::new().ca_pem(leaf.key.clone())));
    assert_eq!(why, "TLS: CA PEM: no CERTIFICATE block in the PEM");
    let why = invalid_config(tls(Tls::new().ca_pem(ca.pem()).server_name("not a name")));
    assert!(why.starts_with("TLS server name \"not a name\""), "{why}");
    let why = invalid_config(tls(Tls::new()
        .ca_pem(ca.pem())
        .client_auth(leaf.cert.clone(), "no key")));
    assert!(why.starts_with("TLS client key: "), "{why}");
    let why = invalid_config(tls(Tls::new()
        .ca_pem(ca.pem())
        .client_auth("no cert", leaf.key.clone())));
    assert!(why.starts_with("TLS client certificate: "), "{why}");
    let why = invalid_config(tls(Tls::new()
        .ca_pem(ca.pem())
        .client_auth(leaf.cert.clone(), other.key.clone())));
    assert_eq!(
        why,
        "TLS client key: it is not the key of the client certificate"
    );
    let why = invalid_config(tls(Tls::new().ca_pem(ca.pem())).protocol(graphyte::Protocol::Udp));
    assert!(
        why.contains("cannot be combined with Protocol::Udp"),
        "{why}"
    );
    let why = invalid_config(
        tls(Tls::new().ca_pem(ca.pem())).transport(graphyte::CaptureTransport::new()),
    );
    assert!(why.contains("a transport of your own"), "{why}");
    // The key never shows in Debug.
    let shown = format!("{:?}", Tls::new().client_auth(leaf.cert, leaf.key.clone()));
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
