// Every form of count! and gauge! arguments, in statement and expression
// position, and what each sends (synchronous mode: one line per call).
#![deny(warnings)]

use std::borrow::Cow;

macro_rules! my_counter {
    ($name:expr, $n:expr) => {
        graphyte::count!($name, $n)
    };
}

fn main() {
    let capture = graphyte::CaptureTransport::new();
    graphyte::init(
        graphyte::Config::new("unused")
            .prefix("app")
            .transport(capture.clone()),
    )
    .unwrap();

    // Literal names, inline tags, trailing commas, the default delta of 1.
    graphyte::count!("forms.literal", 1);
    graphyte::count!("forms.tagged;env=prod;host=a", 2,);
    graphyte::count!("forms.default");
    graphyte::count!(r"forms.raw", 3);
    graphyte::gauge!("forms.gauge", 0.25);
    graphyte::gauge!("forms.gauge_int;unit=items", 12usize,);

    // Every integer type as a delta.
    graphyte::count!("forms.types", 1u8);
    graphyte::count!("forms.types", 1u16);
    graphyte::count!("forms.types", 1u32);
    graphyte::count!("forms.types", u64::MAX);
    graphyte::count!("forms.types", 1u128);
    graphyte::count!("forms.types", 1usize);
    graphyte::count!("forms.types", -1i8);
    graphyte::count!("forms.types", 1i16);
    graphyte::count!("forms.types", 1i32);
    graphyte::count!("forms.types", 1i64);
    graphyte::count!("forms.types", i128::MIN);
    graphyte::count!("forms.types", 1isize);
    graphyte::gauge!("forms.gauge_types", 1.5f32);
    graphyte::gauge!("forms.gauge_types", -3i64);

    // Names that are not literals, checked at run time.
    let name = "forms.dynamic";
    let owned = String::from("forms.owned");
    let cow: Cow<'_, str> = Cow::Borrowed("forms.cow");
    graphyte::count!(name, 1);
    graphyte::count!(owned, 1);
    graphyte::count!(&owned, 1);
    graphyte::count!(cow, 1);
    graphyte::count!(format!("forms.shard.{}", 3), 1);
    graphyte::gauge!(name.to_owned() + ".gauge", 2.5);

    // Through macro_rules!, which wraps `$name:expr` in an invisible group:
    // still a literal, still checked at compile time.
    my_counter!("forms.via_macro", 4);

    // Expression position: the macros are `()`.
    let () = graphyte::count!("forms.expr", 1);
    let values = [1u32, 2, 3];
    values
        .iter()
        .for_each(|v| graphyte::gauge!("forms.closure", *v));
    let () = if values.len() > 2 {
        graphyte::count!("forms.branch", 1)
    } else {
        graphyte::gauge!("forms.branch_gauge", 0)
    };

    let lines = capture.lines();
    let values: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut parts = l.split(' ');
            let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
            format!("{name} {value}")
        })
        .collect();
    assert_eq!(
        values,
        [
            "app.forms.literal 1",
            "app.forms.tagged;env=prod;host=a 2",
            "app.forms.default 1",
            "app.forms.raw 3",
            "app.forms.gauge 0.25",
            "app.forms.gauge_int;unit=items 12",
            "app.forms.types 1",
            "app.forms.types 1",
            "app.forms.types 1",
            "app.forms.types 18446744073709551615",
            "app.forms.types 1",
            "app.forms.types 1",
            "app.forms.types -1",
            "app.forms.types 1",
            "app.forms.types 1",
            "app.forms.types 1",
            "app.forms.types -170141183460469231731687303715884105728",
            "app.forms.types 1",
            "app.forms.gauge_types 1.5",
            "app.forms.gauge_types -3",
            "app.forms.dynamic 1",
            "app.forms.owned 1",
            "app.forms.owned 1",
            "app.forms.cow 1",
            "app.forms.shard.3 1",
            "app.forms.dynamic.gauge 2.5",
            "app.forms.via_macro 4",
            "app.forms.expr 1",
            "app.forms.closure 1",
            "app.forms.closure 2",
            "app.forms.closure 3",
            "app.forms.branch 1",
        ]
    );
}
