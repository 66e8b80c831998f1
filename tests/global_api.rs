//! The process-wide sender: `send` before `init`, a second `init`, and the
//! README's interval pattern (send, shutdown) delivering everything.
//! One test function: the global sender can be set once per process.

mod support;

use std::time::Duration;

use graphyte::{Config, Error};
use support::LineListener;

#[test]
fn global_lifecycle() {
    assert!(graphyte::sender().is_none());
    assert!(matches!(graphyte::send("m", 1), Err(Error::NotInitialized)));
    assert!(matches!(graphyte::flush(), Err(Error::NotInitialized)));
    assert!(matches!(graphyte::shutdown(), Err(Error::NotInitialized)));
    assert!(matches!(graphyte::stats(), Err(Error::NotInitialized)));

    // A bad configuration is reported and leaves graphyte uninitialized.
    assert!(matches!(
        graphyte::init("localhost:notaport"),
        Err(Error::InvalidConfig(_))
    ));
    assert!(graphyte::sender().is_none());

    let listener = LineListener::start();
    graphyte::init(
        Config::new("localhost")
            .port(listener.port())
            .prefix("system.async")
            .interval(Duration::from_secs(3600)),
    )
    .unwrap();
    assert!(matches!(
        graphyte::init("other.example.com"),
        Err(Error::AlreadyInitialized)
    ));
    assert_eq!(
        graphyte::sender().unwrap().address(),
        format!("localhost:{}", listener.port())
    );

    for i in 0..500 {
        graphyte::send_at("foo.bar", i, 1_700_000_000u64 + i).unwrap();
    }
    graphyte::send_tagged_at("tagged", 1, &[("env", "prod")], 1_700_000_000).unwrap();
    assert!(matches!(
        graphyte::send("bad name", 1),
        Err(Error::InvalidName { .. })
    ));
    assert_eq!(graphyte::stats().unwrap().queued, 501);

    graphyte::shutdown().unwrap();
    let lines = listener.wait_for_lines(501, Duration::from_secs(5));
    assert_eq!(lines[0], "system.async.foo.bar 0 1700000000");
    assert_eq!(lines[499], "system.async.foo.bar 499 1700000499");
    assert_eq!(lines[500], "system.async.tagged;env=prod 1 1700000000");
    assert_eq!(graphyte::stats().unwrap().sent, 501);

    // After shutdown, sends are synchronous and still arrive.
    graphyte::send_at("after", 2, 1_700_000_000).unwrap();
    let lines = listener.wait_for_lines(502, Duration::from_secs(5));
    assert_eq!(lines[501], "system.async.after 2 1700000000");
    graphyte::shutdown().unwrap(); // a second shutdown is harmless
}
