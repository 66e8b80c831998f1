// The expansions use only fully qualified paths and hygienic locals: the
// user's own names, imports and modules cannot change what they mean.
#![deny(warnings)]
#![allow(dead_code, unused_macros, non_camel_case_types, non_snake_case)]

// A local module named like the crate, with the items the expansions use.
mod graphyte {
    pub mod __private {
        pub struct CounterSite;
        pub struct TimerSite;
        pub fn count_dyn() {}
    }
    pub fn init() {}
}

// Prelude and std names shadowed.
struct Option;
struct Some;
struct None;
struct Box;
struct OnceLock;
trait Drop {}
mod core {}
mod std {}
macro_rules! module_path {
    () => {
        "not.this"
    };
}

use ::graphyte::{count, gauge, timed};

#[timed("hygiene.timed")]
fn timed_fn(__graphyte_timer: u32) -> u32 {
    let __GRAPHYTE_TIMER = 1;
    __graphyte_timer + __GRAPHYTE_TIMER
}

#[timed]
fn named_from_module() {}

fn main() {
    let capture = ::graphyte::CaptureTransport::new();
    ::graphyte::init(::graphyte::Config::new("unused").transport(capture.clone())).unwrap();

    let __GRAPHYTE_SITE = 5u32;
    count!("hygiene.count", __GRAPHYTE_SITE);
    gauge!("hygiene.gauge", __GRAPHYTE_SITE);
    let name = "hygiene.dynamic";
    count!(name, 1);
    assert_eq!(timed_fn(1), 2);
    named_from_module();

    let lines = capture.lines();
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "hygiene.count",
            "hygiene.gauge",
            "hygiene.dynamic",
            "hygiene.timed",
            &format!(
                "{}.named_from_module",
                ::core::module_path!().replace("::", ".")
            ),
        ]
    );
    assert!(lines[0].starts_with("hygiene.count 5 "), "{lines:?}");
}
