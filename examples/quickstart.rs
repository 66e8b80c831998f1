//! Sends a few metrics and prints exactly the lines Carbon receives.
//!
//! ```text
//! cargo run --example quickstart                                # no server needed
//! GRAPHITE_HOST=127.0.0.1 GRAPHITE_PORT=2003 cargo run --example quickstart
//! ```
//!
//! Without `GRAPHITE_HOST` it starts a loopback listener in this process and
//! sends to it over real TCP, so what is printed is what a carbon-cache would
//! read. With `GRAPHITE_HOST` it sends to that server and prints each batch
//! as it is written.

use std::io::{self, BufRead, BufReader};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graphyte::{Config, SendError, Sender, TcpTransport, Transport};

/// Forwards to a real transport and prints what was written.
struct Echo(TcpTransport);

impl Transport for Echo {
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        self.0.connect(deadline)
    }
    fn send(&mut self, lines: &[u8], deadline: Instant) -> Result<(), SendError> {
        self.0.send(lines, deadline)?;
        print!("{}", String::from_utf8_lossy(lines));
        Ok(())
    }
    fn close(&mut self) {
        self.0.close()
    }
    fn address(&self) -> String {
        self.0.address()
    }
}

/// Starts a loopback listener that prints every line it receives and
/// reports each connection that the client closed.
fn local_server() -> io::Result<(String, u16, mpsc::Receiver<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (closed, closes) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let closed = closed.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("{line}");
                }
                let _ = closed.send(());
            });
        }
    });
    Ok(("127.0.0.1".to_owned(), port, closes))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let remote = std::env::var("GRAPHITE_HOST").ok();
    let (host, port, closes) = match &remote {
        Some(host) => {
            let port = match std::env::var("GRAPHITE_PORT") {
                Ok(p) => p.parse()?,
                Err(_) => graphyte::DEFAULT_PORT,
            };
            (host.clone(), port, None)
        }
        None => {
            let (host, port, closes) = local_server()?;
            (host, port, Some(closes))
        }
    };
    let config = |prefix: &str| {
        let config = Config::new(&host).port(port).prefix(prefix);
        match &remote {
            Some(_) => {
                config.transport(Echo(TcpTransport::new(&host, port, Duration::from_secs(5))))
            }
            None => config,
        }
    };
    println!("# sending to {host}:{port}; the lines as Carbon receives them:");

    // Synchronous: each send is written before it returns.
    let sync = Sender::new(config("quickstart.sync"))?;
    sync.send("foo.bar", 42)?;
    sync.send_at("foo.bar", 42.5, 1_700_000_000)?;
    sync.send_tagged("requests", 1, &[("env", "prod"), ("host", "a")])?;

    // Interval mode, through the global sender: queued, written by a
    // background thread every second (or at flush/shutdown).
    graphyte::init(config("quickstart.async").interval(Duration::from_secs(1)))?;
    for i in 0..3 {
        graphyte::send(&format!("worker.{i}.jobs"), i * 10)?;
    }
    graphyte::shutdown()?; // delivers everything queued, then stops the thread
    sync.stop()?; // closes the connection

    // Wait until the local listener has read both connections to the end.
    if let Some(closes) = closes {
        for _ in 0..2 {
            closes.recv_timeout(Duration::from_secs(5))?;
        }
    }
    Ok(())
}
