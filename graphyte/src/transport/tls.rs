//! One persistent TLS connection (feature `tls`).

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

use super::resolve::Resolver;
use super::tcp::{connect_within, write_all_within, MIN_TIMEOUT};
use super::{deadline_passed, host_port, SendError, Transport};
use crate::error::Error;
use crate::tls::{ClientCert, Tls};

/// The most plaintext rustls puts in one TLS record (2^14 bytes). Each
/// send is encrypted this much at a time, so every chunk is exactly one
/// record, which the server either decrypts whole or not at all.
const RECORD: usize = 16 * 1024;

/// Shortest wait, in TLS 1.3 after a handshake in which the server asked
/// for a client certificate, for the server to accept it or refuse it.
const MIN_CONFIRM: Duration = Duration::from_millis(50);
/// Longest such wait (when the server says nothing, it accepted).
const MAX_CONFIRM: Duration = Duration::from_secs(1);

/// Sends lines over one persistent TLS connection (feature `tls`), with
/// the guarantees of [`TcpTransport`](crate::TcpTransport): one connection,
/// re-opened (and the host resolved again) after any error; no connect,
/// handshake or write longer than the timeout or past its call's
/// deadline; a connection the server has closed is noticed before writing;
/// the host resolved within the timeout, every address tried, and resolved
/// again every [`dns_refresh`](TlsTransport::dns_refresh) period while
/// connected, moving (with a new handshake) to a new address.
///
/// Made by [`Sender::new`](crate::Sender::new) for a
/// [`Config::tls`](crate::Config::tls), or directly to wrap it in a
/// transport of your own.
///
/// A handshake that fails (an unknown CA, a name mismatch, an expired
/// certificate, a plaintext server, a client certificate the server
/// refuses) fails the connect with an [`io::Error`] whose source is the
/// [`rustls::Error`]; one that does not finish within the timeout (a
/// server that accepts the connection and never answers, like a plaintext
/// Carbon port) fails with [`TimedOut`](io::ErrorKind::TimedOut). Nothing
/// is sent on such a connection, and it is never retried in plaintext.
///
/// **Written bytes.** A send encrypts its bytes 16 KiB at a time, one TLS
/// record each, and writes the records in one go. When the write fails,
/// [`SendError::written`] counts the plaintext of the records that were
/// written to the socket whole: a record cut short cannot be decrypted by
/// the server, so its lines are sent again, and those before it are not.
pub struct TlsTransport {
    host: String,
    port: u16,
    timeout: Duration,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    client_cert: Arc<ClientCert>,
    conn: Option<Live>,
    /// The records of the send in progress.
    records: Vec<u8>,
    /// For each record of `records`: where it ends, and how much plaintext
    /// the records up to it carry.
    ends: Vec<(usize, usize)>,
    resolver: Resolver,
}

/// An open connection.
struct Live {
    stream: TcpStream,
    tls: ClientConnection,
}

