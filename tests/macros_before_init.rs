//! Before `graphyte::init` the macros do nothing, cheaply, and are no error;
//! once `init` is called, they report.
//! One test function: the global sender can be set once per process.

use std::sync::mpsc;
use std::thread;

use graphyte::{count, gauge, timed, CaptureTransport, Config};

#[timed("early.work")]
fn work() -> u32 {
    count!("early.requests", 1);
    gauge!("early.depth", 3);
    1
}

#[timed("early.spanning")]
fn spanning_init(started: mpsc::Sender<()>, init_done: mpsc::Receiver<()>) {
    started.send(()).unwrap();
    init_done.recv().unwrap();
}

#[test]
fn macros_before_init_send_nothing_and_report_after() {
    // Before init: plain calls, dynamic names, even invalid dynamic names.
    let bad = "early.bad name";
    for _ in 0..1000 {
        assert_eq!(work(), 1);
        count!(bad, 1);
        gauge!(format!("early.dynamic.{}", 1), 2.5);
    }
    // A timed call that starts before init and ends after it is not recorded:
    // its start was never measured.
    let (started_tx, started_rx) = mpsc::channel();
    let (init_tx, init_rx) = mpsc::channel();
    let spanning = thread::spawn(move || spanning_init(started_tx, init_rx));
    started_rx.recv().unwrap();

    let capture = CaptureTransport::new();
    graphyte::init(Config::new("unused").transport(capture.clone())).unwrap();
    init_tx.send(()).unwrap();
    spanning.join().unwrap();
    assert_eq!(capture.lines(), Vec::<String>::new());

    // After init (synchronous mode here): every call reports.
    assert_eq!(work(), 1);
    let names: Vec<String> = capture
        .lines()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["early.requests", "early.depth", "early.work"]);
}
