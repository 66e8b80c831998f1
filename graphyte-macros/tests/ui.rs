//! Compile tests of the macros: `tests/ui/pass/*.rs` must compile and run
//! (they check what they send), `tests/ui/fail/*.rs` must fail to compile
//! with exactly the errors in the `.stderr` beside them.
//!
//! Compiler messages change between Rust versions: after a toolchain
//! upgrade, review the differences and refresh the files with
//! `TRYBUILD=overwrite cargo test -p graphyte-macros --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

/// A bad literal name is refused at compile time with the very words the
/// runtime uses for the same name.
#[test]
fn compile_errors_give_the_runtime_reasons() {
    let expected = include_str!("ui/fail/bad_literal_names.stderr");
    for name in [
        "bad name",
        "",
        "a..b",
        "x;env",
        "requests;env=",
        "cpu.load;k=~v",
        "line\nbreak",
    ] {
        let runtime = graphyte::check_name(name).unwrap_err().to_string();
        assert!(
            expected.contains(&format!("error: {runtime}\n")),
            "the compile errors do not include the runtime's {runtime:?}:\n{expected}"
        );
    }
}
