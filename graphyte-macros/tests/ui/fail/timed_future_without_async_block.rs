use std::future::Future;
use std::pin::Pin;

async fn work() {}

// Timing these would time only the creation of the future.
#[graphyte::timed("made.elsewhere")]
fn made_elsewhere() -> impl Future<Output = ()> {
    work()
}

#[graphyte::timed("boxed.elsewhere")]
fn boxed_elsewhere() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(work())
}

fn main() {
    let _ = made_elsewhere();
    let _ = boxed_elsewhere();
}
