// Every shape of function #[timed] supports, written the way rustfmt leaves
// short functions alone or a user writes them: the body on the signature's
// line. #[timed] must not make rustc or clippy warn on the user's code (the
// nested block it once made of `{ 1 }` was "unnecessary braces around block
// return value"), so this compiles under deny(warnings) here, and under
// `cargo clippy --all-targets -- -D warnings` as the test target
// `ui_pass_one_line_bodies` of graphyte-macros. Each call records one timing.
#![deny(warnings)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The shapes, kept on one line each (rustfmt would spread the bodies over
/// three lines, where rustc never warns about braces).
#[rustfmt::skip]
mod shapes {
    use std::fmt::Display;
    use std::future::Future;
    use std::num::ParseIntError;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;

    use graphyte::timed;

    // One-expression bodies: a literal, a path, a call, an operation.
    #[timed("one.literal")] pub fn literal() -> u8 { 1 }
    #[timed("one.path")] pub fn path(x: u32) -> u32 { x }
    #[timed("one.call")] pub fn call(v: &[u8]) -> usize { v.len() }
    #[timed("one.binary")] pub fn binary(x: u32) -> u32 { x + 1 }
    #[timed("one.tuple")] pub fn tuple(x: u8) -> (u8, u8) { (x, x) }
    #[timed("one.macro")] pub fn macro_call(x: u8) -> String { format!("{x}") }
    #[timed] pub fn bare_name() -> u8 { 2 }
    #[timed("one.items_in_body")] pub fn items_in_body() -> u8 { const N: u8 = 3; fn f() -> u8 { N } f() }

    // Unit bodies: empty, one expression of type (), one statement.
    #[timed("one.unit_empty")] pub fn unit_empty() {}
    #[timed("one.unit_expr")] pub fn unit_expr(v: &mut Vec<u8>) { v.push(1) }
    #[timed("one.unit_stmt")] pub fn unit_stmt(v: &mut Vec<u8>) { v.push(2); }

    // Early return and `?`.
    #[timed("one.early_return")] pub fn early_return(x: u8) -> u8 { if x == 0 { return 0; } x - 1 }
    #[timed("one.question_mark")] pub fn question_mark(s: &str) -> Result<u8, ParseIntError> { Ok(s.parse::<u8>()? / 2) }
    #[timed("one.option_question_mark")] pub fn option_question_mark(v: &[u8]) -> Option<u8> { v.first()?.checked_add(1) }

    // Generics.
    #[timed("one.generic")] pub fn generic<T>(t: T) -> T { t }
    #[timed("one.where_clause")] pub fn where_clause<T>(t: T) -> String where T: Display { t.to_string() }
    #[timed("one.const_generic")] pub fn const_generic<const N: usize>(_: [u8; N]) -> usize { N }
    #[timed("one.impl_trait_arg")] pub fn impl_trait_arg(i: impl IntoIterator<Item = u32>) -> u32 { i.into_iter().sum() }
    #[timed("one.impl_trait_return")] pub fn impl_trait_return(n: u32) -> impl Iterator<Item = u32> { 0..n }

    // Other qualifiers.
    #[timed("one.unsafe_fn")] pub unsafe fn unsafe_fn(p: *const u8) -> u8 { unsafe { *p } }
    #[timed("one.extern_c")] pub extern "C" fn extern_c(x: u8) -> u8 { x }
    #[timed("one.never")] #[allow(dead_code)] pub fn never() -> ! { panic!("never called") }

    // Async: async fn, `-> impl Future` ending in `async move`, Box::pin.
    #[timed("one.async_fn")] pub async fn async_fn(x: u8) -> u8 { x }
    #[timed("one.async_unit")] pub async fn async_unit() {}
    #[timed("one.async_question_mark")] pub async fn async_question_mark(s: &str) -> Result<u8, ParseIntError> { Ok(s.parse::<u8>()? / 2) }
    #[timed("one.impl_future")] pub fn impl_future(x: &u8) -> impl Future<Output = u8> + 'static { let x = *x; async move { x } }
    // clippy's manual_async_fn advises `async fn` here, with or without #[timed].
    #[timed("one.impl_future_unit")] #[allow(clippy::manual_async_fn)] pub fn impl_future_unit() -> impl Future<Output = ()> { async {} }
    #[timed("one.box_pin")] pub fn box_pin(x: u8) -> Pin<Box<dyn Future<Output = u8> + Send>> { Box::pin(async move { x }) }

    // Methods with every kind of `self`.
    #[derive(Clone, Default)]
    pub struct S(pub u32);

