//! README blocks that the root package cannot compile (they need a
//! dev-dependency or a feature of graphyte) are copies of code that is
//! compiled elsewhere: the README must show exactly that code.

/// The lines between the first line equal to `start` and the next equal to
/// `end`, with `strip` taken off each.
fn between<'a>(text: &'a str, start: &str, end: &str, strip: &str) -> String {
    let lines: Vec<&'a str> = text.lines().collect();
    let from = lines.iter().position(|l| l.trim() == start).expect(start) + 1;
    let to = from
        + lines[from..]
            .iter()
            .position(|l| l.trim() == end)
            .expect(end);
    lines[from..to]
        .iter()
        .map(|l| {
            l.strip_prefix(strip)
                .unwrap_or(l.trim_start_matches(strip.trim_end()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_shows_the_compiled_async_example() {
    let example = include_str!("../../examples/async_tokio.rs");
    let code = between(
        example,
        "// README example start",
        "// README example end",
        "",
    );
    assert!(
        README.contains(code.trim_end()),
        "README.md's async block differs from examples/async_tokio.rs:\n{code}"
    );
}

#[test]
fn the_readme_shows_the_compiled_metrics_facade_example() {
    let module = include_str!("../src/recorder/mod.rs");
    let code = between(module, "//! ```no_run", "//! ```", "//! ");
    assert!(
        README.contains(&code),
        "README.md's metrics block differs from graphyte::metrics' example:\n{code}"
    );
}
