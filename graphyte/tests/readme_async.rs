//! The README's async example is `examples/async_tokio.rs`, which is
//! compiled (and run by `cargo test --examples`): the README must show
//! exactly that code.

#[test]
fn the_readme_shows_the_compiled_async_example() {
    let example = include_str!("../examples/async_tokio.rs");
    let start = example.find("// README example start\n").unwrap() + 24;
    let end = example.find("// README example end").unwrap();
    let code = &example[start..end];
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(code.trim_end()),
        "README.md's async block differs from examples/async_tokio.rs:\n{code}"
    );
}