    impl S {
        #[timed("one.assoc")] pub fn assoc() -> Self { S(0) }
        #[timed("one.ref_self")] pub fn ref_self(&self) -> u32 { self.0 }
        #[timed("one.ref_self_field")] pub fn ref_self_field(&self) -> &u32 { &self.0 }
        #[timed("one.mut_self")] pub fn mut_self(&mut self) { self.0 += 1 }
        #[timed("one.owned_self")] pub fn owned_self(self) -> u32 { self.0 }
        #[timed("one.mut_owned_self")] pub fn mut_owned_self(mut self) -> u32 { self.0 += 1; self.0 }
        #[timed("one.typed_ref_self")] #[allow(clippy::needless_arbitrary_self_type)] pub fn typed_ref_self(self: &Self) -> u32 { self.0 }
        #[timed("one.typed_mut_self")] #[allow(clippy::needless_arbitrary_self_type)] pub fn typed_mut_self(self: &mut Self) { self.0 += 1 }
        #[timed("one.box_self")] pub fn box_self(self: Box<Self>) -> Box<Self> { self }
        #[timed("one.rc_self")] pub fn rc_self(self: Rc<Self>) -> u32 { self.0 }
        #[timed("one.arc_self")] pub fn arc_self(self: Arc<Self>) -> u32 { self.0 }
        #[timed("one.pin_mut_self")] pub fn pin_mut_self(self: Pin<&mut Self>) -> u32 { self.0 }
        #[timed("one.pin_ref_self")] pub fn pin_ref_self(self: Pin<&Self>) -> u32 { self.0 }
        #[timed("one.async_ref_self")] pub async fn async_ref_self(&self) -> u32 { self.0 }
        #[timed("one.async_mut_self")] pub async fn async_mut_self(&mut self) { self.0 += 1 }
        #[timed("one.generic_method")] pub fn generic_method<T: Into<u32>>(&self, t: T) -> u32 { self.0 + t.into() }
        #[timed("one.impl_future_self")] pub fn impl_future_self(&self) -> impl Future<Output = u32> + 'static { let n = self.0; async move { n } }
    }

    pub trait Shape {
        fn area(&self) -> u32;
        #[timed("one.trait_default")] fn doubled(&self) -> u32 { self.area() * 2 }
    }

    impl Shape for S {
        #[timed("one.trait_impl")] fn area(&self) -> u32 { self.0 }
    }

    pub struct Wrapper<T>(pub T);

    impl<T: Clone> Wrapper<T> {
        #[timed("one.generic_impl")] pub fn get(&self) -> T { self.0.clone() }
    }
}

use shapes::*;

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

fn main() {
    let capture = graphyte::CaptureTransport::new();
    graphyte::init(graphyte::Config::new("unused").transport(capture.clone())).unwrap();

    assert_eq!(literal(), 1);
    assert_eq!(path(3), 3);
    assert_eq!(call(&[1, 2]), 2);
    assert_eq!(binary(1), 2);
    assert_eq!(tuple(4), (4, 4));
    assert_eq!(macro_call(5), "5");
    assert_eq!(bare_name(), 2);
    assert_eq!(items_in_body(), 3);
    unit_empty();
    let mut v = Vec::new();
    unit_expr(&mut v);
    unit_stmt(&mut v);
    assert_eq!(v, [1, 2]);
    assert_eq!(early_return(0), 0);
    assert_eq!(early_return(3), 2);
    assert_eq!(question_mark("8"), Ok(4));
    assert!(question_mark("x").is_err());
    assert_eq!(option_question_mark(&[1]), Some(2));
    assert_eq!(generic("g"), "g");
    assert_eq!(where_clause(7), "7");
    assert_eq!(const_generic([0; 3]), 3);
    assert_eq!(impl_trait_arg([1, 2]), 3);
    assert_eq!(impl_trait_return(3).count(), 3);
    // SAFETY: a valid pointer.
    assert_eq!(unsafe { unsafe_fn(&6) }, 6);
    assert_eq!(extern_c(9), 9);

    // Creating the futures records nothing: the timing is of the futures.
    let before = capture.lines().len();
    let f = impl_future(&1);
    let b = box_pin(2);
    assert_eq!(capture.lines().len(), before);
    assert_eq!(block_on(f), 1);
    assert_eq!(block_on(b), 2);
    assert_eq!(block_on(async_fn(3)), 3);
    block_on(async_unit());
    assert_eq!(block_on(async_question_mark("6")), Ok(3));
    block_on(impl_future_unit());

    let mut s = S::assoc();
    s.mut_self();
    s.typed_mut_self();
    assert_eq!(s.ref_self(), 2);
    assert_eq!(*s.ref_self_field(), 2);
    assert_eq!(s.typed_ref_self(), 2);
    assert_eq!(s.clone().owned_self(), 2);
    assert_eq!(s.clone().mut_owned_self(), 3);
    assert_eq!(Box::new(s.clone()).box_self().0, 2);
    assert_eq!(Rc::new(s.clone()).rc_self(), 2);
    assert_eq!(Arc::new(s.clone()).arc_self(), 2);
    assert_eq!(Pin::new(&mut s).pin_mut_self(), 2);
    assert_eq!(Pin::new(&s).pin_ref_self(), 2);
    block_on(s.async_mut_self());
    assert_eq!(block_on(s.async_ref_self()), 3);
    assert_eq!(s.generic_method(1u8), 4);
    assert_eq!(block_on(s.impl_future_self()), 3);
    assert_eq!(s.doubled(), 6);
    assert_eq!(Wrapper('w').get(), 'w');

    // One line per call, each a duration in ms.
    let lines = capture.lines();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let mut parts = line.split(' ');
        let name = parts.next().unwrap().to_owned();
        let ms: f64 = parts.next().unwrap().parse().unwrap();
        assert!((0.0..1000.0).contains(&ms), "{line}");
        *counts.entry(name).or_default() += 1;
    }
    let twice = ["one.early_return", "one.question_mark"];
    for (name, n) in &counts {
        let expected = if twice.contains(&name.as_str()) { 2 } else { 1 };
        assert_eq!(*n, expected, "{name}: {lines:#?}");
    }
    let bare = format!("{}.shapes.bare_name", module_path!().replace("::", "."));
    assert!(counts.contains_key(&bare), "{lines:#?}");
    // Every function above but `never`, each under its own name.
    assert_eq!(counts.len(), 47, "{counts:#?}");
}
