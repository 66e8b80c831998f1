// A syntax error in a timed function's body is reported by the compiler,
// at the user's line, and nothing else is.

#[graphyte::timed("syntax")]
fn syntax_error() -> u32 {
    let x = ;
    x
}

#[graphyte::timed("syntax.async_block")]
fn syntax_error_in_async_block() -> impl std::future::Future<Output = u32> {
    async move { 1 + }
}

fn main() {
    syntax_error();
    let _ = syntax_error_in_async_block();
}
