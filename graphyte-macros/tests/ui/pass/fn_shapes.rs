// Every shape of function #[timed] must accept, compiled and run: each call
// records exactly one timing.
#![deny(warnings)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use graphyte::timed;

#[timed("shapes.plain")]
fn plain(x: u32) -> u32 {
    x + 1
}

/// Doc comments, other attributes and visibility are kept.
#[timed]
#[inline]
#[must_use]
pub(crate) fn bare_name() -> u32 {
    7
}

#[timed("shapes.generic")]
fn generic<T, U: Clone>(t: T, u: &U) -> (T, U)
where
    T: Debug + Default,
{
    (t, u.clone())
}

#[timed("shapes.const_generic")]
fn const_generic<const N: usize>(a: [u8; N]) -> usize {
    a.len()
}

#[timed("shapes.lifetimes")]
fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        b
    }
}

#[timed("shapes.impl_trait_arg")]
fn impl_trait_arg(items: impl IntoIterator<Item = u32>) -> u32 {
    items.into_iter().sum()
}

#[timed("shapes.impl_trait_return")]
fn impl_trait_return(n: u32) -> impl Iterator<Item = u32> + Clone {
    (0..n).map(|i| i * 2)
}

#[timed("shapes.boxed_dyn_return")]
fn boxed_dyn_return() -> Box<dyn Fn(u32) -> u32> {
    Box::new(|x| x * 3)
}

#[timed("shapes.destructured")]
fn destructured(
    (a, b): (u32, u32),
    Point { x, y: _ }: Point,
    [first, ..]: [u8; 3],
    mut m: u32,
) -> u32 {
    m += 1;
    a + b + x + u32::from(first) + m
}

#[timed("shapes.inner_attributes")]
fn inner_attributes() -> u32 {
    #![allow(unused_variables, clippy::let_and_return)]
    let unused = 5;
    1
}

#[timed("shapes.early_return")]
fn early_return(x: u32) -> Result<u32, String> {
    if x == 0 {
        return Err("zero".to_owned());
    }
    let parsed: u32 = "12"
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(parsed / x)
}

#[timed("shapes.question_mark")]
fn question_mark(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n)
}

#[timed("shapes.into_inference")]
fn into_inference(words: &[&str]) -> Result<HashMap<String, usize>, Box<dyn std::error::Error>> {
    let map = words.iter().map(|w| (w.to_string(), w.len())).collect();
    if words.is_empty() {
        Err("empty")?;
    }
    Ok(map)
}

#[timed("shapes.unsafe_fn")]
unsafe fn unsafe_fn(p: *const u32) -> u32 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *p }
}

#[timed("shapes.extern_c")]
extern "C" fn extern_c(x: u32) -> u32 {
    x
}

#[timed("shapes.never")]
#[allow(dead_code)]
fn never() -> ! {
    panic!("never called")
}

struct Point {
    x: u32,
    y: u32,
}

#[derive(Clone, Default, Debug)]
struct Service {
    hits: u32,
}

impl Service {
    #[timed("shapes.ref_self")]
    fn ref_self(&self) -> u32 {
        self.hits
    }

    #[timed("shapes.mut_self")]
    fn mut_self(&mut self) {
        self.hits += 1;
    }

    #[timed("shapes.owned_self")]
    fn owned_self(self) -> u32 {
        self.hits
    }

    #[timed("shapes.mut_owned_self")]
    fn mut_owned_self(mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[timed("shapes.box_self")]
    fn box_self(self: Box<Self>) -> Box<Self> {
        self
    }

    #[timed("shapes.rc_self")]
    fn rc_self(self: Rc<Self>) -> u32 {
        self.hits
    }

    #[timed("shapes.arc_self")]
    fn arc_self(self: Arc<Self>) -> u32 {
        self.hits
    }

    #[timed("shapes.pin_self")]
    fn pin_self(self: Pin<&mut Self>) -> u32 {
        self.hits
    }

    #[timed("shapes.lifetime_self")]
    fn lifetime_self<'a>(&'a self, other: &'a u32) -> &'a u32 {
        if self.hits > 100 {
            &self.hits
        } else {
            other
        }
    }

    #[timed("shapes.associated")]
    fn associated() -> Self {
        Service::default()
    }
}

trait Shape {
    fn area(&self) -> f64;

