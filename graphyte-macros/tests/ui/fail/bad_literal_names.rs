// Literal names graphyte would refuse at run time are compile errors,
// spanned on the literal, with the runtime's reason.

#[graphyte::timed("bad name")]
fn spaced() {}

#[graphyte::timed("")]
fn empty() {}

#[graphyte::timed("a..b")]
fn empty_segment() {}

fn main() {
    graphyte::count!("x;env", 1);
    graphyte::count!("requests;env=");
    graphyte::gauge!("cpu.load;k=~v", 0.5);
    graphyte::gauge!("line\nbreak", 1);
    spaced();
    empty();
    empty_segment();
}
