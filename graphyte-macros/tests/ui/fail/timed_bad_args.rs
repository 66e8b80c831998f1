#[graphyte::timed(42)]
fn number() {}

#[graphyte::timed(name = "x")]
fn key_value() {}

#[graphyte::timed("a", "b")]
fn two_names() {}

#[graphyte::timed(some_ident)]
fn ident() {}

fn main() {
    number();
    key_value();
    two_names();
    ident();
}
