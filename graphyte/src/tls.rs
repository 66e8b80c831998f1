//! [`Tls`]: the settings of a TLS connection (feature `tls`), checked and
//! turned into a rustls client configuration when the sender is made.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

/// How to secure the connection to the server with TLS (feature `tls`):
/// which certificate authorities to trust, which name to verify, and
/// optionally a client certificate. Given to [`Config::tls`](crate::Config::tls).
///
/// The connection is made with [rustls](https://docs.rs/rustls) and its
/// `ring` crypto provider (TLS 1.3, and TLS 1.2 for older servers). The
/// server's certificate must chain to a trusted root, be valid now and name
/// the server: by default the host of the [`Config`](crate::Config) (a DNS
/// name, or an IP address, which must then be in the certificate), or the
/// name given to [`server_name`](Tls::server_name). A server that fails any
/// of these checks gets no line: the connect fails with
/// [`Error::Io`](crate::Error::Io) saying why, and the sender retries with
/// backoff, never in plaintext.
///
/// Settings that cannot work (an unreadable CA file, PEM without a
/// certificate, a key that does not match its certificate, an invalid
/// server name) are refused by [`Sender::new`](crate::Sender::new) and
/// [`init`](crate::init) with [`Error::InvalidConfig`](crate::Error::InvalidConfig)
/// saying what is wrong; nothing is sent.
///
/// The README's example (compiled here, under the feature):
///
/// ```no_run
/// use graphyte::{Config, Tls};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let tls = Tls::new()                        // trust the system's root certificates...
///         .ca_file("/etc/graphyte/ca.pem")        // ...or only the CA in this PEM file
///         .server_name("relay.internal")          // the name in the relay's certificate (here reached by IP)
///         .client_auth(                           // mutual TLS, for a relay that asks for a client certificate
///             std::fs::read("/etc/graphyte/client.pem")?,
///             std::fs::read("/etc/graphyte/client.key")?,
///         );
///     graphyte::init(Config::new("10.0.0.7:2443").tls(tls))?;
///     graphyte::send("foo.bar", 42)?;
///     graphyte::shutdown()?;
///     Ok(())
/// }
/// ```
///
/// `Tls::new()` alone verifies the host of the `Config` against the
/// platform's roots:
///
/// ```no_run
/// let sender = graphyte::Sender::new(
///     graphyte::Config::new("relay.example.com:2443").tls(graphyte::Tls::new()),
/// )?;
/// sender.send("foo.bar", 42)?;
/// sender.stop()?;
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    roots: Roots,
    server_name: Option<String>,
    client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

/// Which certificate authorities are trusted.
#[derive(Clone, Debug)]
enum Roots {
    /// The operating system's store.
    Platform,
    /// The CA certificates in this PEM file.
    File(PathBuf),
    /// The CA certificates in this PEM text.
    Pem(Vec<u8>),
}

impl Tls {
    /// TLS that trusts the platform's root certificates (on Linux the
    /// system's CA bundle, e.g. `/etc/ssl/certs`; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override it), read when the sender is made. A platform
    /// store with no usable certificate is refused then.
    pub fn new() -> Tls {
        Tls {
            roots: Roots::Platform,
            server_name: None,
            client_auth: None,
        }
    }

    /// Trusts only the CA certificates in the PEM file at `path` (one or
    /// more `CERTIFICATE` blocks), instead of the platform's. The file is
    /// read when the sender is made.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Tls {
        self.roots = Roots::File(path.into());
        self
    }

    /// Trusts only the CA certificates in `pem` (one or more `CERTIFICATE`
    /// blocks), instead of the platform's.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Tls {
        self.roots = Roots::Pem(pem.into());
        self
    }

    /// The name the server's certificate must carry, when it is not the
    /// host connected to: typically a relay reached by IP address whose
    /// certificate has a DNS name. Also sent as SNI (for a DNS name).
    pub fn server_name(mut self, name: impl Into<String>) -> Tls {
        self.server_name = Some(name.into());
        self
    }

    /// Mutual TLS: presents this client certificate (PEM: the certificate,
    /// then any intermediates) with its private key (PEM: PKCS#8, PKCS#1 or
    /// SEC1) when the server asks for one.
    pub fn client_auth(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Tls {
        self.client_auth = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The rustls configuration and the name to verify for `host`, or what
    /// is wrong with the settings.
    pub(crate) fn client_config(&self, host: &str) -> Result<ClientSetup, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = self.root_store()?;
        let client_cert = Arc::new(ClientCert {
            key: match &self.client_auth {
                Some((cert, key)) => Some(certified_key(&provider, cert, key)?),
                None => None,
            },
            requested: AtomicBool::new(false),
        });
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
            format!("TLS server name {name:?} is neither a DNS name nor an IP address: {e}")
        })?;
        // The provider is given, not taken from the process default, so an
        // application that also has aws-lc-rs in its tree does not panic here.
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::clone(&client_cert) as Arc<dyn ResolvesClientCert>);
        Ok(ClientSetup {
            config: Arc::new(config),
            server_name,
            client_cert,
        })
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::Platform => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let mut why = String::new();
                    for e in &found.errors {
                        why.push_str("; ");
                        why.push_str(&e.to_string());
                    }
                    return Err(format!(
                        "TLS: no usable root certificate in the platform's store{why}; \
                         give the CA with Tls::ca_file or Tls::ca_pem"
                    ));
                }
            }
            Roots::File(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("TLS: cannot read CA file {}: {e}", path.display()))?;
                add_cas(&mut store, &pem)
                    .map_err(|e| format!("TLS: CA file {}: {e}", path.display()))?;
            }
            Roots::Pem(pem) => add_cas(&mut store, pem).map_err(|e| format!("TLS: CA PEM: {e}"))?,
        }
        Ok(store)
    }
}

impl Default for Tls {
    fn default() -> Tls {
        Tls::new()
    }
}

impl fmt::Debug for Tls {
    /// Never shows the client key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::Platform => "platform".to_owned(),
            Roots::File(path) => format!("file {}", path.display()),
            Roots::Pem(pem) => format!("PEM ({} bytes)", pem.len()),
        };
        f.debug_struct("Tls")
            .field("roots", &roots)
            .field("server_name", &self.server_name)
            .field("client_auth", &self.client_auth.is_some())
            .finish()
    }
}

/// What a TLS transport needs to connect.
pub(crate) struct ClientSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) client_cert: Arc<ClientCert>,
}

/// Certificates in `pem`, or why there are none.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the PEM".into());
    }
    Ok(certs)
}

/// Adds the CA certificates of `pem` to `store`.
fn add_cas(store: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    for (i, cert) in certificates(pem)?.into_iter().enumerate() {
        store
            .add(cert)
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(())
}

/// The client certificate chain of `cert_pem` with the key of `key_pem`.
fn certified_key(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, String> {
    let certs = certificates(cert_pem).map_err(|e| format!("TLS client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("TLS client key: {e}"))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS client key: {e}"))?;
    let certified = CertifiedKey::new(certs, key);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("TLS client key: it is not the key of the client certificate".into())
        }
        Err(rustls::Error::InconsistentKeys(_)) | Ok(()) => Ok(Arc::new(certified)),
        Err(e) => Err(format!("TLS client certificate: {e}")),
    }
}

/// The client certificate, if any, and whether the server asked for one in
/// the latest handshake (in TLS 1.3 the server may still refuse it after the
/// client has finished its handshake, so the transport waits for its answer).
#[derive(Debug)]
pub(crate) struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    pub(crate) requested: AtomicBool,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}
