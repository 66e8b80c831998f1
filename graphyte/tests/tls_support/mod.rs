//! Test support for TLS (feature `tls`), shared by graphyte's tests/tls.rs
//! and graphyte-cli's tests/cli_tls.rs: certificates made at run time by
//! rcgen, and a rustls server on loopback that records what it receives.
#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

// ---------------------------------------------------------------------------
// Certificates

/// A certificate authority made for one test.
pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    pub fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "graphyte test");
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// The usual server certificate: `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Leaf {
        self.leaf(&["localhost", "127.0.0.1"])
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `leaf`; with `client_ca`, it requires
/// a client certificate from that CA.
pub fn server_config(leaf: &Leaf, client_ca: Option<&Ca>) -> ServerConfig {
    server_config_for(rustls::DEFAULT_VERSIONS, leaf, client_ca)
}

pub fn server_config_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
    leaf: &Leaf,
    client_ca: Option<&Ca>,
) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.issuer.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).unwrap()
}

// ---------------------------------------------------------------------------
// A rustls server that records what it receives

/// What one connection to the test server got.
#[derive(Default, Debug)]
pub struct Received {
    /// Decrypted application data.
    pub data: Vec<u8>,
    /// Why the connection ended badly, if it did.
    pub error: Option<String>,
}

pub struct TlsServer {
    pub port: u16,
    pub conns: Arc<Mutex<Vec<Arc<Mutex<Received>>>>>,
    /// Bumped to make every open connection close.
    kill: Arc<AtomicUsize>,
    /// While set, connections read nothing.
    pub paused: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl TlsServer {
    pub fn start(config: ServerConfig) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = TlsServer {
            port: listener.local_addr().unwrap().port(),
            conns: Arc::default(),
            kill: Arc::default(),
            paused: Arc::default(),
            stopped: Arc::default(),
        };
        let config = Arc::new(config);
        let (conns, kill, paused, stopped) = (
            Arc::clone(&server.conns),
            Arc::clone(&server.kill),
            Arc::clone(&server.paused),
            Arc::clone(&server.stopped),
        );
        thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let received = Arc::new(Mutex::new(Received::default()));
                        conns.lock().unwrap().push(Arc::clone(&received));
                        let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
                        let (kill, paused, stopped) =
                            (Arc::clone(&kill), Arc::clone(&paused), Arc::clone(&stopped));
                        thread::spawn(move || {
                            serve(stream, conn, &received, &kill, &paused, &stopped)
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        server
    }

    /// The complete lines each connection received, in connection order: a
    /// cut line at the end of a connection is dropped, as Carbon does.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for conn in self.conns.lock().unwrap().iter() {
            let data = &conn.lock().unwrap().data;
            let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let text = std::str::from_utf8(&data[..whole]).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
        lines
    }

    /// Bytes of application data received on all connections.
    pub fn received_bytes(&self) -> usize {
        let conns = self.conns.lock().unwrap();
        conns.iter().map(|c| c.lock().unwrap().data.len()).sum()
    }

    pub fn errors(&self) -> Vec<String> {
        let conns = self.conns.lock().unwrap();
        conns
            .iter()
            .filter_map(|c| c.lock().unwrap().error.clone())
            .collect()
    }

    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Waits until `n` complete lines have arrived.
    pub fn wait_for_lines(&self, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let lines = self.lines();
            if lines.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes every open connection (with close_notify), as a server that
    /// restarts does.
    pub fn drop_connections(&self) {
        self.kill.fetch_add(1, Ordering::SeqCst);
        // Connections notice within one read timeout.
        thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// One connection of the test server: handshake, then read until the end.
fn serve(
    mut stream: TcpStream,
    mut conn: ServerConnection,
    received: &Mutex<Received>,
    kill: &AtomicUsize,
    paused: &AtomicBool,
    stopped: &AtomicBool,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let generation = kill.load(Ordering::SeqCst);
    let mut buf = [0u8; 4096];
    loop {
        if stopped.load(Ordering::SeqCst) || kill.load(Ordering::SeqCst) != generation {
            conn.send_close_notify();
            let _ = conn.write_tls(&mut stream);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        while conn.wants_write() {
            if conn.write_tls(&mut stream).is_err() {
                return;
            }
        }
        if paused.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match conn.read_tls(&mut stream) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                received.lock().unwrap().error = Some(e.to_string());
                return;
            }
        }
        match conn.process_new_packets() {
            Ok(state) => {
                let mut left = state.plaintext_bytes_to_read();
                while left > 0 {
                    let n = conn.reader().read(&mut buf).unwrap();
                    received.lock().unwrap().data.extend_from_slice(&buf[..n]);
                    left -= n;
                }
                if state.peer_has_closed() {
                    return;
                }
            }
            Err(e) => {
                received.lock().unwrap().error = Some(e.to_string());
                // The alert, so the client learns why.
                let _ = conn.write_tls(&mut stream);
                return;
            }
        }
    }
}
