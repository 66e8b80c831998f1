// async fns and the functions that return futures: each future is timed to
// completion, stays Send when its body is, and records one timing per call.
#![deny(warnings)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use graphyte::timed;

/// Polls a future to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

/// Pending once, then ready: a real suspension point.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[timed("async.free")]
async fn free(x: u32) -> u32 {
    YieldOnce(false).await;
    x * 2
}

#[timed]
async fn bare_name() {}

#[timed("async.generic")]
async fn generic<T>(t: &T) -> T
where
    T: Send + Clone + std::fmt::Debug,
{
    YieldOnce(false).await;
    t.clone()
}

#[timed("async.question_mark")]
async fn question_mark(s: &str) -> Result<u32, std::num::ParseIntError> {
    YieldOnce(false).await;
    let n: u32 = s.parse()?;
    Ok(n)
}

#[timed("async.early_return")]
async fn early_return(x: u32) -> u32 {
    if x == 0 {
        return 0;
    }
    YieldOnce(false).await;
    x
}

#[timed("async.impl_future")]
fn impl_future(x: u32) -> impl Future<Output = u32> + Send {
    let y = x + 1;
    async move {
        YieldOnce(false).await;
        y
    }
}

#[timed("async.boxed")]
fn boxed(x: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async move {
        YieldOnce(false).await;
        x
    })
}

struct Db {
    rows: Vec<u32>,
}

impl Db {
    #[timed("async.method")]
    async fn method(&self, i: usize) -> Option<u32> {
        YieldOnce(false).await;
        self.rows.get(i).copied()
    }

    #[timed("async.method_mut")]
    async fn method_mut(&mut self, v: u32) {
        YieldOnce(false).await;
        self.rows.push(v);
    }
}

/// What `#[async_trait]` makes of an `async fn` in a trait.
trait Store: Sync {
    fn get<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Option<u32>> + Send + 'a>>;
}

impl Store for Db {
    #[timed("async.async_trait")]
    fn get<'a>(&'a self, key: &'a str) -> Pin<Box<dyn Future<Output = Option<u32>> + Send + 'a>> {
        Box::pin(async move {
            let __self = self;
            YieldOnce(false).await;
            __self.rows.get(key.len()).copied()
        })
    }
}

/// Native async fn in traits.
trait Fetch {
    async fn fetch(&self) -> u32;
}

impl Fetch for Db {
    #[timed("async.trait_impl")]
    async fn fetch(&self) -> u32 {
        YieldOnce(false).await;
        self.rows.len() as u32
    }
}

fn main() {
    let capture = graphyte::CaptureTransport::new();
    graphyte::init(graphyte::Config::new("unused").transport(capture.clone())).unwrap();

    // Creating the futures records nothing: the timing is of the futures.
    let f = assert_send(free(2));
    let b = assert_send(boxed(5));
    assert!(capture.lines().is_empty(), "{:?}", capture.lines());
    assert_eq!(block_on(f), 4);
    assert_eq!(block_on(b), 5);

    block_on(assert_send(bare_name()));
    assert_eq!(block_on(assert_send(generic(&"g".to_owned()))), "g");
    assert!(block_on(question_mark("nope")).is_err());
    assert_eq!(block_on(early_return(0)), 0);
    assert_eq!(block_on(early_return(3)), 3);
    assert_eq!(block_on(impl_future(1)), 2);
    let mut db = Db { rows: vec![10, 20] };
    block_on(assert_send(db.method_mut(30)));
    assert_eq!(block_on(assert_send(db.method(2))), Some(30));
    assert_eq!(block_on(assert_send(db.get("ab"))), Some(30));
    assert_eq!(block_on(db.fetch()), 3);

    let lines = capture.lines();
    let count = |name: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count()
    };
    for name in [
        "async.free",
        "async.generic",
        "async.question_mark",
        "async.impl_future",
        "async.boxed",
        "async.method",
        "async.method_mut",
        "async.async_trait",
        "async.trait_impl",
    ] {
        assert_eq!(count(name), 1, "{name}: {lines:#?}");
    }
    assert_eq!(count("async.early_return"), 2, "{lines:#?}");
    let bare = format!("{}.bare_name", module_path!().replace("::", "."));
    assert_eq!(count(&bare), 1, "{lines:#?}");
    assert_eq!(lines.len(), 12, "{lines:#?}");
}
