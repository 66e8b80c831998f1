//! The macros with a synchronous global sender: one line per call, sent at
//! once — the count's delta, the gauge's value, the timed call's duration in
//! milliseconds — and one timing per call of every shape of function.
//!
//! This process's global sender is synchronous (one per process); the tests
//! run in parallel on it, each with metric names of its own.

use std::future::Future;
use std::panic::catch_unwind;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphyte::{count, gauge, timed, CaptureTransport, Config};
use log::{Log, Metadata, Record};

/// Records what graphyte logs.
struct Logs(Mutex<Vec<String>>);

impl Log for Logs {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "graphyte"
    }
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static LOGS: Logs = Logs(Mutex::new(Vec::new()));

/// The capture behind the global sender (prefix `app`), set up once.
fn capture() -> &'static CaptureTransport {
    static CAPTURE: OnceLock<CaptureTransport> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        log::set_logger(&LOGS).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        let capture = CaptureTransport::new();
        graphyte::init(
            Config::new("unused")
                .prefix("app")
                .transport(capture.clone()),
        )
        .unwrap();
        capture
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The captured lines whose name starts with `app.PREFIX`, split into
/// (name, value, timestamp).
fn lines(prefix: &str) -> Vec<(String, String, u64)> {
    let prefix = format!("app.{prefix}");
    capture()
        .lines()
        .into_iter()
        .filter(|line| line.starts_with(&prefix))
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "{line:?}");
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

/// The durations (ms) sent for `name`.
fn timings(name: &str) -> Vec<f64> {
    let full = format!("app.{name}");
    lines(name)
        .into_iter()
        .filter(|(n, _, _)| *n == full)
        .map(|(_, ms, _)| ms.parse().unwrap())
        .collect()
}

#[test]
fn count_and_gauge_send_one_exact_line_per_call() {
    capture();
    let before = now();
    count!("exact.requests", 3);
    count!("exact.requests");
    count!("exact.requests;env=prod", 2u64);
    gauge!("exact.load", 0.75);
    gauge!("exact.depth", 12usize);
    gauge!("exact.depth", -4i32);
    let name = "exact.dynamic";
    count!(name, 7);
    gauge!(format!("{name}.gauge"), 1.5f32);
    let after = now();

    let got = lines("exact.");
    let values: Vec<(&str, &str)> = got.iter().map(|(n, v, _)| (&n[..], &v[..])).collect();
    assert_eq!(
        values,
        [
            ("app.exact.requests", "3"),
            ("app.exact.requests", "1"),
            ("app.exact.requests;env=prod", "2"),
            ("app.exact.load", "0.75"),
            ("app.exact.depth", "12"),
            ("app.exact.depth", "-4"),
            ("app.exact.dynamic", "7"),
            ("app.exact.dynamic.gauge", "1.5"),
        ]
    );
    for (name, _, ts) in &got {
        assert!(
            (before..=after).contains(ts),
            "{name}: {ts} not in {before}..={after}"
        );
    }
}

#[test]
fn bad_runtime_names_and_values_send_nothing_and_are_logged_once() {
    capture();
    let bad = String::from("invalid.bad name");
    for _ in 0..3 {
        count!(bad, 1);
        gauge!(&bad, 1);
        gauge!("invalid.nan", f64::NAN);
    }
    count!("invalid.fine", 1);
    assert_eq!(
        lines("invalid."),
        [(
            "app.invalid.fine".to_owned(),
            "1".to_owned(),
            lines("invalid.")[0].2
        )]
    );
    let logs = LOGS.0.lock().unwrap().clone();
    let about = |needle: &str| logs.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(about("invalid.bad name"), 1, "{logs:#?}");
    assert_eq!(about("invalid.nan"), 1, "{logs:#?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("must not contain whitespace")),
        "{logs:#?}"
    );
}

/// Pending until `duration` has passed; a thread wakes the task.
struct Sleep {
    until: Instant,
    waker_thread: bool,
}

