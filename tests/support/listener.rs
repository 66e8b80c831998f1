//! Plain loopback sinks that record exactly what a client sends, for tests
//! that check bytes on the wire rather than what carbon made of them.

use std::io::{self, Read};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the `wait_for_*` helpers look again.
const POLL: Duration = Duration::from_millis(10);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking reader thread must not hide what was received so far.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lines of `data` split at `\n`, without the `\n`. The piece after the
/// last `\n` is a complete line only if `last_line_needs_newline` is false
/// (an empty piece is never a line).
fn split_lines(data: &[u8], last_line_needs_newline: bool) -> Vec<String> {
    let mut lines: Vec<String> = data
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    let last = lines.pop().unwrap_or_default();
    if !last_line_needs_newline && !last.is_empty() {
        lines.push(last);
    }
    lines
}

/// Polls `current` until it reports at least `n` items or `timeout` passes.
fn wait_until<T>(
    what: &str,
    n: usize,
    timeout: Duration,
    mut current: impl FnMut() -> Vec<T>,
    describe: impl Fn() -> String,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = current();
        if items.len() >= n {
            return items;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {n} {what}, got {}; received so far: {}",
                items.len(),
                describe()
            );
        }
        thread::sleep(POLL);
    }
}

#[derive(Default)]
struct TcpState {
    /// Bytes received, one entry per accepted connection, in accept order.
    data: Vec<Vec<u8>>,
    /// Connections still open: a handle to shut them down and their reader.
    open: Vec<(TcpStream, JoinHandle<()>)>,
}

struct TcpShared {
    stop: AtomicBool,
    state: Mutex<TcpState>,
}

/// A loopback TCP server that accepts every connection and records every
/// byte it receives. It never writes anything back.
///
/// Dropping it stops accepting and closes all connections.
pub struct LineListener {
    addr: SocketAddr,
    shared: Arc<TcpShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl LineListener {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Listens on 127.0.0.1:`port` (0 picks a free one), e.g. to bring a
    /// server back on the port of a dropped one. Panics if it cannot bind.
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("LineListener: cannot bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().expect("LineListener: local_addr");
        let shared = Arc::new(TcpShared {
            stop: AtomicBool::new(false),
            state: Mutex::new(TcpState::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("line-listener-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("LineListener: spawn acceptor")
        };
        LineListener {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Number of connections accepted so far (open or closed).
    pub fn connections(&self) -> usize {
        lock(&self.shared.state).data.len()
    }

    /// Polls until at least `n` connections were accepted; returns the count.
    /// Panics after `timeout`.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) -> usize {
        wait_until(
            "connections",
            n,
            timeout,
            || vec![(); self.connections()],
            || format!("{:?}", self.received()),
        )
        .len()
    }

    /// Everything received so far (lossy UTF-8): the bytes of each
    /// connection in arrival order, connections in the order they were
    /// accepted.
    pub fn received(&self) -> String {
        let state = lock(&self.shared.state);
        String::from_utf8_lossy(&state.data.concat()).into_owned()
    }

    /// The raw bytes received on each connection, in accept order.
    pub fn received_per_connection(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.state).data.clone()
    }

    /// The complete (`\n`-terminated) lines received so far, without the
    /// `\n`, in the order of [`received`](Self::received). A trailing line
    /// that has no `\n` yet is left out (carbon would not take it either).
    pub fn lines(&self) -> Vec<String> {
        let state = lock(&self.shared.state);
        state
            .data
            .iter()
            .flat_map(|data| split_lines(data, true))
            .collect()
    }

    /// Polls until at least `n` complete lines arrived and returns all lines.
    /// Panics after `timeout`, showing what was received.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        wait_until(
            "lines",
            n,
            timeout,
            || self.lines(),
            || format!("{:?}", self.received()),
        )
    }

    /// Closes every connection accepted so far from the server side and
    /// waits until their sockets are really closed, so a client has to
    /// reconnect. The listener keeps accepting new connections.
    pub fn drop_connections(&self) {
        let open = std::mem::take(&mut lock(&self.shared.state).open);
        for (stream, reader) in open {
            let _ = stream.shutdown(Shutdown::Both);
            drop(stream);
            let _ = reader.join();
        }
    }
}

impl Drop for LineListener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, which is blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.drop_connections();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<TcpShared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // E.g. out of file descriptors: don't spin.
                thread::sleep(POLL);
                continue;
            }
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let mut state = lock(&shared.state);
        let index = state.data.len();
        state.data.push(Vec::new());
        let reader = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || read_loop(stream, index, shared))
        };
        state.open.push((handle, reader));
    }
}

fn read_loop(mut stream: TcpStream, index: usize, shared: Arc<TcpShared>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => lock(&shared.state).data[index].extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

struct UdpShared {
    stop: AtomicBool,
    datagrams: Mutex<Vec<Vec<u8>>>,
}

/// A loopback UDP socket that records every datagram it receives.
///
/// Dropping it stops the receiver thread.
pub struct UdpListener {
    addr: SocketAddr,
    shared: Arc<UdpShared>,
    receiver: Option<JoinHandle<()>>,
}

impl UdpListener {
    /// Binds a free UDP port of 127.0.0.1.
    pub fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("UdpListener: cannot bind 127.0.0.1:0: {e}"));
        let addr = socket.local_addr().expect("UdpListener: local_addr");
        let shared = Arc::new(UdpShared {
            stop: AtomicBool::new(false),
            datagrams: Mutex::new(Vec::new()),
        });
        let receiver = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("udp-listener-{}", addr.port()))
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let received = socket.recv_from(&mut buf);
                        if shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok((n, _)) = received {
                            lock(&shared.datagrams).push(buf[..n].to_vec());
                        }
                    }
                })
                .expect("UdpListener: spawn receiver")
        };
        UdpListener {
            addr,
            shared,
            receiver: Some(receiver),
        }
    }

    /// The address it is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it is bound to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every datagram received so far, in arrival order.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.datagrams).clone()
    }

    /// All datagrams concatenated (lossy UTF-8).
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&lock(&self.shared.datagrams).concat()).into_owned()
    }

    /// The lines of all datagrams, without `\n`. As in carbon, each datagram
    /// stands alone and its last line needs no `\n`.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.shared.datagrams)
            .iter()
            .flat_map(|datagram| split_lines(datagram, false))
            .collect()
    }

    /// Polls until at least `n` lines arrived and returns all lines. Panics
    /// after `timeout`, showing what was received.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        wait_until(
            "lines",
            n,
            timeout,
            || self.lines(),
            || format!("{:?}", self.received()),
        )
    }
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the receiver, which is blocked in recv_from().
        if let Ok(waker) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) {
            let _ = waker.send_to(&[], self.addr);
        }
        if let Some(receiver) = self.receiver.take() {
            let _ = receiver.join();
        }
    }
}
