//! What graphyte logs (target `graphyte`) while a server is down: the error
//! once, not once per send; recovery once; `log_sends` at INFO.

mod support;

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use graphyte::{CaptureTransport, Config, Sender};
use log::{Level, Log, Metadata, Record};
use support::LineListener;

struct Capture(Mutex<Vec<(Level, String, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        self.0.lock().unwrap().push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

fn take() -> Vec<(Level, String, String)> {
    std::mem::take(&mut *LOGGER.0.lock().unwrap())
}

#[test]
fn logging() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    // A dead server: 200 failed sends log one error, not 200.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Sender::new(Config::new("127.0.0.1").port(port)).unwrap();
    for _ in 0..200 {
        assert!(s.send("m", 1).is_err());
    }
    let records = take();
    let errors: Vec<_> = records.iter().filter(|r| r.0 <= Level::Warn).collect();
    assert_eq!(errors.len(), 1, "{records:?}");
    assert_eq!(errors[0].0, Level::Error);
    assert_eq!(errors[0].1, "graphyte");
    // One line, and a connect was tried.
    assert!(
        errors[0]
            .2
            .starts_with(&format!("sending 1 line to 127.0.0.1:{port} failed: ")),
        "{:?}",
        errors[0]
    );
    assert!(
        errors[0].2.contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        errors[0]
    );
    assert_eq!(s.stats().send_errors, 200);

    // log_sends: every write at INFO, with the line and the server.
    let listener = LineListener::start();
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(listener.port())
            .log_sends(true),
    )
    .unwrap();
    s.send_at("logged", 1, 1_700_000_000).unwrap();
    listener.wait_for_lines(1, Duration::from_secs(5));
    let records = take();
    let info: Vec<_> = records
        .iter()
        .filter(|r| r.0 == Level::Info && r.1 == "graphyte")
        .collect();
    assert_eq!(info.len(), 1, "{records:?}");
    assert!(info[0].2.contains("logged 1 1700000000"), "{:?}", info[0]);
    assert!(info[0].2.contains(&listener.port().to_string()));

    // Interval mode with a full queue: one warning for many drops. The
    // server is down, so the worker (woken early by a half-full queue)
    // cannot make room while the sends run.
    let down = CaptureTransport::new();
    down.fail_with(Some(io::ErrorKind::ConnectionRefused));
    let s = Sender::new(
        Config::new("unused")
            .transport(down.clone())
            .interval(Duration::from_secs(3600))
            .queue_size(5),
    )
    .unwrap();
    for _ in 0..100 {
        let _ = s.send("m", 1);
    }
    let full: Vec<_> = take()
        .into_iter()
        .filter(|r| r.0 == Level::Warn && r.2.contains("queue full"))
        .collect();
    assert_eq!(full.len(), 1, "{full:?}");
    assert_eq!(s.stats().dropped, 95);
    down.fail_with(None);

    // A send during the connect backoff makes no attempt, and says so.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Sender::new(Config::new("127.0.0.1").port(port)).unwrap();
    // The first connect fails (and is logged); the second send comes within
    // the 100 ms backoff (an error is logged only once per period, so the
    // first is taken away in between).
    assert!(s.send("m", 1).is_err());
    take();
    let s2 = s.clone();
    drop(s);
    let e = s2.send("m", 1).unwrap_err().to_string();
    assert!(e.contains("not connected, next attempt in "), "{e}");
    assert!(take().is_empty(), "within the log period: not logged again");
    let _ = s2;
}