fn sleep(duration: Duration) -> Sleep {
    Sleep {
        until: Instant::now() + duration,
        waker_thread: false,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.until {
            return Poll::Ready(());
        }
        if !self.waker_thread {
            self.waker_thread = true;
            let (waker, left) = (cx.waker().clone(), self.until - now);
            thread::spawn(move || {
                thread::sleep(left);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

/// Polls a future to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

const NAP: Duration = Duration::from_millis(30);
const NAP_MS: f64 = 30.0;
/// What the paths that do not leave early sleep on top of `NAP`.
const MORE: Duration = Duration::from_millis(300);
const MORE_MS: f64 = 300.0;

#[timed("shape.plain")]
fn plain() -> u32 {
    thread::sleep(NAP);
    1
}

#[timed]
fn named_by_module() {}

#[timed("shape.question_mark")]
fn question_mark(input: &str) -> Result<u32, std::num::ParseIntError> {
    thread::sleep(NAP);
    let n: u32 = input.parse()?;
    thread::sleep(MORE);
    Ok(n)
}

#[timed("shape.early_return")]
fn early_return(stop: bool) -> &'static str {
    thread::sleep(NAP);
    if stop {
        return "early";
    }
    thread::sleep(MORE);
    "late"
}

#[timed("shape.panics")]
fn panics() {
    thread::sleep(NAP);
    panic!("on purpose");
}

#[timed("shape.generic")]
#[allow(clippy::multiple_bound_locations)] // the shape under test
fn generic<T: Clone>(t: &T) -> T
where
    T: std::fmt::Debug,
{
    thread::sleep(NAP);
    t.clone()
}

#[timed("shape.impl_trait")]
fn impl_trait(n: u32) -> impl Iterator<Item = u32> {
    thread::sleep(NAP);
    0..n
}

#[timed("shape.destructured")]
fn destructured((a, b): (u32, u32)) -> u32 {
    #![allow(clippy::let_and_return)]
    thread::sleep(NAP);
    let sum = a + b;
    sum
}

#[timed("shape.async")]
async fn async_fn(x: u32) -> u32 {
    sleep(NAP).await;
    x + 1
}

#[timed("shape.async_early")]
async fn async_early(stop: bool) -> Option<u32> {
    sleep(NAP).await;
    if stop {
        return None;
    }
    sleep(MORE).await;
    Some(1)
}

#[timed("shape.impl_future")]
#[allow(clippy::manual_async_fn)] // the shape under test
fn impl_future(x: u32) -> impl Future<Output = u32> {
    async move {
        sleep(NAP).await;
        x
    }
}

struct Service {
    calls: u32,
}

trait Handler {
    fn handle(&mut self) -> u32;
    fn fetch<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>>;
}

impl Handler for Service {
    #[timed("shape.trait_method")]
    fn handle(&mut self) -> u32 {
        thread::sleep(NAP);
        self.calls += 1;
        self.calls
    }

    // The shape #[async_trait] gives an `async fn` in a trait.
    #[timed("shape.async_trait")]
    fn fetch<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>> {
        Box::pin(async move {
            sleep(NAP).await;
            key.len() + self.calls as usize
        })
    }
}

impl Service {
    #[timed("shape.owned_self")]
    fn into_calls(self) -> u32 {
        thread::sleep(NAP);
        self.calls
    }

    #[timed("shape.async_method")]
    async fn async_method(&self) -> u32 {
        sleep(NAP).await;
        self.calls
    }
}

/// One line per call, at least as long as what the function slept.
fn assert_timed(name: &str, calls: usize, at_least_ms: f64) -> Vec<f64> {
    let t = timings(name);
    assert_eq!(t.len(), calls, "{name}: {t:?}");
    for ms in &t {
        assert!(*ms >= at_least_ms, "{name}: {ms} ms < {at_least_ms} ms");
        assert!(*ms < 10_000.0, "{name}: {ms} ms");
    }
    t
}

#[test]
fn every_function_shape_records_one_timing_per_call() {
    capture();
    assert_eq!(plain(), 1);
    named_by_module();
    assert_eq!(question_mark("12"), Ok(12));
    assert!(question_mark("x").is_err());
    assert_eq!(early_return(true), "early");
    assert_eq!(early_return(false), "late");
    assert!(catch_unwind(panics).is_err());
    assert_eq!(generic(&"g".to_owned()), "g");
    assert_eq!(impl_trait(3).sum::<u32>(), 3);
    assert_eq!(destructured((2, 3)), 5);
    let mut service = Service { calls: 0 };
    assert_eq!(service.handle(), 1);
    assert_eq!(block_on(service.fetch("abc")), 4);
    assert_eq!(block_on(service.async_method()), 1);
    assert_eq!(service.into_calls(), 1);
    assert_eq!(block_on(async_fn(1)), 2);
    assert_eq!(block_on(async_early(true)), None);
    assert_eq!(block_on(async_early(false)), Some(1));
    assert_eq!(block_on(impl_future(4)), 4);

    assert_timed("shape.plain", 1, NAP_MS);
    let module = module_path!().replace("::", ".");
    assert_timed(&format!("{module}.named_by_module"), 1, 0.0);
    // `?` and early return: recorded, and only up to where they left.
    let t = assert_timed("shape.question_mark", 2, NAP_MS);
    assert!(t[0] >= NAP_MS + MORE_MS && t[1] < t[0], "{t:?}");
    let t = assert_timed("shape.early_return", 2, NAP_MS);
    assert!(t[0] < t[1] && t[1] >= NAP_MS + MORE_MS, "{t:?}");
    assert_timed("shape.panics", 1, NAP_MS);
    assert_timed("shape.generic", 1, NAP_MS);
    assert_timed("shape.impl_trait", 1, NAP_MS);
    assert_timed("shape.destructured", 1, NAP_MS);
    assert_timed("shape.trait_method", 1, NAP_MS);
    assert_timed("shape.owned_self", 1, NAP_MS);
    // Futures: timed across their awaits, to completion.
    assert_timed("shape.async_trait", 1, NAP_MS);
    assert_timed("shape.async_method", 1, NAP_MS);
    assert_timed("shape.async", 1, NAP_MS);
    let t = assert_timed("shape.async_early", 2, NAP_MS);
    assert!(t[0] < t[1] && t[1] >= NAP_MS + MORE_MS, "{t:?}");
    assert_timed("shape.impl_future", 1, NAP_MS);
}

#[timed("lazy.async")]
async fn lazy_async() {
    sleep(NAP).await;
}

#[timed("lazy.boxed")]
fn lazy_boxed() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move { sleep(NAP).await })
}

#[test]
fn futures_are_timed_from_their_first_poll_not_their_creation() {
    capture();
    let a = lazy_async();
    let b = lazy_boxed();
    // Creating them records nothing...
    assert!(timings("lazy.").is_empty());
    // ...and time spent before the first poll is not theirs.
    thread::sleep(Duration::from_millis(600));
    block_on(a);
    block_on(b);
    for name in ["lazy.async", "lazy.boxed"] {
        let t = assert_timed(name, 1, NAP_MS);
        assert!(t[0] < 600.0, "{name}: {t:?}");
    }
}

#[timed("dropped.future")]
async fn never_finishes() {
    sleep(Duration::from_secs(3600)).await;
}

#[test]
fn a_future_dropped_before_completion_records_the_time_it_ran() {
    capture();
    struct Nobody;
    impl Wake for Nobody {
        fn wake(self: Arc<Self>) {}
    }
    let mut future = Box::pin(never_finishes());
    let waker = Waker::from(Arc::new(Nobody));
    assert!(future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    thread::sleep(NAP);
    drop(future);
    assert_timed("dropped.future", 1, NAP_MS);
}

#[timed("threads.work")]
fn work() {}

#[test]
fn calls_from_many_threads_each_send_a_line() {
    capture();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    count!("threads.count", 1);
                    work();
                }
            });
        }
    });
    let got = lines("threads.");
    let count = |name: &str| got.iter().filter(|(n, _, _)| n == name).count();
    assert_eq!(count("app.threads.count"), 200);
    assert_eq!(count("app.threads.work"), 200);
}
