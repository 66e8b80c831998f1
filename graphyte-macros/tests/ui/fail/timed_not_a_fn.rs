#[graphyte::timed("x")]
struct NotAFunction;

trait Store {
    #[graphyte::timed("store.get")]
    fn get(&self) -> u32;
}

fn main() {
    let _ = NotAFunction;
}