    #[timed("shapes.trait_default")]
    fn doubled(&self) -> f64 {
        self.area() * 2.0
    }
}

impl Shape for Point {
    #[timed("shapes.trait_impl")]
    fn area(&self) -> f64 {
        f64::from(self.x * self.y)
    }
}

struct Wrapper<T>(T);

impl<T: Clone + Debug> Wrapper<T>
where
    T: PartialEq,
{
    #[timed("shapes.generic_impl")]
    fn get(&self) -> T {
        self.0.clone()
    }
}

fn main() {
    let capture = graphyte::CaptureTransport::new();
    graphyte::init(graphyte::Config::new("unused").transport(capture.clone())).unwrap();

    assert_eq!(plain(1), 2);
    assert_eq!(bare_name(), 7);
    assert_eq!(
        generic::<u8, String>(1, &"u".to_owned()),
        (1, "u".to_owned())
    );
    assert_eq!(const_generic([1, 2, 3]), 3);
    assert_eq!(longest("ab", "c"), "ab");
    assert_eq!(impl_trait_arg(vec![1, 2]), 3);
    assert_eq!(impl_trait_return(3).clone().collect::<Vec<_>>(), [0, 2, 4]);
    assert_eq!(boxed_dyn_return()(2), 6);
    assert_eq!(destructured((1, 2), Point { x: 3, y: 0 }, [4, 5, 6], 0), 11);
    assert_eq!(inner_attributes(), 1);
    assert_eq!(early_return(0), Err("zero".to_owned()));
    assert_eq!(early_return(3), Ok(4));
    assert!(question_mark("x").is_err());
    assert!(into_inference(&[]).is_err());
    // SAFETY: a valid pointer.
    assert_eq!(unsafe { unsafe_fn(&5) }, 5);
    assert_eq!(extern_c(9), 9);
    let mut s = Service::default();
    s.mut_self();
    assert_eq!(s.ref_self(), 1);
    assert_eq!(s.clone().owned_self(), 1);
    assert_eq!(s.clone().mut_owned_self(), 2);
    assert_eq!(Box::new(s.clone()).box_self().hits, 1);
    assert_eq!(Rc::new(s.clone()).rc_self(), 1);
    assert_eq!(Arc::new(s.clone()).arc_self(), 1);
    assert_eq!(Pin::new(&mut s).pin_self(), 1);
    assert_eq!(*s.lifetime_self(&8), 8);
    assert_eq!(Service::associated().hits, 0);
    let p = Point { x: 2, y: 3 };
    assert_eq!(p.doubled(), 12.0);
    assert_eq!(Wrapper("w").get(), "w");

    // One line per call (early_return was called twice), each a duration in ms.
    let lines = capture.lines();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let mut parts = line.split(' ');
        let name = parts.next().unwrap().to_owned();
        let ms: f64 = parts.next().unwrap().parse().unwrap();
        assert!((0.0..1000.0).contains(&ms), "{line}");
        *counts.entry(name).or_default() += 1;
    }
    let expect = |name: &str, n: usize| {
        assert_eq!(counts.get(name).copied(), Some(n), "{name}: {lines:#?}");
    };
    for name in [
        "shapes.plain",
        "shapes.generic",
        "shapes.const_generic",
        "shapes.lifetimes",
        "shapes.impl_trait_arg",
        "shapes.impl_trait_return",
        "shapes.boxed_dyn_return",
        "shapes.destructured",
        "shapes.inner_attributes",
        "shapes.question_mark",
        "shapes.into_inference",
        "shapes.unsafe_fn",
        "shapes.extern_c",
        "shapes.ref_self",
        "shapes.mut_self",
        "shapes.owned_self",
        "shapes.mut_owned_self",
        "shapes.box_self",
        "shapes.rc_self",
        "shapes.arc_self",
        "shapes.pin_self",
        "shapes.lifetime_self",
        "shapes.associated",
        "shapes.trait_default",
        "shapes.trait_impl",
        "shapes.generic_impl",
    ] {
        expect(name, 1);
    }
    expect("shapes.early_return", 2);
    // `#[timed]` without a name: the module path, then the function's name.
    expect(
        &format!("{}.bare_name", module_path!().replace("::", ".")),
        1,
    );
    assert_eq!(counts.len(), 28, "{counts:#?}");
}
