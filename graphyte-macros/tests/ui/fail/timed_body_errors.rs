// Errors in the body of a timed function are reported at the user's lines.

#[graphyte::timed("borrow")]
fn borrow_error() -> usize {
    let mut v = vec![1, 2, 3];
    let first = &v[0];
    v.push(4);
    *first
}

#[graphyte::timed]
fn type_error(x: u32) -> String {
    x + 1
}

#[graphyte::timed]
async fn async_type_error() -> u32 {
    "not a number"
}

#[graphyte::timed]
fn question_mark_without_result() -> u32 {
    let n: u32 = "5".parse()?;
    n
}

fn main() {
    borrow_error();
    type_error(1);
    let _ = async_type_error();
    question_mark_without_result();
}
