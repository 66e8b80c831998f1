//! Plain loopback sinks that record exactly what a client sends, for tests
//! that check bytes on the wire rather than what carbon made of them.

use std::io::{self, Read};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::sys::ReservedPort;

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
    /// The client's address of each accepted connection, in accept order.
    peers: Vec<SocketAddr>,
    /// Connections still open: a handle to shut them down and their reader.
    open: Vec<(TcpStream, JoinHandle<()>)>,
}

struct TcpShared {
    stop: AtomicBool,
    state: Mutex<TcpState>,
    /// While set, readers do not read: data piles up in the kernel buffers
    /// and the client's writes eventually block (a stalled server).
    paused: AtomicBool,
    /// Most bytes per read, 0 for no limit (a slow server, with `read_pause`).
    read_chunk: AtomicUsize,
    /// Nanoseconds a reader sleeps after each read while `read_chunk` is set.
    read_pause_ns: AtomicU64,
    /// Bumped by `drop_connections`, so paused readers of the dropped
    /// connections stop waiting.
    epoch: AtomicUsize,
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
        Self::serve(listener)
    }

    /// Listens on a port reserved earlier (e.g. a "closed port" a client
    /// was already failing to reach), without ever releasing it.
    pub fn start_reserved(port: ReservedPort) -> Self {
        let number = port.port();
        let listener = port
            .listen(128)
            .unwrap_or_else(|e| panic!("LineListener: cannot listen on {number}: {e}"));
        Self::serve(listener)
    }

    /// Like [`start`](Self::start), with the receive buffer of every
    /// connection capped at about `bytes` (see
    /// [`ReservedPort::cap_receive_buffer`]), so that a paused reader
    /// blocks its client after a known amount of data, whatever the host's
    /// socket buffer settings. Returns the listener and the buffer size the
    /// kernel granted.
    pub fn start_with_receive_buffer(bytes: usize) -> (Self, usize) {
        let port = ReservedPort::new().expect("LineListener: reserve a port");
        let granted = port
            .cap_receive_buffer(bytes)
            .expect("LineListener: cap the receive buffer");
        (Self::start_reserved(port), granted)
    }

    fn serve(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("LineListener: local_addr");
        let shared = Arc::new(TcpShared {
            stop: AtomicBool::new(false),
            state: Mutex::new(TcpState::default()),
            paused: AtomicBool::new(false),
            read_chunk: AtomicUsize::new(0),
            read_pause_ns: AtomicU64::new(0),
            epoch: AtomicUsize::new(0),
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

    /// The number of complete (`\n`-terminated) lines received so far;
    /// cheaper than [`lines`](Self::lines) for millions of lines.
    pub fn line_count(&self) -> usize {
        let state = lock(&self.shared.state);
        state
            .data
            .iter()
            .map(|data| data.iter().filter(|&&b| b == b'\n').count())
            .sum()
    }

    /// Polls (every 50 ms) until at least `n` complete lines arrived;
    /// returns the count. Panics after `timeout`.
    pub fn wait_for_line_count(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.line_count();
            if count >= n {
                return count;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {n} lines, got {count}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Calls `f` with the bytes received on each connection (in accept
    /// order) without copying them.
    pub fn with_received<R>(&self, f: impl FnOnce(&[Vec<u8>]) -> R) -> R {
        f(&lock(&self.shared.state).data)
    }

    /// The client's address of each connection, in accept order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        lock(&self.shared.state).peers.clone()
    }

    /// Total bytes received so far, on all connections.
    pub fn bytes_received(&self) -> usize {
        lock(&self.shared.state).data.iter().map(Vec::len).sum()
    }

    /// Stops reading from every connection (open or future): the server
    /// stalls, data piles up in the kernel's socket buffers, and once they
    /// are full the client's writes block. Connections are still accepted
    /// (by the kernel's backlog too).
    pub fn pause_reading(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Undoes [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Reads at most `bytes` per read and sleeps `every` after each one: a
    /// server slower than its client (per connection).
    pub fn read_slowly(&self, bytes: usize, every: Duration) {
        let pause = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
        self.shared.read_pause_ns.store(pause, Ordering::SeqCst);
        self.shared.read_chunk.store(bytes.max(1), Ordering::SeqCst);
    }

    /// Undoes [`read_slowly`](Self::read_slowly).
    pub fn read_at_full_speed(&self) {
        self.shared.read_chunk.store(0, Ordering::SeqCst);
    }

    /// Closes every connection accepted so far from the server side and
    /// waits until their sockets are really closed, so a client has to
    /// reconnect. The listener keeps accepting new connections. Data of those
    /// connections that was not read yet (e.g. while paused) is discarded.
    /// Returns how many connections were still open (and so were cut):
    /// the ones whose client had not closed them.
    pub fn drop_connections(&self) -> usize {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        let open = std::mem::take(&mut lock(&self.shared.state).open);
        let mut cut = 0;
        for (stream, reader) in open {
            // A reader that has returned saw the client close (or an error):
            // that connection was not live any more.
            if !reader.is_finished() {
                cut += 1;
            }
            let _ = stream.shutdown(Shutdown::Both);
            drop(stream);
            let _ = reader.join();
        }
        cut
    }
}

impl LineListener {
    /// Stops the server as a crash would: stops accepting, closes every
    /// connection (data not read yet is lost), and releases the port, which
    /// [`start_on`](Self::start_on) can then take again. What was received
    /// stays readable. Dropping the listener does the same.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the acceptor, which is blocked in accept(). (Only once:
            // after a stop the port may belong to another server.)
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = acceptor.join();
        }
        self.drop_connections();
    }
}

impl LineListener {
    /// [`stop`](Self::stop), then binds the port again at once (not
    /// listening: connects are refused, as to a crashed server) so that no
    /// other test can take it before the server comes back with
    /// [`start_reserved`](Self::start_reserved).
    pub fn stop_and_reserve(&mut self) -> ReservedPort {
        self.stop();
        ReservedPort::on(self.port())
            .unwrap_or_else(|e| panic!("LineListener: cannot keep port {}: {e}", self.port()))
    }
}

impl Drop for LineListener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<TcpShared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // E.g. out of file descriptors: don't spin.
                thread::sleep(POLL);
                continue;
            }
        };
        let (stream, peer) = stream;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let mut state = lock(&shared.state);
        let index = state.data.len();
        state.data.push(Vec::new());
        state.peers.push(peer);
        let reader = {
            let shared = Arc::clone(&shared);
            let epoch = shared.epoch.load(Ordering::SeqCst);
            thread::spawn(move || read_loop(stream, index, epoch, shared))
        };
        state.open.push((handle, reader));
    }
}

fn read_loop(mut stream: TcpStream, index: usize, epoch: usize, shared: Arc<TcpShared>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if shared.paused.load(Ordering::SeqCst) {
            if shared.stop.load(Ordering::SeqCst) || shared.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        let chunk = shared.read_chunk.load(Ordering::SeqCst);
        let len = if chunk == 0 {
            buf.len()
        } else {
            chunk.min(buf.len())
        };
        match stream.read(&mut buf[..len]) {
            Ok(0) => return,
            Ok(n) => lock(&shared.state).data[index].extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
        if chunk != 0 {
            let pause = shared.read_pause_ns.load(Ordering::SeqCst);
            thread::sleep(Duration::from_nanos(pause));
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