impl TlsTransport {
    /// A transport to `host:port` with the settings of `tls`; `timeout`
    /// bounds each connect (TCP and the TLS handshake together) and each
    /// write (at least 1 ms). Settings that cannot work are refused with
    /// [`Error::InvalidConfig`] saying what is wrong.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        timeout: Duration,
        tls: &Tls,
    ) -> Result<TlsTransport, Error> {
        let host = host.into();
        let setup = tls.client_config(&host).map_err(Error::InvalidConfig)?;
        let timeout = timeout.max(MIN_TIMEOUT);
        Ok(TlsTransport {
            resolver: Resolver::new(&host, port, timeout),
            host,
            port,
            timeout,
            config: setup.config,
            server_name: setup.server_name,
            client_cert: setup.client_cert,
            conn: None,
            records: Vec::new(),
            ends: Vec::new(),
        })
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Resolves the host again every `period` while connected, and moves
    /// to a new address (default 60 s), as
    /// [`TcpTransport::dns_refresh`](crate::TcpTransport::dns_refresh).
    pub fn dns_refresh(mut self, period: Duration) -> TlsTransport {
        self.resolver.set_refresh(period);
        self
    }

    /// A connection to the first of `addrs` that accepts, TLS handshake
    /// done, within `limit`.
    fn open(&self, addrs: &[SocketAddr], limit: Duration) -> io::Result<(Live, SocketAddr)> {
        let end = Instant::now() + limit;
        let (stream, addr) = connect_within(&self.host, addrs, limit)?;
        stream.set_nodelay(true)?;
        let tls = self.handshake(&stream, end, limit)?;
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(Some(self.timeout))?;
        Ok((Live { stream, tls }, addr))
    }

    /// The time a call may take: the timeout, cut short by `deadline`.
    fn limit(&self, deadline: Instant) -> io::Result<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(deadline_passed());
        }
        Ok(left.min(self.timeout))
    }

    /// The TLS handshake on `stream`, finished by `end`.
    fn handshake(
        &self,
        stream: &TcpStream,
        end: Instant,
        limit: Duration,
    ) -> io::Result<ClientConnection> {
        let mut tls = ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
            .map_err(|e| tls_error("TLS setup failed".into(), e))?;
        self.client_cert.requested.store(false, Ordering::Relaxed);
        let started = Instant::now();
        // Rounded up to the millisecond: the limit was cut from a deadline.
        let shown = Duration::from_millis(limit.as_nanos().div_ceil(1_000_000) as u64);
        let stalled = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake timed out after {shown:?}: the server accepted the connection \
                     but did not answer (a plaintext port, or a stalled server)"
                ),
            )
        };
        let closed = || {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection during the TLS handshake \
                 (not a TLS port, or it refused this client)",
            )
        };
        while tls.is_handshaking() {
            write_tls_by(&mut tls, stream, end).map_err(|e| timed_out_as(e, stalled))?;
            if !tls.is_handshaking() {
                break;
            }
            let left = time_left(end).ok_or_else(stalled)?;
            stream.set_read_timeout(Some(left))?;
            match tls.read_tls(&mut &*stream) {
                Ok(0) => return Err(closed()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(timed_out_as(e, stalled)),
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the server why (best effort), then give up.
                let _ = write_tls_by(&mut tls, stream, end);
                return Err(tls_error("TLS handshake failed".into(), e));
            }
        }
        // The client's last flight (its Finished, and its certificate).
        write_tls_by(&mut tls, stream, end).map_err(|e| timed_out_as(e, stalled))?;
        let asked = self.client_cert.requested.load(Ordering::Relaxed);
        if asked && tls.protocol_version() == Some(ProtocolVersion::TLSv1_3) {
            // TLS 1.3: the server verifies the client certificate after the
            // client has finished; wait for its answer, so that lines are
            // not written into a connection it is about to refuse.
            let wait = (started.elapsed() * 4).clamp(MIN_CONFIRM, MAX_CONFIRM);
            let until = end.min(Instant::now() + wait);
            confirm(&mut tls, stream, until).map_err(|e| {
                tls_error("the server refused the TLS client certificate".into(), e)
            })?;
        }
        Ok(tls)
    }

    /// Reads whatever the server has sent since the last call, without
    /// waiting: session tickets are taken in, and an alert, a close_notify,
    /// end-of-stream or a reset mean the connection is gone.
    fn check_incoming(&mut self) -> Result<(), SendError> {
        let address = self.address();
        let live = self.conn.as_mut().expect("connected");
        let mut buf = [0u8; 4096];
        loop {
            let gone = match recv_now(&live.stream, &mut buf) {
                Ok(0) => format!("{address} closed the connection"),
                Ok(n) => match take_in(&mut live.tls, &buf[..n]) {
                    Ok(false) => continue,
                    Ok(true) => format!("{address} ended the TLS session (close_notify)"),
                    Err(e) => format!("{address} ended the TLS session: {e}"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => format!("the connection to {address} failed: {e}"),
            };
            self.conn = None;
            return Err(SendError::not_connected(gone));
        }
    }

    /// Encrypts `bytes` into `records`, one record per [`RECORD`] bytes.
    fn encrypt(&mut self, bytes: &[u8]) -> io::Result<()> {
        let tls = &mut self.conn.as_mut().expect("connected").tls;
        self.records.clear();
        self.ends.clear();
        let mut plain = 0;
        for chunk in bytes.chunks(RECORD) {
            let taken = tls.writer().write(chunk)?;
            if taken != chunk.len() {
                return Err(io::Error::other("rustls took only part of a record"));
            }
            while tls.wants_write() {
                tls.write_tls(&mut self.records)?;
            }
            plain += taken;
            self.ends.push((self.records.len(), plain));
        }
        Ok(())
    }

    /// The plaintext carried by the records among the first `written`
    /// bytes of `records` that are whole.
    fn plaintext_within(&self, written: usize) -> usize {
        self.ends
            .iter()
            .take_while(|&&(end, _)| end <= written)
            .last()
            .map_or(0, |&(_, plain)| plain)
    }
}

impl Transport for TlsTransport {
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        self.close();
        let end = Instant::now() + self.limit(deadline)?;
        let addrs = self.resolver.resolve(end)?;
        let (live, addr) = self.open(&addrs, end.saturating_duration_since(Instant::now()))?;
        self.conn = Some(live);
        self.resolver.connected(addr);
        Ok(())
    }

    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        if self.conn.is_none() {
            self.connect(deadline)?;
        } else {
            self.check_incoming()?;
            if let Some(addrs) = self.resolver.moved(deadline) {
                // Half the time at most, as TcpTransport: the write keeps the rest.
                match self
                    .limit(deadline)
                    .and_then(|limit| self.open(&addrs, limit / 2))
                {
                    Ok((live, addr)) => {
                        self.close();
                        self.conn = Some(live);
                        self.resolver.connected(addr);
                    }
                    Err(e) => self.resolver.stay(&addrs, &e),
                }
            }
        }
        let limit = self.limit(deadline)?;
        if let Err(e) = self.encrypt(bytes) {
            self.conn = None;
            return Err(e.into());
        }
        let stream = &mut self.conn.as_mut().expect("connected above").stream;
        write_all_within(stream, &self.records, self.timeout, limit).map_err(|(written, e)| {
            // The connection is in an unknown state: the next send reconnects.
            self.conn = None;
            SendError::new(self.plaintext_within(written), e)
        })
    }

    fn address(&self) -> String {
        format!("tls://{}", host_port(&self.host, self.port))
    }

    /// Sends close_notify if the socket takes it at once, then closes.
    fn close(&mut self) {
        if let Some(mut live) = self.conn.take() {
            live.tls.send_close_notify();
            if live.stream.set_nonblocking(true).is_ok() {
                let _ = live.tls.write_tls(&mut live.stream);
            }
            let _ = live.stream.shutdown(std::net::Shutdown::Both);
        }
        self.resolver.disconnected();
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("address", &self.address())
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// How long until `end`, if it has not passed.
fn time_left(end: Instant) -> Option<Duration> {
    let left = end.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

/// `e`, or `stalled()` if it is a timeout.
fn timed_out_as(e: io::Error, stalled: impl Fn() -> io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => stalled(),
        _ => e,
    }
}

/// Writes what rustls has to send, by `end`.
fn write_tls_by(tls: &mut ClientConnection, stream: &TcpStream, end: Instant) -> io::Result<()> {
    while tls.wants_write() {
        let left = time_left(end).ok_or_else(deadline_passed)?;
        stream.set_write_timeout(Some(left))?;
        match tls.write_tls(&mut &*stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// TLS 1.3 with a client certificate asked for: waits until `until` for
/// the server's first word after the handshake. A session ticket means it
/// accepted the client; an alert or a closed connection that it refused.
/// Silence until `until` is taken as acceptance (a server may send no
/// tickets).
fn confirm(
    tls: &mut ClientConnection,
    stream: &TcpStream,
    until: Instant,
) -> Result<(), rustls::Error> {
    let closed =
        || rustls::Error::General("the server closed the connection after the handshake".into());
    while let Some(left) = time_left(until) {
        if stream.set_read_timeout(Some(left)).is_err() {
            return Ok(());
        }
        match tls.read_tls(&mut &*stream) {
            Ok(0) => return Err(closed()),
            Ok(_) => {
                let state = tls.process_new_packets()?;
                if state.peer_has_closed() {
                    return Err(closed());
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(closed()),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Feeds `bytes` received from the server to rustls; says whether the
/// server has closed the TLS session. Application data (Carbon sends none)
/// is read and dropped.
fn take_in(tls: &mut ClientConnection, mut bytes: &[u8]) -> Result<bool, rustls::Error> {
    let mut closed = false;
    while !bytes.is_empty() {
        if tls.read_tls(&mut bytes).is_err() {
            return Err(rustls::Error::General(
                "more data than rustls buffers".into(),
            ));
        }
        let state = tls.process_new_packets()?;
        let mut left = state.plaintext_bytes_to_read();
        let mut sink = [0u8; 1024];
        while left > 0 {
            match tls.reader().read(&mut sink) {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
        closed |= state.peer_has_closed();
    }
    Ok(closed)
}

/// Reads what has arrived on `stream` without waiting (`WouldBlock` when
/// nothing has).
#[cfg(target_os = "linux")]
fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // One syscall, without switching the socket's mode.
    // SAFETY: a valid socket and a buffer owned by the caller, of its length.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    stream.set_nonblocking(true)?;
    let mut reader = stream;
    let read = reader.read(buf);
    stream.set_nonblocking(false)?;
    read
}

/// An error of a TLS session: `context` (which server, which step) and the
/// rustls error as its source.
#[derive(Debug)]
struct TlsError {
    context: String,
    source: rustls::Error,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)?;
        if matches!(self.source, rustls::Error::InvalidMessage(_)) {
            f.write_str(" (is it a TLS port? a plaintext server answers like this)")?;
        }
        Ok(())
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// An [`io::Error`] of kind `InvalidData` for a TLS failure.
fn tls_error(context: String, source: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError { context, source })
}
